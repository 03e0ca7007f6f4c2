"""Helpers shared by the server tests."""

from __future__ import annotations

import asyncio


async def wait_for(predicate, timeout=20.0, step=0.05):
    """Poll an async predicate until it is true (the scan task runs beside the test)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if await predicate():
            return True
        await asyncio.sleep(step)
    return False
