"""The windows a layer estimates its correction from: after a detection, on request, and the hold-out.

Each scan adds its raw outputs as they will be once upstream layers settle
(``anticipated``), the ideal outputs the correction aims at, the fingerprint's
prediction of the anticipated outputs, and, pair by pair, the actual outputs
against the fingerprint's prediction of the actual inputs (the drift since the
fingerprint). ``O(n·k)`` per scan.
"""

from __future__ import annotations

import numpy as np

from plc_anna.correction.estimate import Correction, drift_correction, refine_clipped
from plc_anna.stats.moments import Moments, RunningMoments
from plc_anna.stats.reference import Reference, reference_moments


class PairedDrift:
    """How each column's raw outputs relate to the fingerprint's prediction over a window: the per-column
    least-squares line ``y ≈ gain · ĉ + offset`` of the paired samples (``O(n·k)`` per scan).

    Examples
    --------
    >>> drift = PairedDrift(1)
    >>> c = np.array([[0.0], [1.0], [2.0]]); drift.add(2.0 * c + 1.0, c)
    >>> [v.tolist() for v in drift.estimate()]
    [[2.0], [1.0]]
    """

    def __init__(self, n_out: int) -> None:
        self.pairs = RunningMoments(2 * n_out, covariance=False)
        self.products = np.zeros(n_out)
        self._n_out = n_out

    def add(self, outputs: np.ndarray, predicted: np.ndarray) -> None:
        before = self.pairs.moments
        self.pairs.update(np.hstack([predicted, outputs]))
        after = self.pairs.moments
        # Σ (ĉ - mean ĉ)(y - mean y), merged like the variances (Chan et al.)
        k = self._n_out
        batch_c, batch_y = predicted.mean(axis=0), outputs.mean(axis=0)
        batch = np.einsum("ij,ij->j", predicted - batch_c, outputs - batch_y)
        if before.count > 0:
            f = before.count * predicted.shape[0] / after.count
            batch = batch + f * (batch_c - before.mean[:k]) * (batch_y - before.mean[k:])
        self.products = self.products + batch

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """(gain, offset) per column; a column whose prediction did not vary keeps gain 1."""
        m = self.pairs.moments
        k = self._n_out
        scatter = m.m2[:k]
        varied = scatter > 1e-12 * np.maximum(m.m2[k:], 1e-300)
        gain = np.where(varied, self.products / np.where(varied, scatter, 1.0), 1.0)
        return gain, m.mean[k:] - gain * m.mean[:k]


class EstimateWindow:
    """One estimate's data (see the module docstring); the samples are kept for clipped columns."""

    def __init__(self, n_out: int, start_age: float | None = None) -> None:
        self.n_out = n_out
        self.moments = RunningMoments(3 * n_out)
        self.drift = PairedDrift(n_out)
        self.samples: list[np.ndarray] = []
        self.start_age = start_age

    @property
    def count(self) -> float:
        return self.moments.moments.count

    def add(self, anticipated: np.ndarray, ideal: np.ndarray, outputs: np.ndarray, predicted: np.ndarray) -> None:
        """One scan: anticipated and actual raw outputs, ideal outputs, the prediction for the actual inputs."""
        self.moments.update(np.hstack([anticipated, ideal, predicted + (anticipated - outputs)]))
        self.drift.add(outputs, predicted)
        self.samples.append(np.hstack([anticipated, ideal]))

    def split(self) -> tuple[Moments, Reference]:
        """The anticipated outputs' moments and the window's reference (ideal and predicted)."""
        window, k = self.moments.moments, self.n_out
        part = [Moments(count=window.count, mean=window.mean[i * k:(i + 1) * k], m2=window.m2[i * k:(i + 1) * k])
                for i in range(3)]
        return part[0], reference_moments(part[1], part[2])

    def signal(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of the anticipated outputs without their noise: ``a μ_ĉ + b`` and ``a² σ_ĉ²``
        (``a, b`` the drift against the fingerprint, ``ĉ`` its prediction)."""
        _, reference = self.split()
        gain, offset = self.drift.estimate()
        return gain * reference.cal_mean + offset, gain**2 * reference.cal_var

    def correction(self, noise_var: np.ndarray, rail: float | None = None) -> tuple[Correction, np.ndarray]:
        """The correction the window implies (:func:`~plc_anna.correction.estimate.drift_correction`, with
        the empirical transport for clipped columns) and the mask of clipped columns."""
        _, reference = self.split()
        correction = drift_correction(reference, *self.drift.estimate(), noise_var=noise_var)
        samples = np.vstack(self.samples)
        return refine_clipped(correction, samples[:, :self.n_out], samples[:, self.n_out:], rail=rail)
