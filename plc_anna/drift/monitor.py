r"""The drift monitor of one layer: paired residuals against the fingerprint, judged by what it can predict.

Scans are pooled into **windows** of at least ``window`` samples (a scan of
two samples carries no variance; no distance is computed from a batch too
small to carry it). For a window of inputs ``u`` (as the DAC drives them) and
raw outputs ``y``, each column's residuals ``r = y − ĉ`` against the
fingerprint's prediction ``ĉ = β u + b`` give three scores, standard normal
when nothing has drifted:

- **mean**: :math:`\bar r / \sqrt{σ^2/n}` (an offset moves it);
- **slope**: the regression slope of ``r`` on ``ĉ − \bar ĉ`` over
  :math:`\sqrt{σ^2 / S_{ĉĉ}}` (a gain moves it, and it needs no model of the
  inputs' distribution: the pairs are known);
- **variance**: the Wilson–Hilferty score of the residual variance
  :math:`s_r^2 / σ^2` on ``n − 2`` degrees of freedom, upward only (noise
  that grows; its squares then count about half a degree of freedom each).

The fingerprint is a posterior (:mod:`plc_anna.stats.reference`): its own
error in predicting this window is a *systematic* error (the same for every
window at the same operating point), not noise that averages out, so it is
not added to the variances: each score is shrunk towards 0 by ``dead_zone``
times the fingerprint's predictive standard deviation of that quantity
(``σ_m``). In the calibrated region ``σ_m`` is tiny and nothing changes;
outside it, a deviation the fingerprint cannot rule out counts as no
evidence, and the window's **coverage** says how much of its input variation
the fingerprint pinned down. The variance score counts only where the
fingerprint's own error adds less than a quarter of the noise variance, and
the noise variance's own sampling error (relative standard error
:math:`\sqrt{2/(N - d - 1)}` after :math:`N` calibration samples of
:math:`d` inputs) is part of the dead zone: a short calibration does not read
its own estimate as growing noise.

Five tests share the false-alarm budget ``arl0`` (each gets ``5·arl0``):

1. :class:`~plc_anna.drift.cusum.ScoreCusum` on the signed mean and slope
   scores, per column, and on their combination that a change of the
   column's gain moves most (weights as in test 3): a sparse drift, a few
   columns;
2. the same, upward only and for larger shifts, on the variance scores;
3. the same on two scores of the whole layer: a gain all columns share
   (conductance decay: each column's evidence is small, their sum is not), the
   optimal combination :math:`Σ_j (w_{μ,j} z_{mean,j} + w_{s,j} z_{slope,j}) /
   \sqrt{Σ_j (w_{μ,j}^2 + w_{s,j}^2)}` with :math:`w_μ = \sqrt{n}\,\bar ĉ/σ` and
   :math:`w_s = \sqrt{S_{ĉĉ}}/σ` (a gain ``1 + δ`` moves ``z_mean`` by
   :math:`δ w_μ` and ``z_slope`` by :math:`δ w_s`), and an offset all columns
   share, :math:`Σ_j z_{mean,j}/\sqrt{k}`;
4. a one-window test of :math:`T = Σ_j (z_{mean}^2 + z_{slope}^2 + z_{var}^2)`
   against its :math:`χ^2_{3k}` quantile (a large change in many columns: seen
   in the window it appears);
5. a :class:`~plc_anna.drift.cusum.ChiSquareCusum` on ``T`` (a small change in
   many columns in different directions).

**Faults.** A column whose scores jump beyond what noise can do at this
window's sample count (:math:`T_j` above its :math:`χ^2_3` quantile at
``1e-9 / k``) while its Fisher–Rao distance to the prediction grows by more
than ``fault_distance`` in one window has not drifted: :attr:`fault_detected`.

The Fisher–Rao distance between the predicted Gaussian and the observed one
is reported per column, with no variance below the ADC's quantization or the
fingerprint's noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from plc_anna.drift.cusum import ChiSquareCusum, ScoreCusum
from plc_anna.drift.fisher_rao import half_plane_distance
from plc_anna.stats.reference import Fingerprint

#: Samples a window needs at least before it is judged.
DEFAULT_WINDOW = 32
#: Scores are shrunk by this many predictive standard deviations of the fingerprint's own error.
DEFAULT_DEAD_ZONE = 4.0
#: Per-window false-fault probability of the whole layer.
FAULT_PROBABILITY = 1e-9
#: The tests that share the false-alarm budget.
TESTS = 5
COMPONENTS = ("mean", "slope", "variance")
#: Shifts the variance CUSUMs are tuned for: noise that grows by a fifth and more. Smaller ones are not
#: worth an alarm, and converter rounding alone moves a column's residual variance by a few percent
#: between input regions.
VARIANCE_SHIFTS = (2.0, 6.0, 15.0)


@dataclass(frozen=True)
class WindowStatistic:
    """The drift evidence of one window (arrays per column)."""

    count: int
    scores: np.ndarray          # (k, 3): mean, slope and variance scores, N(0, 1) under no drift
    gain: np.ndarray            # (k,): each column's gain score (its mean and slope scores, optimally weighted)
    shared: np.ndarray          # (2,): the layer's common-gain and common-offset scores, N(0, 1) under no drift
    statistic: float            # Σ scores², chi-square with ``dof`` under no drift
    dof: int
    distances: np.ndarray       # Fisher–Rao distance, predicted vs observed Gaussian
    coverage: float             # share of the window's input variation the fingerprint pinned down
    residual_mean: np.ndarray   # mean residual, output units
    expected_mean: np.ndarray
    expected_var: np.ndarray
    observed_mean: np.ndarray
    observed_var: np.ndarray

    @property
    def column_statistic(self) -> np.ndarray:
        """(k,): each column's Σ scores² (chi-square with 3 degrees of freedom under no drift)."""
        return np.sum(self.scores**2, axis=1)


def _shrink(value: np.ndarray, systematic: np.ndarray, noise: np.ndarray, dead_zone: float) -> np.ndarray:
    """``value`` less ``dead_zone`` systematic standard deviations (never past 0), over the noise's."""
    return np.sign(value) * np.maximum(np.abs(value) - dead_zone * systematic, 0.0) / noise


class DriftMonitor:
    """Drift and fault detector of one layer, in the style of river's detectors.

    ``update(inputs, outputs)`` feeds one scan (inputs as the DAC drives them)
    and returns :attr:`drift_detected`; a window is judged once it holds
    ``window`` samples (:attr:`window_closed`, :attr:`last`). ``reset()``
    starts every test afresh.

    Parameters
    ----------
    fingerprint
        The layer's posterior response.
    arl0
        Target mean number of windows between false alarms.
    window
        Samples a window needs at least.
    dead_zone
        Predictive standard deviations of the fingerprint's own error that count as no evidence.
    fault_distance
        Growth of a column's Fisher–Rao distance in one window that, with significant scores, is a fault.
    output_floor
        Smallest output variance to believe (the ADC's ``step² / 12``).
    """

    def __init__(self, fingerprint: Fingerprint, arl0: float = 1e6, window: int = DEFAULT_WINDOW,
                 dead_zone: float = DEFAULT_DEAD_ZONE, fault_distance: float = 1.0,
                 output_floor: float = 0.0) -> None:
        if not (isinstance(window, int) and window >= 4):
            raise ValueError(f"window must be an integer >= 4 samples, got {window!r}")
        self.arl0, self.window, self.dead_zone = arl0, window, dead_zone
        self.fault_distance, self.output_floor = fault_distance, output_floor
        k = fingerprint.n_outputs
        self.signed = ScoreCusum(k, 3, arl0=TESTS * arl0)
        self.spread = ScoreCusum(k, 1, arl0=TESTS * arl0, two_sided=False, shifts=VARIANCE_SHIFTS)
        self.shared = ScoreCusum(1, 2, arl0=TESTS * arl0)
        self.omnibus = ChiSquareCusum(dof=3 * k, arl0=TESTS * arl0)
        self.window_limit = float(stats.chi2.isf(1.0 / (TESTS * arl0), 3 * k))
        self.fault_limit = float(stats.chi2.isf(FAULT_PROBABILITY / k, 3))
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_count = 0
        self._last: WindowStatistic | None = None
        self._previous_distances: np.ndarray | None = None
        self._closed = False
        self._fault = False
        self._fault_columns = np.zeros(k, dtype=bool)
        self._shewhart = False
        self.windows = 0
        self.set_fingerprint(fingerprint)

    def set_fingerprint(self, fingerprint: Fingerprint) -> None:
        """Judge from now on against ``fingerprint`` (a grown one: same layer); the tests go on."""
        self.fingerprint = fp = fingerprint
        self._inverse = 1.0 / (fp.scatter[:, None] + fp.prior_precision[None, :])         # (d, k)
        # How the prior mean's column scale error reaches a prediction: through the prior's share.
        prior_share = fp.prior_precision[None, :] * self._inverse
        self._scale_map = prior_share * (fp.basis.T @ fp.programmed.T)                    # (d, k)
        # Fingerprint.coverage's weights, once per fingerprint (the window's coverage is read every window)
        self._pinned = fp.scatter / (fp.scatter + float(np.median(fp.prior_precision)))
        self._floor = np.maximum(fp.noise_var, self.output_floor)
        # The noise variance is itself an estimate: its relative standard error, sqrt(2 / dof), is no
        # evidence either (a short calibration otherwise reads its own sampling error as growing noise).
        self._noise_error = math.sqrt(2.0 / max(fp.count - fp.basis.shape[0] - 1.0, 1.0))

    # ----------------------------------------------------------------- read-only
    @property
    def drift_detected(self) -> bool:
        return self.signed.drift_detected or self.spread.drift_detected or self.shared.drift_detected \
            or self._shewhart or self.omnibus.drift_detected

    @property
    def fault_detected(self) -> bool:
        """Whether the last window showed a jump that is not drift (see the module docstring)."""
        return self._fault

    @property
    def fault_columns(self) -> np.ndarray:
        return self._fault_columns.copy()

    @property
    def window_closed(self) -> bool:
        """Whether the last update completed (and judged) a window."""
        return self._closed

    @property
    def last(self) -> WindowStatistic | None:
        """The statistic of the last window judged."""
        return self._last

    @property
    def ratio(self) -> float:
        """How close the tests are to an alarm: the largest CUSUM relative to its threshold (1: alarm)."""
        return max(self.signed.ratio, self.spread.ratio, self.shared.ratio, self.omnibus.cusum / self.omnibus.threshold)

    def evidence(self) -> np.ndarray:
        """(k,): each column's largest CUSUM relative to its threshold."""
        return np.maximum(self.signed.ratios, self.spread.ratios)

    # ------------------------------------------------------------------ update
    def update(self, inputs: np.ndarray, outputs: np.ndarray) -> bool:
        """Pool one scan; judge a window when it is complete. Returns :attr:`drift_detected`."""
        self._closed = False
        self._fault = False
        if inputs.shape[0] == 0:
            return self.drift_detected
        self._pending.append((inputs, outputs))
        self._pending_count += inputs.shape[0]
        if self._pending_count < self.window:
            return self.drift_detected
        u = np.vstack([p[0] for p in self._pending]) if len(self._pending) > 1 else inputs
        y = np.vstack([p[1] for p in self._pending]) if len(self._pending) > 1 else outputs
        self._pending, self._pending_count = [], 0
        self._judge(self.measure(u, y))
        return self.drift_detected

    def discard(self) -> None:
        """Forget the samples pooled for a window that has not closed (after a change of the correction)."""
        self._pending, self._pending_count = [], 0

    def reset(self) -> None:
        """Every test back to 0 and the pooled samples dropped (after a commit or a new fingerprint)."""
        self.signed.reset()
        self.spread.reset()
        self.shared.reset()
        self.omnibus.reset()
        self._shewhart = False
        self._previous_distances = None
        self.discard()

    def measure(self, inputs: np.ndarray, outputs: np.ndarray) -> WindowStatistic:
        """The statistic of one window (n >= 3 samples), without feeding the tests."""
        fp = self.fingerprint
        n = inputs.shape[0]
        if n < 3:
            raise ValueError(f"a window needs at least 3 samples, got {n}")
        # Sums and products rather than mean/var: this runs on the scan, and numpy's per-call cost, not the
        # arithmetic, is what a window of 32 samples spends its time on.
        predicted = fp.predict(inputs)                                   # (n, k)
        residual = outputs - predicted
        input_mean = inputs.sum(axis=0) / n
        predicted_mean = predicted.sum(axis=0) / n
        residual_mean = residual.sum(axis=0) / n
        offset = (input_mean - fp.input_mean) @ fp.basis                 # (d,)
        spread = (inputs - input_mean) @ fp.basis                        # (n, d)
        centred = predicted - predicted_mean
        deviation = residual - residual_mean
        s_cc = np.einsum("ij,ij->j", centred, centred)
        s_cr = np.einsum("ij,ij->j", centred, deviation)
        s_rr = np.einsum("ij,ij->j", deviation, deviation)
        noise = fp.noise_var
        # mean: noise sigma^2/n; the fingerprint's own error along the window's offset (systematic)
        scale_error = offset @ self._scale_map
        model_mean = noise * (1.0 / fp.count + (offset * offset) @ self._inverse) + fp.scale_var * scale_error**2
        mean_score = _shrink(residual_mean, np.sqrt(model_mean), np.sqrt(noise / n), self.dead_zone)
        # slope of the residuals on the centred prediction
        informative = s_cc > 1e-9 * noise
        s_inf = np.where(informative, s_cc, 1.0)
        slope = s_cr / s_inf
        lever = spread.T @ centred                                       # (d, k)
        model_slope = (noise * np.einsum("ij,ij->j", lever * lever, self._inverse)
                       + fp.scale_var * np.einsum("ij,ij->j", self._scale_map, lever) ** 2) / s_inf**2
        slope_score = np.where(informative, _shrink(slope, np.sqrt(model_slope), np.sqrt(noise / s_inf),
                                                    self.dead_zone), 0.0)
        # residual variance after the slope, against the noise
        dof = n - 2
        residual_var = np.maximum(s_rr - np.where(informative, slope * s_cr, 0.0), 0.0) / dof
        # expected excess from the fingerprint's own error (its weights and its columns' scale), in units of noise
        spread_sq = np.einsum("ij,ij->j", spread, spread)                # (d,)
        scaled = spread @ self._scale_map                                # (n, k)
        model_var = (spread_sq @ self._inverse + fp.scale_var * np.einsum("ij,ij->j", scaled, scaled) / noise) / dof
        ratio = residual_var / noise - model_var
        systematic = model_var + self._noise_error
        ratio = np.where(ratio > 1.0, np.maximum(ratio - self.dead_zone * systematic, 1.0),
                         np.minimum(ratio + self.dead_zone * systematic, 1.0))
        c = 2.0 / (9.0 * dof)
        # Only noise that grows is evidence: a quieter column has not drifted (and a fingerprint taken while
        # the hardware moved overstates the noise).
        variance_score = np.where(model_var < 0.25, np.maximum((np.cbrt(ratio) - (1.0 - c)) / math.sqrt(c), 0.0),
                                  0.0)
        scores = np.empty((mean_score.size, 3))
        scores[:, 0], scores[:, 1], scores[:, 2] = mean_score, slope_score, variance_score
        # the layer's common gain and common offset (see the module docstring)
        root_noise = np.sqrt(noise)
        w_mean = predicted_mean * (math.sqrt(n) / root_noise)
        w_slope = np.sqrt(np.where(informative, s_cc, 0.0)) / root_noise
        column_sq = w_mean * w_mean + w_slope * w_slope
        combined = w_mean * mean_score + w_slope * slope_score
        gain = combined / np.sqrt(np.maximum(column_sq, 1e-300))
        norm = math.sqrt(max(float(column_sq.sum()), 1e-300))
        shared = np.array([float(combined.sum()) / norm, float(mean_score.sum()) / math.sqrt(mean_score.size)])
        # the Gaussians for the distance, with no variance below the converter's or the noise's
        expected_var = np.maximum(s_cc / n + noise, self.output_floor)
        observed_mean = predicted_mean + residual_mean
        observed_var = (s_cc + 2.0 * s_cr + s_rr) / n
        distances = half_plane_distance(predicted_mean, np.sqrt(expected_var), observed_mean,
                                        np.sqrt(np.maximum(observed_var, self._floor)))
        energy = offset * offset + spread_sq / n
        total = float(energy.sum())
        coverage = float(self._pinned @ energy) / total if total > 0 else 1.0
        return WindowStatistic(count=n, scores=scores, gain=gain, shared=shared, statistic=float(np.sum(scores**2)),
                               dof=scores.size,
                               distances=distances, coverage=coverage, residual_mean=residual_mean,
                               expected_mean=predicted_mean, expected_var=expected_var, observed_mean=observed_mean,
                               observed_var=observed_var)

    def _judge(self, window: WindowStatistic) -> None:
        self._last, self._closed = window, True
        self.windows += 1
        self.signed.update(np.column_stack([window.scores[:, :2], window.gain]))
        self.spread.update(window.scores[:, 2:])
        self.shared.update(window.shared[None, :])
        self.omnibus.update(window.statistic)
        if window.statistic > self.window_limit:
            self._shewhart = True
        previous, self._previous_distances = self._previous_distances, window.distances
        if previous is not None:
            jump = (window.column_statistic > self.fault_limit) & (window.distances - previous > self.fault_distance)
            self._fault_columns = jump
            self._fault = bool(jump.any())

    # ------------------------------------------------------------------ words
    def reason(self) -> str:
        """Why the tests stand where they stand: which test, which columns, how far, at what coverage."""
        window = self._last
        if window is None:
            return "no window judged yet"
        if self._fault:
            columns = np.flatnonzero(self._fault_columns)
            return (f"column{'s' if columns.size > 1 else ''} {_list(columns)} jumped: scores "
                    f"{_scores(window, columns[0])} and a Fisher-Rao distance of "
                    f"{float(window.distances[columns[0]]):.3g} in one window of {window.count} samples, "
                    f"coverage {window.coverage:.2f}")
        evidence = self.evidence()
        top = np.argsort(evidence)[::-1][:3]
        if self._shewhart:
            test = (f"one window's chi-square {window.statistic:.1f} on {window.dof} degrees of freedom exceeded "
                    f"{self.window_limit:.1f}")
            top = np.argsort(window.column_statistic)[::-1][:3]
        elif self.shared.drift_detected or self.shared.ratio >= max(self.signed.ratio, self.spread.ratio,
                                                                    self.omnibus.cusum / self.omnibus.threshold):
            test = (f"the CUSUM of the {'gain' if abs(window.shared[0]) >= abs(window.shared[1]) else 'offset'} all "
                    f"columns share stands at {self.shared.ratio:.0%} of its threshold (score "
                    f"{float(window.shared[np.argmax(np.abs(window.shared))]):+.1f} this window)")
            top = np.argsort(np.abs(window.scores[:, 1]))[::-1][:3]
        elif self.omnibus.drift_detected or (self.omnibus.cusum / self.omnibus.threshold
                                             >= max(self.signed.ratio, self.spread.ratio)):
            test = (f"the all-column CUSUM stands at {self.omnibus.cusum / self.omnibus.threshold:.0%} of its "
                    "threshold")
            top = np.argsort(window.column_statistic)[::-1][:3]
        else:
            strongest = int(np.argmax(np.abs(window.scores[top[0]])))
            test = (f"the {COMPONENTS[strongest]} CUSUM of column {int(top[0])} stands at "
                    f"{float(evidence[top[0]]):.0%} of its threshold")
        return (f"{test}; strongest columns {_list(top)} (scores mean/slope/variance "
                f"{_scores(window, int(top[0]))}); coverage {window.coverage:.2f} over {window.count} samples")


def _list(columns) -> str:
    columns = [int(c) for c in columns]
    return ", ".join(map(str, columns[:5])) + (f" (+{len(columns) - 5} more)" if len(columns) > 5 else "")


def _scores(window: WindowStatistic, column: int) -> str:
    return "/".join(f"{float(v):+.1f}" for v in window.scores[column])
