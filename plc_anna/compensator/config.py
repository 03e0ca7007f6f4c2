"""Settings of a compensator, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from plc_anna.correction.transition import RampLimits
from plc_anna.drift.monitor import DEFAULT_DEAD_ZONE, DEFAULT_WINDOW


@dataclass(frozen=True)
class CompensatorConfig:
    """Settings of a compensator (one set for every layer).

    Parameters
    ----------
    calibration_samples
        Samples of the t0 fingerprint. The least-squares response of a layer
        with ``n_in`` inputs needs many more than ``n_in`` samples; its
        prediction error enters the statistic's variance.
    estimate_samples
        Minimum samples of a correction estimate after a detection.
    holdout_samples
        Fresh samples that must confirm a new correction before it commits.
    window_samples
        Samples pooled into one window before the monitor judges it: no distance is taken from a
        scan too small to carry it.
    arl0
        Target mean number of windows between false alarms of the monitor.
    dead_zone
        Predictive standard deviations of the fingerprint's own error that count as no drift
        evidence (see :mod:`plc_anna.drift.monitor`).
    deadband_gain, deadband_offset
        A new correction that differs from the applied one by less than this
        in every gain (relative) and offset (fraction of the column's
        calibrated standard deviation) is absorbed, not applied.
    fault_distance
        A column whose Fisher–Rao distance to the reference grows by more
        than this from one window to the next, with scores beyond what noise
        does at that sample count, has not drifted: that is a fault.
    fault_clear_windows
        Consecutive windows that must match the fingerprint again before a
        fault from such a jump clears itself (a process excursion, not the
        hardware). A fault found against the drift trend holds until
        calibration.
    growth_samples
        Live samples from input regions the fingerprint has not pinned down
        that, gathered while the layer is judged stable, make it grow its
        coverage (0: never).
    schedule_ratio
        Log-age schedule of the feed-forward: after a prediction at age ``a``
        the next is considered at age ``a · schedule_ratio``.
    ramp
        Limits of the bumpless transition; its ranges are the hardware's
        correction range that remaining useful life is measured against.
    latent_beta
        Information-bottleneck trade-off of the drift latent
        (:class:`~plc_anna.correction.latent.DriftLatent`).
    min_history
        Committed estimates (with ages) before the latent predicts.
    predictive
        Between estimates, on the log-age schedule, ramp to the latent's
        prediction for the current age when it leaves the deadband.
    fault_sigma
        An estimate further than this many predictive standard deviations
        from the trend is a fault, not fatigue: it is not absorbed. It holds
        for one feature; a layer's ``2 · n_out`` features get the threshold of
        the same false-fault probability for all of them together.
    maintenance_horizon_s
        Raise a maintenance alarm when the predicted correction leaves the
        hardware range sooner than this.
    """

    calibration_samples: int = 4096
    estimate_samples: int = 1024
    holdout_samples: int = 512
    window_samples: int = DEFAULT_WINDOW
    arl0: float = 1e6
    dead_zone: float = DEFAULT_DEAD_ZONE
    deadband_gain: float = 0.02
    deadband_offset: float = 0.02
    fault_distance: float = 1.0
    fault_clear_windows: int = 16
    growth_samples: int = 2048
    schedule_ratio: float = 1.05
    ramp: RampLimits = field(default_factory=RampLimits)
    latent_beta: float = 100.0
    min_history: int = 3
    predictive: bool = True
    fault_sigma: float = 6.0
    maintenance_horizon_s: float = 90 * 86400.0

    def __post_init__(self) -> None:
        for name in ("calibration_samples", "estimate_samples", "holdout_samples"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 2):
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        if not (isinstance(self.window_samples, int) and self.window_samples >= 4):
            raise ValueError(f"window_samples must be an integer >= 4, got {self.window_samples!r}")
        for name in ("fault_clear_windows", "growth_samples"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        for name in ("arl0", "fault_distance"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if self.arl0 <= 1:
            raise ValueError(f"arl0 must exceed 1 scan, got {self.arl0}")
        for name in ("deadband_gain", "deadband_offset", "dead_zone"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.schedule_ratio >= 1:
            raise ValueError(f"schedule_ratio must be >= 1, got {self.schedule_ratio}")
        if not (isinstance(self.min_history, int) and self.min_history >= 3):
            raise ValueError(f"min_history must be an integer >= 3, got {self.min_history!r}")
        for name in ("latent_beta", "fault_sigma", "maintenance_horizon_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
