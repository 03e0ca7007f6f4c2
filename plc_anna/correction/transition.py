"""Bumpless transfer from the current correction to a new one.

Between two per-column affine maps the displacement (McCann) interpolation
of the corrected distributions is the straight line in (gain, offset):
``T_s = (1 − s) T_0 + s T_1``. All columns advance on one common ``s`` so the
layer moves as a whole; ``s`` grows by at most ``1/scans`` per scan and by
less when a column would otherwise change faster than the slew limits. The
target is clamped into the correction range first, so every intermediate
point lies inside it and nothing overshoots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RampLimits:
    """Limits of a transition.

    Parameters
    ----------
    scans
        Minimum number of scans of a full transition.
    max_gain_step
        Largest change of any gain in one scan.
    max_offset_step
        Largest change of any offset in one scan, in output units (``inf``: no limit).
    gain_range
        Allowed gains ``(low, high)``: the hardware's correction range.
    offset_range
        Allowed offsets ``(low, high)`` in output units.
    """

    scans: int = 10
    max_gain_step: float = 0.02
    max_offset_step: float = math.inf
    gain_range: tuple[float, float] = (0.25, 4.0)
    offset_range: tuple[float, float] = (-math.inf, math.inf)

    def __post_init__(self) -> None:
        if not (isinstance(self.scans, int) and self.scans >= 1):
            raise ValueError(f"scans must be an integer >= 1, got {self.scans!r}")
        if not self.max_gain_step > 0 or not self.max_offset_step > 0:
            raise ValueError("max_gain_step and max_offset_step must be positive")
        for name, (low, high) in (("gain_range", self.gain_range), ("offset_range", self.offset_range)):
            if not low < high:
                raise ValueError(f"{name} must be (low, high) with low < high, got {(low, high)}")

    def clamp(self, gain: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(gain, offset, saturated)`` clamped into range; ``saturated`` flags clamped columns."""
        g = np.clip(gain, *self.gain_range)
        o = np.clip(offset, *self.offset_range)
        return g, o, (g != gain) | (o != offset)


class Transition:
    """A ramp from ``start`` to ``target`` (each a ``(gain, offset)`` pair of arrays).

    Examples
    --------
    >>> ramp = Transition((np.ones(2), np.zeros(2)), (np.array([1.1, 1.0]), np.zeros(2)),
    ...                   RampLimits(scans=4, max_gain_step=0.02))
    >>> [round(float(ramp.step()[0][0]), 3) for _ in range(6)]
    [1.02, 1.04, 1.06, 1.08, 1.1, 1.1]
    >>> ramp.done
    True
    """

    def __init__(self, start: tuple[np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray],
                 limits: RampLimits) -> None:
        self.limits = limits
        self.start = (np.asarray(start[0], dtype=float).copy(), np.asarray(start[1], dtype=float).copy())
        gain, offset, self.saturated = limits.clamp(np.asarray(target[0], dtype=float),
                                                    np.asarray(target[1], dtype=float))
        self.target = (gain, offset)
        delta_gain = float(np.max(np.abs(gain - self.start[0]), initial=0.0))
        delta_offset = float(np.max(np.abs(offset - self.start[1]), initial=0.0))
        increment = 1.0 / limits.scans
        if delta_gain > 0:
            increment = min(increment, limits.max_gain_step / delta_gain)
        if delta_offset > 0:
            increment = min(increment, limits.max_offset_step / delta_offset)
        self.increment = increment
        self.position = 0.0

    @property
    def done(self) -> bool:
        return self.position >= 1.0

    @property
    def scans_left(self) -> int:
        return math.ceil(round((1.0 - self.position) / self.increment, 9))

    def current(self) -> tuple[np.ndarray, np.ndarray]:
        """The (gain, offset) at the current position."""
        s = self.position
        return ((1.0 - s) * self.start[0] + s * self.target[0], (1.0 - s) * self.start[1] + s * self.target[1])

    def step(self) -> tuple[np.ndarray, np.ndarray]:
        """Advance one scan and return the (gain, offset) to apply now."""
        self.position = min(1.0, self.position + self.increment)
        if self.done:
            return self.target[0].copy(), self.target[1].copy()
        return self.current()
