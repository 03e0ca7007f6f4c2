"""Child Python processes of plc-anna (the scan engine, a simulated PLC, benchmark clients): their
environment, and their end.

A child runs ``python -m plc_anna....`` with the same interpreter; :func:`child_env`
puts the directory this ``plc_anna`` was imported from first on its
``PYTHONPATH``, so the child runs the same code whether plc-anna is installed or
run from a checkout. :func:`end_child` ends a child that stops when its stdin
closes, and returns what it printed last.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

#: The directory holding the ``plc_anna`` package this process runs.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


def child_env() -> dict[str, str]:
    """This process's environment, with :data:`PACKAGE_ROOT` first on ``PYTHONPATH``."""
    return {**os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)}


async def end_child(process: asyncio.subprocess.Process, timeout: float = 60.0) -> list[str]:
    """Close the child's stdin (its signal to stop), read what it still prints, wait for it; those lines.

    A child that has not ended after ``timeout`` seconds is killed.
    """
    if process.stdin is not None:
        process.stdin.close()
    try:
        out = await asyncio.wait_for(process.stdout.read(), timeout)
    except TimeoutError:
        process.kill()
        out = b""
    await process.wait()
    return out.decode(errors="replace").splitlines()
