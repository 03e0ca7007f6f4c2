"""The store-and-forward file: bounded, bdSeq kept across restarts, other files refused."""

from __future__ import annotations

import sqlite3

import pytest

from plc_anna.sparkplug.spool import Spool


def test_the_oldest_rows_go_when_the_store_is_full(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", max_bytes=1000)
    spool.append([("net0", t, bytes(100)) for t in range(8)])
    assert len(spool) == 8 and spool.dropped == 0
    spool.append([("net0", t, bytes(100)) for t in range(8, 12)])
    assert len(spool) == 10 and spool.dropped == 2 and spool.bytes == 1000
    rows = spool.oldest(3)
    assert [r[2] for r in rows] == [2, 3, 4]
    spool.remove([r[0] for r in rows])
    assert len(spool) == 7 and spool.bytes == 700
    spool.close()
    again = Spool(tmp_path / "s.sqlite", max_bytes=1000)
    assert len(again) == 7 and again.bytes == 700 and again.oldest(1)[0][2] == 5  # kept on disk
    again.close()


def test_bdseq_counts_on_across_restarts_and_wraps(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", max_bytes=1000)
    assert [spool.next_bd_seq() for _ in range(3)] == [0, 1, 2]
    spool.close()
    spool = Spool(tmp_path / "s.sqlite", max_bytes=1000)
    assert spool.next_bd_seq() == 3
    assert [spool.next_bd_seq() for _ in range(252)][-1] == 255
    assert spool.next_bd_seq() == 0
    spool.close()


def test_another_file_is_refused_and_left_alone(tmp_path):
    other = tmp_path / "state.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE state (x)")
    before = other.read_bytes()
    with pytest.raises(ValueError, match="not a store-and-forward file"):
        Spool(other, 1000)
    assert other.read_bytes() == before
