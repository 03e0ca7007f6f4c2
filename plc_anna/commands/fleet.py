"""``plc-anna fleet``: the Sparkplug B host application (a live table of every node and network) and its history."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from plc_anna.jsonio import write_json


def _settings(broker, username, password_env, tls_ca, tls_cert, tls_key, keepalive):
    import os

    from plc_anna.sparkplug.mqtt import BrokerSettings

    password = None
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise click.UsageError(f"--password-env names {password_env}, which is not set")
    try:
        return BrokerSettings(broker, username or "", password, tls_ca, tls_cert, tls_key, keepalive)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--broker") from None


@click.group(invoke_without_command=True)
@click.option("--broker", help="The MQTT broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT].")
@click.option("--group", help="Sparkplug group to follow [default: every group].")
@click.option("--host-id", default="plc-anna-fleet", show_default=True,
              help="This host application's id (its STATE topic; an edge node's primary_host_id).")
@click.option("--store", "store_path", default="fleet.sqlite", show_default=True, type=click.Path(dir_okay=False),
              help="SQLite historian of every metric.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the table and counters as JSON.")
@click.option("--seconds", type=click.FloatRange(min=0.1), help="Run this long, then print the table and stop.")
@click.option("--once", is_flag=True, help="Listen 3 s (nodes are asked to rebirth), print the table once, stop.")
@click.option("--username", help="Broker login.")
@click.option("--password-env", help="Environment variable holding the broker password.")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False), help="CA of the broker's certificate (mqtts).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Client certificate (mqtts).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Key of the client certificate.")
@click.option("--keepalive", default=10, show_default=True, type=click.IntRange(1, 3600), help="MQTT keepalive (s).")
@click.pass_context
def fleet(ctx, broker, group, host_id, store_path, json_path, seconds, once, username, password_env, tls_ca,
          tls_cert, tls_key, keepalive) -> None:
    """Follow every plc-anna edge node of a Sparkplug group: a live table, a historian, JSON.

    Each row is one network of one node: online, age, the worst layer's drift state and why,
    the largest Fisher-Rao distance, the remaining useful life and the PLC link. Sequence gaps
    are counted and the node asked to rebirth. Ctrl-C stops; `plc-anna fleet history` reads the store.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not broker:
        raise click.UsageError("--broker is required (e.g. --broker mqtt://127.0.0.1:1883)")
    from plc_anna.fleet.host import FleetHost
    from plc_anna.fleet.store import FleetStore
    from plc_anna.fleet.view import fleet_report, fleet_rows, fleet_table

    settings = _settings(broker, username, password_env, tls_ca, tls_cert, tls_key, keepalive)
    console = Console()
    try:
        store = FleetStore(store_path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    duration = 3.0 if once and seconds is None else seconds
    title = f"plc-anna fleet: {group or 'every group'} on {broker}"

    async def run() -> dict:
        async with FleetHost(settings, group=group, host_id=host_id, store=store) as host:
            start = time.monotonic()
            if duration is not None and once:
                await asyncio.sleep(duration)
            else:
                with Live(fleet_table([], title), console=console, refresh_per_second=2) as live:
                    while duration is None or time.monotonic() - start < duration:
                        caption = ("connected" if host.connected else f"[red]{host.last_error or 'connecting'}[/]")
                        table = fleet_table(fleet_rows(host), title)
                        table.caption = f"{caption}; {host.messages} messages, {host.seq_gaps} seq gaps, " \
                                        f"{host.malformed} malformed, {host.historized} samples in {store_path}"
                        live.update(table)
                        await asyncio.sleep(0.5)
            return fleet_report(host)

    try:
        report = asyncio.run(run())
    except KeyboardInterrupt:
        return
    finally:
        store.close()
    if once:
        console.print(fleet_table(report["networks"], title))
    if json_path:
        write_json(json_path, report)
        console.print(f"fleet written to {json_path}")
    if not report["connected"] and report["last_error"]:
        raise click.ClickException(report["last_error"])


@fleet.command("history")
@click.option("--store", "store_path", default="fleet.sqlite", show_default=True,
              type=click.Path(dir_okay=False), help="The fleet host's historian.")
@click.option("--node", help="Only this edge node.")
@click.option("--network", help="Only this network (Sparkplug device).")
@click.option("--metric", help="Show the samples of this metric (e.g. Layer1/LayerDistance) instead of the series.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1),
              help="Samples shown at most (the newest).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write what is shown as JSON.")
def fleet_history(store_path, node, network, metric, limit, json_path) -> None:
    """What the fleet host stored: every series with its sample count, or the samples of one metric.

    Times are UTC (month-day hours:minutes:seconds.milliseconds); --json has them in ms since 1970.
    """
    from plc_anna.fleet.store import FleetStore

    try:
        store = FleetStore(store_path, readonly=True)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console()
    try:
        if metric is None:
            rows = [s for s in store.series() if (node is None or s["node"] == node)
                    and (network is None or s["network"] == network)]
            table = Table(title=f"fleet history in {store_path}: {len(rows)} series")
            for name in ("node", "network", "metric", "samples", "historical", "first", "last"):
                table.add_column(name, justify="right" if name in ("samples", "historical") else "left",
                                 no_wrap=name == "metric", min_width=12 if name == "metric" else None)
            for s in rows:
                table.add_row(s["node"], s["network"], s["metric"], str(s["samples"]), str(s["historical"]),
                              _time(s["first_ms"]), _time(s["last_ms"]))
        else:
            samples = store.samples(node=node, device=network, name=metric)[-limit:]
            rows = [s._asdict() for s in samples]
            table = Table(title=f"{metric}: the last {len(rows)} samples")
            for name in ("time", "node", "network", "value", "historical"):
                table.add_column(name)
            for s in samples:
                table.add_row(_time(s.time_ms), s.node, s.device, _value(s.value), "yes" if s.historical else "")
    finally:
        store.close()
    console.print(table)
    if json_path:
        from plc_anna.fleet.view import finite

        write_json(json_path, finite({"store": str(store_path), "rows": rows}))
        console.print(f"written to {json_path}")


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%m-%d %H:%M:%S.%f")[:-3]


def _value(value) -> str:
    if isinstance(value, list):
        return f"[{len(value)}] {min(value):.4g}..{max(value):.4g}" if value else "[]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return "null" if value is None else str(value)
