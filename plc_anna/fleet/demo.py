"""``plc-anna demo --fleet``: three simulated lines, each a plc-anna server and Sparkplug edge node, a real
broker and the fleet host, in one command on loopback.

The lines are servers of simulated networks (``thermocouple`` on PCM, ``digits`` on PCM,
``thermocouple`` on HERMES-like devices) ageing fast (``age_rate``), each publishing as an edge
node of the group ``demo`` every 500 ms; the broker is Mosquitto when installed, else amqtt
(:class:`~plc_anna.sparkplug.broker.LocalBroker`); the fleet host follows the group and
historizes it into a temporary directory, which the demo removes at the end. ``on_rows`` gets the
fleet table's rows twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plc_anna.fleet.host import FleetHost
from plc_anna.fleet.store import FleetStore
from plc_anna.fleet.view import fleet_report, fleet_rows
from plc_anna.sparkplug.broker import LocalBroker
from plc_anna.sparkplug.mqtt import BrokerSettings

#: The demo's lines: edge node id, network, device preset, seed.
LINES = (("line1", "thermocouple", "pcm", 1), ("line2", "digits", "pcm", 2), ("line3", "thermocouple", "hermes", 3))
GROUP = "demo"
#: Simulated seconds of age per second: a year in about a minute.
AGE_RATE = 5e5


async def run_fleet_demo(duration_s: float = 60.0,
                         on_rows: Callable[[list[dict[str, Any]], FleetHost], None] | None = None,
                         on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the demo for ``duration_s`` seconds; the fleet report at the end."""
    from plc_anna.server.app import PlcAnnaServer
    from plc_anna.server.config import ServerConfig
    from plc_anna.testing import free_port

    say = on_phase or (lambda text: None)
    with tempfile.TemporaryDirectory(prefix="plc-anna-fleet-demo-") as tmp:
        directory = Path(tmp)
        async with LocalBroker(directory / "broker") as broker:
            say(f"broker: {broker.kind} on {broker.url}")
            store = FleetStore(directory / "fleet.sqlite")
            async with FleetHost(BrokerSettings(broker.url), group=GROUP, store=store) as host, \
                    contextlib.AsyncExitStack() as servers:
                for node_id, network, device, seed in LINES:
                    config = ServerConfig(
                        config_dir=directory / node_id, endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc-anna",
                        network=network, device=device, seed=seed, scan_ms=50, samples_per_scan=32,
                        age_rate=AGE_RATE, security={"policies": ["None"], "allow_anonymous": True},
                        sparkplug={"broker": broker.url, "group_id": GROUP, "edge_node_id": node_id,
                                   "publish_ms": 500, "commands": ["Calibrate", "Commit", "Rollback"]})
                    await servers.enter_async_context(PlcAnnaServer(config))
                    say(f"{node_id}: {network} on {device}, OPC UA {config.endpoint}, Sparkplug {GROUP}/{node_id}")
                start = time.monotonic()
                while time.monotonic() - start < duration_s:
                    if on_rows is not None:
                        on_rows(fleet_rows(host), host)
                    await asyncio.sleep(0.5)
                report = fleet_report(host)
            report["historized"] = sum(series["samples"] for series in store.series())
            store.close()
    return report
