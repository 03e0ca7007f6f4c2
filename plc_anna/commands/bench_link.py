"""``plc-anna bench link``: the PLC write-back on loopback, over OPC UA and Modbus TCP."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from plc_anna.commands.common import finish_report, print_targets


def _pair(values: dict, digits: int = 2) -> str:
    return f"{values['p50']:.{digits}f}/{values['p99']:.{digits}f}"


@click.command("link")
@click.option("--protocol", "protocols", multiple=True, type=click.Choice(["opcua", "modbus"]),
              help="Protocol(s) to measure (repeatable; default both).")
@click.option("--outputs", default=256, show_default=True, type=click.IntRange(1, 4096),
              help="Outputs of the corrected layer (gains and offsets per set).")
@click.option("--scan-ms", default=10.0, show_default=True, type=click.FloatRange(1.0, 10000.0),
              help="Scan period of the link and cycle time of the PLC.")
@click.option("--scans", default=10000, show_default=True, type=click.IntRange(min=10), help="Measured scans per run.")
@click.option("--down-s", default=1.0, show_default=True, type=click.FloatRange(0.0, 60.0),
              help="How long the PLC's communication stays down in the restart test.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
def bench_link(protocols, outputs, scan_ms, scans, down_s, seed, json_path) -> None:
    """Time the write-back to a simulated PLC (in its own process) next to a bare array write.

    Per protocol: write and read-back times of each set, heartbeat-only writes, missed heartbeats,
    the PLC's watchdog holds, and a communication restart of the PLC: time to resume and the
    largest jump of an applied gain across it. docs/benchmarks.md#plc-link explains every number.
    """
    from plc_anna.bench.link import PROTOCOLS, run_link_bench

    protocols = protocols or PROTOCOLS
    console = Console()
    start = time.monotonic()
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("scans", total=scans * len(protocols))
            report = run_link_bench(protocols, outputs=outputs, scan_ms=scan_ms, scans=scans, seed=seed,
                                    down_s=down_s, progress=lambda n: progress.advance(task, n))
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title=f"PLC link, {outputs} outputs, {scan_ms:g} ms scan (ms)")
    for name in ("protocol", "scans", "write p50/p99", "bare p50/p99", "read-back p50/p99", "heartbeat p50/p99",
                 "missed beats", "late cycles", "PLC holds", "resume (s)", "bump"):
        table.add_column(name, justify="right")
    for run in report["runs"]:
        table.add_row(run["protocol"], str(run["scans"]), _pair(run["write_ms"]), _pair(run["bare_write_ms"]),
                      _pair(run["verify_ms"]), _pair(run["heartbeat_ms"]), str(run["missed_heartbeats"]),
                      str(run["late_cycles"]), str(run["plc_fault_cycles"]),
                      "-" if run["reconnect_s"] is None else f"{run['reconnect_s']:.2f}",
                      "-" if run["bump"] is None else f"{run['bump']:.3g}")
    console.print(table)
    for run in report["runs"]:
        print_targets(console, run["targets"], "needs 10000 scans", prefix=f"{run['protocol']}: ")
    finish_report(console, report, json_path, time.monotonic() - start)
