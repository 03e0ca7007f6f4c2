"""How the command line logs: plc-anna's warnings on stderr, the protocol libraries quiet unless asked."""

from __future__ import annotations

import logging
import sys


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr``, whatever replaced it since (a test runner, a pipe)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(verbose: int) -> None:
    """Warnings of plc-anna on stderr; the protocol libraries' own logs (frame dumps on every lost
    connection) only with -vv: plc-anna reports those failures itself, in one line."""
    root = logging.getLogger()
    # Only a process whose logging nobody configured gets this handler (not a test runner, not an embedder).
    if not root.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    logging.getLogger("plc_anna").setLevel(logging.INFO if verbose >= 1 else logging.WARNING)
    for name in ("asyncua", "pymodbus", "mqtt", "amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose >= 2 else logging.CRITICAL)
