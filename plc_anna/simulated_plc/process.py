"""A simulated PLC in a process of its own, as a PLC is a machine of its own: for demos and test benches.

``python -m plc_anna.simulated_plc.process`` reads one JSON line of
:class:`SimulatedPlcSettings` on stdin, starts the simulated PLC (its program and its
OPC UA or Modbus TCP server; the network freshly programmed, ``start_age_s``
old), and prints one JSON line ``{"tag_map": TOML}``. It then takes JSON lines
``{"age_s": seconds}`` on stdin: the age of the simulated hardware, the test
bench's knob (a real network ages by itself). When stdin closes it stops and
prints ``{"cycles": n, "overruns": n}``.

:class:`PlcProcess` runs it from async code and reads the tag map for the
clients: the server's link, and anyone who reads the PLC over its protocol.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tomllib
from dataclasses import asdict, dataclass

from plc_anna.contract.tagmap import TagMap, parse_tag_map, tag_map_to_toml
from plc_anna.subprocesses import child_env, end_child

#: How long the PLC may take to start (s).
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class SimulatedPlcSettings:
    """The simulated PLC to run: its network and device, its protocol and address, its cycle."""

    protocol: str = "opcua"
    endpoint: str = "opc.tcp://127.0.0.1:4841"
    net: str = "thermocouple"
    device: str = "pcm"
    seed: int = 0
    cycle_ms: float = 20.0
    samples_per_cycle: int = 1
    trace_length: int = 64
    start_age_s: float = 60.0


class PlcProcess:
    """A simulated PLC process (see the module docstring): ``async with PlcProcess(settings) as plc:``.

    :attr:`tag_map` is the PLC's tag map; :meth:`set_age` moves its hardware's age. After the block,
    :attr:`cycles` and :attr:`overruns` are the PLC's own counts.
    """

    def __init__(self, settings: SimulatedPlcSettings) -> None:
        self.settings = settings
        self.tag_map: TagMap | None = None
        self.cycles: int | None = None
        self.overruns: int | None = None
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> PlcProcess:
        self._process = process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "plc_anna.simulated_plc.process", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=child_env(), start_new_session=True)
        process.stdin.write(json.dumps(asdict(self.settings)).encode() + b"\n")
        await process.stdin.drain()
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
            answer = json.loads(line or b"{}")
        except (TimeoutError, ValueError):
            answer = {}
        if "tag_map" not in answer:
            await self._end()
            raise RuntimeError(answer.get("error") or f"the simulated PLC did not start ({self.settings.endpoint})")
        self.tag_map = parse_tag_map(tomllib.loads(answer["tag_map"]), source=f"simulated PLC {self.settings.endpoint}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._end()

    async def set_age(self, age_s: float) -> None:
        """Set the age of the PLC's simulated network (s)."""
        self._process.stdin.write(json.dumps({"age_s": float(age_s)}).encode() + b"\n")
        await self._process.stdin.drain()

    async def _end(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        for line in await end_child(process):
            try:
                counts = json.loads(line)
            except ValueError:
                continue
            self.cycles, self.overruns = counts.get("cycles"), counts.get("overruns")


async def _serve(settings: SimulatedPlcSettings) -> None:
    from plc_anna.device.simulated import SimulatedNetwork
    from plc_anna.simulated_plc.program import SimulatedPlc

    network = SimulatedNetwork(settings.net, settings.device, seed=settings.seed)
    network.set_age(settings.start_age_s)
    plc = SimulatedPlc(network, cycle_s=settings.cycle_ms / 1000.0, trace_length=settings.trace_length,
                       samples_per_cycle=settings.samples_per_cycle, seed=settings.seed)
    if settings.protocol == "opcua":
        from plc_anna.simulated_plc.opcua import SimulatedPlcOpcUa as PlcServer
    else:
        from plc_anna.simulated_plc.modbus import SimulatedPlcModbus as PlcServer
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with PlcServer(plc, settings.endpoint) as server:
        print(json.dumps({"tag_map": tag_map_to_toml(server.tag_map())}), flush=True)
        while line := await reader.readline():
            command = json.loads(line)
            if "age_s" in command:
                network.set_age(float(command["age_s"]))
    print(json.dumps({"cycles": plc.cycles, "overruns": server.overruns}), flush=True)


def main() -> None:
    settings = SimulatedPlcSettings(**json.loads(sys.stdin.readline()))
    try:
        asyncio.run(_serve(settings))
    except (ValueError, OSError) as exc:
        print(json.dumps({"error": f"the simulated PLC did not start: {exc}"}), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
