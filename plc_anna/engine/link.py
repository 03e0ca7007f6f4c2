"""The PLC links of the engine: one asyncio loop on a thread of its own, one :class:`PlcLink` per network.

The link is the scan's I/O, so it runs beside the scans, apart from serving:
its heartbeat keeps its deadlines however many OPC UA clients the server has.
After each scan the network's scan hands the compensator's corrections to the
link (:meth:`LinkRunner.after_scan`, thread-safe); the link writes them
(batched, rate-limited, verified) on its own deadlines. A PLC-observed
network gets its samples from the link's reads (``observe``) on the same
loop. What the link knows and the events it raised leave with every scan
report (:meth:`LinkRunner.status`, :meth:`LinkRunner.take_events`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

from plc_anna.contract.tagmap import TagMap
from plc_anna.device.base import AnalogNetwork
from plc_anna.engine.task import set_thread_priority
from plc_anna.plc.link import PlcLink
from plc_anna.plc.link_status import LinkEvent, LinkStatus

logger = logging.getLogger(__name__)


class LinkLoop:
    """An asyncio event loop on its own thread, for the engine's PLC links."""

    def __init__(self, priority: int = 0) -> None:
        self.loop = asyncio.new_event_loop()
        self.priority = priority
        self._thread = threading.Thread(target=self._run, name="plc-anna-links", daemon=True)

    def _run(self) -> None:
        scheduling = set_thread_priority(self.priority)
        if self.priority > 0 and not scheduling.startswith("fifo"):
            logger.warning("the PLC links run at normal priority: %s", scheduling)
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()

    def submit(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 10.0) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


class LinkRunner:
    """One network's :class:`PlcLink`, run on a :class:`LinkLoop`.

    Parameters
    ----------
    tag_map
        The link's tag map.
    net
        The network; when it observes its process through the PLC the link feeds it every cycle.
    period_s
        The link's cycle period (the network's scan period).
    """

    def __init__(self, tag_map: TagMap, net: AnalogNetwork, period_s: float) -> None:
        observe = (net.observed_tags(), net.feed) if net.observes_process else None
        self.tag_map = tag_map
        self.period_s = period_s
        self.link = PlcLink(tag_map, on_event=self._event, observe=observe)
        self._events: deque[LinkEvent] = deque()
        self._lock = threading.Lock()
        self._stop: asyncio.Event | None = None
        self._stopping = False
        self._done: Future | None = None
        self._loop: LinkLoop | None = None

    def start(self, loop: LinkLoop) -> None:
        self._loop = loop
        self._done = loop.submit(self._run())

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        if self._stopping:
            return
        await self.link.run(self.period_s, self._stop)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the link (it closes its connection) and wait for it."""
        self._stopping = True
        if self._loop is None or self._done is None:
            return

        def stop() -> None:
            if self._stop is not None:
                self._stop.set()

        self._loop.loop.call_soon_threadsafe(stop)
        try:
            self._done.result(timeout)
        except Exception:  # a link that failed to stop cleanly must not keep the engine from stopping
            logger.exception("the PLC link of %s did not stop cleanly", self.tag_map.plc.endpoint)

    def after_scan(self, corrections: list[tuple[Any, Any]]) -> None:
        """Hand the scan's (gain, offset) of every mapped layer to the link."""
        for layer in self.tag_map.layers:
            self.link.set_target(layer.index, *corrections[layer.index])

    def status(self) -> LinkStatus:
        return self.link.status()

    def take_events(self) -> tuple[LinkEvent, ...]:
        """The events the link raised since the last call."""
        with self._lock:
            events = tuple(self._events)
            self._events.clear()
        return events

    def _event(self, event: LinkEvent) -> None:
        log = logger.warning if event.severity >= 600 else logger.info
        log("PLC link %s: %s", event.kind, event.message)
        with self._lock:
            self._events.append(event)
