"""Fisher–Rao distances: metric axioms, closed forms, independent numerics and the sampling law."""

import math

import numpy as np
import pytest
from scipy import optimize

from plc_anna.drift import fisher_rao_distance, layer_distance, null_quantile


def hyperbolic_distance(x1, y1, x2, y2):
    """Poincaré half-plane distance, written out independently of the module."""
    return np.arccosh(1.0 + ((x1 - x2) ** 2 + (y1 - y2) ** 2) / (2.0 * y1 * y2))


def shortest_path_length(mu1, sigma1, mu2, sigma2, segments=32):
    """Brute force: minimise the Fisher-metric length ds² = (dμ² + 2dσ²)/σ² of a polygonal path.

    Each straight chord in (μ, σ) has exact metric length |(Δμ, √2 Δσ)| · Δln σ / Δσ,
    so the result is the length of an actual path: an upper bound converging as 1/segments².
    The gradient is taken by complex step, exact to rounding.
    """
    m = segments - 1

    def length(p):
        p = np.atleast_2d(p)
        ones = np.ones((p.shape[0], 1))
        mu = np.hstack([mu1 * ones, p[:, :m], mu2 * ones])
        log_sigma = np.hstack([math.log(sigma1) * ones, p[:, m:], math.log(sigma2) * ones])
        d_log = np.diff(log_sigma, axis=1)
        growth = np.expm1(d_log)                         # Δσ / σ_start
        flat = growth == 0
        ratio = np.where(flat, 1.0, d_log / np.where(flat, 1.0, growth))
        sigma_start = np.exp(log_sigma[:, :-1])
        chord = np.sqrt(np.diff(mu, axis=1) ** 2 + 2.0 * (sigma_start * growth) ** 2)
        return np.sum(chord * ratio / sigma_start, axis=1)

    t = np.linspace(0.0, 1.0, segments + 1)[1:-1]
    start = np.concatenate([mu1 + (mu2 - mu1) * t,
                            math.log(sigma1) + math.log(sigma2 / sigma1) * t + 0.1 * np.sin(np.pi * t)])
    result = optimize.minimize(lambda p: float(length(p)[0].real), start, method="BFGS",
                               jac=lambda p: length(p + 1e-20j * np.eye(p.size)).imag / 1e-20,
                               options={"gtol": 1e-9})
    return result.fun


def test_identity_symmetry_and_triangle_inequality():
    rng = np.random.default_rng(0)
    mu = rng.normal(scale=3.0, size=(3, 500))
    sigma = np.exp(rng.normal(size=(3, 500)))
    d01 = fisher_rao_distance(mu[0], sigma[0], mu[1], sigma[1])
    d12 = fisher_rao_distance(mu[1], sigma[1], mu[2], sigma[2])
    d02 = fisher_rao_distance(mu[0], sigma[0], mu[2], sigma[2])
    assert np.all(fisher_rao_distance(mu[0], sigma[0], mu[0], sigma[0]) == 0.0)
    np.testing.assert_allclose(fisher_rao_distance(mu[1], sigma[1], mu[0], sigma[0]), d01, rtol=1e-14)
    assert np.all(d01 > 0)
    assert np.all(d02 <= d01 + d12 + 1e-12)


def test_known_value_and_the_variant_without_half():
    d = fisher_rao_distance(0.0, 1.0, 3.0, 1.0)
    assert isinstance(d, np.ndarray) and d.shape == () and d.dtype == float
    assert float(d) == pytest.approx(math.sqrt(2) * math.acosh(3.25), rel=1e-14)
    assert float(d) == pytest.approx(2.6124004674571, rel=1e-12)
    # the circulating variant without "/2" on the mean term gives 3.3793: not the geodesic distance
    assert math.sqrt(2) * math.acosh(1 + 9 / 2) == pytest.approx(3.3793007, rel=1e-7)
    assert shortest_path_length(0.0, 1.0, 3.0, 1.0) == pytest.approx(2.6124, abs=1e-3)


def test_pure_scale_change():
    s1 = np.array([0.1, 1.0, 2.0, 50.0])
    s2 = np.array([0.3, 1e-3, 2.0, 7.0])
    np.testing.assert_allclose(fisher_rao_distance(1.5, s1, 1.5, s2), math.sqrt(2) * np.abs(np.log(s2 / s1)),
                               rtol=1e-13, atol=1e-15)


def test_equals_sqrt2_times_poincare_half_plane_distance():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(scale=4.0, size=(2, 1000))
    s1, s2 = np.exp(rng.normal(size=(2, 1000)))
    expected = math.sqrt(2) * hyperbolic_distance(mu1 / math.sqrt(2), s1, mu2 / math.sqrt(2), s2)
    np.testing.assert_allclose(fisher_rao_distance(mu1, s1, mu2, s2), expected, rtol=1e-9)


@pytest.mark.parametrize("pair", [(0.0, 1.0, 3.0, 1.0), (1.0, 0.5, -2.0, 2.0), (0.3, 2.5, 1.1, 0.4)])
def test_agrees_with_brute_force_path_minimisation(pair):
    brute = shortest_path_length(*pair)
    exact = float(fisher_rao_distance(*pair))
    assert brute == pytest.approx(exact, abs=1e-3)
    assert brute >= exact - 1e-9  # a path is never shorter than the geodesic


def test_tiny_distances_keep_their_precision():
    assert float(fisher_rao_distance(0.0, 1.0, 1e-9, 1.0)) == pytest.approx(1e-9, rel=1e-12)
    assert float(fisher_rao_distance(0.0, 1.0, 0.0, 1.0 + 1e-12)) == pytest.approx(math.sqrt(2) * 1e-12, rel=1e-6)
    assert float(fisher_rao_distance(5.0, 1e-3, 5.0 + 1e-15, 1e-3)) == pytest.approx(1e-12, rel=1e-6)


def test_broadcasting_and_layer_distance():
    d = fisher_rao_distance(np.zeros((2, 1)), 1.0, np.array([0.0, 3.0, 1.0]), np.ones(3))
    assert d.shape == (2, 3)
    assert layer_distance(np.array([3.0, 4.0])) == 5.0
    assert layer_distance(np.zeros(0)) == 0.0
    assert isinstance(layer_distance(d[0]), float)
    assert layer_distance(d) == pytest.approx(math.sqrt(np.sum(d**2)))


def test_sampling_law_of_the_layer_distance():
    """n · d_layer² of ML fits to n reference samples is about chi-square with 2k dof."""
    rng = np.random.default_rng(3)
    n, k, trials = 64, 8, 20000
    mu, sigma = rng.normal(scale=3.0, size=k), rng.uniform(0.5, 2.0, size=k)
    x = mu + sigma * rng.normal(size=(trials, n, k))
    d = fisher_rao_distance(x.mean(axis=1), x.std(axis=1), mu, sigma)  # std: the ML (1/n) fit
    squared = np.sum(d**2, axis=1)
    assert np.mean(n * squared) == pytest.approx(2 * k, rel=0.06)  # measured +4 %: a 1/n bias
    q = null_quantile(n, k, 0.99)
    assert np.quantile(squared, 0.99) == pytest.approx(q, rel=0.10)  # measured +8 %


@pytest.mark.parametrize("args, name", [
    ((0.0, 0.0, 0.0, 1.0), "sigma1"), ((0.0, 1.0, 0.0, -2.0), "sigma2"),
    ((np.nan, 1.0, 0.0, 1.0), "mu1"), ((0.0, 1.0, np.inf, 1.0), "mu2"),
    ((0.0, np.inf, 0.0, 1.0), "sigma1"), ((0.0, 1.0, 0.0, [1.0, np.nan]), "sigma2"),
])
def test_bad_distributions_raise(args, name):
    with pytest.raises(ValueError, match=name):
        fisher_rao_distance(*args)


def test_bad_layer_and_quantile_arguments_raise():
    with pytest.raises(ValueError, match="distances"):
        layer_distance(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=">= 0"):
        layer_distance(np.array([-1.0]))
    for bad in [(1, 8, 0.99), (64.0, 8, 0.99), (64, 0, 0.99), (64, True, 0.99)]:
        with pytest.raises(ValueError, match="n_samples|n_columns"):
            null_quantile(*bad)
    for p in (0.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match="probability"):
            null_quantile(64, 8, p)
    assert null_quantile(64, 8, 0.99) == pytest.approx(32.0 / 64, rel=1e-5)
