"""The streaming compensator on a synthetic layer with known drift."""

import numpy as np
import pytest

from plc_anna.compensator import Compensator, CompensatorConfig, LayerCompensator
from plc_anna.correction.baselines import oracle_affine
from plc_anna.correction.transition import RampLimits
from plc_anna.drift.states import DriftState, EventKind

N_IN, N_OUT, BATCH = 8, 6, 64
CONFIG = CompensatorConfig(calibration_samples=4096, estimate_samples=2048, holdout_samples=1024,
                           ramp=RampLimits(scans=10, max_gain_step=0.01))


class Plant:
    """A drifting layer: y = gain * (x W_cal^T + b_cal) + offset + noise."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.W = self.rng.normal(size=(N_OUT, N_IN)) / 2
        self.b = self.rng.normal(size=N_OUT) / 5
        self.W_cal = self.W * (1 + 0.05 * self.rng.normal(size=self.W.shape))
        self.b_cal = self.b + 0.01 * self.rng.normal(size=N_OUT)
        self.gain, self.offset = np.ones(N_OUT), np.zeros(N_OUT)
        self.x_mean, self.x_scale = 0.0, 1.0

    def scan(self):
        x = self.x_mean + self.x_scale * self.rng.normal(size=(BATCH, N_IN))
        y = self.gain * (x @ self.W_cal.T + self.b_cal) + self.offset + 0.01 * self.rng.normal(size=(BATCH, N_OUT))
        return x, y


def run(plant, layer, scans):
    events, gains = [], []
    for _ in range(scans):
        events += layer.update(*plant.scan())
        gains.append(layer.correction()[0])
    return events, np.array(gains)


@pytest.fixture
def calibrated():
    plant = Plant()
    layer = LayerCompensator(0, plant.W, plant.b, CONFIG)
    events, _ = run(plant, layer, 200)
    assert events[0].kind is EventKind.CALIBRATED
    assert layer.state is DriftState.NOMINAL
    return plant, layer


def test_calibration_corrects_the_programming_error(calibrated):
    plant, layer = calibrated
    x, y = plant.scan()
    gain, offset = layer.correction()
    ideal = x @ plant.W.T + plant.b
    oracle_gain, oracle_offset = oracle_affine(y, ideal)

    def rms(e):
        return np.sqrt(np.mean(e**2))

    corrected, raw = rms(gain * y + offset - ideal), rms(y - ideal)
    oracle = rms(oracle_gain * y + oracle_offset - ideal)  # in-sample: the best per-column affine map
    assert corrected < raw
    assert corrected - oracle < 0.2 * (raw - oracle)


def test_process_shift_raises_no_alarm(calibrated):
    plant, layer = calibrated
    plant.x_mean, plant.x_scale = 2.0, np.sqrt(2.0)  # mean shift of 2 sigma, variance x2
    events, _ = run(plant, layer, 1500)
    assert [e for e in events if e.kind is EventKind.DRIFT_DETECTED] == []
    assert layer.state in (DriftState.NOMINAL, DriftState.SUSPECT)


def test_known_drift_is_detected_and_recovered(calibrated):
    plant, layer = calibrated
    before = layer.correction()
    plant.gain = np.linspace(0.9, 0.97, N_OUT)
    plant.offset = np.linspace(-0.05, 0.05, N_OUT)
    events, gains = run(plant, layer, 400)
    kinds = [e.kind for e in events]
    assert kinds.index(EventKind.DRIFT_DETECTED) < kinds.index(EventKind.TRANSITION_STARTED) \
        < kinds.index(EventKind.COMMITTED)
    first = next(e for e in events if e.kind is EventKind.DRIFT_DETECTED)
    assert first.scan - 200 <= 3  # a 3-10 % gain step is seen within a few scans
    gain, offset = layer.correction()
    # the new correction undoes the drift on top of the calibration correction
    np.testing.assert_allclose(gain, before[0] / plant.gain, rtol=0.01)
    np.testing.assert_allclose(gain * plant.offset + offset, before[1], atol=0.01)
    # bumpless: the applied gain moved monotonically and within the slew limit
    steps = np.diff(gains, axis=0)
    assert np.all(np.abs(steps) <= 0.01 + 1e-12)
    assert np.all((steps >= -1e-12) | (steps <= 1e-12))
    assert np.all(np.sign(steps[np.abs(steps) > 1e-12]) == np.sign((before[0] / plant.gain - before[0]))[
        np.nonzero(np.abs(steps) > 1e-12)[1]])


def test_rollback_when_the_hold_out_disagrees(calibrated):
    plant, layer = calibrated
    good = layer.correction()
    plant.gain = np.full(N_OUT, 0.9)
    events = []
    while layer.state is not DriftState.COMPENSATING:
        events += layer.update(*plant.scan())
    plant.gain = np.ones(N_OUT)  # the drift vanishes while the new correction ramps in
    for _ in range(100):
        events += layer.update(*plant.scan())
        if any(e.kind is EventKind.ROLLED_BACK for e in events):
            break
    assert any(e.kind is EventKind.ROLLED_BACK for e in events)
    np.testing.assert_array_equal(layer.correction()[0], good[0])


def test_fault_holds_last_good_until_calibration(calibrated):
    plant, layer = calibrated
    good = layer.correction()
    plant.gain[2] = 0.0  # a dead column
    events = layer.update(*plant.scan())
    assert [e.kind for e in events] == [EventKind.FAULT]
    assert layer.state is DriftState.FAULT and events[0].severity >= 800
    np.testing.assert_array_equal(layer.correction()[0], good[0])
    run(plant, layer, 20)
    assert layer.state is DriftState.FAULT
    layer.calibrate()
    assert layer.state is DriftState.CALIBRATING


def test_bad_batches_are_refused_without_change(calibrated):
    plant, layer = calibrated
    x, y = plant.scan()
    scan = layer.scan
    with pytest.raises(ValueError, match="inputs must have shape"):
        layer.update(x[:, :3], y)
    with pytest.raises(ValueError, match="outputs must have shape"):
        layer.update(x, y[:, :2])
    y[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        layer.update(x, y)
    assert layer.scan == scan


def test_network_compensator_wires_layers(two_layer_net):
    comp = Compensator.for_network(two_layer_net, CONFIG)
    assert comp.device_layers == [0] and comp.sinks == ("device", "plc")
    with pytest.raises(ValueError, match="expected 2"):
        comp.update([(np.ones((4, 12)), np.ones((4, 6)))])


def test_config_validation():
    with pytest.raises(ValueError, match="calibration_samples"):
        CompensatorConfig(calibration_samples=1)
    with pytest.raises(ValueError, match="arl0"):
        CompensatorConfig(arl0=1.0)


def test_clipped_column_is_reported_and_transported_empirically(calibrated):
    plant, layer = calibrated
    plant.gain = np.full(N_OUT, 0.9)
    scan = plant.scan

    def clipped_scan():
        x, y = scan()
        y[:, 1] = np.minimum(y[:, 1], 0.5)  # an ADC rail inside column 1's range
        return x, y

    plant.scan = clipped_scan
    events, _ = run(plant, layer, 120)
    assert any(e.kind is EventKind.CLIPPED and "[1]" in e.message for e in events)


def ageing_run(layer, plant, ages, events=None):
    events = [] if events is None else events
    for age in ages:
        plant.gain = np.full(N_OUT, ((age + 60.0) / 60.0) ** -0.05)
        events += layer.update(*plant.scan(), age_s=float(age), temperature_k=300.0)
    return events


@pytest.fixture
def aged():
    """A layer that has learned three decades of power-law drift."""
    plant = Plant(seed=1)
    layer = LayerCompensator(0, plant.W, plant.b, CONFIG)
    events = ageing_run(layer, plant, np.geomspace(60.0, 86400.0 * 30, 1500))
    return plant, layer, events


def test_latent_learns_the_trend_from_committed_estimates(aged):
    plant, layer, events = aged
    assert layer.latent.ready and len(layer.latent.records) >= 3
    gain_rate, _ = layer.latent.rates
    # gain needed grows as age^0.05: 0.05 * ln(10) per decade in log-gain
    np.testing.assert_allclose(gain_rate, 0.05 * np.log(10), rtol=0.15)
    predicted, _ = layer.latent.predict(3.15e8)
    settle(layer, plant, 86400.0 * 30)  # what the data say is needed at 30 days ...
    needed = layer.correction()[0] * (((3.15e8 + 60) / 60) / ((30 * 86400.0 + 60) / 60)) ** 0.05  # ... at 10 y
    np.testing.assert_allclose(predicted, needed, rtol=0.03)


def settle(layer, plant, age, scans=400):
    events = ageing_run(layer, plant, np.full(scans, age))
    assert layer.state is DriftState.NOMINAL, [e.kind.value for e in events[-5:]]


def test_an_offset_step_is_a_fault_and_not_learned(aged):
    plant, layer, _ = aged
    settle(layer, plant, 86400.0 * 30)
    records = len(layer.latent.records)
    plant.offset = np.zeros(N_OUT)
    plant.offset[2] = 0.3
    events = ageing_run(layer, plant, np.full(100, 86400.0 * 30))
    faults = [e for e in events if e.kind is EventKind.FAULT]
    assert faults and "off the drift trend" in faults[0].message and "column 2" in faults[0].message
    # within one detection window: detection, then estimate_samples of data
    assert faults[0].scan - events[0].scan <= CONFIG.estimate_samples // BATCH + 5
    assert layer.state is DriftState.FAULT
    assert len(layer.latent.records) == records


def test_feed_forward_follows_the_prediction_and_the_hold_out_guards_it(aged):
    plant, layer, _ = aged
    settle(layer, plant, 86400.0 * 30)
    # The model predicts a year of drift, but this plant has stopped drifting: the data disagree.
    gain = plant.gain.copy()
    events = []
    for _ in range(100):
        plant.gain = gain
        events += layer.update(*plant.scan(), age_s=3.15e7, temperature_k=300.0)
    kinds = [e.kind for e in events]
    started = [e for e in events if e.kind is EventKind.TRANSITION_STARTED]
    assert started and "prediction" in started[0].message
    assert EventKind.ROLLED_BACK in kinds


def test_maintenance_alarm_when_the_range_runs_out():
    plant = Plant(seed=2)
    config = CompensatorConfig(calibration_samples=4096, estimate_samples=2048, holdout_samples=1024,
                               ramp=RampLimits(scans=10, max_gain_step=0.01, gain_range=(0.5, 1.6)),
                               maintenance_horizon_s=10 * 365.25 * 86400.0)
    layer = LayerCompensator(0, plant.W, plant.b, config)
    events = ageing_run(layer, plant, np.geomspace(60.0, 86400.0 * 30, 1500))
    alarms = [e for e in events if e.kind is EventKind.MAINTENANCE]
    assert alarms and "plan maintenance" in alarms[0].message
    life = layer.remaining_life
    assert life is not None and life.parameter == "gain" and life.low_s <= life.age_s <= life.high_s


def test_operator_commands(calibrated):
    plant, layer = calibrated
    plant.gain = np.full(N_OUT, 0.9)
    events, _ = run(plant, layer, 120)
    assert any(e.kind is EventKind.TRANSITION_STARTED for e in events)
    # An engineer's correction is applied and committed at once; a bad one changes nothing.
    gain, offset = np.full(N_OUT, 1.1), np.full(N_OUT, 0.01)
    layer.set_correction(gain, offset)
    assert np.array_equal(layer.correction()[0], gain) and np.array_equal(layer.last_good()[1], offset)
    for bad in (np.full(N_OUT - 1, 1.0), np.r_[np.nan, np.ones(N_OUT - 1)], np.full(N_OUT, 9.0)):
        with pytest.raises(ValueError, match="layer 0: gain"):
            layer.set_correction(bad, offset)
    assert np.array_equal(layer.correction()[0], gain)
    # Commit makes the applied correction the rollback target.
    layer._gain = np.full(N_OUT, 1.05)
    layer.commit()
    layer._gain = np.full(N_OUT, 1.2)
    layer.rollback()
    assert np.allclose(layer.correction()[0], 1.05)
    # ResetReference forgets the fingerprint and history but keeps the applied correction.
    layer.reset_reference()
    assert layer.state is DriftState.CALIBRATING and layer.fingerprint is None and len(layer.latent.records) == 0
    assert np.allclose(layer.correction()[0], 1.05)
    events, _ = run(plant, layer, 80)
    assert events[0].kind is EventKind.CALIBRATED and layer.state is not DriftState.CALIBRATING


def walking_plant(seed=11):
    """Calibrated where the process starts, in three of eight input directions; the operating point then
    walks, scan by scan, into the five directions calibration never saw."""
    plant = Plant(seed)
    layer = LayerCompensator(0, plant.W, plant.b, CONFIG)
    base = plant.rng.normal(size=N_IN)
    mask = np.zeros(N_IN)
    mask[:3] = 1.0

    def scan(progress: float):
        direction = np.where(mask > 0, 0.0, 1.0)
        x = base + plant.rng.normal(size=(BATCH, N_IN)) * (mask + 0.15 * progress * direction) \
            + 2.5 * progress * direction
        y = plant.gain * (x @ plant.W_cal.T + plant.b_cal) + plant.offset \
            + 0.01 * plant.rng.normal(size=(BATCH, N_OUT))
        return x, y

    events = []
    for _ in range(80):
        events += layer.update(*scan(0.0))
    assert layer.state is not DriftState.CALIBRATING and int(layer.fingerprint.covered().sum()) == 3
    return plant, layer, scan


def test_an_operating_point_that_walks_out_of_the_calibrated_region_raises_no_alarm():
    plant, layer, scan = walking_plant()
    events = []
    for i in range(1500):
        events += layer.update(*scan(min(1.0, i / 1000)))
    kinds = {e.kind for e in events}
    assert EventKind.DRIFT_DETECTED not in kinds and EventKind.FAULT not in kinds, \
        [e.message for e in events if e.kind in (EventKind.DRIFT_DETECTED, EventKind.FAULT)]
    assert EventKind.COVERAGE_GROWN in kinds                    # it learned the region it walked into
    assert int(layer.fingerprint.covered().sum()) == N_IN and layer.coverage > 0.99


def test_the_same_walk_with_a_two_percent_gain_step_raises_one():
    plant, layer, scan = walking_plant()
    for i in range(1500):
        layer.update(*scan(min(1.0, i / 1000)))
    plant.gain[[1, 4]] = 0.98
    detected = None
    for i in range(300):
        events = layer.update(*scan(1.0))
        if any(e.kind is EventKind.DRIFT_DETECTED for e in events):
            detected = i
            break
    assert detected is not None and detected < 50
