"""``plc-anna bench latent``: predict the correction years ahead from the first month.

Per device seed the compensator runs on live data from a minute after
programming to the last calibration age (default 30 days), learning each
layer's drift latent from its committed estimates. Then, at each evaluation
age (default 1 and 10 years), on the evaluation half of the held-out data:

- ``none``: no correction;
- ``hold_last``: the corrections of the last calibration age, held;
- ``predictive``: every layer's drift latent, frozen at the last calibration
  age, predicts the correction for the evaluation age (clamped to the
  hardware range, as the compensator would apply it): no new data;
- ``recalibrated``: the compensator keeps running on live data all the way
  (the full plc-anna loop, as in ``bench compensation``);
- ``oracle``: per-column least squares against the ideal digital outputs.

``gain_prediction_error_pct`` compares the last layer's predicted gains with
the gains the simulator truly needs at the evaluation ages (the Gaussian map
of its noise-free outputs onto the ideal ones, from many samples). Scenarios:

- ``drift``: the device as given;
- ``crossing``: the hardware gain range is narrowed so that the last layer's
  true needed gain leaves it between the last calibration and ten years;
  ``rul`` compares the latent's remaining-life estimate with the simulator's
  true crossing age;
- ``fault``: after the last calibration an offset step (5 % of the ADC range)
  hits a tenth of the last layer's columns; ``fault`` reports when the
  compensator called it a fault and whether the learned trend moved.

Output errors are averaged over seeds; ``rul`` and ``fault`` are those of
seed 0.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plc_anna.bench import pyplot
from plc_anna.bench.scoring import identity_corrections, oracle_corrections, score
from plc_anna.bench.streams import draw, split
from plc_anna.compensator import CompensatorConfig
from plc_anna.correction.transition import RampLimits
from plc_anna.activations import activate
from plc_anna.device.network import Network, load_network
from plc_anna.device.params import DeviceParams, load_device_params
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.drift.states import EventKind
from plc_anna.loop import ScanLoop
from plc_anna.stats.cross import cross_moments
from plc_anna.stats.reference import fit_fingerprint

YEAR_S = 365.25 * 86400.0
SCENARIOS = ("drift", "crossing", "fault")
METHODS = ("none", "hold_last", "predictive", "recalibrated", "oracle")
SCAN_SAMPLES = 64
START_AGE_S = 60.0
FAULT_OFFSET_FRACTION = 0.05


def needed_gain(sim: SimulatedNetwork, ideal_inputs: np.ndarray) -> np.ndarray:
    """The last layer's true needed gains: its noise-free output spread mapped onto the ideal one."""
    index = len(sim.network.layers) - 1
    layer = sim.network.layers[index]
    raw = sim.read_layer(index, ideal_inputs)
    fingerprint = fit_fingerprint(cross_moments(ideal_inputs, raw), layer.weights)
    ideal = ideal_inputs @ layer.weights.T + layer.bias
    return np.sqrt(ideal.var(axis=0) / fingerprint.signal_var)


def _last_layer_inputs(network: Network, X: np.ndarray) -> np.ndarray:
    a = X
    for layer in network.layers[:-1]:
        a = activate(a @ layer.weights.T + layer.bias, layer.activation)
    return a


def _crossing_age(sim: SimulatedNetwork, inputs: np.ndarray, upper: float, start_s: float,
                  end_s: float, points: int = 48) -> float | None:
    """First age (log-interpolated on a grid) at which any needed gain exceeds ``upper``."""
    ages = np.geomspace(start_s, end_s, points)
    peak = []
    for age in ages:
        sim.set_age(float(age))
        peak.append(float(needed_gain(sim, inputs).max()))
    peak = np.array(peak)
    above = np.flatnonzero(peak > upper)
    if above.size == 0:
        return None
    i = int(above[0])
    if i == 0:
        return float(ages[0])
    weight = (upper - peak[i - 1]) / (peak[i] - peak[i - 1])
    return float(10 ** (np.log10(ages[i - 1]) + weight * (np.log10(ages[i]) - np.log10(ages[i - 1]))))


def _stream(loop: ScanLoop, data, rng, start_s: float, end_s: float, scans: int) -> None:
    ramp = np.geomspace(start_s, end_s, max(2, scans // 2))[1:]
    for i in range(scans):
        loop.net.set_age(float(ramp[min(i, ramp.size - 1)]))
        loop.scan(draw(data, "nominal", SCAN_SAMPLES, rng))


def run_one(network: Network, params: DeviceParams, scenario: str, seed: int, calibration_ages_s: Sequence[float],
            eval_ages_s: Sequence[float], samples: int, data) -> dict[str, Any]:
    """One seed of one (network, device, scenario)."""
    rng = np.random.default_rng([seed, SCENARIOS.index(scenario), 7])
    sim = SimulatedNetwork(network, params, seed=seed)
    truth_inputs = _last_layer_inputs(network, np.vstack([draw(data, "nominal", 4096, rng)]))
    ramp_limits = RampLimits()
    crossing = None
    if scenario == "crossing":
        # The range ends where the simulator's needed gain stands at the geometric middle of the
        # prediction horizon, so the true crossing lies well inside it.
        middle = math.sqrt(calibration_ages_s[-1] * eval_ages_s[-1])
        sim.set_age(middle)
        upper = round(float(needed_gain(sim, truth_inputs).max()), 3)
        ramp_limits = RampLimits(gain_range=(0.25, upper))
        crossing = _crossing_age(sim, truth_inputs, upper, calibration_ages_s[-1], eval_ages_s[-1])
    config = CompensatorConfig(predictive=False, ramp=ramp_limits)
    sim.set_age(START_AGE_S)
    loop = ScanLoop(sim, config)
    for _ in range(3 * -(-config.calibration_samples // SCAN_SAMPLES) + 40):
        loop.scan(draw(data, "nominal", SCAN_SAMPLES, rng))
    scans = max(1, samples // SCAN_SAMPLES)
    previous = START_AGE_S
    for age in calibration_ages_s:
        _stream(loop, data, rng, previous, age, scans)
        previous = age
    hold_last = loop.corrections()
    latents = [copy.deepcopy(layer.latent) for layer in loop.compensator.layers]
    last = loop.compensator.layers[-1]
    temperature = sim.temperature_k

    result: dict[str, Any] = {"rul": None, "fault": None}
    if crossing is not None or scenario == "crossing":
        life = latents[-1].remaining_life(ramp_limits.gain_range, ramp_limits.offset_range, temperature) \
            if latents[-1].ready else None
        result["rul"] = {"true_age_s": crossing,
                         "estimated_age_s": None if life is None else float(life.age_s),
                         "low_s": None if life is None else float(life.low_s),
                         "high_s": None if life is None or not math.isfinite(life.high_s) else float(life.high_s)}
    if scenario == "fault":
        n_out = network.layers[-1].n_out
        columns = np.random.default_rng([seed, 99]).choice(n_out, max(1, n_out // 10), replace=False)
        offset = np.zeros(n_out)
        offset[columns] = FAULT_OFFSET_FRACTION * network.layers[-1].output_range
        injected = calibration_ages_s[-1] * 1.5
        _stream(loop, data, rng, calibration_ages_s[-1], injected, scans)
        for _ in range(scans):  # settle at the injection age, so the fault meets a monitoring layer
            loop.scan(draw(data, "nominal", SCAN_SAMPLES, rng))
        before = last.latent.predict(eval_ages_s[-1], temperature) if last.latent.ready else None
        records = len(last.latent.records)
        sim.inject_fault(len(network.layers) - 1, 1.0, offset)
        events_before, scan_before = len(loop.events), last.scan
        for _ in range(scans):
            loop.scan(draw(data, "nominal", SCAN_SAMPLES, rng))
        faults = [e for e in loop.events[events_before:] if e.layer == len(network.layers) - 1
                  and e.kind is EventKind.FAULT]
        after = last.latent.predict(eval_ages_s[-1], temperature) if last.latent.ready else None
        changed = before is None or after is None or len(last.latent.records) != records or not (
            np.allclose(after[0], before[0], rtol=1e-9) and np.allclose(after[1], before[1], rtol=1e-9, atol=1e-12))
        result["fault"] = {"injected_age_s": injected, "columns": columns.tolist(),
                           "detected_age_s": faults[0].age_s if faults else None,
                           "detected_after_scans": faults[0].scan - scan_before if faults else None,
                           "message": faults[0].message if faults else None, "trend_changed": bool(changed)}
        sim.inject_fault(len(network.layers) - 1)  # cleared for the evaluation below

    # The trajectory behind the plot: true and predicted gains of the last layer over age.
    grid = np.geomspace(calibration_ages_s[0], eval_ages_s[-1], 16)
    true_curve = []
    for age in grid:
        sim.set_age(float(age))
        true_curve.append(float(np.mean(needed_gain(sim, truth_inputs))))
    history = latents[-1].records
    result["trajectory"] = {
        "age_s": grid.tolist(), "true_gain_mean": true_curve,
        "predicted_gain_mean": [float(np.mean(latents[-1].predict(a, temperature)[0])) if latents[-1].ready
                                else None for a in grid],
        "history_age_s": [r.age_s for r in history],
        "history_gain_mean": [float(np.mean(r.gain)) for r in history]}

    rows = []
    gain_errors = []
    for age in eval_ages_s:
        if scenario != "fault":
            _stream(loop, data, rng, previous, age, scans)
            previous = age
        sim.set_age(age)
        # The predicted correction as the hardware can apply it: clamped to its range.
        predicted = [ramp_limits.clamp(*latent.predict(age, temperature))[:2] if latent.ready else held
                     for latent, held in zip(latents, hold_last)]
        candidates = {"none": identity_corrections(network), "hold_last": hold_last, "predictive": predicted,
                      "oracle": oracle_corrections(sim, draw(data, "nominal", samples, rng))}
        if scenario != "fault":
            candidates["recalibrated"] = loop.corrections()
        true_gain = needed_gain(sim, truth_inputs)
        unclamped = latents[-1].predict(age, temperature)[0] if latents[-1].ready else hold_last[-1][0]
        gain_errors.append(float(np.mean(np.abs(unclamped - true_gain) / true_gain)) * 100)
        rows.append({"age_s": float(age), "methods": {name: {"output_error": score(sim, c, data)["output_error"]}
                                                      for name, c in candidates.items()}})
    result.update({"ages": rows, "gain_prediction_error_pct": float(np.mean(gain_errors))})
    return result


def latent_benchmark(nets: Sequence[str | Path] = ("thermocouple", "digits"), devices: Sequence[str | Path] = ("pcm",),
                     seeds: int = 2, samples: int = 16384,
                     calibration_ages_s: Sequence[float] = (3600.0, 86400.0, 30 * 86400.0),
                     eval_ages_s: Sequence[float] = (YEAR_S, 10 * YEAR_S), scenarios: Sequence[str] = SCENARIOS,
                     progress=None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready report (see the module docstring)."""
    if seeds < 1 or samples < SCAN_SAMPLES:
        raise ValueError(f"need seeds >= 1 and samples >= {SCAN_SAMPLES}")
    if list(calibration_ages_s) != sorted(calibration_ages_s) or max(calibration_ages_s) >= min(eval_ages_s):
        raise ValueError("calibration ages must increase and end before the first evaluation age")
    for scenario in scenarios:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")
    runs = []
    for net_name in nets:
        network = load_network(net_name)
        data = split(network)
        for device in devices:
            params = load_device_params(device)
            for scenario in scenarios:
                per_seed = []
                for seed in range(seeds):
                    per_seed.append(run_one(network, params, scenario, seed, calibration_ages_s, eval_ages_s,
                                            samples, data))
                    if progress is not None:
                        progress(f"{network.name} / {device} / {scenario} / seed {seed}")
                ages = []
                for i, age in enumerate(eval_ages_s):
                    methods = {name: {"output_error": float(np.mean([r["ages"][i]["methods"][name]["output_error"]
                                                                    for r in per_seed]))}
                               for name in per_seed[0]["ages"][i]["methods"]}
                    none, oracle = methods["none"]["output_error"], methods["oracle"]["output_error"]
                    recovered = {name: (none - m["output_error"]) / (none - oracle) if none - oracle > 1e-12 else None
                                 for name, m in methods.items() if name not in ("none", "oracle")}
                    ages.append({"age_s": float(age), "methods": methods, "recovered_fraction": recovered})
                runs.append({"net": network.name, "device": str(device), "scenario": scenario, "seeds": seeds,
                             "calibration_ages_s": [float(a) for a in calibration_ages_s], "ages": ages,
                             "gain_prediction_error_pct": float(np.mean([r["gain_prediction_error_pct"]
                                                                         for r in per_seed])),
                             "rul": per_seed[0]["rul"], "fault": per_seed[0]["fault"],
                             "trajectory": per_seed[0]["trajectory"]})
    return {"runs": runs, "summary": summarize(runs)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, checked on the measured numbers."""
    predictive, hold = [], []
    for run in runs:
        if run["scenario"] == "fault":
            continue
        for row in run["ages"]:
            predictive.append(row["recovered_fraction"]["predictive"])
            hold.append(row["recovered_fraction"]["hold_last"])
    ruls = [run["rul"] for run in runs if run["scenario"] == "crossing" and run["rul"]]
    rul_errors = [float(abs(r["estimated_age_s"] / r["true_age_s"] - 1)) for r in ruls
                  if r["estimated_age_s"] is not None and r["true_age_s"]]
    faults = [run["fault"] for run in runs if run["fault"]]
    return {
        "min_predictive_recovered_fraction": float(min(predictive)) if predictive else None,
        "max_hold_last_recovered_fraction": float(max(hold)) if hold else None,
        "predictive_target_met": bool(predictive) and bool(min(predictive) >= 0.8),
        "rul_relative_errors": rul_errors,
        "rul_target_met": bool(rul_errors) and len(rul_errors) == len(ruls) and bool(max(rul_errors) <= 0.2),
        "faults_detected": sum(f["detected_age_s"] is not None for f in faults),
        "faults_injected": len(faults),
        "trend_unchanged_by_faults": all(not f["trend_changed"] for f in faults),
    }


def plot_latent(report: dict[str, Any], path: str | Path) -> None:
    """Per run: predicted against true last-layer gain over age, and output error per method (needs matplotlib)."""
    plt = pyplot()

    runs = report["runs"]
    fig, axes = plt.subplots(2, len(runs), figsize=(3.8 * len(runs), 6.4), squeeze=False)
    for column, run in enumerate(runs):
        top, bottom = axes[0][column], axes[1][column]
        curve = run["trajectory"]
        top.plot(curve["age_s"], curve["true_gain_mean"], color="black", label="true (simulator)")
        top.plot(curve["age_s"], curve["predicted_gain_mean"], color="tab:green", linewidth=2.5,
                 label="predicted (latent)")
        top.scatter(curve["history_age_s"], curve["history_gain_mean"], s=12, color="tab:orange",
                    label="committed estimates", zorder=3)
        top.axvline(run["calibration_ages_s"][-1], color="grey", linestyle=":")
        top.set(xscale="log", title=f"{run['net']} / {run['scenario']}", ylabel="mean gain, last layer")
        ages = [row["age_s"] for row in run["ages"]]
        for color, method in enumerate(METHODS):  # one colour per method, also where one is missing
            if method in run["ages"][0]["methods"]:
                bottom.plot(ages, [row["methods"][method]["output_error"] for row in run["ages"]], marker="o",
                            label=method, color=f"C{color}", linewidth=2.5 if method == "predictive" else 1.2)
        bottom.xaxis.set_minor_formatter(plt.NullFormatter())
        bottom.set(xscale="log", yscale="log", xlabel="age [s]", ylabel="relative output error")
        for ax in (top, bottom):
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
