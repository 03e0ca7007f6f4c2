"""``plc-anna bench endpoint``: a garbage storm and fuzzed OPC UA frames against a served test rig."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from plc_anna.commands.common import finish_report, print_targets


@click.command("endpoint")
@click.option("--connections", default=500, show_default=True, type=click.IntRange(min=1),
              help="Garbage connections of the storm.")
@click.option("--messages", default=10000, show_default=True, type=click.IntRange(min=1),
              help="Fuzzed payloads, one connection each.")
@click.option("--concurrency", default=50, show_default=True, type=click.IntRange(1, 1000),
              help="Connections open at once.")
@click.option("--warmup", default=5000, show_default=True, type=click.IntRange(min=0),
              help="Fuzzed payloads before the memory baseline (and a tenth as many garbage connections).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
def bench_endpoint(connections, messages, concurrency, warmup, seed, json_path) -> None:
    """Storm and fuzz the endpoint of `plc-anna serve --test-rig` (its own process) and check the targets.

    Every connection's answer and close time, a normal client's read and the scan's heartbeat after
    each run, the server's memory and descriptors before and after the fuzz. docs/benchmarks.md#endpoint
    explains every number.
    """
    from plc_anna.bench.endpoint import run_endpoint_bench

    console = Console()
    try:
        report = run_endpoint_bench(connections=connections, messages=messages, seed=seed, concurrency=concurrency,
                                    warmup=warmup, progress=lambda message: console.print(f"  {message}", style="dim"))
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title="endpoint under garbage and fuzzing")
    for name in ("run", "connections", "error + closed", "left open", "unanswered", "close p50/p99/max (ms)",
                 "read after (ms)"):
        table.add_column(name, justify="right")
    for name in ("storm", "fuzz"):
        run = report[name]
        close = run["close_ms"]
        table.add_row(name, str(run["connections"]), str(run["answered_with_error"]), str(run["left_open"]),
                      str(run["unanswered"]), f"{close['p50']:.0f}/{close['p99']:.0f}/{close['max']:.0f}",
                      f"{1e3 * run['read_after_s']:.0f}")
    console.print(table)
    fuzz = report["fuzz"]
    console.print(f"server RSS {fuzz['usage_at_start']['rss_bytes'] / 2**20:.1f} at the start, "
                  f"{fuzz['usage_before']['rss_bytes'] / 2**20:.1f} after the warm-up -> "
                  f"{fuzz['usage_after']['rss_bytes'] / 2**20:.1f} MiB ({100 * fuzz['rss_growth']:+.2f} %), "
                  f"descriptors {fuzz['usage_before']['fds']} -> {fuzz['usage_after']['fds']}")
    print_targets(console, report["targets"], "run too small")
    finish_report(console, report, json_path, report["wall_time_s"])
