"""One network's scan: reports, commands between cycles, and when the state is taken for the store."""

from __future__ import annotations

import dataclasses
import types

import pytest

from plc_anna.compensator import CompensatorConfig
from plc_anna.drift.states import DriftState, Event, EventKind
from plc_anna.engine import scan as scan_module
from plc_anna.engine.scan import STATE_PERIOD_S, STATE_SHARE, NetworkScan, NetworkSpec

FAST = CompensatorConfig(calibration_samples=256, estimate_samples=128, holdout_samples=64)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clocked(linear_net, monkeypatch):
    """A network's scan (not started: the test runs its cycles) on a clock the test moves."""
    clock = Clock()
    monkeypatch.setattr(scan_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    reports = []
    scan = NetworkScan(NetworkSpec(name="line1", network=linear_net, compensator=FAST, age_rate=0.0), reports.append)
    return scan, clock, reports


def _with_events(scan: NetworkScan, scans_with_events: set[int]):
    """Let the runtime's scans ``scans_with_events`` (1, 2, ...) raise an event."""
    step = scan.runtime.step

    def stepped():
        snapshot = step()
        if snapshot.scan in scans_with_events:
            event = Event(EventKind.CALIBRATED, 0, snapshot.scan, DriftState.NOMINAL, "test")
            snapshot = dataclasses.replace(snapshot, events=(event,))
        return snapshot

    scan.runtime.step = stepped


def test_a_scan_with_an_event_is_saved_and_quiet_scans_once_a_period(clocked):
    scan, clock, reports = clocked
    _with_events(scan, {2})
    for _ in range(4):
        scan._cycle()
        clock.now += 0.01
    assert [r.state is not None for r in reports] == [True, True, False, False]  # the first save, the event
    assert reports[1].snapshot.events and reports[1].state["scan"] == 2
    clock.now += STATE_PERIOD_S
    scan._cycle()
    assert reports[-1].state is not None                                          # once a period anyway


def test_a_costly_state_is_taken_less_often_but_never_dropped(clocked):
    scan, clock, reports = clocked
    state_dict = scan.runtime.state_dict

    def costly():
        clock.now += 0.5            # taking this network's state costs half a second of the scan's time
        return state_dict()

    scan.runtime.state_dict = costly
    _with_events(scan, {1, 2, 3})
    for _ in range(3):
        scan._cycle()
        clock.now += 0.1
    assert [r.state is not None for r in reports] == [True, False, False]   # the events of scans 2, 3 wait
    quiet = 0
    while reports[-1].state is None:
        scan._cycle()
        clock.now += 0.1
        quiet += 1
    # ... until the saves have taken at most STATE_SHARE of the time since the last one: then the next scan
    # takes the state, events or not.
    assert reports[-1].state is not None and reports[-1].state["scan"] == reports[-1].snapshot.scan
    assert 0.5 / STATE_SHARE - 1 <= 0.1 * (quiet + 2) <= 0.5 / STATE_SHARE + 1


def test_a_command_runs_between_cycles_and_is_saved_at_once(clocked):
    scan, clock, reports = clocked
    scan._cycle()
    future = scan.command("set_age", (3600.0,))
    assert not future.done()                 # queued: it runs between cycles, on the scan's thread
    scan._between()
    assert future.result() is None and reports[-1].snapshot.age_s == 3600.0 and reports[-1].state is not None
    refused = scan.command("set_age", (float("nan"),))
    scan._between()
    with pytest.raises(ValueError, match="finite"):
        refused.result()
    with pytest.raises(ValueError, match="unknown command"):
        scan.command("format_disk").result()
