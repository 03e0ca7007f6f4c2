"""What several commands share: age parsing and the text of a task metric."""

from __future__ import annotations

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
