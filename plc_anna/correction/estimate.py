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

from plc_anna.correction.transport import gaussian_monge_map, gaussian_w2
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
