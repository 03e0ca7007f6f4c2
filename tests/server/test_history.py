"""HistoryRead served from the StateStore: the storage alone, then a real server and client on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime

import pytest
from asyncua import Client, Server, ua

from plc_anna.server.history import StoreHistory, enable_history
from plc_anna.server.store import StateStore

T0 = 1.7e9  # 2023-11-14, Unix seconds
DOUBLE = ua.VariantType.Double


def at(time_s: float) -> datetime:
    return datetime.fromtimestamp(time_s, UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def store(tmp_path):
    with StateStore(tmp_path / "plc-anna.db") as store:
        yield store


def read(history, node_id, start=None, end=None, nb_values=0):
    """(times in Unix seconds, values, continuation point) of one read_node_history call."""
    values, more = asyncio.run(history.read_node_history(node_id, start, end, nb_values))
    return [dv.SourceTimestamp.timestamp() for dv in values], [dv.Value.Value for dv in values], more


# ---------------------------------------------------------------- the storage alone

def test_order_bounds_and_paging(store):
    times = [T0 + 0.25 * i + 1.234567e-7 for i in range(10)]  # not whole microseconds
    for i, t in enumerate(times):
        store.append_history(t, {"x": float(i)})
    history, node = StoreHistory(store, max_values=3), ua.NodeId(1, 2)
    history.register(node, "x", DOUBLE)

    got, values, more = read(history, node, at(times[2]), at(times[5]))
    assert values == [2.0, 3.0, 4.0] and more is not None  # max_values cut the page
    assert got == pytest.approx(times[2:5], abs=1e-6)
    _, values, more = read(history, node, more, at(times[5]))  # as asyncua's HistoryManager resumes
    assert values == [5.0] and more is None

    _, values, more = read(history, node, at(times[1]), None, nb_values=2)  # open end: oldest first
    assert values == [1.0, 2.0] and abs((more - at(times[3])).total_seconds()) <= 1e-6
    _, values, _ = read(history, node, at(times[6]), at(times[3]))  # start > end: newest first
    assert values == [6.0, 5.0, 4.0]
    _, values, _ = read(history, node, at(times[6]), at(times[6]))
    assert values == [6.0]

    # open start: newest first from the end; its continuation points go on backwards
    pages, start, end = [], None, ua.get_win_epoch()
    while True:
        _, values, start = read(history, node, start, end)
        pages.append(values)
        if start is None:
            break
    assert pages == [[9.0, 8.0, 7.0], [6.0, 5.0, 4.0], [3.0, 2.0, 1.0], [0.0]]
    _, values, more = read(history, node, None, at(times[4]), nb_values=2)
    assert values == [4.0, 3.0]
    _, values, _ = read(history, node, more, at(times[4]), nb_values=2)
    assert values == [2.0, 1.0]


def test_newest_first_finds_sparse_dense_and_future_values(tmp_path):
    store = StateStore(tmp_path / "plc-anna.db", retention_s=1e10)  # keep all: the store prunes by newest time
    for i in range(50):  # dense, then a gap of days, then a few stamped a year ahead of the clock
        store.append_history(T0 + 0.01 * i, {"x": i})
    store.append_history(T0 + 5 * 86400, {"x": 50})
    ahead = time.time() + 365 * 86400.0
    for i in range(51, 54):
        store.append_history(ahead + i, {"x": i})
    history, node = StoreHistory(store), ua.NodeId("x", 2)
    history.register(node, "x", ua.VariantType.Int32)
    assert read(history, node, nb_values=5)[1] == [53, 52, 51, 50, 49]
    assert read(history, node, None, at(T0 + 86400), nb_values=3)[1] == [49, 48, 47]
    assert read(history, node, at(T0 + 86400), at(T0))[1] == list(range(49, -1, -1))
    assert read(history, node)[1] == list(range(53, -1, -1))
    store.close()


def test_values_become_variants_of_the_registered_type(store):
    store.append_history(T0, {"d": 2, "u": 7, "big": 2**64 - 1, "flag": True, "text": "drifting",
                              "gains": [1, 0.5], "bad": "x", "neg": -1, "half": 1.5, "nested": [[1.0]]})
    history = StoreHistory(store)
    types = {"d": DOUBLE, "u": ua.VariantType.UInt32, "big": ua.VariantType.UInt64, "flag": ua.VariantType.Boolean,
             "text": ua.VariantType.String, "gains": DOUBLE, "bad": DOUBLE, "neg": ua.VariantType.UInt32,
             "half": ua.VariantType.Int32, "nested": DOUBLE}
    results = {}
    for i, (name, variant_type) in enumerate(types.items()):
        history.register(ua.NodeId(i, 2), name, variant_type)
        (dv,), _ = asyncio.run(history.read_node_history(ua.NodeId(i, 2), None, None, 0))
        assert dv.SourceTimestamp == dv.ServerTimestamp == at(T0)
        results[name] = dv
    for name in ("d", "u", "big", "flag", "text", "gains"):
        assert results[name].StatusCode.is_good() and results[name].Value.VariantType == types[name]
    assert results["d"].Value.Value == 2.0 and isinstance(results["d"].Value.Value, float)
    assert results["gains"].Value.Value == [1.0, 0.5] and results["gains"].Value.is_array
    assert results["big"].Value.Value == 2**64 - 1 and results["flag"].Value.Value is True
    for name in ("bad", "neg", "half", "nested"):  # one bad value is a Bad DataValue, not a failed read
        assert results[name].StatusCode.value == ua.StatusCodes.BadTypeMismatch


def test_arguments_and_the_write_side(store):
    history = StoreHistory(store)
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="max_values"):
            StoreHistory(store, bad)
    with pytest.raises(ValueError, match="StateStore"):
        StoreHistory("plc-anna.db")
    with pytest.raises(ValueError, match="ua.NodeId"):
        history.register("ns=2;i=1", "x", DOUBLE)
    with pytest.raises(ValueError, match="non-empty string"):
        history.register(ua.NodeId(1, 2), "", DOUBLE)
    with pytest.raises(ValueError, match="VariantType"):
        history.register(ua.NodeId(1, 2), "x", ua.VariantType.Float)
    assert history.registered == {}
    assert asyncio.run(history.read_node_history(ua.NodeId(1, 2), None, None, 0)) == ([], None)
    assert asyncio.run(history.read_event_history(ua.NodeId(1, 2), None, None, 0, None)) == ([], None)
    with pytest.raises(NotImplementedError, match="read-only"):
        asyncio.run(history.new_historized_node(ua.NodeId(1, 2), None))
    asyncio.run(history.init())
    asyncio.run(history.stop())
    store.append_history(T0, {"x": 1.0})  # stop() leaves the store open
    assert store.read_history("x") == [(T0, 1.0)]


# ---------------------------------------------------------------- a server and a client

def test_history_read_over_opc_ua(store):
    url = f"opc.tcp://127.0.0.1:{free_port()}/plc-anna"
    times = [T0 + 1.5 * i for i in range(6)]
    for i, t in enumerate(times):
        store.append_history(t, {"layer1.LayerDistance": 0.01 * i, "layer1.Gain": [1.0, 1.0 - 0.01 * i], "scan": i})
    start, end = at(T0 - 1), at(T0 + 1000)

    async def scenario():
        server = Server()
        await server.init()
        server.set_endpoint(url)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:plc-anna:test")
        layer = await server.nodes.objects.add_object(idx, "Layer1")
        distance = await layer.add_variable(idx, "LayerDistance", 0.0)
        gain = await layer.add_variable(idx, "Gain", [1.0, 1.0])
        scans = await layer.add_variable(idx, "Scans", 0, ua.VariantType.UInt32)
        plain = await layer.add_variable(idx, "Plain", 0.0)
        await distance.set_writable()

        for bad, match in (({layer: ("x", DOUBLE)}, "not a Variable"),
                           ({ua.NodeId(4711, idx): ("x", DOUBLE)}, "cannot be read"),
                           ({distance: ("x", ua.VariantType.Float)}, "VariantType"),
                           ({distance: "x"}, "history name, VariantType")):
            with pytest.raises(ValueError, match=match):
                await enable_history(server, store, bad)
        assert not isinstance(server.iserver.history_manager.storage, StoreHistory)  # nothing changed
        assert (await distance.read_attribute(ua.AttributeIds.Historizing)).Value.Value is False

        # before start(), then after it: the second call adds to the first
        await enable_history(server, store, {distance: ("layer1.LayerDistance", DOUBLE),
                                             gain.nodeid: ("layer1.Gain", DOUBLE)}, max_values=4)
        async with server:
            history = await enable_history(server, store, {scans: ("scan", ua.VariantType.UInt32)}, max_values=4)
            assert set(history.registered) == {distance.nodeid, gain.nodeid, scans.nodeid}
            async with Client(url, timeout=10) as client:
                node = client.get_node(distance.nodeid)
                assert (await node.read_attribute(ua.AttributeIds.Historizing)).Value.Value is True
                for levels in (await node.get_access_level(), await node.get_user_access_level()):
                    assert {ua.AccessLevel.HistoryRead, ua.AccessLevel.CurrentRead,
                            ua.AccessLevel.CurrentWrite} <= levels  # the bit is added, the others kept
                plain_node = client.get_node(plain.nodeid)
                assert ua.AccessLevel.HistoryRead not in await plain_node.get_access_level()
                assert (await plain_node.read_attribute(ua.AttributeIds.Historizing)).Value.Value is False

                values = await node.read_raw_history(start, end)  # 6 values > max_values: two pages
                assert [dv.SourceTimestamp for dv in values] == [at(t) for t in times]
                assert [dv.ServerTimestamp for dv in values] == [at(t) for t in times]
                assert [dv.Value.Value for dv in values] == pytest.approx([0.01 * i for i in range(6)])
                gains = await client.get_node(gain.nodeid).read_raw_history(start, end)
                assert [dv.Value.Value for dv in gains] == [[1.0, 1.0 - 0.01 * i] for i in range(6)]
                assert all(dv.Value.is_array and dv.Value.VariantType == DOUBLE for dv in gains)
                counts = await client.get_node(scans.nodeid).read_raw_history(start, end)
                assert [(dv.Value.Value, dv.Value.VariantType) for dv in counts] == \
                    [(i, ua.VariantType.UInt32) for i in range(6)]

                bounded = await node.read_raw_history(at(times[1]), at(times[3]))  # inclusive bounds
                assert [dv.SourceTimestamp for dv in bounded] == [at(t) for t in times[1:4]]
                backwards = await node.read_raw_history(at(times[4]), at(times[1]))
                assert [dv.SourceTimestamp for dv in backwards] == [at(t) for t in times[4:0:-1]]
                newest = await node.read_raw_history()  # no times: all, newest first, over two pages
                assert [dv.SourceTimestamp for dv in newest] == [at(t) for t in reversed(times)]

                # numvalues: the asyncua client stops at one page; the continuation point gives the rest
                assert len(await node.read_raw_history(start, end, numvalues=2)) == 2
                details = ua.ReadRawModifiedDetails(IsReadModified=False, StartTime=start, EndTime=end,
                                                    NumValuesPerNode=2)
                first = await node.history_read(details)
                assert first.StatusCode.is_good() and first.ContinuationPoint
                second = await node.history_read(details, first.ContinuationPoint)
                assert [dv.SourceTimestamp for dv in first.HistoryData.DataValues + second.HistoryData.DataValues] \
                    == [at(t) for t in times[:4]]

                # a node not registered: a Good, empty result
                assert await plain_node.read_raw_history(start, end) == []
                result = await plain_node.history_read(details)
                assert result.StatusCode.is_good() and result.HistoryData.DataValues == []

                # values the scan task appends while the server runs are in the next read
                store.append_history(T0 + 100, {"layer1.LayerDistance": 0.5})
                values = await node.read_raw_history(start, end)
                assert [dv.Value.Value for dv in values[-2:]] == pytest.approx([0.05, 0.5])
                assert values[-1].SourceTimestamp == at(T0 + 100) and len(values) == 7

                # asyncua's own historizing is refused: the scan task writes the history
                with pytest.raises(NotImplementedError):
                    await server.historize_node_data_change(plain)

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))
