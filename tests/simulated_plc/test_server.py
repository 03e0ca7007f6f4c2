"""What both simulated-PLC servers share: step, communication restart, cold restart, the cycle task."""

from __future__ import annotations

import asyncio
import time

import pytest

from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.simulated_plc.server import SimulatedPlcServer


def make_plc(**kwargs) -> SimulatedPlc:
    return SimulatedPlc(SimulatedNetwork("thermocouple", "ideal", seed=0), **kwargs)


class RecordingServer(SimulatedPlcServer):
    """The shared server machinery with a protocol that only records what it was asked to do."""

    def __init__(self, plc: SimulatedPlc, **kwargs) -> None:
        super().__init__(plc, **kwargs)
        self.calls: list[str] = []

    async def _start(self) -> None:
        self.calls.append("start")

    async def _stop(self) -> None:
        self.calls.append("stop")

    async def _start_listening(self) -> None:
        self.calls.append("listen")

    async def _stop_listening(self) -> None:
        self.calls.append("unlisten")

    def _copy_in(self) -> None:
        self.calls.append("copy-in")

    async def _publish(self, written: bool) -> None:
        self.calls.append("publish all" if written else "publish")


def test_server_step_restart_and_cold_restart_order():
    async def check():
        plc = make_plc()
        async with RecordingServer(plc, run_cycles=False) as server:
            await server.step()
            plc.cold_restart()
            await server.step()  # the protocol's copy of the written tags is reset before the copy-in
            await server.restart(0.0)
        assert server.calls == ["start", "publish all", "copy-in", "publish", "publish all", "copy-in", "publish",
                                "unlisten", "listen", "stop"]
        with pytest.raises(RuntimeError, match="running server"):
            await server.restart(0.0)

    asyncio.run(check())


def test_cycle_task_skips_missed_deadlines_and_survives_failures(monkeypatch):
    plc = make_plc(cycle_s=0.01)
    real_cycle = plc.cycle
    calls = []

    def slow_cycle():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a broken cycle")
        time.sleep(0.025)  # longer than two periods: the next two deadlines are missed
        real_cycle()

    monkeypatch.setattr(plc, "cycle", slow_cycle)

    async def run():
        async with RecordingServer(plc) as server:
            await asyncio.sleep(0.2)
        return server

    server = asyncio.run(run())
    assert server.failures == 1 and len(calls) >= 3
    assert len(calls) <= 12 and server.overruns >= 2 * (len(calls) - 2)
