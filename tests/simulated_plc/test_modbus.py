"""The simulated PLC over Modbus TCP, with a plain pymodbus client on loopback: register layout, writes,
watchdog, trace, communication restart, clean stop and the ``plc-sim`` command."""

from __future__ import annotations

import asyncio
import math
import socket

import numpy as np
import pytest
from click.testing import CliRunner
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException

from plc_anna.commands.plc_sim import plc_sim
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.contract.logic import Status
from plc_anna.contract.layout import MODBUS_TYPES, OPENPLC_OFFSETS
from plc_anna.simulated_plc.modbus import SimulatedPlcModbus, decode, encode
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.contract.tagmap import load_tag_map
from plc_anna.testing import free_port
from tests.simulated_plc.support import assert_stopped_cleanly

TIMEOUT_CYCLES = 5
LAYER2 = 2048 + 2 * 528  # the thermocouple's last layer (4 outputs) in the OpenPLC layout


def make_plc(**kwargs) -> SimulatedPlc:
    return SimulatedPlc(SimulatedNetwork("thermocouple", "pcm", seed=0), trace_length=4,
                        heartbeat_timeout_s=0.05, **kwargs)


@pytest.fixture(scope="module")
def rig():
    """A stepped server (no cycle task) and a client on one event loop."""
    loop = asyncio.new_event_loop()
    port = free_port()

    async def start():  # pymodbus objects need the running loop
        server = SimulatedPlcModbus(make_plc(), f"modbus://127.0.0.1:{port}", run_cycles=False)
        await server.__aenter__()
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await client.connect()
        return server, client

    server, client = loop.run_until_complete(start())
    try:
        yield loop, server, client
    finally:
        client.close()
        loop.run_until_complete(server.__aexit__(None, None, None))
        loop.close()


async def write(client, layer_base: int, **items) -> None:
    """FC 16 per tag, in the keyword order (gain, offset, counter, heartbeat)."""
    for name, value in items.items():
        reply = await client.write_registers(layer_base + OPENPLC_OFFSETS[name], encode(value, MODBUS_TYPES[name]),
                                             device_id=1)
        assert not reply.isError(), (name, reply)


async def read(client, layer_base: int, name: str, length: int = 1):
    reply = await client.read_holding_registers(layer_base + OPENPLC_OFFSETS[name], count=2 * length, device_id=1)
    assert not reply.isError(), (name, reply)
    value = decode(reply.registers, MODBUS_TYPES[name])
    return value if length > 1 else value[0].item()


async def fresh(server) -> None:
    server.plc.cold_restart()
    await server.step()


def test_register_layout_is_the_openplc_map(rig):
    loop, server, client = rig

    async def check():
        await fresh(server)
        for k in range(3):
            for name, offset in OPENPLC_OFFSETS.items():
                assert server.address(k, name) == 2048 + 528 * k + offset
        tag_map = server.tag_map()
        assert all(tag.address == server.address(layer.index, name) for layer in tag_map.layers
                   for name, tag in (("GainSet", layer.gain_set), ("Fault", layer.fault), ("Inputs", layer.inputs)))
        assert (tag_map.device.age_s.address, tag_map.device.temperature_k.address) == (4096, 4100)
        assert tag_map.layer(0).trace_count.address == 4104 and tag_map.plc.unit_id == 1
        # Status, AcceptedCommit, PlcHeartbeat, Fault in one read, as ladder_examples/openplc describes.
        reply = await client.read_holding_registers(LAYER2 + 132, count=8, device_id=1)
        accepted, heartbeat, status, fault = decode(reply.registers[:4], "UDINT").tolist() + \
            decode(reply.registers[4:6], "DINT").tolist() + decode(reply.registers[6:], "UDINT").tolist()
        assert (accepted, heartbeat, status, fault) == (0, 1, 0, 0)
        gain = await read(client, LAYER2, "GainSet", 4)
        assert gain.dtype == np.float32 and gain.tolist() == [1.0] * 4
        age = decode((await client.read_holding_registers(4096, count=4, device_id=1)).registers, "LREAL")[0]
        assert age == server.plc.net.age_s
        # Between tags: readable zeros, not writable; outside the map: nothing.
        assert (await client.read_holding_registers(LAYER2 + 140, count=4, device_id=1)).registers == [0] * 4
        for address, count in ((2047, 2), (LAYER2 + 140, 2)):
            reply = await client.write_registers(address, [1] * count, device_id=1)
            assert reply.isError() and reply.exception_code == 2
        end = max(server.register_map.values())
        assert (await client.read_holding_registers(end + 4 * 32 * 2, count=2, device_id=1)).isError()

    loop.run_until_complete(check())


def test_read_only_registers_refuse_writes_whole(rig):
    loop, server, client = rig

    async def check():
        await fresh(server)
        for name in ("AcceptedCommit", "Status", "AppliedGain", "RawOutputs", "Inputs"):
            reply = await client.write_registers(LAYER2 + OPENPLC_OFFSETS[name], [0, 7], device_id=1)
            assert reply.isError() and reply.exception_code == 2, name
        # CommitCounter and Heartbeat are writable, AcceptedCommit right after them is not: the request fails whole.
        reply = await client.write_registers(LAYER2 + 128, encode([5, 6, 7], "UDINT"), device_id=1)
        assert reply.isError()
        assert await read(client, LAYER2, "CommitCounter") == 0
        await write(client, LAYER2, CommitCounter=0, Heartbeat=3)  # both in range: fine

    loop.run_until_complete(check())


def test_a_written_set_is_taken_ramps_and_arrays_without_counter_are_ignored(rig):
    loop, server, client = rig

    async def check():
        await fresh(server)
        await write(client, LAYER2, GainSet=[1.1, 0.5, 1.0, 1.0], OffsetSet=[0.25, 0.0, 0.0, 0.0], CommitCounter=1,
                    Heartbeat=1)
        trail = []
        for beat in range(2, 10):
            await server.step()
            trail.append(await read(client, LAYER2, "AppliedGain", 4))
            assert await read(client, LAYER2, "AcceptedCommit") == 1
            await write(client, LAYER2, Heartbeat=beat)
        gains = np.array(trail)
        assert np.all(np.abs(np.diff(gains, axis=0)) <= np.float32(0.02) + 1e-7)
        assert gains[-1].tolist() == pytest.approx([1.1, 0.84, 1.0, 1.0])
        assert (await read(client, LAYER2, "AppliedOffset", 4))[0] == 0.25
        await write(client, LAYER2, GainSet=[3.0] * 4, Heartbeat=20)  # no new counter
        for beat in range(21, 24):
            await server.step()
            await write(client, LAYER2, Heartbeat=beat)
        assert await read(client, LAYER2, "AcceptedCommit") == 1
        np.testing.assert_array_equal(server.plc.block(2).target_gain, np.float32([1.1, 0.5, 1.0, 1.0]))

    loop.run_until_complete(check())


def test_heartbeat_stall_holds_and_recovers_and_nan_is_rejected(rig):
    loop, server, client = rig

    async def check():
        await fresh(server)
        await write(client, LAYER2, GainSet=[2.0] * 4, CommitCounter=1, Heartbeat=1)
        await server.step()
        faults, held = [], []
        for _ in range(TIMEOUT_CYCLES + 2):
            await server.step()
            faults.append(await read(client, LAYER2, "Fault"))
            held.append((await read(client, LAYER2, "AppliedGain", 4)).tolist())
        assert faults == [0] * (TIMEOUT_CYCLES - 1) + [1] * 3
        assert await read(client, LAYER2, "Status") == Status.HOLDING
        assert held[-1] == held[TIMEOUT_CYCLES - 1] != [2.0] * 4
        await write(client, LAYER2, GainSet=[math.nan, 1.0, 1.0, 1.0], CommitCounter=2, Heartbeat=2)
        await server.step()
        assert await read(client, LAYER2, "Fault") == 0  # the heartbeat moved: out of fault, the set evaluated
        assert await read(client, LAYER2, "AcceptedCommit") == 2
        assert await read(client, LAYER2, "Status") == Status.REJECTED

    loop.run_until_complete(check())


def test_trace_over_the_wire(rig):
    loop, server, client = rig

    async def check():
        await fresh(server)
        base = server.address(2, "TraceCount")
        raws = [(await read(client, LAYER2, "RawOutputs", 4)).tolist()]
        for _ in range(5):
            await server.step()
            raws.append((await read(client, LAYER2, "RawOutputs", 4)).tolist())
        count = int(decode((await client.read_holding_registers(base, count=2, device_id=1)).registers, "UDINT")[0])
        assert server.address(2, "TraceRawOutputs") == base + 2 + 4 * 32 * 2  # after TraceInputs (4 rows x 32)
        reply = await client.read_holding_registers(base + 2 + 4 * 32 * 2, count=4 * 4 * 2, device_id=1)
        ring = decode(reply.registers, "REAL").reshape(4, 4)
        assert count == 6 == len(raws)
        for s in range(count - 4, count):  # sample s in row s % trace_length
            assert ring[s % 4].tolist() == raws[s]

    loop.run_until_complete(check())


def test_little_word_order():
    async def check():
        port = free_port()
        async with SimulatedPlcModbus(make_plc(), f"modbus://127.0.0.1:{port}", word_order="little",
                                      run_cycles=False) as server:
            assert server.tag_map().plc.word_order == "little"
            client = AsyncModbusTcpClient("127.0.0.1", port=port)
            await client.connect()
            await client.write_registers(LAYER2 + 128, encode([70000, 1], "UDINT", "little"), device_id=1)
            await server.step()
            reply = await client.read_holding_registers(LAYER2 + 132, count=2, device_id=1)
            client.close()
            assert reply.registers == [70000 & 0xFFFF, 70000 >> 16]
            assert server.plc.tags(2)["AcceptedCommit"] == 70000

    asyncio.run(check())


def test_restart_drops_the_connection_keeps_the_program_and_stop_is_clean():
    async def check():
        port = free_port()
        before_tasks = asyncio.all_tasks()
        async with SimulatedPlcModbus(make_plc(), f"modbus://127.0.0.1:{port}") as server:
            client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, timeout=0.5, reconnect_delay=0)
            await client.connect()
            await write(client, LAYER2, GainSet=[1.5] * 4, CommitCounter=9, Heartbeat=1)
            while server.plc.tags(2)["AcceptedCommit"] != 9:
                await asyncio.sleep(0.01)
            beats = server.plc.tags(2)["PlcHeartbeat"]
            restart = asyncio.create_task(server.restart(0.2))
            await asyncio.sleep(0.1)
            with pytest.raises(ConnectionException):
                await client.read_holding_registers(LAYER2, count=2, device_id=1)
            client.close()
            await restart
            client = AsyncModbusTcpClient("127.0.0.1", port=port)
            assert await client.connect()
            assert await read(client, LAYER2, "AcceptedCommit") == 9
            assert (await read(client, LAYER2, "GainSet", 4)).tolist() == [1.5] * 4  # the memory survived
            assert await read(client, LAYER2, "PlcHeartbeat") >= beats + TIMEOUT_CYCLES
            assert await read(client, LAYER2, "Fault") == 1  # the watchdog saw the outage
            client.close()
        await assert_stopped_cleanly(before_tasks, port)

    asyncio.run(check())


def test_cli_modbus_duration_tag_map_and_endpoint_in_use(tmp_path):
    port = free_port()
    out = tmp_path / "plc.toml"
    result = CliRunner().invoke(plc_sim, ["--protocol", "modbus", "--endpoint", f"modbus://127.0.0.1:{port}",
                                          "--duration", "0.2", "--tag-map-out", str(out), "--net", "digits"])
    assert result.exit_code == 0, result.output
    tag_map = load_tag_map(out)
    tag_map.check_network([(64, 32), (32, 10)])
    assert tag_map.layer(1).gain_set.address == 2048 + 528 and tag_map.plc.port == port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = CliRunner().invoke(plc_sim, ["--protocol", "modbus", "--endpoint", f"modbus://127.0.0.1:{taken}"])
    assert result.exit_code == 1
    assert result.output == f"Error: cannot listen on modbus://127.0.0.1:{taken}: address already in use\n"
    result = CliRunner().invoke(plc_sim, ["--protocol", "modbus", "--user", "x", "--password", "y"])
    assert result.exit_code == 2 and "no login" in result.output
