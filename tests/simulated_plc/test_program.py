"""The simulated PLC program alone: the chain of blocks, tags, trace ring, age, cold restart, tag map."""

from __future__ import annotations

import dataclasses
import tomllib

import numpy as np
import pytest

from plc_anna.device.network import activate, digital_forward, network_from_arrays
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.contract.logic import Status
from plc_anna.contract.layout import (
    LAYER_TAGS,
    OPENPLC_OFFSETS,
    modbus_register_map,
    OPCUA_STYLES,
)
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.contract.tagmap import parse_tag_map, tag_map_to_toml


def make_plc(device: str = "ideal", **kwargs) -> SimulatedPlc:
    return SimulatedPlc(SimulatedNetwork("thermocouple", device, seed=0), **kwargs)


def beat(plc: SimulatedPlc, value: int) -> None:
    for k in range(plc.n_layers):
        plc.set_tag(k, "Heartbeat", value)


def test_chain_and_shapes():
    plc = make_plc(trace_length=4)
    plc.set_tag(0, "GainSet", np.full(32, 1.5))
    plc.set_tag(0, "CommitCounter", 1)
    beat(plc, 1)
    plc.cycle()
    network = plc.net.network
    assert plc.shapes == [(layer.n_in, layer.n_out) for layer in network.layers]
    for k, layer in enumerate(network.layers):
        tags = plc.tags(k)
        for name, (plc_type, _) in LAYER_TAGS.items():
            if plc_type == "REAL":
                assert tags[name].dtype == np.float32, name
        assert tags["Inputs"].shape == (layer.n_in,) and tags["RawOutputs"].shape == (layer.n_out,)
        assert tags["TraceInputs"].shape == (4 * layer.n_in,)
        # The ideal device: the raw outputs are the layer's digital pre-activation of the PLC's inputs.
        expected = tags["Inputs"].astype(float) @ layer.weights.T + layer.bias
        np.testing.assert_allclose(tags["RawOutputs"], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(tags["CorrectedOutputs"],
                                      tags["AppliedGain"] * tags["RawOutputs"] + tags["AppliedOffset"])
        if k + 1 < plc.n_layers:  # the next layer sees the activated *corrected* outputs
            np.testing.assert_allclose(plc.tags(k + 1)["Inputs"],
                                       activate(tags["CorrectedOutputs"].astype(float), layer.activation), rtol=1e-6)
    assert plc.tags(0)["AppliedGain"][0] == np.float32(1.02)  # the set ramps in from the first cycle
    assert plc.tags(0)["AcceptedCommit"] == 1 and plc.tags(1)["AcceptedCommit"] == 0
    assert any(np.array_equal(plc.tags(0)["Inputs"], row.astype(np.float32)) for row in network.X)
    x = plc.tags(0)["Inputs"].astype(float)
    # last_ideal is the digital network on the same row (the set on layer 0 makes the PLC's output differ).
    np.testing.assert_allclose(plc.last_ideal, digital_forward(network, x[None, :])[0], rtol=1e-5, atol=1e-5)
    assert plc.cycles == 1


def test_identity_correction_reproduces_the_ideal_network():
    plc = make_plc()
    beat(plc, 1)
    plc.cycle()
    np.testing.assert_allclose(plc.tags(2)["CorrectedOutputs"], plc.last_ideal, rtol=1e-4, atol=1e-3)


def test_trace_ring_indexing_and_count_wrap():
    plc = make_plc(device="pcm", trace_length=3)
    inputs, raws = [], []
    for _ in range(7):
        plc.cycle()
        inputs.append(plc.tags(1)["Inputs"].copy())
        raws.append(plc.tags(1)["RawOutputs"].copy())
    tags = plc.tags(1)
    assert tags["TraceCount"] == 7
    ring_in, ring_out = tags["TraceInputs"].reshape(3, 32), tags["TraceRawOutputs"].reshape(3, 32)
    for s in range(7 - 3, 7):  # sample s lives in row s % trace_length
        np.testing.assert_array_equal(ring_in[s % 3], inputs[s])
        np.testing.assert_array_equal(ring_out[s % 3], raws[s])
    # TraceCount is a UDINT: 2**32 - 1 samples in (set directly: nobody waits 497 days), the next wraps to 0.
    plc._layers[1].count = 2**32 - 1
    plc.cycle()
    assert plc.tags(1)["TraceCount"] == 0
    np.testing.assert_array_equal(ring_out[(2**32 - 1) % 3], plc.tags(1)["RawOutputs"])


def test_age_advances_by_age_rate_and_is_published():
    plc = make_plc(device="pcm", age_rate=1000.0, cycle_s=0.01)
    plc.net.set_age(60.0)
    for _ in range(5):
        plc.cycle()
    assert plc.net.age_s == pytest.approx(60.0 + 5 * 10.0)
    assert plc.device_tags() == {"DeviceAge": pytest.approx(110.0), "DeviceTemperature": plc.net.temperature_k}
    still = make_plc(device="pcm")
    still.net.set_age(60.0)
    still.cycle()
    assert still.net.age_s == 60.0


def test_cold_restart_returns_to_identity_and_keeps_the_network():
    plc = make_plc(device="pcm", trace_length=4)
    plc.net.set_age(3600.0)
    plc.set_tag(2, "GainSet", [2.0, 2.0, 2.0, 2.0])
    plc.set_tag(2, "OffsetSet", [1.0, 0.0, 0.0, 0.0])
    plc.set_tag(2, "CommitCounter", 7)
    beat(plc, 3)
    for _ in range(3):
        plc.cycle()
    assert plc.tags(2)["AcceptedCommit"] == 7 and plc.tags(2)["AppliedGain"][0] > 1
    plc.cold_restart()
    tags = plc.tags(2)
    np.testing.assert_array_equal(tags["AppliedGain"], np.ones(4, np.float32))
    np.testing.assert_array_equal(tags["AppliedOffset"], np.zeros(4, np.float32))
    np.testing.assert_array_equal(tags["GainSet"], np.ones(4, np.float32))
    assert (tags["AcceptedCommit"], tags["CommitCounter"], tags["Heartbeat"], tags["PlcHeartbeat"]) == (0, 0, 0, 0)
    assert tags["TraceCount"] == 0 and not tags["TraceRawOutputs"].any()
    assert plc.block(2).target_gain.tolist() == [1.0] * 4
    assert plc.cold_restarts == 1 and plc.net.age_s == 3600.0
    plc.cycle()
    assert plc.tags(2)["Status"] == Status.OK and plc.tags(2)["PlcHeartbeat"] == 1


@pytest.mark.parametrize("protocol,endpoint", [("opcua", "opc.tcp://127.0.0.1:4841"),
                                               ("modbus", "modbus://127.0.0.1:5020")])
def test_tag_map_round_trips_and_fits_the_network(protocol, endpoint):
    plc = make_plc(trace_length=8)
    tag_map = plc.tag_map(protocol, endpoint, user="op" if protocol == "opcua" else None)
    again = parse_tag_map(tomllib.loads(tag_map_to_toml(tag_map)))
    assert again.layers == tag_map.layers and again.device == tag_map.device and again.plc == tag_map.plc
    again.check_network(plc.shapes)
    assert again.network == "thermocouple" and len(again.layers) == 3
    layer = again.layer(1)
    assert layer.trace_length == 8 and layer.trace_inputs.length == 8 * 32
    assert layer.applied_gain is not None and layer.corrected_outputs is not None
    assert again.device.age_s.plc_type == "LREAL"
    if protocol == "opcua":
        assert layer.gain_set.address == "ns=4;s=|var|plc-anna Simulated PLC.Application.GVL_PlcAnna_L1.GainSet"
        assert (layer.status.plc_type, layer.fault.plc_type) == ("INT", "BOOL")
        assert again.plc.user == "op" and again.plc.password_env == "PLC_ANNA_PLC_PASSWORD"
    else:
        # The OpenPLC map, layer 1 at 2048 + 528.
        assert {name: getattr(layer, role).address - 2576 for name, role in
                (("GainSet", "gain_set"), ("Inputs", "inputs"), ("Status", "status"))} == \
            {name: OPENPLC_OFFSETS[name] for name in ("GainSet", "Inputs", "Status")}
        assert (layer.status.plc_type, layer.fault.plc_type) == ("DINT", "UDINT")
        assert again.device.age_s.address == 4096 and again.plc.unit_id == 1


def test_packed_modbus_layout_when_a_layer_does_not_fit_openplc():
    rng = np.random.default_rng(0)
    net = network_from_arrays("wide", "regression", [rng.normal(size=(40, 3))], [np.zeros(40)], ["linear"],
                              X=rng.normal(size=(20, 3)), y=rng.normal(size=(20, 40)))
    plc = SimulatedPlc(SimulatedNetwork(net, "ideal"), trace_length=2)
    registers = modbus_register_map(plc.shapes, 2)
    assert registers[0, "GainSet"] == 2048 and registers[0, "OffsetSet"] == 2048 + 80  # back to back
    assert registers[0, "Inputs"] == 2048 + 6 * 80 + 6 * 2  # six arrays of 40 REAL and six 2-register scalars
    tag_map = plc.tag_map("modbus", "modbus://127.0.0.1:5020")
    parse_tag_map(tomllib.loads(tag_map_to_toml(tag_map)))  # checks that no two tags overlap
    assert tag_map.device.age_s.address == 4096
    with pytest.raises(ValueError, match="beyond 65535"):
        modbus_register_map(plc.shapes, 1000)


def test_set_tag_and_parameters_are_checked():
    plc = make_plc()
    with pytest.raises(ValueError, match="not a written tag"):
        plc.set_tag(0, "AppliedGain", np.ones(32))
    with pytest.raises(ValueError, match="takes 4 values"):
        plc.set_tag(2, "GainSet", [1.0, 1.0])
    with pytest.raises(ValueError, match="UDINT"):
        plc.set_tag(2, "CommitCounter", 2**32)
    with pytest.raises(ValueError, match="layer must be within 0..2"):
        plc.tags(3)
    plc.set_tag(2, "OffsetSet", [1e39, 0.0, 0.0, 0.0])  # stored as REAL: beyond its range is inf
    assert np.isinf(plc.tags(2)["OffsetSet"][0])
    with pytest.raises(ValueError, match="cycle_s"):
        make_plc(cycle_s=0)
    with pytest.raises(ValueError, match="trace_length"):
        make_plc(trace_length=0)
    with pytest.raises(ValueError, match="gain_min <= gain_max"):
        make_plc(gain_min=5.0)
    bare = dataclasses.replace(plc.net.network, X=None, y=None)
    with pytest.raises(ValueError, match="no held-out X"):
        SimulatedPlc(SimulatedNetwork(bare, "ideal"))
    assert OPCUA_STYLES["codesys"].nodeid(None, "DeviceAge").endswith("Application.GVL_Device.DeviceAge")


def test_oversampling_puts_every_sample_through_the_chain_and_into_the_trace():
    plc = make_plc(trace_length=8, samples_per_cycle=4)
    plc.set_tag(0, "GainSet", np.full(32, 1.5))
    plc.set_tag(0, "CommitCounter", 1)
    beat(plc, 1)
    plc.cycle()
    plc.cycle()
    network = plc.net.network
    gain0, offset0 = plc.tags(0)["AppliedGain"], plc.tags(0)["AppliedOffset"]
    for k, layer in enumerate(network.layers):
        tags = plc.tags(k)
        assert tags["TraceCount"] == 8
        rows_in = tags["TraceInputs"].reshape(8, layer.n_in)
        rows_out = tags["TraceRawOutputs"].reshape(8, layer.n_out)
        np.testing.assert_allclose(rows_out, rows_in.astype(float) @ layer.weights.T + layer.bias,
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(tags["Inputs"], rows_in[-1])   # the scalar tags show the newest sample
    # The second cycle's four samples reached layer 1 through layer 0's applied correction.
    rows0 = plc.tags(0)["TraceRawOutputs"].reshape(8, 32)[4:]
    np.testing.assert_allclose(plc.tags(1)["TraceInputs"].reshape(8, 32)[4:],
                               activate((gain0 * rows0 + offset0).astype(float), network.layers[0].activation),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="samples_per_cycle must be an integer >= 1"):
        make_plc(samples_per_cycle=0)
