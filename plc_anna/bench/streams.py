"""Live data for benchmarks: the held-out set split into a live pool and an evaluation set.

Scenarios:

- ``nominal``: live samples drawn uniformly from the live pool, as at calibration;
- ``process_shift``: the plant runs elsewhere: for a classifier, the first half
  of the classes is four times as frequent; for a regression, samples below
  the median of the first principal component of the inputs are four times as
  frequent. No hardware changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plc_anna.device.network import Network, digital_forward

SCENARIOS = ("nominal", "process_shift")


@dataclass(frozen=True)
class Split:
    """Live pool (unlabelled stream source) and evaluation set of a network."""

    live_X: np.ndarray
    eval_X: np.ndarray
    eval_y: np.ndarray
    eval_ideal: np.ndarray
    live_weights: dict[str, np.ndarray]


def split(network: Network, X: np.ndarray | None = None, y: np.ndarray | None = None) -> Split:
    """Split ``X``/``y`` (default: the network's held-out data) half and half, deterministically."""
    X = network.X if X is None else np.asarray(X, dtype=float)
    y = network.y if y is None else np.asarray(y)
    if X is None or y is None:
        raise ValueError(f"network {network.name!r} has no held-out X and y: pass --data with a .npz of X and y")
    if X.shape[0] < 20:
        raise ValueError(f"need at least 20 samples to split into live and evaluation data, got {X.shape[0]}")
    order = np.random.default_rng(12345).permutation(X.shape[0])
    live, held = order[: X.shape[0] // 2], order[X.shape[0] // 2:]
    live_X = X[live]
    if network.task == "classification":
        shifted = np.where(y[live] < network.n_outputs // 2, 4.0, 1.0)
    else:
        centred = live_X - live_X.mean(axis=0)
        pc1 = np.linalg.svd(centred, full_matrices=False)[2][0]
        score = centred @ pc1
        shifted = np.where(score < np.median(score), 4.0, 1.0)
    weights = {"nominal": np.full(live.size, 1.0 / live.size), "process_shift": shifted / shifted.sum()}
    return Split(live_X=live_X, eval_X=X[held], eval_y=y[held], eval_ideal=digital_forward(network, X[held]),
                 live_weights=weights)


def draw(split_: Split, scenario: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` live input samples of a scenario."""
    if scenario not in split_.live_weights:
        raise ValueError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")
    index = rng.choice(split_.live_X.shape[0], size=n, p=split_.live_weights[scenario])
    return split_.live_X[index]
