"""SCADA-like load for a benchmark or a test: OPC UA client sessions in a process of their own.

``python -m plc_anna.bench.subscribers ENDPOINT SESSIONS PUBLISH_MS NODES_FILE``
opens ``SESSIONS`` asyncua client sessions to ``ENDPOINT`` (no security,
anonymous); each creates one subscription at ``PUBLISH_MS`` and monitors every
node of ``NODES_FILE`` (one NodeId per line, ``ns=<uri>;s=<path>``, the
namespace given by its URI), queue size 1. When all are subscribed it prints
``ready <monitored items>``; on SIGTERM (or stdin closing) it prints
``notifications <count>`` and ends. The clients run in their own process so
that a benchmark measures the server, not the clients' decoding.

:class:`Subscribers` starts and stops that process from async code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from plc_anna.subprocesses import child_env, end_child

#: How long the sessions may take to connect and subscribe (s).
READY_TIMEOUT_S = 300.0


class Subscribers:
    """The subscriber process of ``sessions`` sessions monitoring ``nodes`` (``ns=<uri>;s=<path>`` strings).

    Use it as ``async with Subscribers(endpoint, 50, 100, nodes, workdir) as clients:``; after the
    block :attr:`notifications` holds what the sessions received. :meth:`pause` and :meth:`resume`
    stop and continue the whole process (SIGSTOP/SIGCONT): a client that no longer reads its socket.
    """

    def __init__(self, endpoint: str, sessions: int, publish_ms: float, nodes: Sequence[str], workdir: Path) -> None:
        self.endpoint, self.sessions, self.publish_ms = endpoint, int(sessions), float(publish_ms)
        self.nodes = list(nodes)
        self.workdir = Path(workdir)
        self.monitored_items = 0
        self.notifications: int | None = None
        self.process: subprocess.Popen | None = None

    async def __aenter__(self) -> Subscribers:
        nodes_file = self.workdir / "subscribed-nodes.txt"
        nodes_file.write_text("\n".join(self.nodes) + "\n")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "plc_anna.bench.subscribers", self.endpoint, str(self.sessions),
            str(self.publish_ms), str(nodes_file), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env())
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            await self._end()
            raise RuntimeError(f"{self.sessions} subscriber sessions did not subscribe within "
                               f"{READY_TIMEOUT_S:g} s") from None
        if not line.startswith(b"ready "):
            await self._end()
            raise RuntimeError(f"the subscriber process failed to subscribe (it said {line!r})")
        self.monitored_items = int(line.split()[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._end()

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    async def _end(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.resume()
        for line in await end_child(process):
            if line.startswith("notifications "):
                self.notifications = int(line.split()[1])


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def datachange_notification(self, node, value, data) -> None:
        self.count += 1


async def _subscribe(endpoint: str, sessions: int, publish_ms: float, nodes: list[str]) -> None:
    from asyncua import Client, ua

    clients, counters = [], []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(1 << 16) else None)
    items = 0
    try:
        for _ in range(sessions):
            client = Client(endpoint, timeout=60)
            await client.connect()
            clients.append(client)
            namespaces = await client.get_namespace_array()
            ids = []
            for text in nodes:
                uri, path = text[3:].split(";s=", 1)
                ids.append(client.get_node(ua.NodeId(path, namespaces.index(uri))))
            counter = _Counter()
            subscription = await client.create_subscription(publish_ms, counter)
            handles = await subscription.subscribe_data_change(ids, queuesize=1)
            items += sum(1 for handle in handles if isinstance(handle, int))
            counters.append(counter)
        print(f"ready {items}", flush=True)
        await stop.wait()
    finally:
        print(f"notifications {sum(counter.count for counter in counters)}", flush=True)
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)


if __name__ == "__main__":
    endpoint_arg, sessions_arg, publish_arg, nodes_arg = sys.argv[1:5]
    asyncio.run(_subscribe(endpoint_arg, int(sessions_arg), float(publish_arg),
                           [line.strip() for line in Path(nodes_arg).read_text().splitlines() if line.strip()]))
