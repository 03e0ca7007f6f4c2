"""``plc-anna status``: a running server's networks, their layers, PLC links and scan diagnostics, live or as JSON."""

from __future__ import annotations

import click
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from plc_anna.units import format_age


@click.command()
@click.argument("endpoint")
@click.option("--user", help="User name (prompted for the password); anonymous without.")
@click.option("--password", help="Password (prompted, hidden, when --user is given without it).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="Client certificate for SignAndEncrypt.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="The client certificate's private key.")
@click.option("--server-cert", type=click.Path(exists=True, dir_okay=False), help="The server's certificate.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1, 3600), help="Refresh (s).")
@click.option("--once", is_flag=True, help="Print one table and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the status once as one JSON document and exit.")
def status(endpoint, user, password, cert, key, server_cert, interval, once, as_json) -> None:
    """Show a running server's networks, layers, PLC links and scan diagnostics, refreshed live (Ctrl-C ends).

    With --json: one JSON document on stdout (unknown values as null), for scripts and monitoring; a
    server of several networks gives each network's status under "networks", by name.
    """
    import asyncio
    import json

    from plc_anna.jsonio import json_ready
    from plc_anna.server.status import connect, read_networks

    if user and password is None:
        password = click.prompt(f"password of {user}", hide_input=True)
    console = Console()

    async def run() -> None:
        async with connect(endpoint, user, password, cert, key, server_cert) as client:
            if as_json:
                networks = await read_networks(client)
                document = ({"endpoint": endpoint, **networks[0][1]} if networks[0][0] is None
                            else {"endpoint": endpoint, "networks": dict(networks)})
                click.echo(json.dumps(json_ready(document), indent=2, allow_nan=False))
                return
            if once:
                console.print(_tables(endpoint, await read_networks(client)))
                return
            with Live(_tables(endpoint, await read_networks(client)), console=console) as live:
                while True:
                    await asyncio.sleep(interval)
                    live.update(_tables(endpoint, await read_networks(client)))

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except (ConnectionError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _tables(endpoint: str, networks: list) -> Group:
    """One table per network (titled with its name on a server of several)."""
    return Group(*(_status_table(endpoint if name is None else f"{endpoint} {name}", status)
                   for name, status in networks))


def _status_table(title: str, status: dict) -> Table:
    diag = status["diagnostics"]
    table = Table(title=f"{title}: age {format_age(status['age_s'])}, {status['temperature_k']:.1f} K",
                  caption=f"scan {diag['ScanPeriod']:g} ms: last {diag['LastCycleTime']:.2f} ms, p99 "
                          f"{diag['P99CycleTime']:.2f} ms, max {diag['MaxCycleTime']:.2f} ms, "
                          f"{diag['Overruns']:.0f} overruns")
    for column in ("layer", "state", "distance", "CUSUM / threshold", "gain min..max", "columns", "samples", "why"):
        table.add_column(column, justify="left" if column in ("layer", "state", "why") else "right")
    for row in status["layers"]:
        table.add_row(row["layer"], row["state"], f"{row['distance']:.3g}",
                      f"{row['statistic']:.3g} / {row['threshold']:.3g}",
                      f"{row['gain_min']:.4f}..{row['gain_max']:.4f}", str(row["columns"]), str(row["samples"]),
                      escape(row["state_reason"]))
    link = status["link"]
    if link["protocol"] in ("", "none"):
        table.caption += "\nPLC link: none configured"
    else:
        state = "connected" if link["connected"] else f"NOT connected: {link['last_error']}"
        table.caption += escape(f"\nPLC link {link['protocol']} {link['endpoint']}: {state}; commit counter "
                                f"{link['commit_counter']}, heartbeat {link['heartbeat']}")
    return table
