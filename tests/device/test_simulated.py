"""The simulated network: coherence, reproducibility, exact laws, temperature, sinks."""

import numpy as np
import pytest

from plc_anna.device import BACKENDS, backend_class, open_network
from plc_anna.device.network import digital_forward
from plc_anna.device.params import PRESETS
from plc_anna.device.physics import arrhenius_acceleration
from plc_anna.device.simulated import SimulatedNetwork

YEAR = 365.25 * 86400.0
IDEAL = PRESETS["ideal"]


def pre_activation(net, X):
    layer = net.layers[-1]
    return X @ layer.weights.T + layer.bias


def test_registry_names_valid_backends():
    assert backend_class("simulated") is SimulatedNetwork
    with pytest.raises(ValueError, match="valid backends: " + ", ".join(BACKENDS)):
        open_network("s7-hardware")


def test_ideal_network_equals_digital(two_layer_net):
    sim = SimulatedNetwork(two_layer_net, "ideal", seed=3)
    for age in (0.0, YEAR):
        sim.set_age(age)
        np.testing.assert_allclose(sim.infer(two_layer_net.X), digital_forward(two_layer_net, two_layer_net.X),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias_in_crossbar", [True, False])
def test_drift_law_exact_with_constant_exponent(linear_net, bias_in_crossbar):
    params = IDEAL.replace(drift_scale=1.0, nu_mean=0.05, nu_std=0.0, bias_in_crossbar=bias_in_crossbar)
    sim = SimulatedNetwork(linear_net, params, seed=0)
    X = linear_net.X
    layer = linear_net.layers[0]
    for age in (3600.0, 86400.0, YEAR, 10 * YEAR):
        sim.set_age(age)
        factor = ((age + 20.0) / 20.0) ** -0.05
        programmed, now = sim.conductances_us(0)
        np.testing.assert_allclose(now, programmed * factor, rtol=1e-13)
        assert sim.conductance_ratio_median(0) == pytest.approx(factor, rel=1e-13)
        bias = layer.bias * (factor if bias_in_crossbar else 1.0)
        np.testing.assert_allclose(sim.infer(X), X @ layer.weights.T * factor + bias, rtol=1e-10, atol=1e-12)


def test_two_steps_equal_one_step(two_layer_net):
    a = SimulatedNetwork(two_layer_net, "pcm", seed=11)
    b = SimulatedNetwork(two_layer_net, "pcm", seed=11)
    a.set_age(3600.0)
    a.advance(YEAR - 3600.0)
    b.advance(YEAR)
    for layer in range(2):
        np.testing.assert_array_equal(a.conductances_us(layer)[1], b.conductances_us(layer)[1])
        np.testing.assert_array_equal(a.periphery(layer)[0], b.periphery(layer)[0])
    # going back in time returns to the same device state: nothing was redrawn
    a.set_age(3600.0)
    c = SimulatedNetwork(two_layer_net, "pcm", seed=11)
    c.set_age(3600.0)
    np.testing.assert_array_equal(a.conductances_us(0)[1], c.conductances_us(0)[1])


def test_noise_path_is_continuous_in_age(linear_net):
    sim = SimulatedNetwork(linear_net, PRESETS["pcm"].replace(drift_scale=0.0), seed=2)
    ratios = []
    for age in np.geomspace(1.0, 10 * YEAR, 200):
        sim.set_age(float(age))
        ratios.append(sim.conductances_us(0)[1])
    steps = np.abs(np.diff(np.array(ratios), axis=0))
    # coherent: consecutive ages differ by a small increment, not by a fresh draw of the noise
    first = sim.conductances_us(0)[0]
    assert steps.max() < 0.05 * first.max()


def test_same_seed_same_network_other_seed_differs(two_layer_net):
    X = two_layer_net.X[:32]
    runs = []
    for seed in (5, 5, 6):
        sim = SimulatedNetwork(two_layer_net, "pcm", seed=seed)
        sim.set_age(86400.0)
        runs.append(np.vstack([sim.infer(X), sim.infer(X)]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_read_noise_is_fresh_per_read(linear_net):
    sim = SimulatedNetwork(linear_net, IDEAL.replace(output_noise_std=0.01), seed=0)
    first, second = sim.infer(linear_net.X), sim.infer(linear_net.X)
    assert not np.array_equal(first, second)
    noise = (first - pre_activation(linear_net, linear_net.X)) / linear_net.layers[0].output_range
    assert noise.std() == pytest.approx(0.01, rel=0.05)


def test_temperature_accelerates_drift(linear_net):
    params = IDEAL.replace(drift_scale=1.0, nu_mean=0.06, nu_std=0.0, temperature_k=330.0)
    hot = SimulatedNetwork(linear_net, params, seed=0)
    cold = SimulatedNetwork(linear_net, params.replace(temperature_k=300.0), seed=0)
    acceleration = arrhenius_acceleration(330.0, 300.0, params.activation_energy_ev)
    hot.set_age(86400.0)
    cold.set_age(86400.0 * acceleration)
    np.testing.assert_allclose(hot.conductances_us(0)[1], cold.conductances_us(0)[1], rtol=1e-12)
    assert hot.temperature_k == 330.0


def test_temperature_profile_and_runtime_change(linear_net):
    params = IDEAL.replace(drift_scale=1.0, nu_mean=0.06, nu_std=0.0, temperature_profile=((100.0, 330.0),))
    sim = SimulatedNetwork(linear_net, params, seed=0)
    sim.set_age(50.0)
    assert sim.temperature_k == 300.0
    sim.set_age(200.0)
    assert sim.temperature_k == 330.0
    assert sim.clock.drift_age_s == pytest.approx(100.0 + 100.0 * arrhenius_acceleration(330.0, 300.0, 0.2))
    sim.set_temperature(310.0)
    sim.set_age(300.0)
    assert sim.temperature_k == 310.0
    with pytest.raises(ValueError, match="temperature"):
        sim.set_temperature(float("nan"))


def test_periphery_gain_and_offset_law(linear_net):
    params = IDEAL.replace(gain_drift_mean=-0.01, gain_drift_std=0.004, offset_drift_std=0.002)
    sim = SimulatedNetwork(linear_net, params, seed=9)
    X = linear_net.X
    sim.set_age(0.0)
    np.testing.assert_allclose(sim.infer(X), pre_activation(linear_net, X), rtol=1e-12, atol=1e-12)
    sim.set_age(10 * YEAR)
    gain, offset = sim.periphery(0)
    decades = np.log10(1 + 10 * YEAR / params.periphery_t0_s)
    assert gain.mean() == pytest.approx(1 - 0.01 * decades, abs=4 * 0.004 * decades / np.sqrt(8))
    np.testing.assert_allclose(sim.infer(X), gain * pre_activation(linear_net, X) + offset, rtol=1e-12, atol=1e-12)


def test_converters_quantize_and_clip(linear_net):
    sim = SimulatedNetwork(linear_net, IDEAL.replace(adc_bits=4), seed=0)
    layer = linear_net.layers[0]
    levels = np.unique(np.round(sim.infer(linear_net.X) / layer.output_range * 7, 9))
    assert set(levels) <= set(np.arange(-7, 8))
    big = np.full((1, 16), 1e3)  # far beyond the DAC range: clipped, not extrapolated
    clipped = SimulatedNetwork(linear_net, "ideal", seed=0).infer(big)
    assert np.all(np.abs(clipped) <= layer.output_range + 1e-12)


def test_device_sinks(two_layer_net):
    sim = SimulatedNetwork(two_layer_net, "ideal", seed=0)
    assert sim.sinks == ("device", "plc")
    X = two_layer_net.X[:20]
    before = sim.trace(X)
    sim.set_correction(0, np.full(6, 2.0), np.zeros(6))
    after = sim.trace(X)
    np.testing.assert_array_equal(after[0].outputs, before[0].outputs)  # raw layer-0 output unchanged
    np.testing.assert_allclose(after[1].inputs, np.maximum(2 * before[0].outputs, 0))
    gain, offset = sim.correction(0)
    assert np.all(gain == 2.0) and np.all(offset == 0.0)
    with pytest.raises(ValueError, match="sink is 'plc'"):
        sim.set_correction(1, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="gain must have 6 values"):
        sim.set_correction(0, np.ones(5), np.zeros(6))
    with pytest.raises(ValueError, match="offset contains NaN"):
        sim.set_correction(0, np.ones(6), np.full(6, np.nan))
    assert np.all(sim.correction(0)[0] == 2.0)  # a refused correction changes nothing
    with pytest.raises(ValueError, match="last layer's sink must be 'plc'"):
        SimulatedNetwork(two_layer_net, "ideal", sinks=("device", "device"))


def test_bad_arguments(two_layer_net):
    sim = SimulatedNetwork(two_layer_net, "pcm", seed=0)
    with pytest.raises(ValueError, match="age must be"):
        sim.set_age(-1.0)
    with pytest.raises(ValueError, match="age must be within"):
        sim.advance(2000 * YEAR)
    with pytest.raises(ValueError, match="inputs must have shape"):
        sim.infer(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="seed"):
        SimulatedNetwork(two_layer_net, "pcm", seed=-1)


def test_injected_fault_acts_at_the_adc_and_clears(linear_net):
    sim = SimulatedNetwork(linear_net, "ideal", seed=0)
    X = linear_net.X
    clean = sim.infer(X)
    gain = np.ones(8)
    gain[3] = 0.95
    sim.inject_fault(0, gain, 0.01)
    np.testing.assert_allclose(sim.infer(X), clean * gain + 0.01, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="gain must have 8 values"):
        sim.inject_fault(0, np.ones(3))
    sim.inject_fault(0)
    np.testing.assert_allclose(sim.infer(X), clean, rtol=1e-12, atol=1e-12)
