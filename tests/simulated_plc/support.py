"""What the simulated PLC's server tests share."""

from __future__ import annotations

import asyncio
import socket


async def assert_stopped_cleanly(tasks_before: set, port: int) -> None:
    """After a server stopped: no task of its own is left, and its port can be bound again."""
    await asyncio.sleep(0.05)
    leaked = [task for task in asyncio.all_tasks() - tasks_before if task is not asyncio.current_task()]
    assert leaked == []
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
