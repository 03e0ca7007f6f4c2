"""The ``plc-anna`` command line: the group and its commands, each of which lives in ``plc_anna.commands``."""

from __future__ import annotations

import sys

import click

from plc_anna import __version__
from plc_anna.commands.bench import bench
from plc_anna.commands.commission import commission
from plc_anna.commands.demo import demo
from plc_anna.commands.fleet import fleet
from plc_anna.commands.hash_password import hash_password
from plc_anna.commands.import_model import import_model
from plc_anna.commands.logs import LEVELS, configure_logging
from plc_anna.commands.plc_code import plc_code
from plc_anna.commands.plc_sim import plc_sim
from plc_anna.commands.serve import serve
from plc_anna.commands.simulate import simulate
from plc_anna.commands.status import status


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plc-anna")
@click.option("-v", "--verbose", count=True, help="Log more: -v plc-anna's own steps, -vv the protocol libraries too.")
@click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False),
              help="plc-anna's log level, instead of what -v says [default: WARNING].")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Append the log to FILE instead of stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Errors only: no log below ERROR, no start-up lines.")
@click.pass_context
def main(ctx: click.Context, verbose: int, log_level: str | None, log_file: str | None, quiet: bool) -> None:
    """plc-anna: keep analog neural networks accurate in factory control.

    Log lines carry UTC timestamps (2026-12-07T07:21:06.123Z).
    """
    try:
        configure_logging(verbose, log_level, log_file, quiet)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.obj = {"quiet": quiet}


for command in (simulate, serve, status, hash_password, bench, commission, demo, plc_sim, plc_code, import_model,
                fleet):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
