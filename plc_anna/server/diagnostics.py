"""The server's diagnostics: ServerDiagnosticsSummary counted and published, EnabledFlag on.

asyncua leaves ``Server.ServerDiagnostics`` empty. :class:`ServerDiagnostics`
counts what a plc-anna server can know and publishes it once a second (and on
:meth:`ServerDiagnostics.publish`):

=============================  ====================================================
CurrentSessionCount            sessions activated and not closed
CumulatedSessionCount          sessions created since the start
SecurityRejectedSessionCount   client certificates refused (trust list)
RejectedSessionCount           the above, plus refused logins and sessions over the cap
CurrentSubscriptionCount       subscriptions now
CumulatedSubscriptionCount     subscriptions created since the start
PublishingIntervalCount        distinct publishing intervals among them
SecurityRejectedRequestsCount  requests refused for the user's role
RejectedRequestsCount          the same (the server refuses requests for no other reason it counts)
=============================  ====================================================

``ServerViewCount``, ``SessionTimeoutCount`` and ``SessionAbortCount`` stay 0:
the server has no views, and asyncua does not tell a timed-out or aborted
session from a closed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asyncua import Server, ua

from plc_anna.server.endpoint import EndpointStats

logger = logging.getLogger(__name__)

PUBLISH_PERIOD_S = 1.0

_SUMMARY = ua.ObjectIds.Server_ServerDiagnostics_ServerDiagnosticsSummary


class ServerDiagnostics:
    """Counts sessions, subscriptions and refusals of one server and publishes the summary.

    Parameters
    ----------
    server
        The server (after ``init()``).
    endpoint
        The endpoint's counters (:class:`~plc_anna.server.endpoint.EndpointStats`).
    refusals
        Callables that return a count each: ``"certificates"`` (trust-list
        refusals), ``"logins"`` (refused user names and anonymous sessions) and
        ``"requests"`` (requests refused for the user's role).
    """

    def __init__(self, server: Server, endpoint: EndpointStats, refusals: dict[str, Any]) -> None:
        self.server = server
        self.endpoint = endpoint
        self.refusals = refusals
        self.subscriptions_created = 0
        self._task: asyncio.Task | None = None
        service = server.iserver.subscription_service
        create = service.create_subscription

        async def counted_create_subscription(*args: Any, **kwargs: Any) -> Any:
            result = await create(*args, **kwargs)
            self.subscriptions_created += 1
            return result

        service.create_subscription = counted_create_subscription

    def summary(self) -> ua.ServerDiagnosticsSummaryDataType:
        """The counts now."""
        subscriptions = list(self.server.iserver.subscription_service.subscriptions.values())
        intervals = {sub.data.RevisedPublishingInterval for sub in subscriptions}
        certificates, logins, requests = (int(self.refusals[key]()) for key in ("certificates", "logins", "requests"))
        return ua.ServerDiagnosticsSummaryDataType(
            ServerViewCount=0, CurrentSessionCount=self.endpoint.active_sessions,
            CumulatedSessionCount=self.endpoint.sessions_created, SecurityRejectedSessionCount=certificates,
            RejectedSessionCount=certificates + logins + self.endpoint.sessions_refused, SessionTimeoutCount=0,
            SessionAbortCount=0, CurrentSubscriptionCount=len(subscriptions),
            CumulatedSubscriptionCount=self.subscriptions_created, PublishingIntervalCount=len(intervals),
            SecurityRejectedRequestsCount=requests, RejectedRequestsCount=requests)

    async def publish(self) -> None:
        """Write the summary, and each count to its own variable."""
        summary = self.summary()
        write = self.server.iserver.aspace.write_attribute_value
        value = ua.AttributeIds.Value
        await write(ua.NodeId(_SUMMARY), value, ua.DataValue(ua.Variant(summary, ua.VariantType.ExtensionObject)))
        for name in summary.__dataclass_fields__:
            nodeid = ua.NodeId(getattr(ua.ObjectIds, f"Server_ServerDiagnostics_ServerDiagnosticsSummary_{name}"))
            await write(nodeid, value, ua.DataValue(ua.Variant(getattr(summary, name), ua.VariantType.UInt32)))

    async def start(self) -> None:
        """Turn diagnostics on (EnabledFlag) and publish the summary every :data:`PUBLISH_PERIOD_S`."""
        await self.server.get_node(ua.NodeId(ua.ObjectIds.Server_ServerDiagnostics_EnabledFlag)).write_value(
            ua.Variant(True, ua.VariantType.Boolean))
        await self.publish()
        self._task = asyncio.create_task(self._run(), name="plc-anna diagnostics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_PERIOD_S)
            try:
                await self.publish()
            except Exception:  # diagnostics must never stop the server
                logger.exception("could not publish the server diagnostics")
