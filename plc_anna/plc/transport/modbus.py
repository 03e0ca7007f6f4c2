"""Modbus TCP transport: PLC tags as holding registers (FC 3 read, FC 16 write).

A tag's address is its first 0-based holding register; it occupies
:attr:`~plc_anna.contract.tagmap.Tag.registers` registers (REAL, DINT, UDINT 2,
LREAL 4, INT, UINT, BOOL 1 per element). Bytes within a register are
big-endian, as Modbus defines; the order of the 16-bit words of a multi-word
value follows ``plc.word_order``: ``"big"`` puts the most significant word in
the first (lowest) register (ABCD), ``"little"`` the least significant one
(CDAB).

Reads merge nearby tags into as few FC 3 requests as possible (gaps of up to
:data:`MERGE_GAP` registers, at most :data:`MAX_READ` registers a request);
writes send one FC 16 request per tag, in the given order, split into pieces
of at most :data:`MAX_WRITE` registers, so the commit counter goes out only
after the gain and offset sets were accepted.

Examples
--------
>>> from plc_anna.contract.tagmap import Tag
>>> one = Tag(role="gain_set", address=0, plc_type="REAL")
>>> [hex(r) for r in pack_registers(one, np.array([1.0], dtype="float32"), "big")]
['0x3f80', '0x0']
>>> [hex(r) for r in pack_registers(one, np.array([1.0], dtype="float32"), "little")]
['0x0', '0x3f80']
>>> unpack_registers(one, [0x0000, 0x3F80], "little")
array([1.], dtype=float32)
>>> plan_reads([(0, 4), (6, 2), (100, 2)])
[(0, 8), (100, 102)]
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence

import numpy as np
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from plc_anna.contract.tagmap import PLC_TYPES, PlcSettings, Tag
from plc_anna.plc.transport.base import TagError, TagInfo, Transport, Unreachable, WriteRefused

#: Registers one FC 3 request may read (Modbus limit).
MAX_READ = 125
#: Registers one FC 16 request may write (Modbus limit).
MAX_WRITE = 123
#: Unused registers between two tags that a read still bridges to save a request.
MERGE_GAP = 8

_BIG_ENDIAN = {"float32": ">f4", "float64": ">f8", "int16": ">i2", "uint16": ">u2", "int32": ">i4", "uint32": ">u4"}
EXCEPTION_CODES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                   4: "server device failure", 5: "acknowledge", 6: "server device busy",
                   7: "negative acknowledge", 8: "memory parity error", 10: "gateway path unavailable",
                   11: "gateway target device failed to respond"}


def pack_registers(tag: Tag, raw: np.ndarray, word_order: str = "big") -> list[int]:
    """Holding-register words for a raw 1-d array of ``tag.dtype``.

    Parameters
    ----------
    tag
        The tag (its PLC type fixes the words per element).
    raw
        The values, already encoded to the tag's dtype.
    word_order
        ``"big"`` (most significant word first) or ``"little"``.
    """
    raw = np.asarray(raw).reshape(-1)
    if tag.plc_type == "BOOL":
        return [1 if value else 0 for value in raw.tolist()]
    words = raw.astype(_BIG_ENDIAN[tag.dtype]).view(">u2").reshape(raw.size, -1)
    if word_order == "little":
        words = words[:, ::-1]
    return [int(word) for word in words.reshape(-1)]


def unpack_registers(tag: Tag, registers: Sequence[int], word_order: str = "big") -> np.ndarray:
    """The raw 1-d array of ``tag.dtype`` that ``registers`` hold (the inverse of :func:`pack_registers`)."""
    words = np.asarray(registers, dtype=np.uint16)
    if tag.plc_type == "BOOL":
        return words != 0
    per_element = PLC_TYPES[tag.plc_type][1]
    words = words.reshape(-1, per_element)
    if word_order == "little":
        words = words[:, ::-1]
    return np.ascontiguousarray(words).astype(">u2").reshape(-1).view(_BIG_ENDIAN[tag.dtype]).astype(tag.dtype)


def plan_reads(spans: Sequence[tuple[int, int]], gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """Merge register spans ``(start, count)`` into ``(start, end)`` ranges, bridging gaps of up to ``gap``.

    Each range is read in requests of at most :data:`MAX_READ` registers.
    """
    ranges: list[list[int]] = []
    for start, count in sorted(spans):
        end = start + count
        if ranges and start <= ranges[-1][1] + gap:
            ranges[-1][1] = max(ranges[-1][1], end)
        else:
            ranges.append([start, end])
    return [(start, end) for start, end in ranges]


def _chunks(start: int, end: int, size: int) -> list[tuple[int, int]]:
    return [(first, min(size, end - first)) for first in range(start, end, size)]


def _span_words(start: int, count: int) -> str:
    return f"registers {start}..{start + count - 1}"


def _exception_words(response) -> str:
    code = int(getattr(response, "exception_code", 0))
    return f"exception {code} ({EXCEPTION_CODES.get(code, 'unknown exception code')})"


def _os_words(exc: BaseException, host: str, timeout_s: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"unknown host {host!r}"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class _ExceptionResponse(Exception):
    """The PLC answered a request with a Modbus exception (internal)."""

    def __init__(self, start: int, count: int, response) -> None:
        self.words = _exception_words(response)
        super().__init__(f"{_span_words(start, count)}: {self.words}")


class ModbusTransport(Transport):
    """Holding registers over Modbus TCP (:class:`pymodbus.client.AsyncModbusTcpClient`).

    Parameters
    ----------
    settings
        ``[plc]`` with ``protocol = "modbus"``, ``endpoint = "modbus://HOST:PORT"``, ``unit_id``,
        ``word_order`` and ``timeout_s``.
    """

    protocol = "modbus"

    def __init__(self, settings: PlcSettings) -> None:
        super().__init__(settings)
        self._client: AsyncModbusTcpClient | None = None

    # ------------------------------------------------------------ connection
    async def _connect_hook(self) -> None:
        self._drop_client()
        settings = self.settings
        client = AsyncModbusTcpClient(settings.host, port=settings.port, timeout=settings.timeout_s, retries=0,
                                      reconnect_delay=0)
        started = time.monotonic()
        try:
            connected = await client.connect()
        except (OSError, ModbusException) as exc:
            client.close()
            raise Unreachable(f"{self.endpoint}: cannot connect: {_os_words(exc, settings.host, settings.timeout_s)}"
                              ) from exc
        if not connected:
            client.close()
            raise Unreachable(f"{self.endpoint}: cannot connect: {await self._why_not(started)}")
        self._client = client

    async def _why_not(self, started: float) -> str:
        """Why the client could not connect (pymodbus only says that it could not)."""
        settings = self.settings
        if time.monotonic() - started >= 0.9 * settings.timeout_s:
            return f"no answer within {settings.timeout_s:g} s"
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(settings.host, settings.port),
                                               settings.timeout_s)
        except (OSError, TimeoutError) as exc:
            return _os_words(exc, settings.host, settings.timeout_s)
        writer.close()
        return "the Modbus client could not open the connection"

    async def _close_hook(self) -> None:
        self._drop_client()

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _lost(self, why: str) -> Unreachable:
        """Drop the connection; the Unreachable to raise."""
        self._drop_client()
        return Unreachable(f"{self.endpoint}: {why}")

    async def _request(self, method: str, *args, **kwargs):
        """One Modbus request (a client method by name); Unreachable when the link is gone."""
        client = self._client
        if client is None or not client.connected:
            raise self._lost("connection lost")
        try:
            response = await getattr(client, method)(*args, device_id=self.settings.unit_id, **kwargs)
        except ModbusIOException as exc:
            raise self._lost(f"no answer from unit {self.settings.unit_id} within {self.settings.timeout_s:g} s"
                             ) from exc
        except ConnectionException as exc:
            raise self._lost("connection lost") from exc
        except (OSError, TimeoutError) as exc:
            raise self._lost(f"connection lost: {_os_words(exc, self.settings.host, self.settings.timeout_s)}"
                             ) from exc
        except ModbusException as exc:
            raise self._lost(f"Modbus request failed: {exc}") from exc
        if response.isError() and getattr(response, "exception_code", 0) in (10, 11):  # a gateway lost the unit
            raise self._lost(f"unit {self.settings.unit_id}: {_exception_words(response)}")
        return response

    async def _read_registers(self, start: int, count: int) -> list[int]:
        response = await self._request("read_holding_registers", start, count=count)
        if response.isError():
            raise _ExceptionResponse(start, count, response)
        registers = list(response.registers)
        if len(registers) != count:
            raise self._lost(f"{_span_words(start, count)}: the PLC sent {len(registers)} registers")
        return registers

    async def _read_span(self, start: int, end: int) -> list[int]:
        registers: list[int] = []
        for first, count in _chunks(start, end, MAX_READ):
            registers += await self._read_registers(first, count)
        return registers

    # ------------------------------------------------------------ hooks
    async def _read_hook(self, tags: list[Tag]) -> list[np.ndarray]:
        spans = [(self._address(tag), tag.registers) for tag in tags]
        values: dict[int, list[int]] = {}
        for start, end in plan_reads(spans):
            inside = [k for k, (first, count) in enumerate(spans) if start <= first and first + count <= end]
            try:
                registers = await self._read_span(start, end)
            except _ExceptionResponse as exc:
                if len(inside) == 1:
                    raise self._tag_error(tags[inside[0]], *spans[inside[0]], exc) from None
                # A merged read may cross registers the PLC does not serve: read tag by tag to name the culprit.
                for k in inside:
                    first, count = spans[k]
                    try:
                        values[k] = await self._read_span(first, first + count)
                    except _ExceptionResponse as single:
                        raise self._tag_error(tags[k], first, count, single) from exc
                continue
            for k in inside:
                first, count = spans[k]
                values[k] = registers[first - start:first - start + count]
        return [unpack_registers(tag, values[k], self.settings.word_order) for k, tag in enumerate(tags)]

    def _tag_error(self, tag: Tag, first: int, count: int, exc: _ExceptionResponse) -> TagError:
        return TagError(f"{self.endpoint}: cannot read tag {tag.role} ({_span_words(first, count)}): {exc.words}")

    async def _write_hook(self, items: list[tuple[Tag, np.ndarray]]) -> None:
        # Tags that follow each other in the batch and in the registers travel as one run of requests:
        # still in ascending order, so whatever comes last in the batch (the commit counter) lands last.
        runs: list[tuple[int, list[int], list[Tag]]] = []
        for tag, raw in items:
            address = self._address(tag)
            registers = pack_registers(tag, raw, self.settings.word_order)
            if runs and runs[-1][0] + len(runs[-1][1]) == address:
                runs[-1][1].extend(registers)
                runs[-1][2].append(tag)
            else:
                runs.append((address, list(registers), [tag]))
        for address, registers, tags in runs:
            for first, count in _chunks(address, address + len(registers), MAX_WRITE):
                piece = registers[first - address:first - address + count]
                response = await self._request("write_registers", first, piece)
                if response.isError():
                    roles = ", ".join(tag.role for tag in tags)
                    raise WriteRefused(f"{self.endpoint}: the PLC refused the write of tag {roles} "
                                       f"({_span_words(first, count)}): {_exception_words(response)}")

    async def _describe_hook(self, tags: list[Tag]) -> list[TagInfo]:
        infos = []
        for tag in tags:
            address = self._address(tag)
            try:
                await self._read_span(address, address + tag.registers)
            except _ExceptionResponse as exc:
                infos.append(TagInfo(tag=tag, exists=False, problem=str(exc)))
            else:
                infos.append(TagInfo(tag=tag, exists=True))
        return infos

    def _address(self, tag: Tag) -> int:
        address = tag.address
        if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address <= 65535:
            raise TagError(f"{self.endpoint}: tag {tag.role} has address {address!r}; Modbus needs a holding "
                           "register 0..65535")
        if address + tag.registers > 65536:
            raise TagError(f"{self.endpoint}: tag {tag.role} runs past holding register 65535")
        return address


__all__ = ["EXCEPTION_CODES", "MAX_READ", "MAX_WRITE", "MERGE_GAP", "ModbusTransport",
           "pack_registers", "plan_reads", "unpack_registers"]
