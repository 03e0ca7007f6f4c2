"""One network of a running server: its nodes, its newest scan, its commands, its history and saves.

:class:`ServedNetwork` is what :attr:`PlcAnnaServer.networks
<plc_anna.server.app.PlcAnnaServer.networks>` maps each name to. Its public
surface (``name``, ``latest``, ``stats``, ``link``, ``command``) is what a
client of the server inside the process uses (a Sparkplug B edge node, the
demo); reading it never waits for a scan. The server's publisher calls
:meth:`ServedNetwork.publish` with each report the network's scan handed over:
it writes the nodes, fires the events, keeps the network's alarms in step
(:class:`~plc_anna.server.alarms.NetworkAlarms`), writes the history when due
and hands a state to save to the store's thread.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from asyncua import Server, ua

from plc_anna.drift.states import Event
from plc_anna.engine.host import EngineHost
from plc_anna.engine.scan import COMMANDS, ScanReport
from plc_anna.engine.task import CycleStats
from plc_anna.server import nodes as ua_nodes
from plc_anna.server.alarms import NetworkAlarms
from plc_anna.server.controller import ControllerService
from plc_anna.server.runtime import Snapshot
from plc_anna.server.store import StateStore

logger = logging.getLogger(__name__)

HISTORIZED = ("LayerDistance", "DriftState", "Gain", "Offset")
HISTORY_TYPES = {"LayerDistance": ua.VariantType.Double, "DriftState": ua.VariantType.Int32,
                 "Gain": ua.VariantType.Double, "Offset": ua.VariantType.Double}


class Publishing:
    """What every network's publishing shares: the server, its drift events' generator, the store and its thread."""

    def __init__(self, server: Server, store: StateStore, store_thread: ThreadPoolExecutor, history_period_s: float,
                 drift_events: Any) -> None:
        self.server, self.store, self.store_thread = server, store, store_thread
        self.history_period_s = history_period_s
        self.drift_events = drift_events
        #: The publishing interval now (s): the configured one, or coarser while publishing is slow.
        self.interval_s = math.nan


class ServedNetwork:
    """A network of the server (see the module docstring).

    Parameters
    ----------
    name
        The network's name (its ``[[networks]]`` entry, or the single network's).
    store_key
        The key of its state in the store (``""`` for a single-network server).
    space
        Its nodes.
    host
        The engine that scans it.
    alarms
        Its alarms (Fault, Saturated, Maintenance per layer; link lost; scan overrun).
    link
        Its PLC link's view, or None without a link.

    Its history names are ``Layer<i>.<node>`` (``Layer1.Gain``), prefixed ``Networks.<name>.`` on a server of
    several networks.
    """

    def __init__(self, name: str, store_key: str, space: ua_nodes.AddressSpace, host: EngineHost,
                 alarms: NetworkAlarms, link: ControllerService | None = None) -> None:
        self.name, self.store_key, self.space, self.host = name, store_key, space, host
        self.alarms, self.link = alarms, link
        #: The scan the state restored at start came from (None: started afresh).
        self.restored_scan: int | None = None
        #: Scans whose values were never published (publishing took the newer one).
        self.publish_dropped = 0
        self._latest: Snapshot | None = None
        self._stats = CycleStats()
        self._overruns_alarmed = 0
        self._last_history = -math.inf

    # ------------------------------------------------------------ public
    @property
    def latest(self) -> Snapshot | None:
        """The newest published scan (None before the first)."""
        return self._latest

    @property
    def stats(self) -> CycleStats:
        """The scan's cycle statistics at the newest published scan."""
        return self._stats

    async def command(self, name: str, *args: Any) -> None:
        """Run ``name`` between the network's scans: ``calibrate``, ``commit``, ``rollback``, ``reset_reference``
        (the OPC UA methods), or the writes' and the test rig's (:data:`~plc_anna.engine.scan.COMMANDS`).

        The state is saved right after it. ValueError if the command refuses its arguments (nothing changed).
        """
        if name not in COMMANDS:
            raise ValueError(f"unknown command {name!r}; valid: {', '.join(COMMANDS)}")
        await self.host.command(self.name, name, *args)

    # ------------------------------------------------------------ publishing
    async def publish(self, report: ScanReport, publishing: Publishing) -> None:
        """Show one report: nodes, link, events, overrun alarm; history and state to the store's thread."""
        snapshot = report.snapshot
        self._latest, self._stats = snapshot, report.stats
        self.publish_dropped += report.dropped
        await ua_nodes.publish(publishing.server, self.space, snapshot, report.stats, linked=self.link is not None,
                               publishing=(1e3 * publishing.interval_s, self.publish_dropped))
        if self.link is not None:
            await self.link.show(report.link, report.link_events)
        for event in snapshot.events:
            await self._fire(event, publishing)
        if report.stats.overruns > self._overruns_alarmed:
            self._overruns_alarmed = report.stats.overruns
            await self.alarms.overrun(report.stats.overruns, report.stats.period_ms)
        await self.alarms.after_scan(snapshot)
        now = time.monotonic()
        history = None
        if snapshot.events or now - self._last_history >= publishing.history_period_s:
            self._last_history = now
            history = {f"{self.space.prefix}Layer{layer.index}.{name}": value for layer in snapshot.layers
                       for name, value in (("LayerDistance", layer.layer_distance), ("DriftState", int(layer.state)),
                                           ("Gain", layer.gain), ("Offset", layer.offset))
                       if not (name == "LayerDistance" and not np.isfinite(value))}
        if report.state is not None or history is not None:
            publishing.store_thread.submit(self._persist, publishing.store, report.state, snapshot.scan, history)

    def historized(self) -> dict:
        """The nodes with history: node -> (history name, VariantType)."""
        return {layer.members[name]: (f"{self.space.prefix}Layer{layer.index}.{name}", HISTORY_TYPES[name])
                for layer in self.space.layers for name in HISTORIZED}

    def _persist(self, store: StateStore, state: dict | None, scan: int, history: dict | None) -> None:
        try:
            if history:
                store.append_history(time.time(), history)
            if state is not None:
                store.save_state(state, scan, network=self.store_key)
        except Exception:  # a full disk must not stop the scan; the log says what failed
            logger.exception("could not write %s to the state store %s", self.name, store.path)

    async def _fire(self, event: Event, publishing: Publishing) -> None:
        generator = publishing.drift_events
        generator.event.SourceNode = self.space.layers[event.layer].object.nodeid
        generator.event.SourceName = f"{self.space.prefix}Layer{event.layer}"
        generator.event.Layer = ua.Variant(event.layer, ua.VariantType.UInt32)
        generator.event.DriftState = ua.Variant(int(event.state), ua.VariantType.Int32)
        generator.event.Kind = ua.Variant(event.kind.value, ua.VariantType.String)
        generator.event.Severity = event.severity
        await generator.trigger(message=f"{self.space.prefix}Layer{event.layer} {event.kind.value}: {event.message}")
