"""Where a network's PLC program keeps its tags: one variable list (GVL or DB) per layer, sized to the network.

A :class:`PlcLayout` is the one answer to "which tag, at which address, of which type and length" for a
network's layer shapes and a PLC family (``target``). Everything that has to agree on it reads it
from here:

- the generated PLC code (:mod:`plc_anna.plccode`) declares the variables it names;
- the simulated PLC (:mod:`plc_anna.simulated_plc`) serves exactly these NodeIds and registers;
- :meth:`PlcLayout.tag_map` is the tag map of both, so a generated map and ``plc-anna plc-sim``
  started with the same network and target cannot disagree.

OPC UA addresses follow the PLC family's own server (:data:`OPCUA_STYLES`): CODESYS
``ns=4;s=|var|<device>.Application.GVL_PlcAnna_L0.GainSet``, TwinCAT (TF6100)
``ns=4;s=GVL_PlcAnna_L0.GainSet``, S7-1500 ``ns=3;s="PlcAnna_L0"."GainSet"``. PLCopen XML is
imported into CODESYS-like editors and uses the CODESYS style. Modbus (OpenPLC) uses holding registers
(:func:`modbus_register_map`). ``docs/simulated-plc.md`` shows both layouts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from plc_anna.contract.tagmap import PLC_TYPES, DeviceTags, LayerTags, LinkSettings, PlcSettings, Tag, TagMap

#: Per-layer tags in the GVL's order: name -> (PLC type, length: "out", "in", "trace_in", "trace_out" or None).
LAYER_TAGS: dict[str, tuple[str, str | None]] = {
    "GainSet": ("REAL", "out"), "OffsetSet": ("REAL", "out"), "CommitCounter": ("UDINT", None),
    "Heartbeat": ("UDINT", None), "AcceptedCommit": ("UDINT", None), "PlcHeartbeat": ("UDINT", None),
    "Status": ("INT", None), "Fault": ("BOOL", None), "RawOutputs": ("REAL", "out"),
    "CorrectedOutputs": ("REAL", "out"), "AppliedGain": ("REAL", "out"), "AppliedOffset": ("REAL", "out"),
    "Inputs": ("REAL", "in"), "TraceCount": ("UDINT", None), "TraceInputs": ("REAL", "trace_in"),
    "TraceRawOutputs": ("REAL", "trace_out"),
}
TRACE_TAGS = ("TraceCount", "TraceInputs", "TraceRawOutputs")
WRITTEN_TAGS = ("GainSet", "OffsetSet", "CommitCounter", "Heartbeat")
DEVICE_TAGS = {"DeviceAge": "age_s", "DeviceTemperature": "temperature_k"}  #: LREAL, seconds and kelvin
#: Tag name -> tag-map role: the name in snake case (GainSet -> gain_set, TraceRawOutputs -> trace_raw_outputs).
ROLES = {name: re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower() for name in LAYER_TAGS}
#: OpenPLC has no INT or BOOL memory words: Status travels as DINT and Fault as UDINT (ladder_examples/openplc).
MODBUS_TYPES = {**{name: plc_type for name, (plc_type, _) in LAYER_TAGS.items()}, "Status": "DINT", "Fault": "UDINT"}

#: The PLC families code is generated for, and the protocol plc-anna reaches each by.
TARGETS = {"codesys": "opcua", "twincat": "opcua", "s7-1500": "opcua", "openplc": "modbus",
           "plcopen-xml": "opcua"}

MODBUS_BASE = 2048                  #: %MD0 of OpenPLC
OPENPLC_STRIDE = 528                #: registers per layer in the OpenPLC layout (264 %MD)
OPENPLC_END = 4096                  #: OpenPLC's %MD memory ends here; its %ML (64 bit) memory starts here
#: Register offsets of the OpenPLC map (ladder_examples/openplc/README.md), room for 32 outputs and 64 inputs.
OPENPLC_OFFSETS = {"GainSet": 0, "OffsetSet": 64, "CommitCounter": 128, "Heartbeat": 130, "AcceptedCommit": 132,
                   "PlcHeartbeat": 134, "Status": 136, "Fault": 138, "RawOutputs": 144, "CorrectedOutputs": 208,
                   "AppliedGain": 272, "AppliedOffset": 336, "Inputs": 400}


@dataclass(frozen=True)
class OpcUaStyle:
    """How one PLC family's OPC UA server names and places the program's global variables.

    ``nodeid`` and ``folders`` take ``{device}`` (the controller's name) and ``{gvl}`` (a layer's variable
    list, or the device list); ``nodeid`` also ``{tag}``.
    """

    name: str
    namespace_uri: str
    namespace_index: int
    leading_namespaces: tuple[str, ...]
    """Namespaces the server registers before its variables' one (so that gets ``namespace_index``)."""
    device_name: str
    """The controller's name in the address space (the simulated PLC's)."""
    nodeid_pattern: str
    folders: tuple[str, ...]
    """Browse names of the objects from the Objects folder down to the variable lists' parent."""
    layer_list: str
    """Name of layer ``k``'s variable list (``{k}``)."""
    device_list: str

    def variable_list(self, layer: int | None) -> str:
        """The GVL or DB holding ``layer``'s tags (``None``: the device tags)."""
        return self.device_list if layer is None else self.layer_list.format(k=layer)

    def nodeid(self, layer: int | None, tag: str, device_name: str | None = None) -> str:
        """The NodeId string of a tag.

        >>> OPCUA_STYLES["codesys"].nodeid(0, "GainSet")
        'ns=4;s=|var|plc-anna Simulated PLC.Application.GVL_PlcAnna_L0.GainSet'
        >>> OPCUA_STYLES["s7-1500"].nodeid(2, "GainSet"), OPCUA_STYLES["twincat"].nodeid(None, "DeviceAge")
        ('ns=3;s="PlcAnna_L2"."GainSet"', 'ns=4;s=GVL_Device.DeviceAge')
        """
        return self.nodeid_pattern.format(ns=self.namespace_index, device=device_name or self.device_name,
                                          gvl=self.variable_list(layer), tag=tag)


DI_NAMESPACE = "http://opcfoundation.org/UA/DI/"
OPCUA_STYLES = {
    "codesys": OpcUaStyle(
        name="codesys", namespace_uri="urn:plc-anna:simulated-plc", namespace_index=4,
        leading_namespaces=(DI_NAMESPACE, "http://PLCopen.org/OpcUa/IEC61131-3/"),
        device_name="plc-anna Simulated PLC", nodeid_pattern="ns={ns};s=|var|{device}.Application.{gvl}.{tag}",
        folders=("DeviceSet", "{device}", "Resources", "Application", "GlobalVars"),
        layer_list="GVL_PlcAnna_L{k}", device_list="GVL_Device"),
    "twincat": OpcUaStyle(
        name="twincat", namespace_uri="urn://plc-anna/BeckhoffAutomation/Ua/PLC1", namespace_index=4,
        leading_namespaces=(DI_NAMESPACE, "http://PLCopen.org/OpcUa/IEC61131-3/"),
        device_name="PLC1", nodeid_pattern="ns={ns};s={gvl}.{tag}", folders=("{device}",),
        layer_list="GVL_PlcAnna_L{k}", device_list="GVL_Device"),
    "s7-1500": OpcUaStyle(
        name="s7-1500", namespace_uri="http://www.siemens.com/simatic-s7-opcua", namespace_index=3,
        leading_namespaces=(DI_NAMESPACE,), device_name="PLC_1", nodeid_pattern='ns={ns};s="{gvl}"."{tag}"',
        folders=("{device}", "DataBlocksGlobal"), layer_list="PlcAnna_L{k}", device_list="PlcAnna_Device"),
}
#: The OPC UA style of each target; PLCopen XML goes into CODESYS-like editors.
TARGET_STYLES = {"codesys": "codesys", "twincat": "twincat", "s7-1500": "s7-1500", "plcopen-xml": "codesys"}


def tag_length(name: str, n_in: int, n_out: int, trace_length: int) -> int | None:
    """Elements of a per-layer tag (None for a scalar)."""
    dim = LAYER_TAGS[name][1]
    return {"out": n_out, "in": n_in, "trace_in": n_in * trace_length, "trace_out": n_out * trace_length,
            None: None}[dim]


def fits_openplc_stride(shapes: Sequence[tuple[int, int]]) -> bool:
    """Whether every layer fits the OpenPLC map's fixed block (``n_out <= 32``, ``n_in <= 64``, below 4096)."""
    return (all(n_out <= 32 and n_in <= 64 for n_in, n_out in shapes)
            and MODBUS_BASE + OPENPLC_STRIDE * len(shapes) <= OPENPLC_END)


def modbus_register_map(shapes: Sequence[tuple[int, int]], trace_length: int) -> dict[tuple[int | None, str], int]:
    """First holding register of every tag, keyed by ``(layer, name)`` (``layer=None``: device tags).

    Layer ``k`` uses the OpenPLC map at ``2048 + 528 k`` when every layer fits it (``n_out <= 32``,
    ``n_in <= 64``, all below register 4096); otherwise the tags are packed back to back from 2048 in
    the same order. DeviceAge and DeviceTemperature (LREAL, 4 registers each) follow at
    ``max(4096, end of the layer blocks)`` (OpenPLC's ``%ML0`` and ``%ML1``), then, with a
    ``trace_length``, per layer TraceCount, TraceInputs, TraceRawOutputs.

    >>> registers = modbus_register_map([(5, 32), (32, 4)], trace_length=2)
    >>> registers[0, "GainSet"], registers[1, "Inputs"], registers[None, "DeviceAge"], registers[1, "TraceCount"]
    (2048, 2976, 4096, 4254)
    """
    openplc = fits_openplc_stride(shapes)
    registers: dict[tuple[int | None, str], int] = {}
    address = MODBUS_BASE
    for k, (n_in, n_out) in enumerate(shapes):
        for name, offset in OPENPLC_OFFSETS.items():
            if openplc:
                registers[k, name] = MODBUS_BASE + OPENPLC_STRIDE * k + offset
            else:
                registers[k, name] = address
                address += modbus_registers(name, n_in, n_out, trace_length)
    address = max(OPENPLC_END, MODBUS_BASE + OPENPLC_STRIDE * len(shapes) if openplc else address)
    for name in DEVICE_TAGS:
        registers[None, name], address = address, address + PLC_TYPES["LREAL"][1]
    if trace_length:
        for k, (n_in, n_out) in enumerate(shapes):
            for name in TRACE_TAGS:
                registers[k, name] = address
                address += modbus_registers(name, n_in, n_out, trace_length)
    if address > 65536:
        raise ValueError(f"the Modbus layout needs registers up to {address - 1}, beyond 65535: "
                         f"use a shorter trace_length than {trace_length}")
    return registers


def modbus_registers(name: str, n_in: int, n_out: int, trace_length: int) -> int:
    """Holding registers a per-layer tag occupies over Modbus."""
    return PLC_TYPES[MODBUS_TYPES[name]][1] * (tag_length(name, n_in, n_out, trace_length) or 1)


@dataclass(frozen=True)
class PlcLayout:
    """The tags of a network's PLC program for one PLC family: names, types, lengths and addresses.

    Parameters
    ----------
    shapes
        ``(n_in, n_out)`` of every layer, in order; every layer gets a variable list.
    trace_length
        Rows of each layer's trace ring buffer (0: no trace tags).
    target
        A key of :data:`TARGETS`: the PLC family, which sets the protocol and the address style.
    device_name
        The controller's name in OPC UA NodeIds (CODESYS: the device; S7: the PLC; TwinCAT: the PLC
        project); None for the style's default, the simulated PLC's.

    Examples
    --------
    >>> layout = PlcLayout(((5, 32), (32, 4)), trace_length=8, target="s7-1500")
    >>> layout.protocol, layout.address(1, "GainSet"), layout.length(1, "TraceInputs")
    ('opcua', 'ns=3;s="PlcAnna_L1"."GainSet"', 256)
    >>> PlcLayout(((5, 32),), 0, "openplc").address(0, "Heartbeat")
    2178
    """

    shapes: tuple[tuple[int, int], ...]
    trace_length: int = 64
    target: str = "codesys"
    device_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", tuple((int(n_in), int(n_out)) for n_in, n_out in self.shapes))
        if self.target not in TARGETS:
            raise ValueError(f"unknown PLC target {self.target!r}; choose one of {', '.join(TARGETS)}")
        if not self.shapes or any(n_in < 1 or n_out < 1 for n_in, n_out in self.shapes):
            raise ValueError(f"a layout needs at least one layer of >= 1 inputs and outputs, got {self.shapes}")
        if isinstance(self.trace_length, bool) or not isinstance(self.trace_length, int) or self.trace_length < 0:
            raise ValueError(f"trace_length must be an integer >= 0, got {self.trace_length!r}")

    @property
    def protocol(self) -> str:
        return TARGETS[self.target]

    @property
    def style(self) -> OpcUaStyle:
        """The OPC UA address style (ValueError for a Modbus target)."""
        if self.protocol != "opcua":
            raise ValueError(f"target {self.target!r} is reached over Modbus: it has no OPC UA addresses")
        return OPCUA_STYLES[TARGET_STYLES[self.target]]

    @property
    def n_layers(self) -> int:
        return len(self.shapes)

    def layer_tags(self) -> tuple[str, ...]:
        """The per-layer tag names this layout has (the trace tags only with a ``trace_length``)."""
        return tuple(name for name in LAYER_TAGS if self.trace_length or name not in TRACE_TAGS)

    def length(self, layer: int, name: str) -> int | None:
        """Elements of layer ``layer``'s tag ``name`` (None for a scalar)."""
        n_in, n_out = self.shapes[layer]
        return tag_length(name, n_in, n_out, self.trace_length)

    def plc_type(self, name: str) -> str:
        """The tag's PLC type as plc-anna reads it (over Modbus OpenPLC's: Status DINT, Fault UDINT)."""
        if name in DEVICE_TAGS:
            return "LREAL"
        return MODBUS_TYPES[name] if self.protocol == "modbus" else LAYER_TAGS[name][0]

    def registers(self) -> dict[tuple[int | None, str], int]:
        """The Modbus register map (:func:`modbus_register_map`)."""
        return modbus_register_map(self.shapes, self.trace_length)

    def address(self, layer: int | None, name: str) -> str | int:
        """The tag's address: an OPC UA NodeId string or a holding register (``layer=None``: a device tag)."""
        if self.protocol == "modbus":
            return self.registers()[layer, name]
        return self.style.nodeid(layer, name, self.device_name)

    def tag_map(self, endpoint: str, *, network: str | None = None, word_order: str = "big", user: str | None = None,
                password_env: str | None = None, link: LinkSettings | None = None, temperature: float = 300.0,
                source: str | None = None) -> TagMap:
        """The tag map of this layout at ``endpoint``: every layer with every tag, and the device tags.

        With a ``user`` the password comes from ``password_env``.
        """
        registers = self.registers() if self.protocol == "modbus" else None

        def tag(layer: int | None, name: str, role: str, length: int | None) -> Tag:
            address = registers[layer, name] if registers is not None else self.style.nodeid(layer, name,
                                                                                              self.device_name)
            return Tag(role=role, address=address, plc_type=self.plc_type(name), length=length)

        layers = tuple(
            LayerTags(index=k, trace_length=self.trace_length,
                      **{ROLES[name]: tag(k, name, ROLES[name], self.length(k, name)) for name in self.layer_tags()})
            for k in range(self.n_layers))
        device = DeviceTags(**{role: tag(None, name, role, None) for name, role in DEVICE_TAGS.items()},
                            temperature=float(temperature))
        plc = PlcSettings(protocol=self.protocol, endpoint=endpoint, user=user,
                          password_env=password_env if user else None, word_order=word_order)
        return TagMap(plc=plc, layers=layers, link=link or LinkSettings(), device=device, network=network,
                      source=source or f"{self.target} PLC at {endpoint}")


__all__ = ["DEVICE_TAGS", "LAYER_TAGS", "MODBUS_BASE", "MODBUS_TYPES", "OPCUA_STYLES", "OPENPLC_END",
           "OPENPLC_OFFSETS", "OPENPLC_STRIDE", "ROLES", "TARGETS", "TARGET_STYLES", "TRACE_TAGS", "WRITTEN_TAGS",
           "OpcUaStyle", "PlcLayout", "fits_openplc_stride", "modbus_register_map", "modbus_registers", "tag_length"]
