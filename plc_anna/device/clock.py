"""The simulated network's own clock: age and temperature, independent of wall time.

Temperature is a step function of age. Drift runs on the *drift age*, the
Arrhenius-weighted integral of time, ``∫ exp(-Ea/k (1/T(τ) - 1/T_ref)) dτ``;
with steps the integral is an exact sum, so the drift age at any age does not
depend on how the clock got there.
"""

from __future__ import annotations

import math

from plc_anna.device.physics import arrhenius_acceleration


class AgeClock:
    """Age and temperature history of one simulated network.

    Parameters
    ----------
    temperature_k
        Temperature from age 0.
    steps
        ``(age_s, temperature_k)`` steps, ages strictly increasing.
    reference_k, activation_energy_ev
        Arrhenius reference temperature and activation energy.

    Examples
    --------
    >>> clock = AgeClock(300.0, [(100.0, 330.0)], 300.0, 0.2)
    >>> clock.set_age(200.0)
    >>> round(clock.drift_age_s, 2)  # 100 s at 300 K plus 100 s at 330 K (x2.02)
    302.04
    """

    def __init__(self, temperature_k: float, steps, reference_k: float, activation_energy_ev: float) -> None:
        self.reference_k = reference_k
        self.activation_energy_ev = activation_energy_ev
        self._steps: list[tuple[float, float]] = [(0.0, float(temperature_k))]
        for age, temp in steps:
            self._put_step(float(age), float(temp))
        self._age_s = 0.0

    @property
    def age_s(self) -> float:
        """Time since programming, in seconds."""
        return self._age_s

    def set_age(self, age_s: float) -> None:
        """Set the age (forwards or backwards); the temperature history stays."""
        age_s = float(age_s)
        if not (math.isfinite(age_s) and age_s >= 0.0):
            raise ValueError(f"age must be a finite number of seconds >= 0, got {age_s}")
        self._age_s = age_s

    def advance(self, dt_s: float) -> None:
        """Move the age forward by ``dt_s`` seconds."""
        if not (math.isfinite(dt_s) and dt_s >= 0.0):
            raise ValueError(f"time step must be a finite number of seconds >= 0, got {dt_s}")
        self.set_age(self._age_s + dt_s)

    @property
    def temperature_k(self) -> float:
        """Temperature at the current age."""
        return self.temperature_at(self._age_s)

    def temperature_at(self, age_s: float) -> float:
        temp = self._steps[0][1]
        for start, value in self._steps:
            if start <= age_s:
                temp = value
        return temp

    def set_temperature(self, temperature_k: float) -> None:
        """Run at ``temperature_k`` from the current age on (later steps are dropped)."""
        temperature_k = float(temperature_k)
        if not (math.isfinite(temperature_k) and 1.0 <= temperature_k <= 1000.0):
            raise ValueError(f"temperature must be within 1..1000 K, got {temperature_k}")
        self._steps = [s for s in self._steps if s[0] < self._age_s]
        self._put_step(self._age_s, temperature_k)

    def _put_step(self, age_s: float, temperature_k: float) -> None:
        self._steps = [s for s in self._steps if s[0] != age_s] + [(age_s, temperature_k)]
        self._steps.sort()

    @property
    def drift_age_s(self) -> float:
        """Temperature-accelerated age that drives drift, in seconds."""
        total = 0.0
        for i, (start, temp) in enumerate(self._steps):
            end = self._steps[i + 1][0] if i + 1 < len(self._steps) else math.inf
            span = min(end, self._age_s) - start
            if span > 0:
                total += span * arrhenius_acceleration(temp, self.reference_k, self.activation_energy_ev)
        return total
