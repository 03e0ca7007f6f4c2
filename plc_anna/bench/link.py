"""``plc-anna bench link``: the PLC write-back on loopback, next to a bare array write in the same run.

For each protocol a synthetic one-layer network of ``outputs`` columns
(:func:`~plc_anna.bench.cycle.synthetic_network`, ideal device) runs in a
:class:`~plc_anna.simulated_plc.program.SimulatedPlc` served over real OPC UA or real
Modbus TCP on 127.0.0.1, cycling every ``scan_ms``. A :class:`~plc_anna.plc.link.PlcLink`
with the simulated PLC's own tag map (no rate limit, no deadband) runs
``scans`` scans as the server runs it (:meth:`~plc_anna.plc.link.PlcLink.run`:
heartbeat on absolute deadlines, one set/status cycle after each; a scan whose
cycle was skipped counts), its target a seeded, slowly moving
gain/offset set, so every set the PLC accepted is followed by a new one.
What each number measures:

- ``write_ms``: the batched write of a set (``GainSet``, ``OffsetSet``,
  ``CommitCounter``: one OPC UA Write request, or the Modbus FC 16 requests in
  order), as :attr:`PlcLink.write_s` records it. ``verify_ms`` is the
  read-back with the status that follows it; ``heartbeat_ms`` a heartbeat
  write. The link runs as the server runs it (:meth:`PlcLink.run`): the
  heartbeat on absolute deadlines, a set/status cycle after each heartbeat.
- ``bare_write_ms``: after the link run, in the same process against the same
  simulated PLC, a plain client (``asyncua.Client.write_values`` with one
  Float array; ``pymodbus`` ``write_registers`` of the same registers in
  requests of 123) writes ``GainSet`` ``scans`` times on the same scan period.
- ``missed_heartbeats``: scans whose heartbeat was not written (the write
  failed, or the heartbeat task overran its period); ``late_cycles``: scans
  whose set/status cycle was skipped because the one before overran its
  period; ``plc_fault_cycles``: PLC cycles whose watchdog held the correction
  during the measured scans.

- ``reconnect_s``: the PLC's communication restarts (``restart(down_s)``: the
  server stops listening and drops its clients for ``down_s``, the program
  runs on and its watchdog holds); the time from the PLC listening again to
  the link's first cycle connected again. ``bump``: the largest change of an
  applied gain between consecutive PLC cycles, from the restart until a
  second after the link resumed (the PLC's ramp bounds it by its
  ``MaxGainStep``, :data:`PLC_MAX_GAIN_STEP`, whatever is written: "no bump"
  means nothing larger).

The simulated PLC runs in a process of its own, as a PLC is a machine of its
own: its cycle never competes with the link for the event loop. The first 50
cycles (connecting, the first sets) are not measured. The link gives up a
request after 0.5 s (``timeout_s``), the PLC's watchdog time.

Percentiles are numpy's over the measured cycles, wall-clock times from
:func:`time.perf_counter`. Timings move with machine load (``machine``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from plc_anna.bench.cycle import machine, percentiles_ms, synthetic_network
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.plc.link import PlcLink
from plc_anna.contract.tagmap import LinkSettings
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.testing import free_port

PROTOCOLS = ("opcua", "modbus")
#: The issue's targets: write-back p99 within this factor of the bare write, no missed heartbeat, resume time.
WRITE_FACTOR = 2.0
#: The simulated PLC's MaxGainStep: "no bump" means no applied gain moves more in one PLC cycle.
PLC_MAX_GAIN_STEP = 0.02
RESUME_S = 5.0


def _targets(gain_amplitude: float, n: int, seed: int) -> Callable[[float], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng([seed, n])
    phase, period = rng.uniform(0, 2 * np.pi, n), rng.uniform(5.0, 20.0, n)

    def at(t: float) -> tuple[np.ndarray, np.ndarray]:
        wave = np.sin(2 * np.pi * t / period + phase)
        return 1.0 + gain_amplitude * wave, 0.01 * wave
    return at


def _serve(protocol: str, plc: SimulatedPlc, endpoint: str):
    if protocol == "opcua":
        from plc_anna.simulated_plc.opcua import SimulatedPlcOpcUa
        return SimulatedPlcOpcUa(plc, endpoint)
    from plc_anna.simulated_plc.modbus import SimulatedPlcModbus
    return SimulatedPlcModbus(plc, endpoint)


async def _bare_writes(protocol: str, tag, endpoint: str, values: np.ndarray, scans: int,
                       period_s: float) -> list[float]:
    """``scans`` plain array writes of ``values`` to ``tag`` on the same period."""
    durations = []
    if protocol == "opcua":
        from asyncua import Client, ua
        client = Client(endpoint, timeout=2.0)
        await client.connect()
        try:
            node = client.get_node(tag.address)
            deadline = time.monotonic()
            for _ in range(scans):
                start = time.perf_counter()
                await client.write_values([node], [ua.DataValue(ua.Variant(values.tolist(), ua.VariantType.Float))])
                durations.append(time.perf_counter() - start)
                deadline += period_s
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        finally:
            await client.disconnect()
        return durations
    from urllib.parse import urlsplit

    from pymodbus.client import AsyncModbusTcpClient
    parts = urlsplit(endpoint)
    registers = values.astype(">f4").view(">u2").astype(int).tolist()
    client = AsyncModbusTcpClient(parts.hostname, port=parts.port, timeout=2.0, retries=0)
    await client.connect()
    try:
        deadline = time.monotonic()
        for _ in range(scans):
            start = time.perf_counter()
            for first in range(0, len(registers), 123):
                await client.write_registers(tag.address + first, registers[first:first + 123])
            durations.append(time.perf_counter() - start)
            deadline += period_s
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    finally:
        client.close()
    return durations


class _RecordingPlc(SimulatedPlc):
    """The simulated PLC, recording each cycle's applied gains and fault bit while asked to."""

    counting = False    #: count the cycles whose watchdog holds (in faults)
    recording = False   #: append (time, applied gains, fault) of every cycle to history
    faults = 0
    history: list

    def cycle(self) -> None:
        super().cycle()
        block = self.block(0)
        self.faults += int(self.counting and block.fault)
        if self.recording:
            self.history.append((time.monotonic(), block.applied_gain.copy(), bool(block.fault)))


def _plc_process(protocol: str, outputs: int, scan_ms: float, seed: int, endpoint: str, conn) -> None:
    """The PLC's own process (a PLC is another machine): serve, then answer the benchmark's commands."""
    # The restart drops connections on purpose: the libraries' error logs (with frame dumps) are noise here.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    asyncio.run(_plc_main(protocol, outputs, scan_ms, seed, endpoint, conn))


async def _plc_main(protocol: str, outputs: int, scan_ms: float, seed: int, endpoint: str, conn) -> None:
    net = SimulatedNetwork(synthetic_network(outputs, seed=seed), "ideal", seed=seed)
    plc = _RecordingPlc(net, cycle_s=scan_ms / 1000.0, trace_length=1, seed=seed)
    async with _serve(protocol, plc, endpoint) as served:
        conn.send(("ready", None))
        while True:
            command, argument = await asyncio.to_thread(conn.recv)
            if command == "count":
                plc.faults, plc.counting = 0, bool(argument)
                conn.send(("faults", plc.faults))
            elif command == "faults":
                conn.send(("faults", plc.faults))
            elif command == "restart":
                plc.history, plc.recording = [], True
                before = plc.block(0).applied_gain.copy()
                await served.restart(argument)
                back_up = time.monotonic()
                conn.send(("back_up", back_up))
                # Record until the link has been back (no fault) for a second, or 10 s.
                while time.monotonic() - back_up < 10.0:
                    await asyncio.sleep(0.1)
                    resumed = [t for t, _, fault in plc.history if t > back_up and not fault]
                    if resumed and time.monotonic() - resumed[0] > 1.0:
                        break
                plc.recording = False
                gains = [gain for _, gain, _ in plc.history]
                steps = [float(np.max(np.abs(b - a))) for a, b in itertools.pairwise([before, *gains])]
                resumed = any(t > back_up and not fault for t, _, fault in plc.history)
                conn.send(("restart", {"bump": max(steps, default=0.0) if resumed else None}))
            elif command == "stop":
                conn.send(("stopped", None))
                return


async def _one_run(protocol: str, outputs: int, scan_ms: float, scans: int, seed: int, down_s: float,
                   progress: Callable[[int], None] | None) -> dict[str, Any]:
    period = scan_ms / 1000.0
    scheme = "opc.tcp" if protocol == "opcua" else "modbus"
    endpoint = f"{scheme}://127.0.0.1:{free_port()}"
    settings = LinkSettings(deadband=0.0, min_commit_interval_s=0.0, max_gain_step=0.02, commit_timeout_s=1.0,
                            reconnect_min_s=0.1, reconnect_max_s=1.0)
    # The tag map comes from an identical PLC object here; the PLC itself runs in its own process.
    net = SimulatedNetwork(synthetic_network(outputs, seed=seed), "ideal", seed=seed)
    tag_map = SimulatedPlc(net, cycle_s=period, trace_length=1, seed=seed).tag_map(protocol, endpoint, link=settings)
    # A request the restarting PLC never answers is given up after 0.5 s (the PLC's watchdog time).
    tag_map = dataclasses.replace(tag_map, plc=dataclasses.replace(tag_map.plc, timeout_s=0.5))
    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe()
    process = context.Process(target=_plc_process, args=(protocol, outputs, scan_ms, seed, endpoint, child_conn),
                              daemon=True)
    process.start()
    try:
        await _expect(conn, "ready", 60.0)
        events: list = []
        targets = _targets(0.05, outputs, seed)
        link = PlcLink(tag_map, on_event=events.append)
        start = time.monotonic()
        cycles_run = 0

        def before_cycle() -> None:
            nonlocal cycles_run
            cycles_run += 1
            link.set_target(0, *targets(time.monotonic() - start))

        async def scans_passed(n: int) -> None:
            """Until ``n`` more scans passed: cycles run, or skipped because the one before overran."""
            goal = cycles_run + link.late_cycles + n
            while cycles_run + link.late_cycles < goal:
                await asyncio.sleep(period)

        # The link as the server runs it: heartbeat on its own deadlines, one set/status cycle after each.
        stop = asyncio.Event()
        running = asyncio.create_task(link.run(period, stop, before_cycle))
        await scans_passed(50)   # connect and settle before measuring
        link.write_s.clear(), link.verify_s.clear(), link.heartbeat_s.clear()
        link.missed_heartbeats = link.late_cycles = 0
        cycles_run = 0
        conn.send(("count", True))
        await _expect(conn, "faults", 10.0)
        for chunk in [100] * (scans // 100) + [scans % 100]:
            await scans_passed(chunk)
            if progress is not None and chunk:
                progress(chunk)
        conn.send(("faults", None))
        faults = await _expect(conn, "faults", 10.0)
        measured = {"write_s": list(link.write_s), "verify_s": list(link.verify_s),
                    "heartbeat_s": list(link.heartbeat_s), "missed": link.missed_heartbeats, "sets": link.sets_written,
                    "late": link.late_cycles}
        # The PLC restarts its communication; the link keeps running through it.
        conn.send(("restart", down_s))
        back_up = resumed = None
        restart: dict[str, Any] | None = None
        limit = time.monotonic() + down_s + 30.0
        while restart is None and time.monotonic() < limit:
            await asyncio.sleep(period)
            if resumed is None and back_up is not None and link.connected:
                resumed = time.monotonic()
            while conn.poll():
                kind, value = conn.recv()
                if kind == "back_up":
                    back_up = value
                elif kind == "restart":
                    restart = value
        stop.set()
        await running   # closes the link's connection
        bare = await _bare_writes(protocol, tag_map.layers[0].gain_set, endpoint,
                                  np.asarray(targets(0.0)[0], np.float32), scans, period)
        conn.send(("stop", None))
        await _expect(conn, "stopped", 10.0)
    finally:
        process.join(timeout=10.0)
        if process.is_alive():
            process.kill()
    restart = restart or {"bump": None}
    return {
        "protocol": protocol, "outputs": outputs, "scan_ms": scan_ms, "scans": scans,
        "write_ms": percentiles_ms(measured["write_s"], ("p50", "p99")),
        "bare_write_ms": percentiles_ms(bare, ("p50", "p99")),
        "missed_heartbeats": measured["missed"],
        "late_cycles": measured["late"],
        "reconnect_s": None if resumed is None or back_up is None else round(max(0.0, resumed - back_up), 3),
        "bump": restart["bump"],
        "verify_ms": percentiles_ms(measured["verify_s"], ("p50", "p99")),
        "heartbeat_ms": percentiles_ms(measured["heartbeat_s"], ("p50", "p99")),
        "write_max_ms": percentiles_ms(measured["write_s"], ("max",))["max"],
        "sets_written": measured["sets"], "plc_fault_cycles": faults,
        "down_s": down_s, "plc_max_gain_step": PLC_MAX_GAIN_STEP,
        "events": [f"{event.kind}: {event.message}" for event in events],
    }


async def _expect(conn, kind: str, timeout_s: float) -> Any:
    """The next message of the PLC process, which must be ``kind``."""
    if not await asyncio.to_thread(conn.poll, timeout_s):
        raise RuntimeError(f"the simulated PLC process did not answer {kind!r} within {timeout_s:g} s")
    got, value = conn.recv()
    if got != kind:
        raise RuntimeError(f"the simulated PLC process answered {got!r}, expected {kind!r}")
    return value


def check_targets(run: dict[str, Any]) -> dict[str, bool | None]:
    """Each target of the issue for one run: met (True), missed (False), or not measured (None)."""
    reconnect = run["reconnect_s"]
    return {
        "write_p99_within_2x_bare": run["write_ms"]["p99"] <= WRITE_FACTOR * run["bare_write_ms"]["p99"],
        "no_missed_heartbeat": run["missed_heartbeats"] == 0 if run["scans"] >= 10_000 else None,
        "resumes_within_5_s": None if reconnect is None else reconnect <= RESUME_S,
        "no_bump": None if run["bump"] is None else run["bump"] <= run["plc_max_gain_step"] * (1 + 1e-5),
    }


def run_link_bench(protocols: Sequence[str] = PROTOCOLS, outputs: int = 256, scan_ms: float = 10.0,
                   scans: int = 10_000, seed: int = 0, down_s: float = 1.0,
                   progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run the benchmark for each protocol; the report that ``--json`` writes."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocol(s) {', '.join(unknown)}; valid: {', '.join(PROTOCOLS)}")
    if outputs < 1 or scans < 1 or not 1.0 <= scan_ms <= 10_000.0:
        raise ValueError("outputs and scans must be >= 1 and scan_ms within 1..10000")
    runs = []
    for protocol in protocols:
        run = asyncio.run(_one_run(protocol, outputs, scan_ms, scans, seed, down_s, progress))
        run["targets"] = check_targets(run)
        runs.append(run)
    return {"runs": runs, "machine": machine(), "seed": seed}
