"""Sparkplug B over MQTT: every plc-anna server an edge node (:mod:`plc_anna.sparkplug.edge`), the broker for tests.

:func:`start_edge_node` is the server's one hook: it starts the edge node of
a running :class:`~plc_anna.server.app.PlcAnnaServer` whose configuration has
a ``[sparkplug]`` table. The MQTT libraries are imported only then.
"""

from __future__ import annotations

from typing import Any


async def start_edge_node(server: Any) -> Any:
    """Start the edge node of ``server`` (its ``config.sparkplug``); it stops with :meth:`EdgeNode.stop`."""
    from plc_anna.sparkplug.edge import EdgeNode
    from plc_anna.sparkplug.source import server_networks

    node = EdgeNode(server.config.sparkplug, lambda: server_networks(server))
    await node.start()
    return node
