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

:func:`serve_process` runs ``plc-anna serve --test-rig`` in a process of its
own instead, for tests that measure the server from outside (its memory and
descriptors) or kill it.

The rig serves the ``None`` security policy on 127.0.0.1 only, with one
engineer user (:data:`RIG_USER`), anonymous viewers, test-rig methods, and
the simulated network's clock stopped (``age_rate = 0``): the test sets the
age with ``SetAge`` or :meth:`PlcAnnaServer.command`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
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
    passwords: dict[str, str] = field(default_factory=dict)
    """The password of every user of the rig (:data:`RIG_USER` and the ``users`` given to :func:`rig`)."""

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
            client.set_password(self.passwords.get(user, "") if password is None else password)
        return client


@contextlib.asynccontextmanager
async def rig(directory: str | Path | None = None, network: str | Network = "digits", device: str = "pcm",
                   seed: int = 0, scan_ms: int = 20, samples_per_scan: int = 64,
                   compensator_config: CompensatorConfig | None = None, users: dict[str, str] | None = None,
                   **config: Any) -> AsyncIterator[Rig]:
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
    users
        More users by name and role (``{"otto": "operator", "vera": "viewer"}``), each with a random
        password in :attr:`Rig.passwords`.
    **config
        Further server keys (``age_rate``, ``history_period_s``, ``state_store``, ``scan_isolation``, ...);
        ``security`` is a dict of ``[security]`` keys laid over the rig's own (``{"max_sessions": 2}``).
        With ``networks`` (``[[networks]]`` entries as dicts) the rig serves those instead of ``network``.

    The rig runs its scans on threads of its own process (``scan_isolation = "thread"``) at normal
    priority, unless ``config`` says otherwise: it starts in no time, and a test can reach the runtime
    (``rig.server.host.engine``).
    """
    roles = {RIG_USER: "engineer", **(users or {})}
    passwords = {name: secrets.token_urlsafe(12) for name in roles}
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="plc-anna-rig-"))
        security = {"policies": ["None"], "allow_anonymous": True, "allow_insecure_login": True,
                    "users": [{"name": name, "password_hash": hash_password(passwords[name]), "role": role}
                              for name, role in roles.items()], **config.pop("security", {})}
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
            yield Rig(server_config.endpoint, RIG_USER, passwords[RIG_USER], server, passwords)


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


@dataclass
class ServeProcess:
    """A ``plc-anna serve`` process started by :func:`serve_process`."""

    endpoint: str
    process: subprocess.Popen
    log: Path
    """Its stdout and stderr."""

    @property
    def pid(self) -> int:
        return self.process.pid


def _answers_hello(port: int) -> bool:
    from plc_anna.server.endpoint import hello_frame

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(hello_frame(f"opc.tcp://127.0.0.1:{port}"))
            return sock.recv(4) == b"ACKF"
    except OSError:
        return False


@contextlib.contextmanager
def serve_process(directory: str | Path, *args: str, port: int | None = None, scan_ms: int = 20,
                  timeout: float = 60.0) -> Iterator[ServeProcess]:
    """Run ``plc-anna serve --test-rig`` on a loopback port in a process of its own until the block ends.

    The rig offers the None policy to anonymous viewers (loopback). ``args`` are
    further ``serve`` flags; ``directory`` is its ``--config-dir`` (reuse it, and
    ``port``, to restart the same server). Ready once its endpoint answers a
    Hello; stopped with SIGTERM (SIGKILL after ``timeout``) when the block
    ends, unless it is gone already. RuntimeError, with its log, if it exits
    before it is ready.
    """
    port = port or free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}/plc-anna"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"serve-{port}.log"
    command = [sys.executable, "-m", "cli", "serve", "--test-rig", "--config-dir", str(directory),
               "--endpoint", endpoint, "--scan-ms", str(scan_ms), *args]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not _answers_hello(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"plc-anna serve did not start (exit code {process.poll()}):\n"
                                   f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield ServeProcess(endpoint, process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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

__all__ = ["NAMESPACE_URI", "RIG_USER", "Rig", "RunningRig", "ServeProcess", "free_port", "plc_anna_rig", "rig",
           "serve_process"]
