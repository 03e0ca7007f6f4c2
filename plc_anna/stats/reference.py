r"""What a layer's outputs *should* be, predicted from its inputs: the fingerprint, a posterior response.

The programmed weights ``W`` are known. What programming actually wrote
differs from them per device (programming noise, per-device drift), so the
device's response is ``y = β u + b + e``: ``u`` the inputs as the DAC drives
them (:mod:`plc_anna.converters`), ``e`` read noise of variance ``σ_j²`` per
column. The **fingerprint** is the posterior of ``β`` given calibration data,
with the programmed response as its prior:

.. math:: β_j \sim N(a_j w_j,\ τ_j^2 I), \qquad
          \hat β_j = a_j w_j + (S + λ_j I)^{-1} S_{uy,j}^{(a w)}, \qquad λ_j = σ_j^2 / τ_j^2,

with ``S`` the calibration inputs' scatter and ``a_j`` the column's scale
(the column gain since programming, estimated with the others' as its own
prior). In the eigenbasis ``S = V diag(s) Vᵀ`` each direction ``i`` moves
from the prior to the least-squares estimate by ``s_i / (s_i + λ_j)``:
directions the calibration excited follow the data, the others follow the
programmed weights. The posterior covariance ``σ_j² (S + λ_j I)^{-1}`` says
how well a batch of inputs can be predicted; :mod:`plc_anna.drift.monitor`
uses it to judge a batch only by what the fingerprint can predict.

``τ_j²`` is set from the data (empirical Bayes): in well-excited directions
the least-squares estimate minus the prior mean has variance
``τ_j² + σ_j²/s_i``; the estimate is fitted as ``τ0² + τ1² · mean(w_j²)``
across columns (programming noise has a floor and a part that grows with the
conductance) and doubled, since underestimating it makes the monitor read
its own extrapolation as drift.

**Coverage** of a batch is the share of its input variation (offset from the
calibration mean and spread, in the prior's isotropic metric) that lies in
directions the data pinned down, weighted by ``s_i / (s_i + λ)``: 1 inside the
calibrated region, towards 0 far outside it. :func:`grow_fingerprint` lets
live data, gathered while the hardware is judged stable, pin down the
directions calibration never saw.

``diag(W Σ_batch Wᵀ)`` of a batch equals the variance over the batch of the
projections ``W x_i``; :func:`reference_moments` takes it that way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from plc_anna.stats.cross import CrossMoments
from plc_anna.stats.moments import Moments

#: Default prior scale of programming error, in units of the layer's largest |w|, where the data cannot tell.
DEFAULT_PRIOR_SCALE = 0.05
#: Safety factor on the fitted prior variance.
PRIOR_VARIANCE_FACTOR = 2.0
#: A direction counts as covered when the data weigh at least this much against the prior.
COVERED = 0.5
FORMAT = 2


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """The posterior response of one layer (see the module docstring).

    Attributes
    ----------
    weights : (k, d) posterior mean ``β`` in output units per input unit.
    bias : (k,) intercept.
    noise_var : (k,) residual (read) noise variance ``σ_j²``.
    signal_var : (k,) variance of the response on the calibration inputs.
    input_mean : (d,) mean of the calibration inputs.
    basis : (d, d) eigenvectors ``V`` of the data's input scatter (columns).
    scatter : (d,) eigenvalues ``s_i`` of that scatter (sums of squares).
    prior_precision : (k,) ``λ_j = σ_j² / τ_j²``.
    scale : (k,) the columns' scale ``a_j`` of the prior mean.
    scale_var : (k,) posterior variance of ``a_j``.
    count : calibration samples (live samples added by growth not included).
    programmed : (k, d) the programmed weights ``W`` (given, not saved).
    """

    weights: np.ndarray
    bias: np.ndarray
    noise_var: np.ndarray
    signal_var: np.ndarray
    input_mean: np.ndarray
    basis: np.ndarray
    scatter: np.ndarray
    prior_precision: np.ndarray
    scale: np.ndarray
    scale_var: np.ndarray
    count: float
    programmed: np.ndarray = field(repr=False)

    @property
    def n_inputs(self) -> int:
        return int(self.input_mean.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.bias.shape[0])

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """The response ``inputs @ βᵀ + b`` of a batch (inputs as the DAC drives them), (n, k)."""
        return inputs @ self.weights.T + self.bias

    def shrinkage(self) -> np.ndarray:
        """(d, k): how much the data weigh against the prior per direction and column, ``s_i / (s_i + λ_j)``."""
        return self.scatter[:, None] / (self.scatter[:, None] + self.prior_precision[None, :])

    def covered(self) -> np.ndarray:
        """(d,): the directions the data pinned down for every column (the one with the strongest prior
        decides: a direction only some columns can trust is still open to learn)."""
        lam = float(np.max(self.prior_precision))
        return self.scatter / (self.scatter + lam) >= COVERED

    def coverage(self, offset: np.ndarray, spread: np.ndarray) -> float:
        """Share of a batch's input variation the fingerprint pinned down (see the module docstring).

        ``offset`` is ``Vᵀ (ū − ū_cal)`` and ``spread`` the batch's mean squared deviation along each
        direction of the basis, both (d,). 1 when the batch has no variation at all.
        """
        energy = offset**2 + spread
        total = float(energy.sum())
        if not total > 0:
            return 1.0
        lam = float(np.median(self.prior_precision))
        return float(np.sum(self.scatter / (self.scatter + lam) * energy) / total)

    def rescaled(self, gain: np.ndarray, offset: np.ndarray) -> "Fingerprint":
        """The fingerprint of a device whose columns now read ``gain · y + offset`` of what they read
        (a per-column drift measured against this fingerprint): weights, prior and noise-free spread
        scale with the gain, the intercept moves; the noise and the calibrated directions stay."""
        gain, offset = np.asarray(gain, dtype=float), np.asarray(offset, dtype=float)
        return Fingerprint(weights=self.weights * gain[:, None], bias=gain * self.bias + offset,
                           noise_var=self.noise_var, signal_var=self.signal_var * gain**2,
                           input_mean=self.input_mean, basis=self.basis, scatter=self.scatter,
                           prior_precision=self.prior_precision / np.maximum(gain**2, 1e-12),
                           scale=self.scale * gain, scale_var=self.scale_var * gain**2, count=self.count,
                           programmed=self.programmed)

    def to_dict(self) -> dict:
        """Plain JSON-ready data (without the programmed weights, which the network file holds)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "programmed"}
        return {"format": FORMAT, **{name: (value.tolist() if isinstance(value, np.ndarray) else value)
                                     for name, value in data.items()}}

    @classmethod
    def from_dict(cls, data: dict, programmed: np.ndarray) -> "Fingerprint":
        """Rebuild a fingerprint saved by :meth:`to_dict` for a layer programmed with ``programmed``.

        ValueError names what is wrong: an older format (recalibrate), a shape, NaN or Inf.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("the saved fingerprint is of an older format (least-squares only, without the "
                             "programmed prior); the layer calibrates again from live data")
        programmed = np.asarray(programmed, dtype=float)
        k, d = programmed.shape
        shapes = {"weights": (k, d), "bias": (k,), "noise_var": (k,), "signal_var": (k,), "input_mean": (d,),
                  "basis": (d, d), "scatter": (d,), "prior_precision": (k,), "scale": (k,), "scale_var": (k,)}
        try:
            values = {name: np.asarray(data[name], dtype=float).reshape(shape) for name, shape in shapes.items()}
            count = float(data["count"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a saved fingerprint of a ({k} x {d}) layer: {exc}") from None
        if not all(np.all(np.isfinite(v)) for v in values.values()) or not np.isfinite(count):
            raise ValueError("saved fingerprint contains NaN or Inf")
        return cls(**values, count=count, programmed=programmed)


def _column_scale(programmed: np.ndarray, moments: CrossMoments, noise_var: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Each column's scale ``a_j`` since programming and its posterior variance.

    The least-squares slope of ``y_j`` on the programmed projection ``w_j·u`` has variance
    ``σ_j² / (w_jᵀ S w_j)``; the well-determined columns' spread is the prior of the others.
    """
    wsw = np.einsum("jd,de,je->j", programmed, moments.input_scatter, programmed)
    wsy = np.einsum("jd,dj->j", programmed, moments.cross_scatter)
    has = wsw > 1e-300
    estimate = np.where(has, wsy / np.where(has, wsw, 1.0), 1.0)
    precision = np.where(has, wsw / noise_var, 0.0)              # 1 / var(estimate)
    good = precision * np.maximum(np.abs(estimate), 1e-3) ** 2 > 1e4   # relative error below 1 %
    centre = float(np.median(estimate[good])) if good.any() else 1.0
    spread = float(np.var(estimate[good])) if good.sum() > 2 else 0.1**2
    spread = max(spread, 1e-6)
    scale = (centre / spread + estimate * precision) / (1.0 / spread + precision)
    return scale, 1.0 / (1.0 / spread + precision)


def fit_fingerprint(moments: CrossMoments, programmed: np.ndarray, noise_floor: float = 0.0,
                    prior_scale: float = DEFAULT_PRIOR_SCALE, rcond: float = 1e-9) -> Fingerprint:
    """The posterior response from calibration moments (see the module docstring). ``O(d³ + d²k)``.

    ``noise_floor`` is the smallest noise variance to believe (the ADC's ``step²/12``);
    ``prior_scale`` the programming error's scale, relative to the layer's largest |w|, used
    only when the data cannot set it.

    Examples
    --------
    >>> from plc_anna.stats.cross import cross_moments
    >>> rng = np.random.default_rng(0)
    >>> W = np.array([[2.0, -1.0]]); u = rng.normal(size=(5000, 2))
    >>> y = u @ (0.9 * W).T + 0.5 + 0.1 * rng.normal(size=(5000, 1))
    >>> fp = fit_fingerprint(cross_moments(u, y), W)
    >>> np.round(fp.weights, 2), np.round(fp.bias, 2), np.round(np.sqrt(fp.noise_var), 2)
    (array([[ 1.8, -0.9]]), array([0.5]), array([0.1]))

    Calibrated along the first input only, the second follows the programmed weights (scaled):

    >>> u1 = np.column_stack([rng.normal(size=5000), np.zeros(5000)])
    >>> y1 = u1 @ np.array([[1.8, -0.7]]).T + 0.1 * rng.normal(size=(5000, 1))
    >>> np.round(fit_fingerprint(cross_moments(u1, y1), W).weights, 2)
    array([[ 1.8, -0.9]])
    """
    programmed = np.asarray(programmed, dtype=float)
    k, d = programmed.shape
    if (moments.n_inputs, moments.n_outputs) != (d, k):
        raise ValueError(f"moments of a ({moments.n_outputs} x {moments.n_inputs}) layer, programmed weights "
                         f"({k} x {d})")
    count = moments.count
    scatter, basis = np.linalg.eigh(moments.input_scatter)
    scatter = np.maximum(scatter, 0.0)
    keep = scatter > rcond * max(float(scatter.max()), 1e-300)
    rank = int(keep.sum())
    if count < rank + 2:
        raise ValueError(f"the fingerprint needs at least {rank + 2} calibration samples for {rank} varying "
                         f"input directions, got {int(count)}")
    projected = basis.T @ moments.cross_scatter                                   # (d, k)
    inverse = np.where(keep, 1.0 / np.where(keep, scatter, 1.0), 0.0)            # (d,)
    least_squares = projected * inverse[:, None]                                 # (d, k) in eigen coords
    explained = np.sum(projected**2 * inverse[:, None], axis=0)
    noise_var = (moments.output_scatter - explained) / (count - rank - 1)
    floor = max(noise_floor, 0.0) + 1e-12 * np.maximum(moments.output_scatter / count, 1e-300)
    noise_var = np.maximum(noise_var, floor)

    scale, scale_var = _column_scale(programmed, moments, noise_var)
    prior = basis.T @ (programmed * scale[:, None]).T                            # (d, k)
    # Empirical Bayes: in well-excited directions (LS - prior)^2 - sigma^2/s estimates tau^2.
    estimate_noise = noise_var[None, :] * inverse[:, None]
    gap = (least_squares - prior) ** 2
    good = keep[:, None] & (estimate_noise < 0.1 * np.maximum(gap, 1e-300))
    square_w = np.mean(programmed**2, axis=1)
    largest = float(np.abs(programmed).max()) or 1.0
    tau_floor = (0.002 * largest) ** 2
    if good.sum() >= 5:
        excess = np.where(good, gap - estimate_noise, 0.0)
        per_column = good.sum(axis=0)
        seen = per_column > 0
        pooled = float(excess.sum() / good.sum())
        variance = excess.sum(axis=0)[seen] / per_column[seen]
        design = np.column_stack([np.ones(seen.sum()), square_w[seen]]) * np.sqrt(per_column[seen])[:, None]
        (t0, t1), *_ = np.linalg.lstsq(design, variance * np.sqrt(per_column[seen]), rcond=None)
        tau2 = np.maximum(np.maximum(t0, 0.0) + np.maximum(t1, 0.0) * square_w, max(pooled, 0.0))
    else:
        tau2 = np.full(k, (prior_scale * largest) ** 2)
    tau2 = PRIOR_VARIANCE_FACTOR * np.maximum(tau2, tau_floor)
    precision = noise_var / tau2
    shrink = scatter[:, None] / (scatter[:, None] + precision[None, :])
    coefficients = prior + np.where(keep[:, None], shrink * (least_squares - prior), 0.0)
    weights = (basis @ coefficients).T
    signal_var = np.sum(scatter[:, None] * coefficients**2, axis=0) / count
    return Fingerprint(weights=weights, bias=moments.output_mean - weights @ moments.input_mean,
                       noise_var=noise_var, signal_var=signal_var, input_mean=moments.input_mean.copy(),
                       basis=basis, scatter=np.where(keep, scatter, 0.0), prior_precision=precision, scale=scale,
                       scale_var=scale_var, count=float(count), programmed=programmed)


def grow_fingerprint(fingerprint: Fingerprint, live: CrossMoments) -> Fingerprint:
    r"""The posterior after live data: the fingerprint learns the directions it has not covered.

    The fingerprint is a Gaussian posterior; live inputs ``u`` (about the
    calibration mean ``μ``) and the residuals ``r = y − β u − b`` of their
    outputs update it the conjugate way. With ``A = Σ (u − μ)(u − μ)ᵀ`` and
    ``R = Σ (u − μ) rᵀ`` in the fingerprint's eigenbasis, each column's
    precision becomes ``diag(s) + A + λ_j I`` and its weights move by

    .. math:: Δ_j = (\mathrm{diag}(s) + A + λ_j I)^{-1} R_j,

    one eigen-solve of ``diag(s) + A`` serving every column (``λ_j I`` shares
    its eigenvectors). Directions the calibration pinned down hardly move
    (their precision is high); directions it never saw follow the live data.
    Updating every direction jointly matters: at a new operating point the
    small errors of the covered coefficients, multiplied by the distance from
    the calibration mean, would otherwise be taken for the new directions'.
    The intercept keeps the prediction at the calibration mean, and the noise
    stays. Only data from a time the hardware is judged stable belong here.

    Examples
    --------
    >>> from plc_anna.stats.cross import cross_moments
    >>> rng = np.random.default_rng(1)
    >>> W = np.array([[1.0, 1.0]]); true = np.array([[0.9, 1.2]])
    >>> u = np.column_stack([rng.normal(size=4000), np.zeros(4000)])
    >>> fp = fit_fingerprint(cross_moments(u, u @ true.T + 0.05 * rng.normal(size=(4000, 1))), W)
    >>> live = np.column_stack([rng.normal(size=4000), rng.normal(size=4000)])
    >>> grown = grow_fingerprint(fp, cross_moments(live, live @ true.T + 0.05 * rng.normal(size=(4000, 1))))
    >>> np.round(fp.weights, 2), np.round(grown.weights, 2), bool(grown.covered().all())
    (array([[0.9, 0.9]]), array([[0.9, 1.2]]), True)
    """
    if not live.count > 0:
        return fingerprint
    basis, scatter, lam = fingerprint.basis, fingerprint.scatter, fingerprint.prior_precision
    about, sums = live.about(fingerprint.input_mean)                             # Σ (u-μ)(u-μ)ᵀ, Σ (u-μ)
    # Σ (u-μ) rᵀ with r = y - β u - b: from the moments alone.
    cross = (live.cross_scatter + np.outer(sums, live.output_mean)
             - about @ fingerprint.weights.T
             - np.outer(sums, fingerprint.weights @ fingerprint.input_mean + fingerprint.bias))
    system = basis.T @ about @ basis + np.diag(scatter)
    grown, rotation = np.linalg.eigh(0.5 * (system + system.T))
    grown = np.maximum(grown, 0.0)
    new_basis = basis @ rotation
    coefficients = new_basis.T @ fingerprint.weights.T                           # (d, k) in the new basis
    coefficients = coefficients + (new_basis.T @ cross) / (grown[:, None] + lam[None, :])
    weights = coefficients.T @ new_basis.T
    # The intercept keeps the calibration mean's prediction: b = ȳ_cal − β μ at μ.
    bias = fingerprint.bias + (fingerprint.weights - weights) @ fingerprint.input_mean
    return Fingerprint(weights=weights, bias=bias, noise_var=fingerprint.noise_var,
                       signal_var=fingerprint.signal_var, input_mean=fingerprint.input_mean, basis=new_basis,
                       scatter=grown, prior_precision=lam, scale=fingerprint.scale,
                       scale_var=fingerprint.scale_var, count=fingerprint.count, programmed=fingerprint.programmed)


@dataclass(frozen=True)
class Reference:
    """Predicted per-column output moments for one batch or window of inputs.

    ``ideal_*`` describe the ideal pre-activation the correction aims at, ``cal_*``
    the calibrated response without its noise.
    """

    ideal_mean: np.ndarray
    ideal_var: np.ndarray
    cal_mean: np.ndarray
    cal_var: np.ndarray


def reference_moments(ideal: Moments, calibrated: Moments) -> Reference:
    """A :class:`Reference` from the moments of the ideal and the calibrated projections of a batch."""
    return Reference(ideal_mean=ideal.mean, ideal_var=ideal.var, cal_mean=calibrated.mean, cal_var=calibrated.var)
