"""What the edge node reads: one :class:`NetworkSource` per served network, and the server's adapter.

The edge node never calls into the scan: it reads :attr:`NetworkSource.latest`
(the newest published snapshot, a plain attribute read) on its own task and
sends commands through :meth:`NetworkSource.command`, the same path the OPC UA
methods take. :func:`server_networks` adapts a running
:class:`~plc_anna.server.app.PlcAnnaServer`: a many-network server exposes
``networks`` already; the single-network server is wrapped in
:class:`ServerNetwork`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from plc_anna.server.runtime import Snapshot
from plc_anna.server.scan import CycleStats

#: DCMD metric name (``Compensator/<name>``) to the command name :meth:`NetworkSource.command` takes.
COMMAND_NAMES = {"Calibrate": "calibrate", "Commit": "commit", "Rollback": "rollback",
                 "ResetReference": "reset_reference"}


@runtime_checkable
class NetworkSource(Protocol):
    """One served network as the edge node sees it."""

    @property
    def name(self) -> str: ...

    @property
    def latest(self) -> Snapshot | None:
        """The newest published snapshot, or None before the first scan; never blocks."""

    @property
    def stats(self) -> CycleStats | None:
        """The scan's cycle statistics, or None."""

    @property
    def link(self) -> Any | None:
        """The PLC link's service (``connected``, ``last_error`` on it or on its ``link``), or None."""

    async def command(self, name: str) -> None:
        """Run ``calibrate``, ``commit``, ``rollback`` or ``reset_reference`` between scans."""


class ServerNetwork:
    """The one network of a single-network :class:`~plc_anna.server.app.PlcAnnaServer` as a :class:`NetworkSource`."""

    def __init__(self, server: Any) -> None:
        self._server = server

    @property
    def name(self) -> str:
        return device_id(self._server.runtime.net.network.name)

    @property
    def latest(self) -> Snapshot | None:
        return self._server.latest

    @property
    def stats(self) -> CycleStats | None:
        scan = self._server.scan
        return None if scan is None else scan.stats

    @property
    def link(self) -> Any | None:
        return self._server.controller

    async def command(self, name: str) -> None:
        if name not in COMMAND_NAMES.values():
            raise ValueError(f"unknown command {name!r}; valid: {', '.join(COMMAND_NAMES.values())}")
        runtime = self._server.runtime
        await self._server.command(getattr(runtime, name))


def server_networks(server: Any) -> Mapping[str, NetworkSource]:
    """The networks a running server serves, by Sparkplug device id."""
    networks = getattr(server, "networks", None)
    if networks is not None:
        return {device_id(name): network for name, network in networks.items()}
    if server.runtime is None:
        return {}
    network = ServerNetwork(server)
    return {network.name: network}


def device_id(name: str) -> str:
    """A network name as a Sparkplug device id: ``/``, ``+``, ``#`` and spaces become ``_``."""
    return re.sub(r"[/+#\s]", "_", name) or "network"
