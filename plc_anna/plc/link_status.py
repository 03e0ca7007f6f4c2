"""What the PLC link knows of each layer, what it reads in the PLC's status tags, and what it reports.

- :class:`LayerLink`: one mapped layer's last-good set, the set in flight, and
  what the PLC last said of it.
- :func:`check_layer_status`: one read of a layer's ``AcceptedCommit``,
  ``PlcHeartbeat``, ``Status`` and ``Fault`` turned into :class:`LinkEvent`\\ s
  (``set_lost``, ``set_rejected``, ``plc_fault``, ``plc_stopped``, ...).
- :class:`LinkStatus`: a plain copy of the link's state (connection, counters,
  heartbeats) for whoever shows it: the server's ControllerLink object, the
  demo, a Sparkplug B edge node. It crosses threads and processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from plc_anna.contract.tagmap import LayerTags

#: Events the link raises; the severity follows the OPC UA scale (1..1000).
EVENT_SEVERITY = {"link_lost": 800, "link_restored": 300, "write_refused": 700, "verify_failed": 700,
                  "set_rejected": 700, "commit_timeout": 600, "plc_fault": 800, "plc_fault_cleared": 300,
                  "plc_stopped": 800, "plc_running": 300, "set_lost": 700}


@dataclass(frozen=True)
class LinkEvent:
    kind: str
    message: str
    layer: int | None = None

    @property
    def severity(self) -> int:
        return EVENT_SEVERITY[self.kind]


@dataclass(frozen=True)
class LinkStatus:
    """The link's state at one moment (:meth:`PlcLink.status <plc_anna.plc.link.PlcLink.status>`)."""

    protocol: str
    endpoint: str
    connected: bool
    last_error: str
    commit_counter: int
    """The commit counter of the last set the PLC verifiably holds, of the last mapped layer."""
    heartbeat: int
    """The last heartbeat written (wraps at 2³², PLC UDINT)."""
    missed_heartbeats: int
    late_cycles: int
    sets_written: int
    reconnects: int


@dataclass
class LayerLink:
    """One mapped layer, as the link tracks it."""

    tags: LayerTags
    gain: np.ndarray            # last-good set (float32, as the PLC stores it)
    offset: np.ndarray
    counter: int = 0            # the commit counter of the last-good set
    sent: int = 0               # the commit counter of the newest set written (verified or not)
    unverified: tuple[np.ndarray, np.ndarray, int] | None = None   # written last cycle, read back this one
    target: tuple[np.ndarray, np.ndarray] | None = None
    pending_since: float | None = None   # a set written, not yet accepted by the PLC
    last_commit: float = -math.inf
    accepted: int | None = None
    plc_heartbeat: int | None = None
    plc_heartbeat_at: float = 0.0
    fault: bool | None = None
    rejected_counter: int | None = None
    stopped: bool = False       # plc_stopped reported and not yet cleared


def check_layer_status(entry: LayerLink, accepted: int, beat: int, status: int, fault: bool, now: float,
                       stall_s: float, emit: Callable[[str, str, int], None]) -> bool:
    """Take one read of ``entry``'s status tags at ``now``, emitting ``(kind, message, layer)`` for each change.

    Returns True when the PLC no longer holds the link's last set (a cold restart, or another client
    writing sets): the link must read the PLC's values again and ramp from there.
    """
    index = entry.tags.index
    entry.accepted = accepted
    lost = False
    if entry.pending_since is not None and accepted == entry.sent:
        entry.pending_since = None
    elif entry.pending_since is None and accepted != entry.sent:
        emit("set_lost", f"layer {index}: the PLC's AcceptedCommit is {accepted}, the link's last set "
             f"was {entry.sent}: the PLC restarted or another client writes; taking the PLC's "
             "values as the ramp position", index)
        lost = True
    if status == 3 and entry.rejected_counter != accepted:
        entry.rejected_counter = accepted
        emit("set_rejected", f"layer {index}: the PLC rejected set {accepted} (Status 3)", index)
    if fault != bool(entry.fault):
        if fault:
            emit("plc_fault", f"layer {index}: the PLC reports a heartbeat fault and holds its last "
                 "applied correction", index)
        elif entry.fault is not None:
            emit("plc_fault_cleared", f"layer {index}: the PLC cleared its heartbeat fault", index)
    entry.fault = fault
    if beat != entry.plc_heartbeat:
        if entry.stopped:
            entry.stopped = False
            emit("plc_running", f"layer {index}: the PLC program runs again", index)
        entry.plc_heartbeat, entry.plc_heartbeat_at = beat, now
    elif not entry.stopped and now - entry.plc_heartbeat_at >= stall_s:
        entry.stopped = True
        emit("plc_stopped", f"layer {index}: PlcHeartbeat has not changed for {stall_s:g} s: "
             "the PLC program is not running", index)
    return lost
