"""Alarms & Conditions: the server's alarms end to end with real asyncua clients, and their rules.

The end-to-end tests run a test rig with an operator and a viewer; the scan-overrun alarm is made
deterministic by slowing the scan's work. The rules of the layer and link alarms are driven with
made-up scan snapshots against a bare asyncua server, so every case is reached on purpose.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from asyncua import Server, ua

import plc_anna.server.alarms as alarms_module
from plc_anna.compensator import CompensatorConfig
from plc_anna.drift.states import DriftState, Event, EventKind
from plc_anna.plc.link import LinkEvent
from plc_anna.server.alarms import NetworkAlarms
from plc_anna.server.conditions import ConditionServer
from plc_anna.server.runtime import LayerSnapshot, Snapshot
from plc_anna.testing import rig
from tests.server.support import wait_for

FAST = CompensatorConfig(calibration_samples=1024, estimate_samples=512, holdout_samples=256)
ALARM = "Compensator.ScanOverrunAlarm"
ACKNOWLEDGE = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
REFRESH = ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh)


class Recorder(list):
    def event_notification(self, event):
        self.append(event)


def run(scenario, timeout=120):
    return asyncio.run(asyncio.wait_for(scenario(), timeout=timeout))


async def refresh(client, subscription, received: Recorder) -> list:
    """ConditionRefresh on ``subscription``: the condition events sent between RefreshStart and RefreshEnd."""
    start = len(received)
    await client.get_node(ua.ObjectIds.ConditionType).call_method(
        REFRESH, ua.Variant(subscription.subscription_id, ua.VariantType.UInt32))

    async def ended():
        return any(e.EventType == ua.NodeId(ua.ObjectIds.RefreshEndEventType) for e in received[start:])

    assert await wait_for(ended, timeout=10)
    window = received[start:]
    begin = next(i for i, e in enumerate(window) if e.EventType == ua.NodeId(ua.ObjectIds.RefreshStartEventType))
    end = next(i for i, e in enumerate(window) if e.EventType == ua.NodeId(ua.ObjectIds.RefreshEndEventType))
    return window[begin + 1:end]


def test_an_operator_acknowledges_a_viewer_may_not_and_refresh_shows_what_is_retained(tmp_path, monkeypatch):
    monkeypatch.setattr(alarms_module, "OVERRUN_CLEAR_S", 1.0)

    async def scenario():
        async with rig(tmp_path, compensator_config=FAST, scan_ms=50,
                       users={"otto": "operator", "vera": "viewer"}) as r:
            alarm_id = r.nodeid(ALARM)
            async with r.client("otto") as operator, r.client("vera") as viewer:
                received = Recorder()
                subscription = await operator.create_subscription(20, received)
                await subscription.subscribe_alarms_and_conditions(operator.nodes.server, [
                    ua.ObjectIds.AlarmConditionType, ua.ObjectIds.RefreshStartEventType,
                    ua.ObjectIds.RefreshEndEventType])
                runtime = r.scan().runtime
                work = runtime.step

                def slow():
                    time.sleep(0.08)  # longer than the scan period: every cycle overruns
                    return work()

                runtime.step = slow

                async def raised():
                    return any(e.NodeId == alarm_id and e.Retain for e in received)

                assert await wait_for(raised)
                event = next(e for e in received if e.NodeId == alarm_id)
                assert event.ConditionName == "ScanOverrunAlarm" and "scan overrun" in event.Message.Text
                assert event.Severity == 500 and event.SourceName == "Compensator"
                active = [e for e in await refresh(operator, subscription, received) if e.NodeId == alarm_id]
                assert len(active) == 1 and active[0].Retain
                latest = active[0].EventId
                # the viewer may read the alarm but not acknowledge it
                assert await viewer.get_node(ua.NodeId(f"{ALARM}.ActiveState.Id", r.idx)).read_value() is True
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await viewer.get_node(alarm_id).call_method(
                        ACKNOWLEDGE, latest, ua.LocalizedText("mine"))
                assert r.server.networks["digits"].alarms.scan_overrun.acked is False
                # an unknown EventId is refused; the operator's acknowledgement with the right one is taken
                with pytest.raises(ua.uaerrors.BadEventIdUnknown):
                    await operator.get_node(alarm_id).call_method(
                        ACKNOWLEDGE, b"not an event",
                        ua.LocalizedText("?"))
                await operator.get_node(alarm_id).call_method(
                    ACKNOWLEDGE, latest, ua.LocalizedText("seen, tuning"))
                condition = r.server.networks["digits"].alarms.scan_overrun
                assert condition.acked and condition.acked_by == "otto" and condition.comment == "seen, tuning"
                assert await operator.get_node(ua.NodeId(f"{ALARM}.AckedState.Id", r.idx)).read_value() is True
                with pytest.raises(ua.uaerrors.BadConditionBranchAlreadyAcked):
                    await operator.get_node(alarm_id).call_method(
                        ACKNOWLEDGE, condition.event_id,
                        ua.LocalizedText("again"))
                # acknowledged and still active: retained; once the overruns stop it clears and is no longer
                runtime.step = work

                async def cleared():
                    return not condition.active

                assert await wait_for(cleared)
                assert [e for e in await refresh(operator, subscription, received) if e.NodeId == alarm_id] == []
                last = [e for e in received if e.NodeId == alarm_id][-1]
                assert not last.Retain and last.ActiveState.Text == "Inactive" and last.AckedState.Text == "Acknowledged"

    run(scenario)


# ---------------------------------------------------------------- the rules, on made-up scans

def layer(index: int, state: DriftState, reason: str = "", life: float | None = None) -> LayerSnapshot:
    z = np.zeros(2)
    return LayerSnapshot(index=index, state=state, gain=z + 1, offset=z, column_distance=z, layer_distance=0.0,
                         statistic=0.0, threshold=5.0, transport_cost=z, sample_count=0, gain_trend=np.zeros(0),
                         remaining_life_s=life, state_reason=reason, coverage=1.0)


def scan(layers, events=(), age_s=1e6) -> Snapshot:
    return Snapshot(scan=1, age_s=age_s, temperature_k=300.0, layers=tuple(layers), events=tuple(events),
                    commit_counter=0, heartbeat=0, read_s=0.0, compute_s=0.0)


def test_layer_and_link_alarms_follow_the_scans_and_the_link():
    async def scenario():
        server = Server()
        await server.init()
        idx = await server.register_namespace("urn:plc-anna:test")
        objects = server.nodes.objects
        layers = [SimpleNamespace(object=await objects.add_object(ua.NodeId(f"Layer{i}", idx),
                                                                  ua.QualifiedName(f"Layer{i}", idx)))
                  for i in range(2)]
        space = SimpleNamespace(layers=layers,
                                link=await objects.add_object(ua.NodeId("ControllerLink", idx), f"{idx}:ControllerLink"),
                                compensator=await objects.add_object(ua.NodeId("Compensator", idx),
                                                                     f"{idx}:Compensator"))
        alarms = await NetworkAlarms.create(await ConditionServer.install(server), space, maintenance_horizon_s=1e5)
        nominal = [layer(0, DriftState.NOMINAL), layer(1, DriftState.NOMINAL)]
        await alarms.after_scan(scan(nominal))
        assert not any(c.active for c in alarms.conditions) and not any(c.retain for c in alarms.conditions)

        # a fault: the message carries the state reason; it clears when the layer leaves Fault
        reason = "columns [3] moved 9 sigma in one scan at age 1e6 s"
        await alarms.after_scan(scan([layer(0, DriftState.NOMINAL), layer(1, DriftState.FAULT, reason)]))
        fault = alarms.layers[1].fault
        assert fault.active and not fault.acked and reason in fault.message and fault.spec.severity == 900
        assert not alarms.layers[0].fault.active
        await alarms.after_scan(scan(nominal))
        assert not fault.active and fault.retain  # inactive, still unacknowledged: retained
        assert await fault.acknowledge(fault.event_id, "replaced the ADC", "otto") == ua.StatusCodes.Good
        assert not fault.retain

        # saturation: raised by its event, cleared by a later correction that started without one
        saturated = Event(EventKind.SATURATED, 0, 1, DriftState.COMPENSATING, "columns [0] need a gain of 5")
        await alarms.after_scan(scan(nominal, [saturated]))
        assert alarms.layers[0].saturated.active and "gain of 5" in alarms.layers[0].saturated.message
        started = Event(EventKind.TRANSITION_STARTED, 0, 2, DriftState.COMPENSATING, "ramping")
        await alarms.after_scan(scan(nominal, [started, saturated]))
        assert alarms.layers[0].saturated.active
        await alarms.after_scan(scan(nominal, [started]))
        assert not alarms.layers[0].saturated.active

        # maintenance: while the remaining life is within the horizon of the age
        soon = [layer(0, DriftState.NOMINAL, life=1e6 + 5e4), layer(1, DriftState.NOMINAL)]
        await alarms.after_scan(scan(soon))
        assert alarms.layers[0].maintenance.active and alarms.layers[0].maintenance.spec.condition_class == \
            "maintenance"
        await alarms.after_scan(scan([replace(soon[0], remaining_life_s=float("inf")), soon[1]]))
        assert not alarms.layers[0].maintenance.active

        # the link: lost until restored
        await alarms.link_event(LinkEvent("link_lost", "opc.tcp://plc:4840: connection refused"))
        assert alarms.link_lost.active and "connection refused" in alarms.link_lost.message
        await alarms.link_event(LinkEvent("plc_fault", "layer 0 holds"))
        assert alarms.link_lost.active
        await alarms.link_event(LinkEvent("link_restored", "after 3.0 s"))
        assert not alarms.link_lost.active

    asyncio.run(scenario())


def test_an_hmi_on_another_stack_refreshes_and_acknowledges(tmp_path, node_opcua, monkeypatch):
    """node-opcua, as an HMI: ConditionRefresh lists the active alarm, an operator acknowledges it, a
    viewer's acknowledgement is refused."""
    monkeypatch.setattr(alarms_module, "OVERRUN_CLEAR_S", 60.0)  # stays active while the HMIs look

    async def scenario():
        async with rig(tmp_path, compensator_config=FAST, scan_ms=50,
                       users={"otto": "operator", "vera": "viewer"}) as r:
            runtime = r.scan().runtime
            work = runtime.step

            def slow():
                time.sleep(0.08)
                return work()

            runtime.step = slow
            condition = r.server.networks["digits"].alarms.scan_overrun

            async def active():
                return condition.active

            assert await wait_for(active)
            runtime.step = work

            def plan(user):
                return json.dumps({"endpoint": r.endpoint, "pki": str(tmp_path / "hmi-pki"), "user": user,
                                   "password": r.passwords[user],
                                   "alarms": {"wait_ms": 1000, "acknowledge": ["ScanOverrunAlarm"],
                                              "comment": f"{user} was here"}})

            result = await node_opcua.arun("client.js", plan("vera"))
            assert "alarms" in result, result
            viewer = result["alarms"]
            assert viewer["refreshStatus"] == "Good"
            assert viewer["acknowledged"] == {"ScanOverrunAlarm": "BadUserAccessDenied"}
            assert not condition.acked
            operator = (await node_opcua.arun("client.js", plan("otto")))["alarms"]
            listed = [e for e in operator["refresh"] if e["condition"] == "ScanOverrunAlarm"]
            assert len(listed) == 1 and listed[0]["retain"] and listed[0]["active"] and not listed[0]["acked"]
            assert listed[0]["source"] == "Compensator" and "scan overrun" in listed[0]["message"]
            assert listed[0]["conditionId"] == condition.node.nodeid.to_string()
            assert operator["acknowledged"] == {"ScanOverrunAlarm": "Good"}
            assert condition.acked and condition.acked_by == "otto" and condition.comment == "otto was here"
            acked = [e for e in operator["events"] if e["condition"] == "ScanOverrunAlarm" and e["acked"]]
            assert acked and acked[-1]["retain"]  # acknowledged, still active: still retained

    run(scenario)
