"""The server's side of the PLC link: ControllerLink nodes, link events, and the link's own task.

The link runs as its own asyncio task, on the scan period but apart from the
scan task: a PLC that does not answer delays the write-back, never the
compensator. After each scan the server hands the compensator's correction of
every mapped layer to the link (:meth:`ControllerService.after_scan`); the
link writes it (batched, rate-limited, verified) and reports its state, which
the ControllerLink object shows: ``Protocol``, ``Endpoint``, ``Connected``,
``LastError``, ``CommitCounter`` (the last set the PLC holds, of the last
mapped layer) and ``Heartbeat``. Link events (lost, restored, a set the PLC
rejected, the PLC's own fault) are ``SystemEventType`` events from the Server
object with the ControllerLink as their source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from asyncua import Server, ua

from plc_anna.device.base import AnalogNetwork
from plc_anna.plc.link import LinkEvent, PlcLink
from plc_anna.contract.tagmap import TagMap
from plc_anna.server.nodes import AddressSpace
from plc_anna.server.runtime import Snapshot

logger = logging.getLogger(__name__)


class ControllerService:
    """Owns the :class:`PlcLink` of a running server.

    Parameters
    ----------
    tag_map
        The link's tag map.
    net
        The served network; when it observes its process through the PLC (``observes_process``)
        the link also reads its tags every cycle and feeds it.
    period_s
        The link's cycle period (the scan period).
    """

    def __init__(self, tag_map: TagMap, net: AnalogNetwork, period_s: float) -> None:
        observe = (net.observed_tags(), net.feed) if net.observes_process else None
        self.link = PlcLink(tag_map, on_event=self._queue_event, observe=observe)
        self.tag_map = tag_map
        self.period_s = period_s
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._events: asyncio.Queue[LinkEvent] = asyncio.Queue()
        self._shown: tuple | None = None
        self._generator = None
        self._server: Server | None = None
        self._space: AddressSpace | None = None
        #: Awaited with every link event after it is sent (the server's LinkLost alarm).
        self.on_link_event: Callable[[LinkEvent], Awaitable[None]] | None = None

    async def start(self, server: Server, space: AddressSpace) -> None:
        """Show the link's settings, prepare its events and start its task."""
        self._server, self._space = server, space
        members = space.link_members
        await members["Protocol"].write_value(self.tag_map.plc.protocol)
        await members["Endpoint"].write_value(self.tag_map.plc.endpoint)
        await members["Connected"].write_value(False)
        await members["LastError"].write_value("connecting")
        self._generator = await server.get_event_generator(ua.ObjectIds.SystemEventType, ua.ObjectIds.Server)
        self._generator.event.SourceNode = space.link.nodeid
        self._generator.event.SourceName = "ControllerLink"
        self._task = asyncio.create_task(self._run(), name="plc-anna-link")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    def after_scan(self, snapshot: Snapshot) -> None:
        """Hand the scan's corrections of the mapped layers to the link."""
        for layer in self.tag_map.layers:
            shown = snapshot.layers[layer.index]
            self.link.set_target(layer.index, shown.gain, shown.offset)

    async def _run(self) -> None:
        link_task = asyncio.create_task(self.link.run(self.period_s, self._stop))
        try:
            while not link_task.done():
                await self._show()
                await asyncio.sleep(min(self.period_s * 10, 0.25))
        finally:
            await link_task
            await self._show()

    async def _show(self) -> None:
        """Publish the link's state when it changed, and fire the queued events."""
        link = self.link
        last_index = max(layer.index for layer in self.tag_map.layers)
        counter = link.last_good(last_index)[2]
        shown = (link.connected, link.last_error, counter, link.heartbeat)
        if shown != self._shown:
            self._shown = shown
            now = datetime.now(UTC)
            write = self._server.iserver.aspace.write_attribute_value
            members = self._space.link_members
            for name, value, vtype in (("Connected", link.connected, ua.VariantType.Boolean),
                                       ("LastError", link.last_error, ua.VariantType.String),
                                       ("CommitCounter", counter, ua.VariantType.UInt32),
                                       ("Heartbeat", link.heartbeat, ua.VariantType.UInt32)):
                await write(members[name].nodeid, ua.AttributeIds.Value,
                            ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=now, ServerTimestamp=now))
        while not self._events.empty():
            event = self._events.get_nowait()
            self._generator.event.Severity = event.severity
            try:
                await self._generator.trigger(message=f"PLC link {event.kind}: {event.message}")
                if self.on_link_event is not None:
                    await self.on_link_event(event)
            except Exception:  # an event that cannot be sent must not stop the link
                logger.exception("could not send the link event %s", event.kind)

    def _queue_event(self, event: LinkEvent) -> None:
        log = logger.warning if event.severity >= 600 else logger.info
        log("PLC link %s: %s", event.kind, event.message)
        self._events.put_nowait(event)
