"""The PLC link: writes each corrected layer's gain/offset set to the PLC, safely, every scan.

One :meth:`PlcLink.cycle` per scan:

1. **Connect** when not connected and the backoff allows (``reconnect_min_s``,
   doubling to ``reconnect_max_s``). After a (re)connect the link reads the
   PLC's ``AcceptedCommit``, ``GainSet`` and ``OffsetSet``: when the PLC still
   holds the link's last-good set (a communication restart) nothing is
   rewritten; when it does not (a cold restart, or the first start against a
   PLC that holds another set) the link adopts what the PLC applies as its
   ramp position, so writing resumes from there with no bump.
2. **Write** one batch: for a layer whose target moved more than ``deadband``
   from the last-good set, no sooner than ``min_commit_interval_s`` after the
   previous set and once the PLC accepted that one, a new set: ``GainSet``,
   ``OffsetSet`` and then ``CommitCounter + 1``; then the heartbeat of every
   mapped layer (every scan; :meth:`PlcLink.run` writes it on a task of its own
   instead, see below). The new set moves from the last-good set toward the
   target by at most ``max_gain_step``/``max_offset_step``, so the PLC never
   sees a jump the link's own ramp would not make.
3. **Read** once: the set written in the previous cycle back (``verify = true``;
   only a set read back equal becomes last-good; no new set for that layer
   until then), the PLC's ``AcceptedCommit``, ``PlcHeartbeat``, ``Status`` and
   ``Fault``, and the tags an observer asked for (a PLC-observed network's
   inputs and raw outputs). A cycle is one write and one read, so it stays
   short even when a set is large.

:meth:`PlcLink.run` writes the heartbeat on a task of its own, on absolute
deadlines (:meth:`PlcLink.beat`: one small write), and runs a set/status cycle
after each heartbeat: the heartbeat is the PLC's watchdog input, cyclic data
that must not wait behind a large set write or read-back (over Modbus a
256-output set is nine requests). A cycle that overruns skips scans; the
heartbeat goes on.

A lost connection holds the last-good set (the PLC's watchdog holds its applied
values), raises a ``link_lost`` :class:`LinkEvent` once and retries with
backoff; ``link_restored`` follows. The link never raises from :meth:`cycle`:
errors become events and :attr:`PlcLink.last_error`.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from plc_anna.deadlines import next_deadline
from plc_anna.contract.counters import next_beat, next_counter
from plc_anna.contract.ramp import ramp_position, ramp_step
from plc_anna.contract.tagmap import Tag, TagMap
from plc_anna.plc.link_status import LayerLink, LinkEvent, LinkStatus, check_layer_status
from plc_anna.plc.transport import LinkError, Transport, Unreachable, open_transport
from plc_anna.plc.transport.base import backoff_delays

__all__ = ["LinkEvent", "LinkStatus", "PlcLink"]


class PlcLink:
    """Write-back of gain/offset sets and the heartbeat to one PLC.

    Parameters
    ----------
    tag_map
        The tag map: the PLC, the ``[link]`` policy and the mapped layers.
    transport
        A transport to use instead of opening one from ``tag_map.plc`` (tests, benchmarks).
    on_event
        Called with each :class:`LinkEvent` (on the link's own task).
    observe
        Tags to read every cycle after the status tags, and the callback that gets their values and the
        read's duration in seconds (a PLC-observed network's inputs and raw outputs).
    plc_stall_s
        A PLC heartbeat unchanged this long means the PLC program is not running (``plc_stopped``).
    """

    def __init__(self, tag_map: TagMap, transport: Transport | None = None, *,
                 on_event: Callable[[LinkEvent], None] | None = None,
                 observe: tuple[Sequence[Tag], Callable[[list, float], None]] | None = None,
                 plc_stall_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.tag_map = tag_map
        self.settings = tag_map.link
        self.transport = transport if transport is not None else open_transport(tag_map.plc)
        self.on_event = on_event
        self.observe = observe
        self.plc_stall_s = float(plc_stall_s)
        self.clock = clock
        self.layers = {layer.index: LayerLink(layer, np.ones(layer.n_out, np.float32),
                                               np.zeros(layer.n_out, np.float32))
                       for layer in tag_map.layers}
        self.heartbeat = 0
        self.last_error = "not connected yet"
        self.link_lost_at: float | None = None
        self.reconnects = 0
        self.sets_written = 0
        self.missed_heartbeats = 0
        """Scans whose heartbeat was not written: not connected, the write failed, or its deadline passed."""
        self.late_cycles = 0
        """Scans whose set/status cycle :meth:`run` skipped because the previous cycle still ran."""
        self.write_s: deque[float] = deque(maxlen=100_000)
        """Duration of each batched write that carried a new set (gain, offset, counter; with :meth:`cycle`'s
        own heartbeat the heartbeats too), in seconds."""
        self.verify_s: deque[float] = deque(maxlen=100_000)
        """Duration of each cycle's read after a written set: its read-back with the status (one request)."""
        self.heartbeat_s: deque[float] = deque(maxlen=100_000)
        """Duration of each write that carried only heartbeats (:meth:`beat`, or a cycle without a set)."""
        self._lock = threading.Lock()
        self._delays = backoff_delays(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        self._next_attempt = -math.inf
        self._synced = False
        self._lost_reported = False
        self._last_refusal: str | None = None

    # ------------------------------------------------------------ public API
    @property
    def connected(self) -> bool:
        return self.transport.connected and self._synced

    def set_target(self, layer: int, gain: np.ndarray, offset: np.ndarray) -> None:
        """The correction the compensator wants the PLC to apply on ``layer`` (thread-safe)."""
        entry = self.layers.get(layer)
        if entry is None:
            raise ValueError(f"layer {layer} is not in the tag map (mapped: {', '.join(map(str, self.layers))})")
        gain, offset = np.asarray(gain, dtype=float), np.asarray(offset, dtype=float)
        n = entry.tags.n_out
        if gain.shape != (n,) or offset.shape != (n,):
            raise ValueError(f"layer {layer}: a set needs {n} gains and {n} offsets")
        if not (np.all(np.isfinite(gain)) and np.all(np.isfinite(offset))):
            raise ValueError(f"layer {layer}: a set with NaN or Inf is not written")
        with self._lock:
            entry.target = (gain.copy(), offset.copy())

    def status(self) -> LinkStatus:
        """The link's state now, as plain data (for the ControllerLink object, the demo, an edge node)."""
        last = max(self.layers)
        return LinkStatus(protocol=self.tag_map.plc.protocol, endpoint=self.tag_map.plc.endpoint,
                          connected=self.connected, last_error=self.last_error,
                          commit_counter=self.layers[last].counter, heartbeat=self.heartbeat,
                          missed_heartbeats=self.missed_heartbeats, late_cycles=self.late_cycles,
                          sets_written=self.sets_written, reconnects=self.reconnects)

    def last_good(self, layer: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The last set the PLC verifiably holds for ``layer``: (gain, offset, commit counter)."""
        entry = self.layers[layer]
        return entry.gain.copy(), entry.offset.copy(), entry.counter

    async def close(self) -> None:
        await self.transport.close()
        self._synced = False

    async def run(self, period_s: float, stop: asyncio.Event,
                  before_cycle: Callable[[], None] | None = None) -> None:
        """Scan every ``period_s`` until ``stop`` is set, then close the connection.

        The link first tries to connect (once; a PLC that does not answer is retried by the cycles). A
        heartbeat task writes the heartbeat on absolute deadlines (:meth:`beat`); a deadline it misses
        counts in :attr:`missed_heartbeats`. Each heartbeat written starts one set/status cycle
        (:meth:`cycle` without the heartbeat, after ``before_cycle()``), so a set write follows the
        heartbeat instead of sharing the connection with it. A cycle still running when the next
        heartbeat is written skips that scan's cycle (:attr:`late_cycles`); the heartbeat never waits.
        """
        tick = asyncio.Event()
        beats_written = 0
        if not self.connected:
            # Reach the PLC before the first heartbeat deadline: a schedule that started while the
            # connection was still being opened would count its first beats as missed.
            await self._connect(self.clock())

        async def heartbeat() -> None:
            nonlocal beats_written
            deadline = time.monotonic()
            try:
                while not stop.is_set():
                    await self.beat()
                    beats_written += 1
                    tick.set()
                    deadline, skipped = next_deadline(deadline, time.monotonic(), period_s)
                    self.missed_heartbeats += skipped
                    try:
                        await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.monotonic()))
                    except TimeoutError:
                        pass
            finally:
                tick.set()   # wakes the cycle loop to see the stop

        beats = asyncio.create_task(heartbeat())
        try:
            while True:
                await tick.wait()
                tick.clear()
                if stop.is_set() or beats.done():
                    break
                seen = beats_written
                if before_cycle is not None:
                    before_cycle()
                await self.cycle(heartbeat=False)
                if beats_written > seen:      # heartbeats written meanwhile: their scans' cycles are skipped
                    self.late_cycles += beats_written - seen
                    tick.clear()
                if stop.is_set() or beats.done():   # the tick just cleared may have been the stop's
                    break
            await beats
        finally:
            beats.cancel()
            await asyncio.gather(beats, return_exceptions=True)
            await self.close()

    async def beat(self) -> None:
        """Write every mapped layer's heartbeat, one small write; never raises. A beat that is not written
        (not connected, or the write failed) counts in :attr:`missed_heartbeats`; a lost connection is
        handled as in :meth:`cycle`."""
        now = self.clock()
        if not self.connected:
            self.missed_heartbeats += 1
            return
        items = self._heartbeats()
        start = time.perf_counter()
        try:
            await self.transport.write(items)
        except LinkError as exc:
            self.missed_heartbeats += 1
            self._failed(exc, now)
            return
        self.heartbeat_s.append(time.perf_counter() - start)

    async def cycle(self, heartbeat: bool = True) -> None:
        """One link scan (see the module docstring); never raises. ``heartbeat=False`` leaves the heartbeat
        out of the write (:meth:`run` writes it with :meth:`beat`); a cycle without a set then writes nothing."""
        now = self.clock()
        if not self.connected and (now < self._next_attempt or not await self._connect(now)):
            self.missed_heartbeats += heartbeat
            return
        try:
            # A set written in one cycle is read back in the next: each cycle is one write and one read,
            # never a write and a read-back of every array, so a cycle stays short.
            verifying = {index: entry.unverified for index, entry in self.layers.items()
                         if entry.unverified is not None}
            sets = await self._write(now, heartbeat)
            await self._read(now, verifying, sets)
        except LinkError as exc:
            self._failed(exc, now)

    def _failed(self, exc: LinkError, now: float) -> None:
        """A lost connection becomes link_lost; any other error is reported once until it changes."""
        if isinstance(exc, Unreachable):
            self._lost(exc, now)
            return
        self.last_error = str(exc)
        if str(exc) != self._last_refusal:
            self._last_refusal = str(exc)
            self._emit("write_refused", str(exc))

    # ------------------------------------------------------------ internals
    async def _connect(self, now: float) -> bool:
        try:
            await self.transport.connect()
            await self._sync()
        except LinkError as exc:
            await self.transport.close()
            self._lost(exc, now)
            return False
        self._next_attempt = -math.inf
        self._delays = backoff_delays(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        if self._lost_reported:
            down = now - (self.link_lost_at or now)
            self.reconnects += 1
            self._emit("link_restored", f"{self.transport.endpoint}: link restored after {down:.1f} s")
        self._lost_reported = False
        self.link_lost_at = None
        self.last_error = ""
        return True

    async def _sync(self) -> None:
        """Read what the PLC holds and make it the ramp position (no bump on start or after a restart).

        The next set continues from the PLC's ``CommitCounter``, the newest counter anyone wrote: a set
        written just before a crash and not yet taken keeps its counter to itself. Were the next set to
        reuse it, a PLC that took the old set meanwhile would see an unchanged counter and ignore the new
        one, while its read-back would say it arrived.
        """
        tags = [tag for entry in self.layers.values()
                for tag in (entry.tags.accepted_commit, entry.tags.commit_counter,
                            entry.tags.applied_gain or entry.tags.gain_set,
                            entry.tags.applied_offset or entry.tags.offset_set)]
        values = await self.transport.read(tags)
        now = self.clock()
        for k, entry in enumerate(self.layers.values()):
            accepted, written, gain, offset = values[4 * k: 4 * k + 4]
            held_gain, held_offset = ramp_position(entry.tags, accepted, gain, offset)
            with self._lock:
                entry.gain, entry.offset = held_gain, held_offset
                entry.counter, entry.sent = int(accepted), int(written)
                entry.unverified = None
                # a set in flight: wait for the PLC to take it (or for commit_timeout_s) before the next
                entry.pending_since = now if int(written) != int(accepted) else None
                entry.accepted = int(accepted)
        self._synced = True

    def _lost(self, exc: Exception, now: float) -> None:
        if self._lost_reported and now < self._next_attempt:
            return   # the other task (cycle or beat) saw the same loss: one backoff step, not two
        self._synced = False
        self.last_error = str(exc)
        self._next_attempt = now + next(self._delays)
        if not self._lost_reported:
            self._lost_reported = True
            self.link_lost_at = now
            self._emit("link_lost", f"{exc}; holding the last-good set, retrying")

    def _next_set(self, entry: LayerLink, now: float) -> tuple[np.ndarray, np.ndarray] | None:
        if entry.target is None:
            return None
        if entry.pending_since is not None:
            if now - entry.pending_since < self.settings.commit_timeout_s:
                return None
            self._emit("commit_timeout", f"the PLC did not accept set {entry.sent} within "
                       f"{self.settings.commit_timeout_s} s (AcceptedCommit {entry.accepted})", entry.tags.index)
            entry.pending_since = None
        if now - entry.last_commit < self.settings.min_commit_interval_s:
            return None
        with self._lock:
            target_gain, target_offset = entry.target
        gain = ramp_step(entry.gain, target_gain, self.settings.max_gain_step)
        offset = ramp_step(entry.offset, target_offset, self.settings.max_offset_step)
        moved = max(float(np.max(np.abs(gain - entry.gain), initial=0.0)),
                    float(np.max(np.abs(offset - entry.offset), initial=0.0)))
        return (gain, offset) if moved > self.settings.deadband else None

    def _heartbeats(self) -> list[tuple[Tag, int]]:
        """The next heartbeat for every mapped layer."""
        self.heartbeat = next_beat(self.heartbeat)
        return [(entry.tags.heartbeat, self.heartbeat) for entry in self.layers.values()]

    async def _write(self, now: float, heartbeat: bool) -> dict[int, tuple[np.ndarray, np.ndarray, int]]:
        """Write the new sets (and with ``heartbeat`` the heartbeats) as one batch; the sets written, by layer."""
        items: list[tuple[Tag, object]] = []
        sets = {}
        for index, entry in self.layers.items():
            new = None if entry.unverified is not None else self._next_set(entry, now)
            if new is not None:
                counter = next_counter(entry.sent)
                sets[index] = (*new, counter)
                items += [(entry.tags.gain_set, new[0]), (entry.tags.offset_set, new[1]),
                          (entry.tags.commit_counter, counter)]
        # The heartbeats last: in the OpenPLC layout they follow the counter, so a Modbus batch of one
        # layer is one ascending run of registers.
        if heartbeat:
            items += self._heartbeats()
        if not items:
            return sets
        start = time.perf_counter()
        try:
            await self.transport.write(items)
        except LinkError:
            self.missed_heartbeats += heartbeat
            raise
        (self.write_s if sets else self.heartbeat_s).append(time.perf_counter() - start)
        for index, (gain, offset, counter) in sets.items():
            entry = self.layers[index]
            entry.sent = counter
            entry.pending_since = entry.last_commit = now
            entry.unverified = (gain, offset, counter)
            self.sets_written += 1
        return sets

    async def _read(self, now: float, verifying: dict, written: dict) -> None:
        """One read of everything this cycle needs: the read-back of the sets written last cycle, every
        layer's status, and the observer's tags (a round trip per cycle, not three)."""
        check = verifying if self.settings.verify else {}
        verify = [tag for index in check for tag in (self.layers[index].tags.gain_set,
                                                      self.layers[index].tags.offset_set,
                                                      self.layers[index].tags.commit_counter)]
        status = [tag for entry in self.layers.values()
                  for tag in (entry.tags.accepted_commit, entry.tags.plc_heartbeat, entry.tags.status,
                              entry.tags.fault)]
        extra = list(self.observe[0]) if self.observe is not None else []
        start = time.perf_counter()
        values = await self.transport.read(verify + status + extra)
        if verify:
            self.verify_s.append(time.perf_counter() - start)
        failed = None
        for k, (index, (gain, offset, counter)) in enumerate(verifying.items()):
            entry = self.layers[index]
            entry.unverified = None
            if check:
                got_gain, got_offset, got_counter = values[3 * k: 3 * k + 3]
                if not (np.array_equal(np.asarray(got_gain, np.float32), gain)
                        and np.array_equal(np.asarray(got_offset, np.float32), offset) and got_counter == counter):
                    self._emit("verify_failed", f"layer {index}: the set read back differs from set {counter} "
                               "as written; the last-good set is kept", index)
                    failed = failed or LinkError(f"{self.transport.endpoint}: read-back of set {counter} on "
                                                 f"layer {index} differs")
                    continue
            entry.gain, entry.offset, entry.counter = gain, offset, counter
        if not self.settings.verify:    # nothing to read back: a set written is a set held
            for index, (gain, offset, counter) in written.items():
                entry = self.layers[index]
                entry.gain, entry.offset, entry.counter, entry.unverified = gain, offset, counter, None
        values = values[len(verify):]
        for k, entry in enumerate(self.layers.values()):
            accepted, beat, status_code, fault = values[4 * k: 4 * k + 4]
            if check_layer_status(entry, int(accepted), int(beat), int(status_code), bool(fault), now,
                                  self.plc_stall_s, self._emit):
                self._synced = False           # read the PLC's values again, and ramp from there
                self._next_attempt = -math.inf
        if self.observe is not None:
            # how long the read took tells the observer which trace rows may have been overwritten meanwhile
            self.observe[1](values[len(status):], time.perf_counter() - start)
        if failed is not None:
            raise failed

    def _emit(self, kind: str, message: str, layer: int | None = None) -> None:
        if self.on_event is not None:
            self.on_event(LinkEvent(kind, message, layer))

