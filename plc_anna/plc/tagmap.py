"""The tag map: which PLC tags carry each corrected layer's signals and corrections.

A tag map is a TOML file (``docs/tag-map.md`` documents every key). It names
the controller (``[plc]``: protocol, endpoint, credentials), the write-back
policy (``[link]``), optional device tags (``[device]``: age, temperature) and,
per mapped layer of the network (``[[layer]]``), one tag per role:

========================  =========  ==============================================================
role                      direction  meaning
========================  =========  ==============================================================
``inputs``                read       the layer's digital inputs x (array of ``n_in``)
``raw_outputs``           read       the layer's raw analog outputs y (array of ``n_out``)
``gain_set``              write      the gain set plc-anna writes (array of ``n_out``)
``offset_set``            write      the offset set plc-anna writes (array of ``n_out``)
``commit_counter``        write      incremented with every new set, written last in the batch
``heartbeat``             write      incremented every plc-anna scan
``accepted_commit``       read       the counter of the last set the PLC took
``plc_heartbeat``         read       incremented every PLC cycle
``status``                read       the PLC block's status (0 OK, 1 ramping, 2 holding, 3 rejected)
``fault``                 read       the PLC block's heartbeat-lost fault bit
``applied_gain`` …        read       optional: ``applied_gain``, ``applied_offset``,
                                     ``corrected_outputs`` (arrays of ``n_out``)
``trace_inputs`` …        read       optional ring buffer of the last ``trace_length`` PLC cycles:
                                     ``trace_inputs``, ``trace_raw_outputs``, ``trace_count``
========================  =========  ==============================================================

A tag's address is an OPC UA NodeId string (``"ns=4;s=…"`` or ``"nsu=URI;s=…"``)
for ``protocol = "opcua"`` and a 0-based holding-register number for
``protocol = "modbus"``. Its ``type`` is the PLC's data type (:data:`PLC_TYPES`);
integer types may carry a linear ``scale`` and ``bias`` (engineering value =
raw · scale + bias), as analog cards deliver counts.

This module reads and checks files only; it imports no protocol library.

Examples
--------
>>> import tomllib
>>> text = '''
... [plc]
... protocol = "modbus"
... endpoint = "modbus://127.0.0.1:5020"
... [[layer]]
... index = 0
... inputs = { address = 2448, type = "REAL", length = 2 }
... raw_outputs = { address = 2192, type = "REAL", length = 3 }
... gain_set = { address = 2048, type = "REAL", length = 3 }
... offset_set = { address = 2112, type = "REAL", length = 3 }
... commit_counter = { address = 2176, type = "UDINT" }
... heartbeat = { address = 2178, type = "UDINT" }
... accepted_commit = { address = 2180, type = "UDINT" }
... plc_heartbeat = { address = 2182, type = "UDINT" }
... status = { address = 2184, type = "DINT" }
... fault = { address = 2186, type = "UDINT" }
... '''
>>> tags = parse_tag_map(tomllib.loads(text))
>>> layer = tags.layers[0]
>>> layer.gain_set.address, layer.gain_set.plc_type, layer.gain_set.length, layer.gain_set.registers
(2048, 'REAL', 3, 6)
>>> tags.plc.host, tags.plc.port, tags.link.min_commit_interval_s
('127.0.0.1', 5020, 0.1)
>>> parse_tag_map(tomllib.loads(text.replace('"UDINT" }', '"UDINT", lenght = 2 }', 1)))
Traceback (most recent call last):
...
ValueError: tag map: unknown key 'lenght' in layer[0].commit_counter; valid keys: address, type, length, scale, bias
"""

from __future__ import annotations

import itertools
import math
import os
from datetime import UTC, datetime
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from plc_anna.tomlfile import read_toml

FORMAT = 1
PROTOCOLS = ("opcua", "modbus")
#: PLC data type -> (numpy dtype, Modbus registers per element, integer?)
PLC_TYPES: dict[str, tuple[str, int, bool]] = {
    "REAL": ("float32", 2, False),
    "LREAL": ("float64", 4, False),
    "BOOL": ("bool", 1, True),
    "INT": ("int16", 1, True),
    "UINT": ("uint16", 1, True),
    "DINT": ("int32", 2, True),
    "UDINT": ("uint32", 2, True),
}
FLOAT_TYPES = ("REAL", "LREAL")
COUNTER_TYPES = ("UDINT", "DINT", "UINT", "INT")
#: Roles every ``[[layer]]`` must map; the value is True for the roles plc-anna writes.
REQUIRED_ROLES: dict[str, bool] = {
    "inputs": False, "raw_outputs": False, "gain_set": True, "offset_set": True,
    "commit_counter": True, "heartbeat": True, "accepted_commit": False, "plc_heartbeat": False,
    "status": False, "fault": False,
}
OPTIONAL_ROLES = ("applied_gain", "applied_offset", "corrected_outputs",
                  "trace_inputs", "trace_raw_outputs", "trace_count")
WRITTEN_ROLES = tuple(role for role, written in REQUIRED_ROLES.items() if written)
#: Array roles and the layer dimension their length must equal ("in", "out", or trace multiples).
ARRAY_ROLES = {"inputs": "in", "raw_outputs": "out", "gain_set": "out", "offset_set": "out",
               "applied_gain": "out", "applied_offset": "out", "corrected_outputs": "out",
               "trace_inputs": "trace_in", "trace_raw_outputs": "trace_out"}
WORD_ORDERS = ("big", "little")
SECURITY_POLICIES = ("None", "Basic256Sha256", "Aes256_Sha256_RsaPss")
TAG_KEYS = ("address", "type", "length", "scale", "bias")


@dataclass(frozen=True)
class Tag:
    """One PLC tag: where it is, its PLC data type, and for arrays its length."""

    role: str
    address: str | int
    """An OPC UA NodeId string, or a 0-based Modbus holding register."""
    plc_type: str
    length: int | None = None
    """Elements of an array tag; None for a scalar."""
    scale: float = 1.0
    bias: float = 0.0

    @property
    def dtype(self) -> str:
        return PLC_TYPES[self.plc_type][0]

    @property
    def registers(self) -> int:
        """Modbus holding registers the tag occupies."""
        return PLC_TYPES[self.plc_type][1] * (self.length or 1)

    @property
    def is_float(self) -> bool:
        return self.plc_type in FLOAT_TYPES


@dataclass(frozen=True)
class LayerTags:
    """The tags of one mapped layer (index in the network file, 0-based)."""

    index: int
    inputs: Tag
    raw_outputs: Tag
    gain_set: Tag
    offset_set: Tag
    commit_counter: Tag
    heartbeat: Tag
    accepted_commit: Tag
    plc_heartbeat: Tag
    status: Tag
    fault: Tag
    applied_gain: Tag | None = None
    applied_offset: Tag | None = None
    corrected_outputs: Tag | None = None
    trace_inputs: Tag | None = None
    trace_raw_outputs: Tag | None = None
    trace_count: Tag | None = None
    trace_length: int = 0
    """Rows of the optional trace ring buffer (0: no trace)."""

    @property
    def n_in(self) -> int:
        return int(self.inputs.length or 1)

    @property
    def n_out(self) -> int:
        return int(self.raw_outputs.length or 1)

    def tags(self) -> list[Tag]:
        """Every mapped tag of the layer, required roles first."""
        return [getattr(self, role) for role in (*REQUIRED_ROLES, *OPTIONAL_ROLES)
                if getattr(self, role) is not None]


@dataclass(frozen=True)
class PlcSettings:
    """``[plc]``: how to reach the controller."""

    protocol: str
    endpoint: str
    timeout_s: float = 2.0
    user: str | None = None
    password_env: str | None = None
    """Name of the environment variable holding the password (never the password itself)."""
    security_policy: str = "None"
    """OPC UA: ``None``, ``Basic256Sha256`` or ``Aes256_Sha256_RsaPss``."""
    security_mode: str = "None"
    """OPC UA: ``None``, ``Sign`` or ``SignAndEncrypt``."""
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    unit_id: int = 1
    """Modbus unit (slave) id."""
    word_order: str = "big"
    """Modbus: ``big`` puts the high 16 bits in the first register (ABCD), ``little`` the low ones (CDAB)."""

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @property
    def port(self) -> int:
        default = 4840 if self.protocol == "opcua" else 502
        return urlsplit(self.endpoint).port or default

    def password(self) -> str | None:
        """The password from ``password_env`` (ValueError when the variable is named but unset)."""
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ValueError(f"tag map: plc.password_env names {self.password_env!r}, which is not set")
        return value


@dataclass(frozen=True)
class LinkSettings:
    """``[link]``: the write-back policy."""

    deadband: float = 1e-6
    """A new set is written only when a gain or offset moved more than this since the last written set."""
    min_commit_interval_s: float = 0.1
    """Rate limit: at most one new set per this many seconds."""
    max_gain_step: float = 0.02
    """Slew limit: a new set moves each gain at most this far from the last-good set."""
    max_offset_step: float = math.inf
    """Slew limit of the offsets, in output units (inf: none beyond the PLC's own)."""
    verify: bool = True
    """Read the written set back and compare it with what was sent."""
    commit_timeout_s: float = 1.0
    """How long the PLC may take to report the new commit counter as accepted."""
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 5.0


@dataclass(frozen=True)
class DeviceTags:
    """``[device]``: the network's age and temperature, from tags or from a programming time."""

    age_s: Tag | None = None
    temperature_k: Tag | None = None
    programmed_at: float | None = None
    """Unix time the weights were programmed (``programmed_at = 2026-11-01T08:00:00Z`` in the file)."""
    temperature: float = 300.0
    """Kelvin, when no ``temperature_k`` tag is mapped."""


@dataclass(frozen=True)
class TagMap:
    plc: PlcSettings
    layers: tuple[LayerTags, ...]
    link: LinkSettings = field(default_factory=LinkSettings)
    device: DeviceTags = field(default_factory=DeviceTags)
    network: str | None = None
    """The network file the map was drafted for (a name or path), if recorded."""
    source: str = "tag map"

    def layer(self, index: int) -> LayerTags:
        for layer in self.layers:
            if layer.index == index:
                return layer
        raise ValueError(f"{self.source}: no [[layer]] with index {index}; mapped: "
                         f"{', '.join(str(layer.index) for layer in self.layers) or 'none'}")

    def check_network(self, shapes: list[tuple[int, int]]) -> None:
        """Check the layers against a network's (n_in, n_out) per layer; ValueError naming the mismatch."""
        for layer in self.layers:
            if not 0 <= layer.index < len(shapes):
                raise ValueError(f"{self.source}: layer index {layer.index} is outside the network's "
                                 f"layers 0..{len(shapes) - 1}")
            n_in, n_out = shapes[layer.index]
            if (layer.n_in, layer.n_out) != (n_in, n_out):
                raise ValueError(f"{self.source}: layer {layer.index} maps {layer.n_in} inputs and "
                                 f"{layer.n_out} outputs; the network's layer has {n_in} and {n_out}")


def load_tag_map(path: str | Path) -> TagMap:
    """Read and check a tag-map file; ValueError naming the file and the key."""
    return parse_tag_map(read_toml(path), source=str(path))


def parse_tag_map(data: dict[str, Any], source: str = "tag map") -> TagMap:
    """Check a tag map's table (as TOML gives it); ValueError naming the key."""
    _keys(data, ("format", "network", "plc", "link", "device", "layer"), source, "the top level")
    if data.get("format", FORMAT) != FORMAT:
        raise ValueError(f"{source}: format {data.get('format')!r} is not supported (this version reads {FORMAT})")
    if "plc" not in data:
        raise ValueError(f"{source}: the [plc] table is missing")
    plc = _plc(_table(data, "plc", source), source)
    link = _dataclass(LinkSettings, _table(data, "link", source), source, "link")
    if not 0 < link.reconnect_min_s <= link.reconnect_max_s < math.inf:
        raise ValueError(f"{source}: link needs 0 < reconnect_min_s <= reconnect_max_s (finite)")
    if not (link.max_gain_step > 0 and link.max_offset_step > 0 and link.commit_timeout_s > 0):
        raise ValueError(f"{source}: link.max_gain_step, max_offset_step and commit_timeout_s must be > 0")
    for name in ("deadband", "min_commit_interval_s", "commit_timeout_s", "max_gain_step"):
        if not math.isfinite(getattr(link, name)):
            raise ValueError(f"{source}: link.{name} must be finite")
    layers_data = data.get("layer", [])
    if not isinstance(layers_data, list) or not layers_data:
        raise ValueError(f"{source}: map at least one [[layer]]")
    layers = tuple(_layer(entry, plc.protocol, source, k) for k, entry in enumerate(layers_data))
    indices = [layer.index for layer in layers]
    if len(set(indices)) != len(indices):
        raise ValueError(f"{source}: a layer index is mapped twice: {indices}")
    device = _device(_table(data, "device", source), plc.protocol, source)
    network = data.get("network")
    if network is not None and not isinstance(network, str):
        raise ValueError(f"{source}: network must be a string (a network name or file), got {network!r}")
    tag_map = TagMap(plc=plc, layers=layers, link=link, device=device, network=network, source=source)
    if plc.protocol == "modbus":
        _check_overlaps(tag_map)
    return tag_map


def _plc(table: dict[str, Any], source: str) -> PlcSettings:
    for key in ("protocol", "endpoint"):
        if key not in table:
            raise ValueError(f"{source}: plc.{key} is missing")
    plc = _dataclass(PlcSettings, table, source, "plc")
    if plc.protocol not in PROTOCOLS:
        raise ValueError(f"{source}: plc.protocol must be one of {', '.join(PROTOCOLS)}, got {plc.protocol!r}")
    scheme = urlsplit(plc.endpoint).scheme
    expected = "opc.tcp" if plc.protocol == "opcua" else "modbus"
    if scheme != expected or not plc.host:
        raise ValueError(f"{source}: plc.endpoint must look like {expected}://HOST:PORT for protocol "
                         f"{plc.protocol!r}, got {plc.endpoint!r}")
    if plc.word_order not in WORD_ORDERS:
        raise ValueError(f"{source}: plc.word_order must be one of {', '.join(WORD_ORDERS)}, got {plc.word_order!r}")
    if not 0 <= plc.unit_id <= 255:
        raise ValueError(f"{source}: plc.unit_id must be within 0..255, got {plc.unit_id}")
    if plc.security_policy not in SECURITY_POLICIES:
        raise ValueError(f"{source}: plc.security_policy must be one of {', '.join(SECURITY_POLICIES)}, "
                         f"got {plc.security_policy!r}")
    if plc.security_mode not in ("None", "Sign", "SignAndEncrypt"):
        raise ValueError(f"{source}: plc.security_mode must be None, Sign or SignAndEncrypt, "
                         f"got {plc.security_mode!r}")
    if (plc.security_mode == "None") != (plc.security_policy == "None"):
        raise ValueError(f"{source}: plc.security_policy and plc.security_mode must both be None or both be set")
    if plc.security_mode != "None" and not (plc.certificate and plc.private_key):
        raise ValueError(f"{source}: a secure plc.security_mode needs plc.certificate and plc.private_key")
    if plc.timeout_s <= 0:
        raise ValueError(f"{source}: plc.timeout_s must be > 0")
    return plc


def _layer(entry: Any, protocol: str, source: str, k: int) -> LayerTags:
    where = f"layer[{k}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{source}: {where} must be a table")
    _keys(entry, ("index", "trace_length", *REQUIRED_ROLES, *OPTIONAL_ROLES), source, where)
    index = entry.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError(f"{source}: {where}.index must be an integer >= 0 (the layer in the network file)")
    for role in REQUIRED_ROLES:
        if role not in entry:
            raise ValueError(f"{source}: {where}.{role} is missing")
    tags = {role: _tag(role, entry[role], protocol, source, f"{where}.{role}")
            for role in (*REQUIRED_ROLES, *OPTIONAL_ROLES) if role in entry}
    trace_length = entry.get("trace_length", 0)
    if not isinstance(trace_length, int) or isinstance(trace_length, bool) or trace_length < 0:
        raise ValueError(f"{source}: {where}.trace_length must be an integer >= 0")
    trace = [role for role in ("trace_inputs", "trace_raw_outputs", "trace_count") if role in tags]
    if trace and (len(trace) != 3 or trace_length < 1):
        raise ValueError(f"{source}: {where}: a trace needs trace_inputs, trace_raw_outputs, trace_count "
                         "and trace_length >= 1")
    layer = LayerTags(index=index, trace_length=trace_length if trace else 0, **tags)
    dims = {"in": layer.n_in, "out": layer.n_out, "trace_in": layer.n_in * layer.trace_length,
            "trace_out": layer.n_out * layer.trace_length}
    for role, dim in ARRAY_ROLES.items():
        tag = tags.get(role)
        if tag is None:
            continue
        if tag.length is None:
            raise ValueError(f"{source}: {where}.{role} is an array: give its length")
        if tag.length != dims[dim]:
            raise ValueError(f"{source}: {where}.{role} has length {tag.length}; it must be {dims[dim]} "
                             f"({'inputs' if dim.endswith('in') else 'raw_outputs'} length"
                             f"{' x trace_length' if dim.startswith('trace') else ''})")
    for role in ("gain_set", "offset_set"):
        if not tags[role].is_float or tags[role].scale != 1.0 or tags[role].bias != 0.0:
            raise ValueError(f"{source}: {where}.{role} must be REAL or LREAL without scale or bias")
    for role in ("commit_counter", "heartbeat", "accepted_commit", "plc_heartbeat", "status", "fault", "trace_count"):
        tag = tags.get(role)
        allowed = (*COUNTER_TYPES, "BOOL") if role == "fault" else COUNTER_TYPES
        if tag is not None and (tag.length is not None or tag.plc_type not in allowed or tag.scale != 1.0
                                or tag.bias != 0.0):
            raise ValueError(f"{source}: {where}.{role} must be a scalar {'/'.join(allowed)} tag without scale")
    return layer


def _device(table: dict[str, Any], protocol: str, source: str) -> DeviceTags:
    _keys(table, ("age_s", "temperature_k", "programmed_at", "temperature"), source, "device")
    tags = {role: _tag(role, table[role], protocol, source, f"device.{role}")
            for role in ("age_s", "temperature_k") if role in table}
    for role, tag in tags.items():
        if tag.length is not None:
            raise ValueError(f"{source}: device.{role} must be a scalar tag")
    programmed = table.get("programmed_at")
    if programmed is not None:
        if not hasattr(programmed, "timestamp") or getattr(programmed, "tzinfo", None) is None:
            raise ValueError(f"{source}: device.programmed_at must be a TOML date-time with a time zone, "
                             f"e.g. 2026-11-01T08:00:00Z")
        programmed = programmed.timestamp()
    temperature = table.get("temperature", 300.0)
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 1 <= temperature <= 1000:
        raise ValueError(f"{source}: device.temperature must be a number of kelvin within 1..1000")
    return DeviceTags(programmed_at=programmed, temperature=float(temperature), **tags)


def _tag(role: str, value: Any, protocol: str, source: str, where: str) -> Tag:
    if not isinstance(value, dict):
        raise ValueError(f"{source}: {where} must be an inline table like {{ address = ..., type = \"REAL\" }}")
    _keys(value, TAG_KEYS, source, where)
    if "address" not in value or "type" not in value:
        raise ValueError(f"{source}: {where} needs an address and a type")
    address, plc_type = value["address"], value["type"]
    if plc_type not in PLC_TYPES:
        raise ValueError(f"{source}: {where}.type must be one of {', '.join(PLC_TYPES)}, got {plc_type!r}")
    if protocol == "opcua":
        if not isinstance(address, str) or not address.startswith(("ns=", "nsu=", "i=", "s=", "g=", "b=")):
            raise ValueError(f"{source}: {where}.address must be an OPC UA NodeId string such as "
                             f"\"ns=4;s=...\", got {address!r}")
    elif not isinstance(address, int) or isinstance(address, bool) or not 0 <= address <= 65535:
        raise ValueError(f"{source}: {where}.address must be a holding register 0..65535, got {address!r}")
    length = value.get("length")
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 1):
        raise ValueError(f"{source}: {where}.length must be an integer >= 1")
    scale, bias = value.get("scale", 1.0), value.get("bias", 0.0)
    for name, number in (("scale", scale), ("bias", bias)):
        if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number):
            raise ValueError(f"{source}: {where}.{name} must be a finite number")
    if scale == 0:
        raise ValueError(f"{source}: {where}.scale must not be 0")
    if (scale != 1.0 or bias != 0.0) and plc_type in FLOAT_TYPES:
        raise ValueError(f"{source}: {where}: scale and bias apply to integer types only")
    tag = Tag(role=role, address=address, plc_type=plc_type, length=length, scale=float(scale), bias=float(bias))
    if protocol == "modbus" and tag.address + tag.registers > 65536:
        raise ValueError(f"{source}: {where} runs past holding register 65535")
    return tag


def _check_overlaps(tag_map: TagMap) -> None:
    spans = sorted((tag.address, tag.address + tag.registers, f"layer {layer.index} {tag.role}")
                   for layer in tag_map.layers for tag in layer.tags())
    spans += [(tag.address, tag.address + tag.registers, f"device {tag.role}")
              for tag in (tag_map.device.age_s, tag_map.device.temperature_k) if tag is not None]
    spans.sort()
    for (a0, a1, a_name), (b0, _, b_name) in itertools.pairwise(spans):
        if b0 < a1:
            raise ValueError(f"{tag_map.source}: {a_name} (registers {a0}..{a1 - 1}) overlaps {b_name} "
                             f"(from register {b0})")


def _table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ValueError(f"{source}: {key} must be a table")
    return table


def _keys(table: dict[str, Any], valid: tuple[str, ...], source: str, where: str) -> None:
    for key in table:
        if key not in valid:
            raise ValueError(f"{source}: unknown key {key!r} in {where}; valid keys: {', '.join(valid)}")


def _dataclass(cls, table: dict[str, Any], source: str, where: str):
    """Build ``cls`` from a TOML table, checking each key's type by the field's annotation."""
    _keys(table, tuple(f.name for f in fields(cls)), source, where)
    values = {}
    for f in fields(cls):
        if f.name not in table:
            continue
        value = table[f.name]
        if f.type in ("str", "str | None"):
            ok = isinstance(value, str)
        elif f.type == "bool":
            ok = isinstance(value, bool)
        elif f.type == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        if not ok:
            raise ValueError(f"{source}: {where}.{f.name} must be {_type_words(f.type)}, got {value!r}")
        values[f.name] = float(value) if f.type == "float" else value
    return cls(**values)


def _type_words(type_name: str) -> str:
    return {"str": "a string", "str | None": "a string", "bool": "true or false", "int": "an integer",
            "float": "a number >= 0"}.get(type_name, type_name)


def tag_map_to_toml(tag_map: TagMap) -> str:
    """The tag map as TOML text that :func:`parse_tag_map` reads back to an equal map."""
    lines = ["# plc-anna tag map (docs/tag-map.md)", f"format = {FORMAT}"]
    if tag_map.network is not None:
        lines.append(f"network = {_toml_value(tag_map.network)}")
    lines += ["", "[plc]"]
    for f in fields(PlcSettings):
        value = getattr(tag_map.plc, f.name)
        if value is not None:
            lines.append(f"{f.name} = {_toml_value(value)}")
    lines += ["", "[link]"] + [f"{f.name} = {_toml_value(getattr(tag_map.link, f.name))}"
                               for f in fields(LinkSettings)]
    device = tag_map.device
    device_lines = [f"{role} = {_tag_toml(tag)}" for role, tag in (("age_s", device.age_s),
                                                                    ("temperature_k", device.temperature_k))
                    if tag is not None]
    if device.programmed_at is not None:
        stamp = datetime.fromtimestamp(device.programmed_at, UTC).isoformat().replace("+00:00", "Z")
        device_lines.append(f"programmed_at = {stamp}")
    device_lines.append(f"temperature = {_toml_value(device.temperature)}")
    lines += ["", "[device]"] + device_lines
    for layer in tag_map.layers:
        lines += ["", "[[layer]]", f"index = {layer.index}"]
        if layer.trace_length:
            lines.append(f"trace_length = {layer.trace_length}")
        lines += [f"{tag.role} = {_tag_toml(tag)}" for tag in layer.tags()]
    return "\n".join(lines) + "\n"


def _tag_toml(tag: Tag) -> str:
    parts = [f"address = {_toml_value(tag.address)}", f"type = {_toml_value(tag.plc_type)}"]
    if tag.length is not None:
        parts.append(f"length = {tag.length}")
    if tag.scale != 1.0:
        parts.append(f"scale = {_toml_value(tag.scale)}")
    if tag.bias != 0.0:
        parts.append(f"bias = {_toml_value(tag.bias)}")
    return "{ " + ", ".join(parts) + " }"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


__all__ = ["DeviceTags", "LayerTags", "LinkSettings", "PLC_TYPES", "PROTOCOLS", "PlcSettings", "Tag", "TagMap",
           "load_tag_map", "parse_tag_map", "tag_map_to_toml"]
