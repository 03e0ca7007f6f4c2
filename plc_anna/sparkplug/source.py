"""What the edge node reads: one :class:`NetworkSource` per served network, and the server's adapter.

The edge node never calls into the scan: it reads :attr:`NetworkSource.latest`
(the newest published snapshot, a plain attribute read) on its own task and
sends commands through :meth:`NetworkSource.command`, the same path the OPC UA
methods take. :func:`server_networks` takes them from a running
:class:`~plc_anna.server.app.PlcAnnaServer`, whose
:class:`~plc_anna.server.served.ServedNetwork` objects are sources as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from plc_anna.server.runtime import Snapshot
from plc_anna.engine.task import CycleStats

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


def server_networks(server: Any) -> Mapping[str, NetworkSource]:
    """The networks a running server serves, by Sparkplug device id."""
    return {device_id(name): network for name, network in server.networks.items()}


def device_id(name: str) -> str:
    """A network name as a Sparkplug device id: ``/``, ``+``, ``#`` and spaces become ``_``."""
    return re.sub(r"[/+#\s]", "_", name) or "network"
