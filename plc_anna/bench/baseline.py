"""The floors the scan-cycle benchmark compares the server with, measured in the same run.

- :func:`bare_asyncua_updates`: a plain ``asyncua.Server`` (no security, no
  model, no scan) writing what the server publishes for the same networks,
  layers and columns (the :data:`BARE_ARRAYS` as Double arrays converted from
  numpy, the :data:`BARE_SCALARS`, one timestamped DataValue each) at the same
  interval, with the same subscriber sessions monitoring it: what asyncua
  itself needs to publish that address space to those clients.
- :func:`numpy_floor`: one network's per-scan statistics computed in numpy with
  every layer stacked in one array and no Python loop over layers or columns:
  the reference response of the scan's inputs (``X Wᵀ + b``), the means and
  variances of reference and observed outputs, the Fisher–Rao distance per
  column, the layer distances and a CUSUM step. Every update reads its batch
  at least once; this is what it costs when it does nothing more.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from asyncua import Server, ua

from plc_anna.bench.subscribers import Subscribers

#: What the bare server writes per layer each pass: the layer arrays of the server's publish ...
BARE_ARRAYS = ("Gain", "Offset", "ColumnDistance", "TransportCost", "GainTrendPerDecade")
#: ... its scalars per layer ...
BARE_LAYER_SCALARS = (("LayerDistance", ua.VariantType.Double), ("DetectorStatistic", ua.VariantType.Double),
                      ("DetectorThreshold", ua.VariantType.Double), ("DriftState", ua.VariantType.Int32),
                      ("SampleCount", ua.VariantType.UInt64), ("RemainingLife", ua.VariantType.Double))
#: ... and per network (age, temperature, counters, diagnostics).
BARE_SCALARS = (("Age", ua.VariantType.Double), ("Temperature", ua.VariantType.Double),
                ("CommitCounter", ua.VariantType.UInt32), ("Heartbeat", ua.VariantType.UInt32),
                ("ScanPeriod", ua.VariantType.Double), ("LastCycleTime", ua.VariantType.Double),
                ("P99CycleTime", ua.VariantType.Double), ("MaxCycleTime", ua.VariantType.Double),
                ("DeadlineLateness", ua.VariantType.Double), ("Overruns", ua.VariantType.UInt64),
                ("PublishInterval", ua.VariantType.Double), ("PublishDropped", ua.VariantType.UInt64))
#: What each subscriber session monitors per layer (the benchmark's SCADA load).
SUBSCRIBED = ("LayerDistance", "DriftState", "Gain", "Offset")
BARE_URI = "urn:plc-anna:bench:bare"


async def bare_asyncua_updates(networks: int, layers: int, columns: int, passes: int, interval_s: float,
                               subscribers: int, publish_ms: float, endpoint: str, workdir: Path,
                               seed: int = 0) -> dict:
    """Time ``passes`` write passes of the bare server, ``interval_s`` apart, with ``subscribers`` sessions.

    Returns ``{"pass_s": [...], "monitored_items": n, "notifications": n}``: ``pass_s`` holds the time of
    each network's writes in each pass (as the server's publishing is timed, one network at a time).
    """
    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace(BARE_URI)
    root = await server.nodes.objects.add_object(ua.NodeId("Bare", idx), ua.QualifiedName("Bare", idx))
    D = ua.VariantType.Double
    rng = np.random.default_rng([seed, networks, layers, columns])
    payloads, subscribed = [], []
    for k in range(networks):
        arrays, scalars = [], []
        for name, vtype in BARE_SCALARS:
            scalars.append((await _variable(root, idx, f"N{k}.{name}", vtype, None), vtype))
        for i in range(layers):
            for name in BARE_ARRAYS:
                arrays.append(await _variable(root, idx, f"N{k}.L{i}.{name}", D, columns))
                if name in SUBSCRIBED:
                    subscribed.append(f"ns={BARE_URI};s=N{k}.L{i}.{name}")
            for name, vtype in BARE_LAYER_SCALARS:
                scalars.append((await _variable(root, idx, f"N{k}.L{i}.{name}", vtype, None), vtype))
                if name in SUBSCRIBED:
                    subscribed.append(f"ns={BARE_URI};s=N{k}.L{i}.{name}")
        values = rng.normal(size=(len(arrays), columns))
        scalar_values = [float(v) if vtype == D else int(abs(v) * 1000) % 100
                         for v, (_, vtype) in zip(rng.normal(size=len(scalars)), scalars)]
        payloads.append((list(zip(arrays, values)), [(nodeid, vtype, value) for (nodeid, vtype), value
                                                      in zip(scalars, scalar_values)]))
    write = server.write_attribute_value
    times: list[float] = []
    async with server:
        clients = Subscribers(endpoint, subscribers, publish_ms, subscribed, workdir) if subscribers else None
        if clients is not None:
            await clients.__aenter__()
        try:
            loop = asyncio.get_running_loop()
            for _ in range(passes):
                started = loop.time()
                for arrays, scalars in payloads:
                    start = time.perf_counter()
                    now = datetime.now(UTC)
                    for nodeid, array in arrays:
                        await write(nodeid, ua.DataValue(ua.Variant(array.tolist(), D), SourceTimestamp=now,
                                                         ServerTimestamp=now))
                    for nodeid, vtype, value in scalars:
                        await write(nodeid, ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=now,
                                                         ServerTimestamp=now))
                    times.append(time.perf_counter() - start)
                await asyncio.sleep(max(0.0, started + interval_s - loop.time()))
        finally:
            if clients is not None:
                await clients.__aexit__(None, None, None)
    return {"pass_s": times, "monitored_items": 0 if clients is None else clients.monitored_items,
            "notifications": None if clients is None else clients.notifications}


async def _variable(parent, idx: int, path: str, vtype: ua.VariantType, length: int | None) -> ua.NodeId:
    value = ua.Variant([0.0] * length, vtype) if length is not None else \
        ua.Variant(0.0 if vtype == ua.VariantType.Double else 0, vtype)
    node = await parent.add_variable(ua.NodeId(path, idx), ua.QualifiedName(path, idx), value)
    return node.nodeid


def numpy_floor(layers: int, columns: int, inputs: int, samples: int, repeats: int = 2000,
                seed: int = 0) -> list[float]:
    """Per-update times (s) of one network's per-scan statistics, stacked over layers (see the module docstring)."""
    rng = np.random.default_rng([seed, layers, columns])
    shapes = [(1, inputs)] + ([(layers - 1, columns)] if layers > 1 else [])
    groups = [(rng.normal(size=(n, samples, n_in)), rng.normal(size=(n, columns, n_in)) / np.sqrt(n_in),
               rng.normal(size=(n, 1, columns)), rng.normal(size=(n, samples, columns)))
              for n, n_in in shapes]
    noise = np.full(columns, 1e-3)
    cusum = np.zeros(layers)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        distances = []
        for X, W, b, Y in groups:
            predicted = X @ W.transpose(0, 2, 1) + b
            mu_ref, var_ref = predicted.mean(axis=1), predicted.var(axis=1) + noise
            mu_obs, var_obs = Y.mean(axis=1), Y.var(axis=1) + noise
            s_ref, s_obs = np.sqrt(var_ref), np.sqrt(var_obs)
            d = np.sqrt(2.0) * np.arccosh(1.0 + ((mu_ref - mu_obs) ** 2 / 2 + (s_ref - s_obs) ** 2)
                                          / (2.0 * s_ref * s_obs))
            distances.append(np.sqrt(np.sum(d * d, axis=1)))
        layer_distance = np.concatenate(distances)
        cusum = np.maximum(0.0, cusum + layer_distance ** 2 - 1.0)
        times.append(time.perf_counter() - start)
    return times
