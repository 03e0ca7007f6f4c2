"""The published laws, checked against their formulas and by sampling."""

import math

import numpy as np
import pytest
from scipy import stats

from plc_anna.converters import quantize
from plc_anna.device import physics
from plc_anna.device.crossbar import Crossbar
from plc_anna.device.params import PRESETS


def test_programming_noise_polynomial():
    g = np.array([0.0, 5.0, 12.5, 25.0])
    x = g / 25.0
    expected = 0.26348 + 1.9650 * x - 1.1731 * x**2
    np.testing.assert_allclose(physics.programming_noise_std(g, 25.0), expected)
    # scales with g_max relative to the 25 µS reference
    np.testing.assert_allclose(physics.programming_noise_std(2 * g, 50.0), 2 * expected)


def test_drift_exponent_laws_match_formulas():
    g = np.logspace(-4, 0, 50)
    np.testing.assert_allclose(physics.drift_exponent_mean(g, "pcm"),
                               np.clip(-0.0155 * np.log(g) + 0.0244, 0.049, 0.1))
    np.testing.assert_allclose(physics.drift_exponent_std(g), np.clip(-0.0125 * np.log(g) - 0.0059, 0.008, 0.045))
    hermes = physics.drift_exponent_mean(g, "hermes")
    low = g < 0.0945
    np.testing.assert_allclose(hermes[low], np.clip(-0.0387 * np.log(g[low]) - 0.0182, 0.072, 0.13))
    np.testing.assert_allclose(hermes[~low], -0.0436 * g[~low] ** 2 - 0.0126 * g[~low] + 0.0736)
    with pytest.raises(ValueError, match="unknown drift law"):
        physics.drift_exponent_mean(g, "rram")


def test_drift_factor_and_flicker_index():
    assert physics.drift_factor(0.0, np.array(0.07), 20.0) == 1.0
    assert physics.drift_factor(1980.0, np.array(0.1), 20.0) == pytest.approx(100 ** -0.1)
    with pytest.raises(ValueError):
        physics.drift_factor(-1.0, np.array(0.1), 20.0)
    assert physics.flicker_variance_index(20.0, 250e-9) == pytest.approx(math.log((20 + 250e-9) / 500e-9))
    np.testing.assert_allclose(physics.flicker_coefficient(np.array([25.0, 1e-9]), 25.0), [0.0088, 0.2])


def test_arrhenius_is_one_at_reference_and_grows_with_temperature():
    assert physics.arrhenius_acceleration(300.0, 300.0, 0.2) == 1.0
    assert physics.arrhenius_acceleration(350.0, 300.0, 0.2) > physics.arrhenius_acceleration(330.0, 300.0, 0.2) > 1
    assert physics.arrhenius_acceleration(280.0, 300.0, 0.2) < 1
    with pytest.raises(ValueError):
        physics.arrhenius_acceleration(0.0, 300.0, 0.2)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantize_levels(bits):
    u = np.linspace(-1.5, 1.5, 10001)
    q = quantize(u, bits)
    assert q.min() == -1 and q.max() == 1
    assert np.unique(q).size == 2 ** bits - 1
    assert np.max(np.abs(q - np.clip(u, -1, 1))) <= 0.5 / (2 ** (bits - 1) - 1) + 1e-12


def _uniform_crossbar(level: float, n: int, **changes) -> Crossbar:
    """A crossbar whose positive devices all target ``level`` x g_max."""
    params = PRESETS["pcm"].replace(**changes)
    weights = np.full((n, n), level)
    weights[0, 0] = 1.0  # sets w_max = 1 so the others sit at g = level
    return Crossbar(weights, params, np.random.default_rng(123))


@pytest.mark.parametrize("level", [0.3, 0.6, 0.9])
def test_programming_noise_statistics(level):
    cb = _uniform_crossbar(level, 300, read_noise_scale=0.0)
    g = cb.g_prog_us[0].ravel()[1:]
    sigma = physics.programming_noise_std(np.array(level * 25.0), 25.0)
    n = g.size
    # mean within 5 standard errors, std within 5 standard errors of a std estimate
    assert abs(g.mean() - level * 25.0) < 5 * sigma / math.sqrt(n)
    assert abs(g.std(ddof=1) / sigma - 1) < 5 / math.sqrt(2 * n)
    # and the distribution is normal (the clamp at 0 is 10 sigma away here)
    assert stats.normaltest(g).pvalue > 1e-4


@pytest.mark.parametrize("level,law", [(0.5, "pcm"), (0.01, "pcm"), (0.05, "hermes"), (0.8, "hermes")])
def test_drift_exponent_statistics(level, law):
    cb = _uniform_crossbar(level, 300, drift_law=law, read_noise_scale=0.0)
    nu = cb.nu[0].ravel()[1:]
    mu = float(physics.drift_exponent_mean(np.array(level), law))
    sd = float(physics.drift_exponent_std(np.array(level)))
    folded = stats.foldnorm(mu / sd, scale=sd)  # nu = |N(mu, sd)|
    n = nu.size
    assert abs(nu.mean() - folded.mean()) < 5 * folded.std() / math.sqrt(n)
    assert abs(nu.std(ddof=1) / folded.std() - 1) < 5 / math.sqrt(2 * n)
    assert stats.kstest(nu, folded.cdf).pvalue > 1e-4


def test_constant_drift_exponent_and_exact_drift_law():
    cb = _uniform_crossbar(0.5, 50, prog_noise_scale=0.0, read_noise_scale=0.0, nu_mean=0.06, nu_std=0.0)
    assert np.all(cb.nu == 0.06)
    for age in (0.0, 1.0, 3600.0, 86400.0 * 365.25 * 10):
        g = cb.conductances_us(age, age)
        np.testing.assert_allclose(g, cb.g_prog_us * ((age + 20.0) / 20.0) ** -0.06, rtol=1e-13)


def test_flicker_noise_variance_follows_log_time():
    cb = _uniform_crossbar(0.5, 300, prog_noise_scale=0.0, drift_scale=0.0)
    g_prog = cb.g_prog_us[0].ravel()[1:]
    q_s = float(physics.flicker_coefficient(np.array(12.5), 25.0))
    for age in (0.0, 1e6):  # grid nodes: age 0 is the first node
        g = cb.conductances_us(age, age)[0].ravel()[1:]
        rel = (g - g_prog) / g_prog
        expected = q_s * math.sqrt(physics.flicker_variance_index(age + 20.0, 250e-9))
        if age == 0.0:
            assert abs(rel.std(ddof=1) / expected - 1) < 5 / math.sqrt(2 * rel.size)
        else:  # between nodes, linear interpolation keeps the variance within a few per cent
            assert 0.9 < rel.std(ddof=1) / expected < 1.05
