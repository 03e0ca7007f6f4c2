import numpy as np
import pytest

from plc_anna.correction.baselines import gdc_column_scale, gdc_scale, oracle_affine


def test_gdc_undoes_a_global_scale():
    rng = np.random.default_rng(0)
    readout = rng.normal(size=(8, 4))
    assert gdc_scale(readout, 0.7 * readout) == pytest.approx(1 / 0.7)
    np.testing.assert_allclose(gdc_column_scale(readout, readout * [0.5, 1, 2, 4]), [2, 1, 0.5, 0.25])


def test_oracle_is_least_squares():
    rng = np.random.default_rng(1)
    ideal = rng.normal(size=(500, 3))
    raw = 0.8 * ideal + 0.2 + 0.05 * rng.normal(size=(500, 3))
    gain, offset = oracle_affine(raw, ideal)
    for j in range(3):
        slope, intercept = np.polyfit(raw[:, j], ideal[:, j], 1)
        assert gain[j] == pytest.approx(slope) and offset[j] == pytest.approx(intercept)


def test_shapes_checked():
    with pytest.raises(ValueError, match="same shape|one shape"):
        gdc_scale(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError):
        oracle_affine(np.ones((1, 2)), np.ones((1, 2)))
