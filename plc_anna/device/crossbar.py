"""One programmed crossbar: differential PCM conductance pairs and how they age.

A crossbar is drawn once from its random generator: programming error, drift
exponent and the whole 1/f noise path of every device. Its conductances are
then a pure function of age, so advancing the age in two steps gives exactly
the state of one step, and nothing is ever redrawn (aihwkit redraws the 1/f
noise at every call).

The accumulated 1/f noise has variance ``Q_s^2 v(t)`` with the log-time
``v(t) = ln((t + t_read) / (2 t_read))``: it is a Brownian motion in ``v``.
We draw that motion on a fixed grid of ``v`` up to :data:`HORIZON_S` and
interpolate linearly between grid points; the grid is exact at its nodes.
"""

from __future__ import annotations

import numpy as np

from plc_anna.device.params import DeviceParams
from plc_anna.device.physics import (
    drift_exponent_mean,
    drift_exponent_std,
    drift_factor,
    flicker_coefficient,
    flicker_variance_index,
    programming_noise_std,
)

#: The latest age the 1/f noise path is drawn for: 1000 years.
HORIZON_S = 1000 * 365.25 * 86400.0
#: Intervals of the 1/f noise grid in log-time.
FLICKER_GRID_INTERVALS = 32


class Crossbar:
    """Differential conductance pairs programmed to a (n_out, n_rows) weight matrix.

    Parameters
    ----------
    weights
        The matrix to program, shape (n_out, n_rows); its largest |w| maps to
        ``params.g_max_us``.
    params
        Device parameters.
    rng
        Generator used once, here, for every random draw of this crossbar.
    """

    def __init__(self, weights: np.ndarray, params: DeviceParams, rng: np.random.Generator) -> None:
        self.params = params
        self.w_max = float(np.max(np.abs(weights)))
        if self.w_max == 0.0:
            raise ValueError("cannot program an all-zero weight matrix")
        g_max = params.g_max_us
        # (2, n_out, n_rows): index 0 the positive device of each pair, 1 the negative
        self.g_target_us = g_max * np.stack([np.maximum(weights, 0.0), np.maximum(-weights, 0.0)]) / self.w_max
        shape = self.g_target_us.shape
        # Draw order is fixed: programming error, drift exponent, 1/f path.
        xi_prog = rng.standard_normal(shape)
        xi_nu = rng.standard_normal(shape)
        sigma_prog = programming_noise_std(self.g_target_us, g_max, params.prog_coeff)
        self.g_prog_us = np.maximum(self.g_target_us + params.prog_noise_scale * sigma_prog * xi_prog, 0.0)

        g_rel = self.g_target_us / g_max
        nu_mean = drift_exponent_mean(g_rel, params.drift_law) if params.nu_mean is None else params.nu_mean
        nu_std = drift_exponent_std(g_rel) if params.nu_std is None else params.nu_std
        self.nu = np.abs(nu_mean + nu_std * xi_nu) * params.drift_scale

        self._flicker_path = None
        if params.read_noise_scale > 0:
            self.q_s = flicker_coefficient(self.g_prog_us, g_max)
            t0 = params.t0_s
            self._v_grid = np.linspace(flicker_variance_index(t0, params.t_read_s),
                                       flicker_variance_index(t0 + HORIZON_S, params.t_read_s),
                                       FLICKER_GRID_INTERVALS + 1)
            steps = np.empty((FLICKER_GRID_INTERVALS + 1,) + shape)
            steps[0] = np.sqrt(self._v_grid[0]) * rng.standard_normal(shape)
            steps[1:] = np.sqrt(np.diff(self._v_grid))[:, None, None, None] * rng.standard_normal(
                (FLICKER_GRID_INTERVALS,) + shape)
            # float32 halves the memory of large layers; the path is a noise term
            self._flicker_path = np.cumsum(steps, axis=0).astype(np.float32)

    def conductances_us(self, age_s: float, drift_age_s: float) -> np.ndarray:
        """Conductances (2, n_out, n_rows) in µS at ``age_s``.

        ``drift_age_s`` is the temperature-accelerated age that drives drift;
        the 1/f noise runs on the real ``age_s``.
        """
        if not 0.0 <= age_s <= HORIZON_S:
            raise ValueError(f"age must be within 0..{HORIZON_S:.4g} s (1000 years), got {age_s}")
        g = self.g_prog_us * drift_factor(drift_age_s, self.nu, self.params.t0_s)
        if self._flicker_path is not None:
            g = g + np.abs(g) * self.params.read_noise_scale * self.q_s * self._flicker_at(age_s)
        return np.maximum(g, 0.0)

    def _flicker_at(self, age_s: float) -> np.ndarray:
        """The unit 1/f noise path at ``age_s``, linear in log-time between grid nodes."""
        v = float(flicker_variance_index(age_s + self.params.t0_s, self.params.t_read_s))
        position = np.interp(v, self._v_grid, np.arange(self._v_grid.size))
        k = min(int(position), FLICKER_GRID_INTERVALS - 1)
        w = position - k
        return (1.0 - w) * self._flicker_path[k] + w * self._flicker_path[k + 1]
