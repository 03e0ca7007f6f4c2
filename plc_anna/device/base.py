"""The device backend interface: what the rest of plc-anna knows of an analog network.

The base class owns the public methods and their validation; a backend fills
the ``_hook`` methods. Backends know nothing of compensation: they run
inferences, report per-layer digital inputs and raw analog outputs, and accept
per-column gain/offset corrections for the layers whose correction sink is
``device`` (the chip's own per-column affine units).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from plc_anna.activations import activate
from plc_anna.converters import Converters
from plc_anna.device.network import Network, check_inputs

SINKS = ("device", "plc")


@dataclass(frozen=True)
class LayerTrace:
    """What one layer saw and produced during an inference.

    ``inputs`` are the digital inputs (n, n_in): trustworthy. ``outputs`` are
    the raw analog pre-activation outputs (n, n_out) before any correction of
    this layer: what drifts.
    """

    inputs: np.ndarray
    outputs: np.ndarray


def default_sinks(n_layers: int) -> tuple[str, ...]:
    """Hidden layers corrected on the device, the last layer by the PLC."""
    return ("device",) * (n_layers - 1) + ("plc",)


def check_correction(n_columns: int, gain: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a per-column correction; returns float copies or raises ValueError."""
    gain = np.array(gain, dtype=float).reshape(-1) if np.ndim(gain) else np.full(n_columns, float(gain))
    offset = np.array(offset, dtype=float).reshape(-1) if np.ndim(offset) else np.full(n_columns, float(offset))
    for name, value in (("gain", gain), ("offset", offset)):
        if value.shape != (n_columns,):
            raise ValueError(f"{name} must have {n_columns} values (one per column), got {value.shape[0]}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} contains NaN or Inf")
    return gain, offset


class AnalogNetwork(ABC):
    """An analog network with per-layer correction sinks.

    Parameters
    ----------
    network
        The programmed network (weights, task, held-out data).
    sinks
        One of ``"device"`` or ``"plc"`` per layer; default: hidden layers
        ``device``, last layer ``plc``. The last layer's sink must be ``plc``:
        its correction is written to the PLC's gain/offset tags.
    """

    #: True for a backend whose inputs the plant chooses (no inference on chosen inputs).
    observes_process = False

    def __init__(self, network: Network, sinks: Sequence[str] | None = None) -> None:
        self.network = network
        n = len(network.layers)
        sinks = default_sinks(n) if sinks is None else tuple(sinks)
        if len(sinks) != n:
            raise ValueError(f"sinks must name one sink per layer ({n}), got {len(sinks)}")
        for i, sink in enumerate(sinks):
            if sink not in SINKS:
                raise ValueError(f"sink of layer {i} must be one of {', '.join(SINKS)}, got {sink!r}")
        if sinks[-1] != "plc":
            raise ValueError("the last layer's sink must be 'plc': its correction goes to the PLC tags")
        self.sinks = sinks
        self._gain = [np.ones(layer.n_out) for layer in network.layers]
        self._offset = [np.zeros(layer.n_out) for layer in network.layers]

    # ----------------------------------------------------------------- clock
    @property
    @abstractmethod
    def age_s(self) -> float:
        """Time since the weights were programmed, in seconds."""

    @property
    @abstractmethod
    def temperature_k(self) -> float:
        """Current operating temperature in kelvin."""

    # ------------------------------------------------------------- inference
    def trace(self, X: np.ndarray) -> list[LayerTrace]:
        """Run an inference on ``X`` (n, n_inputs); one :class:`LayerTrace` per layer.

        Hidden layers' device-sink corrections are applied before their
        activation; the last layer's outputs are raw (the PLC corrects them).
        """
        X = check_inputs(self.network, X)
        traces: list[LayerTrace] = []
        a = X
        for index, layer in enumerate(self.network.layers):
            y = self._layer_hook(index, a)
            traces.append(LayerTrace(inputs=a, outputs=y))
            if self.sinks[index] == "device":
                y = self._gain[index] * y + self._offset[index]
            a = activate(y, layer.activation)
        return traces

    def scan_samples(self, n: int, rng: np.random.Generator) -> list[LayerTrace] | None:
        """One scan of process data: ``n`` rows of the network file's inputs (``X``), drawn with ``rng``,
        through :meth:`trace`. A backend that observes a live process returns what it gathered instead
        (None: not enough yet)."""
        X = self.network.X
        if X is None or len(X) < 2:
            raise ValueError(f"network {self.network.name!r} carries no input data (X) to drive the simulated process")
        return self.trace(np.asarray(X, dtype=float)[rng.integers(0, len(X), n)])

    def converters(self) -> list[Converters | None]:
        """Each layer's DAC and ADC, where the backend knows them (None: unknown)."""
        return [None] * len(self.network.layers)

    def read_layer(self, layer: int, inputs: np.ndarray) -> np.ndarray:
        """Raw analog outputs of ``layer`` alone for its own ``inputs`` (n, n_in).

        This is how a chip's tile is read in isolation, for instance with
        one-hot inputs for global drift compensation.
        """
        self._check_layer(layer)
        n_in = self.network.layers[layer].n_in
        inputs = np.asarray(inputs, dtype=float)
        if inputs.ndim != 2 or inputs.shape[1] != n_in:
            raise ValueError(f"inputs of layer {layer} must have shape (n, {n_in}), got {inputs.shape}")
        if not np.all(np.isfinite(inputs)):
            raise ValueError("inputs contain NaN or Inf")
        return self._layer_hook(layer, inputs)

    def infer(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs of the last layer for inputs ``X``, shape (n, n_outputs)."""
        return self.trace(X)[-1].outputs

    @abstractmethod
    def _layer_hook(self, index: int, inputs: np.ndarray) -> np.ndarray:
        """Raw analog pre-activation outputs of layer ``index`` for validated ``inputs``."""

    # ----------------------------------------------------------- corrections
    def set_correction(self, layer: int, gain: np.ndarray, offset: np.ndarray) -> None:
        """Load a per-column gain/offset into the device's affine units of ``layer``.

        Only layers whose sink is ``device``; the PLC corrects the others.
        """
        self._check_layer(layer)
        if self.sinks[layer] != "device":
            raise ValueError(
                f"layer {layer}'s correction sink is {self.sinks[layer]!r}: the PLC applies it, not the device"
            )
        gain, offset = check_correction(self.network.layers[layer].n_out, gain, offset)
        self._gain[layer], self._offset[layer] = gain, offset

    def correction(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """The (gain, offset) loaded into ``layer``'s device affine units (copies)."""
        self._check_layer(layer)
        return self._gain[layer].copy(), self._offset[layer].copy()

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer < len(self.network.layers):
            raise ValueError(f"layer must be in 0..{len(self.network.layers) - 1}, got {layer}")
