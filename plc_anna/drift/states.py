"""Drift states and the events a compensator emits when it changes state.

::

    Calibrating ──► Nominal ──► Suspect ──► Drifting ──► Compensating ──► Nominal
                       ▲           │            │  (within deadband)         │
                       └───────────┘            └──► Nominal   rollback ─────┘
    any state ──► Fault (an abrupt change that is not drift): a jump clears itself once the windows
                  match the fingerprint again (a process excursion); a fault against the drift
                  trend holds until calibration

Severities follow OPC UA's 1…1000 scale so a server can publish them as-is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DriftState(enum.IntEnum):
    """Where a layer's compensation stands (values are stable: they go to PLC and OPC UA)."""

    CALIBRATING = 0
    NOMINAL = 1
    SUSPECT = 2
    DRIFTING = 3
    COMPENSATING = 4
    FAULT = 5


class EventKind(str, enum.Enum):
    """What happened."""

    CALIBRATED = "calibrated"
    SUSPECT = "suspect"
    DRIFT_DETECTED = "drift_detected"
    WITHIN_DEADBAND = "within_deadband"
    TRANSITION_STARTED = "transition_started"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"
    SATURATED = "saturated"
    CLIPPED = "clipped"
    MAINTENANCE = "maintenance"
    FAULT = "fault"
    FAULT_CLEARED = "fault_cleared"
    COVERAGE_GROWN = "coverage_grown"


SEVERITY: dict[EventKind, int] = {
    EventKind.CALIBRATED: 100,
    EventKind.SUSPECT: 200,
    EventKind.DRIFT_DETECTED: 400,
    EventKind.WITHIN_DEADBAND: 100,
    EventKind.TRANSITION_STARTED: 300,
    EventKind.COMMITTED: 300,
    EventKind.ROLLED_BACK: 600,
    EventKind.SATURATED: 700,
    EventKind.CLIPPED: 500,
    EventKind.MAINTENANCE: 800,
    EventKind.FAULT: 900,
    EventKind.FAULT_CLEARED: 300,
    EventKind.COVERAGE_GROWN: 100,
}


@dataclass(frozen=True)
class Event:
    """One state change or alarm of one layer."""

    kind: EventKind
    layer: int
    scan: int
    state: DriftState
    message: str
    age_s: float | None = None

    @property
    def severity(self) -> int:
        return SEVERITY[self.kind]
