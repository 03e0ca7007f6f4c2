"""The bumpless transition: no overshoot, slew limits, clamping."""

import numpy as np
import pytest

from plc_anna.correction.transition import RampLimits, Transition


def run(transition):
    path = [transition.current()]
    while not transition.done:
        path.append(transition.step())
    return np.array([p[0] for p in path]), np.array([p[1] for p in path])


@pytest.mark.parametrize("seed", range(5))
def test_never_overshoots_and_respects_slew(seed):
    rng = np.random.default_rng(seed)
    start = (rng.uniform(0.8, 1.2, 16), rng.normal(0, 0.1, 16))
    target = (rng.uniform(0.8, 1.2, 16), rng.normal(0, 0.1, 16))
    limits = RampLimits(scans=10, max_gain_step=0.005, max_offset_step=0.01)
    gains, offsets = run(Transition(start, target, limits))
    assert np.all(np.abs(np.diff(gains, axis=0)) <= 0.005 + 1e-12)
    assert np.all(np.abs(np.diff(offsets, axis=0)) <= 0.01 + 1e-12)
    low, high = np.minimum(start[0], target[0]), np.maximum(start[0], target[0])
    assert np.all((gains >= low - 1e-12) & (gains <= high + 1e-12))  # monotone, no overshoot
    np.testing.assert_array_equal(gains[-1], target[0])
    np.testing.assert_array_equal(offsets[-1], target[1])
    assert len(gains) - 1 >= 10


def test_target_is_clamped_and_flagged():
    limits = RampLimits(scans=2, max_gain_step=1.0, gain_range=(0.5, 2.0), offset_range=(-1.0, 1.0))
    ramp = Transition((np.ones(3), np.zeros(3)), (np.array([3.0, 1.0, 1.0]), np.array([0.0, -5.0, 0.0])), limits)
    assert ramp.saturated.tolist() == [True, True, False]
    gains, offsets = run(ramp)
    assert gains.max() == 2.0 and offsets.min() == -1.0


def test_limits_validation():
    with pytest.raises(ValueError, match="scans"):
        RampLimits(scans=0)
    with pytest.raises(ValueError, match="gain_range"):
        RampLimits(gain_range=(2.0, 1.0))
