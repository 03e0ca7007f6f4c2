"""The drift monitor: windows, scores that are standard normal under no drift, alarms, faults, coverage."""

import numpy as np
import pytest

from plc_anna.drift.monitor import DriftMonitor
from plc_anna.stats.cross import cross_moments
from plc_anna.stats.reference import fit_fingerprint

N_IN, N_OUT, NOISE = 6, 8, 0.05


class Layer:
    """A linear layer with programming error: y = gain * (x W_cal^T + b) + offset + noise."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.W = self.rng.normal(size=(N_OUT, N_IN))
        self.W_cal = 0.8 * self.W * (1 + 0.05 * self.rng.normal(size=self.W.shape))
        self.b = 0.2 * self.rng.normal(size=N_OUT)
        self.gain, self.offset = np.ones(N_OUT), np.zeros(N_OUT)

    def read(self, x):
        return (self.gain * (x @ self.W_cal.T + self.b) + self.offset
                + NOISE * self.rng.normal(size=(len(x), N_OUT)))

    def monitor(self, calibration_inputs, **kwargs):
        fp = fit_fingerprint(cross_moments(calibration_inputs, self.read(calibration_inputs)), self.W)
        return DriftMonitor(fp, **kwargs)


def test_scores_are_standard_normal_even_when_the_process_moves():
    layer = Layer()
    monitor = layer.monitor(layer.rng.normal(size=(8000, N_IN)))
    scores = []
    for _ in range(600):
        x = layer.rng.normal(size=(64, N_IN)) * layer.rng.uniform(0.5, 1.5) + layer.rng.normal(scale=0.5)
        scores.append(monitor.measure(x, layer.read(x)).scores)
    scores = np.array(scores)
    mean, slope = scores[:, :, 0], scores[:, :, 1]
    assert abs(mean.mean()) < 0.1 and abs(slope.mean()) < 0.1
    assert 0.3 < mean.var() < 1.1 and 0.3 < slope.var() < 1.1   # <= 1: the dead zone only takes evidence away
    assert np.all(scores[:, :, 2] >= 0)                       # noise that falls is no drift


def test_scans_are_pooled_into_windows():
    layer = Layer(1)
    monitor = layer.monitor(layer.rng.normal(size=(4000, N_IN)), window=32)
    closed = []
    for _ in range(16):
        x = layer.rng.normal(size=(2, N_IN))    # a PLC delivering two samples per scan
        monitor.update(x, layer.read(x))
        closed.append(monitor.window_closed)
    assert closed.count(True) == 1 and closed[15]
    assert monitor.last.count == 32
    with pytest.raises(ValueError, match="at least 3"):
        monitor.measure(np.zeros((2, N_IN)), np.zeros((2, N_OUT)))


def test_two_equal_quantized_samples_give_a_finite_distance():
    """The variance of a tiny batch of rounded outputs can be 0: never below the noise or the ADC's."""
    layer = Layer(2)
    monitor = layer.monitor(layer.rng.normal(size=(4000, N_IN)), window=4, output_floor=1e-4)
    x = np.repeat(layer.rng.normal(size=(1, N_IN)), 4, axis=0)
    y = np.round(np.repeat(layer.read(x[:1]), 4, axis=0), 2)     # four identical converter codes
    window = monitor.measure(x, y)
    assert np.all(np.isfinite(window.distances)) and window.distances.max() < 5.0


def test_a_two_percent_gain_drop_on_one_column_alarms_and_says_where():
    layer = Layer(3)
    monitor = layer.monitor(layer.rng.normal(size=(8000, N_IN)))
    for _ in range(300):
        x = layer.rng.normal(size=(64, N_IN))
        assert not monitor.update(x, layer.read(x))
    layer.gain[5] = 0.98
    for scans in range(1, 200):
        x = layer.rng.normal(size=(64, N_IN))
        if monitor.update(x, layer.read(x)):
            break
    assert monitor.drift_detected and scans < 50
    assert "column 5" in monitor.reason() or "columns 5" in monitor.reason()
    monitor.reset()
    assert not monitor.drift_detected and monitor.ratio == 0.0


def test_a_column_that_breaks_is_a_fault():
    layer = Layer(4)
    monitor = layer.monitor(layer.rng.normal(size=(8000, N_IN)))
    for _ in range(20):
        x = layer.rng.normal(size=(64, N_IN))
        monitor.update(x, layer.read(x))
        assert not monitor.fault_detected
    layer.offset[2] = 40 * NOISE * 10    # a broken column: far beyond any drift in one window
    x = layer.rng.normal(size=(64, N_IN))
    monitor.update(x, layer.read(x))
    assert monitor.fault_detected and monitor.fault_columns.tolist() == [c == 2 for c in range(N_OUT)]
    assert "jumped" in monitor.reason()


def test_outside_the_calibrated_region_deviations_are_no_evidence_and_coverage_says_so():
    """Calibrated on two input directions, the process runs in the others: the programmed weights predict
    there only up to the programming error, which must not read as drift."""
    layer = Layer(5)
    calibration = np.zeros((8000, N_IN))
    calibration[:, :2] = layer.rng.normal(size=(8000, 2))
    monitor = layer.monitor(calibration)
    alarms = 0
    for _ in range(400):
        x = np.zeros((64, N_IN))
        x[:, 2:] = 0.3 * layer.rng.normal(size=(64, N_IN - 2)) + 2.0
        alarms += monitor.update(x, layer.read(x))
        if monitor.drift_detected:
            monitor.reset()
    assert alarms == 0
    assert monitor.last.coverage < 0.2


def test_bad_settings():
    layer = Layer(6)
    with pytest.raises(ValueError, match="window"):
        layer.monitor(layer.rng.normal(size=(1000, N_IN)), window=2)
