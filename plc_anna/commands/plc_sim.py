"""``plc-anna plc-sim``: a simulated PLC over OPC UA or Modbus TCP, for ``serve`` and ``commission`` to talk to.

The program (:class:`~plc_anna.simulated_plc.program.SimulatedPlc`) corrects every layer of a
simulated network with one ``FB_AnnaCorrection`` each; ``--tag-map-out`` writes the
tag map a client needs. Runs until Ctrl-C or SIGTERM, or for ``--duration`` seconds.
``docs/simulated-plc.md`` describes the tags and their addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from plc_anna.commands.common import EndpointUnavailable, quiet
from plc_anna.simulated_plc.program import PASSWORD_ENV

DEFAULT_ENDPOINTS = {"opcua": "opc.tcp://127.0.0.1:4841", "modbus": "modbus://127.0.0.1:5020"}
#: The network starts as freshly programmed, one minute old (as ``plc-anna serve`` starts it).
START_AGE_S = 60.0


@click.command("plc-sim")
@click.option("--protocol", type=click.Choice(["opcua", "modbus"]), default="opcua", show_default=True,
              help="The protocol the PLC serves.")
@click.option("--target", type=click.Choice(["codesys", "twincat", "s7-1500", "plcopen-xml"]),
              help="OPC UA: whose address space to serve, the NodeIds plc-anna plc-code generates a tag map for "
                   "[default: codesys]. Modbus serves OpenPLC's register map.")
@click.option("--endpoint", help="URL to listen on [default: opc.tcp://127.0.0.1:4841 or modbus://127.0.0.1:5020].")
@click.option("--net", default="thermocouple", show_default=True, help="Network name or .npz path.")
@click.option("--device", default="pcm", show_default=True, help="Device preset or .toml path.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Device and process seed.")
@click.option("--cycle-ms", default=10.0, show_default=True, type=click.FloatRange(1.0, 10000.0),
              help="PLC cycle time (CycleTime) in milliseconds.")
@click.option("--age-rate", default=1.0, show_default=True, type=click.FloatRange(min=0.0),
              help="Simulated device seconds per real second (0: the device does not age).")
@click.option("--trace-length", default=64, show_default=True, type=click.IntRange(1, 100000),
              help="Rows of each layer's trace ring buffer.")
@click.option("--samples-per-cycle", default=1, show_default=True, type=click.IntRange(1, 4096),
              help="Process samples per cycle, as an oversampling input card delivers them.")
@click.option("--user", help="OPC UA: the only user name accepted (anonymous when not given).")
@click.option("--password", envvar=PASSWORD_ENV, show_envvar=True, help="OPC UA: the password of --user.")
@click.option("--word-order", type=click.Choice(["big", "little"]), default="big", show_default=True,
              help="Modbus: word order of 32- and 64-bit values.")
@click.option("--tag-map-out", type=click.Path(dir_okay=False), help="Write the tag map (TOML) for clients here.")
@click.option("--duration", type=click.FloatRange(min=0.0), help="Stop after this many seconds.")
def plc_sim(protocol: str, target: str, endpoint: str | None, net: str, device: str, seed: int, cycle_ms: float,
            age_rate: float, trace_length: int, samples_per_cycle: int, user: str | None, password: str | None, word_order: str,
            tag_map_out: str | None, duration: float | None) -> None:
    """Run a simulated PLC: one correction block per layer of a simulated network, until Ctrl-C."""
    from plc_anna.device.simulated import SimulatedNetwork
    from plc_anna.simulated_plc.program import SimulatedPlc
    from plc_anna.contract.tagmap import tag_map_to_toml

    if protocol == "modbus" and user:
        raise click.UsageError("Modbus TCP has no login: --user is for --protocol opcua")
    if protocol == "modbus" and target:
        raise click.UsageError("Modbus serves OpenPLC's register map: --target is for --protocol opcua")
    if user and not password:
        raise click.UsageError(f"--user needs --password (or {PASSWORD_ENV} in the environment)")
    endpoint = endpoint or DEFAULT_ENDPOINTS[protocol]
    try:
        network = SimulatedNetwork(net, device, seed=seed)
        network.set_age(START_AGE_S)
        plc = SimulatedPlc(network, cycle_s=cycle_ms / 1000.0, trace_length=trace_length, age_rate=age_rate,
                           seed=seed, samples_per_cycle=samples_per_cycle)
        if protocol == "opcua":
            from plc_anna.simulated_plc.opcua import SimulatedPlcOpcUa
            server = SimulatedPlcOpcUa(plc, endpoint, user=user, password=password if user else None,
                                       target=target or "codesys")
        else:
            from plc_anna.simulated_plc.modbus import SimulatedPlcModbus
            server = SimulatedPlcModbus(plc, endpoint, word_order=word_order)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> None:
        async with server:
            tag_map = server.tag_map()
            if tag_map_out:
                try:
                    Path(tag_map_out).write_text(tag_map_to_toml(tag_map))
                except OSError as exc:
                    raise click.ClickException(f"cannot write the tag map {tag_map_out}: {exc}") from None
            if not quiet():
                click.echo(f"simulated PLC: {network.network.name} on {device} (seed {seed}), "
                           f"{plc.n_layers} layers corrected, cycle {cycle_ms:g} ms, listening on {endpoint}")
                click.echo(f"tags: {_where(protocol, server)}")
                if tag_map_out:
                    click.echo(f"tag map: {tag_map_out}")
            await _until_stopped(duration)

    try:
        asyncio.run(run())
    except OSError as exc:
        raise EndpointUnavailable(endpoint, exc) from None
    if not quiet():
        click.echo(f"stopped after {plc.cycles} cycles ({server.overruns} skipped deadlines)")


def _where(protocol: str, server) -> str:
    if protocol == "opcua":
        layer, device = server.style.nodeid(0, "<Tag>"), server.style.variable_list(None)
        return f"{layer.replace('_L0', '_L<k>')} and ...{device}.DeviceAge, DeviceTemperature"
    first = server.address(0, "GainSet")
    return (f"holding registers of unit 1 from {first} (layer 1 at {server.address(1, 'GainSet')})"
            if server.plc.n_layers > 1 else f"holding registers of unit 1 from {first}") + \
        f", DeviceAge at {server.address(None, 'DeviceAge')}"


async def _until_stopped(duration: float | None) -> None:
    """Return after ``duration`` seconds, or on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        if duration is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
