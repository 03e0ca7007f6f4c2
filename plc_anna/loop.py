"""The scan loop of a simulated network and its compensator: a thin orchestrator.

Each scan: load the hidden layers' corrections into the device, run the
inference, feed every layer's inputs and raw outputs to the compensator. The
last layer's correction is what a PLC would apply (``Gain[j]·y[j] + Offset[j]``);
:meth:`ScanLoop.corrected` applies it here.
"""

from __future__ import annotations

import time

import numpy as np

from plc_anna.compensator import Compensator, CompensatorConfig
from plc_anna.device.base import AnalogNetwork
from plc_anna.drift.states import Event

Corrections = list[tuple[np.ndarray, np.ndarray]]


def apply_device_corrections(net: AnalogNetwork, corrections: Corrections) -> None:
    """Load every device-sink layer's (gain, offset) into the network."""
    for layer, sink in enumerate(net.sinks):
        if sink == "device":
            net.set_correction(layer, *corrections[layer])


class ScanLoop:
    """A network wired to a :class:`~plc_anna.compensator.Compensator`."""

    def __init__(self, net: AnalogNetwork, config: CompensatorConfig | None = None) -> None:
        self.net = net
        self.compensator = Compensator.for_network(net.network, config, sinks=net.sinks, converters=net.converters())
        self.update_s: list[float] = []
        self.events: list[Event] = []

    def corrections(self) -> Corrections:
        """Every layer's applied (gain, offset), in layer order."""
        return [layer.correction() for layer in self.compensator.layers]

    def scan(self, inputs: np.ndarray) -> list[Event]:
        """One scan on a batch of network inputs; returns its events."""
        apply_device_corrections(self.net, self.corrections())
        traces = self.net.trace(inputs)
        start = time.perf_counter()
        events = self.compensator.update([(t.inputs, t.outputs) for t in traces], age_s=self.net.age_s,
                                         temperature_k=self.net.temperature_k)
        self.update_s.append(time.perf_counter() - start)
        self.events += events
        return events

    def corrected(self, X: np.ndarray) -> np.ndarray:
        """Network outputs for ``X`` with every correction applied, the last as the PLC would."""
        corrections = self.corrections()
        apply_device_corrections(self.net, corrections)
        gain, offset = corrections[-1]
        return gain * self.net.infer(X) + offset
