"""The chi-square CUSUM: normal scores, Siegmund's run length checked by simulation, detection delay."""

import math

import numpy as np
import pytest
from scipy import optimize

from plc_anna.drift import ChiSquareCusum, siegmund_arl0, threshold_for_arl0, wilson_hilferty_score


def simulated_run_lengths(dof, threshold, reference, chains, rng, noncentrality=0.0, cap=100_000):
    """Run lengths until S_t > threshold for many independent CUSUM chains at once."""
    cusum = np.zeros(chains)
    run_length = np.zeros(chains, dtype=int)
    alive = np.arange(chains)
    t = 0
    while alive.size and t < cap:
        t += 1
        if noncentrality:
            x = rng.noncentral_chisquare(dof, noncentrality, size=alive.size)
        else:
            x = rng.chisquare(dof, size=alive.size)
        cusum[alive] = np.maximum(0.0, cusum[alive] + wilson_hilferty_score(x, dof) - reference)
        hit = cusum[alive] > threshold
        run_length[alive[hit]] = t
        alive = alive[~hit]
    assert alive.size == 0, "some chains never alarmed"
    return run_length


@pytest.mark.parametrize("dof", [2, 8, 64])
def test_wilson_hilferty_scores_are_standard_normal(dof):
    z = wilson_hilferty_score(np.random.default_rng(dof).chisquare(dof, size=200_000), dof)
    assert isinstance(z, np.ndarray) and z.shape == (200_000,)
    assert abs(np.mean(z)) < 0.02
    assert np.std(z) == pytest.approx(1.0, abs=0.03)


def test_wilson_hilferty_formula_and_scalars():
    dof, x = 16, 20.0
    c = 2 / (9 * dof)
    expected = ((x / dof) ** (1 / 3) - (1 - c)) / math.sqrt(c)
    assert wilson_hilferty_score(x, dof) == pytest.approx(expected, rel=1e-14)
    assert isinstance(wilson_hilferty_score(x, dof), float)


def test_threshold_inverts_siegmund():
    for arl0 in (10.0, 200.0, 1e4, 1e6, 1e9):
        for reference in (0.25, 0.5, 1.0):
            h = threshold_for_arl0(arl0, reference)
            assert h > 0
            assert siegmund_arl0(h, reference) == pytest.approx(arl0, rel=1e-9)
    assert siegmund_arl0(3.0, 0.5) < siegmund_arl0(4.0, 0.5)  # monotone in the threshold
    # the design-brief fact: h = ln(ARL0) is safe but about 6x too conservative (for k = 1/2)
    assert siegmund_arl0(math.log(1e6), 0.5) / 1e6 == pytest.approx(6.4, abs=0.1)


@pytest.mark.parametrize("dof", [16, 2])
def test_in_control_run_length_matches_siegmund(dof):
    """The false-alarm guarantee: the mean no-drift run length is the design ARL0 (measured -3 %)."""
    arl0 = 200.0
    h = threshold_for_arl0(arl0, 0.5)
    run_length = simulated_run_lengths(dof, h, 0.5, chains=10_000, rng=np.random.default_rng(11))
    assert np.mean(run_length) == pytest.approx(arl0, rel=0.10)


def test_the_class_runs_the_same_recursion():
    rng = np.random.default_rng(5)
    x = rng.chisquare(16, size=300)
    detector = ChiSquareCusum(dof=16, arl0=200.0)
    s, alarmed = 0.0, False
    for xi in x:
        s = max(0.0, s + wilson_hilferty_score(xi, 16) - 0.5)
        alarmed = alarmed or s > detector.threshold
        assert detector.update(xi) is alarmed
        assert detector.cusum == pytest.approx(s, rel=1e-12, abs=1e-12)
        assert detector.score == pytest.approx(wilson_hilferty_score(xi, 16))
    assert detector.n_updates == 300


def test_no_false_alarm_in_1e5_null_updates_at_arl0_1e6():
    detector = ChiSquareCusum(dof=16)
    assert detector.arl0 == 1e6 and detector.shift == 1.0 and detector.dof == 16
    assert detector.threshold == pytest.approx(threshold_for_arl0(1e6, 0.5))
    alarms = [detector.update(x) for x in np.random.default_rng(2024).chisquare(16, size=100_000)]
    assert not any(alarms) and not detector.drift_detected
    assert detector.n_updates == 100_000


def test_sustained_shift_is_detected_within_twice_the_expected_delay():
    dof = 16
    # noncentrality that moves the score of the mean statistic to 3
    lam = optimize.brentq(lambda nc: wilson_hilferty_score(dof + nc, dof) - 3.0, 0.0, 1e3)
    rng = np.random.default_rng(9)
    mean_score = np.mean(wilson_hilferty_score(rng.noncentral_chisquare(dof, lam, size=100_000), dof))
    assert mean_score == pytest.approx(3.0, abs=0.2)
    detector = ChiSquareCusum(dof=dof)
    budget = 2 * detector.expected_delay(mean_score)
    assert 5 < budget < 15
    # over many replications the mean delay is the expected one (measured 5.59 vs 5.46) and
    # a delay beyond twice that is rare (measured 3e-4) ...
    delays = simulated_run_lengths(dof, detector.threshold, detector.reference, 5000, rng, noncentrality=lam)
    assert np.mean(delays) == pytest.approx(detector.expected_delay(mean_score), rel=0.15)
    assert np.mean(delays > budget) < 0.002
    # ... and the class itself detects it in time
    for t, x in enumerate(rng.noncentral_chisquare(dof, lam, size=int(budget)), start=1):
        if detector.update(x):
            break
    assert detector.drift_detected and t <= budget


def test_alarm_latches_until_reset():
    detector = ChiSquareCusum(dof=4, arl0=100.0)
    assert math.isnan(detector.score) and detector.cusum == 0.0 and detector.n_updates == 0
    assert detector.update(200.0) is True and detector.drift_detected
    assert detector.update(0.0) is True            # stays detected although S falls back below h
    assert detector.update(0.0) is True and detector.cusum < detector.threshold
    detector.reset()
    assert detector.drift_detected is False and detector.cusum == 0.0 and detector.n_updates == 3
    assert detector.update(4.0) is False


def test_expected_delay():
    detector = ChiSquareCusum(dof=8, arl0=1e4, shift=2.0)
    assert detector.reference == 1.0
    assert detector.expected_delay(3.0) == pytest.approx((detector.threshold + 1.166) / 2.0)
    assert detector.expected_delay(1.0) == math.inf and detector.expected_delay(-1.0) == math.inf


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="dof"):
        wilson_hilferty_score(1.0, 0)
    with pytest.raises(ValueError, match="statistic"):
        wilson_hilferty_score(np.array([1.0, -1.0]), 4)
    with pytest.raises(ValueError, match="statistic"):
        wilson_hilferty_score(float("nan"), 4)
    with pytest.raises(ValueError, match="reference"):
        siegmund_arl0(1.0, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        siegmund_arl0(-1.0, 0.5)
    with pytest.raises(ValueError, match="arl0"):
        threshold_for_arl0(1.5, 0.5)                # below the run length of h = 0
    with pytest.raises(ValueError, match="arl0"):
        threshold_for_arl0(math.inf, 0.5)
    for kwargs in ({"dof": 0}, {"dof": 2.5}, {"dof": True}, {"dof": 4, "shift": 0.0},
                   {"dof": 4, "shift": math.nan}, {"dof": 4, "arl0": 1.0}):
        with pytest.raises(ValueError):
            ChiSquareCusum(**kwargs)
    detector = ChiSquareCusum(dof=4)
    detector.update(3.0)
    before = (detector.cusum, detector.score, detector.n_updates)
    for bad in (math.nan, -0.5, math.inf):
        with pytest.raises(ValueError, match="statistic"):
            detector.update(bad)
    assert (detector.cusum, detector.score, detector.n_updates) == before
    with pytest.raises(AttributeError):
        detector.threshold = 1.0
