"""The PLC-observed backend: samples from the PLC's tags, without a PLC (the link's tests cover the wire)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from plc_anna.device import open_network
from plc_anna.device.network import network_from_arrays
from plc_anna.device.plc_observed import PlcObservedNetwork
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.simulated_plc.program import SimulatedPlc


@pytest.fixture
def net():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    return network_from_arrays("tiny", "regression", [rng.normal(size=(2, 3))], [np.zeros(2)], ["linear"], X=X,
                               y=X[:, :2])


def tag_map(net, trace_length: int = 8):
    return SimulatedPlc(SimulatedNetwork(net, "ideal"), trace_length=trace_length).tag_map(
        "opcua", "opc.tcp://127.0.0.1:4841")


def trace_values(count: int, length: int, age: float = 120.0):
    """What a read of the trace shows after ``count`` samples: row s % length holds sample s (x = s)."""
    inputs, raw = np.zeros((length, 3)), np.zeros((length, 2))
    for s in range(max(0, count - length), count):
        inputs[s % length], raw[s % length] = s, 10 * s
    return [count, inputs.ravel(), raw.ravel(), age, 300.0]


def test_trace_rows_arrive_once_in_order_and_the_oldest_half_is_not_trusted(net):
    observed = open_network("plc", network=net, tag_map=tag_map(net))
    assert isinstance(observed, PlcObservedNetwork) and observed.sinks == ("plc",)
    assert [tag.role for tag in observed.observed_tags()] == ["trace_count", "trace_inputs", "trace_raw_outputs",
                                                              "age_s", "temperature_k"]
    observed.feed(trace_values(5, 8))            # the first read only sets the position
    assert observed.scan_samples(8, None) is None
    observed.feed(trace_values(8, 8))            # 3 new samples
    observed.feed(trace_values(8, 8))            # nothing new: nothing twice
    (trace,) = observed.scan_samples(8, None)
    np.testing.assert_array_equal(trace.inputs[:, 0], [5, 6, 7])
    np.testing.assert_array_equal(trace.outputs[:, 1], [50, 60, 70])
    observed.feed(trace_values(15, 8))           # 7 new, but only the newest half of the ring (4) is safe
    (trace,) = observed.scan_samples(8, None)
    np.testing.assert_array_equal(trace.inputs[:, 0], [11, 12, 13, 14])
    assert observed.samples_lost == 3
    assert observed.age_s == 120.0 and observed.temperature_k == 300.0


def test_without_a_trace_each_new_sample_counts_once(net):
    tags = tag_map(net)
    layer = dataclasses.replace(tags.layers[0], trace_inputs=None, trace_raw_outputs=None, trace_count=None,
                                trace_length=0)
    observed = PlcObservedNetwork(net, dataclasses.replace(tags, layers=(layer,)))
    assert [tag.role for tag in observed.observed_tags()][:2] == ["inputs", "raw_outputs"]
    assert np.isnan(observed.age_s)              # not read yet
    for values in ([1, 2, 3], [1, 2, 3], [4, 5, 6]):   # the PLC had not cycled between the first two reads
        observed.feed([np.array(values, float), np.array(values[:2], float) * 2, 90.0, 300.0])
    (trace,) = observed.scan_samples(8, None)
    np.testing.assert_array_equal(trace.inputs, [[1, 2, 3], [4, 5, 6]])


def test_a_plc_observed_network_refuses_what_it_cannot_do(net):
    tags = tag_map(net)
    observed = PlcObservedNetwork(net, tags)
    with pytest.raises(ValueError, match="cannot run an inference on chosen inputs"):
        observed.infer(net.X[:2])
    two_layers = network_from_arrays("two", "regression", [np.ones((3, 3)), np.ones((2, 3))],
                                     [np.zeros(3), np.zeros(2)], ["tanh", "linear"], X=net.X, y=net.y)
    with pytest.raises(ValueError, match="layer index 1 is outside|maps 3 inputs and 2 outputs"):
        PlcObservedNetwork(two_layers, tags)
    no_age = dataclasses.replace(tags, device=dataclasses.replace(tags.device, age_s=None))
    with pytest.raises(ValueError, match="give the network's age"):
        PlcObservedNetwork(net, no_age)
    dated = dataclasses.replace(no_age, device=dataclasses.replace(no_age.device, programmed_at=0.0))
    assert PlcObservedNetwork(net, dated).age_s > 1.7e9      # seconds since 1970


def test_every_layer_must_be_mapped():
    sim = SimulatedNetwork("thermocouple", "ideal")
    tags = SimulatedPlc(sim).tag_map("modbus", "modbus://127.0.0.1:5020")
    partial = dataclasses.replace(tags, layers=tags.layers[2:])
    with pytest.raises(ValueError, match=r"layer\(s\) 0, 1 of 'thermocouple' are not"):
        PlcObservedNetwork(sim.network, partial)
