"""NIST ITS-90 Type K reference function (training.its90) against the NIST tables."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# ``training/`` sits at the repository root and is not part of the installed
# package; make it importable however pytest was started.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

from training.its90 import (  # noqa: E402
    EMF_MAX_MV,
    EMF_MIN_MV,
    T_MAX_C,
    T_MIN_C,
    type_k_emf_mv,
    type_k_temperature_c,
)

# NIST ITS-90 Type K table (NIST Monograph 175 / SRD 60), mV at the given °C,
# reference junction at 0 °C; the tables are rounded to 1 µV.
NIST_TABLE_MV = {
    -270.0: -6.458,
    -200.0: -5.891,
    -100.0: -3.554,
    -50.0: -1.889,
    0.0: 0.000,
    50.0: 2.023,
    100.0: 4.096,
    200.0: 8.138,
    300.0: 12.209,
    400.0: 16.397,
    500.0: 20.644,
    600.0: 24.905,
    700.0: 29.129,
    800.0: 33.275,
    900.0: 37.326,
    1000.0: 41.276,
    1100.0: 45.119,
    1200.0: 48.838,
    1300.0: 52.410,
    1372.0: 54.886,
}


@pytest.mark.parametrize("t_c, emf_mv", sorted(NIST_TABLE_MV.items()))
def test_forward_matches_nist_table(t_c, emf_mv):
    assert round(type_k_emf_mv(t_c), 3) == pytest.approx(emf_mv, abs=1e-12)


def test_forward_vectorized_keeps_shape_and_scalar_gives_float():
    t = np.array(sorted(NIST_TABLE_MV)).reshape(4, 5)
    emf = type_k_emf_mv(t)
    assert emf.shape == (4, 5)
    np.testing.assert_allclose(emf.ravel(), [NIST_TABLE_MV[k] for k in t.ravel()], atol=5e-4)
    assert isinstance(type_k_emf_mv(25.0), float)


def test_forward_is_continuous_at_zero_and_increasing():
    # The two NIST ranges meet at 0 °C: the 0..1372 °C branch gives ~2e-9 mV there.
    assert abs(type_k_emf_mv(0.0)) < 1e-8
    assert abs(type_k_emf_mv(-1e-9)) < 1e-8
    emf = type_k_emf_mv(np.linspace(T_MIN_C, T_MAX_C, 100_001))
    assert np.all(np.diff(emf) > 0)


@pytest.mark.parametrize("bad", [T_MIN_C - 1.0, T_MAX_C + 1.0, np.nan, np.inf])
def test_forward_refuses_out_of_range(bad):
    with pytest.raises(ValueError, match="Type K temperature"):
        type_k_emf_mv(np.array([20.0, bad]))


def test_inverse_round_trip_over_the_whole_range():
    t = np.linspace(T_MIN_C, T_MAX_C, 3285)
    back = type_k_temperature_c(type_k_emf_mv(t))
    assert back.shape == t.shape
    assert np.max(np.abs(back - t)) < 1e-6


def test_inverse_round_trip_random_and_cold_junction():
    rng = np.random.default_rng(3)
    t_hot = rng.uniform(0.0, 800.0, size=(500, 4))
    t_cj = rng.uniform(0.0, 50.0, size=500)
    measured = type_k_emf_mv(t_hot) - type_k_emf_mv(t_cj)[:, None]
    back = type_k_temperature_c(measured + type_k_emf_mv(t_cj)[:, None])
    assert np.max(np.abs(back - t_hot)) < 1e-6


# -270 °C is left out: its rounded table value, -6.458 mV, lies just below the
# exact end of the range (-6.45774 mV) and is refused.
@pytest.mark.parametrize("t_c, emf_mv", sorted(NIST_TABLE_MV.items())[1:])
def test_inverse_of_table_values(t_c, emf_mv):
    # Table EMFs are rounded to 0.5 µV, i.e. to 0.5 µV / (local Seebeck
    # coefficient) in temperature: ~0.013 °C at 1000 °C, ~0.03 °C at -200 °C.
    lo, hi = max(t_c - 0.5, T_MIN_C), min(t_c + 0.5, T_MAX_C)
    seebeck_mv_per_c = (type_k_emf_mv(hi) - type_k_emf_mv(lo)) / (hi - lo)
    tol = 0.0005 / seebeck_mv_per_c * 1.05
    assert type_k_temperature_c(emf_mv) == pytest.approx(t_c, abs=tol)


def test_inverse_ends_and_scalar():
    assert type_k_temperature_c(EMF_MIN_MV) == pytest.approx(T_MIN_C, abs=1e-6)
    assert type_k_temperature_c(EMF_MAX_MV) == pytest.approx(T_MAX_C, abs=1e-6)
    assert isinstance(type_k_temperature_c(1.0), float)


@pytest.mark.parametrize("bad", [EMF_MIN_MV - 0.01, EMF_MAX_MV + 0.01, np.nan])
def test_inverse_refuses_out_of_range(bad):
    with pytest.raises(ValueError, match="Type K EMF"):
        type_k_temperature_c([1.0, bad])
