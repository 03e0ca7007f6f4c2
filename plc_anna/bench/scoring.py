"""How benchmarks score a set of corrections, and the oracle they are measured against."""

from __future__ import annotations

import numpy as np

from plc_anna.bench.streams import Split
from plc_anna.correction.baselines import oracle_affine
from plc_anna.activations import activate
from plc_anna.device.network import Network, task_metric
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.loop import Corrections, apply_device_corrections


def identity_corrections(network: Network) -> Corrections:
    """No correction: gain 1, offset 0 in every layer."""
    return [(np.ones(layer.n_out), np.zeros(layer.n_out)) for layer in network.layers]


def score(sim: SimulatedNetwork, corrections: Corrections, data: Split) -> dict[str, float]:
    """Task metric and relative output error of the evaluation set under ``corrections``."""
    apply_device_corrections(sim, corrections)
    gain, offset = corrections[-1]
    outputs = gain * sim.infer(data.eval_X) + offset
    error = np.sqrt(np.mean((outputs - data.eval_ideal) ** 2) / np.mean(data.eval_ideal**2))
    return {"metric": task_metric(sim.network, outputs, data.eval_y), "output_error": float(error)}


def oracle_corrections(sim: SimulatedNetwork, live_X: np.ndarray) -> Corrections:
    """Least squares per layer against the ideal digital pre-activations of ``live_X``."""
    corrections: Corrections = []
    actual, ideal = live_X, live_X
    for i, layer in enumerate(sim.network.layers):
        raw = sim.read_layer(i, actual)
        ideal_pre = ideal @ layer.weights.T + layer.bias
        gain, offset = oracle_affine(raw, ideal_pre)
        corrections.append((gain, offset))
        actual, ideal = activate(gain * raw + offset, layer.activation), activate(ideal_pre, layer.activation)
    return corrections
