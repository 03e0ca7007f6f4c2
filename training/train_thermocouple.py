"""Train the shipped ``thermocouple`` reference network (a regression soft sensor).

Task: linearize four Type K thermocouple channels that share one cold
(reference) junction. Inputs are the four measured EMFs in mV,
``E(T_hot_k) - E(T_cj)``, and the cold-junction temperature ``T_cj`` in °C;
outputs are the four hot-junction temperatures in °C. ``E`` is the NIST
ITS-90 Type K reference function (:mod:`training.its90`), so the data are
synthetic but exact: ``T_hot`` uniform in 0..800 °C, ``T_cj`` uniform in
0..50 °C.

Network: 5 -> 32 (tanh) -> 32 (tanh) -> 4 (linear). Training runs on
standardized inputs and outputs; both standardizations are folded exactly
into the first and last layer, so the saved network maps raw mV / °C to °C.

Run from the repository root::

    python -m training.train_thermocouple

Everything is seeded and single-threaded, so two runs give the same weights.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # also allow ``python training/train_thermocouple.py``
    sys.path.insert(0, str(REPO_ROOT))

from plc_anna.device.network import (  # noqa: E402
    Network,
    digital_forward,
    network_from_arrays,
    save_network,
    task_metric,
)
from training.its90 import type_k_emf_mv  # noqa: E402

DEFAULT_OUTPUT = REPO_ROOT / "plc_anna" / "networks" / "thermocouple.npz"
SEED = 0
N_CHANNELS = 4
T_HOT_RANGE_C = (0.0, 800.0)
T_CJ_RANGE_C = (0.0, 50.0)
#: The target is a smooth function of two variables per channel, so a few
#: thousand samples are plenty: training and held-out RMSE agree.
N_TRAIN = 4000
N_TEST = 2000
HIDDEN = (32, 32)
#: L2 penalty (scikit-learn convention: ``alpha / 2 * sum(w**2) / n_samples``).
ALPHA = 1e-4
#: Iteration caps of the two L-BFGS stages (see :func:`refine_lbfgs`).
SKLEARN_MAX_ITER = 2000
REFINE_MAX_ITER = 5000


def make_samples(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` synthetic readings.

    Parameters
    ----------
    n : int
        Number of samples.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    X : numpy.ndarray, shape (n, 5)
        Measured EMF of channels 1..4 in mV (``E(T_hot) - E(T_cj)``), then
        ``T_cj`` in °C.
    y : numpy.ndarray, shape (n, 4)
        Hot-junction temperatures in °C.
    """
    t_hot = rng.uniform(*T_HOT_RANGE_C, size=(n, N_CHANNELS))
    t_cj = rng.uniform(*T_CJ_RANGE_C, size=n)
    emf = type_k_emf_mv(t_hot) - type_k_emf_mv(t_cj)[:, None]
    return np.column_stack([emf, t_cj]), t_hot


def _forward(weights, biases, X):
    """Activations of every layer (tanh hidden, linear output); ``weights`` are (n_out, n_in)."""
    acts = [X]
    for i, (w, b) in enumerate(zip(weights, biases)):
        z = acts[-1] @ w.T + b
        acts.append(np.tanh(z) if i < len(weights) - 1 else z)
    return acts


def refine_lbfgs(weights, biases, X, Y, alpha: float, max_iter: int):
    """Continue minimizing MLPRegressor's objective with L-BFGS until ``max_iter``.

    ``MLPRegressor(solver="lbfgs")`` hands scipy's L-BFGS-B its default
    ``ftol``, which tests the loss decrease *relative to max(|loss|, 1)*. On
    standardized targets the loss is ~1e-5 when the fit is at ~1 °C, so the
    solver declares convergence after a few hundred iterations while the fit
    is still improving quickly. Here the same objective (half mean squared
    error over all outputs plus ``alpha / 2 * sum(w**2) / n``) is minimized
    from the scikit-learn solution with ``ftol = gtol = 0``, i.e. for a fixed
    number of iterations.

    Parameters
    ----------
    weights, biases : list of numpy.ndarray
        Starting point; weights are (n_out, n_in). Not modified.
    X, Y : numpy.ndarray
        Standardized training inputs (n, n_in) and targets (n, n_out).
    alpha : float
        L2 penalty, scikit-learn convention.
    max_iter : int
        Number of L-BFGS iterations.

    Returns
    -------
    weights, biases : list of numpy.ndarray
        The refined parameters.
    """
    shapes = [w.shape for w in weights]
    n = X.shape[0]

    def unpack(theta):
        ws, bs, k = [], [], 0
        for n_out, n_in in shapes:
            ws.append(theta[k:k + n_out * n_in].reshape(n_out, n_in))
            k += n_out * n_in
            bs.append(theta[k:k + n_out])
            k += n_out
        return ws, bs

    def pack(ws, bs):
        return np.concatenate([np.concatenate([w.ravel(), b]) for w, b in zip(ws, bs)])

    def loss_and_grad(theta):
        ws, bs = unpack(theta)
        acts = _forward(ws, bs, X)
        resid = acts[-1] - Y
        loss = 0.5 * np.mean(resid ** 2) + 0.5 * alpha * sum(np.sum(w ** 2) for w in ws) / n
        delta = resid / resid.size  # d loss / d output pre-activation
        grads_w, grads_b = [None] * len(ws), [None] * len(ws)
        for i in range(len(ws) - 1, -1, -1):
            grads_w[i] = delta.T @ acts[i] + alpha * ws[i] / n
            grads_b[i] = delta.sum(axis=0)
            if i > 0:
                delta = (delta @ ws[i]) * (1.0 - acts[i] ** 2)  # tanh' = 1 - tanh^2
        return loss, pack(grads_w, grads_b)

    result = minimize(
        loss_and_grad,
        pack(weights, biases),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "maxfun": 2 * max_iter, "ftol": 0.0, "gtol": 0.0},
    )
    return unpack(result.x)


def fold_standardization(weights, biases, x_mean, x_scale, y_mean, y_scale):
    """Fold input and output standardization into the first and last layer.

    With ``x_std = (x - x_mean) / x_scale`` and ``y = y_std * y_scale + y_mean``:
    ``W0 x_std + b0 = (W0 / x_scale) x + (b0 - W0 (x_mean / x_scale))`` and
    ``y_scale * (WL a + bL) + y_mean = (y_scale WL) a + (y_scale bL + y_mean)``.

    Returns
    -------
    weights, biases : list of numpy.ndarray
        New lists; the inputs are not modified.
    """
    weights, biases = list(weights), list(biases)
    w0 = weights[0]
    weights[0] = w0 / x_scale[None, :]
    biases[0] = biases[0] - w0 @ (x_mean / x_scale)
    weights[-1] = y_scale[:, None] * weights[-1]
    biases[-1] = y_scale * biases[-1] + y_mean
    return weights, biases


def train(seed: int = SEED, refine_iter: int = REFINE_MAX_ITER, verbose: bool = False) -> Network:
    """Generate data, train, fold and return the network with its held-out set.

    Parameters
    ----------
    seed : int, optional
        Seed of the data and of the weight initialisation.
    refine_iter : int, optional
        Iterations of the L-BFGS refinement after scikit-learn (0 to skip).
    verbose : bool, optional
        Print the held-out RMSE after each training stage.

    Returns
    -------
    Network
        Maps raw inputs (mV, mV, mV, mV, °C) to ``T_hot_1..4`` in °C; ``X`` and
        ``y`` hold ``N_TEST`` held-out samples.
    """
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    X_train, y_train = make_samples(N_TRAIN, train_rng)
    X_test, y_test = make_samples(N_TEST, test_rng)

    x_mean, x_scale = X_train.mean(axis=0), X_train.std(axis=0)
    y_mean, y_scale = y_train.mean(axis=0), y_train.std(axis=0)
    A = (X_train - x_mean) / x_scale
    Y = (y_train - y_mean) / y_scale

    def held_out_rmse(ws, bs):
        pred = _forward(ws, bs, (X_test - x_mean) / x_scale)[-1] * y_scale + y_mean
        return float(np.sqrt(np.mean((pred - y_test) ** 2)))

    reg = MLPRegressor(
        hidden_layer_sizes=HIDDEN,
        activation="tanh",
        solver="lbfgs",
        alpha=ALPHA,
        max_iter=SKLEARN_MAX_ITER,
        random_state=seed,
    )
    # One BLAS thread: reproducible regardless of the core count, and faster
    # for these small matrices than two threads.
    with threadpool_limits(1):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reg.fit(A, Y)
        weights = [c.T for c in reg.coefs_]
        biases = [b.copy() for b in reg.intercepts_]
        if verbose:
            print(f"  MLPRegressor (lbfgs): {reg.n_iter_} iterations, {time.perf_counter() - t0:.1f} s, "
                  f"held-out RMSE {held_out_rmse(weights, biases):.3f} degC")
        if refine_iter > 0:
            t0 = time.perf_counter()
            weights, biases = refine_lbfgs(weights, biases, A, Y, ALPHA, refine_iter)
            if verbose:
                print(f"  L-BFGS refinement: {refine_iter} iterations, {time.perf_counter() - t0:.1f} s, "
                      f"held-out RMSE {held_out_rmse(weights, biases):.3f} degC")

    weights, biases = fold_standardization(weights, biases, x_mean, x_scale, y_mean, y_scale)
    return network_from_arrays(
        name="thermocouple",
        task="regression",
        weights=weights,
        biases=biases,
        activations=["tanh"] * len(HIDDEN) + ["linear"],
        X=X_test,
        y=y_test,
        output_names=tuple(f"T_hot_{k + 1}" for k in range(N_CHANNELS)),
        output_unit="degC",
        description=(
            "Four-channel Type K thermocouple linearization with cold-junction compensation "
            "(inputs: 4 EMFs in mV and T_cj in degC), trained on the NIST ITS-90 Type K "
            "reference function (NIST Monograph 175 / NIST SRD 60)."
        ),
    )


def main(argv: list[str] | None = None) -> int:
    """Train, report and save the network; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where to write the .npz (default: {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)

    print("thermocouple:")
    network = train(verbose=True)
    pred = digital_forward(network, network.X)
    err = pred - network.y
    rmse = task_metric(network, pred, network.y)

    save_network(network, args.output)
    for i, layer in enumerate(network.layers):
        print(f"  layer{i}: {layer.n_in} -> {layer.n_out} {layer.activation:6s} "
              f"max|w|={np.max(np.abs(layer.weights)):.4f}")
    per_channel = ", ".join(f"{v:.3f}" for v in np.sqrt(np.mean(err ** 2, axis=0)))
    print(f"  digital held-out (n={len(network.y)}): RMSE = {rmse:.3f} degC "
          f"(per channel {per_channel}), max |error| = {np.max(np.abs(err)):.3f} degC")
    print(f"  wrote {args.output} ({args.output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
