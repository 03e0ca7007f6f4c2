"""The demo behind ``plc-anna demo``: ten years of drift, compensated as they happen.

A simulated network is programmed, fingerprinted a minute later, then aged
scan by scan on a log-time schedule to ten years while the compensator runs.
At each checkpoint the held-out data are scored uncorrected and corrected
(the last layer's correction applied as the PLC would). The server and the
PLC link join this demo as they land.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from plc_anna.bench.streams import draw, split
from plc_anna.device.network import digital_forward, load_network, task_metric
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.loop import ScanLoop, apply_device_corrections
from plc_anna.units import format_age, parse_ages

CHECKPOINTS = "1min,1h,1d,30d,1y,10y"
SCAN_SAMPLES = 64


def run_demo(net: str = "thermocouple", device: str = "pcm", seed: int = 0, scans: int = 2400,
             checkpoints: Sequence[float] | None = None,
             on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Age ``net`` through the checkpoints in ``scans`` scans; one row per checkpoint."""
    checkpoints = list(checkpoints or parse_ages(CHECKPOINTS))
    if scans < 10 * len(checkpoints):
        raise ValueError(f"give at least {10 * len(checkpoints)} scans for {len(checkpoints)} checkpoints")
    network = load_network(net)
    data = split(network)
    ideal = digital_forward(network, data.eval_X)
    sim = SimulatedNetwork(network, device, seed=seed)
    loop = ScanLoop(sim)
    rng = np.random.default_rng(seed)
    start_age = 60.0
    sim.set_age(start_age)
    for _ in range(3 * -(-loop.compensator.layers[0].config.calibration_samples // SCAN_SAMPLES)):
        loop.scan(draw(data, "nominal", SCAN_SAMPLES, rng))  # the t0 fingerprint and first correction
    per_leg = scans // len(checkpoints)
    rows = []
    previous = start_age
    for checkpoint in checkpoints:
        events_before = len(loop.events)
        for age in np.geomspace(max(previous, start_age), checkpoint, per_leg):
            sim.set_age(float(age))
            loop.scan(draw(data, "nominal", SCAN_SAMPLES, rng))
        previous = checkpoint
        apply_device_corrections(sim, [(np.ones(layer.n_out), np.zeros(layer.n_out)) for layer in network.layers])
        raw = sim.infer(data.eval_X)
        corrected = loop.corrected(data.eval_X)
        last = loop.compensator.layers[-1]
        gain, offset = last.correction()
        rows.append({
            "age_s": checkpoint,
            "age": format_age(checkpoint),
            "states": [layer.state.name for layer in loop.compensator.layers],
            "distance": last.distance,
            "gain_min": float(gain.min()), "gain_max": float(gain.max()),
            "metric_name": network.metric_name,
            "unit": network.output_unit,
            "metric_uncorrected": task_metric(network, raw, data.eval_y),
            "metric_corrected": task_metric(network, corrected, data.eval_y),
            "rmse_uncorrected": float(np.sqrt(np.mean((raw - ideal) ** 2))),
            "rmse_corrected": float(np.sqrt(np.mean((corrected - ideal) ** 2))),
            "events": [f"L{e.layer} {e.kind.value}" for e in loop.events[events_before:]],
        })
        if on_row is not None:
            on_row(rows[-1])
    return rows
