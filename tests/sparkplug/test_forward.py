"""Store-and-forward bookkeeping: what may have been lost in flight is stored again; replays leave once confirmed."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from plc_anna.sparkplug.forward import Forwarder


def test_in_flight_data_and_unconfirmed_replays(tmp_path):
    async def scenario():
        with ThreadPoolExecutor(1) as worker:
            forward = Forwarder(tmp_path / "s.sqlite", 10_000, loss_window_s=0.2, worker=worker)
            await forward.open()
            await forward.store([("net0", t, bytes(10)) for t in range(3)])
            rows = await forward.batch(after=0)
            for row_id, *_ in rows[:2]:
                forward.replayed(row_id)
            forward.sent("net0", 100, {"Age": 1.0})
            await asyncio.sleep(0.3)
            forward.sent("net0", 200, {"Age": 2.0})
            await forward.confirm()  # the first two replays and the first live point are past the window
            kept = [r[0] for r in await forward.batch(after=0)]
            forward.replayed(kept[0])
            lost = forward.in_flight()  # the connection breaks: only the recent live point comes back
            after_loss = [r[0] for r in await forward.batch(after=0)]
            await forward.close()
        return rows, kept, lost, after_loss

    rows, kept, lost, after_loss = run_in_loop(scenario)
    assert kept == [rows[2][0]]
    assert lost == [("net0", 200, {"Age": 2.0})]
    assert after_loss == kept  # the unconfirmed replay stays in the file, to go out again


def test_a_clean_disconnect_confirms_everything(tmp_path):
    async def scenario():
        with ThreadPoolExecutor(1) as worker:
            forward = Forwarder(tmp_path / "s.sqlite", 10_000, loss_window_s=60, worker=worker)
            await forward.open()
            await forward.store([("net0", 1, b"x"), ("net0", 2, b"y")])
            for row_id, *_ in await forward.batch(after=0):
                forward.replayed(row_id)
            forward.sent("net0", 3, {"Age": 1.0})
            await forward.confirm_all()
            left = await forward.batch(after=0)
            lost = forward.in_flight()
            await forward.close()
        return left, lost

    assert run_in_loop(scenario) == ([], [])


def run_in_loop(scenario):
    return asyncio.run(asyncio.wait_for(scenario(), 30))
