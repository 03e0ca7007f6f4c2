"""The fleet host against a real broker, fed by a node whose payloads the Tahu reference code encodes."""

from __future__ import annotations

import asyncio
import json
import time

import sparkplub_b_packets.core.sparkplug_b_pb2 as tahu

from plc_anna.fleet.host import FleetHost
from plc_anna.fleet.store import FleetStore
from plc_anna.fleet.view import fleet_report, fleet_rows, fleet_table
from plc_anna.sparkplug.broker import LocalBroker
from plc_anna.sparkplug.mqtt import BrokerSettings
from tests.sparkplug.support import BOOLEAN, DOUBLE, INT32, INT64, UINT64, Recorder, by_name, publish, run

GROUP, NODE = "plant", "press3"


def payload(seq=None, metrics=(), timestamp=None):
    """A Sparkplug payload by the Tahu reference code: metrics as (name, alias, datatype, value)."""
    message = tahu.Payload()
    # One millisecond per sequence number: the historian keeps one value per (metric, ms), and two
    # messages built back to back can share a millisecond.
    message.timestamp = timestamp or int(time.time() * 1000) + (seq or 0)
    if seq is not None:
        message.seq = seq
    for name, alias, datatype, value in metrics:
        metric = message.metrics.add()
        if name:
            metric.name = name
        if alias is not None:
            metric.alias = alias
        if datatype:
            metric.datatype = datatype
        field = {BOOLEAN: "boolean_value", DOUBLE: "double_value", INT32: "int_value"}.get(
            datatype, "double_value" if isinstance(value, float) else "long_value")
        setattr(metric, field, value)
    return message.SerializeToString()


async def node_births(broker, bd_seq=3):
    await publish(broker, f"spBv1.0/{GROUP}/NBIRTH/{NODE}", payload(0, [("bdSeq", 1, INT64, bd_seq),
                                                                        ("Node Control/Rebirth", 2, BOOLEAN, False)]))
    await publish(broker, f"spBv1.0/{GROUP}/DBIRTH/{NODE}/net0", payload(1, [
        ("Age", 10, DOUBLE, 60.0), ("Scan/Count", 11, UINT64, 1), ("Layer0/DriftState", 12, INT32, 3),
        ("Layer0/LayerDistance", 13, DOUBLE, 0.5)]))


def test_seq_gaps_are_counted_and_the_node_asked_to_rebirth(tmp_path):
    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            store = FleetStore(tmp_path / "fleet.sqlite")
            async with FleetHost(BrokerSettings(broker.url), group=GROUP, store=store) as host:
                assert await seen.wait(lambda: host.connected)
                await node_births(broker)
                await publish(broker, f"spBv1.0/{GROUP}/DDATA/{NODE}/net0", payload(2, [(None, 10, 0, 61.0)]))
                assert await seen.wait(lambda: host.nodes[(GROUP, NODE)].devices["net0"].values["Age"] == 61.0)
                assert host.seq_gaps == 0 and not seen.of("NCMD")
                await publish(broker, f"spBv1.0/{GROUP}/DDATA/{NODE}/net0", payload(5, [(None, 10, 0, 64.0)]))
                assert await seen.wait(lambda: seen.of("NCMD"))
                gaps = host.seq_gaps
                rows = fleet_rows(host)
                report = fleet_report(host)
            samples = store.samples(device="net0", name="Age")
            store.close()
        return seen, gaps, rows, report, samples

    seen, gaps, rows, report, samples = run(scenario)
    assert gaps == 1 and report["seq_gaps"] == 1 and report["rebirths_requested"] == 1
    request = seen.of("NCMD")[0]
    assert request.topic == f"spBv1.0/{GROUP}/NCMD/{NODE}"
    assert by_name(request.decoded())["Node Control/Rebirth"]["value"] is True
    assert [s.value for s in samples] == [60.0, 61.0, 64.0]  # the data after the gap is kept too
    assert rows[0]["state"] == "Drifting" and rows[0]["distance"] == 0.5 and rows[0]["online"]
    json.dumps(report)  # the --json file
    assert fleet_table(rows).row_count == 1


def test_data_without_a_birth_asks_for_one_and_a_stale_death_is_ignored(tmp_path):
    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            async with FleetHost(BrokerSettings(broker.url), group=GROUP) as host:
                assert await seen.wait(lambda: host.connected)
                await publish(broker, f"spBv1.0/{GROUP}/DDATA/{NODE}/net0", payload(7, [(None, 10, 0, 61.0)]))
                assert await seen.wait(lambda: seen.of("NCMD"))
                await node_births(broker, bd_seq=4)
                stale = payload(None, [("bdSeq", None, INT64, 3)])
                await publish(broker, f"spBv1.0/{GROUP}/NDEATH/{NODE}", stale)  # the Will of an older session
                await asyncio.sleep(0.3)
                online_after_stale = host.nodes[(GROUP, NODE)].online
                await publish(broker, f"spBv1.0/{GROUP}/NDEATH/{NODE}", payload(None, [("bdSeq", None, INT64, 4)]))
                assert await seen.wait(lambda: not host.nodes[(GROUP, NODE)].online)
                devices = [d.online for d in host.nodes[(GROUP, NODE)].devices.values()]
            await asyncio.sleep(0.2)
        return seen, online_after_stale, devices

    seen, online_after_stale, devices = run(scenario)
    assert online_after_stale and devices == [False]
    states = [m.decoded() for m in seen.messages if m.topic == "spBv1.0/STATE/plc-anna-fleet"]
    assert states[0]["online"] is True and states[-1]["online"] is False  # published on start, retracted on stop
