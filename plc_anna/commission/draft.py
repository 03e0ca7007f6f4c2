"""Commissioning, first steps: what does the PLC offer, which variables does it hold, and a draft tag map.

A draft is built from the PLC's own address space: the variables whose last
browse-path element is a role name of ``docs/plc-side.md`` (``GainSet``,
``RawOutputs``, ...), grouped by their parent (one GVL per corrected layer),
are matched to the network's layers by the lengths of ``Inputs`` and
``RawOutputs``. Nothing is guessed silently: groups that fit several layers
are assigned by name order with a warning, a layer without a fitting group is
an error naming the layer and its shape.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plc_anna.device.network import Network
from plc_anna.commission.base import (MODBUS_NO_BROWSING, PASSWORD_ENV, network_label, plain_settings,
                                          resolve_network, settings_for_url, shapes)
from plc_anna.contract.tagmap import (OPTIONAL_ROLES, REQUIRED_ROLES, DeviceTags, LayerTags, PlcSettings, Tag, TagMap,
                                 parse_tag_map, tag_map_to_toml)
from plc_anna.plc.transport import open_transport

#: The PLC variable name of each layer role: the role in CamelCase (gain_set -> GainSet).
ROLE_NAMES: dict[str, str] = {"".join(part.capitalize() for part in role.split("_")): role
                              for role in (*REQUIRED_ROLES, *OPTIONAL_ROLES)}
#: The PLC variable name of each device role.
DEVICE_NAMES: dict[str, str] = {"DeviceAge": "age_s", "DeviceTemperature": "temperature_k"}
TRACE_ROLES = ("trace_inputs", "trace_raw_outputs", "trace_count")

Warn = Callable[[str], None]


async def discover(url: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """What the PLC at ``url`` offers.

    Parameters
    ----------
    url
        ``opc.tcp://HOST:PORT[/path]`` or ``modbus://HOST:PORT``.
    timeout_s
        Time allowed for the connection and the answer.

    Returns
    -------
    dict
        ``url``, ``protocol``, ``endpoints`` and ``note``. OPC UA: one entry per endpoint with
        ``url``, ``security_policy``, ``security_mode``, ``security_level`` and ``user_tokens``.
        Modbus has no discovery: ``endpoints`` is empty and the note says the TCP connection succeeded.

    Raises
    ------
    ValueError
        For a URL of no PLC protocol.
    Unreachable, CertificateRejected
        When the PLC cannot be asked; the message names ``url``.
    """
    settings = settings_for_url(url, timeout_s=timeout_s)
    if settings.protocol == "opcua":
        from plc_anna.plc.transport.opcua_browse import discover_endpoints

        endpoints = await discover_endpoints(url, timeout_s)
        return {"url": url, "protocol": "opcua", "endpoints": endpoints,
                "note": f"{len(endpoints)} endpoint(s); a tag map's plc.security_policy and security_mode must "
                        "name one of them"}
    transport = open_transport(settings)
    try:
        await transport.connect()
    finally:
        await transport.close()
    return {"url": url, "protocol": "modbus", "endpoints": [],
            "note": "the TCP connection succeeds; Modbus has no discovery: unit id, registers and word order "
                    "come from the PLC's documentation"}


async def browse(settings: PlcSettings, pattern: str | None = None, root: str | None = None,
                 max_nodes: int = 5000) -> list[dict[str, Any]]:
    """The PLC's variables (OPC UA), below the Objects folder or ``root``.

    Parameters
    ----------
    settings
        How to reach the PLC (``settings_for_url`` or a tag map's ``plc``).
    pattern
        Keep the variables whose browse path contains this text (case-insensitive).
    root
        A NodeId to start from.
    max_nodes
        Stop after visiting this many nodes.

    Returns
    -------
    list of dict
        ``address``, ``browse_path``, ``plc_type``, ``data_type``, ``length``, ``writable`` per variable
        (see :func:`plc_anna.plc.transport.opcua_browse.browse_variables`).

    Raises
    ------
    ValueError
        For Modbus, which has no browsing.
    LinkError
        When the PLC cannot be reached, refuses the login, or has no node ``root``.
    """
    if settings.protocol != "opcua":
        raise ValueError(MODBUS_NO_BROWSING)
    from plc_anna.plc.transport.opcua_browse import browse_variables

    transport = open_transport(settings)
    try:
        await transport.connect()
        return await browse_variables(transport, root=root, pattern=pattern, max_nodes=max_nodes)
    finally:
        await transport.close()


async def draft_tag_map(settings: PlcSettings, network: Network | str | Path, pattern: str | None = None, *,
                        on_warning: Warn | None = None) -> TagMap:
    """A tag map drafted from the PLC's variables for ``network``.

    Parameters
    ----------
    settings
        How to reach the PLC (OPC UA); the draft's ``[plc]`` table, with ``password_env`` set to
        ``PLC_ANNA_PLC_PASSWORD`` when a user is given (a password is never written).
    network
        The network the PLC's layers run (a :class:`Network`, a shipped name or a ``.npz`` path);
        the draft records it as ``network``.
    pattern
        Consider only variables whose browse path contains this text (e.g. the application's name).
    on_warning
        Called with each warning in words: groups assigned by name order because their shapes are
        ambiguous, groups left out, a trace that does not fit, no device age variable.

    Returns
    -------
    TagMap
        The draft, checked as :func:`~plc_anna.contract.tagmap.parse_tag_map` checks a file.

    Raises
    ------
    ValueError
        For Modbus (no browsing), a layer without a fitting group of variables (naming the layer and its
        shape), a group missing a required role, or a variable of no PLC data type.
    LinkError
        When the PLC cannot be reached or refuses the login.
    """
    net = resolve_network(network)
    warn = on_warning or (lambda message: None)
    variables = await browse(settings, pattern=pattern)
    groups: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    role_of = {name.lower(): role for name, role in ROLE_NAMES.items()}
    device_of = {name.lower(): role for name, role in DEVICE_NAMES.items()}
    for variable in variables:
        parent, _, name = variable["browse_path"].rpartition("/")
        if name.lower() in role_of:
            groups[parent].setdefault(role_of[name.lower()], variable)
        elif name.lower() in device_of:
            device[device_of[name.lower()]].append(variable)
    assigned = _assign(groups, net, warn)
    layers = [_layer(index, parent, groups[parent], shapes(net)[index], warn)
              for index, parent in sorted(assigned.items())]
    plc = plain_settings(settings)
    if plc.user is not None and plc.password_env is None:
        plc = dataclasses.replace(plc, password_env=PASSWORD_ENV)
    draft = TagMap(plc=plc, layers=tuple(layers), device=_device(device, warn), network=network_label(network))
    source = f"draft from {settings.endpoint}"
    # The draft goes through the same checks as a file, so what is returned is what a file would give.
    return parse_tag_map(tomllib.loads(tag_map_to_toml(draft)), source=source)


def _natural(text: str) -> list:
    """Sort key: ``L2`` before ``L10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _group_name(parent: str) -> str:
    return parent.rpartition("/")[2] or parent


def _assign(groups: dict[str, dict[str, dict[str, Any]]], net: Network, warn: Warn) -> dict[int, str]:
    """Layer index -> the parent path of its group of variables, matched by the Inputs and RawOutputs lengths."""
    by_shape: dict[tuple[int, int], list[str]] = defaultdict(list)
    for parent, group in groups.items():
        if "inputs" in group and "raw_outputs" in group:
            shape = (group["inputs"]["length"] or 1, group["raw_outputs"]["length"] or 1)
            by_shape[shape].append(parent)
    layers_by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, shape in enumerate(shapes(net)):
        layers_by_shape[shape].append(index)
    assigned: dict[int, str] = {}
    missing: list[str] = []
    for shape, indices in layers_by_shape.items():
        fitting = sorted(by_shape.get(shape, []), key=_natural)
        for index, parent in zip(indices, fitting):
            assigned[index] = parent
        if len(fitting) > 1:
            pairs = ", ".join(f"layer {index} <- {_group_name(parent)}" for index, parent in zip(indices, fitting))
            warn(f"{len(fitting)} groups have {shape[0]} inputs and {shape[1]} outputs "
                 f"({', '.join(map(_group_name, fitting))}); assigned by name order: {pairs}: check the map")
        for parent in fitting[len(indices):]:
            warn(f"{_group_name(parent)} ({shape[0]} inputs, {shape[1]} outputs) is left out: no further layer of "
                 f"{net.name!r} has that shape")
        missing += [f"layer {index} ({shape[0]} inputs -> {shape[1]} outputs)" for index in indices[len(fitting):]]
    for shape, parents in by_shape.items():
        if shape not in layers_by_shape:
            for parent in parents:
                warn(f"{_group_name(parent)} ({shape[0]} inputs, {shape[1]} outputs) is left out: no layer of "
                     f"{net.name!r} has that shape")
    if missing:
        found = ", ".join(f"{_group_name(parent)} ({shape[0]} -> {shape[1]})"
                          for shape, parents in sorted(by_shape.items()) for parent in sorted(parents, key=_natural))
        raise ValueError(f"no group of PLC variables with Inputs and RawOutputs of the right lengths for "
                         f"{'; '.join(missing)} of {net.name!r}; groups found: {found or 'none'}")
    return assigned


def _tag(role: str, variable: dict[str, Any]) -> Tag:
    if variable["plc_type"] is None:
        raise ValueError(f"{variable['browse_path']} ({variable['address']}) is of data type "
                         f"{variable['data_type']}, which no tag map type matches (REAL, LREAL, BOOL, INT, UINT, "
                         f"DINT, UDINT)")
    return Tag(role=role, address=variable["address"], plc_type=variable["plc_type"], length=variable["length"])


def _layer(index: int, parent: str, group: dict[str, dict[str, Any]], shape: tuple[int, int],
           warn: Warn) -> LayerTags:
    missing = [name for name, role in ROLE_NAMES.items() if role in REQUIRED_ROLES and role not in group]
    if missing:
        raise ValueError(f"{parent} fits layer {index} ({shape[0]} inputs -> {shape[1]} outputs) but lacks "
                         f"{', '.join(missing)}")
    tags = {role: _tag(role, variable) for role, variable in group.items()}
    trace = [role for role in TRACE_ROLES if role in tags]
    trace_length = 0
    if trace:
        n_in, n_out = shape
        rows = (tags["trace_raw_outputs"].length or 0) // n_out if "trace_raw_outputs" in tags else 0
        fits = (len(trace) == 3 and rows >= 1 and tags["trace_raw_outputs"].length == rows * n_out
                and tags["trace_inputs"].length == rows * n_in)
        if fits:
            trace_length = rows
        else:
            warn(f"{_group_name(parent)}: the trace ({', '.join(trace)}) does not fit {rows or '?'} rows of "
                 f"{n_in} inputs and {n_out} outputs; it is left out (one sample per read instead)")
            for role in trace:
                del tags[role]
    return LayerTags(index=index, trace_length=trace_length, **tags)


def _device(found: dict[str, list[dict[str, Any]]], warn: Warn) -> DeviceTags:
    tags = {}
    for role, variables in found.items():
        variables = sorted(variables, key=lambda variable: _natural(variable["browse_path"]))
        if len(variables) > 1:
            warn(f"{len(variables)} variables could be device.{role}; took {variables[0]['browse_path']}")
        tags[role] = _tag(role, variables[0])
    if "age_s" not in tags:
        warn("no DeviceAge variable: give device.programmed_at (or an age_s tag) in the map before "
             "'commission run' and 'serve'")
    return DeviceTags(**tags)


__all__ = ["DEVICE_NAMES", "ROLE_NAMES", "browse", "discover", "draft_tag_map"]
