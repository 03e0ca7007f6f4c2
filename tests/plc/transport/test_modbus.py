"""The Modbus TCP transport against a real pymodbus server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time

import numpy as np
import pytest
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plc_anna.contract.tagmap import PlcSettings, Tag
from plc_anna.plc.transport import open_transport
from plc_anna.plc.transport.base import TagError, Unreachable, WriteRefused
from plc_anna.plc.transport.modbus import ModbusTransport, pack_registers, plan_reads, unpack_registers
from plc_anna.testing import free_port

UNIT = 1
#: Served holding registers: 0..599 and 604..1199; 600..603 and everything above are illegal addresses.
HOLE = range(600, 604)
END = 1200


class Plc:
    """A pymodbus TCP server with one unit, recording the requests it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[tuple[int, int, int]] = []  # (function code, address, count)
        self.failures: dict[int, ExcCodes] = {}  # request address -> the exception the unit answers with
        device = SimDevice(id=UNIT, action=self._action, simdata=[
            SimData(0, count=HOLE.start, values=0, datatype=DataType.REGISTERS),
            SimData(HOLE.stop, count=END - HOLE.stop, values=0, datatype=DataType.REGISTERS)])
        self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port), trace_pdu=self._trace)

    async def _action(self, function_code, start_address, address, count, registers, values):
        return self.failures.get(address)

    def _trace(self, sending: bool, pdu):
        if not sending and pdu.function_code in (3, 16):
            self.requests.append((pdu.function_code, pdu.address, getattr(pdu, "count", 0) or len(pdu.registers)))
        return pdu

    def count(self, function_code: int) -> int:
        return sum(1 for request in self.requests if request[0] == function_code)

    async def registers(self, address: int, count: int) -> list[int]:
        return list(await self.server.async_getValues(UNIT, 3, address, count))

    async def set_registers(self, address: int, values: list[int]) -> None:
        await self.server.async_setValues(UNIT, 16, address, values)

    def settings(self, word_order: str = "big", timeout_s: float = 1.0) -> PlcSettings:
        return PlcSettings(protocol="modbus", endpoint=f"modbus://127.0.0.1:{self.port}", unit_id=UNIT,
                           word_order=word_order, timeout_s=timeout_s)


@contextlib.asynccontextmanager
async def running_plc():
    plc = Plc()
    await plc.server.serve_forever(background=True)
    try:
        yield plc
    finally:
        await plc.server.shutdown()


def run(coroutine, timeout: float = 20):
    async def main():
        async with asyncio.timeout(timeout):
            return await coroutine

    return asyncio.run(main())


def expected_words(plc_type: str, values, word_order: str) -> list[int]:
    """The documented layout, built with struct (independent of the transport's numpy code)."""
    fmt = {"REAL": "f", "LREAL": "d", "INT": "h", "UINT": "H", "DINT": "i", "UDINT": "I", "BOOL": "H"}[plc_type]
    words = []
    for value in np.atleast_1d(values).tolist():
        data = struct.pack(">" + fmt, int(value) if plc_type == "BOOL" else value)
        element = [int.from_bytes(data[k:k + 2], "big") for k in range(0, len(data), 2)]
        words += element[::-1] if word_order == "little" else element
    return words


CASES = [  # (plc type, value written, length)
    ("REAL", 1.0, None), ("REAL", [1.5, -2.25, 3e10], 3), ("LREAL", 1.0, None),
    ("LREAL", [np.pi, -1e-300], 2), ("INT", -1, None), ("INT", [-32768, 32767, 5], 3), ("UINT", 65535, None),
    ("DINT", -2, None), ("DINT", [-2147483648, 2147483647], 2), ("UDINT", 0x12345678, None),
    ("UDINT", [0, 4294967295], 2), ("BOOL", True, None), ("BOOL", [True, False, True], 3),
]


@pytest.mark.parametrize("word_order", ["big", "little"])
def test_round_trip_of_every_type_matches_the_documented_register_layout(word_order):
    async def body():
        async with running_plc() as plc, ModbusTransport(plc.settings(word_order)) as link:
            address = 10
            for plc_type, value, length in CASES:
                tag = Tag(role="inputs", address=address, plc_type=plc_type, length=length)
                await link.write([(tag, value)])
                raw = await plc.registers(address, tag.registers)
                assert raw == expected_words(plc_type, value, word_order), (plc_type, value)
                (back,) = await link.read([tag])
                if plc_type == "REAL":
                    np.testing.assert_array_equal(back, np.float32(value))
                else:
                    np.testing.assert_array_equal(back, value)
                address += tag.registers + 1

    run(body())


def test_documented_examples():
    real = Tag(role="gain_set", address=0, plc_type="REAL")
    one = np.array([1.0], dtype="float32")
    assert pack_registers(real, one, "big") == [0x3F80, 0x0000]
    assert pack_registers(real, one, "little") == [0x0000, 0x3F80]
    lreal = Tag(role="gain_set", address=0, plc_type="LREAL")
    assert pack_registers(lreal, np.array([1.0]), "big") == [0x3FF0, 0, 0, 0]
    assert pack_registers(lreal, np.array([1.0]), "little") == [0, 0, 0, 0x3FF0]
    udint = Tag(role="commit_counter", address=0, plc_type="UDINT")
    assert pack_registers(udint, np.array([0x12345678], dtype="uint32"), "little") == [0x5678, 0x1234]
    assert unpack_registers(udint, [0x5678, 0x1234], "little").tolist() == [0x12345678]
    assert unpack_registers(udint, [0x1234, 0x5678], "big").dtype == np.uint32


def test_a_value_the_plc_type_cannot_hold_is_refused_before_sending():
    async def body():
        async with running_plc() as plc, ModbusTransport(plc.settings()) as link:
            with pytest.raises(ValueError, match="INT range"):
                await link.write([(Tag(role="heartbeat", address=0, plc_type="INT"), 40000)])
            assert plc.count(16) == 0

    run(body())


def test_a_long_array_is_written_and_read_in_chunks():
    async def body():
        async with running_plc() as plc, ModbusTransport(plc.settings("little")) as link:
            tag = Tag(role="trace_inputs", address=4, plc_type="REAL", length=256)
            values = np.linspace(-1, 1, 256)
            await link.write([(tag, values)])
            writes = [request for request in plc.requests if request[0] == 16]
            assert [count for _, _, count in writes] == [123, 123, 123, 123, 20]
            assert [address for _, address, _ in writes] == [4, 127, 250, 373, 496]
            (back,) = await link.read([tag])
            np.testing.assert_allclose(back, values, rtol=1e-7)
            assert plc.count(3) == 5  # 512 registers in requests of at most 125
            assert await plc.registers(4, 2) == expected_words("REAL", values[0], "little")

    run(body())


def test_nearby_tags_are_read_in_few_requests():
    async def body():
        async with running_plc() as plc, ModbusTransport(plc.settings()) as link:
            tags = [Tag(role="raw_outputs", address=0, plc_type="REAL", length=3),
                    Tag(role="accepted_commit", address=6, plc_type="UDINT"),
                    Tag(role="status", address=12, plc_type="DINT"),        # a gap of 4 registers: still merged
                    Tag(role="fault", address=100, plc_type="BOOL"),        # far away: its own request
                    Tag(role="plc_heartbeat", address=8, plc_type="UDINT")]  # out of order in the list
            await plc.set_registers(0, expected_words("REAL", [1, 2, 3], "big") + [0, 7, 0, 9])
            await plc.set_registers(12, [0xFFFF, 0xFFFE])
            await plc.set_registers(100, [1])
            values = await link.read(tags)
            np.testing.assert_array_equal(values[0], [1, 2, 3])
            assert values[1:] == [7, -2, True, 9]
            assert sorted(request[1:] for request in plc.requests) == [(0, 14), (100, 1)]

    run(body())


def test_plan_reads_merges_gaps_up_to_eight_registers():
    assert plan_reads([(0, 2), (10, 2)]) == [(0, 12)]
    assert plan_reads([(0, 2), (11, 2)]) == [(0, 2), (11, 13)]
    assert plan_reads([(20, 4), (0, 2), (21, 1)]) == [(0, 2), (20, 24)]


def test_a_merged_read_across_unserved_registers_falls_back_to_one_request_per_tag():
    async def body():
        async with running_plc() as plc, ModbusTransport(plc.settings()) as link:
            below = Tag(role="inputs", address=HOLE.start - 2, plc_type="REAL")
            above = Tag(role="raw_outputs", address=HOLE.stop, plc_type="REAL")
            await link.write([(below, 1.0), (above, 2.0)])
            assert await link.read([below, above]) == [1.0, 2.0]
            assert plc.count(3) == 3  # the merged request, refused; then one per tag

    run(body())


def test_illegal_addresses_are_named():
    async def body():
        async with running_plc() as plc, ModbusTransport(plc.settings()) as link:
            good = Tag(role="inputs", address=0, plc_type="REAL")
            bad = Tag(role="status", address=HOLE.start + 1, plc_type="DINT")
            with pytest.raises(TagError, match=r"tag status \(registers 601\.\.602\): exception 2 \(illegal data "
                                               r"address\)"):
                await link.read([good, bad])
            with pytest.raises(TagError, match="illegal data address"):
                await link.read([Tag(role="fault", address=END + 10, plc_type="BOOL")])
            assert link.connected  # an exception response is an answer: the link stays up
            infos = await link.describe([good, bad])
            assert infos[0].exists and infos[0].problem is None and infos[0].plc_type is None
            assert not infos[1].exists and infos[1].problem == "registers 601..602: exception 2 (illegal data address)"

    run(body())


def test_writes_go_out_in_order_adjacent_tags_together_and_stop_at_a_refusal():
    async def body():
        async with running_plc() as plc, ModbusTransport(plc.settings()) as link:
            gain = Tag(role="gain_set", address=0, plc_type="REAL", length=2)
            offset = Tag(role="offset_set", address=4, plc_type="REAL", length=2)
            counter = Tag(role="commit_counter", address=8, plc_type="UDINT")
            far = Tag(role="heartbeat", address=20, plc_type="UDINT")
            # Adjacent in the batch and in the registers: one request, ascending, the counter at its end.
            await link.write([(gain, [1, 2]), (offset, [3, 4]), (counter, 5)])
            assert [request[:2] for request in plc.requests] == [(16, 0)]
            plc.requests.clear()
            # Not adjacent (a gap, or out of order in the batch): separate requests, in the batch's order.
            await link.write([(offset, [3, 4]), (gain, [1, 2]), (far, 7), (counter, 5)])
            assert [request[:2] for request in plc.requests] == [(16, 4), (16, 0), (16, 20), (16, 8)]
            bad_offset = Tag(role="offset_set", address=HOLE.start, plc_type="REAL", length=2)
            with pytest.raises(WriteRefused, match=r"tag offset_set \(registers 600\.\.603\): exception 2 "
                                                   r"\(illegal data address\)"):
                await link.write([(gain, [9, 9]), (bad_offset, [3, 4]), (counter, 6)])
            assert await link.read([counter]) == [5]  # the counter was not written after the refusal
            np.testing.assert_array_equal((await link.read([gain]))[0], [9, 9])

    run(body())


def test_exception_codes_in_words_and_a_lost_unit_behind_a_gateway():
    async def body():
        async with running_plc() as plc, ModbusTransport(plc.settings()) as link:
            busy = Tag(role="heartbeat", address=700, plc_type="UDINT")
            behind_gateway = Tag(role="status", address=710, plc_type="DINT")
            plc.failures.update({700: ExcCodes.DEVICE_BUSY, 710: ExcCodes.GATEWAY_NO_RESPONSE})
            with pytest.raises(WriteRefused, match=r"tag heartbeat \(registers 700\.\.701\): exception 6 \(server "
                                                   r"device busy\)"):
                await link.write([(busy, 1)])
            assert link.connected
            with pytest.raises(Unreachable, match=r"unit 1: exception 11 \(gateway target device failed to respond"):
                await link.read([behind_gateway])
            assert not link.connected

    run(body())


def test_unreachable_port():
    async def body():
        link = open_transport(PlcSettings(protocol="modbus", endpoint=f"modbus://127.0.0.1:{free_port()}",
                                          timeout_s=0.5))
        started = time.monotonic()
        with pytest.raises(Unreachable, match=r"modbus://127\.0\.0\.1:\d+: cannot connect: connection refused"):
            await link.connect()
        assert time.monotonic() - started < 1.5
        assert not link.connected
        with pytest.raises(Unreachable, match="not connected"):
            await link.read([Tag(role="status", address=0, plc_type="INT")])
        assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running after the failed connect

    run(body())


def test_a_plc_that_does_not_answer_times_out():
    async def body():
        async def silent(reader, writer):  # reads what the client sends, never answers
            while await reader.read(1000):
                pass
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            link = ModbusTransport(PlcSettings(protocol="modbus", endpoint=f"modbus://127.0.0.1:{port}",
                                               timeout_s=0.5))
            await link.connect()
            started = time.monotonic()
            with pytest.raises(Unreachable, match="no answer from unit 1 within 0.5 s"):
                await link.read([Tag(role="status", address=0, plc_type="INT")])
            assert time.monotonic() - started < 1.5
            assert not link.connected
            await link.close()
        finally:
            server.close()

    run(body())


def test_a_stopped_server_makes_the_link_unreachable_and_a_reconnect_works():
    async def body():
        async with running_plc() as plc:
            link = ModbusTransport(plc.settings())
            await link.connect()
            tag = Tag(role="status", address=0, plc_type="DINT")
            await link.write([(tag, 42)])
            await plc.server.shutdown()
            await asyncio.sleep(0.1)
            with pytest.raises(Unreachable, match="connection lost"):
                await link.read([tag])
            assert not link.connected
            with pytest.raises(Unreachable, match="connection refused"):
                await link.connect()
        async with running_plc() as plc, ModbusTransport(plc.settings()) as again:  # a new PLC on another port
            assert await again.read([tag]) == [0]

    run(body())
