"""The scan task: one cycle per scan period on absolute deadlines, the numerics on a worker thread.

Each cycle runs ``work`` (the network read and the compensator update) on a
single worker thread, so the event loop keeps serving clients while numpy
computes, then awaits ``publish`` on the event loop. Deadlines are absolute
(``deadline += period``), so lateness never accumulates; a cycle that ends
after the next deadline is an overrun, and the deadlines it missed are
skipped rather than run back to back. A cycle that raises is counted in
:attr:`ScanTask.failures` and logged; the next cycle runs as scheduled. Commands (:meth:`ScanTask.call`) run on
the same worker thread between cycles, never during one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import numpy as np

from plc_anna.deadlines import next_deadline

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Scan periods the task accepts (the configuration's ``scan_ms`` range), in seconds.
PERIOD_RANGE_S = (0.005, 10.0)


class CycleStats:
    """Cycle times, lateness and overruns of a scan task; percentiles over the last ``window`` cycles.

    Examples
    --------
    >>> stats = CycleStats(window=100)
    >>> for ms in range(1, 101):
    ...     stats.record(cycle_s=ms / 1000, lateness_s=0.0, overran=ms > 99)
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
        self.cycles = 0

    def record(self, cycle_s: float, lateness_s: float, overran: bool) -> None:
        self._cycle.append(cycle_s)
        self._lateness.append(lateness_s)
        self.max_s = max(self.max_s, cycle_s)
        self.overruns += bool(overran)
        self.cycles += 1

    @property
    def last_ms(self) -> float:
        return 1e3 * self._cycle[-1] if self._cycle else math.nan

    @property
    def p99_ms(self) -> float:
        return round(1e3 * float(np.percentile(self._cycle, 99)), 6) if self._cycle else math.nan

    @property
    def max_ms(self) -> float:
        return 1e3 * self.max_s if self._cycle else math.nan

    @property
    def lateness_ms(self) -> float:
        """The last cycle's lateness: how long after its deadline it started."""
        return 1e3 * self._lateness[-1] if self._lateness else math.nan


class ScanTask(Generic[T]):
    """Runs ``work`` then ``publish`` once per ``period_s`` until stopped.

    Parameters
    ----------
    period_s
        The scan period, within :data:`PERIOD_RANGE_S`.
    work
        The cycle's computation (synchronous), run on the worker thread.
    publish
        Awaited on the event loop with ``work``'s result and the task's :class:`CycleStats`.
    on_overrun
        Awaited after each overrun with the overrun count (to raise an alarm).
    """

    def __init__(self, period_s: float, work: Callable[[], T],
                 publish: Callable[[T, CycleStats], Awaitable[None]],
                 on_overrun: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.period_s = period_s
        self.work, self.publish, self.on_overrun = work, publish, on_overrun
        self.stats = CycleStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plc-anna-scan")
        self._task: asyncio.Task | None = None
        #: Cycles whose work or publish raised, and the last such error (the task goes on).
        self.failures = 0
        self.last_error = ""

    @property
    def period_s(self) -> float:
        return self._period_s

    @period_s.setter
    def period_s(self, value: float) -> None:
        low, high = PERIOD_RANGE_S
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and low <= value <= high):
            raise ValueError(f"scan period must be within {low * 1e3:g}..{high * 1e3:g} ms, got {value!r} s")
        self._period_s = float(value)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the worker thread, between cycles; its result or exception."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the scan task is already running")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="plc-anna scan")

    async def stop(self) -> None:
        """Stop after the cycle in progress; the worker thread finishes what it runs."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            started = loop.time()
            lateness = max(0.0, started - deadline)
            t0 = time.perf_counter()
            try:
                result = await loop.run_in_executor(self._executor, self.work)
                await self.publish(result, self.stats)
            except Exception as exc:  # one bad cycle must not stop the scan
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.failures == 1 or self.failures % 1000 == 0:
                    logger.exception("scan cycle failed (%d so far)", self.failures)
            cycle = time.perf_counter() - t0
            deadline, missed = next_deadline(deadline, loop.time(), self._period_s)
            overran = missed > 0
            self.stats.record(cycle, lateness, overran)
            if overran and self.on_overrun is not None:
                try:
                    await self.on_overrun(self.stats.overruns)
                except Exception as exc:  # a failing alarm must not stop the scan either
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    logger.exception("the overrun alarm failed")
            await asyncio.sleep(deadline - loop.time())
