"""``plc-anna bench cycle``: the server's scan cycle, next to a bare asyncua server in the same run.

For each column count a synthetic one-layer linear network (:data:`INPUTS`
inputs, ``columns`` outputs in volts, seeded weights and :data:`DATA_ROWS`
seeded input rows) is served by a real :class:`~plc_anna.server.app.PlcAnnaServer`
(through :func:`plc_anna.testing.rig`: loopback, ``None`` security, pcm
device, ``samples_per_scan`` process samples a scan, the simulated clock at
``age_rate``). The benchmark wraps the scan task's ``work`` and ``publish``
from outside before the first cycle and measures the first ``cycles`` cycles,
start-up included. What each number measures, per cycle:

- ``compute_ms``: the compensator update, :attr:`Snapshot.compute_s
  <plc_anna.server.runtime.Snapshot.compute_s>` (``Compensator.update`` on
  the scan's samples, timed inside :meth:`Runtime.step
  <plc_anna.server.runtime.Runtime.step>`). The simulated network read is
  ``read_ms`` (:attr:`Snapshot.read_s`); ``work_ms`` is the whole of ``work``
  on the worker thread (clock, read, update, snapshot of the nodes' values,
  state to save when due).
- ``lateness_ms``: how long after its absolute deadline the cycle started, as
  the scan task records it (:attr:`CycleStats.lateness_ms
  <plc_anna.server.scan.CycleStats.lateness_ms>`, read each cycle).
- ``overruns``: cycles of the measured window that ended after the next
  deadline (the growth of ``ScanTask.stats.overruns`` over the window);
  ``overrun_cycles`` lists which (0 = the first cycle after start-up), and
  ``overruns_before`` counts any before the window. A cycle counts once
  however many deadlines it missed: ``work_ms`` and ``cycle_ms`` ``max`` show
  how long the worst one stalled the scan.
- ``server_update_ms``: the scan task's ``publish`` step on the event loop:
  every node written through ``write_attribute_value`` (arrays as single
  values), events fired, history and state handed to the store's thread.
- ``cycle_ms``: the scan task's own cycle time (``work`` through the worker
  thread's hand-off, then ``publish``), :attr:`CycleStats.last_ms`.
- ``bare_asyncua_update_ms``: after the server stopped, a plain
  ``asyncua.Server`` on loopback (no security, no model) writes the same
  payload ``cycles`` times with ``Server.write_attribute_value``: the
  :data:`BARE_ARRAYS` as Double arrays of ``columns`` values (converted from
  numpy each time, as ``publish`` does) and :data:`BARE_SCALARS` scalar nodes,
  one timestamped DataValue each. It runs back to back, without a scan
  period, so its caches stay warm: a lower bound of what asyncua itself needs
  for these writes. ``GainTrendPerDecade`` is empty on the server until the
  drift latent is ready; the baseline always writes it full.

Percentiles are numpy's (linear interpolation) over the measured cycles,
wall-clock times from :func:`time.perf_counter`; they move with machine load,
which the report shows only as the load average around each run
(``load_average_1min``) and ``machine`` (CPUs, BLAS threads): run it on a
quiet machine. ``compute_by_state_ms`` splits the compute times by the
layer's drift state after the update (calibration costs more per scan than
monitoring). ``targets`` states each target of the issue and whether the
measured run met it (``None`` when no run had the target's columns and scan
period, or the run was shorter than the target asks).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from asyncua import Server, ua

from plc_anna.device.network import Network, network_from_arrays
from plc_anna.testing import free_port, rig

INPUTS = 32
DATA_ROWS = 4096
SAMPLES_PER_SCAN = 8
#: Simulated seconds of age per second of wall time: the server's default (the network ages in real time).
AGE_RATE = 1.0
#: The spec's scan period by column count: 10 ms up to 256 columns, 100 ms above.
SPEC_SCAN_MS = ((256, 10.0), (math.inf, 100.0))
#: What the bare baseline writes each cycle: the layer arrays of ``publish`` ...
BARE_ARRAYS = ("Gain", "Offset", "ColumnDistance", "TransportCost", "GainTrendPerDecade")
#: ... and as many scalar nodes as ``publish`` writes for a one-layer network, with their types.
BARE_SCALARS = (("Age", ua.VariantType.Double), ("Temperature", ua.VariantType.Double),
                ("LayerDistance", ua.VariantType.Double), ("DetectorStatistic", ua.VariantType.Double),
                ("DetectorThreshold", ua.VariantType.Double), ("DriftState", ua.VariantType.Int32),
                ("SampleCount", ua.VariantType.UInt64), ("RemainingLife", ua.VariantType.Double),
                ("CommitCounter", ua.VariantType.UInt32), ("Heartbeat", ua.VariantType.UInt32),
                ("LastCycleTime", ua.VariantType.Double), ("P99CycleTime", ua.VariantType.Double),
                ("MaxCycleTime", ua.VariantType.Double), ("DeadlineLateness", ua.VariantType.Double),
                ("Overruns", ua.VariantType.UInt64))
#: The issue's targets: (columns, scan ms, cycles the run must have or None, compute p99 limit ms or None).
TARGETS = ((256, 10.0, 10000, 1.0), (1024, 100.0, None, None))


def spec_scan_ms(columns: int) -> float:
    """The spec's scan period for a column count (:data:`SPEC_SCAN_MS`)."""
    return next(ms for limit, ms in SPEC_SCAN_MS if columns <= limit)


def synthetic_network(columns: int, inputs: int = INPUTS, rows: int = DATA_ROWS, seed: int = 0) -> Network:
    """A seeded one-layer linear network of ``inputs`` -> ``columns`` outputs in volts, with ``rows`` of data."""
    rng = np.random.default_rng([seed, columns, inputs])
    weights = rng.normal(size=(columns, inputs)) / np.sqrt(inputs)
    bias = 0.1 * rng.normal(size=columns)
    X = rng.uniform(-1.0, 1.0, size=(rows, inputs))
    return network_from_arrays(f"cycle{columns}", "regression", [weights], [bias], ["linear"],
                               X=X, y=X @ weights.T + bias, output_unit="V",
                               description=f"scan-cycle benchmark, {inputs} -> {columns}")


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        return None


def machine() -> dict[str, Any]:
    """What the timings depend on: CPUs, the BLAS and its threads (when threadpoolctl is installed)."""
    blas = None
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - an optional helper
        pass
    else:
        blas = [{"library": info.get("internal_api"), "threads": info.get("num_threads")}
                for info in threadpool_info() if info.get("user_api") == "blas"]
    return {"cpus": os.cpu_count(), "blas": blas, "load_average_1min": _load_average()}


def percentiles_ms(seconds: Sequence[float], keys: tuple[str, ...] = ("p50", "p99", "max")) -> dict[str, float]:
    ms = 1e3 * np.asarray(seconds, dtype=float)
    if ms.size == 0:
        return {key: math.nan for key in keys}
    values = {"p50": np.percentile(ms, 50), "p99": np.percentile(ms, 99), "max": ms.max()}
    return {key: float(values[key]) for key in keys}


class _Timed:
    """A scan's ``work`` result with the time ``work`` took."""

    __slots__ = ("value", "work_s")

    def __init__(self, value: Any, work_s: float) -> None:
        self.value, self.work_s = value, work_s


class _Recorder:
    """Wraps a running server's scan task from outside and records its first ``cycles`` cycles.

    ``publish`` of cycle ``k`` sees the task's :class:`CycleStats` holding every
    cycle before ``k``; so the lateness, cycle time and overrun of cycle
    ``k - 1`` are read there, and the window ends at the publish after its last cycle.
    """

    def __init__(self, scan, cycles: int) -> None:
        self.scan, self.cycles = scan, cycles
        self._work, self._publish = scan.work, scan.publish
        self.compute: list[float] = []
        self.read: list[float] = []
        self.work_times: list[float] = []
        self.update: list[float] = []
        self.states: list[str] = []
        self.events = 0
        self.lateness: list[float] = []
        self.cycle: list[float] = []
        self.overrun_cycles: list[int] = []
        self.first: int | None = None  # the stats' cycle number of the window's first cycle
        self.overruns_before = self.overruns = 0
        self.failures_before = self.failures = 0
        self._seen = 0  # cycles whose stats were read
        self._overruns_seen = 0
        self.done = asyncio.get_running_loop().create_future()
        scan.work, scan.publish = self.work, self.publish

    def work(self) -> _Timed:
        start = time.perf_counter()
        value = self._work()
        return _Timed(value, time.perf_counter() - start)

    async def publish(self, result: Any, stats) -> None:
        self._read_stats(stats)
        if not isinstance(result, _Timed):  # a cycle that started before the wrappers
            await self._publish(result, stats)
            return
        measured = self.first is not None and len(self.compute) >= self.cycles
        if not measured:
            if self.first is None:
                self.first = stats.cycles + 1
                self.overruns_before, self.failures_before = stats.overruns, self.scan.failures
                self._seen, self._overruns_seen = stats.cycles, stats.overruns
            snapshot = result.value[0]
            self.compute.append(snapshot.compute_s)
            self.read.append(snapshot.read_s)
            self.work_times.append(result.work_s)
            self.states.append(snapshot.layers[-1].state.name)
            self.events += len(snapshot.events)
        start = time.perf_counter()
        await self._publish(result.value, stats)
        if not measured:
            self.update.append(time.perf_counter() - start)

    def _read_stats(self, stats) -> None:
        """Read the stats of the last recorded cycle if it belongs to the window."""
        if self.first is None or self.done.done() or stats.cycles <= self._seen:
            return
        last = self.first + self.cycles - 1
        if stats.cycles <= last:
            self.lateness.append(stats.lateness_ms / 1e3)
            self.cycle.append(stats.last_ms / 1e3)
            if stats.overruns > self._overruns_seen:
                self.overrun_cycles.append(stats.cycles - self.first)
        self._seen, self._overruns_seen = stats.cycles, stats.overruns
        if stats.cycles >= last:
            self.overruns = stats.overruns - self.overruns_before
            self.failures = self.scan.failures - self.failures_before
            self.done.set_result(None)


async def _serve_and_measure(network: Network, scan_ms: float, cycles: int, seed: int, samples_per_scan: int,
                             age_rate: float) -> dict[str, Any]:
    async with rig(network=network, seed=seed, scan_ms=_whole_ms(scan_ms), samples_per_scan=samples_per_scan,
                   age_rate=age_rate) as running:
        scan = running.server.scan
        recorder = _Recorder(scan, cycles)
        timeout = cycles * scan_ms / 1e3 * 5 + 120.0
        try:
            await asyncio.wait_for(asyncio.shield(recorder.done), timeout)
        except TimeoutError:
            raise RuntimeError(f"the scan task ran {len(recorder.compute)} of {cycles} cycles in {timeout:.0f} s "
                               f"(failures {scan.failures}: {scan.last_error or 'none'})") from None
        return {"recorder": recorder, "last_error": scan.last_error}


def _whole_ms(scan_ms: float) -> int:
    if not (isinstance(scan_ms, (int, float)) and float(scan_ms).is_integer()):
        raise ValueError(f"the server's scan period is a whole number of milliseconds, got {scan_ms!r}")
    return int(scan_ms)


async def _bare_asyncua(columns: int, cycles: int, seed: int) -> list[float]:
    """Per-cycle times of a plain asyncua server writing the same payload as ``publish``."""
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{free_port()}/bare")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:plc-anna:bench:bare")
    folder = await server.nodes.objects.add_object(ua.NodeId("Bare", idx), ua.QualifiedName("Bare", idx))
    D = ua.VariantType.Double
    arrays = [(await folder.add_variable(ua.NodeId(name, idx), ua.QualifiedName(name, idx),
                                         ua.Variant([0.0] * columns, D))).nodeid for name in BARE_ARRAYS]
    scalars = [((await folder.add_variable(ua.NodeId(name, idx), ua.QualifiedName(name, idx),
                                           ua.Variant(0, vtype) if vtype != D else ua.Variant(0.0, D))).nodeid,
                vtype) for name, vtype in BARE_SCALARS]
    rng = np.random.default_rng([seed, columns, 1])
    values = rng.normal(size=(len(arrays), columns))
    scalar_values = [float(v) if vtype == D else int(abs(v) * 1000) % 100 for v, (_, vtype)
                     in zip(rng.normal(size=len(scalars)), scalars)]
    times = []
    write = server.write_attribute_value
    async with server:
        for _ in range(cycles):
            start = time.perf_counter()
            now = datetime.now(UTC)
            for nodeid, array in zip(arrays, values):
                await write(nodeid, ua.DataValue(ua.Variant(array.tolist(), D), SourceTimestamp=now,
                                                 ServerTimestamp=now))
            for (nodeid, vtype), value in zip(scalars, scalar_values):
                await write(nodeid, ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=now, ServerTimestamp=now))
            times.append(time.perf_counter() - start)
            await asyncio.sleep(0)  # let the server's own tasks run, as between scans
    return times


async def _one_run(columns: int, scan_ms: float, cycles: int, seed: int, samples_per_scan: int,
                   age_rate: float) -> dict[str, Any]:
    network = synthetic_network(columns, seed=seed)
    served = await _serve_and_measure(network, scan_ms, cycles, seed, samples_per_scan, age_rate)
    bare = await _bare_asyncua(columns, cycles, seed)
    r: _Recorder = served["recorder"]
    states = {}
    for name in dict.fromkeys(r.states):
        picked = [t for t, s in zip(r.compute, r.states) if s == name]
        states[name] = {"cycles": len(picked), **percentiles_ms(picked)}
    return {
        "columns": columns,
        "scan_ms": float(scan_ms),
        "cycles": len(r.compute),
        "compute_ms": percentiles_ms(r.compute),
        "lateness_ms": percentiles_ms(r.lateness),
        "overruns": int(r.overruns),
        "server_update_ms": percentiles_ms(r.update, ("p50", "p99")),
        "bare_asyncua_update_ms": percentiles_ms(bare, ("p50", "p99")),
        "inputs": INPUTS,
        "samples_per_scan": samples_per_scan,
        "age_rate": age_rate,
        "read_ms": percentiles_ms(r.read),
        "work_ms": percentiles_ms(r.work_times),
        "cycle_ms": percentiles_ms(r.cycle),
        "server_update_max_ms": percentiles_ms(r.update, ("max",))["max"],
        "bare_asyncua_update_max_ms": percentiles_ms(bare, ("max",))["max"],
        "compute_by_state_ms": states,
        "events": r.events,
        "overrun_cycles": r.overrun_cycles[:100],
        "overruns_before": int(r.overruns_before),
        "failures": int(r.failures),
        "last_error": served["last_error"],
    }


def check_targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of :data:`TARGETS` with what the matching run measured and whether it was met."""
    out = []
    for columns, scan_ms, cycles, compute_p99 in TARGETS:
        wording = [f"compute p99 <= {compute_p99:g} ms"] if compute_p99 is not None else []
        wording.append("no overrun" + (f" in {cycles} cycles" if cycles else ""))
        target: dict[str, Any] = {"target": f"{columns} columns, {scan_ms:g} ms scan: {' and '.join(wording)}",
                                  "columns": columns, "scan_ms": scan_ms, "cycles_required": cycles,
                                  "compute_p99_limit_ms": compute_p99}
        run = next((r for r in runs if r["columns"] == columns and r["scan_ms"] == scan_ms), None)
        if run is None:
            out.append({**target, "met": None, "why": "not run"})
            continue
        holds = run["overruns"] == 0 and run["failures"] == 0
        if compute_p99 is not None:
            holds = holds and run["compute_ms"]["p99"] <= compute_p99
        target.update(cycles_measured=run["cycles"], compute_p99_ms=run["compute_ms"]["p99"],
                      overruns=run["overruns"], failures=run["failures"])
        if cycles is not None and run["cycles"] < cycles:
            out.append({**target, "met": None, "holds_in_shorter_run": holds,
                        "why": f"the run had {run['cycles']} of the {cycles} cycles the target asks"})
        else:
            out.append({**target, "met": holds, "why": "measured"})
    return out


def run_cycle_bench(columns: Sequence[int] = (64, 256, 1024), scan_ms: float | Sequence[float] | None = None,
                    cycles: int = 10000, seed: int = 0, on_progress: Callable[[str], Any] | None = None,
                    samples_per_scan: int = SAMPLES_PER_SCAN, age_rate: float = AGE_RATE) -> dict[str, Any]:
    """Serve a synthetic network of each column count and time its scan cycles; the baseline in the same run.

    Parameters
    ----------
    columns
        Column counts (outputs of the one layer), one run each.
    scan_ms
        The scan period in ms: None for the spec's (:func:`spec_scan_ms`: 10 ms up to 256 columns,
        100 ms above), one number for every run, or one per column count. Whole milliseconds, 5..10000.
    cycles
        Scan cycles measured per run (and bare asyncua updates).
    seed
        Seed of the networks, the simulated device and the process sampling.
    on_progress
        Called with a line of text after each run.
    samples_per_scan, age_rate
        The server keys of the same names.

    Returns
    -------
    dict
        ``{"runs": [...], "targets": [...], "machine": {...}}`` as the module docstring describes.
    """
    columns = [int(c) for c in columns]
    if not columns or min(columns) < 1:
        raise ValueError(f"columns must be positive counts, got {columns}")
    if int(cycles) < 1:
        raise ValueError(f"cycles must be at least 1, got {cycles}")
    if scan_ms is None:
        periods = [spec_scan_ms(c) for c in columns]
    elif isinstance(scan_ms, (int, float)):
        periods = [float(scan_ms)] * len(columns)
    else:
        periods = [float(p) for p in scan_ms]
        if len(periods) != len(columns):
            raise ValueError(f"{len(periods)} scan periods for {len(columns)} column counts")
    for period in periods:
        _whole_ms(period)
    runs = []
    context = machine()
    for n, period in zip(columns, periods):
        load_before = _load_average()
        run = asyncio.run(_one_run(n, period, int(cycles), seed, samples_per_scan, age_rate))
        run["load_average_1min"] = {"before": load_before, "after": _load_average()}
        runs.append(run)
        if on_progress is not None:
            on_progress(f"{n} columns, {period:g} ms scan, {run['cycles']} cycles: compute p99 "
                        f"{run['compute_ms']['p99']:.3f} ms, {run['overruns']} overruns")
    return {"runs": runs, "targets": check_targets(runs), "machine": context}
