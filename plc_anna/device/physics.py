"""Published device laws of phase-change memory, as plain functions over arrays.

Conductances ``G`` are in µS; ``g = G / g_max`` is the normalized
conductance. The constants are those of IBM aihwkit's ``PCMLikeNoiseModel``
(Nandakumar et al., 2019; Joshi et al., Nat. Commun. 11, 2473, 2020) and of
its HERMES-chip preset (Le Gallo et al., 2023).

Nothing here draws random numbers: callers pass standard normal draws, so a
device's noise is drawn once and the laws stay exactly checkable.
"""

from __future__ import annotations

import math

import numpy as np

#: Boltzmann constant in eV/K.
BOLTZMANN_EV = 8.617333262e-5
#: Programming-noise polynomial of aihwkit's PCM model, in µS at g_max = 25 µS.
PCM_PROG_COEFF = (0.26348, 1.9650, -1.1731)
PCM_PROG_G_MAX_REF_US = 25.0
#: Smallest normalized conductance used inside a logarithm.
_G_FLOOR = 1e-6


def programming_noise_std(g_target_us: np.ndarray, g_max_us: float,
                          coeff: tuple[float, ...] = PCM_PROG_COEFF) -> np.ndarray:
    r"""Standard deviation of the programming error in µS.

    .. math:: \sigma_{prog} = (c_0 + c_1 g + c_2 g^2) \cdot g_{max} / 25\,\mu S,
              \quad g = G_{target} / g_{max}

    Examples
    --------
    >>> round(float(programming_noise_std(np.array(25.0), 25.0)), 5)  # at g = 1
    1.05538
    """
    g = np.asarray(g_target_us, dtype=float) / g_max_us
    sigma = np.zeros_like(g)
    for power, c in enumerate(coeff):
        sigma = sigma + c * g**power
    return sigma * (g_max_us / PCM_PROG_G_MAX_REF_US)


def drift_exponent_mean(g: np.ndarray, law: str = "pcm") -> np.ndarray:
    r"""Mean drift exponent :math:`\mu_\nu(g)` of a device programmed to ``g``.

    ``pcm``: :math:`\mathrm{clip}(-0.0155 \ln g + 0.0244,\ 0.049,\ 0.1)`.
    ``hermes``: :math:`\mathrm{clip}(-0.0387 \ln g - 0.0182,\ 0.072,\ 0.13)`
    for :math:`g < 0.0945`, else :math:`-0.0436 g^2 - 0.0126 g + 0.0736`.

    Examples
    --------
    >>> np.round(drift_exponent_mean(np.array([0.01, 0.1, 1.0])), 4)
    array([0.0958, 0.0601, 0.049 ])
    """
    g = np.maximum(np.abs(np.asarray(g, dtype=float)), _G_FLOOR)
    if law == "pcm":
        return np.clip(-0.0155 * np.log(g) + 0.0244, 0.049, 0.1)
    if law == "hermes":
        low = np.clip(-0.0387 * np.log(g) - 0.0182, 0.072, 0.13)
        high = -0.0436 * g**2 - 0.0126 * g + 0.0736
        return np.where(g < 0.0945, low, high)
    raise ValueError(f"unknown drift law {law!r}; valid: pcm, hermes")


def drift_exponent_std(g: np.ndarray) -> np.ndarray:
    r"""Device-to-device spread :math:`\sigma_\nu(g) = \mathrm{clip}(-0.0125 \ln g - 0.0059,\ 0.008,\ 0.045)`.

    Examples
    --------
    >>> np.round(drift_exponent_std(np.array([0.01, 0.1, 1.0])), 4)
    array([0.045 , 0.0229, 0.008 ])
    """
    g = np.maximum(np.abs(np.asarray(g, dtype=float)), _G_FLOOR)
    return np.clip(-0.0125 * np.log(g) - 0.0059, 0.008, 0.045)


def drift_factor(age_s: float, nu: np.ndarray, t0_s: float) -> np.ndarray:
    r"""Conductance ratio :math:`G(t)/G_{prog} = ((t + t_0)/t_0)^{-\nu}`.

    ``age_s`` is the (temperature-accelerated) time since programming.

    Examples
    --------
    >>> float(drift_factor(180.0, np.array(0.05), 20.0))  # (200/20)^-0.05
    0.8912509381337456
    """
    if age_s < 0:
        raise ValueError(f"age must be >= 0 s, got {age_s}")
    return ((age_s + t0_s) / t0_s) ** (-np.asarray(nu, dtype=float))


def flicker_coefficient(g_prog_us: np.ndarray, g_max_us: float) -> np.ndarray:
    r"""1/f read-noise coefficient :math:`Q_s = \min(0.0088 / g^{0.65}, 0.2)`.

    As in aihwkit, :math:`g^{0.65}` is floored at 1e-3 before the division.
    """
    g = np.abs(np.asarray(g_prog_us, dtype=float)) / g_max_us
    return np.minimum(0.0088 / np.maximum(g**0.65, 1e-3), 0.2)


def flicker_variance_index(t_s: float | np.ndarray, t_read_s: float) -> np.ndarray:
    r"""The log-time :math:`v(t) = \ln((t + t_{read}) / (2 t_{read}))` whose square root
    scales the accumulated 1/f noise: :math:`\sigma = |G| Q_s \sqrt{v(t)}`.

    Here :math:`t` counts from programming including :math:`t_0`, as in aihwkit.
    """
    return np.log((np.asarray(t_s, dtype=float) + t_read_s) / (2.0 * t_read_s))


def arrhenius_acceleration(temperature_k: float, reference_k: float, activation_energy_ev: float) -> float:
    r"""Drift-time acceleration :math:`\exp(-E_a/k_B \cdot (1/T - 1/T_{ref}))`.

    Examples
    --------
    >>> round(arrhenius_acceleration(330.0, 300.0, 0.2), 4)
    2.0204
    """
    if temperature_k <= 0 or reference_k <= 0:
        raise ValueError("temperatures must be positive kelvin")
    return math.exp(-activation_energy_ev / BOLTZMANN_EV * (1.0 / temperature_k - 1.0 / reference_k))
