"""The fleet historian: one row per (series, time), values as they were, other files refused."""

from __future__ import annotations

import sqlite3

import pytest

from plc_anna.fleet.store import FleetStore, Sample


def test_samples_round_trip_and_a_repeated_point_is_kept_once(tmp_path):
    store = FleetStore(tmp_path / "fleet.sqlite")
    rows = [Sample("g", "n", "d", "Layer0/Gain", 1000, [1.0, 0.5], False),
            Sample("g", "n", "d", "Age", 1000, 61.0, False), Sample("g", "n", "d", "Link/Connected", 1000, True, False),
            Sample("g", "n", "d", "RemainingLife", 1000, None, False),
            Sample("g", "n", "d", "Layer0/StateReason", 1000, "x", False)]
    assert store.append(rows) == 5
    assert store.append([rows[1]._replace(historical=True), rows[1]._replace(time_ms=2000, historical=True)]) == 1
    got = {(s.name, s.time_ms): s for s in store.samples()}
    assert got[("Layer0/Gain", 1000)].value == [1.0, 0.5] and got[("Age", 1000)].value == 61.0
    assert got[("Link/Connected", 1000)].value == 1 and got[("RemainingLife", 1000)].value is None
    assert got[("Age", 2000)].historical and not got[("Age", 1000)].historical
    assert [s.value for s in store.samples(name="Age", since_ms=1500)] == [61.0]
    series = {s["metric"]: s for s in store.series()}
    assert series["Age"]["samples"] == 2 and series["Age"]["historical"] == 1
    store.close()
    readonly = FleetStore(tmp_path / "fleet.sqlite", readonly=True)
    assert len(readonly.samples()) == 6
    readonly.close()


def test_other_files_are_refused_and_left_alone(tmp_path):
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE mine (x)")
    before = other.read_bytes()
    with pytest.raises(ValueError, match="not a fleet history"):
        FleetStore(other)
    assert other.read_bytes() == before
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="not a fleet history"):
        FleetStore(garbage)
    with pytest.raises(ValueError, match="no fleet history"):
        FleetStore(tmp_path / "missing.sqlite", readonly=True)
