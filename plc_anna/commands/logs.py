"""How the command line logs: plc-anna's warnings on stderr (or to a file), in UTC, the protocol libraries
quiet unless asked.

Each record is one line, ``2026-12-07T07:21:06.123Z WARNING plc_anna.server.endpoint: message``: UTC with
a ``Z``, so lines from machines in different time zones (a plant's PLCs and servers) sort together.
"""

from __future__ import annotations

import logging
import sys
import time
from logging.handlers import WatchedFileHandler
from pathlib import Path

#: The levels ``--log-level`` takes.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr``, whatever replaced it since (a test runner, a pipe)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class UtcFormatter(logging.Formatter):
    """ISO 8601 timestamps in UTC, to the millisecond.

    Examples
    --------
    >>> record = logging.LogRecord("plc_anna", logging.WARNING, __file__, 1, "link lost", None, None)
    >>> record.created, record.msecs = 1796627266.5, 500.0
    >>> UtcFormatter().format(record)
    '2026-12-07T07:07:46.500Z WARNING plc_anna: link lost'
    """

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")


def configure_logging(verbose: int = 0, level: str | None = None, log_file: str | Path | None = None,
                      quiet: bool = False) -> None:
    """Set up the command line's logging.

    Parameters
    ----------
    verbose
        ``-v``: plc-anna's own steps (INFO); ``-vv``: the protocol libraries' warnings too (frame dumps on
        every lost connection: plc-anna reports those failures itself, in one line).
    level
        ``--log-level``: plc-anna's level (one of :data:`LEVELS`), instead of what ``-v`` says.
    log_file
        ``--log-file``: append the records to this file instead of stderr (reopened when a log rotation
        moves it away).
    quiet
        ``--quiet``: errors only.

    Raises
    ------
    ValueError
        For an unknown level, for ``quiet`` with ``verbose`` or ``level``, or a log file that cannot
        be opened.
    """
    if level is not None and level.upper() not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; levels: {', '.join(LEVELS)}")
    if quiet and (verbose or level):
        raise ValueError("--quiet does not go with -v or --log-level")
    root = logging.getLogger()
    if log_file is not None:
        try:
            handler: logging.Handler = WatchedFileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot open the log file {log_file}: {exc.strerror or exc}") from None
    elif not root.handlers:
        # Only a process whose logging nobody configured gets this handler (not a test runner, an embedder).
        handler = _StderrHandler()
    else:
        handler = None
    if handler is not None:
        handler.setFormatter(UtcFormatter())
        root.addHandler(handler)
    if quiet:
        own = logging.ERROR
    elif level is not None:
        own = getattr(logging, level.upper())
    else:
        own = logging.INFO if verbose >= 1 else logging.WARNING
    logging.getLogger("plc_anna").setLevel(own)
    for name in ("asyncua", "pymodbus", "mqtt", "amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose >= 2 else logging.CRITICAL)
