"""``plc-anna plc-code``: the PLC side of your own network, for CODESYS, TwinCAT, S7-1500, OpenPLC or PLCopen XML.

A thin click layer over :func:`plc_anna.plccode.generate`: every check runs before anything is
written, and a problem (a network too large for the target, a trace length that is no power of two,
an existing file) is a one-line error with exit code 1.
"""

from __future__ import annotations

import dataclasses

import click

from plc_anna.contract.layout import TARGETS
from plc_anna.contract.logic import DEFAULTS


@click.command("plc-code", short_help="PLC code for a network: CODESYS, TwinCAT, S7-1500, OpenPLC, PLCopen XML.")
@click.option("--net", required=True, help="The network the PLC's layers run: a shipped name or a .npz file.")
@click.option("--target", required=True, type=click.Choice(list(TARGETS)),
              help="The PLC family to generate for.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="The folder to write into.")
@click.option("--trace-length", type=click.IntRange(min=0), metavar="N",
              help="Rows of each layer's trace ring buffer, a power of two [default: 64; openplc: 0, it has no "
                   "room for one].")
@click.option("--cycle-ms", type=click.IntRange(min=1), default=round(DEFAULTS.cycle_s * 1000), show_default=True,
              help="The interval of the PLC task that runs the program (the blocks' CycleTime).")
@click.option("--endpoint", help="The PLC's endpoint in the tag map [default: where plc-anna plc-sim listens].")
@click.option("--device-name", help="OPC UA: the controller's name in the NodeIds (CODESYS: the device, S7: the "
                                    "PLC, TwinCAT: the PLC project) [default: the simulated PLC's].")
@click.option("--force", is_flag=True, help="Overwrite files that exist in the folder.")
def plc_code(net: str, target: str, out_dir: str, trace_length: int | None, cycle_ms: int, endpoint: str | None,
             device_name: str | None, force: bool) -> None:
    """Generate the PLC program for NET: the correction block, one variable list (or DB) per layer sized to
    the network, the calling program, for OpenPLC the Modbus register map, and the tag map (plc_anna.toml)
    that 'plc-anna commission validate' checks."""
    from plc_anna.device.network import load_network
    from plc_anna.plccode import generate, write

    try:
        network = load_network(net)
        parameters = dataclasses.replace(DEFAULTS, cycle_s=cycle_ms / 1000.0)
        code = generate(network, target, trace_length=trace_length, parameters=parameters, endpoint=endpoint,
                        device_name=device_name)
        paths = write(code, out_dir, force=force)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    program = code.program
    click.echo(f"{network.name}: {len(program.shapes)} layer(s) "
               f"({', '.join(f'{n_in} -> {n_out}' for n_in, n_out in program.shapes)}) for {target}, "
               f"trace length {program.trace_length}, task {cycle_ms} ms")
    for path in paths:
        click.echo(f"  {path}")
    click.echo(f"Check the tag map against the PLC: plc-anna commission validate {paths[-1]}")
