"""The simulated PLC's tag layouts: CODESYS-style OPC UA NodeIds and the OpenPLC Modbus register map.

Both servers (:mod:`plc_anna.simulated_plc.opcua`, :mod:`plc_anna.simulated_plc.modbus`) and
:meth:`SimulatedPlc.tag_map <plc_anna.simulated_plc.program.SimulatedPlc.tag_map>` read
these tables, so a client's tag map and the served addresses cannot differ.
``docs/simulated-plc.md`` shows both layouts.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence

from plc_anna.contract.tagmap import PLC_TYPES

#: Per-layer tags in the GVL's order: name -> (PLC type, length: "out", "in", "trace_in", "trace_out" or None).
LAYER_TAGS: dict[str, tuple[str, str | None]] = {
    "GainSet": ("REAL", "out"), "OffsetSet": ("REAL", "out"), "CommitCounter": ("UDINT", None),
    "Heartbeat": ("UDINT", None), "AcceptedCommit": ("UDINT", None), "PlcHeartbeat": ("UDINT", None),
    "Status": ("INT", None), "Fault": ("BOOL", None), "RawOutputs": ("REAL", "out"),
    "CorrectedOutputs": ("REAL", "out"), "AppliedGain": ("REAL", "out"), "AppliedOffset": ("REAL", "out"),
    "Inputs": ("REAL", "in"), "TraceCount": ("UDINT", None), "TraceInputs": ("REAL", "trace_in"),
    "TraceRawOutputs": ("REAL", "trace_out"),
}
WRITTEN_TAGS = ("GainSet", "OffsetSet", "CommitCounter", "Heartbeat")
DEVICE_TAGS = {"DeviceAge": "age_s", "DeviceTemperature": "temperature_k"}  #: LREAL, seconds and kelvin
#: Tag name -> tag-map role: the name in snake case (GainSet -> gain_set, TraceRawOutputs -> trace_raw_outputs).
ROLES = {name: re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower() for name in LAYER_TAGS}
#: OpenPLC has no INT or BOOL memory words: Status travels as DINT and Fault as UDINT (ladder_examples/openplc).
MODBUS_TYPES = {**{name: plc_type for name, (plc_type, _) in LAYER_TAGS.items()}, "Status": "DINT", "Fault": "UDINT"}

NAMESPACE_URI = "urn:plc-anna:simulated-plc"
#: Index of NAMESPACE_URI: after DI (2) and PLCopen (3), as the variables namespace of a CODESYS controller.
NAMESPACE_INDEX = 4
DEVICE_NAME = "plc-anna Simulated PLC"
MODBUS_BASE = 2048                  #: %MD0 of OpenPLC
OPENPLC_STRIDE = 528                #: registers per layer in the OpenPLC layout (264 %MD)
OPENPLC_END = 4096                  #: OpenPLC's %MD memory ends here; device and trace tags start at or after it
#: Register offsets of the OpenPLC map (ladder_examples/openplc/README.md), room for 32 outputs and 64 inputs.
OPENPLC_OFFSETS = {"GainSet": 0, "OffsetSet": 64, "CommitCounter": 128, "Heartbeat": 130, "AcceptedCommit": 132,
                   "PlcHeartbeat": 134, "Status": 136, "Fault": 138, "RawOutputs": 144, "CorrectedOutputs": 208,
                   "AppliedGain": 272, "AppliedOffset": 336, "Inputs": 400}


def opcua_nodeid(layer: int | None, name: str) -> str:
    """The CODESYS-style NodeId string of a tag (``layer=None``: a ``GVL_Device`` tag).

    >>> opcua_nodeid(0, "GainSet")
    'ns=4;s=|var|plc-anna Simulated PLC.Application.GVL_PlcAnna_L0.GainSet'
    """
    gvl = "GVL_Device" if layer is None else f"GVL_PlcAnna_L{layer}"
    return f"ns={NAMESPACE_INDEX};s=|var|{DEVICE_NAME}.Application.{gvl}.{name}"


def tag_length(name: str, n_in: int, n_out: int, trace_length: int) -> int | None:
    """Elements of a per-layer tag (None for a scalar)."""
    dim = LAYER_TAGS[name][1]
    return {"out": n_out, "in": n_in, "trace_in": n_in * trace_length, "trace_out": n_out * trace_length,
            None: None}[dim]


def modbus_register_map(shapes: Sequence[tuple[int, int]], trace_length: int) -> dict[tuple[int | None, str], int]:
    """First holding register of every tag, keyed by ``(layer, name)`` (``layer=None``: device tags).

    Layer ``k`` uses the OpenPLC map at ``2048 + 528 k`` when every layer fits it (``n_out <= 32``,
    ``n_in <= 64``, all below register 4096); otherwise the tags are packed back to back from 2048 in
    the same order. DeviceAge and DeviceTemperature (LREAL, 4 registers each) follow at
    ``max(4096, end of the layer blocks)``, then per layer TraceCount, TraceInputs, TraceRawOutputs.

    >>> registers = modbus_register_map([(5, 32), (32, 4)], trace_length=2)
    >>> registers[0, "GainSet"], registers[1, "Inputs"], registers[None, "DeviceAge"], registers[1, "TraceCount"]
    (2048, 2976, 4096, 4254)
    """
    openplc = (all(n_out <= 32 and n_in <= 64 for n_in, n_out in shapes)
               and MODBUS_BASE + OPENPLC_STRIDE * len(shapes) <= OPENPLC_END)
    registers: dict[tuple[int | None, str], int] = {}
    address = MODBUS_BASE
    for k, (n_in, n_out) in enumerate(shapes):
        for name, offset in OPENPLC_OFFSETS.items():
            if openplc:
                registers[k, name] = MODBUS_BASE + OPENPLC_STRIDE * k + offset
            else:
                registers[k, name] = address
                address += _registers(name, n_in, n_out, trace_length)
    address = max(OPENPLC_END, MODBUS_BASE + OPENPLC_STRIDE * len(shapes) if openplc else address)
    for name in DEVICE_TAGS:
        registers[None, name], address = address, address + PLC_TYPES["LREAL"][1]
    for k, (n_in, n_out) in enumerate(shapes):
        for name in ("TraceCount", "TraceInputs", "TraceRawOutputs"):
            registers[k, name] = address
            address += _registers(name, n_in, n_out, trace_length)
    if address > 65536:
        raise ValueError(f"the Modbus layout needs registers up to {address - 1}, beyond 65535: "
                         f"use a shorter trace_length than {trace_length}")
    return registers


def _registers(name: str, n_in: int, n_out: int, trace_length: int) -> int:
    return PLC_TYPES[MODBUS_TYPES[name]][1] * (tag_length(name, n_in, n_out, trace_length) or 1)


def check_port_free(host: str, port: int) -> None:
    """OSError naming ``host:port`` when something listens there already (the check a server start makes)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
