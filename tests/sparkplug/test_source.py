"""A real plc-anna server as a Sparkplug edge node: its networks, values and commands over a real broker."""

from __future__ import annotations

import numpy as np

from plc_anna.compensator import CompensatorConfig
from plc_anna.drift.states import DriftState
from plc_anna.sparkplug.broker import LocalBroker
from plc_anna.sparkplug.source import NetworkSource, device_id, server_networks
from plc_anna.testing import rig
from tests.sparkplug.support import Recorder, by_name, command, datatypes, publish, run

FAST = CompensatorConfig(calibration_samples=1024, estimate_samples=512, holdout_samples=256)


def test_a_server_publishes_its_network_and_runs_allowed_commands_as_its_methods_do(tmp_path):
    async def scenario():
        async with LocalBroker(tmp_path / "broker") as broker, Recorder(broker) as seen:
            sparkplug = {"broker": broker.url, "group_id": "plant", "edge_node_id": "rig", "publish_ms": 100,
                         "commands": ["Calibrate"]}
            async with rig(tmp_path / "server", compensator_config=FAST, sparkplug=sparkplug) as r:
                server = r.server
                networks = server_networks(server)
                assert list(networks) == ["digits"] and isinstance(networks["digits"], NetworkSource)
                assert await seen.wait(lambda: seen.of("DBIRTH", "digits"))
                birth = seen.of("DBIRTH", "digits")[0].decoded()
                async with r.client() as client:
                    opc_gain = await client.get_node(r.nodeid("AnalogNetwork.Layers.Layer1.Gain")).read_value()
                assert await seen.wait(lambda: all(layer.state != DriftState.CALIBRATING
                                                   for layer in server.networks["digits"].latest.layers), timeout=60)
                topic = "spBv1.0/plant/DCMD/rig/digits"
                await publish(broker, topic, command("Compensator/ResetReference"))  # not allowed: refused
                await publish(broker, topic, command("Compensator/Calibrate"))
                calibrating = await seen.wait(lambda: any(layer.state == DriftState.CALIBRATING
                                                          for layer in server.networks["digits"].latest.layers), timeout=20)
                stats = server.edge_node.stats
        return seen, birth, opc_gain, calibrating, stats

    seen, birth, opc_gain, calibrating, stats = run(scenario)
    metrics = by_name(birth)
    assert len(metrics["Layer1/Gain"]["value"]) == len(opc_gain) == 10
    assert {"Layer0/Gain", "Layer1/StateReason", "Layer1/Coverage", "Scan/P99CycleTime",
            "Compensator/Calibrate"} <= set(metrics)
    assert metrics["Layer0/DriftState"]["value"] == int(DriftState.CALIBRATING)
    assert calibrating and stats.commands_run == 1 and stats.commands_refused == 1
    types = datatypes(birth)
    scans = [x["value"] for m in seen.of("DDATA", "digits") for x in m.decoded(types)["metrics"]
             if x["alias"] == metrics["Scan/Count"]["alias"]]
    assert len(scans) >= 2 and scans == sorted(scans)  # the scan goes on; the node reports it
    assert seen.of("NDEATH")  # the server's stop ended the session with a death certificate
    gains = [x["value"] for m in seen.of("DDATA", "digits") for x in m.decoded(types)["metrics"]
             if x["alias"] == metrics["Layer1/Gain"]["alias"]]
    assert all(np.asarray(g).shape == (10,) for g in gains)


def test_device_ids_are_valid_sparkplug_ids():
    assert device_id("line 1/a+b#") == "line_1_a_b_"
    assert device_id("digits") == "digits"
