"""The compensator of a whole network: one layer compensator per layer, fed scan by scan."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from plc_anna.activations import activate
from plc_anna.compensator.config import CompensatorConfig
from plc_anna.converters import Converters
from plc_anna.compensator.jobs import Job
from plc_anna.compensator.layer import LayerCompensator
from plc_anna.compensator.state import FORMAT_VERSION, READABLE_FORMATS, layer_state, restore_layer
from plc_anna.drift.states import DriftState, Event, EventKind

if TYPE_CHECKING:  # the numerics never import the device package at run time
    from plc_anna.device.network import Network


class Compensator:
    """One :class:`LayerCompensator` per layer of a network, fed scan by scan.

    ``device_layers`` lists the layers whose correction the caller loads into
    the device's own affine units; the last layer's goes to the PLC.

    With ``activations`` (one per layer, as the network applies them) every
    layer's correction aims at the *ideal network's* pre-activations, computed
    from the network's digital inputs (the first layer's inputs) through the
    programmed weights: a per-column map then also takes out the part of the
    upstream layers' error that shows in its column's distribution, as the
    best per-column correction of the whole network does. Without them each
    layer aims at what its programmed weights make of the inputs it receives.
    When a layer commits a new correction, the layers after it estimate theirs
    again: their inputs now reach the ideal differently.
    """

    def __init__(self, layers: Sequence[LayerCompensator], sinks: Sequence[str],
                 activations: Sequence[str] | None = None) -> None:
        if len(layers) != len(sinks):
            raise ValueError("one sink per layer")
        if activations is not None and len(activations) != len(layers):
            raise ValueError("one activation per layer")
        self.layers = list(layers)
        self.sinks = tuple(sinks)
        self.activations = None if activations is None else tuple(activations)

    @classmethod
    def for_network(cls, network: "Network", config: CompensatorConfig | None = None,
                    sinks: Sequence[str] | None = None,
                    converters: Sequence[Converters | None] | None = None) -> "Compensator":
        """A compensator for ``network``; ``converters`` gives each layer's DAC and ADC when they are known."""
        config = config or CompensatorConfig()
        n = len(network.layers)
        sinks = tuple(sinks) if sinks is not None else ("device",) * (n - 1) + ("plc",)
        converters = list(converters) if converters is not None else [None] * n
        if len(converters) != n:
            raise ValueError(f"one converters entry per layer ({n}), got {len(converters)}")
        return cls([LayerCompensator(i, layer.weights, layer.bias, config, converters[i])
                    for i, layer in enumerate(network.layers)], sinks,
                   activations=[layer.activation for layer in network.layers])

    @property
    def offload(self) -> bool:
        """Whether off-scan work waits for :meth:`take_jobs` (True) or runs inside :meth:`update` (False)."""
        return self.layers[0].offload

    @offload.setter
    def offload(self, value: bool) -> None:
        for layer in self.layers:
            layer.offload = bool(value)

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
        ideals = self._ideal_cascade(batches)
        anticipated = self._anticipate(batches)
        events: list[Event] = []
        for layer, (inputs, outputs), ideal, ahead in zip(self.layers, batches, ideals, anticipated):
            events.extend(layer.update(inputs, outputs, age_s=age_s, temperature_k=temperature_k, ideal=ideal,
                                       anticipated=ahead))
        moved = [e.layer for e in events if e.kind in (EventKind.TRANSITION_STARTED, EventKind.ROLLED_BACK)]
        if moved and self.activations is not None:
            for layer in self.layers[min(moved) + 1:]:
                layer.request_estimate()
        return events

    def _anticipate(self, batches) -> list[np.ndarray | None]:
        """Each layer's raw outputs as they will be once every upstream layer has reached the correction it
        is moving to: the upstream outputs are corrected with those corrections, passed through the
        activations, and each layer's fingerprint says how its raw outputs follow its changed inputs."""
        ahead: list[np.ndarray | None] = [None] * len(self.layers)
        if self.activations is None:
            return ahead
        shifted = None         # the upstream layer's anticipated raw outputs, when they differ from the actual
        for k, (layer, (inputs, outputs)) in enumerate(zip(self.layers, batches)):
            if k > 0:
                upstream = self.layers[k - 1]
                gain, offset = upstream.destination()
                applied = upstream.correction()
                if shifted is not None or not (np.array_equal(gain, applied[0]) and np.array_equal(offset, applied[1])):
                    previous = batches[k - 1][1] if shifted is None else shifted
                    new_inputs = activate(gain * previous + offset, self.activations[k - 1])
                    now, then = layer.predict_raw(inputs), layer.predict_raw(new_inputs)
                    shifted = None if now is None else outputs + (then - now)
                    ahead[k] = shifted
                    continue
            shifted = None
        return ahead

    def _ideal_cascade(self, batches) -> list[np.ndarray | None]:
        """The ideal network's pre-activation of every layer for this scan's network inputs."""
        if self.activations is None or any(len(b[0]) != len(batches[0][0]) for b in batches):
            return [None] * len(self.layers)
        ideals, a = [], np.asarray(batches[0][0], dtype=float)
        for layer, activation in zip(self.layers, self.activations):
            z = a @ layer.weights.T + layer.bias
            ideals.append(z)
            a = activate(z, activation)
        return ideals

    def take_jobs(self) -> list[Job]:
        """The off-scan jobs that became due since the last call (see :mod:`.jobs`); run them on a worker
        and adopt each at a scan boundary, or run them inline with :func:`~.jobs.run_inline`."""
        return [job for layer in self.layers for job in layer.take_jobs()]

    def state_dict(self) -> dict:
        """The persistent state of every layer, as plain JSON-ready data (see :mod:`.state`)."""
        return {"format_version": FORMAT_VERSION, "sinks": list(self.sinks),
                "layers": [layer_state(layer) for layer in self.layers]}

    def load_state_dict(self, data: dict) -> list[int]:
        """Restore a state saved by :meth:`state_dict`; on a ValueError no layer has changed.

        Returns the layers whose saved fingerprint was of an older format: they calibrate again from live
        data, keeping their corrections and drift history.
        """
        version = data.get("format_version") if isinstance(data, dict) else None
        if version not in READABLE_FORMATS:
            raise ValueError(f"not a saved compensator state of format {', '.join(map(str, READABLE_FORMATS))} "
                             f"(got {version!r}): point state_store at another file to start afresh, then call "
                             "Calibrate")
        if len(data.get("layers", [])) != len(self.layers) or list(data.get("sinks", [])) != list(self.sinks):
            raise ValueError("the saved state is of another network: layers or sinks differ")
        # Restore into copies first, so a bad layer leaves every layer as it was.
        restored = [copy.deepcopy(layer) for layer in self.layers]
        recalibrating = [layer.index for layer, saved in zip(restored, data["layers"])
                         if not restore_layer(layer, saved, version)]
        self.layers = restored
        return recalibrating

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
