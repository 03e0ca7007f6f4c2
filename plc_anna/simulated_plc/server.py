"""What both simulated-PLC servers share: the lifecycle and the cycle task on absolute deadlines.

:class:`SimulatedPlcServer` wraps a :class:`~plc_anna.simulated_plc.program.SimulatedPlc`; the OPC UA
(:mod:`plc_anna.simulated_plc.opcua`) and Modbus (:mod:`plc_anna.simulated_plc.modbus`) servers fill
its hooks. The program knows nothing of protocols; this module knows nothing of a protocol library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from abc import ABC, abstractmethod

from plc_anna.deadlines import next_deadline
from plc_anna.simulated_plc.program import SimulatedPlc

logger = logging.getLogger(__name__)


def check_port_free(host: str, port: int) -> None:
    """OSError naming ``host:port`` when something listens there already (the check a server start makes)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class SimulatedPlcServer(ABC):
    """What both protocol servers share: the lifecycle and the cycle task on absolute deadlines.

    A subclass fills :meth:`_start`, :meth:`_stop`, :meth:`_copy_in` (written tags from the
    protocol's memory into the program) and :meth:`_publish` (the program's tags out; with
    ``written=True`` the written tags too). The cycle runs in the server's event loop and does not
    yield between copy-in and publish, so a client request is never split by a cycle.
    """

    def __init__(self, plc: SimulatedPlc, *, run_cycles: bool = True) -> None:
        if not isinstance(plc, SimulatedPlc):
            raise ValueError(f"plc must be a SimulatedPlc, got {type(plc).__name__}")
        self.plc = plc
        self.run_cycles = run_cycles
        self.overruns = 0  #: deadlines skipped because a cycle ended late
        self.failures = 0  #: cycles that raised (logged; the next runs as scheduled)
        self._task: asyncio.Task | None = None
        self._restarts_seen = plc.cold_restarts
        self._running = False

    async def __aenter__(self):
        await self._start()
        try:
            await self._publish(written=True)
        except BaseException:
            await self._stop()
            raise
        self._running = True
        if self.run_cycles:
            self._task = asyncio.create_task(self._run(), name=f"{type(self).__name__} cycle")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._running = False
        await self._stop()

    async def step(self) -> None:
        """Exactly one PLC cycle: copy the written tags in, run the program, publish its tags.

        For a server made with ``run_cycles=False``: a test steps the PLC cycle by cycle.
        """
        if self.plc.cold_restarts != self._restarts_seen:
            # The PLC's memory was reset: the protocol's copy of the written tags must follow.
            self._restarts_seen = self.plc.cold_restarts
            await self._publish(written=True)
        self._copy_in()
        self.plc.cycle()
        await self._publish(written=False)

    async def restart(self, down_s: float) -> None:
        """A communication restart: stop listening (clients are dropped), wait ``down_s``, listen again.

        The program, its tags and the cycle task run on, so the heartbeat watchdog sees the stall.
        """
        if not (math.isfinite(down_s) and down_s >= 0):
            raise ValueError(f"down_s must be a finite number of seconds >= 0, got {down_s!r}")
        if not self._running:
            raise RuntimeError("restart() needs a running server: use it inside 'async with'")
        await self._stop_listening()
        await asyncio.sleep(down_s)
        await self._start_listening()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.plc.cycle_s
        deadline = loop.time()
        while True:
            try:
                await self.step()
            except Exception:  # a PLC keeps cycling; the log says what broke
                self.failures += 1
                if self.failures == 1 or self.failures % 1000 == 0:  # not 100 tracebacks a second
                    logger.exception("simulated PLC cycle failed (%d failures so far)", self.failures)
            deadline, missed = next_deadline(deadline, loop.time(), period)
            self.overruns += missed
            await asyncio.sleep(deadline - loop.time())

    @abstractmethod
    async def _start(self) -> None: ...

    @abstractmethod
    async def _stop(self) -> None: ...

    @abstractmethod
    async def _start_listening(self) -> None: ...

    @abstractmethod
    async def _stop_listening(self) -> None: ...

    @abstractmethod
    def _copy_in(self) -> None: ...

    @abstractmethod
    async def _publish(self, written: bool) -> None: ...


__all__ = ["SimulatedPlcServer", "check_port_free"]
