"""Where the engine runs: a process of its own (the default), or threads of the server's process.

A server talks to its engine through an :class:`EngineHost`, the same way
whichever isolation it runs:

- :meth:`EngineHost.start` builds and restores every network (a ValueError
  naming the network starts nothing), :meth:`EngineHost.run` starts the scans;
- :meth:`EngineHost.take` gives the newest :class:`~plc_anna.engine.scan.ScanReport`
  of each network since the last take (never blocking a scan: a
  :class:`~plc_anna.engine.mailbox.ReportBox` merges what nobody took);
- :meth:`EngineHost.command` runs a command between a network's scans;
- :meth:`EngineHost.stop` stops everything and returns each network's final state.

:class:`ProcessHost` runs the engine in a child process
(``python -m plc_anna.engine.process``) connected by a socket pair: the scans
share no interpreter lock with the OPC UA server, the only thing a loaded
server then takes from them is CPU time. A thread of the child sends the
reports (pickled), a thread of the server reads them, so neither event loop
nor scan ever waits for the other side. :class:`ThreadHost` runs the engine on
threads of the server's process: the scans then share the interpreter lock
with serving (docs/server.md#the-scan-engine measures both); tests and
embedded rigs use it, since it starts in no time and the runtime stays
reachable (:attr:`ThreadHost.engine`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from plc_anna.engine.engine import Engine
from plc_anna.engine.mailbox import ReportBox
from plc_anna.engine.scan import NetworkSpec, ScanReport
from plc_anna.engine.task import check_period
from plc_anna.subprocesses import child_env

logger = logging.getLogger(__name__)

#: The isolations a server may run its engine with.
ISOLATIONS = ("process", "thread")
#: How long a stopping engine may take before its process is killed (s).
STOP_TIMEOUT_S = 60.0


class EngineStopped(RuntimeError):
    """The engine is not running (it stopped, or its process ended)."""


class EngineHost(ABC):
    """The server's handle of its engine (see the module docstring).

    Parameters
    ----------
    priority
        Real-time priority of the scans (0: normal scheduling).
    blas_threads
        Threads BLAS may use in the engine; None leaves BLAS as it is.
    """

    def __init__(self, priority: int = 0, blas_threads: int | None = 1) -> None:
        self.priority, self.blas_threads = priority, blas_threads
        self.box = ReportBox()
        #: Why the engine ended on its own (its process died); None while it runs.
        self.failure: str | None = None
        self.ended: asyncio.Event | None = None

    @abstractmethod
    async def start(self, specs: Sequence[NetworkSpec], states: dict[str, dict]) -> dict[str, ScanReport]:
        """Build every network and restore its state; each network's first report. Nothing scans yet."""

    @abstractmethod
    async def run(self) -> None:
        """Start the PLC links and the scans."""

    def take(self) -> dict[str, ScanReport]:
        """The newest report of each network since the last take."""
        return self.box.take()

    @abstractmethod
    async def command(self, network: str, name: str, *args: Any) -> Any:
        """Run ``name(*args)`` between ``network``'s scans; its result. ValueError: refused, nothing changed."""

    @abstractmethod
    def set_period(self, network: str, period_s: float) -> None:
        """Change ``network``'s scan period (ValueError outside the allowed range)."""

    @abstractmethod
    def trace(self, cycles: int) -> None:
        """Keep the timings of every network's next ``cycles`` cycles (a benchmark's window)."""

    @abstractmethod
    async def traces(self) -> dict:
        """Each network's :class:`~plc_anna.engine.scan.CycleTrace` since :meth:`trace`."""

    @abstractmethod
    async def stop(self) -> dict[str, tuple[dict, int]]:
        """Stop the scans; each network's final state and scan (empty if the engine had died)."""


def open_host(isolation: str, priority: int = 0, blas_threads: int | None = 1,
              send_interval_s: float = 0.0) -> EngineHost:
    """The host of an ``isolation`` (:data:`ISOLATIONS`); a process sends reports at most every ``send_interval_s``."""
    if isolation == "process":
        return ProcessHost(priority, blas_threads, send_interval_s)
    if isolation == "thread":
        return ThreadHost(priority, blas_threads)
    raise ValueError(f"unknown isolation {isolation!r}; valid: {', '.join(ISOLATIONS)}")


class ThreadHost(EngineHost):
    """The engine on threads of this process; :attr:`engine` is reachable (tests, embedded rigs)."""

    engine: Engine | None = None

    async def start(self, specs: Sequence[NetworkSpec], states: dict[str, dict]) -> dict[str, ScanReport]:
        self.ended = asyncio.Event()
        self.engine = Engine(specs, self.box.put, priority=self.priority, blas_threads=self.blas_threads)
        return await asyncio.get_running_loop().run_in_executor(None, self.engine.start, states)

    async def run(self) -> None:
        if self.engine is None:
            raise EngineStopped("the scan engine is not running")
        self.engine.run()

    async def command(self, network: str, name: str, *args: Any) -> Any:
        if self.engine is None:
            raise EngineStopped("the scan engine is not running")
        return await asyncio.wrap_future(self.engine.command(network, name, args))

    def set_period(self, network: str, period_s: float) -> None:
        if self.engine is None:
            raise EngineStopped("the scan engine is not running")
        self.engine.set_period(network, period_s)

    def trace(self, cycles: int) -> None:
        if self.engine is None:
            raise EngineStopped("the scan engine is not running")
        self.engine.trace(cycles)

    async def traces(self) -> dict:
        if self.engine is None:
            raise EngineStopped("the scan engine is not running")
        return await asyncio.get_running_loop().run_in_executor(None, self.engine.traces)

    async def stop(self) -> dict[str, tuple[dict, int]]:
        if self.engine is None:
            return {}
        engine, self.engine = self.engine, None
        return await asyncio.get_running_loop().run_in_executor(None, engine.stop)


class ProcessHost(EngineHost):
    """The engine in a child process (``python -m plc_anna.engine.process``), over a socket pair.

    ``send_interval_s`` paces the reports the child sends (no more often than the server publishes).
    """

    def __init__(self, priority: int = 0, blas_threads: int | None = 1, send_interval_s: float = 0.0) -> None:
        super().__init__(priority, blas_threads)
        self.send_interval_s = float(send_interval_s)
        self.process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._waiting: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: threading.Thread | None = None

    async def start(self, specs: Sequence[NetworkSpec], states: dict[str, dict]) -> dict[str, ScanReport]:
        self._loop = loop = asyncio.get_running_loop()
        self.ended = asyncio.Event()
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "plc_anna.engine.process", str(theirs.fileno())],
                                            pass_fds=[theirs.fileno()], env=child_env(), start_new_session=True)
        finally:
            theirs.close()
        # The connection reads and writes the socket's descriptor; the socket object is kept to shut it
        # down, which ends a read in progress (closing the descriptor under a reading thread would not).
        self._sock, self._conn = ours, Connection(ours.fileno())
        started = self._expect("start")
        self._reader = threading.Thread(target=self._read, name="plc-anna-engine-reader", daemon=True)
        self._reader.start()
        level = logging.getLogger("plc_anna").getEffectiveLevel()
        await loop.run_in_executor(None, self._send, ("start", list(specs), states, self.priority,
                                                      self.blas_threads, level, self.send_interval_s))
        try:
            return await started
        except BaseException:
            await self._reap()
            raise

    async def run(self) -> None:
        running = self._expect("run")
        self._send(("run",))
        await running

    async def command(self, network: str, name: str, *args: Any) -> Any:
        answer = self._expect(next(self._ids))
        self._send(("command", answer.key, network, name, args))
        return await answer

    def set_period(self, network: str, period_s: float) -> None:
        self._send(("period", network, check_period(period_s)))

    def trace(self, cycles: int) -> None:
        self._send(("trace", int(cycles)))

    async def traces(self) -> dict:
        answer = self._expect("traces")
        self._send(("traces",))
        return await answer

    async def stop(self) -> dict[str, tuple[dict, int]]:
        if self.process is None:
            return {}
        final: dict[str, tuple[dict, int]] = {}
        if self.failure is None:
            stopped = self._expect("stop")
            try:
                self._send(("stop",))
                final = await asyncio.wait_for(stopped, STOP_TIMEOUT_S)
            except (EngineStopped, TimeoutError) as exc:
                logger.error("the scan engine did not stop cleanly (%s); its last states are lost",
                             exc or "timeout")
        await self._reap()
        return final

    # ------------------------------------------------------------ plumbing
    def _expect(self, key: Any) -> asyncio.Future:
        future = self._loop.create_future()
        future.key = key  # type: ignore[attr-defined]
        self._waiting[key] = future
        return future

    def _send(self, message: tuple) -> None:
        if self.failure is not None or self._conn is None:
            raise EngineStopped(self.failure or "the scan engine is not running")
        with self._send_lock:
            try:
                self._conn.send(message)
            except OSError as exc:
                raise EngineStopped(f"the scan engine process is gone: {exc}") from None

    def _read(self) -> None:
        """The reader thread: reports into the box, answers to the waiting futures."""
        conn = self._conn
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "reports":
                self.box.put_all(message[1])
            elif kind == "result":
                _, key, error = message
                self._answer(key, error, None)
            elif kind in ("ready", "failed", "stopped", "running", "traces"):
                key = {"ready": "start", "failed": "start", "stopped": "stop", "running": "run",
                       "traces": "traces"}[kind]
                self._answer(key, message[1] if kind == "failed" else None,
                             message[1] if kind != "failed" else None)
        code = self.process.poll() if self.process is not None else None
        self._loop.call_soon_threadsafe(self._ended, f"the scan engine process ended (exit code {code})")

    def _answer(self, key: Any, error: Any, value: Any) -> None:
        def resolve() -> None:
            future = self._waiting.pop(key, None)
            if future is None or future.done():
                return
            if error is not None:
                future.set_exception(error if isinstance(error, BaseException) else ValueError(str(error)))
            else:
                future.set_result(value)
        self._loop.call_soon_threadsafe(resolve)

    def _ended(self, why: str) -> None:
        if self.failure is None and self.process is not None:
            self.failure = why
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(EngineStopped(why))
        self._waiting.clear()
        self.ended.set()

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        process, self.process = self.process, None
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already shut down by the other side
                pass
        if self._reader is not None:
            await loop.run_in_executor(None, self._reader.join, 10)
        if self._conn is not None:
            self._conn.close()        # closes the descriptor
            self._sock.detach()       # which the socket object must not close again
            self._conn = self._sock = None
        if process is None:
            return
        try:
            await loop.run_in_executor(None, process.wait, 10)
        except subprocess.TimeoutExpired:
            logger.error("the scan engine process did not end: killing it")
            process.kill()
            await loop.run_in_executor(None, process.wait)
