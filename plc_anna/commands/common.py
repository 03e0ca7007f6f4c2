"""What several commands share: age parsing, the text of a task metric, --quiet, and the error for an
endpoint a command cannot listen on."""

from __future__ import annotations

import errno
import os

import click

from plc_anna.units import parse_ages

DEFAULT_AGES = "1h,1d,30d,1y,10y"


def ages_option(ctx, param, value: str) -> list[float]:
    """click callback: a comma-separated list of ages (``1h,1d,10y``) in seconds."""
    try:
        return parse_ages(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def metric_text(metric: dict | None) -> str:
    """A task metric for a table: accuracy in %, else value and unit."""
    if metric is None:
        return "n/a"
    if metric["name"] == "accuracy":
        return f"{100 * metric['value']:.1f} %"
    return f"{metric['value']:.3g} {metric['unit']}".strip()


#: errno values that mean "this address cannot be listened on" (rather than some other failure).
LISTEN_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


class EndpointUnavailable(click.ClickException):
    """An endpoint a command cannot listen on (in use, not this machine's, not permitted).

    ``serve`` and ``plc-sim`` say it the same way, ``cannot listen on URL: reason``, with exit code 1
    as every other failure of a command (2 is click's, for a wrong command line).
    """

    exit_code = 1

    def __init__(self, endpoint: str, exc: OSError) -> None:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        super().__init__(f"cannot listen on {endpoint}: {reason}")


def quiet() -> bool:
    """Whether the command line asked for ``--quiet``: a command then prints no start-up lines."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return bool(isinstance(obj, dict) and obj.get("quiet"))


def print_targets(console, targets: dict, not_measured: str, prefix: str = "") -> None:
    """A benchmark's verdict on each target: met, NOT met, or not measured (and why not)."""
    for target, met in targets.items():
        verdict = {True: "met", False: "NOT met", None: f"not measured ({not_measured})"}[met]
        console.print(f"{prefix}{target.replace('_', ' ')}: {verdict}")


def finish_report(console, report: dict, json_path: str | None, seconds: float) -> None:
    """Write a benchmark's report as JSON when asked to, and say how long it took."""
    from plc_anna.jsonio import write_json

    if json_path:
        write_json(json_path, report)
        console.print(f"report written to {json_path}")
    console.print(f"took {seconds:.0f} s")
