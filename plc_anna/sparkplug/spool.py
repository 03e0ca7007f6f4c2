"""Store-and-forward: the data an edge node could not publish, on disk until it can.

One SQLite file (``sparkplug.store``) with two tables: ``spool`` holds, per
device and time, the DDATA payload that could not go out (its metrics named
and marked ``is_historical``; the sequence number is set when it is replayed),
and ``meta`` the node's last bdSeq, so a restarted node goes on counting
where it stopped. The spool is bounded: past ``max_bytes`` of payload the
oldest rows are dropped and counted in :attr:`Spool.dropped` (logged).

Rows leave the spool only after they were published again and the connection
outlived the time in which a loss would have shown (the edge node decides), so
a node that is killed while it replays replays the rest at its next connection. Calls are
serialized by a lock; the edge node runs them on its own worker thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from plc_anna.sqlitefile import open_marked

logger = logging.getLogger(__name__)

#: ``PRAGMA application_id`` of a spool file (ASCII "plcs"); any other SQLite file is refused.
APPLICATION_ID = 0x706C6373
SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, "
    "time_ms INTEGER NOT NULL, payload BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)


class Spool:
    """The store-and-forward file of one edge node.

    Parameters
    ----------
    path
        The SQLite file (created if missing). ValueError if it is another kind of file.
    max_bytes
        The most payload bytes kept; beyond it the oldest rows go.
    """

    def __init__(self, path: str | Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.dropped = 0
        self._lock = threading.Lock()
        self._db = open_marked(self.path, APPLICATION_ID, SCHEMA_VERSION, _SCHEMA, {"spool", "meta"},
                               "a store-and-forward file of plc-anna (point sparkplug.store at another file)")
        self._bytes = int(self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM spool").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def bytes(self) -> int:
        """Payload bytes waiting."""
        return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def append(self, rows: list[tuple[str, int, bytes]]) -> None:
        """Store ``(device, time_ms, payload)`` rows; drop the oldest beyond :attr:`max_bytes`."""
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO spool (device, time_ms, payload) VALUES (?, ?, ?)", rows)
            self._bytes += sum(len(payload) for _, _, payload in rows)
            dropped = 0
            while self._bytes > self.max_bytes:
                oldest = self._db.execute("SELECT id, LENGTH(payload) FROM spool ORDER BY id LIMIT 256").fetchall()
                if not oldest:
                    break
                for row_id, size in oldest:
                    if self._bytes <= self.max_bytes:
                        break
                    self._db.execute("DELETE FROM spool WHERE id = ?", (row_id,))
                    self._bytes -= size
                    dropped += 1
            self._db.execute("COMMIT")
        if dropped:
            if self.dropped == 0 or (self.dropped + dropped) // 1000 > self.dropped // 1000:
                logger.warning("store-and-forward %s is full (%d bytes): dropped the %d oldest records "
                               "(%d so far)", self.path, self.max_bytes, dropped, self.dropped + dropped)
            self.dropped += dropped

    def oldest(self, limit: int = 64, after: int = 0) -> list[tuple[int, str, int, bytes]]:
        """Up to ``limit`` of the oldest rows with an id above ``after``, as ``(id, device, time_ms, payload)``."""
        with self._lock:
            return self._db.execute("SELECT id, device, time_ms, payload FROM spool WHERE id > ? ORDER BY id "
                                    "LIMIT ?", (after, limit)).fetchall()

    def remove(self, ids: list[int]) -> None:
        """Forget rows that were published."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN")
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                marks = ",".join("?" * len(part))
                size = self._db.execute(f"SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM spool WHERE id IN ({marks})",
                                        part).fetchone()[0]
                self._db.execute(f"DELETE FROM spool WHERE id IN ({marks})", part)
                self._bytes -= int(size)
            self._db.execute("COMMIT")

    def next_bd_seq(self) -> int:
        """The bdSeq of the next connection (0..255, then 0 again), remembered in the file."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'bd_seq'").fetchone()
            value = 0 if row is None else (int(row[0]) + 1) % 256
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('bd_seq', ?)", (value,))
            return value
