"""``plc-anna simulate``: age a simulated analog network and report its uncorrected accuracy."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from plc_anna.ageing import simulate_ageing
from plc_anna.commands.common import DEFAULT_AGES, ages_option, metric_text
from plc_anna.jsonio import write_json


def _ageing_table(report: dict) -> Table:
    metric_name = report["digital_metric"]["name"] if report["digital_metric"] else "metric"
    table = Table(title=f"{report['net']} on {report['device']} (seed {report['seed']}), no compensation")
    table.add_column("age", justify="right")
    table.add_column("age_s", justify="right")
    table.add_column(metric_name, justify="right")
    for layer in report["ages"][0]["layers"]:
        table.add_column(f"G/G0 layer {layer['layer']}", justify="right")
    for row in report["ages"]:
        table.add_row(row["age"], f"{row['age_s']:.6g}", metric_text(row["metric"]),
                      *[f"{layer['conductance_ratio_median']:.3f}" for layer in row["layers"]])
    return table


@click.command()
@click.option("--net", "net", default="digits", show_default=True,
              help="Shipped network (digits, thermocouple) or path to a network .npz.")
@click.option("--device", default="pcm", show_default=True,
              help="Device preset (pcm, hermes, ideal) or path to a device .toml.")
@click.option("--ages", default=DEFAULT_AGES, show_default=True, callback=ages_option,
              help="Comma-separated ages; units s, min, h, d, y.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Device draw seed.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
def simulate(net: str, device: str, ages: list[float], seed: int, json_path: str | None) -> None:
    """Age a simulated analog network and report its uncorrected accuracy."""
    try:
        report = simulate_ageing(net, device, ages, seed=seed)
        if json_path:
            write_json(json_path, report)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console()
    if report["digital_metric"] is not None:
        console.print(f"digital network: {report['digital_metric']['name']} "
                      f"{metric_text(report['digital_metric'])} on {report['samples']} held-out samples")
    console.print(_ageing_table(report))
    if json_path:
        console.print(f"report written to {json_path}")
