"""The server's runtime: one scan -> a Snapshot, the PLC counters, persistence and the test-rig commands.

Small synthetic networks on the simulated device with a short calibration,
so a whole calibration and ramp takes a few milliseconds.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time

import numpy as np
import pytest

from plc_anna.compensator import CompensatorConfig
from plc_anna.device.network import network_from_arrays
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.drift.states import DriftState, EventKind
from plc_anna.contract.counters import UDINT_MODULUS as COUNTER_MODULUS
from plc_anna.server.runtime import START_AGE_S, LayerSnapshot, Runtime, Snapshot

#: A calibration of 4 scans of 16 samples, a correction estimate of 4 more.
FAST = CompensatorConfig(calibration_samples=64, estimate_samples=64, holdout_samples=32)
SAMPLES = 16


def make_runtime(network, device: str = "ideal", age_rate: float = 0.0, **kwargs) -> Runtime:
    return Runtime(SimulatedNetwork(network, device, seed=3), FAST, samples_per_scan=SAMPLES, age_rate=age_rate,
                   **kwargs)


def last_layer_raw(rt: Runtime, X: np.ndarray) -> np.ndarray:
    return rt.net.trace(X)[-1].outputs


def corrections(rt: Runtime) -> list[tuple[np.ndarray, np.ndarray]]:
    return [rt.compensator.correction(i) for i in range(len(rt.compensator.layers))]


def same_corrections(a, b) -> bool:
    return all(np.array_equal(ga, gb) and np.array_equal(oa, ob) for (ga, oa), (gb, ob) in zip(a, b))


def calibrated_with_fault(network, fault_gain: float = 0.8) -> tuple[Runtime, list[Snapshot]]:
    """A runtime whose last layer has a gain fault before calibration, run until the ramp is over."""
    rt = make_runtime(network)
    n = rt.compensator.layers[-1].n_out
    rt.inject_fault(len(rt.compensator.layers) - 1, np.full(n, fault_gain), np.zeros(n))
    snapshots = [rt.step() for _ in range(30)]
    return rt, snapshots


# -------------------------------------------------------------------- scan
def test_step_returns_a_snapshot_of_every_layer(two_layer_net):
    rt = make_runtime(two_layer_net)
    first = rt.step()
    assert isinstance(first, Snapshot)
    assert first.scan == 1 and first.heartbeat == 1 and first.commit_counter == 0
    assert first.age_s == START_AGE_S and first.temperature_k == rt.net.temperature_k
    assert first.read_s >= 0 and first.compute_s >= 0 and first.events == ()
    assert len(first.layers) == 2
    for layer, spec in zip(first.layers, two_layer_net.layers):
        assert isinstance(layer, LayerSnapshot)
        n = spec.n_out
        for name in ("gain", "offset", "column_distance", "transport_cost"):
            assert getattr(layer, name).shape == (n,), name
        assert layer.state is DriftState.CALIBRATING
        assert np.array_equal(layer.gain, np.ones(n)) and np.array_equal(layer.offset, np.zeros(n))
        assert np.all(np.isnan(layer.column_distance))  # nothing measured while calibrating
        assert layer.sample_count == SAMPLES
        assert layer.gain_trend.shape == (0,) and layer.remaining_life_s is None
    assert [layer.index for layer in first.layers] == [0, 1]

    snapshots = [rt.step() for _ in range(9)]
    assert [s.scan for s in snapshots] == list(range(2, 11))
    assert [s.heartbeat for s in snapshots] == list(range(2, 11))
    assert snapshots[-1].layers[0].sample_count == 10 * SAMPLES
    # After the calibration (4 scans) every layer is monitored: its distances are measured.
    assert all(layer.state is not DriftState.CALIBRATING for layer in snapshots[-1].layers)
    assert all(np.all(np.isfinite(layer.column_distance)) for layer in snapshots[-1].layers)
    assert {e.kind for s in snapshots for e in s.events} >= {EventKind.CALIBRATED}


def test_snapshot_without_a_scan_does_not_scan(linear_net):
    rt = make_runtime(linear_net)
    rt.step()
    snapshot = rt.snapshot()
    assert snapshot.scan == 1 and rt.scan == 1 and snapshot.events == ()
    assert snapshot.read_s == 0.0 and snapshot.compute_s == 0.0


def test_heartbeat_wraps_at_2_32(linear_net):
    rt = make_runtime(linear_net)
    rt.heartbeat = COUNTER_MODULUS - 2
    assert [rt.step().heartbeat for _ in range(3)] == [COUNTER_MODULUS - 1, 0, 1]


def test_commit_counter_counts_changes_of_the_last_layer_correction(linear_net):
    rt, snapshots = calibrated_with_fault(linear_net, fault_gain=0.8)
    changes = 0
    for before, after in itertools.pairwise(snapshots):
        last_before, last_after = before.layers[-1], after.layers[-1]
        changed = not (np.array_equal(last_before.gain, last_after.gain)
                       and np.array_equal(last_before.offset, last_after.offset))
        changes += changed
        assert after.commit_counter - before.commit_counter == int(changed), after.scan
    # The calibration proposed gain 1/0.8 and ramped to it in steps of at most 0.02.
    kinds = [e.kind for s in snapshots for e in s.events]
    assert EventKind.TRANSITION_STARTED in kinds and EventKind.COMMITTED in kinds
    assert snapshots[-1].layers[-1].gain == pytest.approx(np.full(8, 1.25))
    assert changes >= 12 and snapshots[-1].commit_counter == changes
    # Idle scans and snapshots change nothing.
    assert rt.step().commit_counter == changes and rt.snapshot().commit_counter == changes


def test_commit_counter_ignores_hidden_layers_and_wraps(two_layer_net):
    rt = make_runtime(two_layer_net)
    rt.step()
    rt.set_correction(0, np.full(6, 1.1), np.zeros(6))  # a hidden layer: loaded into the device, not the PLC
    assert rt.snapshot().commit_counter == 0
    rt.commit_counter = COUNTER_MODULUS - 1
    rt.set_correction(1, np.full(3, 1.1), np.zeros(3))
    assert rt.snapshot().commit_counter == 1        # 0 means "no set yet" to the PLC: the wrap skips it
    rt.set_correction(1, np.full(3, 1.1), np.full(3, 0.01))
    assert rt.step().commit_counter == 2


def test_commit_counters_are_reserved_before_use_and_resume_after_the_reservation(two_layer_net, monkeypatch):
    """A crash at any moment: the restarted runtime's first counter is above every counter handed out."""
    import plc_anna.server.runtime as runtime_module

    monkeypatch.setattr(runtime_module, "COUNTER_BLOCK", 5)
    persisted = []  # the durable store: what a restart sees

    def reserve(mark):
        assert not persisted or mark != persisted[-1]
        persisted.append(mark)

    rt = make_runtime(two_layer_net, reserve_counters=reserve)
    rt.resume_counters(None)  # a new store: nothing reserved, no state
    assert rt.snapshot().commit_counter == 0 and persisted == []  # the first set published is no change
    handed = []
    for k in range(12):
        rt.set_correction(1, np.full(3, 1.01 + k / 100), np.zeros(3))
        handed.append(rt.snapshot().commit_counter)
        assert handed[-1] <= persisted[-1]  # reserved before it was handed out
    assert handed == list(range(1, 13)) and persisted == [6, 11, 16]  # one durable write per 5 counters
    # the process dies here; the new one restores an older state, then the reservation
    saved = rt.state_dict() | {"commit_counter": 4}
    again = make_runtime(two_layer_net, reserve_counters=reserve)
    again.load_state_dict(saved)
    again.resume_counters(persisted[-1])
    again.snapshot()
    again.set_correction(1, np.full(3, 0.9), np.zeros(3))
    assert again.snapshot().commit_counter == 17 > max(handed)
    assert persisted[-1] == 22
    # a state saved before counters were reserved: resume far past its counter
    old = make_runtime(two_layer_net)
    old.load_state_dict(saved)
    old.resume_counters(None)
    assert old.commit_counter == 4 + runtime_module.UNRESERVED_SKIP
    # the reservation wraps as the PLC's UDINT does (and still skips 0)
    rt.resume_counters(COUNTER_MODULUS - 2)
    for expected in (COUNTER_MODULUS - 1, 1):
        rt.set_correction(1, np.full(3, 1.5 + expected % 7 / 100), np.zeros(3))
        assert rt.snapshot().commit_counter == expected
    assert persisted[-1] == 4  # (2**32 - 1) + 5, modulo 2**32: the block is 2**32 - 1, 1, 2, 3, 4 (0 skipped)


# ------------------------------------------------------------- persistence
def test_state_survives_a_json_round_trip_into_a_fresh_runtime(linear_net):
    rt, _ = calibrated_with_fault(linear_net)
    rt.set_age(1e5)
    rt.set_temperature(330.0)
    for _ in range(3):
        rt.step()
    saved = rt.state_dict()
    text = json.dumps(saved)
    fresh = make_runtime(linear_net)
    fresh.load_state_dict(json.loads(text))
    assert same_corrections(corrections(fresh), corrections(rt))
    assert fresh.commit_counter == rt.commit_counter > 0
    assert fresh.scan == rt.scan
    assert fresh.net.age_s == rt.net.age_s == 1e5
    assert fresh.net.temperature_k == rt.net.temperature_k == 330.0
    # The restored correction is the published one: no spurious commit.
    snapshot = fresh.snapshot()
    assert snapshot.commit_counter == rt.commit_counter
    assert np.array_equal(snapshot.layers[-1].gain, rt.snapshot().layers[-1].gain)
    assert json.loads(json.dumps(fresh.state_dict()))["compensator"]["layers"][0]["gain"] == \
        saved["compensator"]["layers"][0]["gain"]


def _state_of_another_network() -> dict:
    """A one-layer network like ``linear_net`` but 16 -> 4."""
    rng = np.random.default_rng(5)
    W, b, X = rng.normal(size=(4, 16)), np.zeros(4), rng.uniform(-1, 1, size=(50, 16))
    other = make_runtime(network_from_arrays("other", "regression", [W], [b], ["linear"], X=X, y=X @ W.T))
    other.step()
    return json.loads(json.dumps(other.state_dict()))


@pytest.mark.parametrize("state", ["two_layers", "other_shape", "no_format", "truncated"])
def test_a_state_of_another_network_is_rejected_and_changes_nothing(linear_net, two_layer_net, state):
    rt, _ = calibrated_with_fault(linear_net)
    if state == "two_layers":
        other = make_runtime(two_layer_net)
        other.step()
        data = json.loads(json.dumps(other.state_dict()))
    elif state == "other_shape":
        data = _state_of_another_network()
    elif state == "no_format":
        data = {k: v for k, v in rt.state_dict().items() if k != "format"}
    else:
        data = {k: v for k, v in rt.state_dict().items() if k != "compensator"}
    before = corrections(rt), rt.commit_counter, rt.scan, rt.net.age_s, rt.net.temperature_k
    with pytest.raises(ValueError):
        rt.load_state_dict(data)
    assert same_corrections(corrections(rt), before[0])
    assert (rt.commit_counter, rt.scan, rt.net.age_s, rt.net.temperature_k) == before[1:]


@pytest.mark.parametrize("key,value", [("temperature_k", 5000.0), ("age_s", 1e12)])
def test_a_state_the_device_rejects_changes_nothing(linear_net, key, value):
    source, _ = calibrated_with_fault(linear_net)
    data = json.loads(json.dumps(source.state_dict()))
    data[key] = value
    rt = make_runtime(linear_net)
    rt.step()
    before = corrections(rt), rt.commit_counter, rt.scan, rt.net.age_s, rt.net.temperature_k
    with pytest.raises(ValueError):
        rt.load_state_dict(data)
    assert same_corrections(corrections(rt), before[0])
    assert (rt.commit_counter, rt.scan, rt.net.age_s, rt.net.temperature_k) == before[1:]


# ------------------------------------------------------- test-rig commands
def test_set_age_and_set_temperature_change_the_simulated_device(linear_net):
    rt = make_runtime(linear_net)
    rt.set_age(86400.0)
    rt.set_temperature(350.0)
    snapshot = rt.step()
    assert rt.net.age_s == snapshot.age_s == 86400.0
    assert rt.net.temperature_k == snapshot.temperature_k == 350.0
    with pytest.raises(ValueError, match="age must be a finite number"):
        rt.set_age(math.nan)
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        rt.set_temperature(math.inf)
    with pytest.raises(ValueError, match="temperature must be within"):
        rt.set_temperature(-5.0)
    assert (rt.net.age_s, rt.net.temperature_k) == (86400.0, 350.0)


def test_inject_fault_scales_the_raw_outputs(two_layer_net):
    rt = make_runtime(two_layer_net)
    X = two_layer_net.X[:32]
    clean = last_layer_raw(rt, X)
    rt.inject_fault(1, np.full(3, 0.5), np.zeros(3))
    np.testing.assert_allclose(last_layer_raw(rt, X), 0.5 * clean, atol=1e-9)
    rt.inject_fault(1, np.ones(3), np.array([0.1, 0.0, -0.2]))
    np.testing.assert_allclose(last_layer_raw(rt, X), clean + [0.1, 0.0, -0.2], atol=1e-9)
    rt.inject_fault(1, np.ones(3), np.zeros(3))
    np.testing.assert_allclose(last_layer_raw(rt, X), clean, atol=1e-9)


def test_inject_fault_halves_the_pcm_outputs_measurably(linear_net):
    rt = make_runtime(linear_net, device="pcm")
    X = linear_net.X
    clean = last_layer_raw(rt, X)
    rt.inject_fault(0, np.full(8, 0.5), np.zeros(8))
    ratio = np.sum(last_layer_raw(rt, X) * clean) / np.sum(clean * clean)
    assert ratio == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("layer,gain,offset,message", [
    (1, np.ones(2), np.zeros(3), "layer 1: a fault gain needs 3 values, got 2"),
    (1, np.ones(3), np.zeros(4), "layer 1: a fault offset needs 3 values, got 4"),
    (0, 0.5, 0.0, "layer 0: a fault gain needs 6 values, got 1"),
    (1, np.array([1.0, math.nan, 1.0]), np.zeros(3), "layer 1: the fault gain contains NaN or Inf"),
    (1, np.ones(3), np.array([0.0, math.inf, 0.0]), "layer 1: the fault offset contains NaN or Inf"),
    (2, np.ones(3), np.zeros(3), r"no layer 2: the network has layers 0\.\.1"),
    (-1, np.ones(3), np.zeros(3), r"no layer -1: the network has layers 0\.\.1"),
    ("1", np.ones(3), np.zeros(3), r"no layer '1'"),
])
def test_bad_faults_are_rejected_and_change_nothing(two_layer_net, layer, gain, offset, message):
    rt = make_runtime(two_layer_net)
    X = two_layer_net.X[:32]
    clean = last_layer_raw(rt, X)
    with pytest.raises(ValueError, match=message):
        rt.inject_fault(layer, gain, offset)
    np.testing.assert_array_equal(last_layer_raw(rt, X), clean)


def test_unknown_layer_for_set_correction(linear_net):
    rt = make_runtime(linear_net)
    with pytest.raises(ValueError, match=r"no layer 1: the network has layers 0\.\.0"):
        rt.set_correction(1, np.ones(8), np.zeros(8))


def test_age_rate_advances_the_age_between_steps(linear_net):
    rt = make_runtime(linear_net, age_rate=1000.0)
    before = time.monotonic()
    rt.step()
    age = rt.net.age_s
    assert age == START_AGE_S  # the first step only starts the clock
    time.sleep(0.05)
    rt.step()
    elapsed = time.monotonic() - before
    assert 1000.0 * 0.05 <= rt.net.age_s - age <= 1000.0 * elapsed

    still = make_runtime(linear_net, age_rate=0.0)
    still.step()
    time.sleep(0.01)
    assert still.step().age_s == START_AGE_S


# -------------------------------------------------------------- construction
@pytest.mark.parametrize("kwargs,message", [
    ({"samples_per_scan": 1}, r"samples_per_scan must be within 2\.\.4096, got 1"),
    ({"samples_per_scan": 4097}, r"samples_per_scan must be within 2\.\.4096, got 4097"),
    ({"age_rate": -1.0}, "age_rate must be a finite number >= 0, got -1.0"),
    ({"age_rate": math.nan}, "age_rate must be a finite number >= 0, got nan"),
    ({"age_rate": math.inf}, "age_rate must be a finite number >= 0, got inf"),
])
def test_constructor_rejects_bad_settings(linear_net, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Runtime(SimulatedNetwork(linear_net, "ideal"), FAST, **kwargs)


@pytest.mark.parametrize("rows", [None, 1])
def test_constructor_needs_input_data(linear_net, rows):
    X = None if rows is None else linear_net.X[:rows]
    network = dataclasses.replace(linear_net, X=X, y=None)
    with pytest.raises(ValueError, match="'linear' carries no input data"):
        Runtime(SimulatedNetwork(network, "ideal"), FAST)


def test_constructor_starts_a_fresh_device_at_the_start_age(linear_net):
    net = SimulatedNetwork(linear_net, "ideal")
    assert net.age_s < START_AGE_S
    Runtime(net, FAST)
    assert net.age_s == START_AGE_S
    older = SimulatedNetwork(linear_net, "ideal")
    older.set_age(3600.0)
    Runtime(older, FAST)
    assert older.age_s == 3600.0
