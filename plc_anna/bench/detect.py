"""``plc-anna bench detect``: false alarms and detection delays of three drift detectors, same streams.

Per stream, a fresh simulated network (same device seed for every stream)
sits at an age of one day. Its fingerprint is calibrated from 8192 nominal
live samples, streamed in scans through ``trace``: per layer, the joint
moments of ``[inputs, raw outputs]`` give a :class:`~plc_anna.stats.reference.Fingerprint`
and one :class:`~plc_anna.drift.monitor.DriftMonitor`. Nothing is
compensated: every correction stays the identity. Then ``scans`` scans of
``samples_per_scan`` live samples run through the network and three
detectors watch the same traces:

- ``plc_anna``: one :class:`DriftMonitor` per layer on the scan's inputs and
  raw outputs; the stream alarms when any layer's monitor alarms, and every
  monitor is then reset;
- ``page_hinkley`` and ``adwin``: river's ``PageHinkley()`` and ``ADWIN()``
  with river's defaults, one per output column of every layer, fed the
  batch mean of that column's raw output; the stream alarms when any of
  them alarms (river's detectors reset themselves). They are warmed up on
  the calibration scans.

Streams (kind in brackets):

- ``noise`` [noise]: nominal inputs, nothing changes;
- ``mean_shift_2sigma`` [process_shift]: every input feature moved by two
  of its standard deviations in the live pool;
- ``variance_x2`` [process_shift]: every feature's deviation from its pool
  mean scaled by sqrt(2);
- ``class_mix`` [process_shift]: the ``process_shift`` scenario of
  :mod:`plc_anna.bench.streams` (another class mix);
- ``gain_step_1pct``/``2pct``/``5pct`` [drift]: at scan ``change_at =
  scans // 10``, the gain of a random tenth (at least one) of the columns of
  every layer drops by 1/2/5 % (``inject_fault``, at the ADC input);
- ``offset_step`` [drift]: the same columns move by 0.5 % of the layer's
  ADC full scale;
- ``pcm_log_age`` [drift]: from ``change_at`` on, the age grows
  geometrically from one day to two days at the last scan: genuine PCM
  conductance and periphery drift.

The process shifts act from scan 0 and are clipped per feature to the live
pool's [min, max]: a plant cannot leave its sensors' range. The hardware
never changes in them, so any alarm there is false.

Per detector and stream, ``false_alarms_per_1e5`` is the number of alarm
scans before ``change_at`` (drift streams) or in the whole stream (others),
per 1e5 scans counted; ``delay_scans`` is the first alarm scan at or after
``change_at`` minus ``change_at`` (``None`` if never detected, and for
streams without drift). ``false_alarms`` is the raw count; for
``plc_anna``, ``false_alarms_by_layer`` counts the false-alarm scans on
which each layer's monitor had alarmed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from plc_anna.bench import pyplot
from plc_anna.bench.streams import Split, draw, split
from plc_anna.device.network import load_network
from plc_anna.device.params import load_device_params
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.drift.monitor import DEFAULT_MODEL_ERROR, DriftMonitor
from plc_anna.stats.moments import RunningMoments
from plc_anna.stats.reference import fit_fingerprint

DETECTORS = ("plc_anna", "page_hinkley", "adwin")
STREAMS = ("noise", "mean_shift_2sigma", "variance_x2", "class_mix", "gain_step_1pct", "gain_step_2pct",
           "gain_step_5pct", "offset_step", "pcm_log_age")
KINDS = {"noise": "noise", "mean_shift_2sigma": "process_shift", "variance_x2": "process_shift",
         "class_mix": "process_shift", "gain_step_1pct": "drift", "gain_step_2pct": "drift",
         "gain_step_5pct": "drift", "offset_step": "drift", "pcm_log_age": "drift"}
GAIN_STEPS = {"gain_step_1pct": 0.99, "gain_step_2pct": 0.98, "gain_step_5pct": 0.95}
BASE_AGE_S = 86400.0
CALIBRATION_SAMPLES = 8192
OFFSET_FRACTION = 0.005     # of the layer's ADC full scale
COLUMN_FRACTION = 0.1       # of the columns of every layer that a gain or offset step hits
TARGET_DELAY_SCANS = 200    # the target for the 2 % gain step
DRAW_SCANS = 64             # scans of live inputs drawn at once


def _river_drift():
    """river's ``drift`` module, or a ValueError saying how to install it."""
    try:
        from river import drift
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError("the detection benchmark compares against river's detectors: "
                         "pip install 'plc-anna[bench]'") from None
    return drift


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
    """plc-anna's monitors and river's per-column detectors, calibrated on nominal scans."""

    def __init__(self, sim: SimulatedNetwork, data: Split, rng: np.random.Generator, samples_per_scan: int,
                 arl0: float, model_error: float) -> None:
        drift = _river_drift()
        layers = sim.network.layers
        moments = [RunningMoments(layer.n_in + layer.n_out, covariance=True) for layer in layers]
        calibration = [sim.trace(draw(data, "nominal", samples_per_scan, rng))
                       for _ in range(-(-CALIBRATION_SAMPLES // samples_per_scan))]
        for traces in calibration:
            for tracker, t in zip(moments, traces):
                tracker.update(np.hstack([t.inputs, t.outputs]))
        self.monitors = [DriftMonitor(fit_fingerprint(m.moments, layer.n_in), arl0=arl0, model_error=model_error)
                         for m, layer in zip(moments, layers)]
        columns = sum(layer.n_out for layer in layers)
        self.river = {"page_hinkley": [drift.PageHinkley() for _ in range(columns)],
                      "adwin": [drift.ADWIN() for _ in range(columns)]}
        for traces in calibration:
            means = _column_means(traces)
            for detectors in self.river.values():
                _feed(detectors, means)

    def scan(self, traces) -> tuple[dict[str, bool], list[bool]]:
        """Feed one scan to every detector; (alarm per detector, plc-anna alarm per layer)."""
        fired = [monitor.update(t.inputs, t.outputs) for monitor, t in zip(self.monitors, traces)]
        if any(fired):
            for monitor in self.monitors:
                monitor.reset()
        means = _column_means(traces)
        alarms = {"plc_anna": any(fired)}
        alarms.update({name: _feed(detectors, means) for name, detectors in self.river.items()})
        return alarms, fired


def _scans(make: Callable[[int], np.ndarray], n: int) -> Iterator[np.ndarray]:
    """Endless scans of ``n`` samples, ``make(m)`` drawing ``m`` samples :data:`DRAW_SCANS` scans at a time."""
    while True:
        yield from make(n * DRAW_SCANS).reshape(DRAW_SCANS, n, -1)


def _plan(name: str, sim: SimulatedNetwork, data: Split, rng: np.random.Generator, scans: int, n: int
          ) -> tuple[str, int | None, Iterator[np.ndarray], Callable[[int], None]]:
    """(change description, change_at, the scans' inputs, hardware event before scan i) of a stream."""
    pool = data.live_X
    mean, std, low, high = pool.mean(axis=0), pool.std(axis=0), pool.min(axis=0), pool.max(axis=0)
    nominal = _scans(lambda m: draw(data, "nominal", m, rng), n)
    nothing = lambda i: None  # noqa: E731
    if name == "noise":
        return "nothing changes", None, nominal, nothing
    if name == "mean_shift_2sigma":
        return ("inputs + 2 sigma per feature from scan 0, clipped to the pool's range", None,
                _scans(lambda m: np.clip(draw(data, "nominal", m, rng) + 2.0 * std, low, high), n), nothing)
    if name == "variance_x2":
        return ("inputs mean + sqrt(2) (x - mean) per feature from scan 0, clipped to the pool's range", None,
                _scans(lambda m: np.clip(mean + np.sqrt(2.0) * (draw(data, "nominal", m, rng) - mean), low, high),
                       n), nothing)
    if name == "class_mix":
        return ("'process_shift' class mix (first half of the classes 4x as frequent) from scan 0", None,
                _scans(lambda m: draw(data, "process_shift", m, rng), n), nothing)
    change_at = scans // 10
    if name == "pcm_log_age":
        ages = np.geomspace(BASE_AGE_S, 2.0 * BASE_AGE_S, scans - change_at + 1)[1:]

        def age(i: int) -> None:
            if i >= change_at:
                sim.set_age(float(ages[i - change_at]))

        return f"age 1 d -> 2 d, geometric, from scan {change_at} to the end", change_at, nominal, age
    layers = sim.network.layers
    hit = [rng.choice(layer.n_out, size=max(1, int(COLUMN_FRACTION * layer.n_out)), replace=False)
           for layer in layers]
    counts = ", ".join(f"{h.size}/{layer.n_out}" for h, layer in zip(hit, layers))
    if name in GAIN_STEPS:
        factor = GAIN_STEPS[name]
        faults = [(np.where(np.isin(np.arange(layer.n_out), h), factor, 1.0), 0.0) for h, layer in zip(hit, layers)]
        change = f"gain x{factor:g} on 10% of columns ({counts}) at scan {change_at}"
    elif name == "offset_step":
        faults = [(1.0, np.where(np.isin(np.arange(layer.n_out), h), OFFSET_FRACTION * layer.output_range, 0.0))
                  for h, layer in zip(hit, layers)]
        change = f"offset +0.5% of the ADC range on 10% of columns ({counts}) at scan {change_at}"
    else:
        raise ValueError(f"unknown stream {name!r}; valid: {', '.join(STREAMS)}")

    def inject(i: int) -> None:
        if i == change_at:
            for layer, (gain, offset) in enumerate(faults):
                sim.inject_fault(layer, gain, offset)

    return change, change_at, nominal, inject


def _metrics(alarms: np.ndarray, change_at: int | None) -> dict[str, Any]:
    counted = alarms if change_at is None else alarms[:change_at]
    false = int(counted.sum())
    delay = None
    if change_at is not None:
        after = np.flatnonzero(alarms[change_at:])
        delay = int(after[0]) if after.size else None
    return {"false_alarms_per_1e5": false * 1e5 / counted.size, "delay_scans": delay, "false_alarms": false}


def run_stream(name: str, index: int, network, params, data: Split, scans: int, samples_per_scan: int,
               seed: int, arl0: float, model_error: float = DEFAULT_MODEL_ERROR) -> dict[str, Any]:
    """One stream: calibrate, run ``scans`` scans, score every detector (see the module docstring)."""
    rng = np.random.default_rng([seed, index])
    sim = SimulatedNetwork(network, params, seed=seed)
    sim.set_age(BASE_AGE_S)
    detectors = _Detectors(sim, data, rng, samples_per_scan, arl0, model_error)
    change, change_at, inputs, event = _plan(name, sim, data, rng, scans, samples_per_scan)
    alarms = np.zeros((len(DETECTORS), scans), dtype=bool)
    by_layer = np.zeros((scans, len(network.layers)), dtype=bool)
    for i, x in zip(range(scans), inputs):
        event(i)
        fired, by_layer[i] = detectors.scan(sim.trace(x))
        alarms[:, i] = [fired[d] for d in DETECTORS]
    scored = {d: _metrics(alarms[k], change_at) for k, d in enumerate(DETECTORS)}
    false_window = by_layer if change_at is None else by_layer[:change_at]
    scored["plc_anna"]["false_alarms_by_layer"] = [int(c) for c in false_window.sum(axis=0)]
    return {"name": name, "kind": KINDS[name], "change": change, "change_at": change_at, "scans": scans,
            "samples_per_scan": samples_per_scan, "detectors": scored}


def detect_benchmark(scans: int = 20000, samples_per_scan: int = 64, seed: int = 0, arl0: float = 1e6,
                     net: str = "digits", device: str = "pcm", progress=None, *,
                     streams: Sequence[str] = STREAMS, model_error: float = DEFAULT_MODEL_ERROR,
                     workers: int | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready report (see the module docstring).

    ``streams`` selects a subset of :data:`STREAMS`; ``model_error`` is passed
    to every :class:`DriftMonitor` (default :data:`~plc_anna.drift.monitor.DEFAULT_MODEL_ERROR`).
    Streams run in ``workers`` processes (default: one per CPU; 1 runs them
    here). Every stream has its own seed, so the report does not depend on
    ``workers``. Where processes are spawned rather than forked (macOS,
    Windows), call this under ``if __name__ == "__main__":``.
    """
    if isinstance(scans, bool) or not isinstance(scans, (int, np.integer)) or scans < 20:
        raise ValueError(f"scans must be an integer >= 20 (drift starts at scans // 10), got {scans!r}")
    if isinstance(samples_per_scan, bool) or not isinstance(samples_per_scan, (int, np.integer)) \
            or samples_per_scan < 2:
        raise ValueError(f"samples_per_scan must be an integer >= 2, got {samples_per_scan!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not model_error >= 0:
        raise ValueError(f"model_error must be >= 0, got {model_error!r}")
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
                   arl0, model_error) for name in streams}
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
    return {"net": network.name, "device": str(device), "arl0": float(arl0), "model_error": float(model_error),
            "streams": rows, "summary": summarize(rows), "workers": workers,
            "runtime_s": time.perf_counter() - start}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, checked on the measured numbers (None when a stream was not run)."""
    quiet = [row for row in rows if row["kind"] != "drift"]
    alarmed = [row["name"] for row in quiet if row["detectors"]["plc_anna"]["false_alarms"] > 0]
    step = next((row for row in rows if row["name"] == "gain_step_2pct"), None)
    delay = None if step is None else step["detectors"]["plc_anna"]["delay_scans"]
    return {
        "no_plc_anna_false_alarm_in_noise_and_process_shift": (not alarmed) if quiet else None,
        "plc_anna_false_alarm_streams": alarmed,
        "gain_step_2pct_delay_scans": delay,
        "gain_step_2pct_detected_within_200_scans": None if step is None else (
            delay is not None and delay <= TARGET_DELAY_SCANS),
    }


def plot_detect(report: dict[str, Any], path: str | Path) -> None:
    """False alarms on the no-drift streams and delays on the drift streams, per detector (needs matplotlib)."""
    plt = pyplot()

    panels = [([s for s in report["streams"] if s["kind"] != "drift"], "false_alarms_per_1e5",
               "false alarms per 1e5 scans", "no drift: every alarm is false"),
              ([s for s in report["streams"] if s["kind"] == "drift"], "delay_scans",
               "detection delay [scans]", "drift: delay after the change")]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
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
        ax.set(yscale="log", ylim=(floor, top * 20), ylabel=ylabel, title=title)
        ax.set_xticks(np.arange(len(streams)), [s["name"] for s in streams], rotation=20, ha="right", fontsize=8)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"drift detection on {report['net']} / {report['device']} (ARL0 {report['arl0']:.0e} scans)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
