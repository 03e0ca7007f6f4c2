import numpy as np

from plc_anna.device.params import PRESETS
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.loop import ScanLoop


def test_loop_applies_device_and_plc_corrections(two_layer_net):
    sim = SimulatedNetwork(two_layer_net, PRESETS["pcm"].replace(output_noise_std=0.0), seed=0)
    loop = ScanLoop(sim)
    rng = np.random.default_rng(0)
    for _ in range(250):
        loop.scan(two_layer_net.X[rng.integers(0, 300, 64)])
    assert len(loop.update_s) == 250 and loop.events
    (g0, o0), (g1, o1) = loop.corrections()
    X = two_layer_net.X[:50]
    sim.set_correction(0, g0, o0)
    np.testing.assert_allclose(loop.corrected(X), g1 * sim.infer(X) + o1)
