"""Speed probes reported by ``plc-anna bench compensation``: the simulator and the compensator.

Timings are wall-clock per call on this machine, p50/p99/max over many
calls after a warm-up; they move with machine load, quality numbers do not.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from plc_anna.compensator import CompensatorConfig, LayerCompensator
from plc_anna.device.network import network_from_arrays
from plc_anna.device.simulated import SimulatedNetwork

SCAN_SAMPLES = 64


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = 1e3 * np.array(seconds)
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max())}


def forward_speed(columns: int = 256, samples: int = SCAN_SAMPLES, calls: int = 2000, seed: int = 0,
                  device: str = "pcm") -> dict[str, Any]:
    """Time one simulated forward pass of a ``columns`` x ``columns`` layer on a batch of ``samples``."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(columns, columns)) / np.sqrt(columns)
    X = rng.normal(size=(4 * samples, columns))
    network = network_from_arrays("speed", "regression", [weights], [np.zeros(columns)], ["linear"],
                                  X=X, y=X @ weights.T)
    sim = SimulatedNetwork(network, device, seed=seed)
    sim.set_age(86400.0)
    batch = X[:samples]
    sim.infer(batch)  # conductances at this age are computed once, here
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        sim.infer(batch)
        times.append(time.perf_counter() - start)
    return {"columns": columns, "samples": samples, "calls": calls, "forward_ms": _percentiles(times)}


def layer_update_speed(columns: int = 256, samples: int = SCAN_SAMPLES, updates: int = 2000,
                       seed: int = 0) -> dict[str, Any]:
    """Time one compensator update of a ``columns`` x ``columns`` layer in the monitoring state."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(columns, columns)) / np.sqrt(columns)
    programmed = weights * (1 + 0.05 * rng.normal(size=weights.shape))
    layer = LayerCompensator(0, weights, np.zeros(columns),
                             CompensatorConfig(calibration_samples=max(4096, 16 * columns)))

    def batch():
        x = rng.normal(size=(samples, columns))
        return x, x @ programmed.T + 0.01 * rng.normal(size=(samples, columns))

    while layer.state.name != "NOMINAL" or layer.pending is not None:
        layer.update(*batch())
    batches = [batch() for _ in range(updates)]
    times = []
    for x, y in batches:
        start = time.perf_counter()
        layer.update(x, y)
        times.append(time.perf_counter() - start)
    return {"columns": columns, "samples_per_scan": samples, "updates": updates, "update_ms": _percentiles(times)}
