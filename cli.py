"""The ``plc-anna`` command line: a thin click layer over the library."""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.table import Table

from plc_anna import __version__
from plc_anna.ageing import simulate_ageing
from plc_anna.jsonio import write_json
from plc_anna.units import parse_ages

DEFAULT_AGES = "1h,1d,30d,1y,10y"


def _ages(ctx, param, value: str) -> list[float]:
    try:
        return parse_ages(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _metric_text(metric: dict | None) -> str:
    if metric is None:
        return "n/a"
    if metric["name"] == "accuracy":
        return f"{100 * metric['value']:.1f} %"
    return f"{metric['value']:.3g} {metric['unit']}".strip()


def _ageing_table(report: dict) -> Table:
    metric_name = report["digital_metric"]["name"] if report["digital_metric"] else "metric"
    table = Table(title=f"{report['net']} on {report['device']} (seed {report['seed']}), no compensation")
    table.add_column("age", justify="right")
    table.add_column("age_s", justify="right")
    table.add_column(metric_name, justify="right")
    for layer in report["ages"][0]["layers"]:
        table.add_column(f"G/G0 layer {layer['layer']}", justify="right")
    for row in report["ages"]:
        table.add_row(row["age"], f"{row['age_s']:.6g}", _metric_text(row["metric"]),
                      *[f"{layer['conductance_ratio_median']:.3f}" for layer in row["layers"]])
    return table


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plc-anna")
def main() -> None:
    """plc-anna: keep analog neural networks accurate in factory control."""


@main.command()
@click.option("--net", "net", default="digits", show_default=True,
              help="Shipped network (digits, thermocouple) or path to a network .npz.")
@click.option("--device", default="pcm", show_default=True,
              help="Device preset (pcm, hermes, ideal) or path to a device .toml.")
@click.option("--ages", default=DEFAULT_AGES, show_default=True, callback=_ages,
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
                      f"{_metric_text(report['digital_metric'])} on {report['samples']} held-out samples")
    console.print(_ageing_table(report))
    if json_path:
        console.print(f"report written to {json_path}")


@main.command()
@click.option("--device", default="pcm", show_default=True, help="Device preset or .toml path.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
def demo(device: str, seed: int) -> None:
    """Age both shipped networks through 10 years and show what drift does.

    Compensation joins this demo as it lands; today it shows the problem:
    the uncorrected analog network against its digital twin.
    """
    console = Console()
    start = time.perf_counter()
    try:
        for net in ("digits", "thermocouple"):
            report = simulate_ageing(net, device, parse_ages("1min,1h,1d,30d,1y,10y"), seed=seed)
            console.print(f"\n[bold]{net}[/bold]: digital {_metric_text(report['digital_metric'])}")
            console.print(_ageing_table(report))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"\nSimulated 10 years of PCM drift on two networks in {time.perf_counter() - start:.1f} s "
                  "of wall time.")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
