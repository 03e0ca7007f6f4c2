"""The per-column correction of one layer, from moments alone.

The correction is the Gaussian Monge map from today's output distribution
to the *ideal* output distribution predicted from the inputs' moments:

.. math:: g = \\sqrt{\\frac{\\sigma_{\\hat y}^2}{\\sigma_y^2 - \\sigma_n^2}}, \\qquad
          o = \\mu_{\\hat y} - g\\,\\mu_y

with ``μ_ŷ = W μ_x + b`` and ``σ_ŷ² = diag(W Σ_x Wᵀ)`` of the programmed
weights, and the known noise variance ``σ_n²`` (from the fingerprint) taken
off the observed variance: noise is not signal, and leaving it in biases the
gain low. Because the ideal moments follow the inputs, the map stays right
when the input process changes.

It also reports the drift relative to the calibrated state, the Monge map's
inverse from the calibrated response ``y_cal`` to today's output
(``y ≈ drift_gain · y_cal + drift_offset``): the trend that a latent model
learns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plc_anna.correction.transport import empirical_affine_map, gaussian_monge_map, gaussian_w2
from plc_anna.stats.reference import Reference


@dataclass(frozen=True)
class Correction:
    """A per-column correction ``gain · y + offset`` and the drift behind it.

    ``transport_cost`` is the per-column squared 2-Wasserstein distance the
    map moves today's (noise-free) output distribution to the ideal one.
    """

    gain: np.ndarray
    offset: np.ndarray
    drift_gain: np.ndarray
    drift_offset: np.ndarray
    transport_cost: np.ndarray


def estimate_correction(reference: Reference, output_mean: np.ndarray, output_var: np.ndarray,
                        noise_var: np.ndarray, min_signal_fraction: float = 0.01) -> Correction:
    """Correction for one window: its input-predicted :class:`Reference` and observed output moments.

    A column whose ideal output is constant keeps gain 1 and gets only the
    offset that moves its mean to the ideal.

    ``min_signal_fraction`` keeps the noise subtraction from dividing by
    nothing: the signal variance is at least that fraction of the observed.

    Examples
    --------
    >>> ref = Reference(ideal_mean=np.array([1.0]), ideal_var=np.array([4.0]), cal_mean=np.array([1.0]),
    ...                 cal_var=np.array([4.0]))
    >>> c = estimate_correction(ref, np.array([0.9]), np.array([0.81 * 4.0]), noise_var=np.array([0.0]))
    >>> np.round(c.gain, 6), np.round(c.offset, 6), np.round(c.drift_gain, 6)  # a 10 % gain loss
    (array([1.111111]), array([0.]), array([0.9]))
    """
    signal = np.maximum(output_var - noise_var, min_signal_fraction * output_var)
    ideal_var = np.maximum(reference.ideal_var, 1e-300)
    gain, offset = gaussian_monge_map(output_mean, signal, reference.ideal_mean, ideal_var)
    # A column whose ideal output does not vary (a dead unit) would need gain 0; keep its gain and
    # only move its mean, rather than demand a gain no hardware offers.
    constant = reference.ideal_var <= 1e-9 * max(float(np.max(reference.ideal_var)), 1e-300)
    gain = np.where(constant, 1.0, gain)
    offset = np.where(constant, reference.ideal_mean - output_mean, offset)
    back_gain, back_offset = gaussian_monge_map(reference.cal_mean, np.maximum(reference.cal_var, 1e-300),
                                                output_mean, signal)
    cost = gaussian_w2(output_mean, np.sqrt(signal), reference.ideal_mean, np.sqrt(ideal_var))
    return Correction(gain=gain, offset=offset, drift_gain=back_gain, drift_offset=back_offset,
                      transport_cost=cost)


def drift_correction(reference: Reference, drift_gain: np.ndarray, drift_offset: np.ndarray,
                     noise_var: np.ndarray | float = 0.0) -> Correction:
    r"""Correction for one window from the drift measured against the fingerprint, pair by pair.

    Today's raw outputs follow the fingerprint's prediction ``ĉ`` of the same
    inputs as ``y = a ĉ + b + e`` per column: ``(a, b)`` is the least-squares
    line of the paired samples (``drift_gain``, ``drift_offset``), which the
    window measures far more precisely than the outputs' own variance (the
    noise ``e`` is not in it). The noise-free output distribution is then
    ``N(a μ_ĉ + b, a² σ_ĉ²)``, with ``μ_ĉ, σ_ĉ²`` the prediction's moments on
    the window's inputs (``reference.cal_*``), and the correction is its Monge
    map to the ideal distribution ``N(μ_ŷ, σ_ŷ²)``:

    .. math:: g = \frac{σ_ŷ}{|a| σ_ĉ}, \qquad o = μ_ŷ − g (a μ_ĉ + b).

    ``σ_ŷ²/σ_ĉ²`` is a ratio of two functions of the *same* inputs, so the
    inputs' sampling error largely cancels in it. A column whose ideal output
    varies less than its noise (``noise_var``: a unit with hardly any weights)
    carries no signal to scale: it keeps gain 1 and gets the offset that moves
    its mean.

    Examples
    --------
    >>> ref = Reference(ideal_mean=np.array([1.0]), ideal_var=np.array([4.0]), cal_mean=np.array([1.0]),
    ...                 cal_var=np.array([4.0]))
    >>> c = drift_correction(ref, np.array([0.9]), np.array([0.0]))   # a 10 % gain loss since the fingerprint
    >>> np.round(c.gain, 6), np.round(c.offset, 6)
    (array([1.111111]), array([0.]))
    """
    drift_gain, drift_offset = np.asarray(drift_gain, dtype=float), np.asarray(drift_offset, dtype=float)
    signal_mean = drift_gain * reference.cal_mean + drift_offset
    signal_var = np.maximum(drift_gain**2 * reference.cal_var, 1e-300)
    ideal_var = np.maximum(reference.ideal_var, 1e-300)
    gain, offset = gaussian_monge_map(signal_mean, signal_var, reference.ideal_mean, ideal_var)
    constant = reference.ideal_var <= np.maximum(1e-9 * max(float(np.max(reference.ideal_var)), 1e-300), noise_var)
    gain = np.where(constant, 1.0, gain)
    offset = np.where(constant, reference.ideal_mean - signal_mean, offset)
    cost = gaussian_w2(signal_mean, np.sqrt(signal_var), reference.ideal_mean, np.sqrt(ideal_var))
    return Correction(gain=gain, offset=offset, drift_gain=drift_gain, drift_offset=drift_offset, transport_cost=cost)


def clipped_columns(outputs: np.ndarray, min_fraction: float = 0.01, rail: float | None = None) -> np.ndarray:
    """Columns whose samples pile up at their extreme value: an ADC rail, visibly non-Gaussian.

    A continuous output hits its exact maximum or minimum once; a clipped one
    sits there for a whole tail of the distribution. With the ADC's full scale
    ``rail`` known, only samples at the rail count (a quantized column that
    hardly varies sits on one code without being clipped); without it, a
    column needs at least eight distinct values to be called clipped.

    Examples
    --------
    >>> y = np.column_stack([np.linspace(-1, 1, 100), np.minimum(np.linspace(-1, 1, 100), 0.8)])
    >>> clipped_columns(y).tolist()
    [False, True]
    """
    outputs = np.asarray(outputs, dtype=float)
    if rail is not None:
        return np.mean(np.abs(outputs) >= rail, axis=0) > min_fraction
    at_max = np.mean(outputs >= outputs.max(axis=0), axis=0)
    at_min = np.mean(outputs <= outputs.min(axis=0), axis=0)
    varied = np.array([np.unique(column).size >= 8 for column in outputs.T], dtype=bool)
    return varied & (np.maximum(at_max, at_min) > min_fraction)


def refine_clipped(correction: Correction, outputs: np.ndarray, ideal: np.ndarray,
                   min_fraction: float = 0.01, rail: float | None = None) -> tuple[Correction, np.ndarray]:
    """Replace the Gaussian map of clipped columns by the empirical 1-D transport map.

    Moments of a clipped column are biased, so the Gaussian Monge map is
    wrong there; the quantiles of the unclipped part are not (see
    :func:`~plc_anna.correction.transport.empirical_affine_map`). ``outputs``
    and ``ideal`` are samples of the window, (n, n_out) each; they are sorted
    column by column, never paired. Returns the refined correction and the
    mask of refined columns.
    """
    mask = clipped_columns(outputs, min_fraction, rail)
    if not np.any(mask):
        return correction, mask
    outputs, ideal = np.asarray(outputs, dtype=float), np.asarray(ideal, dtype=float)
    fraction = max(float(np.max(np.mean(outputs[:, mask] >= outputs[:, mask].max(axis=0), axis=0))),
                   float(np.max(np.mean(outputs[:, mask] <= outputs[:, mask].min(axis=0), axis=0))))
    gain, offset, cost = empirical_affine_map(outputs[:, mask], ideal[:, mask], trim=min(0.45, fraction + 0.02))
    new_gain, new_offset, new_cost = correction.gain.copy(), correction.offset.copy(), correction.transport_cost.copy()
    new_gain[mask], new_offset[mask], new_cost[mask] = gain, offset, cost
    return Correction(gain=new_gain, offset=new_offset, drift_gain=correction.drift_gain,
                      drift_offset=correction.drift_offset, transport_cost=new_cost), mask
