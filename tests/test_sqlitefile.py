"""Marked SQLite files: created with their mark, reopened, and any other file refused untouched."""

from __future__ import annotations

import sqlite3

import pytest

from plc_anna.sqlitefile import open_marked

SCHEMA = ("CREATE TABLE IF NOT EXISTS t (x)",)


def test_a_marked_file_is_created_and_reopened_and_another_is_refused(tmp_path):
    path = tmp_path / "a.sqlite"
    db = open_marked(path, 0x1234, 3, SCHEMA, {"t"}, "a test file")
    assert db.execute("PRAGMA application_id").fetchone()[0] == 0x1234
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    db.close()
    open_marked(path, 0x1234, 3, SCHEMA, {"t"}, "a test file", readonly=True).close()
    with pytest.raises(ValueError, match="is not another kind"):
        open_marked(path, 0x9999, 1, SCHEMA, {"t"}, "another kind")
    other = tmp_path / "b.sqlite"
    with sqlite3.connect(other) as plain:
        plain.execute("CREATE TABLE t (x)")
    before = other.read_bytes()
    with pytest.raises(ValueError, match="left untouched"):
        open_marked(other, 0x1234, 3, SCHEMA, {"t"}, "a test file")
    assert other.read_bytes() == before
