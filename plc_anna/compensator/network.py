"""The compensator of a whole network: one layer compensator per layer, fed scan by scan."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from plc_anna.compensator.config import CompensatorConfig
from plc_anna.compensator.jobs import Job
from plc_anna.compensator.layer import LayerCompensator
from plc_anna.compensator.state import FORMAT_VERSION, layer_state, restore_layer
from plc_anna.drift.states import DriftState, Event

if TYPE_CHECKING:  # the numerics never import the device package at run time
    from plc_anna.device.network import Network


class Compensator:
    """One :class:`LayerCompensator` per layer of a network, fed scan by scan.

    ``device_layers`` lists the layers whose correction the caller loads into
    the device's own affine units; the last layer's goes to the PLC.
    """

    def __init__(self, layers: Sequence[LayerCompensator], sinks: Sequence[str]) -> None:
        if len(layers) != len(sinks):
            raise ValueError("one sink per layer")
        self.layers = list(layers)
        self.sinks = tuple(sinks)

    @classmethod
    def for_network(cls, network: "Network", config: CompensatorConfig | None = None,
                    sinks: Sequence[str] | None = None) -> "Compensator":
        config = config or CompensatorConfig()
        n = len(network.layers)
        sinks = tuple(sinks) if sinks is not None else ("device",) * (n - 1) + ("plc",)
        return cls([LayerCompensator(i, layer.weights, layer.bias, config) for i, layer in enumerate(network.layers)],
                   sinks)

    @property
    def device_layers(self) -> list[int]:
        return [i for i, sink in enumerate(self.sinks) if sink == "device"]

    @property
    def states(self) -> list[DriftState]:
        return [layer.state for layer in self.layers]

    def correction(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        return self.layers[layer].correction()

    def update(self, batches: Sequence[tuple[np.ndarray, np.ndarray]], age_s: float | None = None,
               temperature_k: float | None = None) -> list[Event]:
        """Feed one scan: a ``(inputs, raw_outputs)`` pair per layer, in layer order.

        Each layer corrects its own drift: its ideal is what the programmed
        weights make of the inputs it actually receives. (Targeting the ideal
        network's activations instead lets a layer absorb its upstream
        layers' transient errors, and the benchmark scores that worse.)
        """
        if len(batches) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} (inputs, outputs) pairs, got {len(batches)}")
        events: list[Event] = []
        for layer, (inputs, outputs) in zip(self.layers, batches):
            events.extend(layer.update(inputs, outputs, age_s=age_s, temperature_k=temperature_k))
        return events

    def take_jobs(self) -> list[Job]:
        """The off-scan jobs that became due since the last call (see :mod:`.jobs`); run them on a worker
        and adopt each at a scan boundary, or run them inline with :func:`~.jobs.run_inline`."""
        return []

    def state_dict(self) -> dict:
        """The persistent state of every layer, as plain JSON-ready data (see :mod:`.state`)."""
        return {"format_version": FORMAT_VERSION, "sinks": list(self.sinks),
                "layers": [layer_state(layer) for layer in self.layers]}

    def load_state_dict(self, data: dict) -> None:
        """Restore a state saved by :meth:`state_dict`; on a ValueError no layer has changed."""
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a saved compensator state of format {FORMAT_VERSION}")
        if len(data.get("layers", [])) != len(self.layers) or list(data.get("sinks", [])) != list(self.sinks):
            raise ValueError("the saved state is of another network: layers or sinks differ")
        # Restore into copies first, so a bad layer leaves every layer as it was.
        restored = [copy.deepcopy(layer) for layer in self.layers]
        for layer, saved in zip(restored, data["layers"]):
            restore_layer(layer, saved)
        self.layers = restored

    def calibrate(self) -> None:
        """Record a new fingerprint in every layer (see :meth:`LayerCompensator.calibrate`)."""
        for layer in self.layers:
            layer.calibrate()

    def commit(self) -> None:
        """Make every layer's applied correction its last good one."""
        for layer in self.layers:
            layer.commit()

    def rollback(self) -> None:
        """Return every layer to its last good correction."""
        for layer in self.layers:
            layer.rollback()

    def reset_reference(self) -> None:
        """Forget every layer's fingerprint and drift history and calibrate afresh."""
        for layer in self.layers:
            layer.reset_reference()
