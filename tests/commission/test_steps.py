"""The commissioning steps against a simulated PLC over real OPC UA and Modbus TCP on loopback (no mocks)."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from plc_anna.device.network import network_from_arrays
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.drift.states import DriftState
from plc_anna.commission import (Check, browse, calibrate, commit_and_verify, discover, draft_tag_map,
                                     plan_commit, save_baseline, settings_for_url, tag_map_with_credentials,
                                     validate)
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.contract.tagmap import LayerTags, TagMap, tag_map_to_toml
from plc_anna.plc.transport import Unreachable, open_transport
from plc_anna.server.runtime import Runtime
from plc_anna.server.store import StateStore
from plc_anna.testing import free_port
from tests.commands.simplc import SMALL_CONFIG, running_plc



def by_role(layer: LayerTags) -> dict[str, tuple]:
    return {tag.role: (tag.address, tag.plc_type, tag.length) for tag in layer.tags()}


def with_tag(tag_map: TagMap, index: int, role: str, **changes) -> TagMap:
    """``tag_map`` with one tag of layer ``index`` changed."""
    layers = []
    for layer in tag_map.layers:
        if layer.index == index:
            layer = dataclasses.replace(layer, **{role: dataclasses.replace(getattr(layer, role), **changes)})
        layers.append(layer)
    return dataclasses.replace(tag_map, layers=tuple(layers))


def failed(checks: list[Check]) -> dict[str, str]:
    return {check.name: check.detail for check in checks if not check.ok}


# ---------------------------------------------------------------- discover, browse, draft
def test_discover_and_browse(opcua, modbus):
    found = asyncio.run(discover(opcua.endpoint, timeout_s=2.0))
    assert found["protocol"] == "opcua"
    assert [(e["security_policy"], e["security_mode"], e["user_tokens"]) for e in found["endpoints"]] == \
        [("None", "None", ["Anonymous"])]
    assert "no discovery" in asyncio.run(discover(modbus.endpoint))["note"]
    variables = asyncio.run(browse(settings_for_url(opcua.endpoint), pattern="gainset"))
    assert [v["browse_path"].rsplit("/", 2)[1:] for v in variables] == \
        [[f"GVL_PlcAnna_L{k}", "GainSet"] for k in range(3)]
    assert [(v["plc_type"], v["length"], v["writable"]) for v in variables] == \
        [("REAL", 32, True), ("REAL", 32, True), ("REAL", 4, True)]
    with pytest.raises(ValueError, match="Modbus has no browsing: give a tag map .*ladder_examples/openplc"):
        asyncio.run(browse(settings_for_url(modbus.endpoint)))
    with pytest.raises(Unreachable, match=f"127.0.0.1:{(port := free_port())}.*connection refused"):
        asyncio.run(discover(f"modbus://127.0.0.1:{port}", timeout_s=1.0))


def test_draft_equals_the_simulated_plcs_own_map(opcua):
    warnings: list[str] = []
    draft = asyncio.run(draft_tag_map(settings_for_url(opcua.endpoint), "thermocouple", on_warning=warnings.append))
    expected = opcua.plc.tag_map("opcua", opcua.endpoint)
    assert warnings == []
    assert draft.network == "thermocouple" and draft.plc.endpoint == opcua.endpoint
    assert [layer.index for layer in draft.layers] == [0, 1, 2]
    for got, want in zip(draft.layers, expected.layers, strict=True):
        assert by_role(got) == by_role(want)
        assert got.trace_length == want.trace_length == 64
    for role in ("age_s", "temperature_k"):
        got, want = getattr(draft.device, role), getattr(expected.device, role)
        assert (got.address, got.plc_type, got.length) == (want.address, want.plc_type, want.length)


@pytest.mark.parametrize("target", ["twincat", "s7-1500"])
def test_draft_finds_the_layers_of_other_plc_families(target):
    """TwinCAT's GVLs and S7's data blocks are drafted as CODESYS's GVLs are: the map equals the generated one."""
    from plc_anna.device.network import load_network
    from plc_anna.plccode import generate

    with running_plc("opcua", target=target) as sim:
        draft = asyncio.run(draft_tag_map(settings_for_url(sim.endpoint), "thermocouple"))
        generated = generate(load_network("thermocouple"), target, endpoint=sim.endpoint).tag_map
    for got, want in zip(draft.layers, generated.layers, strict=True):
        assert by_role(got) == by_role(want)
    assert draft.device.age_s.address == generated.device.age_s.address


def test_draft_names_a_layer_without_a_group_and_refuses_modbus(opcua, modbus):
    with pytest.raises(ValueError, match=r"layer 0 \(64 inputs -> 32 outputs\); layer 1 \(32 inputs -> 10 outputs\) "
                                         r"of 'digits'.*GVL_PlcAnna_L0 \(5 -> 32\)"):
        asyncio.run(draft_tag_map(settings_for_url(opcua.endpoint), "digits"))
    with pytest.raises(ValueError, match="Modbus has no browsing"):
        asyncio.run(draft_tag_map(settings_for_url(modbus.endpoint), "thermocouple"))


def test_draft_assigns_groups_of_one_shape_by_name_and_warns():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(50, 4))
    twins = network_from_arrays("twins", "regression", [rng.normal(size=(4, 4)) / 2] * 2, [np.zeros(4)] * 2,
                                ["tanh", "linear"], X=X, y=X)
    with running_plc("opcua", network=twins, trace_length=4, run_cycles=False) as sim:
        warnings: list[str] = []
        draft = asyncio.run(draft_tag_map(settings_for_url(sim.endpoint), twins, on_warning=warnings.append))
    assert [layer.gain_set.address.rsplit(".", 2)[1] for layer in draft.layers] == ["GVL_PlcAnna_L0", "GVL_PlcAnna_L1"]
    assert len(warnings) == 1 and "assigned by name order: layer 0 <- GVL_PlcAnna_L0, layer 1 <- GVL_PlcAnna_L1" \
        in warnings[0]
    assert draft.network == "twins"


# ---------------------------------------------------------------- validate
def test_validate_passes_on_the_simulated_plcs_map(opcua, modbus):
    for sim in (opcua, modbus):
        checks = asyncio.run(validate(sim.server.tag_map(), "thermocouple"))
        assert failed(checks) == {}
        assert [check.name for check in checks] == [
            "network", "connect", "layer 0 tags", "layer 1 tags", "layer 2 tags", "device tags",
            "layer 0 values", "layer 1 values", "layer 2 values", "PLC running"]


@pytest.mark.parametrize("role,changes,check,words", [
    ("inputs", {"address": "ns=4;s=|var|plc-anna Simulated PLC.Application.GVL_PlcAnna_L1.Inputs"}, "layer 0 tags",
     "the PLC holds an array of 32, the tag map says an array of 5"),
    ("status", {"address": "ns=4;s=|var|plc-anna Simulated PLC.Application.GVL_PlcAnna_L0.Statuz"}, "layer 0 tags",
     "no such node"),
    ("gain_set", {"address": "ns=4;s=|var|plc-anna Simulated PLC.Application.GVL_PlcAnna_L0.AppliedGain"},
     "layer 0 tags", "plc-anna writes this tag, but the PLC gives the anonymous session no write access"),
])
def test_validate_names_the_problem(opcua, role, changes, check, words):
    checks = asyncio.run(validate(with_tag(opcua.server.tag_map(), 0, role, **changes), "thermocouple"))
    problems = failed(checks)
    assert list(problems) == [check]
    assert words in problems[check] and role in problems[check]


def test_validate_needs_every_layer_of_an_observed_network(opcua):
    tag_map = opcua.server.tag_map()
    partial = dataclasses.replace(tag_map, layers=tag_map.layers[2:])
    problems = failed(asyncio.run(validate(partial, "thermocouple")))
    assert list(problems) == ["network"] and "layer(s) 0, 1 of 'thermocouple' are not mapped" in problems["network"]
    assert failed(asyncio.run(validate(partial, "thermocouple", observed=False))) == {}


def test_validate_sees_a_plc_that_does_not_cycle():
    with running_plc("modbus", run_cycles=False) as sim:
        problems = failed(asyncio.run(validate(sim.server.tag_map(), "thermocouple", heartbeat_wait_s=0.3)))
    assert list(problems) == ["PLC running"]
    assert "PlcHeartbeat stays at 0" in problems["PLC running"] and "does not run" in problems["PLC running"]


# ---------------------------------------------------------------- calibrate, baseline, commit
def test_calibrate_save_baseline_and_serve_restores_it(opcua, tmp_path):
    from plc_anna.server.app import PlcAnnaServer
    from plc_anna.server.config import ServerConfig

    seen: list[tuple[int, int]] = []
    tag_map = opcua.server.tag_map()
    runtime, info = asyncio.run(calibrate(tag_map, "thermocouple", SMALL_CONFIG, timeout_s=30,
                                          progress=lambda done, needed: seen.append((done, needed))))
    assert all(state != DriftState.CALIBRATING for state in runtime.compensator.states)
    assert info["samples"] >= 256 and info["states"] == [state.name for state in runtime.compensator.states]
    assert seen[-1] == (256, 256) and all(needed == 256 for _, needed in seen)
    assert [event["kind"] for event in info["events"]].count("calibrated") == 3

    store = tmp_path / "state.sqlite"
    saved = save_baseline(runtime, store)
    assert saved == {"store": str(store), "scan": runtime.scan, "replaced": None}

    # A store of another network (or of the simulated backend) is left alone unless forced.
    other_store = tmp_path / "other.sqlite"
    with StateStore(other_store) as other:
        other.save_state(Runtime(SimulatedNetwork("digits", "pcm", seed=0)).state_dict(), 5)
    with pytest.raises(ValueError, match=f"{other_store} holds the saved state of another network.*left unchanged"):
        save_baseline(runtime, other_store)
    with StateStore(other_store) as other:
        assert other.load_state_entry().scan == 5
    forced = save_baseline(runtime, other_store, force=True)
    assert forced["replaced"]["scan"] == 5 and forced["replaced"]["other_network"] is True
    assert save_baseline(runtime, other_store)["replaced"]["other_network"] is False  # now it holds this network's

    map_path = tmp_path / "plc.toml"
    map_path.write_text(tag_map_to_toml(tag_map))
    config = ServerConfig(config_dir=tmp_path, endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc-anna",
                          network="thermocouple", device_backend="plc", tag_map=str(map_path),
                          state_store=store, security={"policies": ["None"], "allow_anonymous": True})

    async def serve() -> tuple[int | None, list]:
        async with PlcAnnaServer(config, SMALL_CONFIG) as server:
            served = server.networks["thermocouple"]
            return served.restored_scan, [layer.state for layer in served.latest.layers]

    restored_scan, states = asyncio.run(serve())
    assert restored_scan == runtime.scan
    assert DriftState.CALIBRATING not in states


@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
def test_calibrate_plan_commit_and_verify(protocol, request):
    sim = request.getfixturevalue(protocol)
    tag_map = sim.server.tag_map()
    runtime, _ = asyncio.run(calibrate(tag_map, "thermocouple", SMALL_CONFIG, timeout_s=30))
    before = [sim.tags(k)["AcceptedCommit"] for k in range(3)]

    async def plan() -> list[dict]:
        transport = open_transport(tag_map.plc)
        async with transport:
            return await plan_commit(tag_map, runtime, transport)

    planned = asyncio.run(plan())
    for k, entry in enumerate(planned):
        gain, offset = runtime.compensator.correction(k)
        assert entry["gain"] == gain.tolist() and entry["offset"] == offset.tolist()
        assert entry["accepted_commit"] == before[k] and entry["counter"] == before[k] + 1
        assert entry["plc_gain_set"] == sim.tags(k)["GainSet"].tolist()
    assert sim.tags(0)["AcceptedCommit"] == before[0]          # the plan writes nothing
    # Layer 2 asked for 1.05: three sets under the link's 0.02 slew limit, from where the PLC stands.
    start = np.asarray(sim.tags(2)["AppliedGain"], float)
    planned[2]["gain"] = (start + 0.05).tolist()
    checks = asyncio.run(commit_and_verify(tag_map, planned))
    assert failed(checks) == {}
    assert [check.name for check in checks] == [f"layer {k} {step}" for step in ("commit", "verify") for k in range(3)]
    after = [sim.tags(k) for k in range(3)]
    assert [tags["AcceptedCommit"] for tags in after] == [before[0] + 1, before[1] + 1, before[2] + 3]
    assert np.array_equal(after[2]["GainSet"], np.float32(start + 0.05))
    assert "3 set(s) written and accepted" in checks[2].detail

    # Another client committed since the plan: nothing is written.
    planned[0]["accepted_commit"] -= 1
    checks = asyncio.run(commit_and_verify(tag_map, planned))
    assert [(check.name, check.ok) for check in checks] == [("commit", False)]
    assert "Nothing was written" in checks[0].detail
    assert sim.tags(0)["AcceptedCommit"] == after[0]["AcceptedCommit"]


def test_calibrate_times_out_without_samples(tmp_path):
    with (running_plc("modbus", run_cycles=False) as sim,
          pytest.raises(TimeoutError, match="after 0.5 s with no samples: is the PLC program running")):
        asyncio.run(calibrate(sim.server.tag_map(), "thermocouple", SMALL_CONFIG, timeout_s=0.5))


def test_credentials_given_on_the_command_line():
    with pytest.raises(ValueError, match="Modbus TCP has no login"):
        settings_for_url("modbus://127.0.0.1:502", user="x")
    plc = SimulatedPlc(SimulatedNetwork("thermocouple", "pcm", seed=0))
    tag_map = plc.tag_map("opcua", "opc.tcp://127.0.0.1:4840", user="plc-anna")
    given = tag_map_with_credentials(tag_map, password="s3cret", timeout_s=5.0)
    assert given.plc.password() == "s3cret" and given.plc.timeout_s == 5.0 and given.plc.user == "plc-anna"
    assert "s3cret" not in repr(given) and "s3cret" not in tag_map_to_toml(given)
    assert tag_map_with_credentials(given, user="other").plc.password() == "s3cret"
