"""The input-conditioned drift statistic of one layer for one scan.

Under no drift since the fingerprint (which the compensator records again
after every commit), a column's raw output is ``y = y_cal + e``: the
calibrated response ``y_cal`` (known for every batch from the inputs' moments
and the fingerprint) and noise ``e`` of variance ``σ_n²``. The batch mean and
variance of ``y`` then deviate from their prediction only by noise:

- ``Δμ = μ_y − m_cal`` with variance ``σ_n² / n`` plus the fingerprint's
  own prediction error ``σ_n² · mean_leverage``;
- ``Δv = σ_y² − (v_cal + σ_n²)`` with variance
  ``(4 v_cal σ_n² (1 + spread_leverage) + 2 σ_n⁴) / n``.

The leverages (:meth:`~plc_anna.stats.reference.Fingerprint.leverage`) carry
the fingerprint's own estimation error: without them a layer with many
inputs and a short calibration alarms on its own estimate.

``T = Σ_j Δμ_j²/Var Δμ_j + Δv_j²/Var Δv_j`` is then about χ² with
``2 · n_columns`` degrees of freedom: the conditioned version of the law
``n · d_FR² ~ χ²₂`` per column. Because the input moments enter the
prediction, a change of the input process moves it and raises no alarm.
The Fisher–Rao distance between the predicted and the observed Gaussian is
reported beside the statistic, in the units of the manifold.

:class:`DriftMonitor` feeds the statistic of every scan to a
:class:`~plc_anna.drift.cusum.ChiSquareCusum`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plc_anna.drift.cusum import ChiSquareCusum
from plc_anna.drift.fisher_rao import fisher_rao_distance
from plc_anna.stats.moments import batch_moments
from plc_anna.stats.reference import Fingerprint


@dataclass(frozen=True)
class ScanStatistic:
    """The drift evidence of one scan."""

    statistic: float            # T, chi-square with dof under no drift
    dof: int
    distances: np.ndarray       # per-column Fisher–Rao distance, predicted vs observed
    expected_mean: np.ndarray
    expected_var: np.ndarray


def conditioned_statistic(n: int, output_mean: np.ndarray, output_var: np.ndarray, cal_mean: np.ndarray,
                          cal_var: np.ndarray, noise_var: np.ndarray, mean_leverage: float = 0.0,
                          spread_leverage: float = 0.0) -> ScanStatistic:
    """The statistic for a batch of ``n`` samples (all arrays per column).

    Examples
    --------
    >>> k = np.ones(2)
    >>> s = conditioned_statistic(64, output_mean=k, output_var=4 * k + 0.01, cal_mean=k, cal_var=4 * k,
    ...                           noise_var=0.01 * k)
    >>> s.statistic, s.dof
    (0.0, 4)
    """
    if n < 2:
        raise ValueError(f"a scan needs at least 2 samples, got {n}")
    expected_mean = cal_mean
    signal = cal_var
    expected_var = signal + noise_var
    var_mean = noise_var * (1.0 / n + mean_leverage)
    var_var = (4.0 * signal * noise_var * (1.0 + spread_leverage) + 2.0 * noise_var**2) / n
    statistic = float(np.sum((output_mean - expected_mean) ** 2 / var_mean
                             + (output_var - expected_var) ** 2 / var_var))
    distances = fisher_rao_distance(expected_mean, np.sqrt(expected_var), output_mean,
                                    np.sqrt(np.maximum(output_var, 1e-300)))
    return ScanStatistic(statistic=statistic, dof=2 * int(np.size(output_mean)), distances=distances,
                         expected_mean=expected_mean, expected_var=expected_var)


#: Default variance floor of a column's mean prediction, in units of the noise variance.
#: A linear fingerprint cannot represent converter rounding: when the live inputs fall
#: between the values seen at calibration (a process shift), each column's batch mean
#: moves by a few tenths of the noise standard deviation without any drift. Deviations
#: of the mean below about half the noise floor are therefore not taken as evidence;
#: the detection benchmark shows what this costs (mean-only changes under the 2 %
#: deadband are seen later) and what it saves (no alarms on process shifts).
DEFAULT_MODEL_ERROR = 0.3


class DriftMonitor:
    """Input-conditioned drift detector of one layer, in the style of river's detectors.

    ``update(inputs, outputs)`` feeds one scan and returns whether drift is
    detected (the same as the read-only ``drift_detected`` afterwards);
    ``reset()`` starts the CUSUM afresh.

    Parameters
    ----------
    fingerprint
        The calibrated response of the layer.
    arl0
        Target mean number of scans between false alarms.
    shift
        Mean shift of the statistic's normal score the CUSUM is tuned for.
    model_error
        Variance floor, as a fraction of the noise variance, on the
        prediction of each column's batch mean: quantization and other
        deterministic nonlinearity are not independent noise, and a process
        change shifts their mean (see :data:`DEFAULT_MODEL_ERROR`).
    """

    def __init__(self, fingerprint: Fingerprint, arl0: float = 1e6, shift: float = 1.0,
                 model_error: float = DEFAULT_MODEL_ERROR) -> None:
        self.fingerprint = fingerprint
        self.arl0 = arl0
        self.shift = shift
        self.model_error = model_error
        self.detector = ChiSquareCusum(dof=2 * fingerprint.weights.shape[0], arl0=arl0, shift=shift)
        self._last: ScanStatistic | None = None
        self._calibrated: np.ndarray | None = None

    @property
    def drift_detected(self) -> bool:
        return self.detector.drift_detected

    @property
    def last(self) -> ScanStatistic | None:
        """The statistic of the last scan measured."""
        return self._last

    @property
    def calibrated(self) -> np.ndarray | None:
        """The last scan's calibrated response ``W_cal x + b_cal``, (n, n_out)."""
        return self._calibrated

    def measure(self, inputs: np.ndarray, outputs: np.ndarray) -> ScanStatistic:
        """The statistic of one scan, without feeding the detector."""
        fp = self.fingerprint
        self._calibrated = fp.predict(inputs)
        out, cal = batch_moments(outputs), batch_moments(self._calibrated)
        mean_leverage, spread_leverage = fp.leverage(inputs)
        self._last = conditioned_statistic(outputs.shape[0], out.mean, out.var, cal.mean, cal.var, fp.noise_var,
                                           mean_leverage=mean_leverage + self.model_error,
                                           spread_leverage=spread_leverage)
        return self._last

    def update(self, inputs: np.ndarray, outputs: np.ndarray) -> bool:
        """Measure one scan and feed the CUSUM; returns ``drift_detected``."""
        return self.detector.update(self.measure(inputs, outputs).statistic)

    def reset(self) -> None:
        self.detector.reset()
