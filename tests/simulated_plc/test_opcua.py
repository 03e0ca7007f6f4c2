"""The simulated PLC over OPC UA, with a plain asyncua client on loopback: tree, types, writes, watchdog,
credentials, communication restart and the ``plc-sim`` command."""

from __future__ import annotations

import asyncio
import math
import socket

import numpy as np
import pytest
from asyncua import Client, ua
from click.testing import CliRunner

from plc_anna.commands.plc_sim import plc_sim
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.contract.logic import Status
from plc_anna.contract.layout import LAYER_TAGS, OPCUA_STYLES, WRITTEN_TAGS
from plc_anna.simulated_plc.opcua import SimulatedPlcOpcUa
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.contract.tagmap import load_tag_map
from plc_anna.server.certificates import certificate_application_uri, ensure_server_certificate
from plc_anna.testing import free_port
from tests.simulated_plc.support import assert_stopped_cleanly

TIMEOUT_CYCLES = 5  # heartbeat_timeout_s = 0.05 at 10 ms
DATA_TYPES = {"REAL": ua.ObjectIds.Float, "UDINT": ua.ObjectIds.UInt32, "INT": ua.ObjectIds.Int16,
              "BOOL": ua.ObjectIds.Boolean, "LREAL": ua.ObjectIds.Double}


def make_plc(**kwargs) -> SimulatedPlc:
    return SimulatedPlc(SimulatedNetwork("thermocouple", "pcm", seed=0), trace_length=4,
                        heartbeat_timeout_s=0.05, **kwargs)


@pytest.fixture(scope="module")
def rig():
    """A stepped server (no cycle task) and a client on one event loop, for the tests that need no restart."""
    loop = asyncio.new_event_loop()
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    server = SimulatedPlcOpcUa(make_plc(), endpoint, run_cycles=False)
    client = Client(endpoint)
    loop.run_until_complete(server.__aenter__())
    try:
        loop.run_until_complete(client.connect())
        yield loop, server, client
    finally:
        loop.run_until_complete(client.disconnect())
        loop.run_until_complete(server.__aexit__(None, None, None))
        loop.close()


def node(server: SimulatedPlcOpcUa, client: Client, layer, name: str):
    return client.get_node(server.nodeid(layer, name))


async def write(server, client, layer: int, **items) -> None:
    """One batched write of GainSet/OffsetSet (REAL arrays) and the UDINT counters."""
    nodes = [node(server, client, layer, name) for name in items]
    values = [ua.Variant([float(v) for v in value], ua.VariantType.Float) if isinstance(value, list)
              else ua.Variant(value, ua.VariantType.UInt32) for value in items.values()]
    await client.write_values(nodes, values)


async def read(server, client, layer: int, *names: str) -> dict:
    return dict(zip(names, await client.read_values([node(server, client, layer, name) for name in names])))


async def until(server, client, predicate, timeout_s: float = 2.0) -> dict:
    """Poll layer 2's status tags until ``predicate`` holds (the cycle task runs on its own)."""
    names = ("AcceptedCommit", "PlcHeartbeat", "Fault")
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate(tags := await read(server, client, 2, *names)):
        assert asyncio.get_running_loop().time() < deadline, f"timed out; last {tags}"
        await asyncio.sleep(0.01)
    return tags


async def fresh(server) -> None:
    server.plc.cold_restart()
    await server.step()


def test_browse_tree_nodeids_types_and_access(rig):
    loop, server, client = rig

    async def check():
        assert await client.get_namespace_index(OPCUA_STYLES["codesys"].namespace_uri) == 4
        path = ["0:Objects", "2:DeviceSet", "4:plc-anna Simulated PLC", "4:Resources", "4:Application",
                "4:GlobalVars"]
        gvls = await client.nodes.root.get_child(path)
        names = sorted(child.Name for child in [await c.read_browse_name() for c in await gvls.get_children()])
        assert names == ["GVL_Device", "GVL_PlcAnna_L0", "GVL_PlcAnna_L1", "GVL_PlcAnna_L2"]
        tags = await client.nodes.root.get_child([*path, "4:GVL_PlcAnna_L1"])
        children = {(await c.read_browse_name()).Name: c for c in await tags.get_children()}
        assert list(children) == list(LAYER_TAGS)
        gain = children["GainSet"]
        assert gain.nodeid.to_string() == "ns=4;s=|var|plc-anna Simulated PLC.Application.GVL_PlcAnna_L1.GainSet"
        lengths = {"GainSet": 32, "Inputs": 32, "TraceInputs": 4 * 32, "TraceRawOutputs": 4 * 32}
        for name, (plc_type, dim) in LAYER_TAGS.items():
            item = children[name]
            assert item.nodeid == server.nodeid(1, name)
            assert (await item.read_data_type()) == ua.NodeId(DATA_TYPES[plc_type]), name
            value_rank = (await item.read_attribute(ua.AttributeIds.ValueRank)).Value.Value
            assert value_rank == (1 if dim else -1), name
            if name in lengths:
                assert await item.read_array_dimensions() == [lengths[name]]
            access = (await item.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value
            user_access = (await item.read_attribute(ua.AttributeIds.UserAccessLevel)).Value.Value
            writable = name in WRITTEN_TAGS
            assert bool(access & ua.AccessLevel.CurrentWrite.mask) == writable, name
            assert bool(user_access & ua.AccessLevel.CurrentWrite.mask) == writable, name
        age = await client.nodes.root.get_child([*path, "4:GVL_Device", "4:DeviceAge"])
        assert age.nodeid.to_string() == "ns=4;s=|var|plc-anna Simulated PLC.Application.GVL_Device.DeviceAge"
        assert await age.read_data_type() == ua.NodeId(ua.ObjectIds.Double)
        # Every address of the tag map is a node of the server, of the map's type.
        tag_map = server.tag_map()
        for tag in [t for layer in tag_map.layers for t in layer.tags()] + [tag_map.device.age_s]:
            assert await client.get_node(tag.address).read_data_type() == ua.NodeId(DATA_TYPES[tag.plc_type])

    loop.run_until_complete(check())


def test_a_written_set_is_taken_ramps_and_arrays_without_counter_are_ignored(rig):
    loop, server, client = rig

    async def check():
        await fresh(server)
        await write(server, client, 2, GainSet=[1.1, 0.5, 1.0, 1.0], OffsetSet=[0.25, 0.0, 0.0, 0.0],
                    CommitCounter=1, Heartbeat=1)
        trail = []
        for beat in range(2, 10):
            await server.step()
            trail.append(await read(server, client, 2, "AcceptedCommit", "AppliedGain", "AppliedOffset", "Status"))
            await write(server, client, 2, Heartbeat=beat)
        assert trail[0]["AcceptedCommit"] == 1 and Status(trail[0]["Status"]) == Status.RAMPING
        gains = np.array([entry["AppliedGain"] for entry in trail], dtype=np.float32)
        assert np.all(np.abs(np.diff(gains, axis=0)) <= np.float32(0.02) + 1e-7)  # MaxGainStep per cycle
        assert gains[0].tolist() == pytest.approx([1.02, 0.98, 1.0, 1.0])
        assert trail[0]["AppliedOffset"][0] == 0.25  # MaxOffsetStep 1e6: at once
        # New arrays without a new counter: nothing moves.
        await write(server, client, 2, GainSet=[3.0, 3.0, 3.0, 3.0], Heartbeat=20)
        for beat in range(21, 24):
            await server.step()
            await write(server, client, 2, Heartbeat=beat)
        after = await read(server, client, 2, "AcceptedCommit", "AppliedGain", "GainSet")
        assert after["AcceptedCommit"] == 1 and after["GainSet"] == [3.0] * 4
        assert max(after["AppliedGain"]) < 1.11
        np.testing.assert_array_equal(server.plc.block(2).target_gain, np.float32([1.1, 0.5, 1.0, 1.0]))

    loop.run_until_complete(check())


def test_heartbeat_stall_holds_and_recovers(rig):
    loop, server, client = rig

    async def check():
        await fresh(server)
        await write(server, client, 0, GainSet=[2.0] * 32, CommitCounter=1, Heartbeat=1)
        await server.step()
        states = []
        for _ in range(TIMEOUT_CYCLES + 2):  # the heartbeat stays at 1
            await server.step()
            states.append(await read(server, client, 0, "Fault", "Status", "AppliedGain", "CorrectedOutputs"))
        faults = [state["Fault"] for state in states]
        assert faults == [False] * (TIMEOUT_CYCLES - 1) + [True] * 3
        held = states[TIMEOUT_CYCLES - 1]["AppliedGain"]
        assert all(state["AppliedGain"] == held and state["Status"] == Status.HOLDING
                   for state in states[TIMEOUT_CYCLES - 1:])
        await write(server, client, 0, Heartbeat=2)
        await server.step()
        state = await read(server, client, 0, "Fault", "Status", "AppliedGain")
        assert not state["Fault"] and Status(state["Status"]) == Status.RAMPING and state["AppliedGain"][0] > held[0]

    loop.run_until_complete(check())


def test_nan_set_is_written_then_rejected_by_the_block(rig):
    loop, server, client = rig

    async def check():
        await fresh(server)
        await write(server, client, 2, GainSet=[math.nan, 2.0, 2.0, 2.0], CommitCounter=5, Heartbeat=1)
        await server.step()
        state = await read(server, client, 2, "AcceptedCommit", "Status", "AppliedGain", "GainSet")
        assert math.isnan(state["GainSet"][0])  # the server took the value
        assert state["AcceptedCommit"] == 5 and Status(state["Status"]) == Status.REJECTED
        assert state["AppliedGain"] == [1.0] * 4

    loop.run_until_complete(check())


def test_refused_writes(rig):
    loop, server, client = rig

    async def check():
        await fresh(server)
        for name, variant in (("AppliedGain", ua.Variant([1.0] * 4, ua.VariantType.Float)),
                              ("AcceptedCommit", ua.Variant(3, ua.VariantType.UInt32)),
                              ("Status", ua.Variant(0, ua.VariantType.Int16))):
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                await node(server, client, 2, name).write_value(variant)
        with pytest.raises(ua.uaerrors.BadUserAccessDenied):
            await node(server, client, None, "DeviceAge").write_value(ua.Variant(1.0, ua.VariantType.Double))
        for name, variant in (("GainSet", ua.Variant([1.0] * 4, ua.VariantType.Double)),
                              ("GainSet", ua.Variant([1.0] * 3, ua.VariantType.Float)),
                              ("OffsetSet", ua.Variant(1.0, ua.VariantType.Float)),
                              ("CommitCounter", ua.Variant(3, ua.VariantType.Int32)),
                              ("Heartbeat", ua.Variant([3], ua.VariantType.UInt32))):
            with pytest.raises(ua.uaerrors.BadTypeMismatch):
                await node(server, client, 2, name).write_value(variant)
        assert (await read(server, client, 2, "GainSet"))["GainSet"] == [1.0] * 4

    loop.run_until_complete(check())


def test_only_the_configured_user_may_log_in():
    async def check():
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        async with SimulatedPlcOpcUa(make_plc(), endpoint, user="operator", password="s3cret",
                                     run_cycles=False) as server:
            for user, password in ((None, None), ("operator", "wrong"), ("admin", "s3cret")):
                client = Client(endpoint, timeout=5)
                if user:
                    client.set_user(user)
                    client.set_password(password)
                with pytest.raises(ua.UaError):
                    await client.connect()
                await client.disconnect()
            client = Client(endpoint, timeout=5)
            client.set_user("operator")
            client.set_password("s3cret")
            async with client:
                await client.get_node(server.nodeid(0, "Heartbeat")).write_value(
                    ua.Variant(7, ua.VariantType.UInt32))
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await client.get_node(server.nodeid(0, "Fault")).write_value(True)

    asyncio.run(check())


def test_a_certificate_makes_the_endpoint_sign_and_encrypt_only(tmp_path):
    server_cert, server_key = ensure_server_certificate(tmp_path / "server")
    client_cert, client_key = ensure_server_certificate(tmp_path / "client")

    async def check():
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        async with SimulatedPlcOpcUa(make_plc(), endpoint, certificate=server_cert, private_key=server_key,
                                     run_cycles=False) as server:
            await server.step()
            client = Client(endpoint, timeout=5)
            client.application_uri = certificate_application_uri(client_cert)
            await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{client_cert},{client_key}")
            async with client:
                assert await client.get_node(server.nodeid(0, "PlcHeartbeat")).read_value() == 1
            with pytest.raises(ua.UaError, match="No matching endpoints"):
                async with Client(endpoint, timeout=5):
                    pass
            settings = server.tag_map(client_cert, client_key).plc
            assert (settings.security_policy, settings.security_mode) == ("Basic256Sha256", "SignAndEncrypt")
            with pytest.raises(ValueError, match="client's certificate"):
                server.tag_map()

    asyncio.run(check())


def test_restart_drops_the_connection_and_keeps_the_program():
    async def check():
        port = free_port()
        endpoint = f"opc.tcp://127.0.0.1:{port}"
        before_tasks = asyncio.all_tasks()
        async with SimulatedPlcOpcUa(make_plc(), endpoint) as server:  # the cycle task runs
            async with Client(endpoint, timeout=2) as client:
                await write(server, client, 2, GainSet=[1.5] * 4, CommitCounter=9, Heartbeat=1)
                before = await until(server, client, lambda tags: tags["AcceptedCommit"] == 9)
                restart = asyncio.create_task(server.restart(0.2))
                await asyncio.sleep(0.1)
                with pytest.raises((ConnectionError, asyncio.TimeoutError, ua.UaError)):
                    await read(server, client, 2, "PlcHeartbeat")
                await restart
            async with Client(endpoint, timeout=2) as client:  # the same port again
                after = await read(server, client, 2, "AcceptedCommit", "PlcHeartbeat", "Fault", "GainSet")
                # The program ran on through the outage, and its watchdog saw the stall.
                assert after["AcceptedCommit"] == 9 and after["GainSet"] == [1.5] * 4
                assert after["PlcHeartbeat"] >= before["PlcHeartbeat"] + TIMEOUT_CYCLES and after["Fault"]
                await write(server, client, 2, Heartbeat=2)
                await until(server, client, lambda tags: not tags["Fault"])
            assert isinstance(server.overruns, int) and server.failures == 0
        await assert_stopped_cleanly(before_tasks, port)

    asyncio.run(check())


def test_cli_serves_for_a_duration_and_writes_the_tag_map(tmp_path):
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "plc.toml"
    result = CliRunner().invoke(plc_sim, ["--endpoint", endpoint, "--duration", "0.1", "--trace-length", "8",
                                          "--tag-map-out", str(out)])
    assert result.exit_code == 0, result.output
    assert endpoint in result.output and "stopped after" in result.output
    tag_map = load_tag_map(out)
    tag_map.check_network([(5, 32), (32, 32), (32, 4)])
    assert tag_map.plc.endpoint == endpoint and tag_map.layer(2).trace_length == 8


def test_cli_endpoint_in_use_is_a_one_line_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(plc_sim, ["--endpoint", f"opc.tcp://127.0.0.1:{port}", "--duration", "0.1"])
    assert result.exit_code == 1  # as `plc-anna serve` says it (tests/test_cli.py)
    assert result.output == f"Error: cannot listen on opc.tcp://127.0.0.1:{port}: address already in use\n"


@pytest.mark.parametrize("target,path", [
    ("twincat", ["PLC1", "GVL_PlcAnna_L2", "GainSet"]),
    ("s7-1500", ["PLC_1", "DataBlocksGlobal", "PlcAnna_L2", "GainSet"]),
])
def test_other_targets_serve_their_own_nodeids_and_tree(target, path):
    """TwinCAT's and S7-1500's address spaces: their NodeIds, their browse paths, the map's tags all there."""
    from plc_anna import commission

    async def check():
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        async with SimulatedPlcOpcUa(make_plc(), endpoint, target=target) as server:
            async with Client(endpoint) as client:
                index = await client.get_namespace_index(server.style.namespace_uri)
                assert index == server.style.namespace_index
                found = await client.nodes.objects.get_child([f"{index}:{name}" for name in path])
                assert found.nodeid == server.nodeid(2, "GainSet")
                assert found.nodeid.to_string() == OPCUA_STYLES[target].nodeid(2, "GainSet")
            checks = await commission.validate(server.tag_map(), "thermocouple")
            assert all(check.ok for check in checks), [check for check in checks if not check.ok]

    asyncio.run(check())


def test_cli_serves_another_targets_address_space_and_refuses_it_over_modbus(tmp_path):
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "plc.toml"
    result = CliRunner().invoke(plc_sim, ["--endpoint", endpoint, "--duration", "0.1", "--target", "s7-1500",
                                          "--tag-map-out", str(out)])
    assert result.exit_code == 0, result.output
    assert 'ns=3;s="PlcAnna_L<k>"."<Tag>"' in result.output
    assert load_tag_map(out).layer(0).gain_set.address == 'ns=3;s="PlcAnna_L0"."GainSet"'
    result = CliRunner().invoke(plc_sim, ["--protocol", "modbus", "--target", "twincat", "--duration", "0.1"])
    assert result.exit_code == 2 and "--target is for --protocol opcua" in result.output
