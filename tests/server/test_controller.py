"""The server with a PLC link: a network observed through a simulated PLC, corrections written back,
the ControllerLink object and the link's events, over real OPC UA on loopback."""

from __future__ import annotations

import asyncio
import functools

from asyncua import ua

from plc_anna.compensator import CompensatorConfig
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.server.status import read_status
from plc_anna.simulated_plc.opcua import SimulatedPlcOpcUa
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.contract.tagmap import tag_map_to_toml
from plc_anna.testing import free_port, rig
from tests.server import support

FAST = CompensatorConfig(calibration_samples=512, estimate_samples=256, holdout_samples=128)
LAST = 2


class EventRecorder(list):
    def event_notification(self, event):
        self.append(event)


wait_for = functools.partial(support.wait_for, timeout=30.0)   # a link connects and calibrates first


def test_a_plc_observed_network_is_compensated_and_the_link_is_shown(tmp_path):
    async def scenario():
        sim = SimulatedNetwork("thermocouple", "pcm", seed=0)
        sim.set_age(60.0)
        plc = SimulatedPlc(sim, cycle_s=0.02, trace_length=96, samples_per_cycle=32, seed=0)
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        async with SimulatedPlcOpcUa(plc, endpoint) as served:
            tag_map = tmp_path / "tag_map.toml"
            tag_map.write_text(tag_map_to_toml(plc.tag_map("opcua", endpoint)))
            async with rig(tmp_path / "server", network="thermocouple", compensator_config=FAST,
                           device_backend="plc", tag_map=str(tag_map)) as r:
                async with r.client() as client:
                    link = {name: client.get_node(r.nodeid(f"ControllerLink.{name}"))
                            for name in ("Protocol", "Endpoint", "Connected", "LastError", "CommitCounter",
                                         "Heartbeat")}
                    assert await link["Protocol"].read_value() == "opcua"
                    assert await link["Endpoint"].read_value() == endpoint
                    assert await wait_for(lambda: link["Connected"].read_value())
                    assert await link["LastError"].read_value() == ""
                    shown = (await read_status(client))["link"]        # what `plc-anna status` shows
                    assert (shown["protocol"], shown["endpoint"], shown["connected"]) == ("opcua", endpoint, True)
                    samples = client.get_node(r.nodeid("AnalogNetwork.Layers.Layer2.SampleCount"))
                    assert await wait_for(lambda: _positive(samples))      # the PLC's samples reach the compensator
                    age = await client.get_node(r.nodeid("AnalogNetwork.Age")).read_value()
                    assert age == 60.0                                      # the device's age comes from the PLC
                    # The network ages in the plant: the compensator corrects it and the PLC applies the sets.
                    sim.set_age(86400.0 * 30)
                    assert await wait_for(lambda: _counter(link["CommitCounter"]), timeout=60.0)
                    assert plc.tags(LAST)["AcceptedCommit"] >= 1 and not plc.tags(LAST)["Fault"]
                    gain = await client.get_node(r.nodeid("AnalogNetwork.Layers.Layer2.Gain")).read_value()
                    assert max(gain) > 1.01                                 # pcm drift lowers the outputs

                    recorder = EventRecorder()
                    subscription = await client.create_subscription(50, recorder)
                    await subscription.subscribe_events(ua.ObjectIds.Server, ua.ObjectIds.SystemEventType)
                    beats = await link["Heartbeat"].read_value()
                    await served.restart(1.0)                              # the PLC drops its connections
                    assert await wait_for(lambda: _true(link["Connected"]))
                    assert await link["Heartbeat"].read_value() > beats
                    # The events reach the subscription on its own publishing interval: wait for the second.
                    assert await wait_for(lambda: _received(recorder, "PLC link link_restored"))
                    messages = [str(event.Message.Text) for event in recorder]
                    assert any("PLC link link_lost" in text and endpoint in text for text in messages), messages
                    assert any("PLC link link_restored" in text for text in messages), messages
                    sources = {event.SourceName for event in recorder if "PLC link" in str(event.Message.Text)}
                    assert sources == {"ControllerLink"}
                    # the LinkLost alarm went active with the loss and inactive with the return, unacknowledged
                    alarm = next(iter(r.server.networks.values())).alarms.link_lost
                    assert not alarm.active and not alarm.acked and alarm.retain
                    assert "PLC link restored" in alarm.message
                    await subscription.delete()
    asyncio.run(asyncio.wait_for(scenario(), timeout=150))


def test_an_unreachable_plc_is_shown_on_the_controller_link_and_the_server_runs_on(tmp_path):
    async def scenario():
        plc = SimulatedPlc(SimulatedNetwork("digits", "ideal", seed=0))
        endpoint = f"modbus://127.0.0.1:{free_port()}"      # nobody listens here
        tag_map = tmp_path / "tag_map.toml"
        tag_map.write_text(tag_map_to_toml(plc.tag_map("modbus", endpoint)))
        async with rig(tmp_path / "server", network="digits", tag_map=str(tag_map)) as r:
            async with r.client() as client:
                error = client.get_node(r.nodeid("ControllerLink.LastError"))
                assert await wait_for(lambda: _contains(error, "connection refused"))
                assert await client.get_node(r.nodeid("ControllerLink.Connected")).read_value() is False
                lost = client.get_node(r.nodeid("ControllerLink.LinkLostAlarm.ActiveState.Id"))
                assert await wait_for(lambda: _true(lost))
                assert "connection refused" in next(iter(r.server.networks.values())).alarms.link_lost.message
                samples = client.get_node(r.nodeid("AnalogNetwork.Layers.Layer1.SampleCount"))
                seen = await samples.read_value()
                # The scan goes on (the simulated network here); only the write-back waits for the PLC.
                assert await wait_for(lambda: _more_than(samples, seen))
    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


async def _received(recorder: EventRecorder, text: str) -> bool:
    return any(text in str(event.Message.Text) for event in recorder)


async def _positive(node) -> bool:
    return (await node.read_value() or 0) > 0


async def _more_than(node, value: int) -> bool:
    return (await node.read_value()) > value


async def _counter(node) -> bool:
    return (await node.read_value()) >= 2


async def _true(node) -> bool:
    return (await node.read_value()) is True


async def _contains(node, text: str) -> bool:
    return text in (await node.read_value() or "")
