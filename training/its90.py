"""NIST ITS-90 Type K thermocouple reference function and its inverse.

The coefficients are the ITS-90 Type K (Nickel-Chromium vs Nickel-Aluminum)
reference function of NIST Monograph 175 (G. W. Burns et al., "Temperature-
Electromotive Force Reference Functions and Tables for the Letter-Designated
Thermocouple Types Based on the ITS-90", 1993), as published in the NIST ITS-90
Thermocouple Database (NIST Standard Reference Database 60,
https://srdata.nist.gov/its90/type_k/kcoefficients.html).

The forward function gives the thermoelectric EMF in mV of a Type K
thermocouple whose reference junction is at 0 °C:

* -270 °C <= t < 0 °C: ``E = sum_{i=0..10} c_i t^i``
* 0 °C <= t <= 1372 °C: ``E = sum_{i=0..9} c_i t^i + a0 exp(a1 (t - a2)^2)``

The inverse is computed by root finding (bisection) on the forward function
rather than with NIST's approximate inverse polynomials, which are only good
to about ±0.05 °C; :func:`type_k_temperature_c` therefore inverts the
reference function itself, to 1e-10 °C by default.
"""

from __future__ import annotations

import numpy as np

#: Range of validity of the reference function, °C.
T_MIN_C = -270.0
T_MAX_C = 1372.0

# -270 °C .. 0 °C: c0 .. c10 (c0 = 0, so ten non-zero terms), mV / °C^i.
_C_NEG = np.array([
    0.000000000000e+00,
    0.394501280250e-01,
    0.236223735980e-04,
    -0.328589067840e-06,
    -0.499048287770e-08,
    -0.675090591730e-10,
    -0.574103274280e-12,
    -0.310888728940e-14,
    -0.104516093650e-16,
    -0.198892668780e-19,
    -0.163226974860e-22,
])

# 0 °C .. 1372 °C: c0 .. c9, mV / °C^i.
_C_POS = np.array([
    -0.176004136860e-01,
    0.389212049750e-01,
    0.185587700320e-04,
    -0.994575928740e-07,
    0.318409457190e-09,
    -0.560728448890e-12,
    0.560750590590e-15,
    -0.320207200030e-18,
    0.971511471520e-22,
    -0.121047212750e-25,
])

# Exponential term of the 0 °C .. 1372 °C range: a0 exp(a1 (t - a2)^2).
_A0 = 0.118597600000e+00  # mV
_A1 = -0.118343200000e-03  # 1 / °C^2
_A2 = 0.126968600000e+03  # °C


def type_k_emf_mv(t_c):
    """EMF of a Type K thermocouple, reference junction at 0 °C (NIST ITS-90).

    Parameters
    ----------
    t_c : float or array_like
        Hot-junction temperature in °C, within -270 .. 1372 °C.

    Returns
    -------
    float or numpy.ndarray
        EMF in mV, same shape as ``t_c`` (a Python float for scalar input).

    Raises
    ------
    ValueError
        If any temperature is outside -270 .. 1372 °C or not finite.

    Examples
    --------
    >>> round(type_k_emf_mv(100.0), 3)
    4.096
    """
    t = np.asarray(t_c, dtype=float)
    if not np.all(np.isfinite(t)) or np.any(t < T_MIN_C) or np.any(t > T_MAX_C):
        raise ValueError(f"Type K temperature must lie in {T_MIN_C:g} .. {T_MAX_C:g} °C")
    emf = _emf_unchecked(t)
    return float(emf) if emf.ndim == 0 else emf


def _emf_unchecked(t: np.ndarray) -> np.ndarray:
    """Reference function without range checks (``t`` already validated)."""
    # np.polyval wants the highest power first.
    neg = np.polyval(_C_NEG[::-1], t)
    pos = np.polyval(_C_POS[::-1], t) + _A0 * np.exp(_A1 * (t - _A2) ** 2)
    return np.where(t < 0.0, neg, pos)


#: EMF at the ends of the valid range, mV.
EMF_MIN_MV = float(type_k_emf_mv(T_MIN_C))
EMF_MAX_MV = float(type_k_emf_mv(T_MAX_C))


def type_k_temperature_c(emf_mv, xtol: float = 1e-10):
    """Hot-junction temperature of a Type K thermocouple from its EMF (0 °C reference).

    Inverts :func:`type_k_emf_mv` by vectorized bisection on -270 .. 1372 °C.
    The reference function is strictly increasing there, so the root is
    unique and bisection cannot fail; about 44 halvings of the 1642 °C
    bracket reach the default tolerance, each one a single vectorized
    evaluation of the reference function for all values at once.

    Parameters
    ----------
    emf_mv : float or array_like
        EMF in mV relative to a 0 °C reference junction. To compensate a cold
        junction at ``t_cj`` °C, pass ``measured + type_k_emf_mv(t_cj)``.
    xtol : float, optional
        Absolute tolerance on the temperature, °C (positive).

    Returns
    -------
    float or numpy.ndarray
        Temperature in °C, same shape as ``emf_mv`` (a Python float for scalar input).

    Raises
    ------
    ValueError
        If any EMF is outside the range of the reference function or not finite.

    Examples
    --------
    >>> round(type_k_temperature_c(41.276), 1)  # the table's 1000 °C, rounded to 1 µV
    1000.0
    >>> round(type_k_temperature_c(type_k_emf_mv(1000.0)), 9)
    1000.0
    """
    if not xtol > 0:
        raise ValueError(f"xtol must be positive, got {xtol}")
    e = np.asarray(emf_mv, dtype=float)
    if not np.all(np.isfinite(e)) or np.any(e < EMF_MIN_MV) or np.any(e > EMF_MAX_MV):
        raise ValueError(
            f"Type K EMF must lie in {EMF_MIN_MV:.3f} .. {EMF_MAX_MV:.3f} mV (-270 .. 1372 °C)"
        )
    lo = np.full(e.shape, T_MIN_C)
    hi = np.full(e.shape, T_MAX_C)
    # Invariant: E(lo) <= e <= E(hi). Stop when the bracket is below xtol or
    # can no longer be halved in floating point.
    while True:
        mid = 0.5 * (lo + hi)
        if np.all((hi - lo) <= xtol) or np.all((mid == lo) | (mid == hi)):
            break
        below = _emf_unchecked(mid) < e
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    out = 0.5 * (lo + hi)
    return float(out) if out.ndim == 0 else out
