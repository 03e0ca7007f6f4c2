r"""A one-sided CUSUM on chi-square statistics, with a stated false-alarm guarantee.

Each update takes a statistic that is :math:`\chi^2_{dof}` when nothing has
drifted (for example :math:`n\, d_{layer}^2` from
:mod:`plc_anna.drift.fisher_rao`, with ``dof = 2 * n_columns``). The
Wilson–Hilferty transform turns it into an approximately standard normal
score :math:`z_t`, and Page's CUSUM accumulates evidence of an upward shift:

.. math:: S_t = \max(0,\ S_{t-1} + z_t - k), \qquad \text{alarm when } S_t > h.

False-alarm guarantee: :math:`h` is chosen so that Siegmund's approximation of
the in-control average run length (the mean number of no-drift updates until
a false alarm) equals ``arl0``. Siegmund's formula is accurate to a few
percent for normal scores. The Wilson–Hilferty scores have mean ~0 and
standard deviation ~1 for any ``dof >= 1``, and their upper quantiles (the ones
that raise alarms) are within 0.05 of the normal's up to 0.999; their lower
tail is truncated for small ``dof`` (at -1.65 for ``dof = 1``). Simulated
in-control run lengths are within 4 % of ``arl0`` for ``dof >= 2`` (200 and
1000 checked) and about 10 % short for ``dof = 1``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

#: Siegmund's overshoot correction for normal increments, :math:`2 \cdot 0.583`.
SIEGMUND_CORRECTION = 1.166


def wilson_hilferty_score(statistic: float | np.ndarray, dof: float) -> float | np.ndarray:
    r"""Normal score of a chi-square statistic (Wilson–Hilferty cube-root transform).

    .. math:: z = \frac{(x / \nu)^{1/3} - (1 - 2 / (9 \nu))}{\sqrt{2 / (9 \nu)}}

    Approximately :math:`N(0, 1)` when :math:`x \sim \chi^2_\nu`, for any
    :math:`\nu \ge 1`. Returns a float for a scalar, else an array.

    Examples
    --------
    >>> round(wilson_hilferty_score(16.0, 16), 4)  # the mean sits just above the median
    0.1179
    >>> np.round(wilson_hilferty_score(np.array([0.0, 32.0]), 16), 4)
    array([-8.3674,  2.3234])
    """
    if not (isinstance(dof, (int, float, np.integer, np.floating)) and math.isfinite(dof) and dof > 0):
        raise ValueError(f"dof must be a positive finite number, got {dof!r}")
    x = np.asarray(statistic, dtype=float)
    if np.any(np.isnan(x)) or np.any(x < 0):
        raise ValueError("statistic must be a non-negative chi-square value (no NaN)")
    c = 2.0 / (9.0 * dof)
    z = (np.cbrt(x / dof) - (1.0 - c)) / math.sqrt(c)
    return float(z) if z.ndim == 0 else z


def _check_reference(reference: float) -> None:
    if not (math.isfinite(reference) and reference > 0):
        raise ValueError(f"reference must be a positive finite number, got {reference!r}")


def siegmund_arl0(threshold: float, reference: float) -> float:
    r"""Siegmund's in-control average run length of the normal-score CUSUM.

    For :math:`S_t = \max(0, S_{t-1} + z_t - k)` with :math:`z_t \sim N(0, 1)`
    and alarm at :math:`S_t > h`,

    .. math:: ARL_0 \approx \frac{e^{2 k b} - 2 k b - 1}{2 k^2}, \qquad b = h + 1.166,

    with :math:`k` = ``reference`` > 0 and :math:`h` = ``threshold`` >= 0.

    Examples
    --------
    >>> round(siegmund_arl0(4.0, 0.5))
    338
    >>> round(siegmund_arl0(math.log(1e6), 0.5) / 1e6, 2)  # h = ln(ARL0) overshoots ~6x
    6.42
    """
    _check_reference(reference)
    if not (threshold >= 0 and not math.isnan(threshold)):
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    x = 2.0 * reference * (threshold + SIEGMUND_CORRECTION)
    if x > 700.0:  # exp would overflow; the run length is astronomically long
        return math.inf
    return (math.expm1(x) - x) / (2.0 * reference**2)


def threshold_for_arl0(arl0: float, reference: float) -> float:
    r"""The threshold :math:`h` with ``siegmund_arl0(h, reference) == arl0`` (Brent's method).

    ``arl0`` must exceed ``siegmund_arl0(0, reference)``, the run length of a
    zero threshold (about 2.1 for ``reference = 0.5``).

    Examples
    --------
    >>> round(threshold_for_arl0(1e6, 0.5), 3)
    11.956
    >>> round(siegmund_arl0(threshold_for_arl0(200.0, 0.5), 0.5), 6)
    200.0
    """
    _check_reference(reference)
    floor = siegmund_arl0(0.0, reference)
    if not (math.isfinite(arl0) and arl0 > floor):
        raise ValueError(f"arl0 must be finite and > {floor:.4g} for reference {reference}, got {arl0!r}")
    upper = 1.0
    while siegmund_arl0(upper, reference) < arl0:
        upper *= 2.0
    return optimize.brentq(lambda h: siegmund_arl0(h, reference) - arl0, 0.0, upper, xtol=1e-12, rtol=1e-14)


class ChiSquareCusum:
    r"""One-sided CUSUM of Wilson–Hilferty scores of :math:`\chi^2_{dof}` statistics.

    .. math:: z_t = \mathrm{WH}(x_t), \qquad S_t = \max(0,\ S_{t-1} + z_t - k), \qquad
              k = \mathrm{shift} / 2,

    and drift is declared once :math:`S_t > h`, where :math:`h` solves
    Siegmund's :math:`ARL_0(h, k) =` ``arl0``. **Guarantee:** with no drift the
    mean number of updates until a false alarm is approximately ``arl0``
    (Siegmund's approximation on the Wilson–Hilferty scores; checked by
    simulation in the tests). For the default ``shift = 1`` the increments
    :math:`z - 1/2` are the log-likelihood ratio of :math:`N(1,1)` against
    :math:`N(0,1)`, so Lorden's bound :math:`ARL_0 \ge e^h` makes
    :math:`h = \ln(ARL_0)` safe, but about 6x too conservative (13.82 gives
    :math:`6.4 \times 10^6` updates where 11.96 gives :math:`10^6`), delaying
    detection by about :math:`1.86 / (\mu - k)` updates for nothing.

    Once drift is detected it stays detected (S keeps accumulating) until
    :meth:`reset`, which a compensation commit should call.

    Parameters
    ----------
    dof
        Degrees of freedom of the statistic under no drift.
    arl0
        Target in-control average run length, in updates.
    shift
        Mean shift of the normal score the detector is tuned to detect fastest.

    Examples
    --------
    >>> cusum = ChiSquareCusum(dof=16, arl0=1e6)
    >>> round(cusum.threshold, 3), round(cusum.expected_delay(3.0), 2)
    (11.956, 5.25)
    >>> [cusum.update(x) for x in (16.0, 15.0, 60.0, 60.0, 60.0)]
    [False, False, False, False, True]
    >>> round(cusum.cusum, 3), cusum.n_updates
    (12.946, 5)
    >>> cusum.reset(); cusum.drift_detected, cusum.cusum
    (False, 0.0)
    """

    def __init__(self, dof: int, arl0: float = 1e6, shift: float = 1.0):
        if not (isinstance(dof, (int, np.integer)) and not isinstance(dof, bool) and dof >= 1):
            raise ValueError(f"dof must be an integer >= 1, got {dof!r}")
        if not (math.isfinite(shift) and shift > 0):
            raise ValueError(f"shift must be a positive finite number, got {shift!r}")
        self.dof = dof
        self.arl0 = arl0
        self.shift = shift
        self._reference = shift / 2.0
        self._wh_centre = 1.0 - 2.0 / (9.0 * dof)
        self._wh_scale = math.sqrt(2.0 / (9.0 * dof))
        self._threshold = threshold_for_arl0(arl0, self._reference)
        self._score = math.nan
        self._n_updates = 0
        self.reset()

    def reset(self) -> None:
        """Set the CUSUM back to 0 and clear the alarm; ``n_updates`` and ``score`` are kept."""
        self._cusum = 0.0
        self._drift_detected = False

    def update(self, statistic: float) -> bool:
        """Consume one chi-square statistic; return :attr:`drift_detected` after the update.

        NaN, infinite or negative statistics raise ValueError and leave the state unchanged.
        """
        x = float(statistic)
        if not (math.isfinite(x) and x >= 0):
            raise ValueError(f"statistic must be a finite, non-negative chi-square value, got {statistic!r}")
        self._score = (math.cbrt(x / self.dof) - self._wh_centre) / self._wh_scale  # wilson_hilferty_score
        self._cusum = max(0.0, self._cusum + self._score - self._reference)
        self._n_updates += 1
        if self._cusum > self._threshold:
            self._drift_detected = True
        return self._drift_detected

    def expected_delay(self, mean_score: float) -> float:
        r"""Approximate detection delay :math:`(h + 1.166) / (\mu - k)` in updates for a sustained mean score :math:`\mu`.

        Infinite when :math:`\mu \le k`.
        """
        if math.isnan(mean_score):
            raise ValueError("mean_score must not be NaN")
        if mean_score <= self._reference:
            return math.inf
        return (self._threshold + SIEGMUND_CORRECTION) / (mean_score - self._reference)

    @property
    def drift_detected(self) -> bool:
        """Whether :math:`S` has exceeded the threshold since construction or the last reset."""
        return self._drift_detected

    @property
    def score(self) -> float:
        """The last Wilson–Hilferty score :math:`z_t` (NaN before the first update)."""
        return self._score

    @property
    def cusum(self) -> float:
        """The CUSUM statistic :math:`S_t`."""
        return self._cusum

    @property
    def threshold(self) -> float:
        """The alarm threshold :math:`h`."""
        return self._threshold

    @property
    def reference(self) -> float:
        """The reference value (allowance) :math:`k = \\mathrm{shift} / 2`."""
        return self._reference

    @property
    def n_updates(self) -> int:
        """Number of statistics consumed since construction."""
        return self._n_updates


#: Shifts (in standard deviations of a score) the :class:`ScoreCusum` is tuned for at once.
DEFAULT_SHIFTS = (0.5, 1.5, 4.0, 10.0)


class ScoreCusum:
    r"""Page CUSUMs on standard-normal scores, per column and component, tuned to several shifts at once.

    Each update takes a ``(columns, components)`` array of scores that are
    :math:`N(0, 1)` when nothing has drifted (signed: a drift keeps its sign
    over time, so signed scores carry more evidence than squared ones). For
    every score, sign and shift :math:`δ` of ``shifts``:

    .. math:: S \leftarrow \max(0,\ S \pm z - δ/2), \qquad \text{alarm when } S > h_δ,

    the log-likelihood-ratio CUSUM of :math:`N(±δ, 1)` against :math:`N(0, 1)`
    (scaled by :math:`1/δ`). Small shifts accumulate over many updates, a
    large one alarms in the update it appears. Each :math:`h_δ` is set by
    Siegmund's approximation for an in-control run length of ``arl0`` times the
    number of CUSUMs, so the whole bank keeps about ``arl0`` (a union bound:
    the bank is conservative).

    Parameters
    ----------
    columns, components
        The shape of the scores.
    arl0
        Target in-control average run length of the whole bank, in updates.
    two_sided
        Watch both signs (else only upward shifts).
    shifts
        The shifts the bank is tuned for.

    Examples
    --------
    >>> bank = ScoreCusum(columns=4, components=2, arl0=1e4)
    >>> bank.update(np.zeros((4, 2))), bank.update(np.array([[0, 0], [0, 0], [0, 12.0], [0, 0]]))
    (False, True)
    >>> bank.columns_detected.tolist(), bank.ratio > 1    # the shift-10 CUSUM took it in one update
    ([False, False, True, False], True)
    """

    def __init__(self, columns: int, components: int, arl0: float = 1e6, two_sided: bool = True,
                 shifts: tuple[float, ...] = DEFAULT_SHIFTS) -> None:
        self.shifts = np.asarray(shifts, dtype=float)
        if self.shifts.ndim != 1 or self.shifts.size < 1 or not np.all(self.shifts > 0):
            raise ValueError(f"shifts must be positive numbers, got {shifts!r}")
        self.signs = np.array([1.0, -1.0]) if two_sided else np.array([1.0])
        self.shape = (int(columns), int(components))
        tests = self.shape[0] * self.shape[1] * self.signs.size * self.shifts.size
        self.thresholds = np.array([threshold_for_arl0(arl0 * tests, shift / 2.0) for shift in self.shifts])
        self._sums = np.zeros((*self.shape, self.signs.size, self.shifts.size))
        self._half_shifts = self.shifts / 2.0
        self._relative = np.zeros_like(self._sums)
        self._ratios: np.ndarray | None = None
        self._detected = False

    def update(self, scores: np.ndarray) -> bool:
        """Add one update's scores, shape ``(columns, components)``; returns :attr:`drift_detected`."""
        scores = np.asarray(scores, dtype=float)
        if scores.shape != self.shape or not np.all(np.isfinite(scores)):
            raise ValueError(f"scores must be a finite array of shape {self.shape}, got {scores.shape}")
        sums = self._sums
        sums += scores[:, :, None, None] * self.signs[None, None, :, None]
        sums -= self._half_shifts
        np.maximum(sums, 0.0, out=sums)
        np.divide(sums, self.thresholds, out=self._relative)
        self._ratios = None
        if self._relative.max() > 1.0:
            self._detected = True
        return self._detected

    def reset(self) -> None:
        """Every CUSUM back to 0, the alarm cleared."""
        self._sums[:] = 0.0
        self._relative[:] = 0.0
        self._ratios = None
        self._detected = False

    @property
    def drift_detected(self) -> bool:
        return self._detected

    @property
    def ratios(self) -> np.ndarray:
        """(columns,): each column's largest CUSUM relative to its threshold (1: alarm)."""
        return self._column_ratios().copy()

    @property
    def ratio(self) -> float:
        """The bank's largest CUSUM relative to its threshold."""
        return float(self._column_ratios().max())

    def _column_ratios(self) -> np.ndarray:
        if self._ratios is None:   # read several times a window, computed once
            self._ratios = self._relative.reshape(self.shape[0], -1).max(axis=1)
        return self._ratios

    @property
    def columns_detected(self) -> np.ndarray:
        """(columns,): the columns whose CUSUMs crossed their thresholds."""
        return self.ratios > 1.0
