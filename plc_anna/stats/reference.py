"""What a layer's outputs *should* look like, predicted from its digital inputs.

Two predictions, both functions of the inputs' moments only (never of
per-sample ideal outputs paired with observed ones):

- the **ideal** response ``ŷ = W x + b`` of the programmed weights: mean
  ``W μ_x + b`` and variance ``diag(W Σ_x Wᵀ)``;
- the **calibrated** response, from the t0 fingerprint: the least-squares
  response ``y ≈ W_cal x + b_cal`` of the device recorded right after
  programming or calibration, with residual (noise) variance ``σ_n²``. It
  captures what programming actually wrote, so a change of the input
  process moves the prediction with it instead of raising a drift alarm.

For a batch, ``diag(W Σ_batch Wᵀ)`` equals the variance over the batch of the
projections ``W x_i``; :func:`reference_moments` takes it that way, which
costs ``n·d_in·d_out`` instead of ``d_in²·d_out``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plc_anna.stats.moments import Moments


@dataclass(frozen=True)
class Fingerprint:
    """The least-squares response of one layer at calibration.

    Attributes
    ----------
    weights : (n_out, n_in) effective weights ``Σ_yx Σ_xx⁺`` in output units per input unit.
    bias : (n_out,) effective bias.
    noise_var : (n_out,) residual variance of the outputs around the response.
    signal_var : (n_out,) variance of the response itself on the calibration inputs.
    input_mean : (n_in,) mean of the calibration inputs.
    whitening : (n_in, r) matrix ``L`` with ``L Lᵀ`` the pseudo-inverse of the calibration input
        covariance (rank ``r``): whitened inputs measure how far a batch lies from the calibration data.
    count : number of calibration samples.
    """

    weights: np.ndarray
    bias: np.ndarray
    noise_var: np.ndarray
    signal_var: np.ndarray
    input_mean: np.ndarray
    whitening: np.ndarray
    count: float

    def to_dict(self) -> dict:
        """Plain JSON-ready data."""
        return {name: (value.tolist() if isinstance(value, np.ndarray) else value)
                for name, value in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Fingerprint":
        """Rebuild a fingerprint saved by :meth:`to_dict`, checking shapes and finiteness."""
        try:
            fp = cls(weights=np.asarray(data["weights"], dtype=float), bias=np.asarray(data["bias"], dtype=float),
                     noise_var=np.asarray(data["noise_var"], dtype=float),
                     signal_var=np.asarray(data["signal_var"], dtype=float),
                     input_mean=np.asarray(data["input_mean"], dtype=float),
                     whitening=np.asarray(data["whitening"], dtype=float).reshape(len(data["input_mean"]), -1),
                     count=float(data["count"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a saved fingerprint: {exc}") from None
        n_out, n_in = fp.weights.shape
        shapes = {"bias": (n_out,), "noise_var": (n_out,), "signal_var": (n_out,), "input_mean": (n_in,)}
        for name, shape in shapes.items():
            if getattr(fp, name).shape != shape:
                raise ValueError(f"saved fingerprint: {name} has shape {getattr(fp, name).shape}, expected {shape}")
        if not all(np.all(np.isfinite(np.asarray(v))) for v in fp.__dict__.values()):
            raise ValueError("saved fingerprint contains NaN or Inf")
        return fp

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """The calibrated response ``inputs @ W_calᵀ + b_cal`` of a batch, (n, n_out)."""
        return inputs @ self.weights.T + self.bias

    def leverage(self, inputs: np.ndarray) -> tuple[float, float]:
        """How uncertain the fingerprint's prediction is for a batch, relative to the noise variance.

        Returns ``(mean_leverage, spread_leverage)``. A least-squares response
        fitted on ``N`` samples predicts a batch mean ``x̄`` with variance
        ``σ_n² (1 + (x̄ − x̄_cal)ᵀ Σ⁺ (x̄ − x̄_cal)) / N``, and its error in the
        batch's spread adds ``tr(Σ⁺ Σ_batch) / N`` to the variance of the
        predicted output variance.
        """
        z = (np.asarray(inputs, dtype=float) - self.input_mean) @ self.whitening
        z_mean = z.mean(axis=0)
        mean_leverage = (1.0 + float(z_mean @ z_mean)) / self.count
        spread_leverage = float(np.mean(np.sum((z - z_mean) ** 2, axis=1))) / self.count
        return mean_leverage, spread_leverage


def fit_fingerprint(joint: Moments, n_inputs: int, rcond: float = 1e-9) -> Fingerprint:
    """Least-squares response from the joint moments of ``[x, y]`` (covariance tracked).

    Inputs that never vary in the calibration data (a pixel that is always
    dark) get zero effective weight: the pseudo-inverse ignores them.

    Examples
    --------
    >>> from plc_anna.stats.moments import batch_moments
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(5000, 2))
    >>> y = x @ np.array([[2.0, -1.0]]).T + 0.5 + 0.1 * rng.normal(size=(5000, 1))
    >>> fp = fit_fingerprint(batch_moments(np.hstack([x, y]), covariance=True), n_inputs=2)
    >>> np.round(fp.weights, 2), np.round(fp.bias, 2), np.round(np.sqrt(fp.noise_var), 2)
    (array([[ 2., -1.]]), array([0.5]), array([0.1]))
    """
    if not joint.covariance_tracked:
        raise ValueError("the fingerprint needs the joint covariance of inputs and outputs")
    d = joint.mean.shape[0]
    if not 1 <= n_inputs < d:
        raise ValueError(f"n_inputs must be in 1..{d - 1}, got {n_inputs}")
    if joint.count < 2:
        raise ValueError("the fingerprint needs at least 2 calibration samples")
    cov = joint.cov
    cov_xx, cov_yx = cov[:n_inputs, :n_inputs], cov[n_inputs:, :n_inputs]
    eigval, eigvec = np.linalg.eigh(cov_xx)
    keep = eigval > rcond * max(float(eigval.max()), 1e-300)
    whitening = eigvec[:, keep] / np.sqrt(eigval[keep])
    weights = (cov_yx @ whitening) @ whitening.T
    mean_x, mean_y = joint.mean[:n_inputs], joint.mean[n_inputs:]
    signal_var = np.einsum("ij,ij->i", weights, cov_yx)
    # The residual of a least-squares fit underestimates the noise by the
    # parameters it spent: rescale to the unbiased estimate RSS / (N - p - 1).
    rank = int(keep.sum())
    if joint.count <= rank + 1:
        raise ValueError(f"the fingerprint needs more than {rank + 1} calibration samples for {rank} varying "
                         f"inputs, got {int(joint.count)}")
    noise_var = (np.diag(cov[n_inputs:, n_inputs:]) - signal_var) * joint.count / (joint.count - rank - 1)
    # Quantization alone leaves some residual; never let the noise floor reach zero.
    floor = 1e-12 * np.maximum(np.diag(cov[n_inputs:, n_inputs:]), 1e-300)
    return Fingerprint(weights=weights, bias=mean_y - weights @ mean_x, noise_var=np.maximum(noise_var, floor),
                       signal_var=signal_var, input_mean=mean_x.copy(), whitening=whitening, count=float(joint.count))


@dataclass(frozen=True)
class Reference:
    """Predicted per-column output moments for one batch or window of inputs.

    ``ideal_*`` describe the ideal pre-activation ``ŷ = W x + b``, ``cal_*``
    the calibrated response ``W_cal x + b_cal`` without its noise.
    """

    ideal_mean: np.ndarray
    ideal_var: np.ndarray
    cal_mean: np.ndarray
    cal_var: np.ndarray


def reference_moments(ideal: Moments, calibrated: Moments) -> Reference:
    """A :class:`Reference` from the moments of the ideal and the calibrated projections of a batch."""
    return Reference(ideal_mean=ideal.mean, ideal_var=ideal.var, cal_mean=calibrated.mean, cal_var=calibrated.var)
