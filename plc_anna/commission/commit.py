"""Commissioning, last steps: the dry run of the first commit, the commit, and its verification.

:func:`plan_commit` reads what the PLC holds and says what would be written;
:func:`commit_and_verify` writes it with the PLC's commit protocol (gain set,
offset set, then the commit counter, in one batch; a heartbeat in every batch)
and reads back what the PLC took.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import numpy as np

from plc_anna.commission.base import Check
from plc_anna.contract.counters import next_beat, next_counter
from plc_anna.contract.ramp import ramp_position, ramp_step
from plc_anna.contract.tagmap import LayerTags, TagMap
from plc_anna.plc.transport import Transport, open_transport
from plc_anna.server.runtime import Runtime

#: Period of the heartbeat while committing (the PLC's watchdog allows 500 ms by default).
BEAT_S = 0.02
#: How long the PLC's PlcHeartbeat is watched after the commit.
RUNNING_WAIT_S = 1.0


def _start(layer: LayerTags, values: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Where the PLC's ramp stands, as the link sees it after a connect (:func:`ramp_position`)."""
    return ramp_position(layer, values["accepted_commit"], values.get("applied_gain", values["gain_set"]),
                         values.get("applied_offset", values["offset_set"]))


#: More sets than this between the PLC's set and the target is no commissioning step (check the slew limits).
MAX_SETS = 10_000


def _steps(start: tuple[np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray], max_gain_step: float,
           max_offset_step: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The sets from ``start`` to ``target``, each within the link's slew limit; at least one (the target).

    Computed in float32 like the link's own ramp; the last set is the target as the PLC stores it (REAL).
    """
    current = [np.asarray(a, np.float32) for a in start]
    goal32 = [np.asarray(a, np.float64).astype(np.float32) for a in target]
    limits = (max_gain_step, max_offset_step)
    sets = []
    while len(sets) < MAX_SETS:
        current = [ramp_step(now, goal, limit) for now, goal, limit in zip(current, target, limits, strict=True)]
        sets.append((current[0], current[1]))
        if all(np.array_equal(now, final) for now, final in zip(current, goal32, strict=True)):
            return sets
    raise ValueError(f"reaching the set takes more than {MAX_SETS} sets under the link's slew limits "
                     f"(max_gain_step {max_gain_step:g}, max_offset_step {max_offset_step:g})")


async def _read_layer(transport: Transport, layer: LayerTags, roles: tuple[str, ...]) -> dict[str, Any]:
    roles = tuple(role for role in roles if getattr(layer, role) is not None)
    return dict(zip(roles, await transport.read([getattr(layer, role) for role in roles]), strict=True))


PLAN_ROLES = ("accepted_commit", "gain_set", "offset_set", "applied_gain", "applied_offset")


async def plan_commit(tag_map: TagMap, runtime: Runtime, transport: Transport) -> list[dict[str, Any]]:
    """The dry run of the first commit: per mapped layer, what would be written and what the PLC holds now.

    Parameters
    ----------
    tag_map
        The tag map.
    runtime
        The calibrated runtime: its current correction of each layer is the set to write (the identity
        right after a calibration: a new fingerprint ramps in over the following scans).
    transport
        A connected transport to the PLC (read only).

    Returns
    -------
    list of dict
        Per layer: ``layer``, ``gain``, ``offset`` (the set), ``accepted_commit`` (the PLC's), ``counter``
        (the first commit counter, AcceptedCommit + 1, skipping 0), ``sets`` (how many sets the link's
        slew limit ``max_gain_step``/``max_offset_step`` takes from where the PLC's ramp stands),
        ``plc_gain_set``, ``plc_offset_set``, ``plc_applied_gain``, ``plc_applied_offset`` (None when not
        mapped), ``max_gain_difference`` and ``max_offset_difference`` (largest ``|set - applied|``, or
        ``|set - GainSet|`` without applied tags).
    """
    link = tag_map.link
    plan = []
    for layer in sorted(tag_map.layers, key=lambda layer: layer.index):
        values = await _read_layer(transport, layer, PLAN_ROLES)
        gain, offset = (np.asarray(a, dtype=float) for a in runtime.compensator.correction(layer.index))
        start = _start(layer, values)
        sets = _steps(start, (gain, offset), link.max_gain_step, link.max_offset_step)
        accepted = int(values["accepted_commit"])
        plan.append({
            "layer": layer.index, "gain": gain.tolist(), "offset": offset.tolist(), "accepted_commit": accepted,
            "counter": next_counter(accepted), "sets": len(sets),
            "plc_gain_set": np.asarray(values["gain_set"], float).tolist(),
            "plc_offset_set": np.asarray(values["offset_set"], float).tolist(),
            "plc_applied_gain": _list(values.get("applied_gain")),
            "plc_applied_offset": _list(values.get("applied_offset")),
            "max_gain_difference": float(np.max(np.abs(gain - start[0]))),
            "max_offset_difference": float(np.max(np.abs(offset - start[1])))})
    return plan


def _list(value: Any) -> list[float] | None:
    return None if value is None else np.asarray(value, float).tolist()


async def commit_and_verify(tag_map: TagMap, plan: list[dict[str, Any]], *, beat_s: float = BEAT_S,
                            running_wait_s: float = RUNNING_WAIT_S) -> list[Check]:
    """Write each planned set with the PLC's commit protocol, then check what the PLC took.

    Why not :class:`~plc_anna.plc.link.PlcLink`: the link skips a set within its deadband of what the
    PLC already holds, and right after a calibration the set usually is the identity the PLC holds, so
    the link would write nothing and commissioning would prove nothing. This function always writes:
    per batch the heartbeat of every mapped layer (so the PLC block leaves or stays out of its
    heartbeat fault, which would refuse sets) and, for a layer whose previous set the PLC accepted,
    ``GainSet``, ``OffsetSet`` and then ``CommitCounter``, as the link does. It keeps the link's
    guarantees: each set moves at most ``max_gain_step``/``max_offset_step`` from the previous one
    (a set far from the PLC's takes several), a new set waits for ``AcceptedCommit`` to report the
    previous one and for ``min_commit_interval_s``.

    Parameters
    ----------
    tag_map
        The tag map (credentials applied).
    plan
        :func:`plan_commit`'s result.
    beat_s
        Period of the heartbeat writes.
    running_wait_s
        How long ``PlcHeartbeat`` is watched after the commit.

    Returns
    -------
    list of Check
        Per layer ``layer K commit`` (the PLC accepted every set) and ``layer K verify`` (GainSet and
        OffsetSet read back equal, as REAL, to the last set; AcceptedCommit equal to its counter;
        Status 0 or 1; Fault false; PlcHeartbeat moving). Nothing is written when the PLC's
        AcceptedCommit moved since the plan (another client commits): one failed ``commit`` check.

    Raises
    ------
    Unreachable, AuthenticationFailed, CertificateRejected, WriteRefused
        When the PLC cannot be reached or refuses a write.
    """
    transport = open_transport(tag_map.plc)
    try:
        await transport.connect()
        return await _commit(transport, tag_map, plan, beat_s, running_wait_s)
    finally:
        await transport.close()


async def _commit(transport: Transport, tag_map: TagMap, plan: list[dict[str, Any]], beat_s: float,
                  running_wait_s: float) -> list[Check]:
    link = tag_map.link
    layers = [tag_map.layer(entry["layer"]) for entry in plan]
    now_values = [await _read_layer(transport, layer, (*PLAN_ROLES, "heartbeat")) for layer in layers]
    moved = [f"layer {entry['layer']}: AcceptedCommit is {values['accepted_commit']}, the plan read "
             f"{entry['accepted_commit']}" for entry, values in zip(plan, now_values, strict=True)
             if values["accepted_commit"] != entry["accepted_commit"]]
    if moved:
        return [Check("commit", False, f"{'; '.join(moved)}: another client commits sets; stop it and plan again. "
                                       "Nothing was written")]
    queues = [_steps(_start(layer, values), (np.asarray(entry["gain"]), np.asarray(entry["offset"])),
                     link.max_gain_step, link.max_offset_step)
              for layer, values, entry in zip(layers, now_values, plan, strict=True)]
    counters = [int(entry["accepted_commit"]) for entry in plan]
    written = [0] * len(plan)
    pending: list[float | None] = [None] * len(plan)   # when the layer's last set was written, until accepted
    last_commit = [-math.inf] * len(plan)
    failures: dict[int, str] = {}
    beat = max(int(values["heartbeat"]) for values in now_values)
    total = sum(len(queue) for queue in queues)
    deadline = time.monotonic() + 2.0 + total * (link.commit_timeout_s + link.min_commit_interval_s)
    while any(queue or pending[k] is not None for k, queue in enumerate(queues) if k not in failures):
        now = time.monotonic()
        if now > deadline:
            for k in range(len(plan)):
                if k not in failures and (queues[k] or pending[k] is not None):
                    state = await _read_layer(transport, layers[k], ("accepted_commit", "status"))
                    failures[k] = (f"the PLC did not accept set {counters[k]} in time (AcceptedCommit "
                                   f"{state['accepted_commit']}, Status {state['status']})")
            break
        beat = next_beat(beat)
        items: list[tuple[Any, Any]] = [(layer.heartbeat, beat) for layer in layers]
        for k, layer in enumerate(layers):
            if k in failures or pending[k] is not None or not queues[k]:
                continue
            if now - last_commit[k] < link.min_commit_interval_s:
                continue
            gain, offset = queues[k].pop(0)
            counters[k] = next_counter(counters[k])
            items += [(layer.gain_set, gain), (layer.offset_set, offset), (layer.commit_counter, counters[k])]
            pending[k], last_commit[k] = now, now
            written[k] += 1
        await transport.write(items)
        await asyncio.sleep(beat_s)
        for k, layer in enumerate(layers):
            if pending[k] is None:
                continue
            state = await _read_layer(transport, layer, ("accepted_commit", "status"))
            if state["accepted_commit"] == counters[k]:
                pending[k] = None
                if state["status"] == 3:
                    failures[k] = f"the PLC rejected set {counters[k]} (Status 3)"
    checks = []
    for k, (layer, entry) in enumerate(zip(layers, plan, strict=True)):
        if k in failures:
            checks.append(Check(f"layer {layer.index} commit", False, failures[k]))
        elif written[k] == 1:
            checks.append(Check(f"layer {layer.index} commit", True, f"set {counters[k]} written and accepted"))
        else:  # the slew limit took several sets
            checks.append(Check(f"layer {layer.index} commit", True, f"{written[k]} set(s) written and accepted, "
                                                                     f"counters {entry['counter']}..{counters[k]}"))
    verified = await _verify(transport, layers, committed=[k not in failures for k in range(len(plan))],
                             plan=plan, counters=counters, beat=beat, beat_s=beat_s, running_wait_s=running_wait_s)
    return checks + verified


async def _verify(transport: Transport, layers: list[LayerTags], *, committed: list[bool],
                  plan: list[dict[str, Any]], counters: list[int], beat: int, beat_s: float,
                  running_wait_s: float) -> list[Check]:
    """Read back each layer's set and state while beating the heartbeat; PlcHeartbeat must move."""
    roles = ("gain_set", "offset_set", "accepted_commit", "status", "fault", "plc_heartbeat")
    first = [await _read_layer(transport, layer, roles) for layer in layers]
    start = time.monotonic()
    heartbeats = [values["plc_heartbeat"] for values in first]
    moving = [False] * len(layers)
    while not all(moving) and time.monotonic() - start < running_wait_s:
        beat = next_beat(beat)
        await transport.write([(layer.heartbeat, beat) for layer in layers])
        await asyncio.sleep(beat_s)
        beats = await transport.read([layer.plc_heartbeat for layer in layers])
        moving = [was or now != before for was, now, before in zip(moving, beats, heartbeats, strict=True)]
    checks = []
    for k, (layer, values, entry) in enumerate(zip(layers, first, plan, strict=True)):
        name = f"layer {layer.index} verify"
        if not committed[k]:
            checks.append(Check(name, False, "not verified: the commit did not complete"))
            continue
        gain, offset = (np.asarray(entry[key], np.float64).astype(np.float32) for key in ("gain", "offset"))
        problems = []
        if not np.array_equal(np.asarray(values["gain_set"], np.float32), gain):
            problems.append("GainSet reads back different from the set written")
        if not np.array_equal(np.asarray(values["offset_set"], np.float32), offset):
            problems.append("OffsetSet reads back different from the set written")
        if values["accepted_commit"] != counters[k]:
            problems.append(f"AcceptedCommit is {values['accepted_commit']}, not {counters[k]}")
        if values["status"] not in (0, 1):
            problems.append(f"Status is {values['status']} (2: holding, heartbeat lost; 3: set rejected)")
        if values["fault"]:
            problems.append("Fault is set (the PLC holds: heartbeat lost)")
        if not moving[k]:
            problems.append(f"PlcHeartbeat stays at {heartbeats[k]}: the PLC program does not run")
        if problems:
            checks.append(Check(name, False, "; ".join(problems)))
        else:
            checks.append(Check(name, True, f"GainSet and OffsetSet read back as written, AcceptedCommit "
                                            f"{counters[k]}, Status {values['status']}, Fault false, PlcHeartbeat "
                                            "moving"))
    return checks


__all__ = ["commit_and_verify", "plan_commit"]
