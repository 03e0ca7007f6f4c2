"""``plc-anna commission`` end to end: the command line against a simulated PLC over real OPC UA and Modbus TCP."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from plc_anna.commands.commission import commission
from plc_anna.contract.tagmap import load_tag_map, tag_map_to_toml
from plc_anna.server.store import StateStore
from plc_anna.testing import free_port
from tests.commands.simplc import SMALL_CONFIG, running_plc

FAST = ["--calibration-samples", str(SMALL_CONFIG.calibration_samples), "--calibration-timeout", "30"]



@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write_map(sim, path: Path) -> Path:
    path.write_text(tag_map_to_toml(sim.server.tag_map()))
    return path


def accepted(sim) -> list[int]:
    return [sim.tags(k)["AcceptedCommit"] for k in range(sim.plc.n_layers)]


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
def test_run_commissions_end_to_end(protocol, request, runner, tmp_path):
    sim = request.getfixturevalue(protocol)
    tag_map = write_map(sim, tmp_path / "plc.toml")
    if protocol == "opcua":
        where = ["--store", str(tmp_path / "state.sqlite")]
        store = tmp_path / "state.sqlite"
    else:  # the server configuration 'serve' will run with: its state_store gets the baseline
        config = tmp_path / "server.toml"
        config.write_text('network = "thermocouple"\ndevice_backend = "plc"\ntag_map = "plc.toml"\n'
                          'state_store = "plc-anna.sqlite"\n')
        where, store = ["--config", str(config)], tmp_path / "plc-anna.sqlite"
    before = accepted(sim)
    result = runner.invoke(commission, ["run", str(tag_map), *where, *FAST, "--yes", "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # nothing but the JSON document on stdout
    assert doc["ok"] is True and doc["error"] is None and doc["network"] == "thermocouple"
    assert list(doc["steps"]) == ["validate", "calibrate", "baseline", "plan", "commit"]
    assert all(step["ok"] for step in doc["steps"].values())
    assert all(check["ok"] for step in ("validate", "commit") for check in doc["steps"][step]["checks"])
    assert [entry["counter"] for entry in doc["steps"]["plan"]["layers"]] == [count + 1 for count in before]
    assert accepted(sim) == [count + 1 for count in before]
    assert doc["store"] == str(store) and doc["steps"]["baseline"]["scan"] == doc["steps"]["calibrate"]["scans"]
    with StateStore(store) as saved:
        assert saved.load_state_entry().scan == doc["steps"]["calibrate"]["scans"]


def test_dry_run_writes_no_set_and_its_calibration_is_what_the_run_commits(modbus, runner, tmp_path):
    tag_map = write_map(modbus, tmp_path / "plc.toml")
    before = accepted(modbus)
    result = runner.invoke(commission, ["run", str(tag_map), "--dry-run", *FAST, "--json", str(tmp_path / "dry.json")])
    assert result.exit_code == 0, result.output
    assert "first commit (dry run)" in result.stdout and "dry run: no baseline saved, no set written" in result.stdout
    assert accepted(modbus) == before
    kept = tmp_path / "plc.calibration.sqlite"
    assert sorted(tmp_path.iterdir()) == sorted([tag_map, tmp_path / "dry.json", kept])   # no baseline, no store
    dry = json.loads((tmp_path / "dry.json").read_text())["steps"]
    assert dry["calibrate"]["kept"] == str(kept) and dry["calibrate"]["reused"] is None

    store = tmp_path / "state.sqlite"
    result = runner.invoke(commission, ["run", str(tag_map), "--store", str(store), *FAST, "--yes", "--json", "-"])
    assert result.exit_code == 0, result.output
    steps = json.loads(result.stdout)["steps"]
    assert steps["calibrate"]["reused"] == str(kept)                # no second calibration
    assert steps["calibrate"]["scans"] == dry["calibrate"]["scans"] and steps["baseline"]["scan"] == dry["calibrate"]["scans"]
    assert [layer["gain"] for layer in steps["plan"]["layers"]] == [layer["gain"] for layer in dry["plan"]["layers"]]
    assert accepted(modbus) == [count + 1 for count in before]

    result = runner.invoke(commission, ["run", str(tag_map), "--store", str(store), *FAST, "--yes", "--recalibrate",
                                        "--force", "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["steps"]["calibrate"]["reused"] is None


def test_a_kept_calibration_of_another_tag_map_is_not_reused(modbus, runner, tmp_path):
    tag_map = write_map(modbus, tmp_path / "plc.toml")
    assert runner.invoke(commission, ["run", str(tag_map), "--dry-run", *FAST]).exit_code == 0
    tag_map.write_text(tag_map.read_text().replace("min_commit_interval_s = 0.1", "min_commit_interval_s = 0.2"))
    result = runner.invoke(commission, ["run", str(tag_map), "--dry-run", *FAST])   # a dry run never reuses
    assert result.exit_code == 0 and "reusing" not in result.stdout
    tag_map.write_text(tag_map.read_text().replace("min_commit_interval_s = 0.2", "min_commit_interval_s = 0.3"))
    result = runner.invoke(commission, ["run", str(tag_map), "--store", str(tmp_path / "s.sqlite"), *FAST, "--yes"])
    assert result.exit_code == 0, result.output
    assert "is not reused: the tag map changed since" in result.stdout and "calibrated:" in result.stdout


def test_a_declined_commit_writes_no_set(modbus, runner, tmp_path):
    tag_map = write_map(modbus, tmp_path / "plc.toml")
    before = accepted(modbus)
    result = runner.invoke(commission, ["run", str(tag_map), "--store", str(tmp_path / "s.sqlite"), *FAST,
                                        "--json", str(tmp_path / "run.json")], input="n\n")
    assert result.exit_code == 1
    assert "Write these sets to the PLC? [y/N]" in result.stderr and "not committed" in result.stdout
    assert accepted(modbus) == before
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["ok"] is False and doc["steps"]["commit"]["declined"] is True and doc["steps"]["baseline"]["ok"]


def test_discover_and_browse(opcua, runner):
    result = runner.invoke(commission, ["discover", opcua.endpoint])
    assert result.exit_code == 0, result.output
    assert "Anonymous" in result.stdout and "None" in result.stdout
    result = runner.invoke(commission, ["browse", opcua.endpoint, "--search", "GainSet", "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [v["browse_path"].rsplit("/", 2)[1] for v in doc["variables"]] == [f"GVL_PlcAnna_L{k}" for k in range(3)]
    assert all(v["browse_path"].endswith("/GainSet") and v["writable"] for v in doc["variables"])


def test_a_drafted_map_validates(opcua, runner, tmp_path):
    out = tmp_path / "draft.toml"
    result = runner.invoke(commission, ["draft", opcua.endpoint, "--net", "thermocouple", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_tag_map(out).network == "thermocouple"
    plc_keys = tomllib.loads(out.read_text())["plc"]
    assert "word_order" not in plc_keys and "unit_id" not in plc_keys       # no Modbus keys in an OPC UA map
    result = runner.invoke(commission, ["validate", str(out), "--json", "-"])
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)["checks"]
    assert checks and all(check["ok"] for check in checks)
    result = runner.invoke(commission, ["draft", opcua.endpoint, "--net", "thermocouple", "--out", str(out)])
    assert result.exit_code == 1 and "exists: give --force" in result.stderr


def test_a_failed_check_exits_1_and_names_it(opcua, runner, tmp_path):
    text = tag_map_to_toml(opcua.server.tag_map()).replace("GVL_PlcAnna_L2.GainSet", "GVL_PlcAnna_L2.AppliedGain")
    (tmp_path / "plc.toml").write_text(text)
    result = runner.invoke(commission, ["validate", str(tmp_path / "plc.toml")])
    assert result.exit_code == 1
    assert "FAILED" in result.stdout and "no write access" in result.stdout.replace("\n", " ").replace("│", "")


def test_unreachable_endpoint_is_one_line(runner, tmp_path):
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    for args in (["discover", endpoint], ["browse", endpoint]):
        result = runner.invoke(commission, [*args, "--timeout", "1"])
        assert result.exit_code == 1
        assert error_lines(result) == [f"Error: {endpoint}: cannot connect: connection refused"]
    modbus_map = tmp_path / "plc.toml"
    modbus_map.write_text(f'[plc]\nprotocol = "modbus"\nendpoint = "modbus://127.0.0.1:{free_port()}"\n[[layer]]\n'
                          "index = 0\n" + "".join(f"{role} = {{ address = {4 * k}, type = \"UDINT\" }}\n"
                                                  for k, role in enumerate(("commit_counter", "heartbeat",
                                                                            "accepted_commit", "plc_heartbeat",
                                                                            "status", "fault")))
                          + 'inputs = { address = 100, type = "REAL", length = 2 }\n'
                          + "".join(f'{role} = {{ address = {200 + 10 * k}, type = "REAL", length = 3 }}\n'
                                    for k, role in enumerate(("raw_outputs", "gain_set", "offset_set"))))
    result = runner.invoke(commission, ["validate", str(modbus_map), "--net", "thermocouple", "--json", "-"])
    assert result.exit_code == 1
    assert len(error_lines(result)) == 1 and "cannot connect: connection refused" in result.stderr
    assert json.loads(result.stdout)["error"] == error_lines(result)[0].removeprefix("Error: ")


def test_a_wrong_password_is_refused(runner, tmp_path):
    with running_plc("opcua", user="engineer", password="right", run_cycles=False) as sim:
        result = runner.invoke(commission, ["browse", sim.endpoint, "--user", "engineer", "--password", "wrong"])
        assert result.exit_code == 1
        assert len(error_lines(result)) == 1 and "the PLC refused user 'engineer'" in result.stderr
        result = runner.invoke(commission, ["browse", sim.endpoint, "--user", "engineer", "--search", "Fault",
                                            "--json", "-"], input="right\n")
        assert result.exit_code == 0, result.output
        assert "Password of engineer" in result.stderr and "right" not in result.output
        assert len(json.loads(result.stdout)["variables"]) == 3
        tag_map = write_map(sim, tmp_path / "plc.toml")
        result = runner.invoke(commission, ["validate", str(tag_map), "--password", "wrong"])
        assert result.exit_code == 1 and "the PLC refused user 'engineer'" in result.stderr
        # The map names PLC_ANNA_PLC_PASSWORD, which is not set here.
        result = runner.invoke(commission, ["validate", str(tag_map)], env={"PLC_ANNA_PLC_PASSWORD": None})
        assert result.exit_code == 1 and "password_env names 'PLC_ANNA_PLC_PASSWORD', which is not set" in \
            result.stderr


def test_a_malformed_map_names_file_and_key(runner, tmp_path):
    path = tmp_path / "plc.toml"
    path.write_text('[plc]\nprotocol = "opcua"\nendpoint = "opc.tcp://127.0.0.1:4840"\ntimeout = 3\n')
    result = runner.invoke(commission, ["validate", str(path), "--net", "thermocouple"])
    assert result.exit_code == 1
    assert error_lines(result) == [(f"Error: {path}: unknown key 'timeout' in plc; valid keys: protocol, endpoint, "
                                    "timeout_s, user, password_env, security_policy, security_mode, certificate, "
                                    "private_key, server_certificate, unit_id, word_order")]


def test_usage_errors_and_help(runner, tmp_path):
    path = tmp_path / "plc.toml"
    path.write_text("")
    result = runner.invoke(commission, ["run", str(path)])
    assert result.exit_code == 2 and "give --config SERVER_TOML or --store FILE" in result.stderr
    result = runner.invoke(commission, ["--help"])
    assert result.exit_code == 0
    for line in ("discover  What the PLC offers", "browse    The PLC's variables", "draft     Draft a tag map",
                 "validate  Check a tag map", "run       Validate, calibrate", "commission run plc.toml --config"):
        assert line in result.stdout
    for command in ("discover", "browse", "draft", "validate", "run"):
        result = runner.invoke(commission, [command, "--help"])
        assert result.exit_code == 0 and "--json FILE" in result.stdout
