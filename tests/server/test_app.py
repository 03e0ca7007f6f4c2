"""The server end to end: real asyncua clients on loopback against a running PlcAnnaServer."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from plc_anna.compensator import CompensatorConfig
from plc_anna.drift.states import SEVERITY, DriftState, EventKind
from plc_anna.server.app import PlcAnnaServer
from plc_anna.server.certificates import CERT_FILE, OWN_DIR
from plc_anna.server.config import ServerConfig
from plc_anna.server.passwords import hash_password
from plc_anna.server.runtime import COUNTER_BLOCK
from plc_anna.server.status import connect, read_status
from plc_anna.testing import RunningRig, free_port, rig, serve_process
from tests.server.support import wait_for

FAST = CompensatorConfig(calibration_samples=1024, estimate_samples=512, holdout_samples=256)
LAYER1 = "AnalogNetwork.Layers.Layer1"


class EventRecorder(list):
    """A subscription handler that keeps every event it is notified of."""

    def event_notification(self, event):
        self.append(event)


def run(scenario, timeout=90):
    return asyncio.run(asyncio.wait_for(scenario(), timeout=timeout))


def test_browse_read_methods_and_rights(tmp_path):
    async def scenario():
        async with rig(tmp_path, compensator_config=FAST) as r:
            async with r.client() as client:
                idx = await client.get_namespace_index("urn:plc-anna:ua")
                layers = await client.nodes.objects.get_child([f"{idx}:AnalogNetwork", f"{idx}:Layers"])
                names = sorted([(await child.read_browse_name()).Name for child in await layers.get_children()])
                assert names == ["Layer0", "Layer1"]
                gain = client.get_node(r.nodeid(f"{LAYER1}.Gain"))
                assert len(await gain.read_value()) == 10
                eu_range = await client.get_node(r.nodeid(f"{LAYER1}.Gain.EURange")).read_value()
                assert (eu_range.Low, eu_range.High) == (0.25, 4.0)
                units = await client.get_node(r.nodeid(f"{LAYER1}.Offset.EngineeringUnits")).read_value()
                assert isinstance(units, ua.EUInformation)
                maker = await client.get_node(r.nodeid("AnalogNetwork.Manufacturer")).read_value()
                assert "plc-anna" in maker.Text
                columns = await client.get_node(r.nodeid(f"{LAYER1}.Columns")).read_value()
                assert columns == 10
                compensator = client.get_node(r.nodeid("Compensator"))
                methods = {(await m.read_browse_name()).Name for m in await compensator.get_methods()}
                assert {"Calibrate", "Commit", "Rollback", "ResetReference", "SetAge", "InjectFault"} <= methods
                # the scan runs: the heartbeat moves, diagnostics are published
                heartbeat = client.get_node(r.nodeid("ControllerLink.Heartbeat"))
                first = await heartbeat.read_value()
                assert await wait_for(lambda: _greater(heartbeat, first))
                assert await client.get_node(r.nodeid("Compensator.P99CycleTime")).read_value() > 0
                # an engineer may call the test-rig methods; a bad argument is refused
                await compensator.call_method(r.nodeid("Compensator.SetAge"), 86400.0)
                age = client.get_node(r.nodeid("AnalogNetwork.Age"))
                assert await wait_for(lambda: _equal(age, 86400.0))
                with pytest.raises(ua.uaerrors.BadOutOfRange):
                    await compensator.call_method(r.nodeid("Compensator.SetAge"), math.nan)
                with pytest.raises(ua.uaerrors.BadOutOfRange):
                    await compensator.call_method(r.nodeid("Compensator.InjectFault"), ua.Variant(7, ua.VariantType.UInt32),
                                                  [1.0] * 10, [0.0] * 10)
                await compensator.call_method(r.nodeid("Compensator.Calibrate"))
                state = client.get_node(r.nodeid(f"{LAYER1}.DriftState"))
                assert await wait_for(lambda: _equal(state, int(DriftState.CALIBRATING)), timeout=5)
                # the state's name, why it is where it is, units and ranges of the analog values
                text = client.get_node(r.nodeid(f"{LAYER1}.DriftState.ValueAsText"))
                assert await wait_for(lambda: _text(text, "Calibrating"), timeout=5)
                names = [v.DisplayName.Text for v in
                         await client.get_node(r.nodeid(f"{LAYER1}.DriftState.EnumValues")).read_value()]
                assert names == [s.name.capitalize() for s in DriftState]
                assert await client.get_node(r.nodeid(f"{LAYER1}.StateReason")).read_value() == ""
                coverage = await client.get_node(r.nodeid(f"{LAYER1}.Coverage")).read_value()
                assert math.isnan(coverage) or 0.0 <= coverage <= 1.0
                for name in ("LayerDistance", "ColumnDistance", "DetectorStatistic", "TransportCost", "Coverage"):
                    limits = await client.get_node(r.nodeid(f"{LAYER1}.{name}.EURange")).read_value()
                    unit = await client.get_node(r.nodeid(f"{LAYER1}.{name}.EngineeringUnits")).read_value()
                    assert limits.Low < limits.High and unit.DisplayName.Text
            # an anonymous viewer reads but may not call nor write
            async with r.client(user=None) as viewer:
                gain = viewer.get_node(r.nodeid(f"{LAYER1}.Gain"))
                before = await gain.read_value()
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await viewer.get_node(r.nodeid("Compensator")).call_method(r.nodeid("Compensator.Rollback"))
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await gain.write_value(ua.Variant([1.0] * 10, ua.VariantType.Double))
                assert r.scan().runtime.compensator.layers[1].correction()[0].tolist() == \
                    pytest.approx(before, abs=0.05)  # unchanged by the refused write (the ramp may move it)
    run(scenario)


async def _greater(node, value):
    return await node.read_value() > value


async def _equal(node, value):
    return await node.read_value() == value


async def _text(node, text):
    return (await node.read_value()).Text == text


def test_client_writes_are_validated(tmp_path):
    async def scenario():
        async with rig(tmp_path, compensator_config=FAST) as r:
            async with r.client() as client:
                gain = client.get_node(r.nodeid(f"{LAYER1}.Gain"))
                layer = r.scan().runtime.compensator.layers[1]
                bad = {
                    "NaN": ua.Variant([math.nan] + [1.0] * 9, ua.VariantType.Double),
                    "Inf": ua.Variant([math.inf] + [1.0] * 9, ua.VariantType.Double),
                    "above EURange": ua.Variant([5.0] * 10, ua.VariantType.Double),
                    "below EURange": ua.Variant([0.1] * 10, ua.VariantType.Double),
                    "too short": ua.Variant([1.0] * 9, ua.VariantType.Double),
                    "Float": ua.Variant([1.0] * 10, ua.VariantType.Float),
                    "scalar": ua.Variant(1.0, ua.VariantType.Double),
                }
                for what, variant in bad.items():
                    before = layer.correction()[0]
                    with pytest.raises(ua.UaStatusCodeError) as refused:
                        await gain.write_value(variant)
                    assert refused.value.code in (ua.StatusCodes.BadOutOfRange, ua.StatusCodes.BadTypeMismatch), what
                    assert np.array_equal(layer.last_good()[0], layer.last_good()[0])
                    assert np.allclose(layer.correction()[0], before, atol=0.05), what
                wanted = [1.1] * 10
                await gain.write_value(ua.Variant(wanted, ua.VariantType.Double))
                assert np.allclose(layer.correction()[0], wanted) and np.allclose(layer.last_good()[0], wanted)
                assert await wait_for(lambda: _close(gain, wanted))
                period = client.get_node(r.nodeid("Compensator.ScanPeriod"))
                with pytest.raises(ua.uaerrors.BadOutOfRange):
                    await period.write_value(ua.Variant(1.0, ua.VariantType.Double))
                await period.write_value(ua.Variant(25.0, ua.VariantType.Double))
                assert r.scan().task.period_s == 0.025
    run(scenario)


async def _close(node, values):
    return np.allclose(await node.read_value(), values)


def test_events_and_history(tmp_path):
    async def scenario():
        async with rig(tmp_path, compensator_config=FAST, history_period_s=0.05) as r:
            received = EventRecorder()

            async with r.client() as client:
                drift_event = await client.nodes.root.get_child(
                    ["0:Types", "0:EventTypes", "0:BaseEventType", f"{r.idx}:DriftEventType"])
                subscription = await client.create_subscription(20, received)
                await subscription.subscribe_events(client.nodes.server, drift_event)
                await client.get_node(r.nodeid("Compensator")).call_method(r.nodeid("Compensator.Calibrate"))
                state = client.get_node(r.nodeid(f"{LAYER1}.DriftState"))
                assert await wait_for(lambda: _any_kind(received, "calibrated", layer=1))
                assert await wait_for(lambda: _equal(state, int(DriftState.NOMINAL)))
                event = next(e for e in received if e.Kind == "calibrated")
                assert event.Severity == 100 and "calibrated" in event.Message.Text
                # a gross fault raises events (a fault when the layer is monitoring, else a new correction),
                # each with the severity of its kind
                seen = len(received)
                await client.get_node(r.nodeid("Compensator")).call_method(
                    r.nodeid("Compensator.InjectFault"), ua.Variant(1, ua.VariantType.UInt32), [0.3] * 10, [0.0] * 10)
                assert await wait_for(lambda: _any_new(received, seen, ("fault", "transition_started")))
                assert all(e.Severity == SEVERITY[EventKind(e.Kind)] for e in received)
                # history of the distance and the gains, read by a client
                distance = client.get_node(r.nodeid(f"{LAYER1}.LayerDistance"))
                assert await distance.read_attribute(ua.AttributeIds.Historizing)
                assert await wait_for(lambda: _history_at_least(distance, 3))
                gains = await client.get_node(r.nodeid(f"{LAYER1}.Gain")).read_raw_history()
                assert gains and all(len(dv.Value.Value) == 10 for dv in gains)
                await subscription.delete()
    run(scenario)


async def _any_new(events, seen, kinds):
    return any(e.Kind in kinds and e.Layer == 1 for e in events[seen:])


async def _any_kind(events, kind, layer=None):
    return any(getattr(e, "Kind", None) == kind and layer in (None, e.Layer) for e in events)


async def _history_at_least(node, n):
    return len(await node.read_raw_history()) >= n


def test_a_stuck_subscriber_delays_neither_the_scan_nor_the_other_clients(tmp_path):
    """Five sessions in another process subscribe to every layer, then that process stops (SIGSTOP): its
    sockets are no longer read. The scan keeps its deadlines (counted: deadlines it ran past, against the
    cycles it ran) and a healthy client still gets its notifications."""
    from plc_anna.bench.baseline import SUBSCRIBED
    from plc_anna.bench.subscribers import Subscribers
    from plc_anna.server.model import NAMESPACE_URI

    async def scenario():
        async with rig(tmp_path, compensator_config=FAST, scan_ms=10, publish_ms=20,
                       scan_isolation="process") as r:
            nodes = [f"ns={NAMESPACE_URI};s={LAYER1.replace('Layer1', f'Layer{i}')}.{member}"
                     for i in range(2) for member in SUBSCRIBED]
            served = r.server.networks["digits"]
            async with Subscribers(r.endpoint, 5, 20, nodes, tmp_path) as stuck, r.client(user=None) as healthy:
                assert stuck.monitored_items == 5 * len(nodes)
                received = _Counter()
                subscription = await healthy.create_subscription(20, received)
                await subscription.subscribe_data_change([healthy.get_node(r.nodeid(f"{LAYER1}.Gain")),
                                                          healthy.get_node(r.nodeid("ControllerLink.Heartbeat"))])
                stuck.pause()
                try:
                    before, heard = served.stats, received.count
                    assert await wait_for(lambda: _scanned(served, before.cycles + 300), timeout=60)
                    after = served.stats
                    assert after.missed_deadlines - before.missed_deadlines <= 0.05 * (after.cycles - before.cycles)
                    assert received.count - heard >= 20      # publishing went on for everybody else
                finally:
                    stuck.resume()
    run(scenario)


def test_a_server_whose_scan_engine_dies_stops_serving_with_the_reason(tmp_path):
    """The scans' process killed (as by the OOM killer): serve_forever ends with an error, so a service
    manager restarts the server, instead of serving values that no longer move."""
    import os
    import signal

    async def scenario():
        async with rig(tmp_path, compensator_config=FAST, scan_isolation="process") as r:
            serving = asyncio.ensure_future(r.server.serve_forever())
            await asyncio.sleep(0.3)
            assert not serving.done()
            os.kill(r.server.host.process.pid, signal.SIGKILL)
            with pytest.raises(RuntimeError, match="the scan engine process ended"):
                await asyncio.wait_for(serving, 30)
    run(scenario)


class _Counter:
    def __init__(self):
        self.count = 0

    def datachange_notification(self, node, value, data):
        self.count += 1


async def _scanned(served, cycles):
    return served.stats.cycles >= cycles


def test_a_restart_restores_the_state(tmp_path):
    async def first():
        async with rig(tmp_path, compensator_config=FAST) as r:
            async with r.client() as client:
                counter = client.get_node(r.nodeid("ControllerLink.CommitCounter"))
                assert await wait_for(lambda: _greater(counter, 0))
                await client.get_node(r.nodeid(f"{LAYER1}.Gain")).write_value(
                    ua.Variant([1.2] * 10, ua.VariantType.Double))
            await r.server.networks["digits"].command("set_age", 3600.0)
            return r.scan().runtime.state_dict()

    async def second():
        async with rig(tmp_path, compensator_config=FAST) as r:
            return r.server.networks["digits"].restored_scan, r.scan().runtime

    saved = run(first)
    restored_scan, runtime = run(second)
    assert restored_scan is not None and restored_scan >= saved["scan"]
    # the counter continues after the block reserved before the stop, never at or below what was published
    assert runtime.commit_counter == 1 + COUNTER_BLOCK > saved["commit_counter"]
    assert runtime.net.age_s >= 3600.0
    good = runtime.compensator.layers[1].last_good()[0]
    assert np.allclose(good, 1.2)


def test_a_store_of_another_network_stops_the_start_and_is_kept(tmp_path, linear_net):
    async def first():
        async with rig(tmp_path, compensator_config=FAST):
            pass

    async def second():
        async with rig(tmp_path, network=linear_net, compensator_config=FAST):
            pass

    run(first)
    store = tmp_path / "state.sqlite"
    size = store.stat().st_size
    with pytest.raises(ValueError, match="cannot take"):
        run(second)
    assert store.stat().st_size >= size


def test_without_test_rig_mode_there_are_no_test_rig_methods(tmp_path):
    config = ServerConfig(config_dir=tmp_path, endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc-anna",
                          security={"policies": ["None"], "allow_anonymous": True})

    async def scenario():
        async with PlcAnnaServer(config, FAST), Client(config.endpoint, timeout=10) as client:
            idx = await client.get_namespace_index("urn:plc-anna:ua")
            compensator = client.get_node(ua.NodeId("Compensator", idx))
            methods = {(await m.read_browse_name()).Name for m in await compensator.get_methods()}
            assert methods == {"Calibrate", "Commit", "Rollback", "ResetReference"}
    run(scenario)


def test_sign_and_encrypt_with_users(tmp_path):
    client_uri = "urn:plc-anna:test-client"
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, client_uri, {}, [x509.UniformResourceIdentifier(client_uri)], [ExtendedKeyUsageOID.CLIENT_AUTH], days=30)
    server_dir = tmp_path / "server"
    (server_dir / "trusted").mkdir(parents=True)
    (server_dir / "trusted" / "client.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    cert_path, key_path = tmp_path / "client.der", tmp_path / "client.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    users = [{"name": name, "password_hash": hash_password(f"{name}-pw", n=16, r=1, p=1), "role": role}
             for name, role in (("vera", "viewer"), ("otto", "operator"))]
    config = ServerConfig(config_dir=server_dir, endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc-anna",
                          security={"policies": ["Basic256Sha256_SignAndEncrypt"], "users": users})

    async def client_as(user):
        client = Client(config.endpoint, timeout=10)
        client.application_uri = client_uri
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert_path), str(key_path),
                                  server_certificate=str(server_dir / OWN_DIR / CERT_FILE),
                                  mode=ua.MessageSecurityMode.SignAndEncrypt)
        client.set_user(user)
        client.set_password(f"{user}-pw")
        return client

    async def scenario():
        async with PlcAnnaServer(config, FAST) as server:
            idx = server.idx
            async with await client_as("vera") as client:
                assert len(await client.get_node(ua.NodeId(f"{LAYER1}.Gain", idx)).read_value()) == 10
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await client.get_node(ua.NodeId("Compensator", idx)).call_method(
                        ua.NodeId("Compensator.Commit", idx))
            async with await client_as("otto") as client:
                await client.get_node(ua.NodeId("Compensator", idx)).call_method(ua.NodeId("Compensator.Commit", idx))
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):  # operators do not write configuration
                    await client.get_node(ua.NodeId("Compensator.ScanPeriod", idx)).write_value(
                        ua.Variant(20.0, ua.VariantType.Double))
            # `plc-anna status --cert` takes the ApplicationUri from the certificate: any client's will do
            async with connect(config.endpoint, "vera", "vera-pw", str(cert_path), str(key_path)) as client:
                assert [row["layer"] for row in (await read_status(client))["layers"]] == ["Layer0", "Layer1"]
    run(scenario)


def test_the_pytest_fixture_rig_runs_on_its_own_thread(plc_anna_rig):
    async def read_columns(r):
        async with r.client(user=None) as client:
            return await client.get_node(r.nodeid(f"{LAYER1}.Columns")).read_value()

    assert plc_anna_rig.endpoint.startswith("opc.tcp://127.0.0.1:")
    assert plc_anna_rig.run(read_columns) == 10


def test_the_running_rig_reports_a_failed_start(tmp_path):
    (tmp_path / "state.sqlite").write_text("not a database")
    with pytest.raises(ValueError), RunningRig(directory=Path(tmp_path)):
        pass


def test_the_commit_counter_never_goes_back_across_kill_9(tmp_path):
    """`plc-anna serve` killed with SIGKILL while its correction ramps (the counter moves every scan, the
    state is saved at events only): the restarted server publishes a counter above every one seen before."""
    import os
    import signal

    config = tmp_path / "rig.toml"  # slow scans: the ramp lasts about a second, long enough to kill it midway
    config.write_text('scan_ms = 100\nsamples_per_scan = 128\nnetwork = "digits"\n')
    port = free_port()

    async def watch(endpoint, until):
        """Read the counter every 20 ms; the values seen, until ``until(values)`` holds."""
        seen = []
        async with Client(endpoint, timeout=10) as client:
            idx = await client.get_namespace_index("urn:plc-anna:ua")
            counter = client.get_node(ua.NodeId("ControllerLink.CommitCounter", idx))
            while not until(seen):
                value = await counter.read_value()
                if not seen or value != seen[-1]:
                    seen.append(value)
                await asyncio.sleep(0.02)
        return seen

    with serve_process(tmp_path / "server", "--config", str(config), port=port) as served:
        before = asyncio.run(asyncio.wait_for(watch(served.endpoint, lambda v: len(v) >= 3), 120))
        os.kill(served.pid, signal.SIGKILL)  # mid-ramp: the counter moved twice since the state was saved
        served.process.wait()
    assert before == sorted(before) and before[0] == 0
    with serve_process(tmp_path / "server", "--config", str(config), port=port) as served:
        after = asyncio.run(asyncio.wait_for(watch(served.endpoint, lambda v: len(v) >= 1), 60))
    assert after[0] > before[-1], (before, after)
