"""What a layer gathers to (re)build its fingerprint: the calibration window and live data for coverage.

Both only accumulate on the scan (``O(n·d·(d + k))`` per scan: linear in the
columns); the eigen-solves that turn them into a fingerprint are
:class:`~plc_anna.compensator.jobs.Job` work, run off the scan.
"""

from __future__ import annotations

import numpy as np

from plc_anna.stats.cross import CrossMoments, RunningCross
from plc_anna.stats.moments import Moments, RunningMoments
from plc_anna.stats.reference import Fingerprint, Reference, fit_fingerprint, grow_fingerprint, reference_moments


class CalibrationWindow:
    """The samples of one calibration: the inputs/outputs a fingerprint needs, and the moments of the
    ideal outputs, so the first correction can map today's state to the ideal straight away."""

    def __init__(self, n_in: int, n_out: int) -> None:
        self.cross = RunningCross(n_in, n_out)
        self.ideal = RunningMoments(n_out)
        self.anticipated = RunningMoments(n_out)
        self.start_age: float | None = None
        self.end_age: float | None = None

    @property
    def count(self) -> float:
        return self.cross.moments.count

    def add(self, inputs: np.ndarray, outputs: np.ndarray, ideal: np.ndarray, age_s: float | None,
            anticipated: np.ndarray | None = None) -> None:
        """One scan: inputs as the DAC drives them, raw outputs, the ideal outputs the correction aims at,
        and the raw outputs as they will be once the upstream layers' corrections arrive (default: the same)."""
        if self.count == 0:
            self.start_age = age_s
        self.end_age = age_s
        self.cross.update(inputs, outputs)
        self.ideal.update(ideal)
        self.anticipated.update(outputs if anticipated is None else anticipated)

    def fit(self, programmed: np.ndarray, noise_floor: float) -> Fingerprint:
        """The fingerprint of this window (heavy: run it off the scan)."""
        return fit_fingerprint(self.cross.moments, programmed, noise_floor=noise_floor)

    def reference(self, fingerprint: Fingerprint) -> tuple[Moments, Reference]:
        """The (anticipated) raw outputs' moments and the reference of the calibration window."""
        cross = self.cross.moments
        outputs = self.anticipated.moments
        calibrated = Moments(count=cross.count, mean=cross.output_mean, m2=fingerprint.signal_var * cross.count)
        return outputs, reference_moments(self.ideal.moments, calibrated)


class CoverageGrowth:
    """Live samples from input regions the fingerprint has not pinned down, gathered while the layer is
    judged stable, for :func:`~plc_anna.stats.reference.grow_fingerprint`."""

    def __init__(self, n_in: int, n_out: int, samples: int) -> None:
        self.samples = samples
        self.cross = RunningCross(n_in, n_out)

    @property
    def ready(self) -> bool:
        return self.cross.moments.count >= self.samples

    def add(self, inputs: np.ndarray, outputs: np.ndarray) -> None:
        self.cross.update(inputs, outputs)

    def take(self) -> CrossMoments:
        """The gathered moments; the gathering starts again."""
        moments = self.cross.moments
        self.cross.reset()
        return moments

    def reset(self) -> None:
        self.cross.reset()


def grow(fingerprint: Fingerprint, live: CrossMoments) -> Fingerprint:
    """The fingerprint with the live data's new directions pinned down (heavy: run it off the scan)."""
    return grow_fingerprint(fingerprint, live)
