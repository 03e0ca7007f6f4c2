"""The alarms of one served network, as Alarms & Conditions an HMI can show, acknowledge and refresh.

Each is an AlarmConditionType instance (:mod:`plc_anna.server.conditions`),
a component of the object it is about:

==============================  ========  ===========  ===================================================
alarm (NodeId)                  severity  class        active while
==============================  ========  ===========  ===================================================
``…Layer<i>.FaultAlarm``        900       process      the layer is in Fault
``…Layer<i>.SaturatedAlarm``    700       process      the last correction needed more than the hardware
                                                       range (``saturated``) until a correction starts
                                                       without that, or a rollback
``…Layer<i>.MaintenanceAlarm``  800       maintenance  the predicted remaining life is within the
                                                       maintenance horizon
``ControllerLink.LinkLostAlarm``  800     system       the PLC link is lost (``link_lost`` until
                                                       ``link_restored``)
``Compensator.ScanOverrunAlarm``  500     system       a scan overran its deadline in the last
                                                       :data:`OVERRUN_CLEAR_S` seconds
==============================  ========  ===========  ===================================================

The message says why: the layer's ``StateReason`` (or the compensator
event's message) for a layer alarm, the link's error for the link, the
overrun count for the scan.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from plc_anna.drift.states import SEVERITY, DriftState, EventKind
from plc_anna.plc.link_status import EVENT_SEVERITY, LinkEvent
from plc_anna.server.conditions import Condition, ConditionServer, ConditionSpec
from plc_anna.server.nodes import AddressSpace
from plc_anna.server.runtime import Snapshot

FAULT = ConditionSpec("FaultAlarm", "process", SEVERITY[EventKind.FAULT])
SATURATED = ConditionSpec("SaturatedAlarm", "process", SEVERITY[EventKind.SATURATED])
MAINTENANCE = ConditionSpec("MaintenanceAlarm", "maintenance", SEVERITY[EventKind.MAINTENANCE])
LINK_LOST = ConditionSpec("LinkLostAlarm", "system", EVENT_SEVERITY["link_lost"])
SCAN_OVERRUN = ConditionSpec("ScanOverrunAlarm", "system", 500)
#: The scan-overrun alarm clears after this long without an overrun; while active its message is
#: renewed at most this often.
OVERRUN_CLEAR_S = 10.0


@dataclass
class LayerAlarms:
    fault: Condition
    saturated: Condition
    maintenance: Condition


class NetworkAlarms:
    """Keeps the alarms of one network's address space in step with its scans, link and scan task."""

    def __init__(self, layers: list[LayerAlarms], link_lost: Condition, scan_overrun: Condition,
                 maintenance_horizon_s: float) -> None:
        self.layers = layers
        self.link_lost = link_lost
        self.scan_overrun = scan_overrun
        self.maintenance_horizon_s = float(maintenance_horizon_s)
        self._last_overrun = -math.inf
        self._overrun_reported = -math.inf

    @classmethod
    async def create(cls, conditions: ConditionServer, space: AddressSpace,
                     maintenance_horizon_s: float) -> NetworkAlarms:
        """Add the alarms to the layers, the ControllerLink and the Compensator of ``space``."""
        layers = [LayerAlarms(*[await conditions.add(layer.object, spec) for spec in (FAULT, SATURATED, MAINTENANCE)])
                  for layer in space.layers]
        return cls(layers, await conditions.add(space.link, LINK_LOST),
                   await conditions.add(space.compensator, SCAN_OVERRUN), maintenance_horizon_s)

    @property
    def conditions(self) -> list[Condition]:
        return [c for layer in self.layers for c in (layer.fault, layer.saturated, layer.maintenance)] + [
            self.link_lost, self.scan_overrun]

    async def after_scan(self, snapshot: Snapshot) -> None:
        """Update the layer alarms from a scan's states and events; clear a quiet scan-overrun alarm."""
        for alarms, layer in zip(self.layers, snapshot.layers):
            name = f"Layer{layer.index}"
            events = {event.kind: event for event in snapshot.events if event.layer == layer.index}
            reason = layer.state_reason
            if layer.state is DriftState.FAULT:
                await alarms.fault.set(True, f"{name} fault: {reason or events.get(EventKind.FAULT, _NO).message}")
            elif alarms.fault.active:
                await alarms.fault.set(False, f"{name} fault cleared ({layer.state.name.lower()})")
            if EventKind.SATURATED in events:
                await alarms.saturated.set(True, f"{name} saturated: {events[EventKind.SATURATED].message}")
            elif alarms.saturated.active and ({EventKind.TRANSITION_STARTED, EventKind.ROLLED_BACK} & set(events)):
                await alarms.saturated.set(False, f"{name} correction within the hardware range again")
            life = layer.remaining_life_s
            due = life is not None and math.isfinite(life) and life - snapshot.age_s < self.maintenance_horizon_s
            if due:
                message = events[EventKind.MAINTENANCE].message if EventKind.MAINTENANCE in events else (
                    f"the correction leaves the hardware range at an age of {life:.3g} s: plan maintenance")
                if not alarms.maintenance.active:
                    await alarms.maintenance.set(True, f"{name} maintenance: {message}")
            elif alarms.maintenance.active:
                await alarms.maintenance.set(False, f"{name} remaining life beyond the maintenance horizon again")
        if self.scan_overrun.active and time.monotonic() - self._last_overrun >= OVERRUN_CLEAR_S:
            await self.scan_overrun.set(False, f"no scan overrun for {OVERRUN_CLEAR_S:g} s")

    async def overrun(self, overruns: int, period_ms: float) -> None:
        """A scan ended after the next deadline (``overruns`` so far)."""
        now = time.monotonic()
        self._last_overrun = now
        if self.scan_overrun.active and now - self._overrun_reported < OVERRUN_CLEAR_S:
            return
        self._overrun_reported = now
        await self.scan_overrun.set(True, f"scan overrun: a cycle ended after the next deadline ({overruns} "
                                          f"overruns so far, scan period {period_ms:g} ms)")

    async def link_event(self, event: LinkEvent) -> None:
        """The PLC link's events: lost raises the link alarm, restored clears it."""
        if event.kind == "link_lost":
            await self.link_lost.set(True, f"PLC link lost: {event.message}")
        elif event.kind == "link_restored":
            await self.link_lost.set(False, f"PLC link restored: {event.message}")


class _NoEvent:
    message = "an abrupt change that is not drift"


_NO = _NoEvent()
