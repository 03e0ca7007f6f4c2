"""One SQLite file for the server: the compensator's state, restored at start, and a history of values.

Three tables. ``state`` holds the JSON of the newest few saved states of each
network (the server's runtime state, :meth:`Runtime.state_dict
<plc_anna.server.runtime.Runtime.state_dict>`), each with the network's name,
the scan number and wall time it was saved at; ``history`` holds historized
values as ``(time_s, name, JSON value)`` rows, pruned to a retention window;
``counters`` holds named integers that must survive any crash (the commit
counters' reservations, :meth:`StateStore.save_counter`).
The file is marked as plc-anna's with ``PRAGMA application_id`` and carries
its schema version in ``PRAGMA user_version``; any other file is refused,
never overwritten.

Schema 2 added ``counters``, schema 3 the network's name to ``state``. An
older store is upgraded when opened, in one transaction: the states of a
store of schema 1 or 2 (one network, no name) become those of the unnamed
network ``""``, which is the key a single-network server keeps its state
under, so its state loads as before.

Durability: a kill -9 at any moment loses at most the transaction in flight
and never leaves a corrupt store. The journal is a write-ahead log (WAL): a
commit appends checksummed frames ending with a commit frame to ``-wal``;
recovery uses only the frames up to the last complete commit (a torn tail is
ignored), and a checkpoint resets the log only after the database is synced
(one cut short is redone). A killed process loses nothing its ``write()``
calls handed to the kernel, so with WAL even ``synchronous=NORMAL`` keeps
every committed transaction across a kill -9; only power loss or a kernel
crash needs fsync. Hence :meth:`StateStore.save_state` commits with ``FULL``
(the WAL is fsynced before it returns: a saved state survives a power cut)
and :meth:`StateStore.append_history`, called every scan, with ``NORMAL``
(no fsync per scan; a power cut may roll the history back to the last state
save or checkpoint, consistent still). ``tests/server/test_store.py`` checks
the kill -9 claim with SIGKILL.

Calls are serialized by a lock, so the server may use the store from an
executor thread as well as from its event loop (one call at a time).
"""

from __future__ import annotations

import json
import logging
import math
import operator
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

#: ``PRAGMA application_id`` of a plc-anna store (ASCII "plca").
APPLICATION_ID = 0x706C6361
#: ``PRAGMA user_version`` of the schema this module writes and reads.
SCHEMA_VERSION = 3
#: :meth:`StateStore.append_history` applies the retention at most this often, in its ``time_s``.
RETENTION_INTERVAL_S = 60.0

_MAGIC = b"SQLite format 3\x00"
_TABLES = ("counters", "history", "state")
_COUNTERS = "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
_SCHEMA = (
    "CREATE TABLE state (id INTEGER PRIMARY KEY, scan INTEGER NOT NULL, wall_time_s REAL NOT NULL, "
    "data TEXT NOT NULL, network TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX state_by_network ON state (network, id)",
    "CREATE TABLE history (time_s REAL NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL)",
    "CREATE INDEX history_by_name ON history (name, time_s)",
    "CREATE INDEX history_by_time ON history (time_s)",
    _COUNTERS,
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
#: The states of an older store (one network's) become those of the network "".
_NAMED_STATES = (
    "ALTER TABLE state ADD COLUMN network TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX state_by_network ON state (network, id)",
)
#: The tables of the schema versions a store is upgraded from, and the upgrades to this version.
_OLD_TABLES = {1: ("history", "state"), 2: ("counters", "history", "state")}
_UPGRADES = {0: _SCHEMA,
             1: (*_NAMED_STATES, _COUNTERS, f"PRAGMA user_version = {SCHEMA_VERSION}"),
             2: (*_NAMED_STATES, f"PRAGMA user_version = {SCHEMA_VERSION}")}


class SavedState(NamedTuple):
    """A state as saved: the scan number and wall time of the save, and the state itself."""

    scan: int
    wall_time_s: float
    state: dict


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def _encode(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), default=_plain)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} cannot be stored as JSON: {exc}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a finite number")


def _finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


def _open(path: Path) -> sqlite3.Connection:
    """Connect to ``path``, refusing anything but a plc-anna store or a new or empty file."""
    if path.exists() and not path.is_file():
        raise ValueError(f"the state store {path} is not a regular file")
    if not path.parent.is_dir():
        raise ValueError(f"cannot create the state store {path}: directory {path.parent} does not exist")
    head = b""
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(len(_MAGIC))
    if head and head != _MAGIC:
        raise ValueError(f"{path} is not a SQLite database: refusing to use it as a state store (left unchanged)")
    try:
        conn = sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ValueError(f"cannot open the state store {path}: {exc}") from None
    try:
        version = _check_schema(conn, path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise ValueError(f"{path}: the file system does not support a WAL journal (got {mode!r})")
        if version != SCHEMA_VERSION:  # create or upgrade the schema in one transaction
            conn.execute("BEGIN IMMEDIATE")
            version = _check_schema(conn, path)  # another process may have done it meanwhile
            for statement in _UPGRADES.get(version, ()):
                conn.execute(statement)
            conn.execute("COMMIT")
            if version in _OLD_TABLES:
                logger.info("%s: upgraded the store from schema %d to %d (states keyed by network)",
                            path, version, SCHEMA_VERSION)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ValueError(f"{path} is not a usable SQLite database: {exc} (left unchanged)") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _check_schema(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of a plc-anna store (this one, or an older one to upgrade), 0 for an empty database;
    ValueError for anything else."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = sorted(row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    if app_id == APPLICATION_ID and version in _OLD_TABLES and tables == list(_OLD_TABLES[version]):
        return version
    if app_id == APPLICATION_ID and version != SCHEMA_VERSION:
        raise ValueError(f"{path} is a plc-anna store of schema version {version}; this plc-anna reads "
                         f"versions {', '.join(map(str, _OLD_TABLES))} and {SCHEMA_VERSION} (left unchanged)")
    if app_id == APPLICATION_ID and tables == list(_TABLES):
        return version
    if app_id == 0 and version == 0 and not tables:
        return 0
    raise ValueError(f"{path} is a SQLite database of another application or schema (application_id "
                     f"{app_id}, user_version {version}, tables {tables}): refusing to use it (left unchanged)")


class StateStore:
    """One SQLite file: the compensator's state (restored at start) and a history of values.

    Parameters
    ----------
    path
        The database file; created with the schema if missing or empty.
    retention_s
        History older than this (in the ``time_s`` of :meth:`append_history`) is deleted.
    keep_states
        How many saved states to keep: the newest and its predecessors, for
        :meth:`load_state` to fall back on.

    Raises
    ------
    ValueError
        If ``path`` is not a SQLite database, is one of another application or
        schema version (the file is left untouched), or cannot be created.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with StateStore(os.path.join(tmp, "plc-anna.db")) as store:
    ...         store.save_state({"format_version": 1, "layers": []}, scan=7)
    ...         store.append_history(10.0, {"layer1.LayerDistance": 0.02, "layer1.Gain": [1.0, 0.98]})
    ...         print(store.load_state_entry().scan, store.load_state(), store.read_history("layer1.Gain"))
    7 {'format_version': 1, 'layers': []} [(10.0, [1.0, 0.98])]
    """

    def __init__(self, path: str | Path, retention_s: float = 30 * 86400.0, keep_states: int = 3) -> None:
        self.path = Path(path)
        if not float(retention_s) > 0:
            raise ValueError(f"retention_s must be positive, got {retention_s}")
        if operator.index(keep_states) < 1:
            raise ValueError(f"keep_states must be at least 1, got {keep_states}")
        self.retention_s, self.keep_states = float(retention_s), int(keep_states)
        self._lock = threading.Lock()
        self._sync: str | None = None
        self._last_retention_s: float | None = None
        self._conn: sqlite3.Connection | None = _open(self.path)

    def close(self) -> None:
        """Close the file (idempotent); further calls raise ValueError."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError(f"the state store {self.path} is closed")
        return self._conn

    @contextmanager
    def _write(self, synchronous: str) -> Iterator[sqlite3.Connection]:
        """One write transaction committed with ``synchronous`` (FULL or NORMAL); rolled back on error."""
        with self._lock:
            conn = self._connection()
            if synchronous != self._sync:  # cannot change inside a transaction
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                self._sync = synchronous
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def save_state(self, state: dict, scan: int, network: str = "") -> None:
        """Save ``state`` as ``network``'s newest, dropping all but its newest :attr:`keep_states`, in one
        transaction; the other networks' states are untouched.

        ``state`` is JSON-ready data (:meth:`Compensator.state_dict`; numpy
        arrays and scalars are converted), ``scan`` the scan it belongs to,
        ``network`` the network's name (``""``: the one network of a
        single-network server). ValueError, with nothing written, if ``state``
        is not a dict or holds NaN, Inf or a value JSON cannot represent.
        """
        if not isinstance(state, dict):
            raise ValueError(f"a state must be a dict, got {type(state).__name__}")
        if not isinstance(network, str):
            raise ValueError(f"a network's name must be a string, got {network!r}")
        scan = operator.index(scan)
        data = _encode(state, f"the state of scan {scan}")
        with self._write("FULL") as conn:
            conn.execute("INSERT INTO state (scan, wall_time_s, data, network) VALUES (?, ?, ?, ?)",
                         (scan, time.time(), data, network))
            conn.execute("DELETE FROM state WHERE network = ? AND id NOT IN "
                         "(SELECT id FROM state WHERE network = ? ORDER BY id DESC LIMIT ?)",
                         (network, network, self.keep_states))

    def load_state_entry(self, network: str = "") -> SavedState | None:
        """``network``'s newest readable saved state with its scan and wall time; None if it has none.

        An unreadable row (not a JSON object) is skipped, with a logged
        warning, in favour of the one saved before it.
        """
        with self._lock:
            rows = self._connection().execute(
                "SELECT id, scan, wall_time_s, data FROM state WHERE network = ? ORDER BY id DESC",
                (network,)).fetchall()
        for row_id, scan, wall_time_s, data in rows:
            try:
                state = json.loads(data, parse_constant=_reject_constant)
                if not isinstance(state, dict):
                    raise ValueError(f"a JSON {type(state).__name__}, not an object")
            except (TypeError, ValueError) as exc:
                logger.warning("%s: the state saved for scan %s (row %s) is unreadable (%s); "
                               "falling back to the one before", self.path, scan, row_id, exc)
                continue
            return SavedState(int(scan), float(wall_time_s), state)
        if rows:
            logger.warning("%s: none of the %d saved states is readable", self.path, len(rows))
        return None

    def save_counter(self, name: str, value: int) -> None:
        """Store ``value`` as counter ``name`` durably: on disk (fsync) before this returns.

        For a value that must never go backwards across a crash, such as the
        end of the block of commit counters a server may hand out.
        """
        value = operator.index(value)
        if not isinstance(name, str) or not name:
            raise ValueError(f"a counter name must be a non-empty string, got {name!r}")
        with self._write("FULL") as conn:
            conn.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))

    def load_counter(self, name: str) -> int | None:
        """The counter ``name`` as last saved, or None if it never was."""
        with self._lock:
            row = self._connection().execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def load_state(self, network: str = "") -> dict | None:
        """``network``'s newest readable saved state (see :meth:`load_state_entry`); None if it has none."""
        entry = self.load_state_entry(network)
        return None if entry is None else entry.state

    def state_networks(self) -> list[str]:
        """The names of the networks with a saved state, sorted (``""``: a single-network server's)."""
        with self._lock:
            return [row[0] for row in self._connection().execute(
                "SELECT DISTINCT network FROM state ORDER BY network")]

    def append_history(self, time_s: float, values: Mapping[str, Any]) -> None:
        """Historize named values at ``time_s``, in one transaction.

        ``values`` maps names to any JSON-ready value (number, string, list
        or array of numbers), e.g. ``{"layer2.LayerDistance": 0.03,
        "layer2.Gain": gains}``; ``time_s`` stamps them all (seconds, e.g.
        Unix time). ValueError, with nothing written, for a non-finite
        ``time_s``, an empty or non-string name, or a value holding NaN or
        Inf. Applies the retention (:meth:`apply_retention`) in the same
        transaction when :data:`RETENTION_INTERVAL_S` of ``time_s`` has
        passed since it last ran.
        """
        time_s = _finite(time_s, "time_s")
        if not isinstance(values, Mapping):
            raise ValueError(f"values must map names to values, got {type(values).__name__}")
        rows = []
        for name, value in values.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"a history name must be a non-empty string, got {name!r}")
            rows.append((time_s, name, _encode(value, f"the history value {name!r}")))
        last = self._last_retention_s
        due = last is None or abs(time_s - last) >= RETENTION_INTERVAL_S
        if not rows and not due:
            return
        with self._write("NORMAL") as conn:
            if due:
                conn.execute("DELETE FROM history WHERE time_s < ?", (time_s - self.retention_s,))
            conn.executemany("INSERT INTO history (time_s, name, value) VALUES (?, ?, ?)", rows)
        if due:
            self._last_retention_s = time_s

    def read_history(self, name: str, start_s: float | None = None, end_s: float | None = None,
                     limit: int | None = None) -> list[tuple[float, Any]]:
        """The values of ``name`` as ``(time_s, value)`` in ascending time.

        Parameters
        ----------
        name
            A name given to :meth:`append_history`; an unknown one gives ``[]``.
        start_s, end_s
            Inclusive bounds on ``time_s``; None for open.
        limit
            At most this many values, the earliest first (a positive int), or None for all.
        """
        sql, args = "SELECT time_s, value FROM history WHERE name = ?", [name]
        if start_s is not None:
            sql, args = sql + " AND time_s >= ?", args + [_finite(start_s, "start_s")]
        if end_s is not None:
            sql, args = sql + " AND time_s <= ?", args + [_finite(end_s, "end_s")]
        sql += " ORDER BY time_s, rowid"
        if limit is not None:
            if operator.index(limit) < 1:
                raise ValueError(f"limit must be a positive int or None, got {limit}")
            sql, args = sql + " LIMIT ?", args + [int(limit)]
        with self._lock:
            rows = self._connection().execute(sql, args).fetchall()
        try:
            return [(t, json.loads(value)) for t, value in rows]
        except ValueError as exc:
            raise ValueError(f"{self.path}: a history value of {name!r} is unreadable: {exc}") from None

    def names(self) -> list[str]:
        """Every name in the history, sorted."""
        with self._lock:
            return [row[0] for row in self._connection().execute("SELECT DISTINCT name FROM history ORDER BY name")]

    def apply_retention(self, now_s: float) -> int:
        """Delete the history older than ``now_s - retention_s``; the number of rows deleted."""
        now_s = _finite(now_s, "now_s")
        with self._write("NORMAL") as conn:
            deleted = conn.execute("DELETE FROM history WHERE time_s < ?", (now_s - self.retention_s,)).rowcount
        self._last_retention_s = now_s
        return deleted
