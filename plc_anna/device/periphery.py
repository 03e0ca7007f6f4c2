"""Per-column periphery of a crossbar: amplifier gain and ADC offset that age.

No public simulator models this part, so the law is our own and simple: each
column's gain and offset move linearly in decades of periphery age
``d = log10(1 + t / periphery_t0_s)`` and linearly with the temperature
difference to the reference::

    gain_j   = (1 + a_j d) (1 + alpha_j (T - T_ref))
    offset_j = b_j d + beta_j (T - T_ref)                (fraction of ADC full scale)

with per-column rates ``a_j ~ N(gain_drift_mean, gain_drift_std)``,
``b_j ~ N(0, offset_drift_std)`` and tempcos ``alpha_j``, ``beta_j`` drawn once.
"""

from __future__ import annotations

import math

import numpy as np

from plc_anna.device.params import DeviceParams


class Periphery:
    """The aging gain/offset of ``n_columns`` column amplifiers and ADCs."""

    def __init__(self, n_columns: int, params: DeviceParams, rng: np.random.Generator) -> None:
        self.params = params
        draws = rng.standard_normal((4, n_columns))
        self.gain_rate = params.gain_drift_mean + params.gain_drift_std * draws[0]
        self.offset_rate = params.offset_drift_std * draws[1]
        self.gain_tempco = params.gain_tempco_std * draws[2]
        self.offset_tempco = params.offset_tempco_std * draws[3]

    def decades(self, drift_age_s: float) -> float:
        """Periphery age in decades, ``log10(1 + t / periphery_t0_s)``."""
        return math.log10(1.0 + drift_age_s / self.params.periphery_t0_s)

    def gain_offset(self, drift_age_s: float, temperature_k: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-column (gain, offset); the offset is a fraction of ADC full scale."""
        d = self.decades(drift_age_s)
        dt = temperature_k - self.params.reference_temperature_k
        gain = (1.0 + self.gain_rate * d) * (1.0 + self.gain_tempco * dt)
        offset = self.offset_rate * d + self.offset_tempco * dt
        return gain, offset
