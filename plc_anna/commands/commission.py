"""``plc-anna commission``: the on-site procedure, one subcommand per step (``docs/commissioning.md``).

A thin click layer over :mod:`plc_anna.commission`: it resolves credentials,
prints rich tables (or, with ``--json -``, one JSON document on stdout and nothing
else there), asks before it writes, and turns every expected failure into a
one-line error with exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from plc_anna.compensator import CompensatorConfig
from plc_anna.jsonio import write_json
from plc_anna import commission as steps
from plc_anna.plc.transport import LinkError

#: Errors a step raises for a PLC, a file or a value that is not as it should be (not a bug): one line, exit 1.
EXPECTED = (LinkError, ValueError, TimeoutError, OSError)


class Output:
    """Where a subcommand's results go: rich tables on stdout, and/or one JSON document (``--json``)."""

    def __init__(self, command: str, json_path: str | None) -> None:
        self.json_path = json_path
        self.console = Console(quiet=json_path == "-", highlight=False)
        self.doc: dict[str, Any] = {"command": command, "ok": False, "error": None}

    def print(self, *items: Any, markup: bool = False) -> None:
        """Print tables and lines; text is printed as is (a NodeId or a message may hold brackets)."""
        self.console.print(*items, markup=markup)

    def write(self, ok: bool) -> None:
        """Write the JSON document, if one was asked for."""
        self.doc["ok"] = bool(ok)
        doc = _json_ready(self.doc)
        if self.json_path == "-":
            click.echo(json.dumps(doc, indent=2, allow_nan=False))
        elif self.json_path:
            try:
                write_json(self.json_path, doc)
            except (OSError, ValueError) as exc:
                raise click.ClickException(f"cannot write {self.json_path}: {exc}") from None

    def finish(self, ok: bool) -> None:
        """Write the JSON document; exit with code 1 unless ``ok``."""
        self.write(ok)
        if not ok:
            click.get_current_context().exit(1)

    def fail(self, message: str) -> click.ClickException:
        """Record ``message`` as the document's error and write it; the one-line error to raise."""
        self.doc["error"] = message
        self.write(False)
        return click.ClickException(message)

    def run(self, coroutine: Any) -> Any:
        """``asyncio.run(coroutine)``; an expected failure becomes a one-line error."""
        try:
            return asyncio.run(coroutine)
        except EXPECTED as exc:
            raise self.fail(str(exc)) from None


def _json_ready(value: Any) -> Any:
    """``value`` with NaN and infinities as null (a PLC may deliver them; JSON has no such numbers)."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def common_options(target: str) -> Callable[[Callable], Callable]:
    """The options the subcommands share; ``target`` is ``"discover"``, ``"url"``, ``"map"`` or ``"run"``."""
    from_map = target in ("map", "run")
    options = [
        click.option("--user", help=("OPC UA user name, instead of the map's plc.user" if from_map else
                                     "OPC UA user name (anonymous without)")
                     + "; the password is asked for, hidden, unless --password is given."),
        click.option("--password", help="The password of --user" + (
            " (without --user: instead of the variable the map's plc.password_env names)." if from_map else ".")),
        click.option("--timeout", type=click.FloatRange(min=0.1), metavar="SECONDS",
                     help="Time allowed for a connection or a request [default: "
                          + ("the map's plc.timeout_s]." if from_map else "2].")),
        click.option("--yes", "-y", is_flag=True, help=(
            "Ask nothing" + (": commit without asking" if target == "run" else "")
            + (" (with --user: the password from --password, else plc.password_env)." if from_map else
               " (with --user, give --password)."))),
        click.option("--json", "json_path", metavar="FILE",
                     help="Also write the result as JSON to FILE; '-' prints only the JSON document on stdout."),
    ]
    if target == "discover":
        options = [options[2], options[4]]

    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _password(user: str | None, password: str | None, yes: bool, from_map: bool) -> str | None:
    """The password to use: given, asked for (hidden, on stderr), or None (the map's password_env)."""
    if user is None or password is not None:
        return password
    if yes:
        if from_map:
            return None
        raise click.UsageError("--user with --yes needs --password: nothing is asked with --yes")
    return click.prompt(f"Password of {user}", hide_input=True, err=True)


def _url_settings(out: Output, url: str, user, password, timeout, yes):
    try:
        return steps.settings_for_url(url, user=user, password=_password(user, password, yes, False),
                                      timeout_s=timeout or 2.0)
    except ValueError as exc:
        raise out.fail(str(exc)) from None


def _load_map(out: Output, path: str, user, password, timeout, yes):
    from plc_anna.contract.tagmap import load_tag_map

    try:
        tag_map = load_tag_map(path)
        password = _password(user, password, yes, True)
        tag_map = steps.tag_map_with_credentials(tag_map, user=user, password=password, timeout_s=timeout)
        if tag_map.plc.user is not None:
            tag_map.plc.password()  # a password variable that is not set: say so before connecting
    except ValueError as exc:
        raise out.fail(str(exc)) from None
    out.doc["tag_map"] = str(path)
    return tag_map


def _load_network(out: Output, net: str | None, tag_map):
    from plc_anna.device.network import load_network

    name = net or tag_map.network
    if name is None:
        raise out.fail(f"{tag_map.source} records no network: give --net")
    try:
        network = load_network(name)
    except ValueError as exc:
        raise out.fail(str(exc)) from None
    out.doc["network"] = name
    return network


def _checks_table(title: str, checks: list[steps.Check]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in checks:
        table.add_row(Text(check.name), Text("ok", "green") if check.ok else Text("FAILED", "bold red"),
                      Text(check.detail))
    return table


def _span(values) -> str:
    if values is None:
        return "-"
    values = np.asarray(values, dtype=float)
    low, high = float(values.min()), float(values.max())
    return f"{low:.5g}" if low == high else f"{low:.5g}..{high:.5g}"


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
    settings = _url_settings(out, url, user, password, timeout, yes)
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
    settings = _url_settings(out, url, user, password, timeout, yes)
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
    tag_map = _load_map(out, tagmap, user, password, timeout, yes)
    network = _load_network(out, net, tag_map)
    checks = out.run(steps.validate(tag_map, network, observed=backend == "plc"))
    out.doc["checks"] = [check.to_dict() for check in checks]
    out.print(_checks_table(f"{tagmap}: validation", checks))
    out.finish(all(check.ok for check in checks))


@commission.command(short_help="Validate, calibrate, save the baseline, commit, verify.")
@click.argument("tagmap", type=click.Path(exists=True, dir_okay=False))
@click.option("--net", help="The network [default: the map's network].")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), metavar="SERVER_TOML",
              help="The configuration 'plc-anna serve' will run with: its state_store gets the baseline.")
@click.option("--store", type=click.Path(dir_okay=False), metavar="FILE",
              help="The state store to save the baseline to (instead of --config).")
@click.option("--dry-run", is_flag=True, help="Validate, calibrate and show the plan; save and write nothing.")
@click.option("--force", is_flag=True, help="Overwrite a store that holds another network's state.")
@click.option("--calibration-samples", type=click.IntRange(min=2), metavar="N",
              default=CompensatorConfig().calibration_samples, show_default=True,
              help="Samples of the fingerprint (fewer: faster, noisier).")
@click.option("--calibration-timeout", type=click.FloatRange(min=1.0), default=120.0, show_default=True,
              metavar="SECONDS", help="Give up calibrating after this long.")
@common_options("run")
def run(tagmap, net, config_path, store, dry_run, force, calibration_samples, calibration_timeout, user, password,
        timeout, yes, json_path) -> None:
    """Commission TAGMAP: validate, calibrate on the PLC's live samples, save the baseline for 'serve',
    show the first commit, ask, commit it and verify what the PLC took."""
    out = Output("run", json_path)
    if config_path and store:
        raise click.UsageError("give --config or --store, not both")
    if not (config_path or store or dry_run):
        raise click.UsageError("give --config SERVER_TOML or --store FILE: where 'plc-anna serve' finds the "
                               "baseline (or --dry-run)")
    tag_map = _load_map(out, tagmap, user, password, timeout, yes)
    network = _load_network(out, net, tag_map)
    store_path = _store_path(out, config_path, store, network) if (config_path or store) else None
    out.doc.update(dry_run=dry_run, store=None if store_path is None else str(store_path), steps={})
    step = out.doc["steps"]

    checks = out.run(steps.validate(tag_map, network))
    step["validate"] = {"ok": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]}
    out.print(_checks_table(f"{tagmap}: validation", checks))
    if not step["validate"]["ok"]:
        out.finish(False)

    config = CompensatorConfig(calibration_samples=calibration_samples)
    runtime, info = out.run(_calibrate(out, tag_map, network, config, calibration_timeout))
    step["calibrate"] = {"ok": True, **info}
    out.print(f"calibrated: {info['samples']} samples in {info['seconds']:.1f} s ({info['samples_lost']} lost); "
              f"layer states: {', '.join(state.lower() for state in info['states'])}")
    if store_path is not None and not dry_run:
        try:
            saved = steps.save_baseline(runtime, store_path, force=force)
        except (ValueError, OSError) as exc:
            raise out.fail(f"{exc}{' (--force)' if 'force the overwrite' in str(exc) else ''}") from None
        step["baseline"] = {"ok": True, **saved}
        out.print(f"baseline saved to {store_path}: 'plc-anna serve' starts from it")

    plan = out.run(_plan(tag_map, runtime))
    step["plan"] = {"ok": True, "layers": plan}
    out.print(_plan_table(plan))
    if dry_run:
        out.print("dry run: nothing saved, no set written")
        out.finish(True)
        return
    if not yes and not click.confirm("Write these sets to the PLC?", default=False, err=True):
        step["commit"] = {"ok": False, "checks": [], "declined": True}
        out.print("not committed: the PLC keeps its set")
        out.finish(False)
    checks = out.run(steps.commit_and_verify(tag_map, plan))
    step["commit"] = {"ok": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]}
    out.print(_checks_table("commit and verification", checks))
    if step["commit"]["ok"]:
        out.print("commissioned: start 'plc-anna serve' with this store; until it beats the heartbeat, the PLC "
                  "holds this set (Fault)")
    out.finish(step["commit"]["ok"])


def _store_path(out: Output, config_path: str | None, store: str | None, network) -> Path:
    if store:
        return Path(store)
    from plc_anna.device.network import load_network
    from plc_anna.server.config import load_server_config

    try:
        config = load_server_config(config_path)
        if config.device_backend != "plc":
            raise ValueError(f"{config_path}: device_backend is {config.device_backend!r}: 'serve' would run the "
                             "simulator and refuse this baseline; set device_backend = \"plc\" and tag_map")
        if load_network(config.network).name != network.name:
            raise ValueError(f"{config_path}: network is {config.network!r}, the tag map's is {network.name!r}")
        config.config_dir.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as exc:
        raise out.fail(str(exc)) from None
    return config.state_store


async def _calibrate(out: Output, tag_map, network, config: CompensatorConfig, timeout_s: float):
    columns = (TextColumn("calibrating"), BarColumn(), MofNCompleteColumn(), TextColumn("samples"),
               TimeElapsedColumn())
    with Progress(*columns, console=out.console, transient=False) as progress:
        task = progress.add_task("calibrating", total=config.calibration_samples)
        return await steps.calibrate(tag_map, network, config, timeout_s=timeout_s,
                                     progress=lambda done, total: progress.update(task, completed=done))


async def _plan(tag_map, runtime) -> list[dict]:
    from plc_anna.plc.transport import open_transport

    transport = open_transport(tag_map.plc)
    try:
        await transport.connect()
        return await steps.plan_commit(tag_map, runtime, transport)
    finally:
        await transport.close()


def _plan_table(plan: list[dict]) -> Table:
    table = Table(title="first commit (dry run): the set per layer, and what the PLC holds",
                  title_justify="left")
    for column in ("layer", "gain", "offset", "PLC GainSet", "PLC applied", "max Δ gain, offset", "counter",
                   "sets"):
        table.add_column(column)
    for entry in plan:
        table.add_row(str(entry["layer"]), _span(entry["gain"]), _span(entry["offset"]), _span(entry["plc_gain_set"]),
                      _span(entry["plc_applied_gain"]),
                      f"{entry['max_gain_difference']:.3g}, {entry['max_offset_difference']:.3g}",
                      str(entry["counter"]), str(entry["sets"]))
    return table


__all__ = ["commission"]
