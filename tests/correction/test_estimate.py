"""The correction recovers a known drift, also under a process change: from moments, and from the paired drift."""

import numpy as np
import pytest

from plc_anna.correction.baselines import oracle_affine
from plc_anna.correction.estimate import drift_correction, estimate_correction, refine_clipped
from plc_anna.stats.cross import cross_moments
from plc_anna.stats.moments import batch_moments
from plc_anna.stats.reference import fit_fingerprint, reference_moments


@pytest.fixture
def layer():
    rng = np.random.default_rng(5)
    W = rng.normal(size=(8, 10)) / 3
    b = rng.normal(size=8) / 5
    W_cal = W * (1 + 0.05 * rng.normal(size=W.shape))
    b_cal = b + 0.02 * rng.normal(size=8)
    noise = 0.01
    x_cal = rng.normal(size=(40000, 10))
    y_cal = x_cal @ W_cal.T + b_cal + noise * rng.normal(size=(40000, 8))
    fp = fit_fingerprint(cross_moments(x_cal, y_cal), W)
    return rng, W, b, W_cal, b_cal, noise, fp


@pytest.mark.parametrize("shift", [0.0, 2.0])
def test_known_drift_is_recovered(layer, shift):
    rng, W, b, W_cal, b_cal, noise, fp = layer
    drift_gain = rng.uniform(0.7, 1.1, 8)
    drift_offset = rng.normal(0, 0.05, 8)
    # live data from another process: shifted mean and doubled variance when shift > 0
    x = rng.normal(size=(20000, 10)) * (1 + shift / 2) + shift
    y = drift_gain * (x @ W_cal.T + b_cal) + drift_offset + noise * rng.normal(size=(20000, 8))
    out = batch_moments(y)
    ref = reference_moments(batch_moments(x @ W.T + b), batch_moments(fp.predict(x)))
    c = estimate_correction(ref, out.mean, out.var, fp.noise_var)
    np.testing.assert_allclose(c.drift_gain, drift_gain, rtol=0.02)
    np.testing.assert_allclose(c.drift_offset, drift_offset, atol=0.02)
    # the corrected outputs have the ideal distribution
    corrected = c.gain * y + c.offset
    np.testing.assert_allclose(corrected.mean(axis=0), (x @ W.T + b).mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(corrected.std(axis=0), (x @ W.T + b).std(axis=0), rtol=0.01)
    # and per sample it is nearly as good as the labelled least-squares fit (the oracle)
    oracle_gain, oracle_offset = oracle_affine(y, x @ W.T + b)
    corrected = c.gain * y + c.offset
    ideal = x @ W.T + b
    error = np.sqrt(np.mean((corrected - ideal) ** 2))
    oracle_error = np.sqrt(np.mean((oracle_gain * y + oracle_offset - ideal) ** 2))
    raw_error = np.sqrt(np.mean((y - ideal) ** 2))
    assert error < oracle_error * 1.15
    assert raw_error > 3 * error


@pytest.mark.parametrize("shift", [0.0, 2.0])
def test_the_paired_drift_gives_the_map_without_the_noise_in_the_variance(layer, shift):
    """The drift measured pair by pair against the fingerprint: the map needs no output variance at all."""
    rng, W, b, W_cal, b_cal, noise, fp = layer
    drift_gain, drift_offset = rng.uniform(0.7, 1.1, 8), rng.normal(0, 0.05, 8)
    x = rng.normal(size=(2048, 10)) * (1 + shift / 2) + shift
    y = drift_gain * (x @ W_cal.T + b_cal) + drift_offset + noise * rng.normal(size=(2048, 8))
    predicted = fp.predict(x)
    centred = predicted - predicted.mean(axis=0)
    slope = np.sum(centred * (y - y.mean(axis=0)), axis=0) / np.sum(centred**2, axis=0)
    measured_gain, measured_offset = slope, y.mean(axis=0) - slope * predicted.mean(axis=0)
    np.testing.assert_allclose(measured_gain, drift_gain, rtol=2e-3)       # far tighter than from moments
    c = drift_correction(reference_moments(batch_moments(x @ W.T + b), batch_moments(predicted)), measured_gain,
                         measured_offset, fp.noise_var)
    ideal = x @ W.T + b
    corrected = c.gain * y + c.offset
    np.testing.assert_allclose(corrected.mean(axis=0), ideal.mean(axis=0), atol=1e-9)
    oracle_gain, oracle_offset = oracle_affine(y, ideal)
    error = np.sqrt(np.mean((corrected - ideal) ** 2))
    oracle_error = np.sqrt(np.mean((oracle_gain * y + oracle_offset - ideal) ** 2))
    assert error < oracle_error * 1.15


def test_no_drift_gives_identity_on_the_calibrated_state(layer):
    rng, W, b, W_cal, b_cal, noise, fp = layer
    x = rng.normal(size=(20000, 10))
    y = x @ W_cal.T + b_cal + noise * rng.normal(size=(20000, 8))
    out = batch_moments(y)
    c = estimate_correction(reference_moments(batch_moments(x @ W.T + b), batch_moments(fp.predict(x))), out.mean, out.var,
                            fp.noise_var)
    np.testing.assert_allclose(c.drift_gain, 1.0, atol=0.01)
    np.testing.assert_allclose(c.drift_offset, 0.0, atol=0.01)
    # what remains is the static programming error, which the map to the ideal corrects
    ideal = x @ W.T + b
    assert np.sqrt(np.mean((c.gain * y + c.offset - ideal) ** 2)) < np.sqrt(np.mean((y - ideal) ** 2))


def test_clipped_columns_use_the_empirical_map(layer):
    rng, W, b, W_cal, b_cal, noise, fp = layer
    x = rng.normal(size=(4000, 10))
    ideal = x @ W.T + b
    y = 0.8 * ideal + 0.1
    rail = np.quantile(y[:, 0], 0.9)
    y[:, 0] = np.minimum(y[:, 0], rail)  # the ADC clips the top tenth of column 0
    out = batch_moments(y)
    gaussian = estimate_correction(reference_moments(batch_moments(ideal), batch_moments(y)), out.mean, out.var,
                                   np.zeros(8))
    refined, mask = refine_clipped(gaussian, y, ideal)
    assert mask.tolist() == [True] + [False] * 7
    assert refined.gain[0] == pytest.approx(1 / 0.8, rel=0.01)  # the empirical map sees through the clipping
    assert abs(gaussian.gain[0] - 1 / 0.8) > 0.03                # the moments do not
    np.testing.assert_array_equal(refined.gain[1:], gaussian.gain[1:])
