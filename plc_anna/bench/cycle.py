"""``plc-anna bench cycle``: the server's scan cycle under SCADA load, at chip and plant scale.

Each run (:class:`CycleRun`) serves ``networks`` synthetic networks of
``layers`` layers of ``columns`` columns (:func:`synthetic_network`: seeded
weights, :data:`INPUTS` inputs, tanh between layers, :data:`DATA_ROWS` rows of
process data; :data:`SAMPLES_PER_SCAN` process samples a scan, the simulated
clock at :data:`AGE_RATE`) with a real :class:`~plc_anna.server.app.PlcAnnaServer`
on loopback (no security; the scan engine as configured: by default in a
process of its own, ``scan_priority`` 40), scanning every ``scan_ms``. With
``subscribers`` > 0, that many asyncua client sessions in another process
(:mod:`plc_anna.bench.subscribers`) each subscribe, at ``publish_ms``, to
every layer's LayerDistance, DriftState, Gain and Offset of every network; the
server publishes every ``publish_ms`` too. Once they are subscribed, every
network is told to Calibrate (so each window holds one calibration, its ramp
and steady monitoring), then the window opens: each network's next ``cycles``
cycles are traced by the engine (:meth:`EngineHost.trace
<plc_anna.engine.host.EngineHost.trace>`). What each number measures:

- ``compute_ms``: the compensator update of a cycle (:attr:`ScanLoop.last_update_s
  <plc_anna.loop.ScanLoop.last_update_s>`); ``read_ms`` the network read (a
  simulated inference); ``work_ms`` the whole cycle on the scan's thread
  (clock, read, update, snapshot, hand-off; :attr:`CycleStats.last_ms
  <plc_anna.engine.task.CycleStats.last_ms>`); ``compute_by_state_ms`` the
  compute times by the last layer's drift state after the update.
- ``lateness_ms``: how long after its absolute deadline a cycle started.
- ``overruns``: cycles of the window that ended after the next deadline, over
  all networks (``overrun_cycles`` lists the first 100 as ``[network, cycle,
  compute_ms, work_ms]``: whether the update itself took the time, or the
  cycle waited for the CPU; ``overruns_before`` counts those before the window).
- ``server_update_ms``: one network's publishing on the server's event loop
  (:meth:`ServedNetwork.publish <plc_anna.server.served.ServedNetwork.publish>`:
  every node written with ``write_attribute_value``, the subscriptions'
  notifications queued, events, history and state handed to the store's
  thread); ``publish_passes`` how many there were, ``publish_dropped`` the
  scans published over (their values never reached the address space),
  ``publish_interval_ms`` the interval publishing ended at (it grows when a
  pass takes more than half of it).
- ``bare_asyncua_update_ms``: after the server stopped, a plain asyncua server
  writing the same payload for the same networks and layers with the same
  subscribers, as many passes as the server's publishing made (at most
  :data:`BARE_PASSES`), at the same interval
  (:func:`~plc_anna.bench.baseline.bare_asyncua_updates`): the cost of
  publishing in asyncua itself, timed per network as ``server_update_ms`` is.
- ``numpy_floor_ms``: one network's per-scan statistics with every layer
  stacked in numpy (:func:`~plc_anna.bench.baseline.numpy_floor`): the least
  an update that reads its batch once can cost.
- ``monitored_items``: monitored items the subscribers created on the server;
  ``notifications`` how many data changes they received in the window and after.

Percentiles are numpy's (linear interpolation), times from
:func:`time.perf_counter`; they move with machine load, which the report shows
as the load average around each run and ``machine`` (CPUs, BLAS). ``targets``
states every target of issue 14 with the run that measured it: met, not met, or
not measured (``met`` None, with why).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plc_anna.bench.baseline import SUBSCRIBED, bare_asyncua_updates, numpy_floor
from plc_anna.bench.subscribers import Subscribers
from plc_anna.device.network import Network, network_from_arrays
from plc_anna.server.model import NAMESPACE_URI
from plc_anna.testing import free_port

INPUTS = 32
DATA_ROWS = 4096
SAMPLES_PER_SCAN = 8
#: Simulated seconds of age per second of wall time: the server's default (the network ages in real time).
AGE_RATE = 1.0
#: The spec's scan period by column count: 10 ms up to 256 columns, 100 ms above.
SPEC_SCAN_MS = ((256, 10.0), (math.inf, 100.0))
#: At most this many bare asyncua passes per run.
BARE_PASSES = 2000


@dataclass(frozen=True)
class CycleRun:
    """One run of the benchmark: what is served, to how many subscribers, how fast, for how long."""

    columns: int
    layers: int = 1
    networks: int = 1
    subscribers: int = 0
    scan_ms: float = 10.0
    cycles: int = 10000
    publish_ms: float = 100.0


@dataclass(frozen=True)
class Target:
    """One target of issue 14: the run that measures it and what it must show."""

    text: str
    run: CycleRun
    compute_p99_ms: float | None = None
    min_monitored_items: int = 0

    def matches(self, run: dict) -> bool:
        wanted = self.run
        return (run["columns"], run["layers"], run["networks"], run["scan_ms"]) == \
            (wanted.columns, wanted.layers, wanted.networks, wanted.scan_ms) and \
            (run["subscribers"] == wanted.subscribers if not self.min_monitored_items
             else run["publish_ms"] == wanted.publish_ms)


TARGETS = (
    Target("256 columns at 10 ms, no subscriber: 0 overruns in 100 000 cycles, compute p99 <= 0.5 ms",
           CycleRun(256, scan_ms=10, cycles=100_000), compute_p99_ms=0.5),
    Target("256 columns at 10 ms, 50 subscribers: 0 overruns in 100 000 cycles, compute p99 <= 0.5 ms",
           CycleRun(256, subscribers=50, scan_ms=10, cycles=100_000), compute_p99_ms=0.5),
    Target("1024 columns at 10 ms: 0 overruns in 10 000 cycles, compute p99 <= 2 ms",
           CycleRun(1024, scan_ms=10, cycles=10_000), compute_p99_ms=2.0),
    Target("a HERMES-sized chip, 64 layers x 256 columns, at 100 ms: 0 overruns in 10 000 cycles",
           CycleRun(256, layers=64, scan_ms=100, cycles=10_000)),
    Target("32 networks x 256 columns in one server at 100 ms: 0 overruns in 10 000 cycles",
           CycleRun(256, networks=32, scan_ms=100, cycles=10_000)),
    Target("20 000 monitored items at 1 s publishing, 10 ms scan: 0 overruns in 10 000 cycles",
           CycleRun(16, layers=64, subscribers=80, scan_ms=10, cycles=10_000, publish_ms=1000.0),
           min_monitored_items=20_000),
)


def spec_scan_ms(columns: int) -> float:
    """The spec's scan period for a column count (:data:`SPEC_SCAN_MS`)."""
    return next(ms for limit, ms in SPEC_SCAN_MS if columns <= limit)


def synthetic_network(columns: int, layers: int = 1, inputs: int = INPUTS, rows: int = DATA_ROWS,
                      seed: int = 0) -> Network:
    """A seeded network of ``layers`` layers: ``inputs`` -> ``columns`` -> ... -> ``columns`` (tanh between),
    outputs in volts, with ``rows`` rows of process data."""
    rng = np.random.default_rng([seed, columns, inputs, layers])
    sizes = [inputs] + [columns] * layers
    weights = [rng.normal(size=(n_out, n_in)) / np.sqrt(n_in) for n_in, n_out in zip(sizes, sizes[1:])]
    biases = [0.1 * rng.normal(size=n_out) for n_out in sizes[1:]]
    activations = ["tanh"] * (layers - 1) + ["linear"]
    X = rng.uniform(-1.0, 1.0, size=(rows, inputs))
    a = X
    for W, b, activation in zip(weights, biases, activations):
        a = a @ W.T + b
        a = np.tanh(a) if activation == "tanh" else a
    return network_from_arrays(f"cycle{columns}x{layers}", "regression", weights, biases, activations,
                               X=X, y=a, output_unit="V",
                               description=f"scan-cycle benchmark, {inputs} -> {layers} x {columns}")


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        return None


def machine() -> dict[str, Any]:
    """What the timings depend on: CPUs, the BLAS and its threads (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    blas = [{"library": info.get("internal_api"), "threads": info.get("num_threads")}
            for info in threadpool_info() if info.get("user_api") == "blas"]
    return {"cpus": os.cpu_count(), "blas": blas, "load_average_1min": _load_average()}


def percentiles_ms(seconds: Sequence[float], keys: tuple[str, ...] = ("p50", "p99", "max")) -> dict[str, float]:
    ms = 1e3 * np.asarray(seconds, dtype=float)
    if ms.size == 0:
        return {key: math.nan for key in keys}
    values = {"p50": np.percentile(ms, 50), "p99": np.percentile(ms, 99), "max": ms.max()}
    return {key: float(values[key]) for key in keys}


def _subscribed_nodes(names: list[str], layers: int, single: bool) -> list[str]:
    prefixes = [""] if single else [f"Networks.{name}." for name in names]
    return [f"ns={NAMESPACE_URI};s={prefix}AnalogNetwork.Layers.Layer{i}.{member}"
            for prefix in prefixes for i in range(layers) for member in SUBSCRIBED]


async def _serve_and_measure(run: CycleRun, seed: int, isolation: str, priority: int, blas_threads: int | None,
                             workdir: Path) -> dict[str, Any]:
    from plc_anna.server.app import PlcAnnaServer
    from plc_anna.server.config import ServerConfig

    network_keys = {"scan_ms": int(run.scan_ms), "samples_per_scan": SAMPLES_PER_SCAN, "age_rate": AGE_RATE}
    single = run.networks == 1
    if single:
        config = ServerConfig(config_dir=workdir, **network_keys, seed=seed, **_server_keys(run, isolation, priority))
    else:
        config = ServerConfig(config_dir=workdir, networks=[{"name": f"net{k}", **network_keys, "seed": seed + k}
                                                            for k in range(run.networks)],
                              **_server_keys(run, isolation, priority))
    names = [entry.name for entry in config.served_networks]
    given = {name: synthetic_network(run.columns, run.layers, seed=seed + k) for k, name in enumerate(names)}
    publish_s: list[float] = []
    async with PlcAnnaServer(config, networks=given, blas_threads=blas_threads) as server:
        clients = (Subscribers(config.endpoint, run.subscribers, run.publish_ms,
                               _subscribed_nodes(names, run.layers, single), workdir)
                   if run.subscribers else contextlib.nullcontext())
        async with clients:
            served = server.networks
            for network in served.values():
                network.publish = _timed(network.publish, publish_s)
            for network in served.values():   # the command (and the save after it) before the window opens
                await network.command("calibrate")
            before = {name: (network.stats, network.publish_dropped) for name, network in served.items()}
            publish_s.clear()
            server.host.trace(run.cycles)
            traces = await _window(server, run)
            passes = len(publish_s)
            after = {name: (network.stats, network.publish_dropped) for name, network in served.items()}
            interval = server.publish_interval_s
    return {"traces": traces, "before": before, "after": after, "publish_s": publish_s, "passes": passes,
            "interval_s": interval, "monitored_items": getattr(clients, "monitored_items", 0),
            "notifications": getattr(clients, "notifications", None)}


def _server_keys(run: CycleRun, isolation: str, priority: int) -> dict[str, Any]:
    return {"endpoint": f"opc.tcp://127.0.0.1:{free_port()}/plc-anna", "publish_ms": int(run.publish_ms),
            "scan_isolation": isolation, "scan_priority": priority,
            # every subscriber is a session, and the server's default cap (50) would refuse the rest
            "security": {"policies": ["None"], "allow_anonymous": True,
                         "max_sessions": max(50, run.subscribers + 10),
                         "max_connections": max(100, run.subscribers + 20)}}


def _timed(publish: Callable, into: list[float]) -> Callable:
    async def timed(report, publishing) -> None:
        start = time.perf_counter()
        await publish(report, publishing)
        into.append(time.perf_counter() - start)
    return timed


async def _window(server, run: CycleRun) -> dict:
    """Wait until every network traced ``run.cycles`` cycles; the traces."""
    timeout = run.cycles * run.scan_ms / 1e3 * 10 + 600.0   # a run that overruns scans slower than its period
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    poll = min(30.0, max(0.5, run.cycles * run.scan_ms / 1e3 / 20))
    while True:
        await asyncio.sleep(poll)
        traces = await server.host.traces()
        if all(len(trace.cycle_s) >= run.cycles for trace in traces.values()):
            return traces
        if loop.time() > end or server.host.failure:
            short = {name: len(trace.cycle_s) for name, trace in traces.items()}
            raise RuntimeError(f"the scans traced {short} of {run.cycles} cycles in {timeout:.0f} s "
                               f"({server.host.failure or 'too slow'})")


def _pool(traces: dict, field: str, cycles: int) -> list:
    return [value for trace in traces.values() for value in getattr(trace, field)[:cycles]]


async def _one_run(run: CycleRun, seed: int, isolation: str, priority: int, blas_threads: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="plc-anna-bench-") as directory:
        workdir = Path(directory)
        served = await _serve_and_measure(run, seed, isolation, priority, blas_threads, workdir)
        bare = await bare_asyncua_updates(
            run.networks, run.layers, run.columns, passes=max(1, min(BARE_PASSES, served["passes"] // run.networks)),
            interval_s=served["interval_s"], subscribers=run.subscribers, publish_ms=run.publish_ms,
            endpoint=f"opc.tcp://127.0.0.1:{free_port()}/bare", workdir=workdir, seed=seed)
    floor = numpy_floor(run.layers, run.columns, INPUTS, SAMPLES_PER_SCAN, seed=seed)
    traces, cycles = served["traces"], run.cycles
    compute, states = _pool(traces, "compute_s", cycles), _pool(traces, "state", cycles)
    overran = [(name, k, round(1e3 * trace.compute_s[k], 3), round(1e3 * trace.cycle_s[k], 3))
               for name, trace in traces.items() for k, late in enumerate(trace.overran[:cycles]) if late]
    by_state = {}
    for name in dict.fromkeys(states):
        picked = [t for t, s in zip(compute, states) if s == name]
        by_state[name] = {"cycles": len(picked), **percentiles_ms(picked)}
    before, after = served["before"], served["after"]
    return {
        **{key: value for key, value in asdict(run).items() if key != "publish_ms"},
        "scan_ms": float(run.scan_ms),
        "cycles_total": len(compute),
        "overruns": len(overran),
        "compute_ms": percentiles_ms(compute),
        "lateness_ms": percentiles_ms(_pool(traces, "lateness_s", cycles)),
        "server_update_ms": percentiles_ms(served["publish_s"], ("p50", "p99")),
        "bare_asyncua_update_ms": percentiles_ms(bare["pass_s"], ("p50", "p99")),
        "monitored_items": int(served["monitored_items"]),
        "publish_dropped": int(sum(after[name][1] - before[name][1] for name in after)),
        "publish_ms": float(run.publish_ms),
        "publish_passes": served["passes"],
        "publish_interval_ms": 1e3 * served["interval_s"],
        "notifications": served["notifications"],
        "numpy_floor_ms": percentiles_ms(floor),
        "inputs": INPUTS,
        "samples_per_scan": SAMPLES_PER_SCAN,
        "age_rate": AGE_RATE,
        "read_ms": percentiles_ms(_pool(traces, "read_s", cycles)),
        "work_ms": percentiles_ms(_pool(traces, "cycle_s", cycles)),
        "server_update_max_ms": percentiles_ms(served["publish_s"], ("max",))["max"],
        "bare_asyncua_update_max_ms": percentiles_ms(bare["pass_s"], ("max",))["max"],
        "bare_asyncua_monitored_items": bare["monitored_items"],
        "compute_by_state_ms": by_state,
        "overrun_cycles": [list(item) for item in overran[:100]],
        "overruns_before": int(sum(before[name][0].overruns for name in before)),
        "failures": int(sum(after[name][0].failures - before[name][0].failures for name in after)),
        "last_error": next((after[name][0].last_error for name in after if after[name][0].last_error), ""),
        "scheduling": sorted({after[name][0].priority for name in after}),
    }


def check_targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target of :data:`TARGETS` with what the matching run measured and whether it was met."""
    out = []
    for target in TARGETS:
        entry: dict[str, Any] = {"target": target.text, **asdict(target.run),
                                 "compute_p99_limit_ms": target.compute_p99_ms}
        run = next((r for r in runs if target.matches(r)), None)
        if run is None:
            out.append({**entry, "met": None, "why": "not run"})
            continue
        holds = run["overruns"] == 0 and run["failures"] == 0
        if target.compute_p99_ms is not None:
            holds = holds and run["compute_ms"]["p99"] <= target.compute_p99_ms
        entry.update(cycles_measured=run["cycles"], compute_p99_ms=run["compute_ms"]["p99"],
                     overruns=run["overruns"], failures=run["failures"], monitored_items=run["monitored_items"])
        if run["cycles"] < target.run.cycles:
            out.append({**entry, "met": None, "holds_in_shorter_run": holds,
                        "why": f"the run had {run['cycles']} of the {target.run.cycles} cycles the target asks"})
        elif run["monitored_items"] < target.min_monitored_items:
            out.append({**entry, "met": None, "holds_with_fewer_items": holds,
                        "why": f"the run served {run['monitored_items']} of the {target.min_monitored_items} "
                               "monitored items the target asks"})
        else:
            out.append({**entry, "met": holds, "why": "measured"})
    return out


def run_cycle_bench(runs: Sequence[CycleRun], seed: int = 0, isolation: str = "process", priority: int = 40,
                    blas_threads: int | None = 1,
                    on_progress: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Measure every run (see the module docstring); the baselines in the same run.

    Parameters
    ----------
    runs
        The runs, in order.
    seed
        Seed of the networks, the simulated devices and the process sampling.
    isolation, priority
        The server keys ``scan_isolation`` and ``scan_priority``.
    blas_threads
        BLAS threads in the scan engine (None: BLAS's own default).
    on_progress
        Called with a line of text after each run.

    Returns
    -------
    dict
        ``{"runs": [...], "targets": [...], "machine": {...}, "settings": {...}}``.
    """
    runs = list(runs)
    for run in runs:
        if min(run.columns, run.layers, run.networks, run.cycles) < 1 or run.subscribers < 0:
            raise ValueError(f"columns, layers, networks and cycles must be at least 1, got {run}")
        if not float(run.scan_ms).is_integer() or not 5 <= run.scan_ms <= 10000:
            raise ValueError(f"the scan period is a whole number of milliseconds within 5..10000, got {run.scan_ms!r}")
        if not 10 <= run.publish_ms <= 10000:
            raise ValueError(f"the publishing interval must be within 10..10000 ms, got {run.publish_ms!r}")
    context = machine()
    results = []
    for run in runs:
        load_before = _load_average()
        result = asyncio.run(_one_run(run, seed, isolation, priority, blas_threads))
        result["load_average_1min"] = {"before": load_before, "after": _load_average()}
        results.append(result)
        if on_progress is not None:
            on_progress(f"{run.networks} x {run.layers} x {run.columns} columns, {run.subscribers} subscribers, "
                        f"{run.scan_ms:g} ms: compute p99 {result['compute_ms']['p99']:.3f} ms, "
                        f"{result['overruns']} overruns in {result['cycles_total']} cycles")
    return {"runs": results, "targets": check_targets(results), "machine": context,
            "settings": {"isolation": isolation, "scan_priority": priority, "blas_threads": blas_threads,
                         "seed": seed}}
