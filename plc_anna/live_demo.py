"""The end-to-end demo behind ``plc-anna demo``: network, PLC and server, over real protocols.

Three parts run on this machine, on loopback:

1. a simulated analog network (the hardware), wired to
2. a simulated PLC (:mod:`plc_anna.simulated_plc.program`) in a process of its
   own (:mod:`plc_anna.simulated_plc.process`: a PLC is another machine),
   served over OPC UA (or Modbus TCP), that runs the ladder examples'
   correction block for every layer, and
3. the plc-anna OPC UA server with the PLC-observed backend: it reads the
   network's inputs and raw outputs from the PLC's tags, runs the compensator
   and writes the gain/offset sets back through the PLC link.

After a calibration at an age of one minute, the network ages on a log-time
schedule to ``final_age_s`` in ``duration_s`` of wall time (the demo sets the
simulated hardware's age in the PLC's process). Each refresh reads the
server's state with an OPC UA client (as an HMI would) and the corrections the
PLC applies over the PLC's own protocol, and scores the held-out data through
a twin of the network (the same seed, the same age) twice: uncorrected, and
with the gains and offsets the PLC applies; the errors are against the ideal
digital network, in the network's engineering unit. The summary states the
PLC link's missed heartbeats against its target of 0.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plc_anna.bench.streams import split
from plc_anna.activations import activate
from plc_anna.device.network import digital_forward, load_network
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.contract.tagmap import tag_map_to_toml
from plc_anna.units import format_age, parse_ages

START_AGE_S = 60.0
CHECKPOINTS = "1h,1d,30d,1y,10y"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs; the defaults show ten years in about a minute."""

    protocol: str = "opcua"
    """How the server reaches the PLC; over ``modbus`` the trace moves 125 registers a request, so keep
    ``samples_per_cycle`` small there (a handful)."""
    net: str = "thermocouple"
    device: str = "pcm"
    seed: int = 0
    duration_s: float = 60.0
    final_age_s: float = 10 * 365.25 * 86400.0
    scan_ms: int = 20
    cycle_ms: float = 20.0
    samples_per_cycle: int = 64
    """Process samples the PLC takes each cycle (an oversampling input card); the trace holds 4 cycles."""
    refresh_s: float = 0.5
    calibration_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.protocol not in ("opcua", "modbus"):
            raise ValueError(f"protocol must be opcua or modbus, got {self.protocol!r}")
        if not (math.isfinite(self.duration_s) and self.duration_s >= 1.0):
            raise ValueError(f"the demo's duration must be at least 1 s, got {self.duration_s}")
        if not (math.isfinite(self.final_age_s) and self.final_age_s > START_AGE_S):
            raise ValueError(f"the final age must be after {START_AGE_S:g} s, got {self.final_age_s}")


def chain_outputs(sim: SimulatedNetwork, X: np.ndarray, corrections: list[tuple[np.ndarray, np.ndarray]] | None):
    """The network's outputs for ``X``, each layer corrected by ``(gain, offset)`` as the PLC does (None: raw)."""
    a = X
    for k, layer in enumerate(sim.network.layers):
        y = sim.read_layer(k, a)
        if corrections is not None:
            gain, offset = corrections[k]
            y = gain * y + offset
        a = activate(y, layer.activation)
    return a


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


async def run_live_demo(settings: DemoSettings = DemoSettings(),
                        on_row: Callable[[dict[str, Any]], None] | None = None,
                        on_phase: Callable[[str], None] | None = None,
                        on_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the demo; ``on_row`` gets each refresh's row, ``on_checkpoint`` the rows at the checkpoint ages
    (1h, 1d, 30d, 1y and the final age), ``on_phase`` a line per phase. Returns the summary."""
    from plc_anna.plc.transport import open_transport
    from plc_anna.server.app import PlcAnnaServer
    from plc_anna.server.config import ServerConfig
    from plc_anna.server.status import connect, read_status
    from plc_anna.simulated_plc.process import PlcProcess, SimulatedPlcSettings
    from plc_anna.testing import free_port

    def phase(text: str) -> None:
        if on_phase is not None:
            on_phase(text)

    network = load_network(settings.net)
    data = split(network)
    ideal = digital_forward(network, data.eval_X)
    twin = SimulatedNetwork(network, settings.device, seed=settings.seed)   # the PLC's hardware, for scoring
    twin.set_age(START_AGE_S)
    checkpoints = [age for age in parse_ages(CHECKPOINTS) if age < settings.final_age_s] + [settings.final_age_s]
    rows: list[dict[str, Any]] = []
    checkpoint_rows: list[dict[str, Any]] = []
    start_wall = time.monotonic()
    scheme = "opc.tcp" if settings.protocol == "opcua" else "modbus"
    plc_settings = SimulatedPlcSettings(
        protocol=settings.protocol, endpoint=f"{scheme}://127.0.0.1:{free_port()}", net=settings.net,
        device=settings.device, seed=settings.seed, cycle_ms=settings.cycle_ms,
        samples_per_cycle=settings.samples_per_cycle, trace_length=4 * settings.samples_per_cycle,
        start_age_s=START_AGE_S)
    with tempfile.TemporaryDirectory(prefix="plc-anna-demo-") as directory:
        directory = Path(directory)
        async with PlcProcess(plc_settings) as plc:
            phase(f"simulated PLC (its own process): {settings.protocol} at {plc_settings.endpoint}, cycle "
                  f"{settings.cycle_ms:g} ms, {settings.samples_per_cycle} samples per cycle")
            tag_map_path = directory / "tag_map.toml"
            tag_map_path.write_text(tag_map_to_toml(plc.tag_map))
            config = ServerConfig(
                config_dir=directory, endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc-anna", scan_ms=settings.scan_ms,
                network=settings.net, device_backend="plc", tag_map=str(tag_map_path), seed=settings.seed,
                age_rate=0.0, security={"policies": ["None"], "allow_anonymous": True})
            name = config.served_networks[0].name
            reader = PlcReader(open_transport(plc.tag_map.plc), plc.tag_map)
            async with PlcAnnaServer(config, networks={name: network}) as server, reader:
                link = server.networks[name].link
                phase(f"plc-anna server: {config.endpoint}, scan {settings.scan_ms} ms ({config.scan_isolation} "
                      "isolation), reading and writing the PLC's tags")
                async with connect(config.endpoint) as client:
                    phase("calibrating at an age of 1 minute (the t0 fingerprint)")
                    waited = time.monotonic()
                    while True:
                        status = await read_status(client)
                        if all(layer["state"] not in ("CALIBRATING",) for layer in status["layers"]):
                            break
                        if time.monotonic() - waited > settings.calibration_timeout_s:
                            raise RuntimeError(f"the compensator did not finish calibrating within "
                                               f"{settings.calibration_timeout_s:g} s (link: {link.last_error or 'ok'})")
                        await asyncio.sleep(0.1)
                    phase(f"calibrated in {time.monotonic() - waited:.1f} s; ageing to "
                          f"{format_age(settings.final_age_s)} in {settings.duration_s:g} s")
                    t0 = time.monotonic()
                    next_refresh = t0
                    next_checkpoint = 0
                    ratio = settings.final_age_s / START_AGE_S
                    while True:
                        elapsed = time.monotonic() - t0
                        age = START_AGE_S * ratio ** min(1.0, elapsed / settings.duration_s)
                        await plc.set_age(age)
                        twin.set_age(age)
                        done = elapsed >= settings.duration_s
                        if time.monotonic() >= next_refresh or done:
                            next_refresh += settings.refresh_s
                            row = await _row(client, read_status, reader, twin, data.eval_X, ideal, link, age)
                            rows.append(row)
                            while next_checkpoint < len(checkpoints) and age >= checkpoints[next_checkpoint] * 0.999:
                                checkpoint_rows.append({**row, "checkpoint": format_age(checkpoints[next_checkpoint])})
                                next_checkpoint += 1
                                if on_checkpoint is not None:
                                    on_checkpoint(checkpoint_rows[-1])
                            if on_row is not None:
                                on_row(row)
                        if done:
                            break
                        await asyncio.sleep(0.02)
                accepted = await reader.accepted_commits()
                status = link.status
        summary_link = {"sets_accepted": sum(accepted), "sets_written": status.sets_written,
                        "reconnects": status.reconnects, "heartbeats": status.heartbeat,
                        "missed_heartbeats": status.missed_heartbeats, "last_error": status.last_error,
                        "plc_cycles": plc.cycles, "plc_overruns": plc.overruns}
    final = rows[-1]
    targets = [{"target": "no missed PLC heartbeat", "limit": 0, "measured": status.missed_heartbeats,
                "met": status.missed_heartbeats == 0}]
    return {"settings": asdict(settings), "rows": rows, "checkpoints": checkpoint_rows, "final": final,
            "link": summary_link, "targets": targets, "unit": network.output_unit,
            "wall_s": time.monotonic() - start_wall}


class PlcReader:
    """What an HMI reads from the PLC over its own protocol: the corrections it applies, the sets it accepted."""

    def __init__(self, transport, tag_map) -> None:
        self.transport = transport
        self.layers = sorted(tag_map.layers, key=lambda layer: layer.index)

    async def __aenter__(self) -> PlcReader:
        await self.transport.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.transport.close()

    async def applied(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every layer's (AppliedGain, AppliedOffset), in one read."""
        values = await self.transport.read([tag for layer in self.layers
                                            for tag in (layer.applied_gain, layer.applied_offset)])
        return [(np.asarray(values[2 * k], dtype=float), np.asarray(values[2 * k + 1], dtype=float))
                for k in range(len(self.layers))]

    async def accepted_commits(self) -> list[int]:
        """Every layer's AcceptedCommit: the sets its correction block took."""
        return [int(v) for v in await self.transport.read([layer.accepted_commit for layer in self.layers])]


async def _row(client, read_status, reader: PlcReader, twin: SimulatedNetwork, X: np.ndarray, ideal: np.ndarray,
               link, age: float) -> dict[str, Any]:
    status = await read_status(client)
    applied = await reader.applied()
    raw = chain_outputs(twin, X, None)
    corrected = chain_outputs(twin, X, applied)
    last = status["layers"][-1]
    return {"age_s": age, "age": format_age(age), "states": [layer["state"] for layer in status["layers"]],
            "distance": last["distance"] if math.isfinite(last["distance"]) else None,
            "gain_min": float(applied[-1][0].min()), "gain_max": float(applied[-1][0].max()),
            "rmse_uncorrected": _rmse(raw, ideal), "rmse_corrected": _rmse(corrected, ideal),
            "connected": link.connected, "sets": 0 if link.status is None else link.status.sets_written}
