"""The converters at a crossbar's edges: the input DAC and the output ADC of one layer.

A signed converter of ``b`` bits over a full scale ``R`` clips to ``±R`` and
rounds to ``2**(b-1) - 1`` steps on each side of zero, so its step is
``R / (2**(b-1) - 1)``; ``b = 0`` clips only. The simulated device converts
this way, and the compensator models the same rounding: what the crossbar
computes with is ``dac(x)``, not the digital ``x`` the PLC sees, and a process
that moves its inputs between two DAC codes changes the analog outputs
although nothing has drifted. Pure numpy, no dependency on the device or the
compensator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def quantize(u: np.ndarray, bits: int) -> np.ndarray:
    """Clip normalized values to [-1, 1] and round them to a signed ``bits`` grid.

    ``bits = 0`` clips only. A signed converter of ``b`` bits has
    ``2**(b-1) - 1`` steps on each side of zero.

    Examples
    --------
    >>> quantize(np.array([-2.0, 0.3, 0.5]), 3)
    array([-1.        ,  0.33333333,  0.66666667])
    """
    u = np.clip(u, -1.0, 1.0)
    if bits == 0:
        return u
    steps = 2 ** (bits - 1) - 1
    return np.round(u * steps) / steps


@dataclass(frozen=True)
class Converters:
    """The DAC in front of a layer and the ADC behind it.

    Parameters
    ----------
    input_range, dac_bits
        The DAC's full scale in the layer's input units and its resolution (0: clipping only).
    output_range, adc_bits
        The ADC's full scale in the layer's output units and its resolution (0: clipping only).

    Examples
    --------
    >>> c = Converters(input_range=20.0, dac_bits=8, output_range=9.0, adc_bits=10)
    >>> c.dac(np.array([[3.0, 21.0]])).round(4).tolist(), round(c.adc_step, 5)
    ([[2.9921, 20.0]], 0.01761)
    """

    input_range: float
    dac_bits: int
    output_range: float
    adc_bits: int

    def __post_init__(self) -> None:
        for name in ("input_range", "output_range"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("dac_bits", "adc_bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 24:
                raise ValueError(f"{name} must be an integer within 0..24, got {value!r}")

    def dac(self, inputs: np.ndarray) -> np.ndarray:
        """What the crossbar is driven with for digital ``inputs``, in the same units."""
        return quantize(np.asarray(inputs, dtype=float) / self.input_range, self.dac_bits) * self.input_range

    @property
    def adc_step(self) -> float:
        """The ADC's step in output units (0 without rounding)."""
        return 0.0 if self.adc_bits == 0 else self.output_range / (2 ** (self.adc_bits - 1) - 1)

    @property
    def adc_variance(self) -> float:
        """The variance rounding alone adds to an output (``step² / 12``): no output's variance is below it."""
        return self.adc_step**2 / 12.0
