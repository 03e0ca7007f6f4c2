"""A cyclic task on its own thread: one cycle per period on absolute deadlines, work between cycles on request.

:class:`RealtimeTask` is how a PLC runtime runs a cyclic task, in Python:

- **Absolute deadlines** (``deadline += period``, :func:`plc_anna.deadlines.next_deadline`):
  lateness never accumulates; a cycle that ends after the next deadline is an
  overrun, and the deadlines it missed are skipped rather than run back to back.
- **Its own thread**, sleeping until the deadline (``threading.Event.wait``
  on the monotonic clock), so no event loop and no client decides when it runs.
  Work asked for between cycles (``between``: commands) runs on the same thread
  as soon as :meth:`RealtimeTask.wake` is called, never during a cycle.
- **Real-time priority** when the operating system grants it
  (``priority`` > 0: ``SCHED_FIFO`` on Linux, for root, ``CAP_SYS_NICE`` or an
  ``rtprio`` limit), so that other processes on a loaded machine wait for the
  scan, not the scan for them. Without the right the task runs at normal
  priority and :attr:`CycleStats.priority` says why. A task that overruns
  continuously for :data:`RELEASE_AFTER_S` (and at least 10 periods) gives its
  real-time priority back: a scan that cannot keep its period must not starve
  the machine.
- A cycle that raises is counted (:attr:`CycleStats.failures`) and logged; the
  next one runs on time.

:class:`CycleStats` is what the task reports: counts and times in ms,
percentiles over the last :attr:`CycleRecorder.window` cycles.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from plc_anna.deadlines import next_deadline

logger = logging.getLogger(__name__)

#: Scan periods a task accepts (the configuration's ``scan_ms`` range), in seconds.
PERIOD_RANGE_S = (0.005, 10.0)
#: Continuous overrunning for this long (and at least 10 periods) releases the real-time priority.
RELEASE_AFTER_S = 1.0
#: The highest real-time priority a task asks for (the kernel's interrupt threads run at 50).
MAX_PRIORITY = 49


@dataclass(frozen=True)
class CycleStats:
    """A scan task's counters and times at one moment (ms; NaN before the first cycle).

    ``last_ms``, ``p99_ms`` and ``max_ms`` are cycle times (the cycle's work,
    start to end), ``lateness_ms`` how long after its deadline the last cycle
    started; ``p99_ms`` is over the recorder's window, ``max_ms`` over all cycles.
    """

    cycles: int = 0
    overruns: int = 0
    missed_deadlines: int = 0
    """Deadlines skipped because a cycle ran past them (an overrun skips one or more)."""
    failures: int = 0
    last_error: str = ""
    last_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    lateness_ms: float = math.nan
    period_ms: float = math.nan
    priority: str = ""
    """How the task is scheduled: ``fifo N``, or ``normal`` with the reason."""


class CycleRecorder:
    """Cycle times, lateness and overruns of a task; percentiles over the last ``window`` cycles.

    Examples
    --------
    >>> recorder = CycleRecorder(window=100)
    >>> for ms in range(1, 101):
    ...     recorder.record(cycle_s=ms / 1000, lateness_s=0.0, overran=ms > 99)
    >>> stats = recorder.stats()
    >>> stats.last_ms, stats.p99_ms, stats.max_ms, stats.overruns, stats.cycles
    (100.0, 99.01, 100.0, 1, 100)
    """

    def __init__(self, window: int = 1000) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.window = window
        self._cycle: deque[float] = deque(maxlen=window)
        self._lateness: deque[float] = deque(maxlen=window)
        self.max_s = 0.0
        self.overruns = 0
        self.missed_deadlines = 0
        self.cycles = 0

    def record(self, cycle_s: float, lateness_s: float, overran: bool | int) -> None:
        """One cycle: its time, its lateness, and whether it ran past the next deadline (or how many)."""
        self._cycle.append(cycle_s)
        self._lateness.append(lateness_s)
        self.max_s = max(self.max_s, cycle_s)
        self.overruns += bool(overran)
        self.missed_deadlines += int(overran)
        self.cycles += 1

    def stats(self, **fields) -> CycleStats:
        """The counters and times now; ``fields`` fill the rest of :class:`CycleStats` (failures, period, ...)."""
        counts = {"cycles": self.cycles, "overruns": self.overruns, "missed_deadlines": self.missed_deadlines}
        if not self._cycle:
            return CycleStats(**counts, **fields)
        return CycleStats(**counts, last_ms=1e3 * self._cycle[-1],
                          p99_ms=round(1e3 * float(np.percentile(self._cycle, 99)), 6), max_ms=1e3 * self.max_s,
                          lateness_ms=1e3 * self._lateness[-1], **fields)


def check_period(value: float) -> float:
    """``value`` (s) as a float within :data:`PERIOD_RANGE_S`; ValueError otherwise."""
    low, high = PERIOD_RANGE_S
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and low <= value <= high):
        raise ValueError(f"scan period must be within {low * 1e3:g}..{high * 1e3:g} ms, got {value!r} s")
    return float(value)


def set_thread_priority(priority: int) -> str:
    """Schedule the calling thread ``SCHED_FIFO`` at ``priority`` (0: normal); how it is scheduled now.

    Never raises: without the right (or on a system without ``SCHED_FIFO``) the
    thread stays at normal priority and the text says why.
    """
    if priority <= 0:
        return "normal"
    if not hasattr(os, "sched_setscheduler"):
        return "normal (no SCHED_FIFO on this system)"
    try:
        # On Linux, pid 0 is the calling thread.
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(min(int(priority), MAX_PRIORITY)))
    except OSError as exc:
        return f"normal (SCHED_FIFO refused: {exc.strerror or exc}; run as root, with CAP_SYS_NICE or an rtprio limit)"
    return f"fifo {min(int(priority), MAX_PRIORITY)}"


def release_thread_priority() -> None:
    """Return the calling thread to normal scheduling (after :func:`set_thread_priority`)."""
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:  # pragma: no cover - lowering one's own priority is always allowed
            logger.exception("could not return the scan thread to normal scheduling")


class RealtimeTask:
    """Runs ``cycle`` once per ``period_s`` on a thread of its own until stopped.

    Parameters
    ----------
    name
        The thread's name (and the logs').
    period_s
        The period, within :data:`PERIOD_RANGE_S`; may be changed while running.
    cycle
        One cycle's work.
    between
        Work to run between cycles (commands): after each cycle and whenever :meth:`wake` is called.
    priority
        Real-time priority to ask for (see the module docstring); 0 for normal scheduling.
    """

    def __init__(self, name: str, period_s: float, cycle: Callable[[], None],
                 between: Callable[[], None] | None = None, priority: int = 0) -> None:
        self.name = name
        self.period_s = period_s
        self.cycle, self.between = cycle, between
        self.priority = int(priority)
        self.recorder = CycleRecorder()
        self.failures = 0
        self.last_error = ""
        self.scheduling = "not started"
        #: Called after each cycle with (cycle_s, lateness_s, overran), on the task's thread (a benchmark's trace).
        self.on_cycle: Callable[[float, float, bool], None] | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def period_s(self) -> float:
        return self._period_s

    @period_s.setter
    def period_s(self, value: float) -> None:
        self._period_s = check_period(value)

    def stats(self) -> CycleStats:
        return self.recorder.stats(failures=self.failures, last_error=self.last_error,
                                   period_ms=1e3 * self._period_s, priority=self.scheduling)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"the task {self.name} is already running")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run ``between`` as soon as the cycle in progress (if any) has ended."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the cycle in progress and wait for the thread (``between`` runs once more first)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        self.scheduling = set_thread_priority(self.priority)
        if self.priority > 0 and not self.scheduling.startswith("fifo"):
            logger.warning("%s runs at normal priority: %s", self.name, self.scheduling)
        deadline = time.monotonic()
        overrunning_since: float | None = None
        while not self._stopping:
            started = time.monotonic()
            lateness = max(0.0, started - deadline)
            t0 = time.perf_counter()
            try:
                self.cycle()
            except Exception as exc:  # one bad cycle must not stop the scan
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.failures == 1 or self.failures % 1000 == 0:
                    logger.exception("%s: cycle failed (%d so far)", self.name, self.failures)
            cycle_s = time.perf_counter() - t0
            now = time.monotonic()
            deadline, missed = next_deadline(deadline, now, self._period_s)
            self.recorder.record(cycle_s, lateness, missed)
            if self.on_cycle is not None:
                self.on_cycle(cycle_s, lateness, missed > 0)
            if missed == 0:
                overrunning_since = None
            elif overrunning_since is None:
                overrunning_since = started
            elif (self.scheduling.startswith("fifo")
                  and now - overrunning_since >= max(RELEASE_AFTER_S, 10 * self._period_s)):
                release_thread_priority()
                self.scheduling = f"normal (released: overran continuously for {now - overrunning_since:.1f} s)"
                logger.error("%s cannot keep its period of %g ms: real-time priority released",
                             self.name, 1e3 * self._period_s)
            self._wait_for(deadline)
        self._run_between()

    def _wait_for(self, deadline: float) -> None:
        """Sleep until ``deadline``, running ``between`` now and whenever woken."""
        while True:
            self._wake.clear()
            self._run_between()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping:
                return
            self._wake.wait(remaining)

    def _run_between(self) -> None:
        if self.between is None:
            return
        try:
            self.between()
        except Exception as exc:  # the commands report their own errors; this guards the task
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("%s: work between cycles failed", self.name)
