"""``plc-anna bench detect``: false alarms, faults and detection delays of three drift detectors, same streams.

Per stream (:mod:`plc_anna.bench.processes`), a fresh simulated network (same
device seed for every stream) sits at an age of one day. The detectors are
calibrated on the stream's calibration scans, then ``scans`` scans of
``samples_per_scan`` live samples run through the network and three detectors
watch the same traces:

- ``plc_anna``: one :class:`~plc_anna.compensator.LayerCompensator` per layer,
  as a server runs it (DAC model, pooled windows, coverage that grows), with
  nothing compensated: a ``drift_detected`` event is an alarm, after which
  every layer goes back to monitoring its fingerprint (a rollback: nothing is
  estimated, nothing applied); a ``fault`` event is counted and handled the
  same way;
- ``page_hinkley`` and ``adwin``: river's ``PageHinkley()`` and ``ADWIN()``
  with river's defaults, one per output column of every layer, fed the batch
  mean of that column's raw output; the stream alarms when any of them alarms
  (river's detectors reset themselves). They are warmed up on the calibration
  scans. They have no notion of a fault (``faults`` is None).

Per detector and stream, ``false_alarms_per_1e5`` is the number of alarm
scans before ``change_at`` (drift streams) or in the whole stream (others),
per 1e5 scans counted; ``faults`` the fault events in the same span;
``delay_scans`` is the first alarm scan at or after ``change_at`` minus
``change_at`` (None if never detected, and for streams without drift).

Per drift stream, ``delay_bound_scans`` is the CUSUM information bound: the
scans after the change until the Kullback–Leibler information the change
puts into the data, ``Σ_scans Σ_samples Σ_columns (Δy)² / (2 σ²)`` (``Δy`` the
change of each expected output, from two twins of the device without read
noise and ADC rounding, which the noise dithers; ``σ²`` each column's noise
variance, rounding included), reaches ``ln(arl0)``: no detector with
that false-alarm rate is faster on average. For a step it is
``ln(arl0) / KL per scan``; a delay is read as a ratio to it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from plc_anna.bench import bench_module, pyplot
from plc_anna.bench.processes import BASE_AGE_S, KINDS, STREAMS, plan
from plc_anna.bench.streams import Split, split
from plc_anna.compensator import CompensatorConfig, LayerCompensator
from plc_anna.device.network import load_network
from plc_anna.device.params import load_device_params
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.drift.states import DriftState, EventKind

DETECTORS = ("plc_anna", "page_hinkley", "adwin")
#: The issue's targets.
DELAY_TARGETS = {"gain_step_2pct": 50, "gain_step_1pct": 500, "offset_step": 50}
BOUND_FACTOR = 3.0
TARGET_SCANS = 100_000
#: Scans after a step over which its information per scan is averaged.
BOUND_SCANS = 32


def _river_drift():
    """river's ``drift`` module, or a ValueError saying how to install it."""
    return bench_module("river.drift", "the detection benchmark compares against river's detectors")


def _feed(detectors: list[Any], values: list[float]) -> bool:
    """Update every river detector with its value; whether any of them detected drift."""
    alarm = False
    for detector, value in zip(detectors, values):
        detector.update(value)
        alarm = alarm or detector.drift_detected
    return alarm


def _column_means(traces) -> list[float]:
    return np.concatenate([t.outputs.mean(axis=0) for t in traces]).tolist()


class _Detectors:
    """plc-anna's layers and river's per-column detectors, calibrated on the stream's calibration scans."""

    def __init__(self, sim: SimulatedNetwork, calibration: list[np.ndarray], arl0: float) -> None:
        drift = _river_drift()
        layers = sim.network.layers
        config = CompensatorConfig(calibration_samples=sum(len(x) for x in calibration), arl0=arl0, predictive=False)
        self.layers = [LayerCompensator(i, layer.weights, layer.bias, config, converters)
                       for i, (layer, converters) in enumerate(zip(layers, sim.converters()))]
        traces = [sim.trace(x) for x in calibration]
        for scan in traces:
            for compensator, t in zip(self.layers, scan):
                compensator.update(t.inputs, t.outputs, age_s=sim.age_s)
        for compensator in self.layers:
            if compensator.state is DriftState.CALIBRATING:
                raise RuntimeError(f"layer {compensator.index} did not calibrate on {len(calibration)} scans")
            compensator.commit()   # judge from here on; the calibration's own correction is not this benchmark's
        columns = sum(layer.n_out for layer in layers)
        self.river = {"page_hinkley": [drift.PageHinkley() for _ in range(columns)],
                      "adwin": [drift.ADWIN() for _ in range(columns)]}
        for scan in traces:
            means = _column_means(scan)
            for detectors in self.river.values():
                _feed(detectors, means)

    def scan(self, traces, age_s: float) -> tuple[dict[str, bool], bool]:
        """Feed one scan to every detector; (alarm per detector, plc-anna fault)."""
        kinds = {event.kind for compensator, t in zip(self.layers, traces)
                 for event in compensator.update(t.inputs, t.outputs, age_s=age_s)}
        alarm, fault = EventKind.DRIFT_DETECTED in kinds, EventKind.FAULT in kinds
        if alarm or fault:
            for compensator in self.layers:
                compensator.rollback()      # back to monitoring, nothing estimated or applied
        means = _column_means(traces)
        alarms = {"plc_anna": alarm or fault}
        alarms.update({name: _feed(detectors, means) for name, detectors in self.river.items()})
        return alarms, fault

    @property
    def noise_var(self) -> list[np.ndarray]:
        return [layer.fingerprint.noise_var for layer in self.layers]


class _InformationBound:
    """The KL information a hardware change puts into each scan, from two noiseless twins of the device."""

    def __init__(self, network, params, seed: int, noise_var: list[np.ndarray], arl0: float) -> None:
        # The expected output, noise-free and unrounded: read noise dithers the ADC, so a change smaller than
        # its step still moves the mean of the rounded outputs by about its own size.
        quiet = dataclasses.replace(params, output_noise_std=0.0, adc_bits=0)
        self.before, self.after = (SimulatedNetwork(network, quiet, seed=seed) for _ in range(2))
        for twin in (self.before, self.after):
            twin.set_age(BASE_AGE_S)
        self.noise_var, self.target = noise_var, math.log(arl0)
        self.information: list[float] = []

    def add(self, inputs: np.ndarray) -> None:
        kl = sum(float(np.sum((b.outputs - a.outputs) ** 2 / (2.0 * v)))
                 for a, b, v in zip(self.before.trace(inputs), self.after.trace(inputs), self.noise_var))
        self.information.append(kl)

    @property
    def done(self) -> bool:
        return sum(self.information) >= self.target

    def bound_scans(self) -> float | None:
        """Scans after the change until the information reaches ``ln(arl0)`` (a step: extrapolated)."""
        cumulative = np.cumsum(self.information)
        if cumulative.size == 0 or cumulative[-1] <= 0:
            return None
        if cumulative[-1] >= self.target:
            k = int(np.searchsorted(cumulative, self.target))
            before = cumulative[k - 1] if k > 0 else 0.0
            return float(k + (self.target - before) / max(cumulative[k] - before, 1e-300))
        return float(self.target / (cumulative[-1] / cumulative.size))   # a step: KL per scan is constant


def _metrics(alarms: np.ndarray, faults: np.ndarray | None, change_at: int | None) -> dict[str, Any]:
    counted = alarms if change_at is None else alarms[:change_at]
    false = int(counted.sum())
    delay = None
    if change_at is not None:
        after = np.flatnonzero(alarms[change_at:])
        delay = int(after[0]) if after.size else None
    fault_count = None if faults is None else int((faults if change_at is None else faults[:change_at]).sum())
    return {"false_alarms_per_1e5": false * 1e5 / counted.size, "delay_scans": delay, "false_alarms": false,
            "faults": fault_count}


def run_stream(name: str, index: int, network, params, data: Split, scans: int, samples_per_scan: int,
               seed: int, arl0: float) -> dict[str, Any]:
    """One stream: calibrate, run ``scans`` scans, score every detector (see the module docstring)."""
    rng = np.random.default_rng([seed, index])
    sim = SimulatedNetwork(network, params, seed=seed)
    sim.set_age(BASE_AGE_S)
    stream = plan(name, sim, data, rng, scans, samples_per_scan)
    detectors = _Detectors(sim, stream.calibration, arl0)
    bound = None
    if stream.change_at is not None:
        bound = _InformationBound(network, params, seed, detectors.noise_var, arl0)
    alarms = np.zeros((len(DETECTORS), scans), dtype=bool)
    faults = np.zeros(scans, dtype=bool)
    for i, x in zip(range(scans), stream.scans):
        stream.event(i, sim)
        if bound is not None and i >= stream.change_at and not bound.done and (
                name == "pcm_log_age" or i < stream.change_at + BOUND_SCANS):
            stream.event(i, bound.after)    # the same change, on the noiseless twin
            bound.add(x)
        fired, faults[i] = detectors.scan(sim.trace(x), sim.age_s)
        alarms[:, i] = [fired[d] for d in DETECTORS]
    scored = {d: _metrics(alarms[k], faults if d == "plc_anna" else None, stream.change_at)
              for k, d in enumerate(DETECTORS)}
    row = {"name": name, "kind": KINDS[name], "change": stream.change, "change_at": stream.change_at,
           "scans": scans, "samples_per_scan": samples_per_scan, "detectors": scored}
    if bound is not None:
        row["delay_bound_scans"] = bound.bound_scans()
    return row


def detect_benchmark(scans: int = TARGET_SCANS, samples_per_scan: int = 64, seed: int = 0, arl0: float = 1e6,
                     net: str = "digits", device: str = "pcm", progress=None, *,
                     streams: Sequence[str] = STREAMS, workers: int | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready report (see the module docstring).

    ``streams`` selects a subset of :data:`STREAMS`. Streams run in ``workers``
    processes (default: one per CPU; 1 runs them here). Every stream has its
    own seed, so the report does not depend on ``workers``. Where processes
    are spawned rather than forked (macOS, Windows), call this under
    ``if __name__ == "__main__":``.
    """
    if isinstance(scans, bool) or not isinstance(scans, (int, np.integer)) or scans < 20:
        raise ValueError(f"scans must be an integer >= 20 (drift starts at scans // 10), got {scans!r}")
    if isinstance(samples_per_scan, bool) or not isinstance(samples_per_scan, (int, np.integer)) \
            or samples_per_scan < 4:
        raise ValueError(f"samples_per_scan must be an integer >= 4, got {samples_per_scan!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    unknown = [s for s in streams if s not in STREAMS]
    if unknown or not streams:
        raise ValueError(f"unknown or no streams {unknown}; valid: {', '.join(STREAMS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                or workers < 1):
        raise ValueError(f"workers must be an integer >= 1 or None (one per CPU), got {workers!r}")
    _river_drift()
    start = time.perf_counter()
    network = load_network(net)
    params = load_device_params(device)
    data = split(network)
    jobs = {name: (name, STREAMS.index(name), network, params, data, int(scans), int(samples_per_scan), int(seed),
                   arl0) for name in streams}
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    done: dict[str, dict[str, Any]] = {}
    if workers == 1:
        for name, job in jobs.items():
            done[name] = run_stream(*job)
            if progress is not None:
                progress(f"{network.name} / {device} / {name}")
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run_stream, *job): name for name, job in jobs.items()}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                if progress is not None:
                    progress(f"{network.name} / {device} / {futures[future]}")
    rows = [done[name] for name in jobs]
    return {"net": network.name, "device": str(device), "arl0": float(arl0), "streams": rows,
            "targets": targets(rows), "workers": workers, "runtime_s": time.perf_counter() - start}


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target of the issue, checked on the measured numbers: ``met`` is True, False, or None when
    the run did not measure it (a stream not run, or fewer than 10⁵ scans)."""
    out = []
    quiet = [row for row in rows if row["kind"] != "drift"]
    for row in quiet:
        d = row["detectors"]["plc_anna"]
        enough = row["scans"] >= TARGET_SCANS
        clean = d["false_alarms"] == 0 and d["faults"] == 0
        out.append({"target": f"no false alarm and no fault in 1e5 scans: {row['name']} ({row['kind']})",
                    "measured": f"{d['false_alarms']} false alarms, {d['faults']} faults in {row['scans']} scans",
                    "met": clean if enough else (False if not clean else None)})
    by_name = {row["name"]: row for row in rows}
    for name, limit in DELAY_TARGETS.items():
        row = by_name.get(name)
        delay = None if row is None else row["detectors"]["plc_anna"]["delay_scans"]
        out.append({"target": f"{name} detected within {limit} scans",
                    "measured": "not run" if row is None else ("not detected" if delay is None else f"{delay} scans"),
                    "met": None if row is None else (delay is not None and delay <= limit)})
    for row in rows:
        if row["kind"] != "drift":
            continue
        delay, bound = row["detectors"]["plc_anna"]["delay_scans"], row.get("delay_bound_scans")
        measured = (f"delay {delay} scans, bound {bound:.3g} scans" if delay is not None and bound is not None
                    else f"delay {delay}, bound {bound}")
        out.append({"target": f"{row['name']}: delay within {BOUND_FACTOR:g}x its information bound",
                    "measured": measured,
                    "met": None if bound is None else (delay is not None and delay <= BOUND_FACTOR * bound)})
    return out


def plot_detect(report: dict[str, Any], path: str | Path) -> None:
    """False alarms on the no-drift streams and delays on the drift streams, per detector (needs matplotlib)."""
    plt = pyplot()

    panels = [([s for s in report["streams"] if s["kind"] != "drift"], "false_alarms_per_1e5",
               "false alarms per 1e5 scans", "no drift: every alarm is false"),
              ([s for s in report["streams"] if s["kind"] == "drift"], "delay_scans",
               "detection delay [scans]", "drift: delay after the change")]
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    width = 0.8 / len(DETECTORS)
    for ax, (streams, key, ylabel, title) in zip(axes, panels):
        values = [[s["detectors"][d][key] for s in streams] for d in DETECTORS]
        finite = [v for row in values for v in row if v is not None and v > 0]
        top = 3 * max(finite) if finite else 10.0  # the height of 'not detected'
        floor = 0.5
        for k, (detector, row) in enumerate(zip(DETECTORS, values)):
            x = np.arange(len(streams)) + (k - (len(DETECTORS) - 1) / 2) * width
            heights = [top if v is None else max(v, floor) for v in row]
            bars = ax.bar(x, heights, width, label=detector, color=f"C{k}")
            for bar, value in zip(bars, row):
                if value is None:
                    bar.set(hatch="//", alpha=0.35)
                    text = "not detected"
                else:
                    text = f"{value:.0f}"
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), text, ha="center", va="bottom",
                        fontsize=6, rotation=90)
        if key == "delay_scans":
            bounds = [s.get("delay_bound_scans") for s in streams]
            ax.scatter(np.arange(len(streams)), [max(b or floor, floor) for b in bounds], marker="_", s=400,
                       color="k", label="information bound", zorder=5)
        ax.set(yscale="log", ylim=(floor, top * 20), ylabel=ylabel, title=title)
        ax.set_xticks(np.arange(len(streams)), [s["name"] for s in streams], rotation=20, ha="right", fontsize=8)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"drift detection on {report['net']} / {report['device']} (ARL0 {report['arl0']:.0e} windows)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
