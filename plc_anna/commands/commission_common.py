"""What the ``plc-anna commission`` subcommands share: output (tables, ``--json``), options, credentials, loading.

The subcommands live in :mod:`plc_anna.commands.commission` (discover, browse, draft, validate) and
:mod:`plc_anna.commands.commission_run` (run); this module holds what both need and no command.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from plc_anna import commission as steps
from plc_anna.jsonio import json_ready, write_json
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
        doc = json_ready(self.doc)
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


def password_for(user: str | None, password: str | None, yes: bool, from_map: bool) -> str | None:
    """The password to use: given, asked for (hidden, on stderr), or None (the map's password_env)."""
    if user is None or password is not None:
        return password
    if yes:
        if from_map:
            return None
        raise click.UsageError("--user with --yes needs --password: nothing is asked with --yes")
    return click.prompt(f"Password of {user}", hide_input=True, err=True)


def url_settings(out: Output, url: str, user, password, timeout, yes):
    try:
        return steps.settings_for_url(url, user=user, password=password_for(user, password, yes, False),
                                      timeout_s=timeout or 2.0)
    except ValueError as exc:
        raise out.fail(str(exc)) from None


def load_map(out: Output, path: str, user, password, timeout, yes):
    from plc_anna.contract.tagmap import load_tag_map

    try:
        tag_map = load_tag_map(path)
        password = password_for(user, password, yes, True)
        tag_map = steps.tag_map_with_credentials(tag_map, user=user, password=password, timeout_s=timeout)
        if tag_map.plc.user is not None:
            tag_map.plc.password()  # a password variable that is not set: say so before connecting
    except ValueError as exc:
        raise out.fail(str(exc)) from None
    out.doc["tag_map"] = str(path)
    return tag_map


def load_network_of(out: Output, net: str | None, tag_map):
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


def checks_table(title: str, checks: list[steps.Check]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in checks:
        table.add_row(Text(check.name), Text("ok", "green") if check.ok else Text("FAILED", "bold red"),
                      Text(check.detail))
    return table


def span(values) -> str:
    if values is None:
        return "-"
    values = np.asarray(values, dtype=float)
    low, high = float(values.min()), float(values.max())
    return f"{low:.5g}" if low == high else f"{low:.5g}..{high:.5g}"


__all__ = ["EXPECTED", "Output", "checks_table", "common_options", "json_ready", "load_map", "load_network_of",
           "password_for", "span", "url_settings"]
