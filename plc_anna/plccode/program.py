"""What PLC code is generated for: a network's layers, the PLC family, the task, the trace.

:class:`PlcProgram` collects the facts every target's writer needs and checks the ones that are the
same for all of them; each writer (:mod:`~plc_anna.plccode.st`, :mod:`~plc_anna.plccode.scl`,
:mod:`~plc_anna.plccode.openplc`, :mod:`~plc_anna.plccode.plcopen`) turns it into files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from plc_anna.contract.layout import TARGETS, PlcLayout
from plc_anna.contract.logic import DEFAULTS, BlockParameters
from plc_anna.device.network import Network
from plc_anna.plccode.block import iec_time

MAX_LAYERS = 8          #: the largest network the generator is checked for
MAX_COLUMNS = 1024      #: the widest layer (inputs or outputs) the generator is checked for


@dataclass(frozen=True)
class PlcProgram:
    """A network's PLC program for one target.

    Parameters
    ----------
    network
        The network's name (it goes into comments and the tag map).
    shapes
        ``(n_in, n_out)`` per layer.
    activations
        Each layer's activation (comments only: the PLC does not compute the network).
    target
        A key of :data:`~plc_anna.contract.layout.TARGETS`.
    trace_length
        Rows of each layer's trace ring buffer; a power of two (the row is ``TraceCount MOD trace_length``,
        which stays right across the UDINT wrap only then); 0 for none. OpenPLC has no room for one.
    parameters
        The correction block's parameters; ``cycle_s`` is the task interval.
    device_name
        The controller's name in OPC UA NodeIds (None: the simulated PLC's).
    """

    network: str
    shapes: tuple[tuple[int, int], ...]
    activations: tuple[str, ...]
    target: str
    trace_length: int = 64
    parameters: BlockParameters = field(default_factory=lambda: DEFAULTS)
    device_name: str | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}; choose one of {', '.join(TARGETS)}")
        if not 1 <= len(self.shapes) <= MAX_LAYERS:
            raise ValueError(f"{self.network}: {len(self.shapes)} layers; the PLC code generator takes 1 to "
                             f"{MAX_LAYERS}")
        for k, (n_in, n_out) in enumerate(self.shapes):
            if not (1 <= n_in <= MAX_COLUMNS and 1 <= n_out <= MAX_COLUMNS):
                raise ValueError(f"{self.network}: layer {k} has {n_in} inputs and {n_out} outputs; the PLC code "
                                 f"generator takes 1 to {MAX_COLUMNS} of each")
        if self.trace_length < 0 or self.trace_length & (self.trace_length - 1):
            raise ValueError(f"trace length {self.trace_length} is not a power of two (or 0): the trace row is "
                             "TraceCount MOD trace_length, which stays right across the counter's wrap at 2^32 "
                             "only for a power of two")
        if self.target == "openplc" and self.trace_length:
            raise ValueError("OpenPLC has no memory for a trace ring buffer: give trace length 0 for openplc")
        iec_time(self.parameters.cycle_s)
        iec_time(self.parameters.heartbeat_timeout_s)

    @classmethod
    def for_network(cls, network: Network, target: str, *, trace_length: int | None = None,
                    parameters: BlockParameters = DEFAULTS, device_name: str | None = None) -> PlcProgram:
        """The program of a loaded network (``trace_length`` None: 64, or 0 for OpenPLC)."""
        if trace_length is None:
            trace_length = 0 if target == "openplc" else 64
        return cls(network=network.name, shapes=tuple((layer.n_in, layer.n_out) for layer in network.layers),
                   activations=tuple(layer.activation for layer in network.layers), target=target,
                   trace_length=trace_length, parameters=parameters, device_name=device_name)

    @property
    def layout(self) -> PlcLayout:
        """Where the tags are (:class:`~plc_anna.contract.layout.PlcLayout`)."""
        return PlcLayout(self.shapes, self.trace_length, self.target, self.device_name)

    @property
    def widths(self) -> list[int]:
        """The distinct layer widths (outputs), ascending: one block each."""
        return sorted({n_out for _, n_out in self.shapes})

    @property
    def label(self) -> str:
        """The network's name as comments in PLC code may hold it (no comment delimiters, quotes or ``--``).

        >>> PlcProgram("bob's (*net*)--1", ((2, 2),), ("linear",), "codesys").label
        'bob_s __net__-1'
        """
        return re.sub(r"-{2,}", "-", re.sub(r"[^\w .+-]", "_", self.network))

    def describe(self, k: int) -> str:
        """``layer k: 5 inputs -> 32 outputs (tanh)``."""
        n_in, n_out = self.shapes[k]
        return f"layer {k}: {n_in} inputs -> {n_out} outputs ({self.activations[k]})"


__all__ = ["MAX_COLUMNS", "MAX_LAYERS", "PlcProgram"]
