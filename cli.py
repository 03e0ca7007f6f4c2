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
from plc_anna.commands.logs import configure_logging
from plc_anna.commands.plc_code import plc_code
from plc_anna.commands.plc_sim import plc_sim
from plc_anna.commands.serve import serve
from plc_anna.commands.simulate import simulate
from plc_anna.commands.status import status


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plc-anna")
@click.option("-v", "--verbose", count=True, help="Log more: -v plc-anna's own steps, -vv the protocol libraries too.")
def main(verbose: int) -> None:
    """plc-anna: keep analog neural networks accurate in factory control."""
    configure_logging(verbose)


for command in (simulate, serve, status, hash_password, bench, commission, demo, plc_sim, plc_code, import_model,
                fleet):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
