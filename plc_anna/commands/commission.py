"""``plc-anna commission``: the on-site procedure, one subcommand per step (``docs/commissioning.md``).

A thin click layer over :mod:`plc_anna.commission`: it resolves credentials,
prints rich tables (or, with ``--json -``, one JSON document on stdout and nothing
else there), asks before it writes, and turns every expected failure into a
one-line error with exit code 1.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from plc_anna import commission as steps
from plc_anna.commands.commission_common import (Output, checks_table, common_options, load_map, load_network_of,
                                                 url_settings)
from plc_anna.commands.commission_run import run


@click.group("commission")
def commission() -> None:
    """Commission the PLC link on site, step by step (docs/commissioning.md).

    \b
    The usual order on site (a Modbus PLC starts at validate, with a written map):
      plc-anna commission discover opc.tcp://192.168.0.10:4840
      plc-anna commission browse opc.tcp://192.168.0.10:4840 --search GainSet
      plc-anna commission draft opc.tcp://192.168.0.10:4840 --net NET --out plc.toml
      plc-anna commission validate plc.toml
      plc-anna commission run plc.toml --config server.toml

    URL is opc.tcp://HOST:PORT (OPC UA) or modbus://HOST:PORT (Modbus TCP). Exit codes:
    0 done, 1 a failed check or an error (named in one line), 2 a wrong option.
    """


@commission.command(short_help="What the PLC offers: endpoints, security, logins.")
@click.argument("url")
@common_options("discover")
def discover(url, timeout, json_path) -> None:
    """Show the endpoints, security and logins the PLC at URL offers (Modbus: whether it answers)."""
    out = Output("discover", json_path)
    found = out.run(steps.discover(url, timeout or 2.0))
    out.doc.update(found)
    if found["endpoints"]:
        table = Table(title=f"{url}: endpoints", title_justify="left")
        for column in ("endpoint", "security policy", "mode", "level", "logins"):
            table.add_column(column)
        for endpoint in found["endpoints"]:
            table.add_row(*map(Text, (endpoint["url"], endpoint["security_policy"], endpoint["security_mode"],
                                      str(endpoint["security_level"]), ", ".join(endpoint["user_tokens"]))))
        out.print(table)
    out.print(f"{url}: {found['note']}")
    out.finish(True)


@commission.command(short_help="The PLC's variables: NodeIds, types, lengths (OPC UA).")
@click.argument("url")
@click.option("--search", metavar="TEXT", help="Only variables whose browse path contains TEXT (any case).")
@click.option("--root", metavar="NODEID", help="Start below this node instead of the Objects folder.")
@common_options("url")
def browse(url, search, root, user, password, timeout, yes, json_path) -> None:
    """List the PLC's variables with their NodeIds, types, lengths and write access (OPC UA)."""
    out = Output("browse", json_path)
    settings = url_settings(out, url, user, password, timeout, yes)
    variables = out.run(steps.browse(settings, pattern=search, root=root))
    out.doc.update(url=url, variables=variables)
    table = Table(title=f"{url}: {len(variables)} variable(s)", title_justify="left")
    for column in ("browse path", "NodeId", "type", "length", "writable"):
        table.add_column(column, overflow="fold")
    for variable in variables:
        table.add_row(*map(Text, (variable["browse_path"], variable["address"],
                                  str(variable["plc_type"] or variable["data_type"]),
                                  "-" if variable["length"] is None else str(variable["length"]),
                                  {True: "yes", False: "no", None: "?"}[variable["writable"]])))
    out.print(table)
    out.finish(True)


@commission.command(short_help="Draft a tag map from the PLC's variables (OPC UA).")
@click.argument("url")
@click.option("--net", required=True, help="The network the PLC's layers run: a shipped name or a .npz file.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The tag map to write.")
@click.option("--search", metavar="TEXT", help="Only variables whose browse path contains TEXT (e.g. the "
                                               "application's name).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@common_options("url")
def draft(url, net, out_path, search, force, user, password, timeout, yes, json_path) -> None:
    """Draft a tag map from the PLC's variables (OPC UA): one group of role variables per layer of NET."""
    from plc_anna.contract.tagmap import tag_map_to_toml

    out = Output("draft", json_path)
    if Path(out_path).exists() and not force:
        raise out.fail(f"{out_path} exists: give --force to overwrite it")
    settings = url_settings(out, url, user, password, timeout, yes)
    warnings: list[str] = []
    tag_map = out.run(steps.draft_tag_map(settings, net, pattern=search, on_warning=warnings.append))
    try:
        Path(out_path).write_text(tag_map_to_toml(tag_map))
    except OSError as exc:
        raise out.fail(f"cannot write the tag map {out_path}: {exc}") from None
    layers = [{"index": layer.index, "n_in": layer.n_in, "n_out": layer.n_out, "gain_set": layer.gain_set.address,
               "trace_length": layer.trace_length} for layer in tag_map.layers]
    out.doc.update(url=url, network=net, out=str(out_path), layers=layers, warnings=warnings)
    table = Table(title=f"{out_path}: {len(layers)} layer(s) of {net}", title_justify="left")
    for column in ("layer", "inputs -> outputs", "GainSet", "trace rows"):
        table.add_column(column, overflow="fold")
    for layer in layers:
        table.add_row(*map(Text, (str(layer["index"]), f"{layer['n_in']} -> {layer['n_out']}",
                                  str(layer["gain_set"]), str(layer["trace_length"] or "-"))))
    out.print(table)
    for warning in warnings:
        out.print(Text.assemble(("warning: ", "yellow"), warning))
    out.print(f"Check the map, then: plc-anna commission validate {out_path}")
    out.finish(True)


@commission.command(short_help="Check a tag map against the network and the PLC.")
@click.argument("tagmap", type=click.Path(exists=True, dir_okay=False))
@click.option("--net", help="The network [default: the map's network].")
@click.option("--backend", type=click.Choice(["plc", "simulated"]), default="plc", show_default=True,
              help="The server's device_backend the map is for: 'plc' (the network observed through the PLC, "
                   "as 'run' calibrates it) needs every layer mapped and the device's age; 'simulated' only the "
                   "layers whose corrections the PLC applies.")
@common_options("map")
def validate(tagmap, net, backend, user, password, timeout, yes, json_path) -> None:
    """Check TAGMAP against the network and the PLC: tags, types, lengths, write access, values, a running
    program. Writes nothing."""
    out = Output("validate", json_path)
    tag_map = load_map(out, tagmap, user, password, timeout, yes)
    network = load_network_of(out, net, tag_map)
    checks = out.run(steps.validate(tag_map, network, observed=backend == "plc"))
    out.doc["checks"] = [check.to_dict() for check in checks]
    out.print(checks_table(f"{tagmap}: validation", checks))
    out.finish(all(check.ok for check in checks))


commission.add_command(run)

__all__ = ["commission"]
