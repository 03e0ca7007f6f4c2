"""The engine, in a process of its own and on threads: networks built, restored, scanned, commanded, stopped.

Every scenario runs with both hosts; the process host's engine is a real child
process (``python -m plc_anna.engine.process``) over a socket pair.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket

import numpy as np
import pytest

from plc_anna.compensator import CompensatorConfig
from plc_anna.device.network import network_from_arrays
from plc_anna.drift.states import DriftState
from plc_anna.engine.host import EngineStopped, ProcessHost, open_host
from plc_anna.engine.scan import NetworkSpec, StateRefused

FAST = CompensatorConfig(calibration_samples=256, estimate_samples=128, holdout_samples=64)


def _network(name: str, columns: int, seed: int):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(columns, 6)) / 3, rng.normal(size=columns) / 10
    X = rng.uniform(-1, 1, size=(200, 6))
    return network_from_arrays(name, "regression", [W], [b], ["linear"], X=X, y=X @ W.T + b, output_unit="V")


def _specs(**extra) -> list[NetworkSpec]:
    return [NetworkSpec(name="line1", network=_network("a", 4, 1), scan_ms=10, samples_per_scan=16,
                        age_rate=0.0, compensator=FAST, **extra),
            NetworkSpec(name="line2", network=_network("b", 3, 2), scan_ms=20, samples_per_scan=16, seed=5,
                        age_rate=0.0, compensator=FAST, **extra)]


def run(scenario, timeout=120):
    return asyncio.run(asyncio.wait_for(scenario(), timeout))


async def _reports_until(host, done, timeout=60.0):
    """Take reports until ``done(latest by network)``; every report taken, in order."""
    latest, taken = {}, []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not done(latest):
        assert loop.time() < end, f"not reached: {({k: v.snapshot.scan for k, v in latest.items()})}"
        for name, report in host.take().items():
            latest[name] = report
            taken.append(report)
        await asyncio.sleep(0.02)
    return latest, taken


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_two_networks_scan_on_their_own_and_answer_commands(isolation):
    async def scenario():
        host = open_host(isolation)
        first = await host.start(_specs(), {})
        assert set(first) == {"line1", "line2"} and first["line1"].snapshot.scan == 0
        assert len(first["line1"].snapshot.layers[0].gain) == 4 and len(first["line2"].snapshot.layers[0].gain) == 3
        await host.run()
        try:
            latest, taken = await _reports_until(host, lambda r: len(r) == 2 and min(
                x.snapshot.scan for x in r.values()) >= 40 and all(
                x.snapshot.layers[0].state is DriftState.NOMINAL for x in r.values()))
            # Each network keeps its own period: line2 scans half as often as line1.
            assert latest["line1"].stats.period_ms == 10.0 and latest["line2"].stats.period_ms == 20.0
            assert latest["line1"].stats.cycles > latest["line2"].stats.cycles
            # A report nobody took is merged, its events kept: every calibration event arrives.
            kinds = {(r.network, e.kind.value) for r in taken for e in r.snapshot.events}
            assert {("line1", "calibrated"), ("line2", "calibrated")} <= kinds
            # Commands run between scans; a refused one changes nothing and says why.
            await host.command("line2", "set_age", 3600.0)
            latest, _ = await _reports_until(host, lambda r: "line2" in r and r["line2"].snapshot.age_s == 3600.0)
            assert latest["line2"].state is not None          # a command is followed by a save
            with pytest.raises(ValueError, match="age must be a finite number"):
                await host.command("line2", "set_age", float("nan"))
            with pytest.raises(ValueError, match="unknown command 'explode'"):
                await host.command("line1", "explode")
            with pytest.raises(ValueError, match="no network 'line3'"):
                await host.command("line3", "calibrate")
            await host.command("line1", "calibrate")
            await _reports_until(host, lambda r: "line1" in r and
                                 r["line1"].snapshot.layers[0].state is DriftState.CALIBRATING)
            host.set_period("line1", 0.05)
            await _reports_until(host, lambda r: "line1" in r and r["line1"].stats.period_ms == 50.0)
            with pytest.raises(ValueError, match="within 5..10000 ms"):
                host.set_period("line1", 0.001)
        finally:
            final = await host.stop()
        assert set(final) == {"line1", "line2"}
        state, scan = final["line2"]
        assert scan >= 40 and state["age_s"] == 3600.0
        json.dumps(state)  # what the store takes
        return final

    final = run(scenario)

    async def restart():
        host = open_host(isolation)
        states = {name: state for name, (state, _) in final.items()}
        first = await host.start(_specs(), states)
        await host.stop()
        return first

    first = run(restart)
    assert first["line2"].snapshot.scan == final["line2"][1] and first["line2"].snapshot.age_s == 3600.0


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_a_network_that_cannot_be_built_or_restored_starts_nothing(isolation):
    async def bad_tag_map_free_plc_backend():
        host = open_host(isolation)
        specs = _specs()
        specs[1] = NetworkSpec(name="line2", network=_network("b", 3, 2), backend="plc")
        with pytest.raises(ValueError, match="network 'line2': "):
            await host.start(specs, {})
        await host.stop()

    async def state_of_another_network():
        host = open_host(isolation)
        with pytest.raises(StateRefused, match="network 'line1': "):
            await host.start(_specs(), {"line1": {"format": 1, "scan": 3}})
        await host.stop()

    run(bad_tag_map_free_plc_backend)
    run(state_of_another_network)


def test_the_servers_side_sees_its_engine_process_die():
    async def scenario():
        host = ProcessHost()
        await host.start(_specs(), {})
        await host.run()
        await _reports_until(host, lambda r: len(r) == 2)
        os.kill(host.process.pid, signal.SIGKILL)
        await asyncio.wait_for(host.ended.wait(), 30)
        assert "the scan engine process ended" in host.failure
        with pytest.raises(EngineStopped):
            await host.command("line1", "calibrate")
        assert await host.stop() == {}

    run(scenario)


def test_an_engine_process_ends_when_its_server_is_gone():
    async def scenario():
        host = ProcessHost()
        await host.start(_specs(), {})
        await host.run()
        process = host.process
        host._sock.shutdown(socket.SHUT_RDWR)   # as when the server's process is killed: its end closes
        code = await asyncio.get_running_loop().run_in_executor(None, process.wait, 30)
        assert code == 0
        await host.stop()

    run(scenario)


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_a_trace_keeps_every_cycles_timings(isolation):
    async def scenario():
        host = open_host(isolation)
        await host.start(_specs(), {})
        await host.run()
        try:
            latest, _ = await _reports_until(host, lambda r: len(r) == 2)
            host.trace(30)
            await _reports_until(host, lambda r: len(r) == 2 and all(
                x.stats.cycles >= latest[name].stats.cycles + 35 for name, x in r.items()))
            traces = await host.traces()
        finally:
            await host.stop()
        trace = traces["line1"]
        assert len(trace.cycle_s) == len(trace.compute_s) == len(trace.state) == 30
        assert all(c > 0 for c in trace.compute_s) and all(x >= r for x, r in zip(trace.cycle_s, trace.read_s))
        assert len(traces["line2"].cycle_s) == 30

    run(scenario)
