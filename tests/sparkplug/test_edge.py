"""The edge node against a real broker, its payloads decoded by the Tahu reference code (tests/sparkplug/support.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np

from plc_anna.fleet.host import FleetHost
from plc_anna.fleet.store import FleetStore
from plc_anna.sparkplug.broker import LocalBroker
from plc_anna.sparkplug.config import sparkplug_config
from plc_anna.sparkplug.edge import EdgeNode
from plc_anna.sparkplug.mqtt import BrokerSettings
from plc_anna.sparkplug.synthetic import SyntheticNetwork
from tests.sparkplug.support import (BOOLEAN, DOUBLE, DOUBLE_ARRAY, INT32, INT64, STRING, Recorder, by_name, datatypes,
                                     command, publish, run)

GROUP, NODE = "plant", "line7"


def node_config(broker, tmp_path, **keys):
    return sparkplug_config({"broker": broker.url, "group_id": GROUP, "edge_node_id": NODE, "publish_ms": 50,
                             **keys}, tmp_path)


def test_births_carry_every_metric_with_aliases_and_data_goes_by_alias(tmp_path):
    net = SyntheticNetwork("net0", layers=2, columns=16, seed=1)
    other = SyntheticNetwork("net1", layers=3, columns=4, seed=2)

    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            async with EdgeNode(node_config(broker, tmp_path, commands=["Calibrate"]),
                                lambda: {"net0": net, "net1": other}) as node:
                assert await seen.wait(lambda: len(seen.of("DBIRTH")) == 2)
                net.advance()
                assert await seen.wait(lambda: live_data(seen, "net0"))
                bd_seq = node.bd_seq
        return seen, bd_seq

    seen, bd_seq = run(scenario)
    nbirth = seen.of("NBIRTH")[0].decoded()
    assert nbirth["seq"] == 0
    node_metrics = by_name(nbirth)
    assert node_metrics["bdSeq"]["value"] == bd_seq and node_metrics["bdSeq"]["datatype"] == INT64
    assert node_metrics["Node Control/Rebirth"] == {**node_metrics["Node Control/Rebirth"], "value": False,
                                                   "datatype": BOOLEAN}
    births = {m.topic.rsplit("/", 1)[1]: m.decoded() for m in seen.of("DBIRTH")}
    assert sorted(b["seq"] for b in births.values()) == [1, 2]
    metrics = by_name(births["net0"])
    first = seen.of("DBIRTH", "net0")[0]
    gain = np.asarray(metrics["Layer1/Gain"]["value"])
    assert metrics["Layer1/Gain"]["datatype"] == DOUBLE_ARRAY and gain.shape == (16,)
    assert metrics["Layer0/DriftState"]["datatype"] == INT32 and metrics["Layer0/StateReason"]["datatype"] == STRING
    assert metrics["Layer1/Coverage"]["datatype"] == DOUBLE and metrics["Layer0/Coverage"]["value"] == 1.0
    for name in ("Age", "Temperature", "RemainingLife", "Scan/Count", "Scan/P99CycleTime", "Link/Connected",
                 "Layer0/Offset", "Layer0/LayerDistance", "Layer0/TransportCost", "Layer0/RemainingLife",
                 "Compensator/Calibrate"):
        assert name in metrics, name
    assert "Compensator/Rollback" not in metrics  # only allowed commands are born
    assert metrics["RemainingLife"]["null"] and metrics["Link/LastError"]["value"] == "no controller link configured"
    assert "Layer2/Gain" in by_name(births["net1"])
    aliases = [m["alias"] for m in nbirth["metrics"]] + [m["alias"] for b in births.values() for m in b["metrics"]]
    assert len(aliases) == len(set(aliases)) and None not in aliases  # unique across the node
    data = live_data(seen, "net0")[0]
    assert all(m["name"] is None and m["alias"] in {x["alias"] for x in births["net0"]["metrics"]}
               for m in data["metrics"])
    alias_gain = metrics["Layer1/Gain"]["alias"]
    sent = next(m for m in data["metrics"] if m["alias"] == alias_gain)
    assert np.allclose(sent["value"], net.latest.layers[1].gain) and not np.allclose(sent["value"], gain)
    assert first.payload != seen.of("DDATA", "net0")[0].payload


def live_data(seen, device):
    """The DDATA of ``device`` that are not replays of the store (the node samples before it connects)."""
    types = datatypes(seen.of("DBIRTH", device)[0].decoded())
    decoded = [m.decoded(types) for m in seen.of("DDATA", device)]
    return [d for d in decoded if not any(x["historical"] for x in d["metrics"])]


def test_clean_stop_sends_deaths_with_the_births_bdseq_and_bdseq_goes_on_after_a_restart(tmp_path):
    net = SyntheticNetwork("net0", layers=1, columns=4)

    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            for _ in range(2):
                async with EdgeNode(node_config(broker, tmp_path), lambda: {"net0": net}):
                    assert await seen.wait(lambda: len(seen.of("DBIRTH")) == len(seen.of("NDEATH")) + 1)
                await seen.wait(lambda: len(seen.of("NDEATH")) == len(seen.of("NBIRTH")))
        return seen

    seen = run(scenario)
    births = [by_name(m.decoded())["bdSeq"]["value"] for m in seen.of("NBIRTH")]
    deaths = [by_name(m.decoded())["bdSeq"]["value"] for m in seen.of("NDEATH")]
    assert births == deaths and births[1] == (births[0] + 1) % 256  # kept in the store file across restarts
    kinds = [m.kind for m in seen.messages if m.kind in ("NBIRTH", "DBIRTH", "DDEATH", "NDEATH")]
    assert kinds == ["NBIRTH", "DBIRTH", "DDEATH", "NDEATH"] * 2
    ddeath = seen.of("DDEATH")[0].decoded()
    assert ddeath["seq"] is not None and ddeath["metrics"] == []


def test_seq_counts_every_message_and_wraps_after_255(tmp_path):
    net = SyntheticNetwork("net0", layers=1, columns=2, ticking=True)

    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            async with EdgeNode(node_config(broker, tmp_path, publish_ms=10), lambda: {"net0": net}):
                assert await seen.wait(lambda: len(seen.of("DDATA")) >= 300, timeout=60)
        return seen

    seen = run(scenario)
    seqs = [m.decoded()["seq"] for m in seen.messages if m.kind in ("NBIRTH", "DBIRTH", "DDATA")][:300]
    assert seqs[:3] == [0, 1, 2]
    assert seqs == [k % 256 for k in range(300)]  # 255 is followed by 0


def test_rebirth_on_command_repeats_both_births_with_the_same_bdseq(tmp_path):
    net = SyntheticNetwork("net0", layers=1, columns=4)

    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            async with EdgeNode(node_config(broker, tmp_path), lambda: {"net0": net}) as node:
                assert await seen.wait(lambda: seen.of("DBIRTH"))
                await publish(broker, f"spBv1.0/{GROUP}/NCMD/{NODE}", command("Node Control/Rebirth"))
                assert await seen.wait(lambda: len(seen.of("DBIRTH")) == 2)
                await publish(broker, f"spBv1.0/{GROUP}/NCMD/{NODE}", command("Node Control/Reboot"))
                await asyncio.sleep(0.3)
                refused = node.stats.commands_refused
        return seen, refused

    seen, refused = run(scenario)
    births = [m.decoded() for m in seen.of("NBIRTH")]
    assert len(births) == 2 and [b["seq"] for b in births] == [0, 0]
    assert by_name(births[0])["bdSeq"]["value"] == by_name(births[1])["bdSeq"]["value"]
    assert seen.of("DBIRTH")[1].decoded()["seq"] == 1
    assert refused == 1 and len(seen.of("NBIRTH")) == 2  # an unknown node command does nothing


def test_data_is_reported_by_exception(tmp_path):
    net = SyntheticNetwork("net0", layers=2, columns=8)

    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            async with EdgeNode(node_config(broker, tmp_path), lambda: {"net0": net}):
                assert await seen.wait(lambda: seen.of("DBIRTH"))
                await asyncio.sleep(0.5)  # ten periods, nothing changes
                quiet = len(live_data(seen, "net0"))
                net.latest = dataclasses.replace(net.latest, age_s=net.latest.age_s + 1.0)
                assert await seen.wait(lambda: len(live_data(seen, "net0")) == 1)
                layers = list(net.latest.layers)
                layers[1] = dataclasses.replace(layers[1], gain=layers[1].gain * 1.01)
                net.latest = dataclasses.replace(net.latest, layers=tuple(layers))
                assert await seen.wait(lambda: len(live_data(seen, "net0")) == 2)
                await asyncio.sleep(0.3)
        return seen, quiet

    seen, quiet = run(scenario)
    assert quiet == 0
    aliases = {m["name"]: m["alias"] for m in seen.of("DBIRTH")[0].decoded()["metrics"]}
    first, second = (d["metrics"] for d in live_data(seen, "net0"))
    assert [m["alias"] for m in first] == [aliases["Age"]]
    assert [m["alias"] for m in second] == [aliases["Layer1/Gain"]]
    assert np.allclose(second[0]["value"], net.latest.layers[1].gain)
    assert len(live_data(seen, "net0")) == 2


def test_only_allowed_device_commands_run(tmp_path, caplog):
    net = SyntheticNetwork("net0", layers=1, columns=4)

    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            async with EdgeNode(node_config(broker, tmp_path, commands=["Calibrate"]), lambda: {"net0": net}) as node:
                assert await seen.wait(lambda: seen.of("DBIRTH"))
                aliases = {m["name"]: m["alias"] for m in seen.of("DBIRTH")[0].decoded()["metrics"]}
                topic = f"spBv1.0/{GROUP}/DCMD/{NODE}/net0"
                await publish(broker, topic, command("Compensator/Rollback"))       # not allowed
                await publish(broker, topic, command("Compensator/Calibrate", False))  # not a request
                await publish(broker, topic, command("Layer0/Gain"))                 # not a command
                await publish(broker, topic, b"\x00garbage")                         # not Sparkplug
                await publish(broker, f"spBv1.0/{GROUP}/DCMD/{NODE}/nonet", command("Compensator/Calibrate"))
                await asyncio.sleep(0.5)
                assert net.commands == []
                await publish(broker, topic, command("", alias=aliases["Compensator/Calibrate"]))  # by alias
                assert await seen.wait(lambda: net.commands == ["calibrate"])
                await asyncio.sleep(0.2)
                return node.stats

    stats = run(scenario)
    assert net.commands == ["calibrate"]
    assert stats.commands_run == 1 and stats.commands_refused == 4 and stats.malformed == 1
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("Compensator/Rollback" in text for text in refusals)


def test_store_and_forward_across_a_broker_restart_loses_nothing(tmp_path):
    nets = {f"net{k}": SyntheticNetwork(f"net{k}", layers=2, columns=8, seed=k, ticking=True) for k in range(2)}

    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            store = FleetStore(tmp_path / "fleet.sqlite")
            async with FleetHost(BrokerSettings(broker.url), group=GROUP, host_id="scada", store=store):
                # Store-and-forward delivers to the primary host: births and replays wait for its STATE, so
                # the host cannot miss them by reconnecting after the node.
                async with EdgeNode(node_config(broker, tmp_path, publish_ms=100, primary_host_id="scada"),
                                    lambda: nets) as node:
                    assert await seen.wait(lambda: len(seen.of("DBIRTH")) == 2)
                    await asyncio.sleep(0.5)
                    await broker.restart(down_s=1.5)
                    assert await seen.wait(lambda: len(seen.of("NBIRTH")) >= 2)
                    assert await seen.wait(lambda: node.stats.replayed >= node.stats.stored > 0)
                    await asyncio.sleep(0.5)
                    for net in nets.values():
                        net.held = True
                    await asyncio.sleep(0.5)
                    stats = dataclasses.replace(node.stats)
            samples = store.samples(name="Scan/Count")
            store.close()
        return seen, stats, samples

    seen, stats, samples = run(scenario)
    assert stats.stored >= 10  # 1.5 s of two networks at 100 ms
    for name, net in nets.items():
        got = sorted(int(s.value) for s in samples if s.device == name)
        assert got == list(range(1, net.scan + 1)), name  # every scan, once
        assert any(s.historical for s in samples if s.device == name)
    replayed = [m.decoded() for m in seen.of("DDATA") if any(x["historical"] for x in m.decoded()["metrics"])]
    assert replayed and all(x["name"] and x["historical"] for d in replayed for x in d["metrics"])
    nbirths = [by_name(m.decoded())["bdSeq"]["value"] for m in seen.of("NBIRTH")]
    assert nbirths[1] > nbirths[0]  # every CONNECT (the failed ones too) takes the next bdSeq


def test_a_killed_node_is_declared_dead_by_its_will(tmp_path):
    settings = {"broker": None, "group": GROUP, "nodes": ["victim"], "networks": 1, "columns": 4, "layers": 1,
                "publish_ms": 100, "keepalive_s": 2, "directory": str(tmp_path / "nodes")}

    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            async with FleetHost(BrokerSettings(broker.url), group=GROUP) as host:
                path = tmp_path / "nodes.json"
                path.write_text(json.dumps({**settings, "broker": broker.url}))
                proc = subprocess.Popen([sys.executable, "-m", "plc_anna.bench.fleet_nodes", str(path)],
                                        stdout=subprocess.PIPE, text=True)
                try:
                    assert (await asyncio.to_thread(proc.stdout.readline)).strip() == "ready"
                    assert await seen.wait(lambda: host.nodes.get((GROUP, "victim")) is not None
                                           and host.nodes[(GROUP, "victim")].online)
                    os.kill(proc.pid, signal.SIGKILL)
                    assert await seen.wait(lambda: seen.of("NDEATH"), timeout=10)
                    assert await seen.wait(lambda: not host.nodes[(GROUP, "victim")].online)
                    devices_online = [d.online for d in host.nodes[(GROUP, "victim")].devices.values()]
                finally:
                    proc.kill()
                    proc.wait()
                    proc.stdout.close()
        return seen, devices_online

    seen, devices_online = run(scenario)
    birth = by_name(seen.of("NBIRTH")[0].decoded())["bdSeq"]["value"]
    death = by_name(seen.of("NDEATH")[0].decoded())["bdSeq"]["value"]
    assert birth == death and devices_online == [False]
    assert not seen.of("DDEATH")  # no clean stop: only the Will speaks
