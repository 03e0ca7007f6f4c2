"""A simulated PLC on its own thread and event loop, for synchronous tests of the commissioning steps and CLI.

The command line runs ``asyncio.run`` itself, so the PLC it talks to must live on
another thread: :func:`running_plc` starts a real OPC UA or Modbus TCP server
on a free loopback port around a :class:`SimulatedPlc` of the thermocouple
network and stops it on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from plc_anna.compensator import CompensatorConfig
from plc_anna.device.network import Network
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.simulated_plc.server import SimulatedPlcServer
from plc_anna.testing import free_port

#: Small enough for a test to calibrate in about a second, large enough for the 32-input layers' fit.
SMALL_CONFIG = CompensatorConfig(calibration_samples=256, estimate_samples=256, holdout_samples=128)
#: PLC cycle of the tests' simulated PLC: many samples a second (one per cycle and layer in the trace).
CYCLE_S = 0.002


@dataclass
class RunningPlc:
    """A simulated PLC server running on its own thread; :meth:`call` runs a coroutine function there."""

    server: SimulatedPlcServer
    loop: asyncio.AbstractEventLoop

    @property
    def plc(self) -> SimulatedPlc:
        return self.server.plc

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def call(self, fn, *args: Any, timeout: float = 30) -> Any:
        """``await fn(*args)`` on the server's loop; its result."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(timeout)

    def tags(self, layer: int) -> dict:
        """The PLC's tags of ``layer``, read between two cycles (on the server's loop)."""
        async def read() -> dict:
            return self.plc.tags(layer)
        return self.call(read)


@contextlib.contextmanager
def running_plc(protocol: str = "opcua", *, network: Network | str = "thermocouple", cycle_s: float = CYCLE_S,
                trace_length: int = 64, run_cycles: bool = True, **server_args: Any) -> Iterator[RunningPlc]:
    """Run a simulated PLC of ``network`` over ``protocol`` on a free loopback port."""
    plc = SimulatedPlc(SimulatedNetwork(network, "pcm", seed=0), cycle_s=cycle_s, trace_length=trace_length)
    if protocol == "opcua":
        from plc_anna.simulated_plc.opcua import SimulatedPlcOpcUa
        server: SimulatedPlcServer = SimulatedPlcOpcUa(plc, f"opc.tcp://127.0.0.1:{free_port()}",
                                                       run_cycles=run_cycles, **server_args)
    else:
        from plc_anna.simulated_plc.modbus import SimulatedPlcModbus
        server = SimulatedPlcModbus(plc, f"modbus://127.0.0.1:{free_port()}", run_cycles=run_cycles, **server_args)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"simulated-plc-{protocol}", daemon=True)
    thread.start()
    running = RunningPlc(server, loop)
    try:
        running.call(server.__aenter__)
        try:
            yield running
        finally:
            running.call(server.__aexit__, None, None, None)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="module")
def opcua():
    """A simulated PLC over OPC UA for the module's tests."""
    with running_plc("opcua") as running:
        yield running


@pytest.fixture(scope="module")
def modbus():
    """A simulated PLC over Modbus TCP for the module's tests."""
    with running_plc("modbus") as running:
        yield running
