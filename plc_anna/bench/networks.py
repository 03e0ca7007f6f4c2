"""Networks the compensator was not designed on: other sizes and tasks, trained here on data that
scikit-learn ships (no download), seeded, for ``plc-anna bench compensation --net NAME``.

- ``diabetes``: regression of disease progression from 10 clinical features
  (``sklearn.datasets.load_diabetes``, 442 patients), 10 → 16 (tanh) → 1;
- ``breast_cancer``: a two-class classifier on 30 features of cell nuclei
  (``load_breast_cancer``, 569 samples), 30 → 48 (relu) → 24 (relu) → 2;
- ``wine``: a three-class classifier on 13 chemical features (``load_wine``,
  178 samples), 13 → 8 (sigmoid) → 3, a narrow hidden layer;
- ``wide``: a 64 → 256 (relu) → 16 regression on the 8×8 digit images
  (``load_digits``) against a fixed random teacher: a chip-sized hidden layer.

Inputs are standardized before the network (the digit images scaled by one
factor: one sensor type), as a PLC scales each sensor to its range before an
analog accelerator's DACs (one full scale per layer: a
feature in thousands beside one in tenths would lose the latter to
rounding); regression targets are standardized for training and unscaled in
the last layer. Each network keeps its held-out half as ``X``/``y``, inputs
standardized. Building one takes a second or
two; :func:`load_bench_network` caches them per process.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from plc_anna.bench import bench_module
from plc_anna.device.network import Network, network_from_arrays

BENCH_NETWORKS = ("diabetes", "breast_cancer", "wine", "wide")
SEED = 7


def _sklearn():
    what = "the benchmark's own networks are trained with scikit-learn"
    return bench_module("sklearn.datasets", what), bench_module("sklearn.neural_network", what)


def _split(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(SEED).permutation(len(X))
    half = len(X) // 2
    return X[order[:half]], y[order[:half]], X[order[half:]], y[order[half:]]


def _layers(model, y_mean: float = 0.0, y_scale: float = 1.0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The model's layers as (n_out, n_in) weights, with the target scaling folded into the last."""
    weights = [w.T.copy() for w in model.coefs_]
    biases = [b.copy() for b in model.intercepts_]
    y_scale, y_mean = np.atleast_1d(y_scale), np.atleast_1d(y_mean)
    weights[-1], biases[-1] = weights[-1] * y_scale[:, None], biases[-1] * y_scale + y_mean
    return weights, biases


@lru_cache(maxsize=None)
def load_bench_network(name: str) -> Network:
    """One of :data:`BENCH_NETWORKS`, trained (seeded) on first use."""
    with warnings.catch_warnings():   # a short training that stops before convergence is meant to
        warnings.simplefilter("ignore")
        return _train(name)


def _train(name: str) -> Network:
    datasets, nn = _sklearn()
    if name == "wide":
        X = datasets.load_digits().data.astype(float)
        rng = np.random.default_rng(SEED)
        teacher = [rng.normal(size=(64, 32)) / 8.0, rng.normal(size=(32, 16)) / 4.0]
        y = np.tanh(X / 16.0 @ teacher[0]) @ teacher[1]
        return _regression(nn, "wide", X, y, (256,), "relu", "Regression of a fixed random teacher on the 8x8 "
                           "digit images: a 256-column hidden layer.", tuple(f"t{i}" for i in range(16)),
                           solver="adam", alpha=1e-4, max_iter=300, pixels=True)
    if name == "diabetes":
        data = datasets.load_diabetes()
        return _regression(nn, "diabetes", data.data, data.target[:, None], (16,), "tanh",
                           "Diabetes progression one year after baseline, from 10 clinical features.", ("progression",),
                           solver="lbfgs", alpha=10.0, max_iter=400)
    loaders = {"breast_cancer": (datasets.load_breast_cancer, (48, 24), "relu"),
               "wine": (datasets.load_wine, (8,), "logistic")}
    if name not in loaders:
        raise ValueError(f"unknown benchmark network {name!r}; valid: {', '.join(BENCH_NETWORKS)}")
    loader, hidden, activation = loaders[name]
    data = loader()
    X_train, y_train, X_test, y_test = _split(data.data.astype(float), data.target)
    mean, scale = X_train.mean(axis=0), np.where(X_train.std(axis=0) > 0, X_train.std(axis=0), 1.0)
    model = nn.MLPClassifier(hidden_layer_sizes=hidden, activation=activation, alpha=1e-3, max_iter=2000,
                             random_state=SEED).fit((X_train - mean) / scale, y_train)
    weights, biases = _layers(model)
    if weights[-1].shape[0] == 1:    # scikit-learn's binary output is one logit: make it two
        weights[-1] = np.vstack([-weights[-1], weights[-1]]) / 2.0
        biases[-1] = np.concatenate([-biases[-1], biases[-1]]) / 2.0
    names = {"relu": "relu", "logistic": "sigmoid", "tanh": "tanh"}
    return network_from_arrays(name, "classification", weights, biases,
                               [names[activation]] * len(hidden) + ["linear"], X=(X_test - mean) / scale, y=y_test,
                               output_names=tuple(str(c) for c in data.target_names),
                               description=f"{name} classifier trained by plc-anna's benchmark on scikit-learn's "
                                           "bundled data set.")


def _regression(nn, name: str, X: np.ndarray, y: np.ndarray, hidden: tuple[int, ...], activation: str,
                description: str, output_names: tuple[str, ...], solver: str, alpha: float, max_iter: int,
                pixels: bool = False) -> Network:
    X_train, y_train, X_test, y_test = _split(X.astype(float), y.astype(float))
    if pixels:   # one sensor type: one scale for all (a border pixel that hardly varies is not blown up)
        mean, scale = np.zeros(X.shape[1]), np.full(X.shape[1], float(X_train.max()))
    else:
        mean, scale = X_train.mean(axis=0), np.where(X_train.std(axis=0) > 0, X_train.std(axis=0), 1.0)
    y_mean, y_scale = y_train.mean(axis=0), y_train.std(axis=0)
    model = nn.MLPRegressor(hidden_layer_sizes=hidden, activation=activation, alpha=alpha, solver=solver,
                            max_iter=max_iter, random_state=SEED).fit((X_train - mean) / scale,
                                                                  ((y_train - y_mean) / y_scale).squeeze())
    weights, biases = _layers(model, y_mean, y_scale)
    return network_from_arrays(name, "regression", weights, biases, [activation] * len(hidden) + ["linear"],
                               X=(X_test - mean) / scale, y=y_test,
                               output_names=output_names, description=description)
