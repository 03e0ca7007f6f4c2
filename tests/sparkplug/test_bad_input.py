"""Bad input for the edge node and the fleet host: no broker, a wrong password, TLS that fails, garbage on the topics.

Each gives one clear log line; the node and the host keep running, and nothing stored is lost.
"""

from __future__ import annotations

import asyncio
import logging

from plc_anna.fleet.host import FleetHost
from plc_anna.fleet.store import FleetStore
from plc_anna.sparkplug.broker import LocalBroker
from plc_anna.sparkplug.config import sparkplug_config
from plc_anna.sparkplug.edge import EdgeNode
from plc_anna.sparkplug.mqtt import BrokerSettings
from plc_anna.sparkplug.synthetic import SyntheticNetwork
from plc_anna.testing import free_port
from tests.sparkplug.support import Recorder, command, make_tls, publish, run

GROUP, NODE = "plant", "line7"


def warnings_of(caplog, name):
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno >= logging.WARNING]


def test_an_unreachable_broker_is_one_line_and_the_data_waits_for_it(tmp_path, caplog):
    port = free_port()
    net = SyntheticNetwork("net0", layers=1, columns=4, ticking=True)
    config = sparkplug_config({"broker": f"mqtt://127.0.0.1:{port}", "group_id": GROUP, "edge_node_id": NODE,
                               "publish_ms": 50, "primary_host_id": "scada"}, tmp_path)

    async def scenario():
        async with EdgeNode(config, lambda: {"net0": net}) as node:
            await asyncio.sleep(2.0)  # several connection attempts
            offline = (node.online, node.stats.last_error, node.stats.stored)
            said = [t for t in warnings_of(caplog, "plc_anna.sparkplug.edge") if "cannot reach" in t]
            async with LocalBroker(tmp_path / "broker", port=port) as broker:
                store = FleetStore(tmp_path / "fleet.sqlite")
                async with FleetHost(BrokerSettings(broker.url), group=GROUP, host_id="scada", store=store):
                    for _ in range(200):
                        if node.online and node.stats.replayed >= node.stats.stored:
                            break
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.3)
                    net.held = True
                    await asyncio.sleep(0.3)
                scans = sorted(int(s.value) for s in store.samples(name="Scan/Count"))
                store.close()
        return offline, scans, said

    (online, error, stored), scans, lines = run(scenario)
    assert not online and "cannot reach the MQTT broker" in error and str(port) in error
    assert stored >= 10
    assert len(lines) == 1  # retried many times, said once
    assert scans == list(range(1, net.scan + 1))  # what waited on disk arrived, every scan once


def test_a_wrong_password_is_refused_in_one_line_and_the_right_one_from_the_environment_works(
        tmp_path, caplog, monkeypatch):
    net = SyntheticNetwork("net0", layers=1, columns=4)

    async def scenario():
        async with LocalBroker(tmp_path / "broker", users={"plant": "s3cret"}) as broker:
            keys = {"broker": broker.url, "group_id": GROUP, "edge_node_id": NODE, "publish_ms": 50,
                    "username": "plant", "password_env": "PLC_ANNA_TEST_MQTT_PASSWORD"}
            monkeypatch.setenv("PLC_ANNA_TEST_MQTT_PASSWORD", "wrong")
            async with EdgeNode(sparkplug_config(keys, tmp_path), lambda: {"net0": net}) as node, \
                    FleetHost(BrokerSettings(broker.url, "plant", "wrong")) as host:
                await asyncio.sleep(1.5)
                refused = (node.online, node.stats.last_error, host.connected, host.last_error)
            monkeypatch.setenv("PLC_ANNA_TEST_MQTT_PASSWORD", "s3cret")
            async with EdgeNode(sparkplug_config(keys, tmp_path), lambda: {"net0": net}) as node:
                for _ in range(100):
                    if node.online:
                        break
                    await asyncio.sleep(0.05)
                accepted = node.online
        return refused, accepted

    (online, error, host_connected, host_error), accepted = run(scenario)
    assert not online and not host_connected
    assert "refused the connection" in error and "user name or password" in error
    assert "refused the connection" in host_error
    assert len([t for t in warnings_of(caplog, "plc_anna.sparkplug.edge") if "refused" in t]) == 1
    assert accepted


def test_tls_that_fails_is_one_line_and_tls_that_fits_connects(tmp_path, caplog):
    broker_files = make_tls(tmp_path / "tls", "broker")
    stranger = make_tls(tmp_path / "tls", "stranger")  # a CA that did not sign the broker's certificate
    net = SyntheticNetwork("net0", layers=1, columns=4)

    async def scenario():
        async with LocalBroker(tmp_path / "broker", tls=broker_files) as broker, \
                FleetHost(BrokerSettings(broker.url, tls_ca=broker_files.ca)) as host:
            assert broker.url.startswith("mqtts://")
            keys = {"broker": broker.url, "group_id": GROUP, "edge_node_id": NODE, "publish_ms": 50}
            async with EdgeNode(sparkplug_config({**keys, "tls_ca": str(stranger.ca)}, tmp_path),
                                lambda: {"net0": net}) as node:
                await asyncio.sleep(1.0)
                failed = (node.online, node.stats.last_error)
            async with EdgeNode(sparkplug_config({**keys, "tls_ca": str(broker_files.ca)}, tmp_path),
                                lambda: {"net0": net}) as node:
                for _ in range(100):
                    if node.online and host.nodes.get((GROUP, NODE)) and host.nodes[(GROUP, NODE)].devices:
                        break
                    await asyncio.sleep(0.05)
                accepted = node.online and bool(host.nodes[(GROUP, NODE)].devices)
        return failed, accepted

    (online, error), accepted = run(scenario)
    assert not online and error.startswith("TLS with the MQTT broker") and "CERTIFICATE_VERIFY_FAILED" in error
    assert len([t for t in warnings_of(caplog, "plc_anna.sparkplug.edge") if "TLS" in t]) == 1
    assert accepted


def test_garbage_on_the_groups_topics_is_logged_and_skipped(tmp_path, caplog):
    net = SyntheticNetwork("net0", layers=1, columns=4)

    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            async with FleetHost(BrokerSettings(broker.url), group=GROUP) as host:
                config = sparkplug_config({"broker": broker.url, "group_id": GROUP, "edge_node_id": NODE,
                                           "publish_ms": 50}, tmp_path)
                async with EdgeNode(config, lambda: {"net0": net}) as node:
                    assert await seen.wait(lambda: seen.of("DBIRTH"))
                    await asyncio.sleep(0.3)
                    for topic in (f"spBv1.0/{GROUP}/NBIRTH/intruder", f"spBv1.0/{GROUP}/DDATA/{NODE}/net0",
                                  f"spBv1.0/{GROUP}/NDEATH/{NODE}", f"spBv1.0/{GROUP}/NCMD/{NODE}"):
                        await publish(broker, topic, b"\xff\x00 not sparkplug")
                    truncated = command("Node Control/Rebirth", True) + b"\xff"
                    await publish(broker, f"spBv1.0/{GROUP}/NCMD/{NODE}", truncated)
                    await asyncio.sleep(0.3)
                    before = host.nodes[(GROUP, NODE)].devices["net0"].values["Age"]
                    net.advance()
                    assert await seen.wait(lambda: host.nodes[(GROUP, NODE)].devices["net0"].values["Age"] != before)
                    state = (host.malformed, host.connected, node.stats.malformed, node.online,
                             host.nodes[(GROUP, NODE)].online)
        return state

    host_malformed, host_connected, node_malformed, node_online, node_seen_online = run(scenario)
    assert host_malformed == 3 and host_connected  # NBIRTH, DDATA, NDEATH garbage; the host goes on
    assert node_malformed == 2 and node_online and node_seen_online  # the garbage NDEATH changed nothing
    lines = warnings_of(caplog, "plc_anna.fleet.host")
    assert len([t for t in lines if "malformed" in t]) == 3
    assert all("\n" not in t for t in lines)


def test_births_wait_for_the_primary_hosts_state(tmp_path):
    net = SyntheticNetwork("net0", layers=1, columns=4, ticking=True)

    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            config = sparkplug_config({"broker": broker.url, "group_id": GROUP, "edge_node_id": NODE,
                                       "publish_ms": 50, "primary_host_id": "scada"}, tmp_path)
            store = FleetStore(tmp_path / "fleet.sqlite")
            async with EdgeNode(config, lambda: {"net0": net}) as node:
                await asyncio.sleep(1.0)
                waited = (len(seen.of("NBIRTH")), node.stats.stored)
                await publish(broker, "spBv1.0/STATE/scada", b"{not json")
                await asyncio.sleep(0.2)
                async with FleetHost(BrokerSettings(broker.url), group=GROUP, host_id="scada", store=store):
                    assert await seen.wait(lambda: seen.of("NBIRTH"))
                    assert await seen.wait(lambda: node.stats.replayed >= waited[1])
                    await asyncio.sleep(0.3)
                # the primary host said offline as it stopped: the node ends its session
                assert await seen.wait(lambda: seen.of("NDEATH"))
                assert await seen.wait(lambda: node.stats.stored > waited[1])
                after = (node.online, node.stats.malformed)
            store.close()
        return waited, after, seen

    (births_before, stored_before), (online_after, malformed), seen = run(scenario)
    assert births_before == 0 and stored_before >= 10
    assert not online_after and malformed == 1
    states = [m.decoded() for m in seen.messages if m.topic == "spBv1.0/STATE/scada" and m.payload.startswith(b"{\"")]
    assert states[0]["online"] is True and states[-1]["online"] is False
