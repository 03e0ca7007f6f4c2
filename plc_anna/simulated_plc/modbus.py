"""The simulated PLC over Modbus TCP: the OpenPLC register map around a :class:`SimulatedPlc`.

Holding registers of unit 1 (function codes 3, 6 and 16; the same registers answer FC 4), 0-based.
Layer ``k`` follows the OpenPLC map of ``ladder_examples/openplc/README.md`` at
``2048 + 528 k`` when every layer fits it, else a packed layout from 2048; the
device tags and the traces follow at ``max(4096, end of the layer blocks)``
(:func:`~plc_anna.contract.layout.modbus_register_map`, ``docs/simulated-plc.md``).
REAL is IEEE binary32 in two registers, UDINT and DINT 32 bits in two, LREAL
binary64 in four; word order ``big`` puts the most significant word first (ABCD),
``little`` the least significant; each register travels high byte first.

The registers from 2048 to the last tag exist: those between tags read as 0, like OpenPLC's
unlocated memory, so a client may bridge them in one read. Only GainSet, OffsetSet, CommitCounter
and Heartbeat are writable: a write that touches any other register, or a request outside
2048 .. the last tag, is answered with exception 2 (illegal data address) and changes nothing.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import numpy as np
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plc_anna.contract.layout import DEVICE_TAGS, LAYER_TAGS, MODBUS_TYPES, WRITTEN_TAGS, tag_length
from plc_anna.contract.tagmap import PLC_TYPES, WORD_ORDERS, TagMap
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.simulated_plc.server import SimulatedPlcServer, check_port_free

DEFAULT_ENDPOINT = "modbus://127.0.0.1:5020"
UNIT_ID = 1
_DTYPES = {"REAL": ">f4", "LREAL": ">f8", "UDINT": ">u4", "DINT": ">i4"}
OUTPUT_TAGS = tuple(name for name in LAYER_TAGS if name not in WRITTEN_TAGS)


def encode(values, plc_type: str, word_order: str = "big") -> list[int]:
    """Registers of one tag's values (a scalar or an array) in ``plc_type`` and ``word_order``.

    >>> encode([1.0], "REAL"), encode(70000, "UDINT"), encode(70000, "UDINT", "little")
    ([16256, 0], [1, 4464], [4464, 1])
    """
    words = np.atleast_1d(np.asarray(values)).astype(_DTYPES[plc_type]).view(">u2")
    words = words.reshape(-1, PLC_TYPES[plc_type][1])
    return (words[:, ::-1] if word_order == "little" else words).ravel().tolist()


def decode(registers, plc_type: str, word_order: str = "big") -> np.ndarray:
    """The values in ``registers`` (the inverse of :func:`encode`), as a native-endian array.

    >>> decode([16256, 0, 0, 0], "REAL").tolist(), int(decode([1, 4464], "UDINT")[0])
    ([1.0, 0.0], 70000)
    """
    words = np.asarray(registers, dtype=">u2").reshape(-1, PLC_TYPES[plc_type][1])
    if word_order == "little":
        words = words[:, ::-1]
    dtype = np.dtype(_DTYPES[plc_type])
    return np.ascontiguousarray(words).view(dtype).ravel().astype(dtype.newbyteorder("="))


class SimulatedPlcModbus(SimulatedPlcServer):
    """A :class:`SimulatedPlc` served over Modbus TCP (a pymodbus server, unit 1); use it as ``async with``.

    Parameters
    ----------
    plc
        The program.
    endpoint
        ``modbus://HOST:PORT`` to listen on (127.0.0.1 unless told otherwise).
    word_order
        ``big`` (ABCD, OpenPLC's) or ``little`` (CDAB).
    run_cycles
        Run the cycle task; False for tests that call :meth:`step` themselves.

    Examples
    --------
    >>> import asyncio
    >>> from pymodbus.client import AsyncModbusTcpClient
    >>> from plc_anna.device.simulated import SimulatedNetwork
    >>> from plc_anna.testing import free_port
    >>> async def demo():
    ...     plc = SimulatedPlc(SimulatedNetwork("digits", "pcm"), trace_length=2)
    ...     port = free_port()
    ...     async with SimulatedPlcModbus(plc, f"modbus://127.0.0.1:{port}", run_cycles=False) as server:
    ...         await server.step()
    ...         client = AsyncModbusTcpClient("127.0.0.1", port=port)
    ...         await client.connect()
    ...         reply = await client.read_holding_registers(server.address(1, "PlcHeartbeat"), count=2, device_id=1)
    ...         client.close()
    ...         return server.address(1, "PlcHeartbeat"), reply.registers
    >>> asyncio.run(demo())
    (2710, [0, 1])
    """

    def __init__(self, plc: SimulatedPlc, endpoint: str = DEFAULT_ENDPOINT, *, word_order: str = "big",
                 run_cycles: bool = True) -> None:
        super().__init__(plc, run_cycles=run_cycles)
        parts = urlsplit(endpoint)
        if parts.scheme != "modbus" or not parts.hostname or parts.port is None:
            raise ValueError(f"endpoint must look like modbus://HOST:PORT, got {endpoint!r}")
        if word_order not in WORD_ORDERS:
            raise ValueError(f"word_order must be one of {', '.join(WORD_ORDERS)}, got {word_order!r}")
        self.endpoint, self.host, self.port, self.word_order = endpoint, parts.hostname, parts.port, word_order
        self.register_map = plc.layout("openplc").registers()
        self._lengths = {(k, name): tag_length(name, n_in, n_out, plc.trace_length) or 1
                         for k, (n_in, n_out) in enumerate(plc.shapes) for name in LAYER_TAGS}
        self._lengths.update({(None, name): 1 for name in DEVICE_TAGS})
        self._server: ModbusTcpServer | None = None
        self._registers: list[int] | None = None  # the datastore's register list (its memory)
        self._first = 0                             # the address of _registers[0]

    def address(self, layer: int | None, name: str) -> int:
        """The first holding register of a tag (``layer=None``: DeviceAge or DeviceTemperature)."""
        return self.register_map[layer, name]

    def tag_map(self) -> TagMap:
        """The tag map of this server (endpoint, unit 1, word order)."""
        return self.plc.tag_map("modbus", self.endpoint, word_order=self.word_order)

    def _type(self, name: str) -> str:
        return "LREAL" if name in DEVICE_TAGS else MODBUS_TYPES[name]

    def _device(self) -> SimDevice:
        """The datastore: one block of registers per tag, read-only blocks of zeros between them."""
        blocks, end = [], None
        for (layer, name), address in sorted(self.register_map.items(), key=lambda item: item[1]):
            if end is not None and address > end:
                blocks.append(SimData(end, values=[0] * (address - end), datatype=DataType.REGISTERS, readonly=True))
            count = PLC_TYPES[self._type(name)][1] * self._lengths[layer, name]
            blocks.append(SimData(address, values=[0] * count, datatype=DataType.REGISTERS,
                                  readonly=name not in WRITTEN_TAGS))
            end = address + count
        return SimDevice(UNIT_ID, simdata=blocks)

    # ---------------------------------------------------------------- lifecycle
    async def _start(self) -> None:
        check_port_free(self.host, self.port)
        await self._start_listening()

    async def _start_listening(self) -> None:
        server = ModbusTcpServer(self._device(), address=(self.host, self.port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus reports a failed bind this way
            raise OSError(f"cannot listen on {self.host}:{self.port}: {exc}") from None
        first, _, registers, _ = server.context.devices[UNIT_ID].block["x"]
        if self._registers is not None:
            registers[:] = self._registers  # a communication restart keeps the PLC's memory
        self._server, self._registers, self._first = server, registers, first

    async def _stop_listening(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
            await asyncio.sleep(0)  # let the closed connections' callbacks run

    async def _stop(self) -> None:
        await self._stop_listening()

    # ---------------------------------------------------------------- the cycle
    def _read(self, layer: int | None, name: str) -> np.ndarray:
        start = self.register_map[layer, name] - self._first
        count = PLC_TYPES[self._type(name)][1] * self._lengths[layer, name]
        return decode(self._registers[start:start + count], self._type(name), self.word_order)

    def _write(self, layer: int | None, name: str, value) -> None:
        start = self.register_map[layer, name] - self._first
        words = encode(value, self._type(name), self.word_order)
        self._registers[start:start + len(words)] = words

    def _copy_in(self) -> None:
        for k in range(self.plc.n_layers):
            for name in WRITTEN_TAGS:
                value = self._read(k, name)
                self.plc.set_tag(k, name, value if LAYER_TAGS[name][0] == "REAL" else int(value[0]))

    async def _publish(self, written: bool) -> None:
        for k in range(self.plc.n_layers):
            tags = self.plc.tags(k)
            for name in (LAYER_TAGS if written else OUTPUT_TAGS):
                self._write(k, name, tags[name])
        for name, value in self.plc.device_tags().items():
            self._write(None, name, value)


__all__ = ["DEFAULT_ENDPOINT", "UNIT_ID", "SimulatedPlcModbus", "decode", "encode"]
