"""Writing a tag map as TOML (what ``commission draft`` and ``plc-sim --tag-map-out`` save)."""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from plc_anna.contract.tagmap.model import FORMAT, PROTOCOL_KEYS, LinkSettings, PlcSettings, Tag, TagMap


def tag_map_to_toml(tag_map: TagMap) -> str:
    """The tag map as TOML text that :func:`parse_tag_map` reads back to an equal map.

    ``[plc]`` holds the keys of the map's protocol only (no ``word_order`` in an OPC UA map, no security
    settings in a Modbus one): the other protocol's keys would only be defaults that mean nothing there.
    """
    lines = ["# plc-anna tag map (docs/tag-map.md)", f"format = {FORMAT}"]
    if tag_map.network is not None:
        lines.append(f"network = {_toml_value(tag_map.network)}")
    lines += ["", "[plc]"]
    other = {key for protocol, keys in PROTOCOL_KEYS.items() if protocol != tag_map.plc.protocol for key in keys}
    for f in fields(PlcSettings):
        value = getattr(tag_map.plc, f.name)
        if value is not None and f.name not in other:
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
