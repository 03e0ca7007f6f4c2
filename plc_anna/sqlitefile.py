"""SQLite files that say whose they are: opened only when they carry the expected ``application_id``.

The fleet's files (the edge node's store-and-forward file, the fleet host's
historian) mark themselves with ``PRAGMA application_id`` and
``PRAGMA user_version``. :func:`open_marked` refuses any other file, and a
file that is not SQLite at all, with a ValueError and without writing to it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path


def open_marked(path: Path, application_id: int, schema_version: int, schema: Iterable[str],
                tables: set[str], refusal: str, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating it unless ``readonly``) the file ``path`` marked with ``application_id``.

    ``tables`` are the tables it may hold; ``refusal`` completes the ValueError's
    message ("{path} is not {refusal}"). A new file gets ``schema``, WAL and
    ``synchronous=NORMAL``; an existing one is checked and left as it is.
    """
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    try:
        found = db.execute("PRAGMA application_id").fetchone()[0]
        present = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ValueError(f"{path} is not {refusal} ({exc}); it is left untouched") from None
    if present - tables - {"sqlite_sequence"} or (present and found != application_id):
        db.close()
        raise ValueError(f"{path} is not {refusal}; it is left untouched")
    if readonly:
        return db
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    for statement in schema:
        db.execute(statement)
    db.execute(f"PRAGMA application_id = {application_id}")
    db.execute(f"PRAGMA user_version = {schema_version}")
    return db
