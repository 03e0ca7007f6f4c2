"""The drift latent: planted trends, the role of beta, prediction, remaining life, faults."""

import math

import numpy as np
import pytest

from plc_anna.correction.latent import (
    CorrectionRecord,
    DriftLatent,
    correction_features,
    correction_from_features,
    log_age,
)

AGES = np.geomspace(3600.0, 30 * 86400.0, 12)


def planted(seed=0, k=6, noise=0.004, temperatures=None):
    """A history whose features grow linearly in log-age with known rates, plus calibration noise."""
    rng = np.random.default_rng(seed)
    rate = np.concatenate([rng.uniform(0.03, 0.09, k), rng.normal(0, 0.01, k)])
    base = np.concatenate([rng.normal(0, 0.02, k), rng.normal(0, 0.01, k)])
    latent = DriftLatent()
    temperatures = np.full(AGES.size, 300.0) if temperatures is None else temperatures
    for age, temp in zip(AGES, temperatures):
        x = base + rate * log_age(age) + noise * rng.normal(size=2 * k)
        gain, offset = correction_from_features(x)
        latent.add(CorrectionRecord(age, temp, gain, offset))
    return latent, rate, base


def test_features_round_trip():
    gain, offset = np.array([1.2, 0.8]), np.array([0.1, -0.3])
    g, o = correction_from_features(correction_features(gain, offset))
    np.testing.assert_allclose(g, gain)
    np.testing.assert_allclose(o, offset)


@pytest.mark.parametrize("seed", range(3))
def test_recovers_a_planted_direction_and_rate(seed):
    latent, rate, _ = planted(seed)
    gain_rate, offset_rate = latent.rates
    np.testing.assert_allclose(np.concatenate([gain_rate, offset_rate]), rate, atol=0.004)
    direction = latent.drift_directions
    assert direction.shape[1] == 1  # one relevance variable: one drift direction
    # the direction is the Σx-metric partner of the rate vector: it predicts log-age best
    score = (np.array([correction_features(r.gain, r.offset) for r in latent.records]) @ direction[:, 0])
    assert abs(np.corrcoef(score, log_age(AGES))[0, 1]) > 0.99


def test_beta_zero_predicts_the_mean_and_large_beta_the_regression():
    latent, _, _ = planted(1)
    X = np.array([correction_features(r.gain, r.offset) for r in latent.records])
    latent.beta = 0.0
    latent._fit = None
    mean, _ = latent.predict_features(3e8)
    np.testing.assert_allclose(mean, X.mean(axis=0), atol=1e-12)
    assert latent.drift_directions.shape[1] == 0
    latent.beta = 1e9
    latent._fit = None
    mean, _ = latent.predict_features(3e8)
    s = log_age(AGES, latent.t_ref_s)
    regression = [np.polyval(np.polyfit(s, X[:, j], 1), log_age(3e8, latent.t_ref_s)) for j in range(X.shape[1])]
    np.testing.assert_allclose(mean, regression, atol=1e-6)


def test_beta_below_the_threshold_keeps_nothing():
    latent, _, _ = planted(2)
    lam = latent._fitted()["lam"][0]
    latent.beta = 0.9 / (1.0 - lam)  # just below the value at which the direction turns on
    latent._fit = None
    assert latent.drift_directions.shape[1] == 0


def test_the_clock_origin_is_fitted():
    latent = DriftLatent()
    for age in AGES:
        latent.add(CorrectionRecord(age, 300.0, np.full(2, ((age + 300) / 300) ** 0.06), np.zeros(2)))
    assert latent.t_ref_s == 300.0  # a HERMES-like drift origin


def test_predicts_a_power_law_ten_years_out():
    latent = DriftLatent()
    for age in AGES:
        latent.add(CorrectionRecord(age, 300.0, np.full(3, ((age + 60) / 60) ** 0.06), np.zeros(3)))
    gain, offset = latent.predict(3.15e8)
    np.testing.assert_allclose(gain, ((3.15e8 + 60) / 60) ** 0.06, rtol=1e-6)
    np.testing.assert_allclose(offset, 0.0, atol=1e-9)


def test_remaining_life_of_a_known_crossing():
    latent = DriftLatent()
    rng = np.random.default_rng(3)
    for age in AGES:
        gain = ((age + 60) / 60) ** np.array([0.05, 0.06]) * np.exp(0.003 * rng.normal(size=2))
        latent.add(CorrectionRecord(age, 300.0, gain, np.zeros(2)))
    life = latent.remaining_life(gain_range=(0.25, 2.0))
    true_age = 60 * (2.0 ** (1 / 0.06)) - 60  # column 1 needs gain 2 first
    assert life.column == 1 and life.parameter == "gain"
    assert abs(life.age_s / true_age - 1) < 0.2
    assert life.low_s <= life.age_s <= life.high_s
    assert latent.remaining_life(gain_range=(0.25, 1e6)) is None


def test_an_offset_step_is_surprising_and_the_trend_is_not():
    latent, rate, base = planted(4)
    age = 60 * 86400.0
    normal_x = base + rate * log_age(age)
    gain, offset = correction_from_features(normal_x)
    assert latent.surprise(CorrectionRecord(age, 300.0, gain, offset)).max() < 4
    stepped = offset.copy()
    stepped[2] += 0.2 * gain[2]
    assert latent.surprise(CorrectionRecord(age, 300.0, gain, stepped)).max() > 10


def test_temperature_enters_when_it_varies():
    rng = np.random.default_rng(5)
    temps = 300.0 + rng.uniform(0, 30, AGES.size)
    latent = DriftLatent()
    for age, temp in zip(AGES, temps):
        x = np.array([0.05 * log_age(age) + 0.002 * (temp - 300), 0.0])
        latent.add(CorrectionRecord(age, temp, *correction_from_features(x)))
    assert latent._fitted()["uses_temperature"]
    hot, _ = latent.predict(1e7, 330.0)
    cold, _ = latent.predict(1e7, 300.0)
    assert math.log(hot[0] / cold[0]) == pytest.approx(0.06, rel=1e-3)


def test_bad_records_and_not_enough_history():
    latent = DriftLatent()
    with pytest.raises(ValueError, match="finite positive gains"):
        latent.add(CorrectionRecord(1.0, 300.0, np.array([-1.0]), np.array([0.0])))
    latent.add(CorrectionRecord(1.0, 300.0, np.ones(2), np.zeros(2)))
    with pytest.raises(ValueError, match="2 columns"):
        latent.add(CorrectionRecord(2.0, 300.0, np.ones(3), np.zeros(3)))
    with pytest.raises(ValueError, match="needs 3 records"):
        latent.predict(10.0)


def test_round_trip_through_plain_data():
    import json

    latent, _, _ = planted(6)
    latent.noise_floor = np.full(12, 0.002)
    copy = DriftLatent.from_dict(json.loads(json.dumps(latent.to_dict())))
    np.testing.assert_allclose(copy.predict(1e8)[0], latent.predict(1e8)[0])
    np.testing.assert_allclose(copy.noise_floor, latent.noise_floor)
    with pytest.raises(ValueError, match="not a saved drift latent"):
        DriftLatent.from_dict({"beta": 1.0})
