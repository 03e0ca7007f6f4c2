"""The fingerprint: a posterior response with the programmed weights as its prior."""

import numpy as np
import pytest

from plc_anna.stats.cross import cross_moments, merge_cross
from plc_anna.stats.moments import batch_moments
from plc_anna.stats.reference import Fingerprint, fit_fingerprint, grow_fingerprint, reference_moments


def make_layer(seed=0, n_in=6, n_out=4):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_out, n_in))
    b = rng.normal(size=n_out)
    W_cal = 0.9 * W * (1 + 0.05 * rng.normal(size=W.shape))  # drifted scale and programming error
    b_cal = b + 0.1 * rng.normal(size=n_out)
    return rng, W, b, W_cal, b_cal


def test_fingerprint_recovers_the_programmed_response_where_the_data_excite_it():
    rng, W, b, W_cal, b_cal = make_layer()
    x = rng.normal(size=(20000, 6)) @ rng.normal(size=(6, 6))
    noise = 0.05
    y = x @ W_cal.T + b_cal + noise * rng.normal(size=(20000, 4))
    fp = fit_fingerprint(cross_moments(x, y), W)
    np.testing.assert_allclose(fp.weights, W_cal, atol=0.01)
    np.testing.assert_allclose(fp.bias, b_cal, atol=0.01)
    np.testing.assert_allclose(np.sqrt(fp.noise_var), noise, rtol=0.03)
    np.testing.assert_allclose(fp.scale, 0.9, atol=0.1)   # the column gain since programming (programming error aside)
    assert fp.covered().all()
    assert fp.coverage(np.zeros(6), np.ones(6)) > 0.99


def test_predictions_outside_the_calibrated_subspace_follow_the_programmed_weights():
    """Calibration inputs confined to a subspace: what the data never saw comes from the prior."""
    rng, W, b, W_cal, b_cal = make_layer(3, n_in=8, n_out=5)
    basis = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    seen, unseen = basis[:, :3], basis[:, 3:]
    x = rng.normal(size=(8000, 3)) @ seen.T
    y = x @ W_cal.T + b_cal + 0.02 * rng.normal(size=(8000, 5))
    fp = fit_fingerprint(cross_moments(x, y), W)
    # in the calibrated subspace: the device as measured
    np.testing.assert_allclose(fp.weights @ seen, W_cal @ seen, atol=0.01)
    # outside it: the programmed weights at the columns' measured scale, not the least squares' zero
    np.testing.assert_allclose(fp.weights @ unseen, (fp.scale[:, None] * W) @ unseen, atol=1e-6)
    assert int(fp.covered().sum()) == 3
    far = 10.0 * unseen[:, 0]
    assert fp.coverage(fp.basis.T @ far, np.zeros(8)) < 0.05
    # ... and its uncertainty says so: the posterior variance there is the prior's, not the noise's
    inverse = 1.0 / (fp.scatter[:, None] + fp.prior_precision[None, :])
    z = fp.basis.T @ far
    assert np.all(fp.noise_var * (z**2 @ inverse) > 100 * fp.noise_var / 8000)


def test_growth_learns_new_directions_and_keeps_its_uncertainty_honest():
    rng, W, b, W_cal, b_cal = make_layer(5, n_in=10, n_out=6)
    noise = 0.05

    def data(n, dims):
        u = np.zeros((n, 10))
        u[:, dims] = rng.normal(size=(n, len(dims)))
        return u, u @ W_cal.T + b_cal + noise * rng.normal(size=(n, 6))

    fp = fit_fingerprint(cross_moments(*data(4000, [0, 1, 2])), W)
    live = data(3000, [3, 4, 5, 6])
    grown = grow_fingerprint(fp, cross_moments(*live))
    assert int(grown.covered().sum()) == 7 > int(fp.covered().sum()) == 3
    err = np.abs(grown.weights - W_cal)[:, 3:7]
    assert err.max() < 0.01 < np.abs(fp.weights - W_cal)[:, 3:7].max()
    # the posterior's own variance matches its actual error, direction by direction (chi-square, 1 dof)
    ratio = (grown.basis.T @ (grown.weights - W_cal).T) ** 2 * (grown.scatter[:, None]
                                                                   + grown.prior_precision[None, :]) / grown.noise_var
    assert np.mean(ratio) < 3.0
    # the calibrated directions hardly move
    np.testing.assert_allclose(grown.weights[:, :3], fp.weights[:, :3], atol=0.01)


def test_moments_merge_and_the_fingerprint_round_trips():
    rng, W, b, W_cal, b_cal = make_layer(1)
    x = rng.normal(size=(3000, 6))
    y = x @ W_cal.T + b_cal + 0.05 * rng.normal(size=(3000, 4))
    merged = merge_cross(cross_moments(x[:1000], y[:1000]), cross_moments(x[1000:], y[1000:]))
    whole = cross_moments(x, y)
    np.testing.assert_allclose(merged.input_scatter, whole.input_scatter)
    np.testing.assert_allclose(merged.cross_scatter, whole.cross_scatter)
    fp = fit_fingerprint(whole, W)
    again = Fingerprint.from_dict(fp.to_dict(), W)
    np.testing.assert_array_equal(again.weights, fp.weights)
    np.testing.assert_array_equal(again.prior_precision, fp.prior_precision)
    with pytest.raises(ValueError, match="older format"):
        Fingerprint.from_dict({"weights": fp.weights.tolist()}, W)
    bad = fp.to_dict()
    bad["noise_var"] = [float("nan")] * 4
    with pytest.raises(ValueError, match="NaN"):
        Fingerprint.from_dict(bad, W)
    with pytest.raises(ValueError, match="4 x 5"):
        Fingerprint.from_dict(fp.to_dict(), np.ones((4, 5)))


def test_the_drift_rescaling_follows_a_per_column_gain_and_offset():
    rng, W, b, W_cal, b_cal = make_layer(2)
    x = rng.normal(size=(4000, 6))
    fp = fit_fingerprint(cross_moments(x, x @ W_cal.T + b_cal + 0.01 * rng.normal(size=(4000, 4))), W)
    gain, offset = np.array([0.9, 1.0, 1.1, 1.2]), np.array([0.0, 0.5, -0.5, 1.0])
    moved = fp.rescaled(gain, offset)
    np.testing.assert_allclose(moved.predict(x), gain * fp.predict(x) + offset)


def test_fit_needs_more_samples_than_varying_directions():
    rng, W, *_ = make_layer()
    with pytest.raises(ValueError, match="calibration samples"):
        fit_fingerprint(cross_moments(rng.normal(size=(4, 6)), rng.normal(size=(4, 4))), W)
    with pytest.raises(ValueError, match="programmed weights"):
        fit_fingerprint(cross_moments(rng.normal(size=(40, 5)), rng.normal(size=(40, 4))), W)


def test_reference_equals_covariance_formulas():
    rng, W, b, W_cal, b_cal = make_layer(1)
    x = rng.normal(size=(64, 6)) * 2 + 1
    ref = reference_moments(batch_moments(x @ W.T + b), batch_moments(x @ W_cal.T + b_cal))
    mean_x, cov_x = x.mean(axis=0), np.cov(x.T, bias=True)
    np.testing.assert_allclose(ref.ideal_mean, W @ mean_x + b)
    np.testing.assert_allclose(ref.ideal_var, np.diag(W @ cov_x @ W.T))
    np.testing.assert_allclose(ref.cal_var, np.diag(W_cal @ cov_x @ W_cal.T))
