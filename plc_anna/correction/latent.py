"""Drift latent: a Gaussian information bottleneck over the history of corrections.

Each committed correction of a layer is a point ``x`` in feature space,
``x = [log gain_j, offset_j / gain_j]`` per column: under PCM drift
(``G ∝ t^-ν``) and log-time periphery ageing both features grow linearly in
log-age, so a linear model in ``y = [log10(age + t_ref), T − T_ref]`` (the
temperature only when it varied) describes the trend.

The Gaussian information bottleneck (Chechik et al., 2005) compresses ``x``
into ``t = A x + ξ``, ``ξ ~ N(0, I)``, keeping what predicts ``y``. Its
projection rows are the generalized eigenvectors of

.. math:: \\Sigma_{x|y} v = \\lambda \\Sigma_x v,

a direction turns on at ``β > 1/(1 − λ)`` (``λ = 1 − ρ²``, ``ρ`` the canonical
correlation), with scale ``α = sqrt((β(1 − λ) − 1) / (λ vᵀ Σ_x v))``. With the
single relevance variable log-age there is one drift direction: the pattern
of per-column rates. The prediction goes through the bottleneck,

.. math:: \\hat x(y) = \\mu_x + \\Sigma_x A^T (A \\Sigma_x A^T + I)^{-1} A \\Sigma_{xy} \\Sigma_y^{-1} (y - \\mu_y),

so ``β = 0`` predicts the mean of the history (no compression passes
anything), and a large ``β`` gives the least-squares regression on ``y``:
β trades compression (forgetting calibration noise) for prediction.
``Σ_x`` gets a small ridge, because a history of a few calibrations has
fewer points than features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg

#: Ages are shifted by ``t_ref`` before the logarithm, so age 0 is finite. Drift laws differ in
#: their origin (PCM's t0 is 20 s, HERMES' 300 s), so the latent picks ``t_ref`` from this grid
#: by the best straight-line fit of its history.
T_REF_GRID_S = (1.0, 10.0, 60.0, 300.0, 1000.0, 3600.0)
T_REF_S = 60.0
#: Temperatures count from here.
REFERENCE_TEMPERATURE_K = 300.0


@dataclass(frozen=True)
class CorrectionRecord:
    """One committed correction of one layer, with when and where it was estimated."""

    age_s: float
    temperature_k: float
    gain: np.ndarray
    offset: np.ndarray


@dataclass(frozen=True)
class RemainingLife:
    """When a predicted correction leaves the hardware range: an age with a band, and which column."""

    age_s: float
    low_s: float
    high_s: float
    column: int
    parameter: str  # "gain" or "offset"


def correction_features(gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``[log gain, offset / gain]``: the coordinates in which drift is linear in log-age."""
    gain = np.asarray(gain, dtype=float)
    if np.any(gain <= 0):
        raise ValueError("gains must be positive to model their drift")
    return np.concatenate([np.log(gain), np.asarray(offset, dtype=float) / gain])


def correction_from_features(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`correction_features`."""
    k = x.shape[-1] // 2
    gain = np.exp(x[..., :k])
    return gain, x[..., k:] * gain


def log_age(age_s: float | np.ndarray, t_ref_s: float = T_REF_S) -> np.ndarray:
    """``log10(age + t_ref)``: the drift clock."""
    return np.log10(np.asarray(age_s, dtype=float) + t_ref_s)


def information_bottleneck(cov_x: np.ndarray, cov_xy: np.ndarray, cov_y: np.ndarray,
                           beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian IB projection ``A`` (rows), eigenvalues ``λ`` (ascending) and directions ``V`` (columns).

    ``cov_x`` must be positive definite (add a ridge first).

    Examples
    --------
    >>> A, lam, V = information_bottleneck(np.eye(2), np.array([[0.8], [0.0]]), np.eye(1), beta=10.0)
    >>> np.round(lam, 2), np.round(np.abs(A[0]), 3)   # one informative direction, λ = 1 − 0.8²
    (array([0.36, 1.  ]), array([3.873, 0.   ]))
    """
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    cov_x_given_y = cov_x - cov_xy @ np.linalg.solve(cov_y, cov_xy.T)
    lam, V = linalg.eigh(cov_x_given_y, cov_x)  # Vᵀ Σ_x V = I, so vᵀ Σ_x v = 1
    lam = np.clip(lam, 1e-12, 1.0)
    alpha = np.sqrt(np.maximum(0.0, (beta * (1.0 - lam) - 1.0) / lam))
    return alpha[:, None] * V.T, lam, V


class DriftLatent:
    """The drift trend of one layer's corrections, learned from its history.

    Parameters
    ----------
    beta
        Information-bottleneck trade-off: 0 predicts the history's mean,
        large values the full regression on log-age (and temperature).
    ridge
        Ridge on the feature covariance, as a fraction of its mean variance.
    min_records
        Records needed before the model predicts.
    noise_floor
        Smallest standard deviation assumed for a feature's residual: a
        number for all features, or one per feature (``2 · n_columns``, the
        log-gains first). A history that fits a line perfectly must not make
        every later point look like a fault.

    Examples
    --------
    >>> latent = DriftLatent()
    >>> for age in (3600.0, 86400.0, 2.6e6, 3.2e7):
    ...     gain = ((age + 60.0) / 60.0) ** np.array([0.05, 0.07])   # gain needed grows as a power law
    ...     latent.add(CorrectionRecord(age, 300.0, gain, np.zeros(2)))
    >>> gain, offset = latent.predict(3.2e8)
    >>> np.round(gain / ((3.2e8 + 60.0) / 60.0) ** np.array([0.05, 0.07]), 4)
    array([1., 1.])
    """

    def __init__(self, beta: float = 100.0, ridge: float = 1e-6, min_records: int = 3,
                 noise_floor: float | np.ndarray = 1e-3) -> None:
        if not beta >= 0 or not ridge > 0 or min_records < 3 or not np.all(np.asarray(noise_floor) > 0):
            raise ValueError("need beta >= 0, ridge > 0, min_records >= 3 and noise_floor > 0")
        self.beta = beta
        self.ridge = ridge
        self.min_records = min_records
        self.noise_floor = noise_floor
        self._records: list[CorrectionRecord] = []
        self._fit: dict | None = None
        self._fit_records = 0      # how many records the fit has seen

    # ------------------------------------------------------------- history
    @property
    def records(self) -> tuple[CorrectionRecord, ...]:
        return tuple(self._records)

    @property
    def ready(self) -> bool:
        """Whether there are enough records, spanning more than one age, to predict."""
        return len(self._records) >= self.min_records and len({r.age_s for r in self._records}) > 1

    def add(self, record: CorrectionRecord) -> None:
        """Append a record (validated: finite, positive gains, same width as the history)."""
        gain, offset = np.asarray(record.gain, dtype=float), np.asarray(record.offset, dtype=float)
        if gain.shape != offset.shape or gain.ndim != 1:
            raise ValueError("gain and offset must be 1-D arrays of one length")
        if self._records and gain.shape != self._records[0].gain.shape:
            raise ValueError(f"record has {gain.size} columns, the history {self._records[0].gain.size} columns")
        if not (np.all(np.isfinite(gain)) and np.all(np.isfinite(offset)) and np.all(gain > 0)):
            raise ValueError("a record needs finite offsets and finite positive gains")
        if not (math.isfinite(record.age_s) and record.age_s >= 0 and math.isfinite(record.temperature_k)):
            raise ValueError("a record needs a finite age >= 0 and a finite temperature")
        self._records.append(CorrectionRecord(float(record.age_s), float(record.temperature_k), gain.copy(),
                                              offset.copy()))

    @property
    def stale(self) -> bool:
        """Whether records came since the last fit (or there is none while :attr:`ready`)."""
        return self.ready and self._fit_records != len(self._records)

    def fit_work(self):
        """``(run, adopt)`` for fitting off the caller's thread: ``run()`` fits a copy of today's history
        (``O(features³)`` for each drift-clock origin tried) and touches nothing shared; ``adopt(result)``
        installs it unless it is older than the fit in place."""
        records, count = list(self._records), len(self._records)

        def run() -> dict:
            return self._best_fit(records)

        def adopt(fit: dict) -> None:
            if count >= self._fit_records:
                self._fit, self._fit_records = fit, count

        return run, adopt

    def to_dict(self) -> dict:
        """The model as plain JSON-ready data: settings and history (the fit is derived)."""
        floor = np.asarray(self.noise_floor, dtype=float)
        return {"beta": self.beta, "ridge": self.ridge, "min_records": self.min_records,
                "noise_floor": floor.tolist() if floor.ndim else float(floor),
                "records": [{"age_s": r.age_s, "temperature_k": r.temperature_k, "gain": r.gain.tolist(),
                             "offset": r.offset.tolist()} for r in self._records]}

    @classmethod
    def from_dict(cls, data: dict) -> "DriftLatent":
        """Rebuild a model saved by :meth:`to_dict` (every record is validated again)."""
        try:
            floor = data["noise_floor"]
            latent = cls(beta=float(data["beta"]), ridge=float(data["ridge"]), min_records=int(data["min_records"]),
                         noise_floor=np.asarray(floor, dtype=float) if isinstance(floor, list) else float(floor))
            for r in data["records"]:
                latent.add(CorrectionRecord(float(r["age_s"]), float(r["temperature_k"]),
                                            np.asarray(r["gain"], dtype=float), np.asarray(r["offset"], dtype=float)))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a saved drift latent: {exc!r}") from None
        return latent

    # ----------------------------------------------------------------- fit
    def _relevance(self, age_s, temperature_k, uses_temperature: bool, t_ref_s: float) -> np.ndarray:
        y = [log_age(age_s, t_ref_s)]
        if uses_temperature:
            y.append(np.asarray(temperature_k, dtype=float) - REFERENCE_TEMPERATURE_K)
        return np.stack(np.broadcast_arrays(*y), axis=-1)

    def _fitted(self) -> dict:
        """The fit of the whole history, computed here when it is stale."""
        if not self.ready:
            raise ValueError(f"the drift latent needs {self.min_records} records at more than one age, "
                             f"has {len(self._records)}")
        if self._fit is None or self.stale:
            self._fit, self._fit_records = self._best_fit(self._records), len(self._records)
        return self._fit

    def _best_fit(self, records: list[CorrectionRecord]) -> dict:
        fits = [self._fit_with(records, t_ref) for t_ref in T_REF_GRID_S]
        return min(fits, key=lambda fit: fit["misfit"])

    def _fit_with(self, records: list[CorrectionRecord], t_ref_s: float) -> dict:
        X = np.array([correction_features(r.gain, r.offset) for r in records])
        ages = np.array([r.age_s for r in records])
        temps = np.array([r.temperature_k for r in records])
        uses_temperature = bool(np.ptp(temps) > 0.01) and len(records) > self.min_records
        Y = self._relevance(ages, temps, uses_temperature, t_ref_s)
        n, d = X.shape
        mu_x, mu_y = X.mean(axis=0), Y.mean(axis=0)
        Xc, Yc = X - mu_x, Y - mu_y
        cov_x = Xc.T @ Xc / n
        cov_x += self.ridge * max(float(np.mean(np.diag(cov_x))), 1e-12) * np.eye(d)
        cov_xy, cov_y = Xc.T @ Yc / n, Yc.T @ Yc / n
        A, lam, V = information_bottleneck(cov_x, cov_xy, cov_y, self.beta)
        gate = cov_x @ A.T @ np.linalg.solve(A @ cov_x @ A.T + np.eye(d), A)
        slope = gate @ cov_xy @ np.linalg.inv(cov_y)  # d x̂ / d y
        residual = Xc - Yc @ slope.T
        dof = max(n - Y.shape[1] - 1, 1)
        floor = np.broadcast_to(np.asarray(self.noise_floor, dtype=float), (d,))
        resid_std = np.maximum(np.sqrt(np.sum(residual**2, axis=0) / dof), floor)
        return {"mu_x": mu_x, "mu_y": mu_y, "slope": slope, "resid_std": resid_std, "lam": lam, "V": V, "A": A,
                "uses_temperature": uses_temperature, "n": n, "syy_inv": np.linalg.inv(Yc.T @ Yc),
                "t_ref_s": t_ref_s, "misfit": float(np.sum((residual / floor) ** 2))}

    # ------------------------------------------------------------- results
    @property
    def drift_directions(self) -> np.ndarray:
        """The active drift directions in feature space (columns, unit norm): λ < 1 − 1/β."""
        fit = self._fitted()
        active = fit["lam"] < 1.0 - 1.0 / max(self.beta, 1e-300)
        V = fit["V"][:, active]
        return V / np.linalg.norm(V, axis=0)

    @property
    def t_ref_s(self) -> float:
        """The origin of the drift clock that fits the history best."""
        return self._fitted()["t_ref_s"]

    @property
    def rates(self) -> tuple[np.ndarray, np.ndarray]:
        """Per column: change of log-gain and of offset/gain per decade of age."""
        slope = self._fitted()["slope"][:, 0]
        k = slope.size // 2
        return slope[:k], slope[k:]

    def predict_features(self, age_s: float, temperature_k: float = REFERENCE_TEMPERATURE_K,
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted features and their predictive standard deviation at an age and temperature."""
        fit = self._fitted()
        y = self._relevance(age_s, temperature_k, fit["uses_temperature"], fit["t_ref_s"]) - fit["mu_y"]
        mean = fit["mu_x"] + fit["slope"] @ y
        leverage = 1.0 / fit["n"] + float(y @ fit["syy_inv"] @ y)
        return mean, fit["resid_std"] * math.sqrt(1.0 + leverage)

    def predict(self, age_s: float, temperature_k: float = REFERENCE_TEMPERATURE_K,
                ) -> tuple[np.ndarray, np.ndarray]:
        """The (gain, offset) the trend predicts at ``age_s``."""
        return correction_from_features(self.predict_features(age_s, temperature_k)[0])

    def surprise(self, record: CorrectionRecord) -> np.ndarray:
        """Per-feature standardized residual of a record against the trend: a fault scores high."""
        mean, std = self.predict_features(record.age_s, record.temperature_k)
        return np.abs(correction_features(record.gain, record.offset) - mean) / std

    def remaining_life(self, gain_range: tuple[float, float], offset_range: tuple[float, float] = (-math.inf,
                       math.inf), temperature_k: float = REFERENCE_TEMPERATURE_K, z: float = 2.0,
                       horizon_s: float = 1000 * 365.25 * 86400.0) -> RemainingLife | None:
        """First age at which a predicted gain or offset/gain leaves its range, or None if not before ``horizon_s``.

        The band takes each feature's line at ``± z`` residual standard
        deviations (faster drift: ``low``, slower: ``high``). Offsets are
        checked as ``offset/gain`` against the range scaled by the predicted
        gain at the crossing: only the gain bound is exact for offsets.
        """
        fit = self._fitted()
        rate = fit["slope"][:, 0]
        base = fit["mu_x"] - rate * fit["mu_y"][0]
        if fit["uses_temperature"]:
            base = base + fit["slope"][:, 1] * (temperature_k - REFERENCE_TEMPERATURE_K - fit["mu_y"][1])
        k = rate.size // 2
        low_gain, high_gain = math.log(gain_range[0]), math.log(gain_range[1])
        s_max = float(log_age(horizon_s, fit["t_ref_s"]))
        candidates = []
        for j in range(rate.size):
            limit_hi, limit_lo = (high_gain, low_gain) if j < k else offset_range
            for shift, which in ((0.0, "mid"), (z, "fast"), (-z, "slow")):
                r = rate[j]
                b = base[j] + (shift * fit["resid_std"][j] * np.sign(r) if r != 0 else 0.0)
                if r > 0 and math.isfinite(limit_hi):
                    s = (limit_hi - b) / r
                elif r < 0 and math.isfinite(limit_lo):
                    s = (limit_lo - b) / r
                else:
                    continue
                if s <= s_max:
                    candidates.append((which, j, max(10.0 ** s - fit["t_ref_s"], 0.0)))
        mid = [c for c in candidates if c[0] == "mid"]
        if not mid:
            return None
        which, column, age = min(mid, key=lambda c: c[2])
        fast = min((c[2] for c in candidates if c[0] == "fast"), default=age)
        slow = min((c[2] for c in candidates if c[0] == "slow"), default=math.inf)  # inf: beyond the horizon
        return RemainingLife(age_s=age, low_s=min(fast, age), high_s=max(slow, age), column=column % k,
                             parameter="gain" if column < k else "offset")
