"""Commissioning: check a tag map against the network and the PLC, reading only.

:func:`validate` answers, check by check: does the map fit the network, can the
PLC be reached with these credentials, does every tag exist with the map's type
and length (and may plc-anna write the ones it writes), do the current values
make sense, and does the PLC program run. It never writes a tag.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from plc_anna.compensator import CompensatorConfig
from plc_anna.device.network import Network
from plc_anna.commission.base import Check, resolve_network, shapes
from plc_anna.contract.tagmap import LayerTags, PlcSettings, Tag, TagMap
from plc_anna.plc.transport import LinkError, Transport, Unreachable, open_transport

#: The hardware's correction range: a current gain outside it is no set plc-anna or the PLC block would hold.
GAIN_RANGE: tuple[float, float] = CompensatorConfig().ramp.gain_range
STATUS_WORDS = {0: "OK", 1: "ramping", 2: "holding: no heartbeat", 3: "last set rejected"}
COUNTER_ROLES = ("commit_counter", "heartbeat", "accepted_commit", "plc_heartbeat", "status")
#: How long PlcHeartbeat may stand still before the PLC program counts as not running.
HEARTBEAT_WAIT_S = 1.0


async def validate(tag_map: TagMap, network: Network | str | Path, *, observed: bool = True,
                   heartbeat_wait_s: float = HEARTBEAT_WAIT_S) -> list[Check]:
    """Check ``tag_map`` against ``network`` and the PLC, reading only.

    Parameters
    ----------
    tag_map
        The map to check (credentials already applied).
    network
        The network the PLC's layers run (a :class:`Network`, a shipped name or a ``.npz`` path).
    observed
        The network is observed through the PLC (``device_backend = "plc"``, as ``commission run``
        calibrates it): every layer must be mapped and the device's age given.
    heartbeat_wait_s
        How long ``PlcHeartbeat`` may stand still before the PLC program counts as not running.

    Returns
    -------
    list of Check
        ``network``, ``connect``, ``layer K tags`` per layer, ``device tags`` (when mapped),
        ``layer K values`` per layer whose tags passed, and ``PLC running``.

    Raises
    ------
    Unreachable, AuthenticationFailed, CertificateRejected
        When no session can be opened: nothing else can be checked then.
    ValueError
        When the map names a password variable that is not set.
    """
    net = resolve_network(network)
    checks = [_fits(tag_map, net, observed)]
    transport = open_transport(tag_map.plc)
    try:
        await transport.connect()
        checks.append(Check("connect", True, f"{tag_map.plc.endpoint}: connected ({_session_words(tag_map.plc)})"))
        tag_checks, good = await _describe(transport, tag_map)
        checks += tag_checks
        for layer in tag_map.layers:
            if layer.index in good:
                checks.append(await _values(transport, layer))
        beating = [layer for layer in tag_map.layers if layer.index in good]
        if beating:
            checks.append(await _running(transport, beating, heartbeat_wait_s))
    finally:
        await transport.close()
    return checks


def _session_words(plc: PlcSettings) -> str:
    if plc.protocol == "modbus":
        return f"Modbus TCP, unit {plc.unit_id}, word order {plc.word_order}"
    who = f"user {plc.user!r}" if plc.user else "anonymous"
    security = "no security" if plc.security_mode == "None" else f"{plc.security_policy} {plc.security_mode}"
    return f"OPC UA, {who}, {security}"


def _fits(tag_map: TagMap, net: Network, observed: bool) -> Check:
    """The map against the network's layers (and, observed, every layer mapped and the age given)."""
    layer_shapes = shapes(net)
    try:
        tag_map.check_network(layer_shapes)
    except ValueError as exc:
        return Check("network", False, str(exc))
    problems = []
    mapped = {layer.index for layer in tag_map.layers}
    missing = [str(index) for index in range(len(layer_shapes)) if index not in mapped]
    if observed and missing:
        problems.append(f"layer(s) {', '.join(missing)} of {net.name!r} are not mapped: a network observed "
                        "through the PLC (commission run, serve with device_backend = \"plc\") needs every layer")
    if observed and tag_map.device.age_s is None and tag_map.device.programmed_at is None:
        problems.append("the device's age is not given: map a device.age_s tag or set device.programmed_at")
    if problems:
        return Check("network", False, "; ".join(problems))
    described = ", ".join(f"{layer.index} ({layer.n_in} -> {layer.n_out})"
                          for layer in sorted(tag_map.layers, key=lambda layer: layer.index))
    return Check("network", True, f"{net.name!r}: layer(s) {described} mapped")


async def _describe(transport: Transport, tag_map: TagMap) -> tuple[list[Check], set[int]]:
    """One check per layer (and the device tags): existence, type, length, write access."""
    device = [tag for tag in (tag_map.device.age_s, tag_map.device.temperature_k) if tag is not None]
    groups: list[tuple[str, int | None, list[Tag]]] = [(f"layer {layer.index} tags", layer.index, layer.tags())
                                                       for layer in tag_map.layers]
    if device:
        groups.append(("device tags", None, device))
    modbus = tag_map.plc.protocol == "modbus"
    checks, good = [], set()
    for name, index, tags in groups:
        try:
            infos = await transport.describe(tags)
        except Unreachable:
            raise
        except LinkError as exc:
            checks.append(Check(name, False, str(exc)))
            continue
        problems = [f"{info.tag.role} ({info.tag.address}): {info.problem or 'does not exist'}"
                    for info in infos if not info.exists or info.problem]
        if problems:
            checks.append(Check(name, False, "; ".join(problems)))
            continue
        if index is not None:
            good.add(index)
        if modbus:
            what = "exist (Modbus cannot tell types, lengths or write access: the values are the check)"
        else:
            what = "exist with the map's types and lengths" + ("; plc-anna may write the ones it writes"
                                                               if index is not None else "")
        checks.append(Check(name, True, f"{len(tags)} tags {what}"))
    return checks, good


def _finite(value) -> bool:
    return bool(np.all(np.isfinite(np.asarray(value, dtype=float))))


def _span(values: np.ndarray) -> str:
    low, high = float(np.min(values)), float(np.max(values))
    return f"{low:.6g}" if low == high else f"{low:.6g}..{high:.6g}"


async def _values(transport: Transport, layer: LayerTags) -> Check:
    """The layer's current values: integer counters, finite and in-range sets, finite process values."""
    name = f"layer {layer.index} values"
    roles = ("inputs", "raw_outputs", "gain_set", "offset_set", *COUNTER_ROLES, "fault")
    try:
        read = await transport.read([getattr(layer, role) for role in roles])
    except Unreachable:
        raise
    except LinkError as exc:
        return Check(name, False, str(exc))
    values = dict(zip(roles, read, strict=True))
    problems = [f"{role} reads {values[role]!r}, not an integer" for role in COUNTER_ROLES
                if not isinstance(values[role], int) or isinstance(values[role], bool)]
    fault = values["fault"]
    if not (isinstance(fault, bool) or fault in (0, 1)):
        problems.append(f"fault reads {fault!r}, neither true nor false")
    if isinstance(values["status"], int) and values["status"] not in STATUS_WORDS:
        problems.append(f"status reads {values['status']}, none of 0 (OK), 1, 2, 3")
    for role in ("inputs", "raw_outputs", "gain_set", "offset_set"):
        if not _finite(values[role]):
            problems.append(f"{role} holds NaN or Inf")
    gains = np.asarray(values["gain_set"], dtype=float)
    low, high = GAIN_RANGE
    if _finite(gains) and (np.any(gains < low) or np.any(gains > high)):
        problems.append(f"gain_set holds {_span(gains)}, outside the correction range {low:g}..{high:g}")
    if problems:
        return Check(name, False, "; ".join(problems))
    status = int(values["status"])
    fault_words = "true (normal while no client beats the heartbeat)" if fault else "false"
    return Check(name, True, f"GainSet {_span(gains)}, OffsetSet {_span(np.asarray(values['offset_set']))}, "
                             f"AcceptedCommit {values['accepted_commit']}, Status {status} ({STATUS_WORDS[status]}), "
                             f"Fault {fault_words}")


async def _running(transport: Transport, layers: Sequence[LayerTags], wait_s: float) -> Check:
    """PlcHeartbeat of every layer moves within ``wait_s``: the PLC program runs."""
    tags = [layer.plc_heartbeat for layer in layers]
    try:
        first = await transport.read(tags)
        start = time.monotonic()
        moved = [False] * len(tags)
        while not all(moved) and time.monotonic() - start < wait_s:
            await asyncio.sleep(min(0.05, wait_s / 10))
            now = await transport.read(tags)
            moved = [was or value != before for was, value, before in zip(moved, now, first, strict=True)]
    except Unreachable:
        raise
    except LinkError as exc:
        return Check("PLC running", False, str(exc))
    elapsed = time.monotonic() - start
    stuck = [f"layer {layer.index} (PlcHeartbeat stays at {value})"
             for layer, value, ok in zip(layers, first, moved, strict=True) if not ok]
    if stuck:
        return Check("PLC running", False, f"{', '.join(stuck)} for {wait_s:g} s: the PLC program does not run "
                                           "(PLC in STOP, or the task does not call the correction block)")
    return Check("PLC running", True,
                 f"PlcHeartbeat moves on every mapped layer (within {math.ceil(elapsed * 1000)} ms)")


__all__ = ["GAIN_RANGE", "HEARTBEAT_WAIT_S", "validate"]
