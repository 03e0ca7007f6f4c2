"""The SQLite store: states and history survive restarts and kill -9; foreign files are never touched."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from plc_anna.compensator import Compensator, CompensatorConfig
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.drift.states import DriftState
from plc_anna.server.store import APPLICATION_ID, SCHEMA_VERSION, StateStore


@pytest.fixture(scope="module")
def compensator():
    """The digits network's compensator after 300 scans: calibrated, fingerprints and all."""
    sim = SimulatedNetwork("digits", "pcm", seed=0)
    comp = Compensator.for_network(sim.network, CompensatorConfig(), converters=sim.converters())
    rng = np.random.default_rng(0)
    for _ in range(300):
        traces = sim.trace(sim.network.X[rng.integers(0, len(sim.network.X), 64)])
        comp.update([(t.inputs, t.outputs) for t in traces])
    assert comp.states == [DriftState.NOMINAL, DriftState.NOMINAL]
    return comp


def raw(path: Path, sql: str, args=()) -> list[tuple]:
    """Run SQL on the file behind the store's back."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_realistic_state_round_trips_through_a_reopened_store(tmp_path, compensator):
    state = compensator.state_dict()
    with StateStore(tmp_path / "s.db") as store:
        assert store.load_state() is None and store.load_state_entry() is None
        before = time.time()
        store.save_state(state, scan=300)
    with StateStore(tmp_path / "s.db") as store:
        entry = store.load_state_entry()
    assert entry.scan == 300 and before <= entry.wall_time_s <= time.time()
    assert entry.state == json.loads(json.dumps(state))
    fresh = Compensator.for_network(SimulatedNetwork("digits", "pcm", seed=0).network, CompensatorConfig())
    fresh.load_state_dict(entry.state)
    assert fresh.states == compensator.states
    for old, new in zip(compensator.layers, fresh.layers):
        np.testing.assert_array_equal(new.correction()[0], old.correction()[0])
        np.testing.assert_array_equal(new.fingerprint.weights, old.fingerprint.weights)


def test_numpy_values_are_stored_as_plain_json(tmp_path):
    with StateStore(tmp_path / "s.db") as store:
        store.save_state({"gain": np.array([1.0, 2.0]), "n": np.int64(3)}, scan=np.int64(1))
        store.append_history(1.0, {"gain": np.array([1.5, 0.5]), "count": np.uint32(7)})
        assert store.load_state() == {"gain": [1.0, 2.0], "n": 3}
        assert store.read_history("gain") == [(1.0, [1.5, 0.5])]
        assert store.read_history("count") == [(1.0, 7)]


def test_only_the_newest_states_are_kept(tmp_path):
    with StateStore(tmp_path / "s.db", keep_states=3) as store:
        for scan in range(1, 6):
            store.save_state({"scan": scan}, scan)
        assert store.load_state_entry().scan == 5
    assert raw(tmp_path / "s.db", "SELECT scan FROM state ORDER BY id") == [(3,), (4,), (5,)]
    with pytest.raises(ValueError, match="keep_states"):
        StateStore(tmp_path / "s.db", keep_states=0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.array([1.0, np.nan]), object()])
def test_a_state_json_cannot_hold_is_refused_and_nothing_written(tmp_path, bad):
    with StateStore(tmp_path / "s.db") as store:
        store.save_state({"gain": [1.0]}, scan=1)
        with pytest.raises(ValueError, match="scan 2"):
            store.save_state({"gain": [1.0], "offset": bad}, scan=2)
        with pytest.raises(ValueError, match="must be a dict"):
            store.save_state([1.0], scan=2)
        assert store.load_state_entry().scan == 1
    assert raw(tmp_path / "s.db", "SELECT scan FROM state") == [(1,)]


def test_a_corrupt_newest_state_falls_back_to_the_previous_one(tmp_path, caplog):
    with StateStore(tmp_path / "s.db") as store:
        store.save_state({"scan": 1}, 1)
        store.save_state({"scan": 2}, 2)
    for corrupt in ('{"scan": 3, "gain": [1.0, 2', "[1, 2]", '{"gain": NaN}'):
        raw(tmp_path / "s.db", "INSERT INTO state (scan, wall_time_s, data) VALUES (3, 0, ?)", (corrupt,))
    with StateStore(tmp_path / "s.db") as store, caplog.at_level(logging.WARNING, "plc_anna.server.store"):
        assert store.load_state() == {"scan": 2}
    assert len(caplog.records) == 3 and "s.db" in caplog.records[0].getMessage()
    assert "scan 3" in caplog.records[0].getMessage()


def test_history_append_read_filter_limit_and_names(tmp_path):
    with StateStore(tmp_path / "h.db") as store:
        assert store.names() == [] and store.read_history("x") == []
        for t in (3.0, 1.0, 2.0, 4.0):  # out of order on purpose
            store.append_history(t, {"layer2.LayerDistance": t / 10, "layer2.Gain": [1.0, t],
                                     "layer2.DriftState": int(DriftState.NOMINAL), "note": f"t={t:g}"})
        store.append_history(5.0, {"layer2.LayerDistance": 0.5})
        assert store.names() == ["layer2.DriftState", "layer2.Gain", "layer2.LayerDistance", "note"]
        assert store.read_history("layer2.LayerDistance") == [(t, t / 10) for t in (1.0, 2.0, 3.0, 4.0, 5.0)]
        assert store.read_history("layer2.Gain", start_s=2.0, end_s=3.0) == [(2.0, [1.0, 2.0]), (3.0, [1.0, 3.0])]
        assert store.read_history("layer2.Gain", start_s=3.5) == [(4.0, [1.0, 4.0])]
        assert store.read_history("layer2.Gain", end_s=1.5) == [(1.0, [1.0, 1.0])]
        assert store.read_history("layer2.LayerDistance", start_s=2.0, limit=2) == [(2.0, 0.2), (3.0, 0.3)]
        assert store.read_history("layer2.DriftState", limit=1) == [(1.0, 1)]
        assert store.read_history("note", start_s=4.0) == [(4.0, "t=4")]
        with pytest.raises(ValueError, match="limit"):
            store.read_history("note", limit=0)


def test_a_bad_history_batch_is_refused_whole(tmp_path):
    with StateStore(tmp_path / "h.db") as store:
        for bad in ({"a": 1.0, "b": [1.0, math.nan]}, {"a": 1.0, "": 2.0}, {"a": 1.0, 3: 2.0}, {"a": object()}):
            with pytest.raises(ValueError):
                store.append_history(1.0, bad)
        with pytest.raises(ValueError, match="time_s"):
            store.append_history(math.nan, {"a": 1.0})
        assert store.names() == []


def test_retention_deletes_old_rows_only(tmp_path):
    with StateStore(tmp_path / "h.db", retention_s=100.0) as store:
        for t in range(190, -10, -10):  # newest first: the automatic retention finds nothing to delete
            store.append_history(float(t), {"a": t, "b": -t})
        assert store.apply_retention(150.0) == 2 * 5  # t = 0 .. 40 are older than 50
        assert [t for t, _ in store.read_history("a")] == list(range(50, 200, 10))  # 50 itself is kept
        assert store.apply_retention(150.0) == 0
        assert store.read_history("b")[0] == (50.0, -50)


def test_append_history_applies_the_retention_at_most_once_a_minute(tmp_path):
    with StateStore(tmp_path / "h.db", retention_s=10.0) as store:
        for t in (0.0, 5.0, 30.0, 59.0):  # the first call runs the retention; the next minute does not
            store.append_history(t, {"a": t})
        assert len(store.read_history("a")) == 4
        store.append_history(61.0, {"a": 61.0})  # 61 s after the last run: deletes everything before 51
        assert store.read_history("a") == [(59.0, 59.0), (61.0, 61.0)]


def test_reopening_keeps_states_and_history(tmp_path):
    with StateStore(tmp_path / "s.db") as store:
        store.save_state({"k": "v"}, 41)
        store.append_history(1.0, {"a": [1.0, 2.0]})
    with StateStore(tmp_path / "s.db") as store:
        assert store.load_state_entry()[:1] == (41,) and store.load_state() == {"k": "v"}
        assert store.read_history("a") == [(1.0, [1.0, 2.0])]
        store.save_state({"k": "w"}, 42)
    assert raw(tmp_path / "s.db", "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert raw(tmp_path / "s.db", "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert raw(tmp_path / "s.db", "PRAGMA journal_mode") == [("wal",)]


def test_counters_are_durable_and_a_version_1_store_is_upgraded_in_place(tmp_path):
    path = tmp_path / "v1.db"  # a store as schema version 1 wrote it: no counters table
    for statement in ("CREATE TABLE state (id INTEGER PRIMARY KEY, scan INTEGER NOT NULL, wall_time_s REAL NOT "
                      "NULL, data TEXT NOT NULL)",
                      "CREATE TABLE history (time_s REAL NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL)",
                      "INSERT INTO state (scan, wall_time_s, data) VALUES (9, 1.0, '{\"k\": 1}')",
                      f"PRAGMA application_id = {APPLICATION_ID}", "PRAGMA user_version = 1"):
        raw(path, statement)
    with StateStore(path) as store:
        assert store.load_state_entry()[:1] == (9,) and store.load_state() == {"k": 1}  # nothing lost
        assert store.load_counter("commit_counter") is None
        store.save_counter("commit_counter", 1000)
        store.save_counter("commit_counter", 2000)
        with pytest.raises(ValueError, match="counter name"):
            store.save_counter("", 1)
    assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(3,)]
    with StateStore(path) as store:
        assert store.load_counter("commit_counter") == 2000


def test_an_empty_file_becomes_a_store(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")
    with StateStore(tmp_path / "empty.db") as store:
        store.save_state({}, 0)
        assert store.load_state() == {}


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("setpoints: 42\n" * 20)
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"notes\.db is not a SQLite database"):
        StateStore(path)
    assert _snapshot(tmp_path) == before
    with pytest.raises(ValueError, match="not a regular file"):
        StateStore(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        StateStore(tmp_path / "missing" / "s.db")


def test_a_foreign_sqlite_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "mes.db"
    raw(path, "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    raw(path, "INSERT INTO orders (item) VALUES ('valve')")
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"mes\.db is a SQLite database of another application.*orders"):
        StateStore(path)
    assert path.read_bytes() == before
    assert raw(path, "SELECT item FROM orders") == [("valve",)]


def test_a_store_of_another_schema_version_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "s.db"
    with StateStore(path) as store:
        store.save_state({"k": 1}, 1)
    raw(path, "PRAGMA user_version = 99")
    raw(path, "PRAGMA wal_checkpoint(TRUNCATE)")
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"s\.db is a plc-anna store of schema version 99; this plc-anna reads "
                                         r"versions 1, 2 and 3"):
        StateStore(path)
    assert path.read_bytes() == before


#: The schema 1 store, as plc-anna wrote it before states were keyed by network.
SCHEMA_1 = (
    "CREATE TABLE state (id INTEGER PRIMARY KEY, scan INTEGER NOT NULL, wall_time_s REAL NOT NULL, "
    "data TEXT NOT NULL)",
    "CREATE TABLE history (time_s REAL NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL)",
    "CREATE INDEX history_by_name ON history (name, time_s)",
    "CREATE INDEX history_by_time ON history (time_s)",
    f"PRAGMA application_id = {APPLICATION_ID}",
    "PRAGMA user_version = 1",
)


def test_a_store_of_schema_1_is_upgraded_and_its_state_loads_as_the_single_networks(tmp_path):
    path = tmp_path / "old.sqlite"
    for statement in SCHEMA_1:
        raw(path, statement)
    raw(path, "INSERT INTO state (scan, wall_time_s, data) VALUES (?, ?, ?)", (41, 1.0, json.dumps({"old": 1})))
    raw(path, "INSERT INTO state (scan, wall_time_s, data) VALUES (?, ?, ?)", (42, 2.0, json.dumps({"old": 2})))
    raw(path, "INSERT INTO history VALUES (?, ?, ?)", (2.0, "Layer1.Gain", "[1.0]"))
    with StateStore(path) as store:
        entry = store.load_state_entry()
        assert (entry.scan, entry.state) == (42, {"old": 2})
        assert store.state_networks() == [""] and store.load_state("line1") is None
        assert store.read_history("Layer1.Gain") == [(2.0, [1.0])]
        store.save_state({"new": 1}, 7, network="line1")
    assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    with StateStore(path) as store:  # upgraded once; reopening changes nothing
        assert store.load_state() == {"old": 2} and store.load_state("line1") == {"new": 1}


def test_a_store_of_schema_2_keeps_its_state_and_its_counters(tmp_path):
    """Schema 2 (counters, states of one network) gains the network's name; nothing saved is lost."""
    path = tmp_path / "v2.sqlite"
    for statement in (*SCHEMA_1[:-1], "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
                      "PRAGMA user_version = 2"):
        raw(path, statement)
    raw(path, "INSERT INTO state (scan, wall_time_s, data) VALUES (?, ?, ?)", (5, 1.0, json.dumps({"k": 5})))
    raw(path, "INSERT INTO counters VALUES ('commit_counter', 3000)")
    with StateStore(path) as store:
        assert store.load_state_entry()[:1] == (5,) and store.load_state() == {"k": 5}
        assert store.load_counter("commit_counter") == 3000 and store.state_networks() == [""]
    assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(3,)]


def test_each_network_keeps_its_own_states(tmp_path):
    with StateStore(tmp_path / "s.db", keep_states=2) as store:
        for scan in range(1, 6):
            store.save_state({"scan": scan}, scan, network="line1")
        store.save_state({"chip": 1}, 9, network="chip")
        assert store.state_networks() == ["chip", "line1"]
        assert store.load_state_entry("line1").scan == 5 and store.load_state("chip") == {"chip": 1}
        assert store.load_state() is None
    # keep_states applies per network: line1's saves never pushed chip's state out
    assert sorted(raw(tmp_path / "s.db", "SELECT network, scan FROM state")) == [("chip", 9), ("line1", 4),
                                                                                  ("line1", 5)]
    with pytest.raises(ValueError, match="name must be a string"), StateStore(tmp_path / "s.db") as store:
        store.save_state({}, 1, network=None)


def test_a_closed_store_says_so(tmp_path):
    store = StateStore(tmp_path / "s.db")
    store.close()
    store.close()
    with pytest.raises(ValueError, match="closed"):
        store.load_state()
    with pytest.raises(ValueError, match="closed"):
        store.save_state({}, 1)
    with pytest.raises(ValueError, match="retention_s"):
        StateStore(tmp_path / "t.db", retention_s=0.0)


# The writer that is killed: resumes from the stored scan, then historizes and saves as fast as it can,
# printing each scan number once save_state has returned (committed).
WRITER = r"""
import json, sys
from plc_anna.server.store import StateStore
path, payload = sys.argv[1], json.load(open(sys.argv[2]))
with StateStore(path, retention_s=300.0) as store:
    entry = store.load_state_entry()
    scan = 0 if entry is None else entry.scan
    print("ready", scan, flush=True)
    while True:
        scan += 1
        store.append_history(float(scan), {"scan": scan, "gain": [scan + i / 64 for i in range(64)]})
        store.save_state(dict(payload, scan=scan), scan)
        print(scan, flush=True)
"""


def _run_and_kill(path: Path, payload: Path, out: Path, delay_s: float, after_ready: bool) -> list[str]:
    """Start the writer, SIGKILL it ``delay_s`` after it is ready (or after its start); its complete lines."""
    with open(out, "wb") as stdout, open(out.with_suffix(".err"), "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(payload)], stdout=stdout,
                                stderr=stderr)
    try:
        deadline = time.monotonic() + 10.0
        while after_ready and not out.read_bytes().startswith(b"ready"):
            assert proc.poll() is None and time.monotonic() < deadline, out.with_suffix(".err").read_text()
            time.sleep(0.005)
        time.sleep(delay_s)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, out.with_suffix(".err").read_text()
    return out.read_text().split("\n")[:-1]  # a line cut by the kill has no newline: not reported


def test_kill_9_loses_at_most_the_scan_in_flight_and_never_corrupts(tmp_path, compensator):
    payload = tmp_path / "payload.json"
    base = compensator.state_dict()  # about 170 kB of JSON: each save spans dozens of pages
    payload.write_text(json.dumps(base))
    path, rng, stats = tmp_path / "killed.db", random.Random(20240611), []
    # Round 0 kills during start-up (import, creating the file); the others mid-loop.
    for round_ in range(6):
        lines = _run_and_kill(path, payload, tmp_path / f"out{round_}.txt", rng.uniform(0.05, 0.35) if round_
                              else rng.uniform(0.0, 0.3), after_ready=round_ > 0)
        assert raw(path, "PRAGMA integrity_check") == [("ok",)]
        with StateStore(path, retention_s=300.0) as store:
            entry = store.load_state_entry()
            if not lines or len(lines) == 1:  # killed before its first reported save
                assert round_ == 0 or entry is not None
                reported = int(lines[0].split()[1]) if lines else 0
            else:
                reported = int(lines[-1])
                assert [int(x) for x in lines[1:]] == list(range(int(lines[0].split()[1]) + 1, reported + 1))
            scan = 0 if entry is None else entry.scan
            assert reported <= scan <= reported + 1  # no committed scan lost; one more if killed before print
            if entry is not None:
                assert entry.state == dict(json.loads(json.dumps(base)), scan=scan)  # whole, not torn
                history = store.read_history("scan")
                assert history[-1][1] in (scan, scan + 1)  # historized just before the save
                assert [t for t, _ in history] == sorted(t for t, _ in history)
                assert history[0][0] >= history[-1][0] - 300.0 - 60.0  # retention ran
                assert store.read_history("gain")[-1][1] == [history[-1][1] + i / 64 for i in range(64)]
            store.save_state(dict(base, scan=scan), scan)  # and a new save works
            assert store.load_state_entry().scan == scan
        stats.append((round_, len(lines) - 1 if lines else 0, scan, scan - reported))
    print("\nkill rounds (round, scans reported, stored scan, committed but unreported):", stats)
    assert sum(n for _, n, _, _ in stats[1:]) >= 10  # the kills did land mid-loop
