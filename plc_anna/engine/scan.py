"""One network's scan in the engine: its runtime, its real-time task, its off-scan jobs, commands and PLC link.

Each cycle of a :class:`NetworkScan` (on its :class:`~plc_anna.engine.task.RealtimeTask`):

1. :meth:`Runtime.step <plc_anna.server.runtime.Runtime.step>`: adopt finished
   jobs (the scan boundary), read the network, update the compensator, hand
   off new jobs to the network's :class:`~plc_anna.engine.jobs.JobWorker`;
2. hand the corrections of the mapped layers to the PLC link;
3. emit a :class:`ScanReport`: the snapshot, the cycle statistics, the link's
   state and events, and the state to save when it is due: the scan raised an
   event, or :data:`STATE_PERIOD_S` passed.

Taking the state is the one part of a save that runs on the scan's thread (the
store writes it elsewhere), and its cost grows with the network: a few ms for
a network of a few hundred columns, most of a second for a 64-tile chip,
whose fingerprints hold a 256 x 256 matrix each. So a save an event asks for
waits, when needed, until the scan has spent at most :data:`STATE_SHARE` of
its time taking states; it is not dropped, the next scan takes it. A command
is saved at once.

``emit`` must not block (the engine hands reports to a
:class:`~plc_anna.engine.mailbox.ReportBox`). Commands (:data:`COMMANDS`) run
on the same thread between cycles, never during one; each is followed at once
by a report carrying the state, so a command is saved and shown without
waiting for the next scan.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from plc_anna.compensator import CompensatorConfig
from plc_anna.contract.tagmap import TagMap
from plc_anna.device import AnalogNetwork, open_network
from plc_anna.device.network import Network
from plc_anna.device.params import DeviceParams
from plc_anna.engine.jobs import JobWorker
from plc_anna.engine.link import LinkLoop, LinkRunner
from plc_anna.engine.task import CycleStats, RealtimeTask
from plc_anna.plc.link_status import LinkEvent, LinkStatus
from plc_anna.server.runtime import Runtime, Snapshot
from plc_anna.server.store import StateStore

#: A network's state is saved at least this often even when nothing happens (scan counters, age).
STATE_PERIOD_S = 60.0
#: Event-driven saves take at most this share of a scan's time (one save per 1/STATE_SHARE times its cost).
STATE_SHARE = 0.02
#: The commands a network's scan runs between cycles: the operations, a manual correction, the test rig's.
OPERATIONS = ("calibrate", "commit", "rollback", "reset_reference")
COMMANDS = OPERATIONS + ("set_correction", "set_gain", "set_offset", "set_age", "set_temperature", "inject_fault")


class StateRefused(ValueError):
    """A saved state the network cannot take (of another network, or damaged); nothing was changed."""


@dataclass(frozen=True)
class NetworkSpec:
    """Everything the engine needs to build and run one network (plain data: it crosses processes)."""

    name: str
    network: Network
    backend: str = "simulated"
    """``simulated``, or ``plc``: the network is observed through the tag map's PLC."""
    device: DeviceParams | None = None
    """The simulated device's parameters (the ``simulated`` backend)."""
    seed: int = 0
    tag_map: TagMap | None = None
    scan_ms: float = 10.0
    samples_per_scan: int = 8
    age_rate: float = 1.0
    compensator: CompensatorConfig = field(default_factory=CompensatorConfig)
    counter_store: Path | None = None
    """The state store that holds the commit counters' reservation (None: counters are not reserved; a
    restart may then repeat a counter published after the last save)."""
    counter_name: str = "commit_counter"
    """The reservation's name in that store."""

    def open(self) -> AnalogNetwork:
        """The analog network of this spec: simulated, or observed through the PLC (ValueError: neither)."""
        if self.backend not in ("simulated", "plc"):
            raise ValueError(f"backend must be simulated or plc, got {self.backend!r}")
        if self.backend == "plc":
            if self.tag_map is None:
                raise ValueError("the plc backend observes the network through a tag map, and there is none")
            return open_network("plc", network=self.network, tag_map=self.tag_map)
        return open_network("simulated", network=self.network, device=self.device or "pcm", seed=self.seed)


@dataclass(frozen=True)
class ScanReport:
    """What one network's scan (or a command) hands to the server."""

    network: str
    snapshot: Snapshot
    stats: CycleStats
    link: LinkStatus | None = None
    link_events: tuple[LinkEvent, ...] = ()
    state: dict | None = None
    """The runtime's state to save (with ``snapshot.scan``), when due."""
    dropped: int = 0
    """Earlier reports of this network merged into this one before anyone took them: scans not published."""

    def after(self, older: ScanReport) -> ScanReport:
        """This report with what an ``older`` one (not taken) carried that must not be lost: events, a state."""
        snapshot = replace(self.snapshot, events=older.snapshot.events + self.snapshot.events)
        return replace(self, snapshot=snapshot, link_events=older.link_events + self.link_events,
                       state=self.state if self.state is not None else older.state,
                       dropped=older.dropped + self.dropped + 1)


@dataclass
class CycleTrace:
    """Every cycle's timings (s) from :meth:`NetworkScan.start_trace` on, up to its count: what a benchmark reads.

    ``cycle_s`` and ``lateness_s`` as the task records them, ``overran`` whether the cycle ended after
    the next deadline, ``compute_s`` and ``read_s`` from the snapshot, ``state`` the last layer's drift
    state after the cycle.
    """

    cycle_s: list[float] = field(default_factory=list)
    lateness_s: list[float] = field(default_factory=list)
    overran: list[bool] = field(default_factory=list)
    compute_s: list[float] = field(default_factory=list)
    read_s: list[float] = field(default_factory=list)
    state: list[str] = field(default_factory=list)


class NetworkScan:
    """One network on the engine (see the module docstring).

    Parameters
    ----------
    spec
        The network.
    emit
        Called with every :class:`ScanReport`, on the scan's thread; must not block.
    priority
        Real-time priority of the scan's thread (0: normal).
    """

    def __init__(self, spec: NetworkSpec, emit: Callable[[ScanReport], None], priority: int = 0) -> None:
        self.spec, self.name, self.emit = spec, spec.name, emit
        net = spec.open()
        if spec.tag_map is not None:
            spec.tag_map.check_network([(layer.n_in, layer.n_out) for layer in spec.network.layers])
        self.jobs = JobWorker(name=f"plc-anna-jobs-{spec.name}")
        # The reservation is written where the counters are used, before they are: in this process, on its
        # own connection to the store (SQLite serializes it with the server's writes).
        self._counters = StateStore(spec.counter_store) if spec.counter_store is not None else None
        reserve = None if self._counters is None else (
            lambda mark: self._counters.save_counter(spec.counter_name, mark))
        self.runtime = Runtime(net, spec.compensator, samples_per_scan=spec.samples_per_scan,
                               age_rate=spec.age_rate, seed=spec.seed, jobs=self.jobs, reserve_counters=reserve)
        self.link = LinkRunner(spec.tag_map, net, spec.scan_ms / 1e3) if spec.tag_map is not None else None
        self.task = RealtimeTask(f"plc-anna-scan-{spec.name}", spec.scan_ms / 1e3, self._cycle, self._between,
                                 priority)
        self._commands: deque[tuple[str, tuple, Future]] = deque()
        self._last_save = -math.inf
        self._state_cost_s = 0.0
        self._save_pending = False
        self.trace = CycleTrace()
        self._trace_left = 0
        self.task.on_cycle = self._trace

    def restore(self, state: dict) -> None:
        """Load a saved state (before :meth:`start`); :class:`StateRefused` leaves the network as it was."""
        try:
            self.runtime.load_state_dict(state)
        except ValueError as exc:
            raise StateRefused(str(exc)) from None
        self._last_save = time.monotonic()

    def report(self, state: bool = False) -> ScanReport:
        """A report of the runtime now, without a scan (the first one, and after commands)."""
        return self._report(self.runtime.snapshot(), state)

    def resume_counters(self) -> None:
        """Continue the commit counter after every counter it may have published before (after :meth:`restore`,
        before the first report: a report must never show a counter that was used already)."""
        if self._counters is not None:
            self.runtime.resume_counters(self._counters.load_counter(self.spec.counter_name))

    def start(self, links: LinkLoop | None) -> None:
        if self.link is not None:
            self.link.start(links)
        self.task.start()

    def stop(self) -> tuple[dict, int]:
        """Stop the scan and the link; the final state and its scan (finished jobs adopted, running ones not)."""
        if self.task.running:
            self.task.stop()
        while self._commands:   # asked for while the scan stopped: refused, not left waiting
            _, _, future = self._commands.popleft()
            if future.set_running_or_notify_cancel():
                future.set_exception(RuntimeError(f"the scan of {self.name} has stopped"))
        if self.link is not None:
            self.link.stop()
        self.jobs.adopt_finished()   # the scan's thread has ended: this thread is the only one left
        self.jobs.close(wait=False)
        if self._counters is not None:
            self._counters.close()
            self._counters = None
        return self.runtime.state_dict(), self.runtime.scan

    def command(self, name: str, args: tuple = ()) -> Future:
        """Run the runtime's command ``name(*args)`` between cycles; a future of its result (ValueError: refused)."""
        future: Future = Future()
        if name not in COMMANDS:
            future.set_exception(ValueError(f"unknown command {name!r}; valid: {', '.join(COMMANDS)}"))
            return future
        self._commands.append((name, tuple(args), future))
        self.task.wake()
        return future

    def set_period(self, period_s: float) -> None:
        self.task.period_s = period_s

    # ------------------------------------------------------------ the task
    def _cycle(self) -> None:
        snapshot = self.runtime.step()
        if self.link is not None:
            self.link.after_scan([(layer.gain, layer.offset) for layer in snapshot.layers])
        self._save_pending = self._save_pending or bool(snapshot.events)
        since = time.monotonic() - self._last_save
        due = since >= STATE_PERIOD_S or (self._save_pending and since >= self._state_cost_s / STATE_SHARE)
        self.emit(self._report(snapshot, due))

    def start_trace(self, cycles: int) -> None:
        """Keep the timings of the next ``cycles`` cycles in a new :attr:`trace` (a benchmark's window)."""
        self._trace_left = 0
        self.trace = CycleTrace()
        self._trace_left = int(cycles)

    def _trace(self, cycle_s: float, lateness_s: float, overran: bool) -> None:
        if self._trace_left <= 0:
            return
        self._trace_left -= 1
        trace = self.trace
        loop = self.runtime.loop
        trace.cycle_s.append(cycle_s)
        trace.lateness_s.append(lateness_s)
        trace.overran.append(overran)
        trace.compute_s.append(loop.last_update_s)
        trace.read_s.append(loop.last_read_s)
        trace.state.append(self.runtime.compensator.layers[-1].state.name)

    def _between(self) -> None:
        ran = False
        while self._commands:
            name, args, future = self._commands.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = getattr(self.runtime, name)(*args)
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            ran = True
        if ran:
            self.emit(self.report(state=True))

    def _report(self, snapshot: Snapshot, state: bool) -> ScanReport:
        saved: dict[str, Any] | None = None
        if state:
            start = time.monotonic()
            saved = self.runtime.state_dict()
            self._last_save = time.monotonic()
            self._state_cost_s, self._save_pending = self._last_save - start, False
        link = self.link
        return ScanReport(self.name, snapshot, self.task.stats(), None if link is None else link.status(),
                          () if link is None else link.take_events(), saved)
