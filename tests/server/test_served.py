"""A server of several networks: one set of objects each, commands, saves and restores of each on its own.

The server runs as ``plc-anna serve`` does, its scans in a process of their own; clients are real
asyncua sessions on loopback.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from asyncua import ua

from plc_anna.compensator import CompensatorConfig
from plc_anna.drift.states import DriftState
from plc_anna.server.app import PlcAnnaServer
from plc_anna.server.config import ServerConfig
from plc_anna.server.store import StateStore
from plc_anna.testing import free_port, rig
from tests.server.support import wait_for

FAST = CompensatorConfig(calibration_samples=512, estimate_samples=256, holdout_samples=128)
LINE1, LINE2 = "Networks.line1.", "Networks.line2."


def _networks(*extra: dict) -> list[dict]:
    return [{"name": "line1", "network": "thermocouple", "scan_ms": 20, "samples_per_scan": 64, "age_rate": 0},
            {"name": "line2", "network": "digits", "scan_ms": 30, "samples_per_scan": 64, "age_rate": 0, "seed": 4},
            *extra]


def run(scenario, timeout=120):
    return asyncio.run(asyncio.wait_for(scenario(), timeout))


async def _value(client, r, path):
    return await client.get_node(r.nodeid(path)).read_value()


def test_each_network_is_served_commanded_saved_and_restored_on_its_own(tmp_path):
    async def first():
        async with rig(tmp_path, compensator_config=FAST, networks=_networks(), scan_isolation="process") as r:
            assert list(r.server.networks) == ["line1", "line2"]
            async with r.client() as client:
                # One folder per network under Objects/Networks, the single network's layout below it.
                idx = r.idx
                folder = await client.nodes.objects.get_child(f"{idx}:Networks")
                names = sorted([(await child.read_browse_name()).Name for child in await folder.get_children()])
                assert names == ["line1", "line2"]
                with pytest.raises(ua.UaError):
                    await client.nodes.objects.get_child(f"{idx}:AnalogNetwork")
                assert len(await _value(client, r, f"{LINE1}AnalogNetwork.Layers.Layer2.Gain")) == 4
                assert len(await _value(client, r, f"{LINE2}AnalogNetwork.Layers.Layer1.Gain")) == 10
                assert await _value(client, r, f"{LINE2}Compensator.ScanPeriod") == 30.0
                # Both scan on their own; a command reaches only its network.
                for prefix in (LINE1, LINE2):
                    heartbeat = client.get_node(r.nodeid(f"{prefix}ControllerLink.Heartbeat"))
                    start = await heartbeat.read_value()
                    assert await wait_for(lambda h=heartbeat, s=start: _above(h, s))
                await client.get_node(r.nodeid(f"{LINE2}Compensator")).call_method(
                    r.nodeid(f"{LINE2}Compensator.SetAge"), 86400.0)
                assert await _value(client, r, f"{LINE1}AnalogNetwork.Age") == 60.0
                assert await wait_for(lambda: _equals(client, r, f"{LINE2}AnalogNetwork.Age", 86400.0))
                # every layer settled (an upstream correction still moving would re-estimate this one)
                for layer in range(3):
                    state = f"{LINE1}AnalogNetwork.Layers.Layer{layer}.DriftState"
                    assert await wait_for(lambda s=state: _equals(client, r, s, int(DriftState.NOMINAL)), timeout=60)
                await client.get_node(r.nodeid(f"{LINE1}AnalogNetwork.Layers.Layer2.Gain")).write_value(
                    ua.Variant([1.25] * 4, ua.VariantType.Double))
                received = EventRecorder()
                drift_event = await client.nodes.root.get_child(
                    ["0:Types", "0:EventTypes", "0:BaseEventType", f"{idx}:DriftEventType"])
                subscription = await client.create_subscription(20, received)
                await subscription.subscribe_events(client.nodes.server, drift_event)
                await r.server.networks["line2"].command("calibrate")
                assert await wait_for(lambda: _equals(client, r, f"{LINE2}AnalogNetwork.Layers.Layer1.DriftState",
                                                      int(DriftState.CALIBRATING)))
                # the events of a network name it: its source is the network's layer
                assert await wait_for(lambda: _any_from(received, "Networks.line2.Layer"), timeout=60)
                source = next(e for e in received if str(e.SourceName).startswith("Networks.line2."))
                assert source.SourceNode.Identifier.startswith("Networks.line2.AnalogNetwork.Layers.Layer")
                await subscription.delete()
                line1 = r.server.networks["line1"]
                assert line1.latest.layers[2].state is not DriftState.CALIBRATING and line1.stats.cycles > 0
                assert line1.link is None and line1.stats.period_ms == 20.0
                with pytest.raises(ValueError, match="unknown command"):
                    await line1.command("self_destruct")
                scans = {name: network.latest.scan for name, network in r.server.networks.items()}
        return scans

    scans = run(first)
    with StateStore(tmp_path / "state.sqlite") as store:
        assert store.state_networks() == ["line1", "line2"]   # one state per network, none for ""
        assert store.load_state_entry("line1").scan >= scans["line1"]
        assert store.load_state_entry("line2").state["age_s"] == 86400.0
        assert store.read_history("Networks.line1.Layer2.Gain") and store.read_history("Networks.line2.Layer1.Gain")

    async def again_with_a_third():
        networks = _networks({"name": "line3", "network": "thermocouple", "age_rate": 0, "seed": 9})
        async with rig(tmp_path, compensator_config=FAST, networks=networks, scan_isolation="process") as r:
            served = r.server.networks
            async with r.client() as client:
                gain = await _value(client, r, f"{LINE1}AnalogNetwork.Layers.Layer2.Gain")
                age = await _value(client, r, f"{LINE2}AnalogNetwork.Age")
            return ({name: network.restored_scan for name, network in served.items()}, gain, age)

    restored, gain, age = run(again_with_a_third)
    assert restored["line1"] >= scans["line1"] and restored["line2"] >= scans["line2"]
    assert restored["line3"] is None                               # a new network starts afresh
    assert np.allclose(gain, 1.25, atol=0.05) and age == 86400.0


class EventRecorder(list):
    def event_notification(self, event):
        self.append(event)


async def _any_from(events, prefix):
    return any(str(e.SourceName).startswith(prefix) for e in events)


async def _above(node, value):
    return await node.read_value() > value


async def _equals(client, r, path, value):
    return await _value(client, r, path) == value


def test_a_network_that_does_not_fit_its_tag_map_starts_nothing(tmp_path):
    """A tag map of another network: the start fails naming the network, nothing listens, nothing is stored."""
    from plc_anna.contract.tagmap import tag_map_to_toml
    from plc_anna.device.simulated import SimulatedNetwork
    from plc_anna.simulated_plc.program import SimulatedPlc

    other = SimulatedPlc(SimulatedNetwork("digits", "pcm", seed=0))
    path = tmp_path / "digits-map.toml"
    path.write_text(tag_map_to_toml(other.tag_map("opcua", "opc.tcp://127.0.0.1:4999")))
    networks = _networks()
    networks[0] = {**networks[0], "tag_map": str(path)}  # thermocouple, with the digits network's tags
    config = ServerConfig(config_dir=tmp_path, endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc-anna",
                          networks=networks, security={"policies": ["None"], "allow_anonymous": True})

    async def start():
        async with PlcAnnaServer(config, FAST):
            pass

    with pytest.raises(ValueError, match="network 'line1': "):
        run(start)
    with StateStore(tmp_path / "state.sqlite") as store:
        assert store.state_networks() == []
