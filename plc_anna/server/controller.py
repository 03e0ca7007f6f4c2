"""The server's side of a network's PLC link: its ControllerLink object and its events.

The link itself runs in the scan engine, beside the network's scan
(:mod:`plc_anna.engine.link`): a PLC that does not answer delays the
write-back, never the compensator, and clients of the OPC UA server delay
neither. Every scan report carries the link's state
(:class:`~plc_anna.plc.link_status.LinkStatus`) and the events it raised;
:class:`ControllerService` shows them: ``Protocol``, ``Endpoint``,
``Connected``, ``LastError``, ``CommitCounter`` (the last set the PLC holds,
of the last mapped layer) and ``Heartbeat`` on the ControllerLink object, and
link events (lost, restored, a set the PLC rejected, the PLC's own fault) as
``SystemEventType`` events from the Server object with the ControllerLink as
their source.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from asyncua import Server, ua

from plc_anna.contract.tagmap import TagMap
from plc_anna.plc.link_status import LinkEvent, LinkStatus
from plc_anna.server.nodes import AddressSpace

logger = logging.getLogger(__name__)


class ControllerService:
    """A network's PLC link as the server shows it; :attr:`status` is the link's newest state.

    Parameters
    ----------
    tag_map
        The link's tag map.
    """

    def __init__(self, tag_map: TagMap) -> None:
        self.tag_map = tag_map
        #: The link's state at the newest report (None before the first).
        self.status: LinkStatus | None = None
        self._shown: tuple | None = None
        self._generator = None
        self._server: Server | None = None
        self._space: AddressSpace | None = None
        #: Awaited with every link event after it is sent (the server's LinkLost alarm).
        self.on_link_event: Callable[[LinkEvent], Awaitable[None]] | None = None

    @property
    def connected(self) -> bool:
        return self.status is not None and self.status.connected

    @property
    def last_error(self) -> str:
        return "connecting" if self.status is None else self.status.last_error

    async def start(self, server: Server, space: AddressSpace) -> None:
        """Show the link's settings and prepare its events."""
        self._server, self._space = server, space
        members = space.link_members
        await members["Protocol"].write_value(self.tag_map.plc.protocol)
        await members["Endpoint"].write_value(self.tag_map.plc.endpoint)
        await members["Connected"].write_value(False)
        await members["LastError"].write_value("connecting")
        self._generator = await server.get_event_generator(ua.ObjectIds.SystemEventType, ua.ObjectIds.Server)

    async def show(self, status: LinkStatus | None, events: tuple[LinkEvent, ...]) -> None:
        """Publish the link's state when it changed, and fire its events."""
        if status is not None:
            self.status = status
            shown = (status.connected, status.last_error, status.commit_counter, status.heartbeat)
            if shown != self._shown:
                self._shown = shown
                now = datetime.now(UTC)
                write = self._server.iserver.aspace.write_attribute_value
                members = self._space.link_members
                for name, value, vtype in (("Connected", status.connected, ua.VariantType.Boolean),
                                           ("LastError", status.last_error, ua.VariantType.String),
                                           ("CommitCounter", status.commit_counter, ua.VariantType.UInt32),
                                           ("Heartbeat", status.heartbeat, ua.VariantType.UInt32)):
                    await write(members[name].nodeid, ua.AttributeIds.Value,
                                ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=now, ServerTimestamp=now))
        for event in events:
            generator = self._generator
            generator.event.SourceNode = self._space.link.nodeid
            generator.event.SourceName = f"{self._space.prefix}ControllerLink"
            generator.event.Severity = event.severity
            try:
                await generator.trigger(message=f"PLC link {event.kind}: {event.message}")
                if self.on_link_event is not None:
                    await self.on_link_event(event)
            except Exception:  # an event that cannot be sent must not stop publishing
                logger.exception("could not send the link event %s", event.kind)
