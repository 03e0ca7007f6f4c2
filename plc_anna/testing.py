"""An embeddable OPC UA test rig: a plc-anna server with a simulated network on a free loopback port.

For other projects' test rigs (and this project's tests). Async code uses
:func:`rig`::

    async with rig(tmp_path) as rig:
        async with rig.client() as client:      # an engineer's session on the None endpoint
            gain = await client.get_node(rig.nodeid("AnalogNetwork.Layers.Layer1.Gain")).read_value()

Synchronous tests use the pytest fixture ``plc_anna_rig`` (enable it with
``pytest_plugins = ["plc_anna.testing"]`` in a ``conftest.py``), which runs
the rig on its own thread and event loop and yields a :class:`RunningRig`
whose :meth:`RunningRig.run` runs a coroutine function there.

The rig serves the ``None`` security policy on 127.0.0.1 only, with one
engineer user (:data:`RIG_USER`), anonymous viewers, test-rig methods, and
the simulated network's clock stopped (``age_rate = 0``): the test sets the
age with ``SetAge`` or :meth:`PlcAnnaServer.command`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from asyncua import Client, ua

from plc_anna.compensator import CompensatorConfig
from plc_anna.device.network import Network
from plc_anna.engine.scan import NetworkScan
from plc_anna.server.app import PlcAnnaServer
from plc_anna.server.config import ServerConfig
from plc_anna.server.model import NAMESPACE_URI
from plc_anna.server.passwords import hash_password

RIG_USER = "rig-engineer"
T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Rig:
    """A running rig: where it listens, who may log in, and the server itself."""

    endpoint: str
    user: str
    password: str
    server: PlcAnnaServer

    @property
    def idx(self) -> int:
        return self.server.idx

    def nodeid(self, path: str) -> ua.NodeId:
        """The NodeId of a node by its path, e.g. ``"Compensator.Calibrate"``."""
        return ua.NodeId(path, self.idx)

    def scan(self, network: str | None = None) -> NetworkScan:
        """A network's scan in the engine (the only network's by default): its ``runtime``, ``task``, ``jobs``.

        Reachable when the rig scans on threads of its own process (``scan_isolation = "thread"``, the
        rig's default); what a test reads there, the scan's thread may be changing meanwhile.
        """
        engine = getattr(self.server.host, "engine", None)
        if engine is None:
            raise ValueError("the scans run in another process (scan_isolation = \"process\"): read them over "
                             "OPC UA or through server.networks instead")
        return engine.scans[network or next(iter(engine.scans))]

    def client(self, user: str | None = RIG_USER, password: str | None = None, timeout: float = 10) -> Client:
        """An asyncua client of the rig (an engineer by default; ``user=None`` for an anonymous viewer).

        Use it as ``async with rig.client() as client:``.
        """
        client = Client(self.endpoint, timeout=timeout)
        if user is not None:
            client.set_user(user)
            client.set_password(self.password if password is None and user == RIG_USER else (password or ""))
        return client


@contextlib.asynccontextmanager
async def rig(directory: str | Path | None = None, network: str | Network = "digits", device: str = "pcm",
                   seed: int = 0, scan_ms: int = 20, samples_per_scan: int = 64,
                   compensator_config: CompensatorConfig | None = None, **config: Any) -> AsyncIterator[Rig]:
    """Start a test-rig server and yield its :class:`Rig`; stop it on exit.

    Parameters
    ----------
    directory
        Its configuration directory (certificate, state store); a temporary one if None.
    network
        A shipped network name, a ``.npz`` path, or a :class:`Network` object.
    device, seed, scan_ms, samples_per_scan
        As the server keys of the same names.
    compensator_config
        The compensator's settings.
    **config
        Further server keys (``age_rate``, ``history_period_s``, ``state_store``, ``scan_isolation``, ...).
        With ``networks`` (``[[networks]]`` entries as dicts) the rig serves those instead of ``network``.

    The rig runs its scans on threads of its own process (``scan_isolation = "thread"``) at normal
    priority, unless ``config`` says otherwise: it starts in no time, and a test can reach the runtime
    (``rig.server.host.engine``).
    """
    password = secrets.token_urlsafe(12)
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="plc-anna-rig-"))
        security = {"policies": ["None"], "allow_anonymous": True, "allow_insecure_login": True,
                    "users": [{"name": RIG_USER, "password_hash": hash_password(password), "role": "engineer"}]}
        settings = {"scan_isolation": "thread", "scan_priority": 0, **config}
        if "networks" not in settings:
            settings = {"age_rate": 0.0, "network": network if isinstance(network, str) else "digits",
                        "device": device, "seed": seed, "scan_ms": scan_ms, "samples_per_scan": samples_per_scan,
                        **settings}
        server_config = ServerConfig(
            config_dir=Path(directory), endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc-anna", test_rig=True,
            security=security, **settings)
        given = {} if isinstance(network, str) else {server_config.served_networks[0].name: network}
        server = PlcAnnaServer(server_config, compensator_config, networks=given)
        async with server:
            yield Rig(server_config.endpoint, RIG_USER, password, server)


class RunningRig:
    """A :func:`rig` running on its own thread and event loop, for synchronous tests."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="plc-anna-rig", daemon=True)
        self._stop: asyncio.Event | None = None
        self._done: Any = None
        self.rig: Rig | None = None

    def __enter__(self) -> RunningRig:
        self._thread.start()
        self._done = asyncio.run_coroutine_threadsafe(self._serve_until_stopped(), self._loop)
        try:
            asyncio.run_coroutine_threadsafe(self._wait_ready(), self._loop).result(timeout=60)
            if self.rig is None:  # the start failed: raise its error here
                self._done.result(timeout=0)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    async def _serve_until_stopped(self) -> None:
        self._stop = asyncio.Event()
        async with rig(**self._kwargs) as running:
            self.rig = running
            await self._stop.wait()

    async def _wait_ready(self) -> None:
        while self.rig is None:
            if self._done.done():
                return
            await asyncio.sleep(0.01)

    def run(self, fn: Callable[[Rig], Awaitable[T]], timeout: float = 60) -> T:
        """Run ``await fn(rig)`` on the rig's event loop; its result."""
        return asyncio.run_coroutine_threadsafe(fn(self.rig), self._loop).result(timeout=timeout)

    @property
    def endpoint(self) -> str:
        return self.rig.endpoint

    def __exit__(self, *exc_info: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        with contextlib.suppress(Exception):
            self._done.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def _fixture() -> Any:
    import pytest  # only where the fixture is used: pytest is not a dependency of the package

    @pytest.fixture
    def plc_anna_rig(tmp_path: Path) -> Iterator[RunningRig]:
        """A running plc-anna test rig (digits network, 20 ms scan) for a synchronous test."""
        with RunningRig(directory=tmp_path) as running:
            yield running

    return plc_anna_rig


try:
    plc_anna_rig = _fixture()
except ImportError:  # no pytest here: the async context manager still works
    pass

__all__ = ["NAMESPACE_URI", "RIG_USER", "Rig", "RunningRig", "free_port", "plc_anna_rig", "rig"]
