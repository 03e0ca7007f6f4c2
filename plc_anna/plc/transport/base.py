"""The transport interface: read and write PLC tags, whatever the protocol.

:class:`Transport` owns the public methods. It checks and encodes values into
the PLC's data types before anything is sent, decodes and scales what comes
back, and turns every protocol failure into a :class:`LinkError` that names
the endpoint. A backend fills the ``_hook`` methods with raw, typed arrays.

Values
------
An array tag reads as a float64 ``numpy.ndarray`` (raw · scale + bias); a
scalar integer tag as ``int`` (``float`` when it has a scale or bias), a scalar
REAL or LREAL as ``float``, a BOOL as ``bool``. Writes take the same shapes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import numpy as np

from plc_anna.contract.tagmap import PLC_TYPES, PlcSettings, Tag

Value = Union[np.ndarray, int, float, bool]

_INTEGER_RANGES = {"BOOL": (0, 1), "INT": (-2**15, 2**15 - 1), "UINT": (0, 2**16 - 1),
                   "DINT": (-2**31, 2**31 - 1), "UDINT": (0, 2**32 - 1)}
_FLOAT_LIMITS = {"REAL": float(np.finfo(np.float32).max), "LREAL": float(np.finfo(np.float64).max)}


class LinkError(Exception):
    """The PLC could not be reached or refused the request; the message names the endpoint and the cause."""


class Unreachable(LinkError):
    """No connection: refused, timed out, or lost."""


class AuthenticationFailed(LinkError):
    """The PLC refused the user name and password."""


class CertificateRejected(LinkError):
    """The PLC refused our certificate or we could not verify its own."""


class TagError(LinkError):
    """A tag does not exist, or its type or length differs from the tag map."""


class WriteRefused(LinkError):
    """The PLC refused a write (no write access, or a bad value)."""


@dataclass(frozen=True)
class TagInfo:
    """What the PLC says about one tag (None: the protocol cannot tell)."""

    tag: Tag
    exists: bool
    plc_type: str | None = None
    length: int | None = None
    writable: bool | None = None
    problem: str | None = None
    """Why the tag does not match the map, in words; None when it does (as far as the protocol can tell)."""


class Transport(ABC):
    """A connection to one PLC.

    Parameters
    ----------
    settings
        The tag map's ``[plc]`` table: protocol, endpoint, credentials, timeouts.
    """

    protocol: ClassVar[str]

    def __init__(self, settings: PlcSettings) -> None:
        if settings.protocol != self.protocol:
            raise ValueError(f"{type(self).__name__} speaks {self.protocol!r}, the settings say {settings.protocol!r}")
        self.settings = settings
        self._connected = False

    @property
    def endpoint(self) -> str:
        return self.settings.endpoint

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        """Open the connection; a :class:`LinkError` subclass names what went wrong."""
        if self._connected:
            return
        await self._guard(self._connect_hook(), "connect")
        self._connected = True

    async def close(self) -> None:
        """Close the connection (never raises; the hook runs even after a lost connection, to free it)."""
        self._connected = False
        try:
            await self._close_hook()
        except Exception:  # noqa: BLE001 - a connection that is gone cannot be closed more
            pass

    async def __aenter__(self) -> Transport:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def read(self, tags: Sequence[Tag]) -> list[Value]:
        """Read ``tags`` (in one request where the protocol allows); decoded values in the same order."""
        self._require_connection()
        raw = await self._guard(self._read_hook(list(tags)), "read")
        return [decode(tag, value) for tag, value in zip(tags, raw, strict=True)]

    async def write(self, items: Sequence[tuple[Tag, Any]]) -> None:
        """Write every ``(tag, value)`` as one batch, in order; a bad value raises ValueError and sends nothing."""
        encoded = [(tag, encode(tag, value)) for tag, value in items]
        self._require_connection()
        await self._guard(self._write_hook(encoded), "write")

    async def describe(self, tags: Sequence[Tag]) -> list[TagInfo]:
        """What the PLC says about each tag: does it exist, its type, length and write access."""
        self._require_connection()
        return await self._guard(self._describe_hook(list(tags)), "describe")

    def _require_connection(self) -> None:
        if not self._connected:
            raise Unreachable(f"{self.endpoint}: not connected")

    async def _guard(self, coroutine, what: str):
        """Run a hook; a lost connection marks the transport disconnected."""
        try:
            return await coroutine
        except Unreachable:
            self._connected = False
            raise
        except LinkError:
            raise
        except (OSError, TimeoutError, ConnectionError) as exc:  # the connection is gone or never came
            self._connected = False
            raise Unreachable(f"{self.endpoint}: {what} failed: {str(exc) or type(exc).__name__}") from exc

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    async def _connect_hook(self) -> None:
        """Connect; raise Unreachable, AuthenticationFailed or CertificateRejected."""

    @abstractmethod
    async def _close_hook(self) -> None:
        """Disconnect."""

    @abstractmethod
    async def _read_hook(self, tags: list[Tag]) -> list[np.ndarray]:
        """Raw values, one 1-d array of ``tag.dtype`` per tag (length 1 for scalars); LinkError on failure."""

    @abstractmethod
    async def _write_hook(self, items: list[tuple[Tag, np.ndarray]]) -> None:
        """Write encoded 1-d arrays of ``tag.dtype``, in order, as few requests as the protocol allows."""

    @abstractmethod
    async def _describe_hook(self, tags: list[Tag]) -> list[TagInfo]:
        """One :class:`TagInfo` per tag."""


def encode(tag: Tag, value: Any) -> np.ndarray:
    """``value`` as a 1-d array of the tag's PLC type; ValueError naming the tag when it does not fit."""
    array = np.asarray(value, dtype=np.float64 if tag.plc_type != "BOOL" else None)
    expected = (tag.length,) if tag.length is not None else ()
    if array.shape != expected and not (tag.length is None and array.shape == (1,)):
        raise ValueError(f"tag {tag.role} ({tag.address}) takes {_shape_words(tag)}, got shape {array.shape}")
    array = array.reshape(-1).astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"tag {tag.role} ({tag.address}): NaN or Inf cannot be written")
    if tag.plc_type in _FLOAT_LIMITS:
        limit = _FLOAT_LIMITS[tag.plc_type]
        if np.any(np.abs(array) > limit):
            raise ValueError(f"tag {tag.role} ({tag.address}): a value exceeds the {tag.plc_type} range ±{limit:.4g}")
        return array.astype(PLC_TYPES[tag.plc_type][0])
    raw = np.rint((array - tag.bias) / tag.scale)
    low, high = _INTEGER_RANGES[tag.plc_type]
    if np.any(raw < low) or np.any(raw > high):
        raise ValueError(f"tag {tag.role} ({tag.address}): a value is outside the {tag.plc_type} range {low}..{high}"
                         + (" after scaling" if tag.scale != 1.0 or tag.bias != 0.0 else ""))
    return raw.astype(PLC_TYPES[tag.plc_type][0])


def decode(tag: Tag, raw: np.ndarray) -> Value:
    """A raw 1-d array of the tag's PLC type as the value callers see (see the module docstring)."""
    raw = np.asarray(raw).reshape(-1)
    n = tag.length or 1
    if raw.size != n:
        raise TagError(f"tag {tag.role} ({tag.address}) should hold {_shape_words(tag)}, the PLC sent {raw.size}")
    values = raw.astype(np.float64) * tag.scale + tag.bias
    if tag.length is not None:
        return values
    if tag.plc_type == "BOOL":
        return bool(raw[0])
    if tag.plc_type in _FLOAT_LIMITS or tag.scale != 1.0 or tag.bias != 0.0:
        return float(values[0])
    return int(raw[0])


def _shape_words(tag: Tag) -> str:
    return f"{tag.length} values" if tag.length is not None else "one value"


def backoff_delays(minimum_s: float, maximum_s: float):
    """Reconnect delays: ``minimum_s``, doubling up to ``maximum_s``, then ``maximum_s`` for ever."""
    delay = minimum_s
    while True:
        yield delay
        delay = min(maximum_s, delay * 2 if math.isfinite(delay) else maximum_s)
