"""Reading a tag map: every key checked, every error naming the file and the key."""

from __future__ import annotations

import itertools
import math
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from plc_anna.contract.tagmap.model import (ARRAY_ROLES, COUNTER_TYPES, FLOAT_TYPES, FORMAT, OPTIONAL_ROLES, PLC_TYPES,
                                       PROTOCOLS, REQUIRED_ROLES, SECURITY_POLICIES, TAG_KEYS, WORD_ORDERS,
                                       DeviceTags, LayerTags, LinkSettings, PlcSettings, Tag, TagMap)
from plc_anna.tomlfile import read_toml


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
    _keys(table, ("age_s", "temperature_k", "programmed_at", "temperature", "dac_bits", "adc_bits"), source,
          "device")
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
    bits = {}
    for key in ("dac_bits", "adc_bits"):
        value = table.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 24):
            raise ValueError(f"{source}: device.{key} must be an integer number of bits within 0..24, got {value!r}")
        bits[key] = value
    return DeviceTags(programmed_at=programmed, temperature=float(temperature), **bits, **tags)


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
