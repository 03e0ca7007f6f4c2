"""The input-predicted reference and the t0 fingerprint."""

import numpy as np
import pytest

from plc_anna.stats.moments import batch_moments
from plc_anna.stats.reference import fit_fingerprint, reference_moments


def make_layer(seed=0, n_in=6, n_out=4):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_out, n_in))
    b = rng.normal(size=n_out)
    W_cal = W * (1 + 0.1 * rng.normal(size=W.shape))  # what programming actually wrote
    b_cal = b + 0.1 * rng.normal(size=n_out)
    return rng, W, b, W_cal, b_cal


def test_fingerprint_recovers_the_programmed_response():
    rng, W, b, W_cal, b_cal = make_layer()
    x = rng.normal(size=(20000, 6)) @ rng.normal(size=(6, 6))
    noise = 0.05
    y = x @ W_cal.T + b_cal + noise * rng.normal(size=(20000, 4))
    fp = fit_fingerprint(batch_moments(np.hstack([x, y]), covariance=True), n_inputs=6)
    np.testing.assert_allclose(fp.weights, W_cal, atol=0.01)
    np.testing.assert_allclose(fp.bias, b_cal, atol=0.01)
    np.testing.assert_allclose(np.sqrt(fp.noise_var), noise, rtol=0.03)
    centred = x[:64] - x[:64].mean(axis=0) + fp.input_mean
    mean_leverage, spread_leverage = fp.leverage(centred)
    assert mean_leverage == pytest.approx(1 / 20000)
    assert spread_leverage == pytest.approx(6 / 20000, rel=0.5)  # about n_in / N for calibration-like data
    assert fp.leverage(centred + 5.0)[0] > mean_leverage
    assert fp.leverage(2 * centred)[1] > spread_leverage


def test_constant_inputs_get_no_weight():
    rng, W, b, W_cal, b_cal = make_layer()
    x = rng.normal(size=(5000, 6))
    x[:, 2] = 0.0  # a pixel that is always dark
    y = x @ W_cal.T + b_cal
    fp = fit_fingerprint(batch_moments(np.hstack([x, y]), covariance=True), n_inputs=6)
    np.testing.assert_allclose(fp.weights[:, 2], 0.0, atol=1e-9)
    np.testing.assert_allclose(x @ fp.weights.T + fp.bias, y, atol=1e-8)


def test_reference_equals_covariance_formulas():
    rng, W, b, W_cal, b_cal = make_layer(1)
    x = rng.normal(size=(64, 6)) * 2 + 1
    fp = fit_fingerprint(batch_moments(np.hstack([rng.normal(size=(100, 6)), rng.normal(size=(100, 4))]),
                                       covariance=True), n_inputs=6)
    ref = reference_moments(batch_moments(x @ W.T + b), batch_moments(fp.predict(x)))
    mean_x, cov_x = x.mean(axis=0), np.cov(x.T, bias=True)
    np.testing.assert_allclose(ref.ideal_mean, W @ mean_x + b)
    np.testing.assert_allclose(ref.ideal_var, np.diag(W @ cov_x @ W.T))
    np.testing.assert_allclose(ref.cal_mean, fp.weights @ mean_x + fp.bias)
    np.testing.assert_allclose(ref.cal_var, np.diag(fp.weights @ cov_x @ fp.weights.T))


def test_fingerprint_needs_joint_covariance():
    with pytest.raises(ValueError, match="joint covariance"):
        fit_fingerprint(batch_moments(np.ones((4, 3))), n_inputs=2)
    with pytest.raises(ValueError, match="n_inputs"):
        fit_fingerprint(batch_moments(np.random.default_rng(0).normal(size=(4, 3)), covariance=True), n_inputs=3)
