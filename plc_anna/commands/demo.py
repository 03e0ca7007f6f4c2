"""``plc-anna demo``: the simulated network, the simulated PLC and the server, ten years in a minute."""

from __future__ import annotations

import asyncio
import logging
import time

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from plc_anna.jsonio import write_json
from plc_anna.units import format_age, parse_ages


def _age(ctx, param, value: str) -> float:
    try:
        ages = parse_ages(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if len(ages) != 1:
        raise click.BadParameter(f"give one age, e.g. 10y, got {value!r}")
    return ages[0]


def _table(title: str, rows: list[dict], live: dict | None, unit: str) -> Table:
    table = Table(title=title)
    for name in ("age", "state", "d_FR", "PLC gains", "error raw", "corrected", "link"):
        table.add_column(name, justify="right", no_wrap=True)
    table.caption = f"errors: RMS against the ideal network, {unit}"
    for row in [*rows, *([live] if live else [])]:
        style = "dim" if row is live else None
        table.add_row(row.get("checkpoint", row["age"]) if row is not live else f"{row['age']} (now)",
                      row["states"][-1].capitalize(), "-" if row["distance"] is None else f"{row['distance']:.3g}",
                      f"{row['gain_min']:.3f}-{row['gain_max']:.3f}", f"{row['rmse_uncorrected']:.3g}",
                      f"{row['rmse_corrected']:.3g}",
                      f"{'up' if row['connected'] else 'DOWN'} {row['sets']}", style=style)
    return table


@click.command()
@click.option("--net", default="thermocouple", show_default=True, help="Network name or .npz path.")
@click.option("--device", default="pcm", show_default=True, help="Device preset or .toml path.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Device and process seed.")
@click.option("--duration", default=60.0, show_default=True, type=click.FloatRange(5.0, 3600.0),
              help="Wall-clock seconds the ageing takes.")
@click.option("--final-age", default="10y", show_default=True, callback=_age, help="Age to reach, e.g. 10y, 30d.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Save a plot of the errors and gains over age (needs matplotlib).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write every row and the summary as JSON.")
@click.option("--offline", is_flag=True,
              help="The compensator alone on both shipped networks, in-process (no PLC, no server): seconds.")
@click.option("--fleet", "fleet_demo", is_flag=True,
              help="Three simulated lines (servers and Sparkplug edge nodes), an MQTT broker and the fleet host, "
                   "with the fleet table live for --duration seconds.")
def demo(net, device, seed, duration, final_age, plot_path, json_path, offline, fleet_demo) -> None:
    """Age an analog network through ten years while plc-anna keeps it accurate, end to end.

    Three parts run on this machine, on loopback: a simulated analog network; a simulated PLC
    (CODESYS-like, over OPC UA, in a process of its own) running the ladder examples' correction block;
    and the plc-anna OPC UA server, which reads the network's inputs and raw outputs from the PLC's tags, detects the drift
    and writes gain/offset sets back. Each row: the network's age, the last layer's drift state and
    Fisher-Rao distance, the gains the PLC applies, and the RMS error of the network's outputs
    against the ideal digital network, uncorrected and with the PLC's correction.
    """
    if offline:
        _offline(device, seed)
        return
    if fleet_demo:
        _fleet(duration, json_path)
        return
    from plc_anna.live_demo import DemoSettings, run_live_demo

    try:
        settings = DemoSettings(net=net, device=device, seed=seed, duration_s=duration,
                                final_age_s=final_age)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if plot_path:
        try:
            import matplotlib  # noqa: F401 - only to fail before the run, not after it
        except ImportError:
            raise click.UsageError("--plot needs matplotlib: pip install 'plc-anna[bench]'") from None
    console = Console()
    # A PLC faults until the link's first heartbeat, by design: the demo's table shows the link instead.
    logging.getLogger("plc_anna").setLevel(logging.ERROR)
    state: dict = {"rows": [], "live": None, "unit": ""}
    title = f"{net} on {device}, seed {seed}: {format_age(final_age)} of drift in {duration:g} s"
    start = time.monotonic()
    with Live(_table(title, [], None, "-"), console=console, refresh_per_second=4) as live:
        def on_row(row: dict) -> None:
            state["live"] = row
            live.update(Group(_table(title, state["rows"], row, state["unit"] or "-")))

        def on_checkpoint(row: dict) -> None:
            state["rows"].append(row)

        def on_phase(text: str) -> None:
            console.print(f"[dim]{text}[/dim]")

        try:
            summary = asyncio.run(run_live_demo(settings, on_row=on_row, on_phase=on_phase,
                                                on_checkpoint=on_checkpoint))
        except (ValueError, RuntimeError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        live.update(_table(title, summary["checkpoints"], None, summary["unit"] or "-"))
    console.print()
    final, link, unit = summary["final"], summary["link"], f" {summary['unit']}" if summary["unit"] else ""
    better = final["rmse_uncorrected"] / max(final["rmse_corrected"], 1e-12)
    console.print(f"after {final['age']}: output error {final['rmse_uncorrected']:.3g}{unit} uncorrected, "
                  f"{final['rmse_corrected']:.3g}{unit} with the PLC's correction ({better:.1f}x smaller)")
    heartbeats = summary["targets"][0]
    console.print(f"PLC link: {link['sets_accepted']} sets accepted by the PLC (all layers), "
                  f"{link['reconnects']} reconnects, {link['missed_heartbeats']} missed heartbeats of "
                  f"{link['heartbeats']} (target 0: {'met' if heartbeats['met'] else 'NOT met'}); "
                  f"{format_age(final_age)} in {time.monotonic() - start:.0f} s of wall time")
    if json_path:
        write_json(json_path, summary)
        console.print(f"rows and summary written to {json_path}")
    if plot_path:
        _plot(summary, plot_path)
        console.print(f"plot saved to {plot_path}")


def _plot(summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    days = [row["age_s"] / 86400.0 for row in rows]
    unit = summary["unit"] or "output units"
    fig, (errors, gains) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    errors.plot(days, [row["rmse_uncorrected"] for row in rows], label="uncorrected")
    errors.plot(days, [row["rmse_corrected"] for row in rows], label="with the PLC's correction")
    errors.set_ylabel(f"RMS error ({unit})")
    errors.legend()
    gains.fill_between(days, [row["gain_min"] for row in rows], [row["gain_max"] for row in rows], alpha=0.5)
    gains.set_ylabel("applied gains (last layer)")
    gains.set_xlabel("age (days)")
    gains.set_xscale("log")
    fig.suptitle(f"{summary['settings']['net']} on {summary['settings']['device']}: drift compensated end to end")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _offline(device: str, seed: int) -> None:
    from plc_anna.demo import run_demo

    console = Console()
    for net in ("thermocouple", "digits"):
        table = Table(title=f"{net} on {device}, seed {seed}: the compensator alone, in-process")
        for column in ("age", "state", "d_FR", "gain", "error raw", "error corr"):
            table.add_column(column, justify="right")
        try:
            rows = run_demo(net, device, seed=seed)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        for row in rows:
            unit = f" {row['unit']}" if row["unit"] else ""
            table.add_row(row["age"], row["states"][-1].capitalize(), f"{row['distance']:.3g}",
                          f"{row['gain_min']:.2f}-{row['gain_max']:.2f}", f"{row['rmse_uncorrected']:.3g}{unit}",
                          f"{row['rmse_corrected']:.3g}{unit}")
        console.print(table)


def _fleet(duration: float, json_path: str | None) -> None:
    from plc_anna.sparkplug.broker import usable_kind

    try:
        usable_kind()  # before the live table: a missing broker is one line, not a torn display
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console()
    title = f"plc-anna fleet: three lines over Sparkplug B, {duration:g} s"
    quiet = logging.getLogger("plc_anna")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the table shows the fleet; warnings would tear the live display
    try:
        report = _fleet_live(console, title, duration)
    finally:
        quiet.setLevel(level)
    console.print()
    console.print(f"{report['messages']} Sparkplug messages, {report['historized']} samples historized, "
                  f"{report['seq_gaps']} seq gaps")
    if json_path:
        write_json(json_path, report)
        console.print(f"fleet written to {json_path}")


def _fleet_live(console: Console, title: str, duration: float) -> dict:
    from plc_anna.fleet.demo import run_fleet_demo
    from plc_anna.fleet.view import fleet_table

    with Live(fleet_table([], title), console=console, refresh_per_second=2) as live:
        def on_rows(rows, host) -> None:
            table = fleet_table(rows, title)
            table.caption = (f"{host.messages} messages, {host.seq_gaps} seq gaps, {host.rebirths_requested} rebirths "
                             "requested; ages run a year a minute")
            live.update(table)

        try:
            report = asyncio.run(run_fleet_demo(duration, on_rows=on_rows,
                                                on_phase=lambda text: console.print(f"[dim]{text}[/dim]")))
        except (ValueError, RuntimeError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        live.update(fleet_table(report["networks"], title))
    return report
