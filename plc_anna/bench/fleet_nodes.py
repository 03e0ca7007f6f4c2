"""Edge nodes of synthetic networks in one process: the fleet benchmark's nodes, and the tests' node to kill.

``python -m plc_anna.bench.fleet_nodes SETTINGS.json`` runs one
:class:`~plc_anna.sparkplug.edge.EdgeNode` per node id in the settings, each
with ``networks`` ticking :class:`~plc_anna.sparkplug.synthetic.SyntheticNetwork`
of ``layers`` x ``columns``, against ``broker``. It prints ``ready`` once
every node is online; on SIGUSR1 it stops the networks (they hold their last
scan), waits two publishing periods and prints each network's last scan as
JSON (``{"node/network": scan}``), so the caller can count what arrived; on
SIGTERM it stops the nodes cleanly (DDEATH, NDEATH) and exits. SIGKILL is a
crash: the broker publishes the NDEATH it holds as the Will.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from plc_anna.sparkplug.config import sparkplug_config
from plc_anna.sparkplug.edge import EdgeNode
from plc_anna.sparkplug.synthetic import SyntheticNetwork


async def run_nodes(settings: dict) -> None:
    directory = Path(settings["directory"])
    seed = settings.get("seed", 0)
    networks = {node: {f"net{k}": SyntheticNetwork(f"net{k}", settings.get("layers", 2), settings["columns"],
                                                   seed=[seed, i, k], ticking=True)
                       for k in range(settings["networks"])} for i, node in enumerate(settings["nodes"])}
    edges = []
    for node in settings["nodes"]:
        config = sparkplug_config({"broker": settings["broker"], "group_id": settings["group"], "edge_node_id": node,
                                   "publish_ms": settings["publish_ms"], "keepalive_s": settings["keepalive_s"],
                                   "commands": settings.get("commands", []), "store": f"{node}.sqlite",
                                   "primary_host_id": settings.get("primary_host_id", "")}, directory)
        edges.append(EdgeNode(config, lambda nets=networks[node]: nets))
    for edge in edges:
        await edge.start()
    while not all(edge.online for edge in edges):
        await asyncio.sleep(0.02)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    stop, freeze = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, freeze.set)
    freezer = asyncio.create_task(_freeze(freeze, networks, settings["publish_ms"]))
    await stop.wait()
    freezer.cancel()
    for edge in edges:
        await edge.stop()


async def _freeze(freeze: asyncio.Event, networks: dict, publish_ms: int) -> None:
    await freeze.wait()
    for nets in networks.values():
        for net in nets.values():
            net.held = True
    await asyncio.sleep(2 * publish_ms / 1000)
    print(json.dumps({f"{node}/{name}": net.scan for node, nets in networks.items() for name, net in nets.items()}),
          flush=True)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("mqtt", "asyncua"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Dozens of nodes in one process would each report a broker restart: the caller measures it instead.
    logging.getLogger("plc_anna.sparkplug").setLevel(logging.ERROR)
    asyncio.run(run_nodes(json.loads(Path(argv[0]).read_text())))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
