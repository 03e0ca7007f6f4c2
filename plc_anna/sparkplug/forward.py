"""Store-and-forward bookkeeping of an edge node: what waits on disk, and what may have been lost in flight.

DDATA go out at QoS 0 (Sparkplug requires it), so what was sent just before
a connection broke may have been lost with it, and the node learns of the
break only later (at once when the broker closes the socket, after up to 1.5
keepalives when the network vanishes). :class:`Forwarder` therefore keeps
what went out live during the last ``loss_window_s`` (:meth:`Forwarder.sent`)
and hands it back to be stored again when the connection is lost
(:meth:`Forwarder.in_flight`); a stored row that was replayed leaves the file
only once the connection outlived its loss window (:meth:`Forwarder.confirm`),
or at a clean disconnect (:meth:`Forwarder.confirm_all`). Delivery is at least
once: a host may receive a point twice, never zero times.

The file is a :class:`~plc_anna.sparkplug.spool.Spool`; its calls run on the
edge node's worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from plc_anna.sparkplug.spool import Spool


class Forwarder:
    """The store-and-forward state of one edge node (see the module docstring)."""

    def __init__(self, path: Path, max_bytes: int, loss_window_s: float, worker: ThreadPoolExecutor) -> None:
        self.path, self.max_bytes, self.loss_window_s = path, max_bytes, loss_window_s
        self.spool: Spool | None = None
        self._worker = worker
        self._recent: deque[tuple[float, str, int, dict[str, Any]]] = deque()
        self._unconfirmed: deque[tuple[float, int]] = deque()

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def open(self) -> None:
        """Open (or create) the file; ValueError for a file that is not a spool."""
        self.spool = await self._run(Spool, self.path, self.max_bytes)

    async def close(self) -> None:
        if self.spool is not None:
            await self._run(self.spool.close)

    async def next_bd_seq(self) -> int:
        return await self._run(self.spool.next_bd_seq)

    def sent(self, device: str, timestamp: int, values: dict[str, Any]) -> None:
        """Live data of ``device`` (DDATA or DBIRTH values) went out now."""
        self._recent.append((time.monotonic(), device, timestamp, values))

    def replayed(self, row_id: int) -> None:
        """The stored row ``row_id`` went out now."""
        self._unconfirmed.append((time.monotonic(), row_id))

    def in_flight(self) -> list[tuple[str, int, dict[str, Any]]]:
        """At a lost connection: the live data sent within the loss window, to store again.

        Replays not yet confirmed stay in the file and go out again at the next connection.
        """
        horizon = time.monotonic() - self.loss_window_s
        rows = [(device, t, values) for sent, device, t, values in self._recent if sent >= horizon]
        self._recent.clear()
        self._unconfirmed.clear()
        return rows

    async def store(self, rows: list[tuple[str, int, bytes]]) -> None:
        """Write ``(device, time_ms, payload)`` rows to the file."""
        if rows:
            await self._run(self.spool.append, rows)

    async def batch(self, after: int, limit: int = 64) -> list[tuple[int, str, int, bytes]]:
        """The oldest stored rows after id ``after``."""
        return await self._run(self.spool.oldest, limit, after)

    async def forget(self, ids: list[int]) -> None:
        """Remove rows that can never be delivered (their network is no longer served)."""
        if ids:
            await self._run(self.spool.remove, ids)

    async def confirm(self) -> None:
        """On a connection that is still up: forget what the loss window has passed."""
        horizon = time.monotonic() - self.loss_window_s
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        ids = []
        while self._unconfirmed and self._unconfirmed[0][0] < horizon:
            ids.append(self._unconfirmed.popleft()[1])
        await self.forget(ids)

    async def confirm_all(self) -> None:
        """After a clean disconnect everything sent before it reached the broker."""
        ids = [row_id for _, row_id in self._unconfirmed]
        self._unconfirmed.clear()
        self._recent.clear()
        await self.forget(ids)
