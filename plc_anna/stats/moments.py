"""Streaming mean, variance and covariance of d-dimensional samples, vectorized over columns.

Moments are kept as ``(count, mean, m2)``, ``m2`` being the sum of squared (or,
with covariance, of outer products of) deviations from the mean. A batch is
reduced in two passes and batches are combined with the parallel formula of
Chan, Golub & LeVeque (1979): no sum of squares of raw values is ever formed,
so data far from zero keep their precision. All moments are maximum-likelihood
(ddof = 0).
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Moments:
    """Moments of a sample of d-dimensional vectors (maximum-likelihood, ddof = 0).

    The arrays are stored as read-only float copies.

    Examples
    --------
    >>> m = Moments(2, np.array([2.0, 4.0]), np.array([2.0, 8.0]))
    >>> m.count, m.var, m.std, m.covariance_tracked
    (2.0, array([1., 4.]), array([1., 2.]), False)
    """

    count: float        # number of samples, or sum of weights
    mean: np.ndarray    # (d,)
    m2: np.ndarray      # (d, d) sum of centred outer products if covariance is tracked, else (d,)

    def __post_init__(self) -> None:
        count = float(self.count)
        if not (math.isfinite(count) and count >= 0):
            raise ValueError(f"count must be finite and >= 0, got {self.count!r}")
        mean = np.array(self.mean, dtype=float)
        m2 = np.array(self.m2, dtype=float)
        if mean.ndim != 1:
            raise ValueError(f"mean must have shape (d,), got shape {mean.shape}")
        d = mean.shape[0]
        if m2.shape not in ((d,), (d, d)):
            raise ValueError(f"m2 must have shape ({d},) or ({d}, {d}) to match mean, got shape {m2.shape}")
        object.__setattr__(self, "count", count)
        for name, array in (("mean", mean), ("m2", m2)):
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @property
    def covariance_tracked(self) -> bool:
        """Whether ``m2`` is the full (d, d) matrix."""
        return self.m2.ndim == 2

    def _require_samples(self, what: str) -> None:
        if not self.count > 0:
            raise ValueError(f"{what} is undefined: the moments hold no samples (count == 0)")

    @property
    def var(self) -> np.ndarray:
        """Per-column variance, shape (d,)."""
        self._require_samples("variance")
        return (np.diag(self.m2) if self.covariance_tracked else self.m2) / self.count

    @property
    def std(self) -> np.ndarray:
        """Per-column standard deviation, shape (d,)."""
        return np.sqrt(self.var)

    @property
    def cov(self) -> np.ndarray:
        """Covariance matrix, shape (d, d)."""
        if not self.covariance_tracked:
            raise ValueError("covariance is not tracked: compute these moments with covariance=True")
        self._require_samples("covariance")
        return self.m2 / self.count


def _positive_int(value: object, name: str) -> int:
    """``value`` as an int >= 1, else ValueError naming ``name``."""
    number = operator.index(value) if hasattr(value, "__index__") else 0  # refuses floats and strings
    if isinstance(value, bool) or number < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return number


def _as_batch(X: np.ndarray, n_features: int | None = None, allow_empty: bool = False) -> np.ndarray:
    """``X`` as a finite float array of shape (n, d), else ValueError; the one validation of every input."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got shape {X.shape}; a 1-D array is ambiguous: "
                         "pass one sample as X[None, :] or one feature as X[:, None]")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} columns, expected n_features = {n_features}")
    if X.shape[1] < 1:
        raise ValueError("X must have at least one column")
    if X.shape[0] < 1 and not allow_empty:
        raise ValueError("X must hold at least one sample (row)")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or Inf")
    return X


def _reduce(X: np.ndarray, covariance: bool, weights: np.ndarray | None = None) -> Moments:
    """Two-pass (weighted) moments of a validated, non-empty (n, d) batch; ``weights`` (n,) > 0 somewhere."""
    if weights is None:
        count, mean = float(X.shape[0]), X.mean(axis=0)
    else:
        count = float(weights.sum())
        mean = weights @ X / count
    D = X - mean                                       # (n, d)
    wD = D if weights is None else D * weights[:, None]
    if covariance:
        m2 = wD.T @ D                                  # (d, d)
        m2 = 0.5 * (m2 + m2.T)
    else:
        m2 = np.einsum("ij,ij->j", wD, D)              # (d,)
    return Moments(count, mean, m2)


def empty_moments(d: int, covariance: bool = False) -> Moments:
    """Moments of no samples: the identity of :func:`merge_moments`.

    Examples
    --------
    >>> empty_moments(2, covariance=True).m2.shape
    (2, 2)
    """
    d = _positive_int(d, "d")
    return Moments(0.0, np.zeros(d), np.zeros((d, d) if covariance else d))


def batch_moments(X: np.ndarray, covariance: bool = False) -> Moments:
    """Moments of the rows of ``X``, shape (n, d) with n >= 1, computed in two passes.

    Examples
    --------
    >>> m = batch_moments(np.array([[1.0, 2.0], [3.0, 6.0]]), covariance=True)
    >>> m.count, m.mean, m.var
    (2.0, array([2., 4.]), array([1., 4.]))
    >>> m.cov
    array([[1., 2.],
           [2., 4.]])
    >>> batch_moments(np.array([1.0, 2.0]))
    Traceback (most recent call last):
    ...
    ValueError: X must have shape (n, d), got shape (2,); a 1-D array is ambiguous: pass one sample as X[None, :] or one feature as X[:, None]
    """
    return _reduce(_as_batch(X), bool(covariance))


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Moments of the union of two samples (Chan et al.'s parallel formula).

    Either may be empty (count 0); both must have the same d and covariance flag.

    Examples
    --------
    >>> X = np.array([[1.0], [2.0], [6.0]])
    >>> merged = merge_moments(batch_moments(X[:1]), batch_moments(X[1:]))
    >>> merged.count, merged.mean, merged.var
    (3.0, array([3.]), array([4.66666667]))
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"cannot merge moments of {a.mean.shape[0]} and {b.mean.shape[0]} features")
    if a.covariance_tracked != b.covariance_tracked:
        raise ValueError("cannot merge moments with and without covariance: track it in both or neither")
    if not b.count > 0:
        return a
    if not a.count > 0:
        return b
    count = a.count + b.count
    delta = b.mean - a.mean                            # (d,)
    mean = a.mean + delta * (b.count / count)
    scale = a.count * b.count / count
    spread = np.outer(delta, delta) if a.covariance_tracked else delta * delta
    return Moments(count, mean, a.m2 + b.m2 + spread * scale)


class _Tracker:
    """Shared constructor checks, batch validation and state of the streaming trackers."""

    def __init__(self, n_features: int, covariance: bool = False) -> None:
        self.n_features = _positive_int(n_features, "n_features")
        self.covariance = bool(covariance)
        self.reset()

    def update(self, X: np.ndarray) -> None:
        """Add a batch ``X`` of shape (n, n_features); n = 0 is a no-op.

        A bad batch (wrong shape, NaN or Inf) raises ValueError and changes nothing.
        """
        X = _as_batch(X, self.n_features, allow_empty=True)
        if X.shape[0]:
            self._add(X)

    def _add(self, X: np.ndarray) -> None:
        raise NotImplementedError

    @property
    def moments(self) -> Moments:
        """The current moments (an immutable snapshot)."""
        return self._state

    def reset(self) -> None:
        """Forget every sample seen."""
        self._state = empty_moments(self.n_features, self.covariance)


class RunningMoments(_Tracker):
    """Cumulative moments of everything seen since the last reset.

    Examples
    --------
    >>> rm = RunningMoments(2)
    >>> rm.update(np.array([[1.0, 2.0]])); rm.update(np.array([[3.0, 6.0]]))
    >>> rm.moments.mean, rm.moments.var
    (array([2., 4.]), array([1., 4.]))
    >>> rm.update(np.array([[1.0, np.nan]]))
    Traceback (most recent call last):
    ...
    ValueError: X contains NaN or Inf
    >>> rm.moments.count
    2.0
    """

    def _add(self, X: np.ndarray) -> None:
        self._state = merge_moments(self._state, _reduce(X, self.covariance))


class WindowMoments(_Tracker):
    """Moments of the last ``window`` samples, fed in batches.

    A batch larger than the window keeps its last ``window`` rows. The rows are
    kept in a (window, n_features) ring buffer, so the moments are exact; they
    are computed on demand and cached until the next update.

    Examples
    --------
    >>> wm = WindowMoments(1, window=2)
    >>> wm.update(np.array([[1.0], [2.0], [3.0]]))
    >>> wm.update(np.array([[7.0]]))
    >>> wm.moments.count, wm.moments.mean
    (2.0, array([5.]))
    """

    def __init__(self, n_features: int, window: int, covariance: bool = False) -> None:
        self.window = _positive_int(window, "window")
        super().__init__(n_features, covariance)

    def _add(self, X: np.ndarray) -> None:
        n = X.shape[0]
        if n >= self.window:
            self._buffer[:] = X[-self.window:]
            self._next = 0
        else:
            rows = (self._next + np.arange(n)) % self.window
            self._buffer[rows] = X
            self._next = (self._next + n) % self.window
        self._filled = min(self._filled + n, self.window)
        self._state = None

    @property
    def moments(self) -> Moments:
        """The moments of the rows in the window (computed on first access after an update)."""
        if self._state is None:
            # until the buffer first fills, writes start at row 0 and do not wrap
            self._state = _reduce(self._buffer[:self._filled], self.covariance)
        return self._state

    def reset(self) -> None:
        """Forget every sample seen."""
        super().reset()
        self._buffer = np.zeros((self.window, self.n_features))  # (window, d)
        self._next = 0      # ring-buffer row the next sample goes to
        self._filled = 0    # rows of the buffer that hold samples


class EWMoments(_Tracker):
    """Exponentially weighted moments.

    Each new sample has weight 1 and older weights decay by ``decay = 0.5 **
    (1 / halflife)`` per sample (``halflife`` in samples). ``count`` is the sum
    of the weights, which tends to ``1 / (1 - decay)``.

    Examples
    --------
    >>> ew = EWMoments(1, halflife=1.0)                # decay 0.5
    >>> ew.update(np.array([[4.0], [1.0]]))            # weights 0.5, 1
    >>> ew.moments.count, ew.moments.mean, ew.moments.var
    (1.5, array([2.]), array([2.]))
    """

    def __init__(self, n_features: int, halflife: float, covariance: bool = False) -> None:
        real = isinstance(halflife, numbers.Real) and not isinstance(halflife, bool)
        if not (real and math.isfinite(halflife) and halflife > 0):
            raise ValueError(f"halflife must be a finite number of samples > 0, got {halflife!r}")
        self.halflife = float(halflife)
        self.decay = 0.5 ** (1.0 / self.halflife)
        super().__init__(n_features, covariance)

    def _add(self, X: np.ndarray) -> None:
        n, old = X.shape[0], self._state
        weights = self.decay ** np.arange(n - 1, -1, -1, dtype=float)  # (n,), newest = 1
        faded = Moments(old.count * self.decay**n, old.mean, old.m2 * self.decay**n)
        self._state = merge_moments(faded, _reduce(X, self.covariance, weights))
