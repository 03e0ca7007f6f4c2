"""The fleet host's historian: every metric value of every network, in SQLite (the embedded default).

Two tables in plain SQL that PostgreSQL takes as well: ``metric`` names a
series (group, edge node, device, metric name) and ``sample`` holds its values
``(metric_id, time_ms, value, historical)`` with one row per (series, time):
a point that arrives twice (a replay after a lost connection, see
:mod:`plc_anna.sparkplug.edge`) is kept once. Numbers are stored as numbers,
strings as text, arrays as little-endian float64 blobs, nulls as NULL.
:class:`HistoryStore` is the surface a PostgreSQL store would implement.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np

from plc_anna.sqlitefile import open_marked

APPLICATION_ID = 0x706C6366  # "plcf"
SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS metric (id INTEGER PRIMARY KEY, group_id TEXT NOT NULL, node TEXT NOT NULL, "
    "device TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (group_id, node, device, name))",
    "CREATE TABLE IF NOT EXISTS sample (metric_id INTEGER NOT NULL REFERENCES metric (id), time_ms INTEGER NOT NULL, "
    "value, historical INTEGER NOT NULL, PRIMARY KEY (metric_id, time_ms))",
)


class Sample(NamedTuple):
    """One value of one metric as the host received it."""

    group_id: str
    node: str
    device: str
    name: str
    time_ms: int
    value: Any
    historical: bool


class HistoryStore(Protocol):
    """What the fleet host needs of a historian."""

    def append(self, samples: Sequence[Sample]) -> int:
        """Store ``samples``; the number that were new."""

    def series(self) -> list[dict[str, Any]]:
        """Every series with its sample count and time span."""

    def samples(self, node: str | None = None, device: str | None = None, name: str | None = None,
                since_ms: int | None = None, limit: int | None = None) -> list[Sample]:
        """Stored samples, oldest first."""

    def close(self) -> None: ...


class FleetStore:
    """The SQLite :class:`HistoryStore`; ValueError for a file that is not one (it is left untouched)."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str, str, str], int] = {}
        if readonly and not self.path.is_file():
            raise ValueError(f"no fleet history at {self.path}")
        self._db = open_marked(self.path, APPLICATION_ID, SCHEMA_VERSION, _SCHEMA, {"metric", "sample"},
                               "a fleet history of plc-anna", readonly=readonly)
        if readonly and not self._db.execute("SELECT name FROM sqlite_master WHERE name = 'sample'").fetchone():
            self._db.close()
            raise ValueError(f"{self.path} holds no fleet history yet")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(self, samples: Sequence[Sample]) -> int:
        if not samples:
            return 0
        with self._lock:
            self._db.execute("BEGIN")
            rows = [(self._metric_id(s), int(s.time_ms), _to_sql(s.value), int(bool(s.historical))) for s in samples]
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO sample (metric_id, time_ms, value, historical) "
                                 "VALUES (?, ?, ?, ?)", rows)
            new = self._db.total_changes - before
            self._db.execute("COMMIT")
            return new

    def _metric_id(self, sample: Sample) -> int:
        key = (sample.group_id, sample.node, sample.device, sample.name)
        metric_id = self._ids.get(key)
        if metric_id is None:
            self._db.execute("INSERT OR IGNORE INTO metric (group_id, node, device, name) VALUES (?, ?, ?, ?)", key)
            metric_id = self._db.execute("SELECT id FROM metric WHERE group_id = ? AND node = ? AND device = ? "
                                         "AND name = ?", key).fetchone()[0]
            self._ids[key] = metric_id
        return metric_id

    def series(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT m.group_id, m.node, m.device, m.name, COUNT(s.time_ms), MIN(s.time_ms), MAX(s.time_ms), "
                "SUM(s.historical) FROM metric m LEFT JOIN sample s ON s.metric_id = m.id "
                "GROUP BY m.id ORDER BY m.group_id, m.node, m.device, m.name").fetchall()
        return [{"group": g, "node": n, "network": d, "metric": name, "samples": count, "first_ms": first,
                 "last_ms": last, "historical": int(hist or 0)} for g, n, d, name, count, first, last, hist in rows]

    def samples(self, node: str | None = None, device: str | None = None, name: str | None = None,
                since_ms: int | None = None, limit: int | None = None) -> list[Sample]:
        where, args = [], []
        for column, value in (("m.node", node), ("m.device", device), ("m.name", name)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since_ms is not None:
            where.append("s.time_ms >= ?")
            args.append(int(since_ms))
        sql = ("SELECT m.group_id, m.node, m.device, m.name, s.time_ms, s.value, s.historical FROM sample s "
               "JOIN metric m ON m.id = s.metric_id" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY s.time_ms, m.id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Sample(g, n, d, name, t, _from_sql(v), bool(h)) for g, n, d, name, t, v, h in rows]


def _to_sql(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype="<f8").tobytes()
    if isinstance(value, bool):
        return int(value)
    return value


def _from_sql(value: Any) -> Any:
    if isinstance(value, bytes):
        return np.frombuffer(value, dtype="<f8").tolist()
    return value

