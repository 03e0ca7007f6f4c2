"""The streaming compensator: statistics → drift monitor → transport → transition, per layer.

Usable from plain Python, without any server: feed each scan's per-layer
digital inputs and raw analog outputs, read the state, the distance and the
correction to apply, and receive events. Give it the layers' converters when
they are known: it then models the DAC's rounding.

Examples
--------
>>> import numpy as np
>>> from plc_anna.device.network import digital_forward
>>> from plc_anna.device.simulated import SimulatedNetwork
>>> sim = SimulatedNetwork("thermocouple", "pcm", seed=0)
>>> comp = Compensator.for_network(sim.network, CompensatorConfig(calibration_samples=2048),
...                                converters=sim.converters())
>>> rng = np.random.default_rng(0)
>>> def scan():
...     traces = sim.trace(sim.network.X[rng.integers(0, 1000, 64)])
...     events = comp.update([(t.inputs, t.outputs) for t in traces], age_s=sim.age_s)
...     for layer in comp.device_layers:
...         sim.set_correction(layer, *comp.correction(layer))
...     return events
>>> sim.set_age(60.0)
>>> kinds = [e.kind.value for _ in range(250) for e in scan()]   # t0 fingerprint, first corrections
>>> kinds[:2], [state.name for state in comp.states]
(['calibrated', 'transition_started'], ['NOMINAL', 'NOMINAL', 'NOMINAL'])
>>> for age in np.geomspace(60.0, 30 * 86400.0, 300):          # a month of drift, scan by scan
...     sim.set_age(age)
...     kinds += [e.kind.value for e in scan()]
>>> kinds += [e.kind.value for _ in range(150) for e in scan()]   # and a little longer at 30 days
>>> kinds.count("committed") >= 3
True
>>> X, ideal = sim.network.X[1000:], digital_forward(sim.network, sim.network.X[1000:])
>>> gain, offset = comp.correction(2)
>>> raw = sim.infer(X)
>>> rms = lambda e: float(np.sqrt(np.mean(e**2)))
>>> round(rms(raw - ideal), -1), rms(gain * raw + offset - ideal) < 30   # °C: uncorrected, and corrected
(200.0, True)
"""

from plc_anna.compensator.config import CompensatorConfig
from plc_anna.compensator.jobs import Job, run_inline
from plc_anna.compensator.layer import LayerCompensator
from plc_anna.compensator.network import Compensator

__all__ = ["Compensator", "CompensatorConfig", "Job", "LayerCompensator", "run_inline"]
