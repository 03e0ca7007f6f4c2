"""Validated client writes: a Bad status and an unchanged value for anything the node cannot take.

asyncua checks only the Variant type of a write, and only against the value
the node held. :class:`WriteGuard` sits in front of the server's write
service: each registered node gets a ``check`` that turns the written Variant
into a value or raises :class:`WriteRefused` with an OPC UA status, and an
``apply`` awaited once the write has been stored. Writes of unregistered
nodes pass through unchanged (the permission ruleset has already refused
those nobody may write). Partial array writes (an IndexRange) of a guarded
node are refused: a gain set is written whole.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from asyncua import Server, ua

logger = logging.getLogger(__name__)


class WriteRefused(Exception):
    """A client write that the node does not take; ``status`` is the OPC UA status it answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Guard:
    check: Callable[[ua.Variant], Any]
    apply: Callable[[Any], Awaitable[None]]


class WriteGuard:
    """Validates and applies client writes of registered nodes; install once per server."""

    def __init__(self, server: Server) -> None:
        self._guards: dict[ua.NodeId, _Guard] = {}
        service = server.iserver.attribute_service
        self._write = service.write
        service.write = self.write  # the session calls attribute_service.write(params, user=...)

    def register(self, nodeid: ua.NodeId, check: Callable[[ua.Variant], Any],
                 apply: Callable[[Any], Awaitable[None]]) -> None:
        self._guards[nodeid] = _Guard(check, apply)

    async def write(self, params: ua.WriteParameters, user: Any = None) -> list[ua.StatusCode]:
        results: list[ua.StatusCode | None] = [None] * len(params.NodesToWrite)
        passed: list[tuple[int, _Guard | None, Any]] = []
        for i, item in enumerate(params.NodesToWrite):
            guard = self._guards.get(item.NodeId)
            if guard is None or item.AttributeId != ua.AttributeIds.Value:
                passed.append((i, None, None))
                continue
            try:
                if item.IndexRange:
                    raise WriteRefused(ua.StatusCodes.BadWriteNotSupported, "partial array writes are refused")
                if item.Value is None or item.Value.Value is None:
                    raise WriteRefused(ua.StatusCodes.BadTypeMismatch, "a write without a value")
                passed.append((i, guard, guard.check(item.Value.Value)))
            except WriteRefused as exc:
                logger.warning("refused a write of %s: %s", item.NodeId.to_string(), exc)
                results[i] = ua.StatusCode(exc.status)
        if passed:
            kwargs = {} if user is None else {"user": user}
            statuses = await self._write(ua.WriteParameters(
                NodesToWrite=[params.NodesToWrite[i] for i, _, _ in passed]), **kwargs)
            for (i, guard, value), status in zip(passed, statuses):
                results[i] = status
                if guard is not None and status.is_good():
                    try:
                        await guard.apply(value)
                    except ValueError as exc:  # the check should have caught it; say so, keep serving
                        logger.error("a checked write of %s failed to apply: %s",
                                     params.NodesToWrite[i].NodeId.to_string(), exc)
                        results[i] = ua.StatusCode(ua.StatusCodes.BadOutOfRange)
        return results


def double_array_check(length: int, low: float, high: float, what: str) -> Callable[[ua.Variant], np.ndarray]:
    """A check for a Double array of ``length`` finite values within [low, high] (the node's EURange)."""

    def check(variant: ua.Variant) -> np.ndarray:
        if variant.VariantType != ua.VariantType.Double or not isinstance(variant.Value, (list, tuple)):
            raise WriteRefused(ua.StatusCodes.BadTypeMismatch, f"{what} takes an array of Double")
        values = np.asarray(variant.Value, dtype=float)
        if values.shape != (length,):
            raise WriteRefused(ua.StatusCodes.BadTypeMismatch, f"{what} takes {length} values, got {values.size}")
        if not np.all(np.isfinite(values)):
            raise WriteRefused(ua.StatusCodes.BadOutOfRange, f"{what} contains NaN or Inf")
        if np.any(values < low) or np.any(values > high):
            raise WriteRefused(ua.StatusCodes.BadOutOfRange, f"{what} outside its EURange {low:g} .. {high:g}")
        return values

    return check


def double_check(low: float, high: float, what: str) -> Callable[[ua.Variant], float]:
    """A check for a finite Double scalar within [low, high]."""

    def check(variant: ua.Variant) -> float:
        if variant.VariantType != ua.VariantType.Double or isinstance(variant.Value, (list, tuple)):
            raise WriteRefused(ua.StatusCodes.BadTypeMismatch, f"{what} takes a Double")
        value = float(variant.Value)
        if not math.isfinite(value) or not low <= value <= high:
            raise WriteRefused(ua.StatusCodes.BadOutOfRange, f"{what} must be within {low:g} .. {high:g}, got {value}")
        return value

    return check
