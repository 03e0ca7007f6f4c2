"""Transport maps: closed forms against POT and against numeric integration."""

import numpy as np
import ot
import pytest
from scipy import integrate, stats

from plc_anna.correction.transport import bures_map, empirical_affine_map, gaussian_monge_map, gaussian_w2


def test_monge_map_pushes_source_onto_target():
    rng = np.random.default_rng(0)
    mean_s, var_s = rng.normal(size=5), rng.uniform(0.5, 2, 5)
    mean_t, var_t = rng.normal(size=5), rng.uniform(0.5, 2, 5)
    gain, offset = gaussian_monge_map(mean_s, var_s, mean_t, var_t)
    np.testing.assert_allclose(gain * mean_s + offset, mean_t)
    np.testing.assert_allclose(gain**2 * var_s, var_t)


def test_monge_map_equals_pot_bures_map_for_diagonal_covariances():
    rng = np.random.default_rng(1)
    mean_s, var_s = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    mean_t, var_t = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    gain, offset = gaussian_monge_map(mean_s, var_s, mean_t, var_t)
    A, b, w2 = bures_map(mean_s, np.diag(var_s), mean_t, np.diag(var_t))
    np.testing.assert_allclose(np.diag(A), gain, rtol=1e-6)
    np.testing.assert_allclose(A - np.diag(np.diag(A)), 0, atol=1e-8)
    np.testing.assert_allclose(b, offset, rtol=1e-6, atol=1e-8)
    assert w2 == pytest.approx(np.sum(gaussian_w2(mean_s, np.sqrt(var_s), mean_t, np.sqrt(var_t))), rel=1e-6)


def test_w2_matches_numeric_quantile_integral():
    # W2^2 between 1-D laws is the integral over p of (F^-1(p) - G^-1(p))^2
    src, dst = stats.norm(0.3, 1.4), stats.norm(-1.0, 0.6)
    numeric, _ = integrate.quad(lambda p: (src.ppf(p) - dst.ppf(p)) ** 2, 0, 1, limit=200)
    assert float(gaussian_w2(0.3, 1.4, -1.0, 0.6)) == pytest.approx(numeric, rel=1e-6)


def test_bures_map_couples_columns():
    cov_s = np.array([[1.0, 0.8], [0.8, 1.0]])
    cov_t = np.array([[2.0, -0.5], [-0.5, 1.0]])
    A, b, _ = bures_map(np.zeros(2), cov_s, np.ones(2), cov_t)
    np.testing.assert_allclose(A.T @ cov_s @ A, cov_t, rtol=1e-6)  # pushes the covariance onto the target
    np.testing.assert_allclose(b, np.ones(2), atol=1e-9)
    with pytest.raises(ValueError, match="positive definite"):
        bures_map(np.zeros(2), np.zeros((2, 2)), np.ones(2), cov_t)


def test_empirical_map_handles_clipping_and_reports_pot_cost():
    rng = np.random.default_rng(2)
    dst = rng.normal(size=(5000, 3))
    src = np.clip(1.2 * dst - 0.4, -10, 1.5)  # heavy upper clipping
    gain, offset, w2 = empirical_affine_map(src, dst, trim=0.1)
    np.testing.assert_allclose(gain, 1 / 1.2, rtol=0.01)
    np.testing.assert_allclose(offset, 0.4 / 1.2, atol=0.02)
    np.testing.assert_allclose(w2, [ot.wasserstein_1d(src[:, j], dst[:, j], p=2) for j in range(3)])
    with pytest.raises(ValueError, match="trim"):
        empirical_affine_map(src, dst, trim=0.5)


def test_bad_variances_are_named():
    with pytest.raises(ValueError, match="var_src must be positive"):
        gaussian_monge_map(np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1))
    with pytest.raises(ValueError, match="var_dst must be positive"):
        gaussian_monge_map(np.zeros(1), np.ones(1), np.zeros(1), np.array([np.nan]))
