"""The command line, run in-process with click's runner and once as the installed script."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from plc_anna.device.network import save_network


@pytest.fixture
def runner():
    return CliRunner()


@pytest.mark.parametrize("net,metric", [("digits", "accuracy"), ("thermocouple", "rmse")])
@pytest.mark.parametrize("device", ["pcm", "hermes"])
def test_simulate_shipped_networks(runner, tmp_path, net, metric, device):
    out = tmp_path / "report.json"
    result = runner.invoke(main, ["simulate", "--net", net, "--device", device, "--ages", "1h,1d,30d,1y,10y",
                                  "--seed", "3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "10y" in result.output
    report = json.loads(out.read_text())
    assert [row["age_s"] for row in report["ages"]] == [3600.0, 86400.0, 2592000.0, 31557600.0, 315576000.0]
    for row in report["ages"]:
        assert row["metric"]["name"] == metric and np.isfinite(row["metric"]["value"])
        assert len(row["layers"]) == (2 if net == "digits" else 3)
        assert all(0 < layer["conductance_ratio_median"] < 1 for layer in row["layers"])
    # drift hurts the uncorrected network: worse at 10 years than at 1 hour
    first, last = report["ages"][0]["metric"]["value"], report["ages"][-1]["metric"]["value"]
    assert (last < first) if metric == "accuracy" else (last > first)


def test_simulate_user_files(runner, tmp_path, two_layer_net):
    net_path = tmp_path / "mine.npz"
    save_network(two_layer_net, net_path)
    device_path = tmp_path / "device.toml"
    device_path.write_text('preset = "ideal"\ndrift_scale = 1.0\nnu_mean = 0.05\nnu_std = 0\n')
    out = tmp_path / "r.json"
    result = runner.invoke(main, ["simulate", "--net", str(net_path), "--device", str(device_path),
                                  "--ages", "180s", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    ratio = report["ages"][0]["layers"][0]["conductance_ratio_median"]
    assert ratio == pytest.approx(10 ** -0.05, rel=1e-12)  # ((180 + 20)/20)^-0.05
    assert report["device_params"]["nu_mean"] == 0.05


@pytest.mark.parametrize("args,message", [
    (["--ages", "1week"], "cannot read age '1week'"),
    (["--device", "rram"], "neither a preset"),
    (["--net", "nonexistent.npz"], "neither a shipped network"),
    (["--seed", "-1"], "-1 is not in the range"),
    (["--json", "/nonexistent/dir/r.json"], "does not exist"),
])
def test_simulate_errors(runner, args, message):
    result = runner.invoke(main, ["simulate", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_device_file_is_named(runner, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("nu_std = -1\n")
    result = runner.invoke(main, ["simulate", "--device", str(path), "--ages", "1h"])
    assert result.exit_code == 1
    assert "'nu_std' must be >= 0" in result.output and str(path) in result.output


def test_offline_demo_runs(runner):
    result = runner.invoke(main, ["demo", "--offline"])
    assert result.exit_code == 0, result.output
    assert "digits" in result.output and "thermocouple" in result.output and "10y" in result.output


def test_the_end_to_end_demo_compensates_through_the_plc(runner, tmp_path):
    """The README's first command, short: network, simulated PLC and server, over real OPC UA."""
    report = tmp_path / "demo.json"
    result = runner.invoke(main, ["demo", "--duration", "10", "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "10y" in result.output and "uncorrected" in result.output
    summary = json.loads(report.read_text())
    final = summary["final"]
    assert final["age"] == "10y" and final["connected"]
    assert final["rmse_corrected"] < 0.6 * final["rmse_uncorrected"]   # the PLC's correction works
    assert summary["link"]["sets_accepted"] > 3 and summary["link"]["reconnects"] == 0
    # The PLC ran in its own process; the summary states the heartbeat target and what was measured.
    assert summary["link"]["plc_cycles"] > 100
    (heartbeats,) = summary["targets"]
    assert heartbeats["limit"] == 0 and heartbeats["measured"] == summary["link"]["missed_heartbeats"]
    assert heartbeats["met"] == (heartbeats["measured"] == 0) and "(target 0: " in result.output
    assert [row["checkpoint"] for row in summary["checkpoints"]] == ["1h", "1d", "30d", "1y", "10y"]


def test_installed_console_script():
    exe = shutil.which("plc-anna")
    if exe is None:
        pytest.fail("the plc-anna console script is not installed; run pip install '.[test]' first")
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert "plc-anna" in result.stdout


def test_hash_password_prompts_and_prints_a_verifiable_hash(runner):
    from plc_anna.server.passwords import verify_password

    result = runner.invoke(main, ["hash-password"], input="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.output
    stored = result.output.strip().splitlines()[-1]
    assert verify_password("s3cret", stored) and "s3cret" not in stored
    mismatch = runner.invoke(main, ["hash-password"], input="a\nb\na\na\n")
    assert "do not match" in mismatch.output.lower() or mismatch.exit_code != 0


def test_serve_runs_until_sigterm_and_saves_the_state(tmp_path):
    import signal
    import sqlite3
    import time

    from plc_anna.testing import free_port

    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/plc-anna"
    (tmp_path / "plc-anna.toml").write_text(
        f'config_dir = "."\nendpoint = "{endpoint}"\n[security]\npolicies = ["None"]\nallow_anonymous = true\n')
    process = subprocess.Popen([shutil.which("plc-anna"), "serve", "--config", str(tmp_path / "plc-anna.toml"),
                                "--scan-ms", "20"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = subprocess.run([shutil.which("plc-anna"), "status", endpoint, "--once"], capture_output=True,
                                    text=True)
            if status.returncode == 0:
                break
            time.sleep(0.5)
        assert status.returncode == 0, status.stderr
        assert "Layer0" in status.stdout and "Layer1" in status.stdout and "overruns" in status.stdout
        assert "PLC link: none configured" in status.stdout
        as_json = subprocess.run([shutil.which("plc-anna"), "status", endpoint, "--json"], capture_output=True,
                                 text=True, check=True)
        doc = json.loads(as_json.stdout)  # one document, nothing else on stdout
        assert doc["endpoint"] == endpoint and [row["layer"] for row in doc["layers"]] == ["Layer0", "Layer1"]
        assert {"state", "state_reason", "coverage", "distance", "samples"} <= set(doc["layers"][0])
        assert doc["link"]["protocol"] == "none" and doc["link"]["connected"] is False
        assert doc["diagnostics"]["ScanPeriod"] == 20.0
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert "stopped; state saved" in output
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM state").fetchone()[0] >= 1


def test_serve_shows_and_saves_every_network_of_a_configuration_of_several(tmp_path):
    import signal
    import sqlite3
    import time

    from plc_anna.testing import free_port

    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/plc-anna"
    (tmp_path / "plc-anna.toml").write_text(
        f'endpoint = "{endpoint}"\n[security]\npolicies = ["None"]\nallow_anonymous = true\n'
        '[[networks]]\nname = "kiln"\nnetwork = "thermocouple"\nscan_ms = 20\n'
        '[[networks]]\nname = "sorter"\nnetwork = "digits"\nscan_ms = 50\n')
    process = subprocess.Popen([shutil.which("plc-anna"), "serve", "--config", str(tmp_path / "plc-anna.toml")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = subprocess.run([shutil.which("plc-anna"), "status", endpoint, "--once"], capture_output=True,
                                    text=True, env={**os.environ, "COLUMNS": "200"})
            if status.returncode == 0:
                break
            time.sleep(0.5)
        assert status.returncode == 0, status.stderr
        assert f"{endpoint} kiln" in status.stdout and f"{endpoint} sorter" in status.stdout
        assert "Layer2" in status.stdout and "scan 50 ms" in status.stdout
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert "kiln: thermocouple, scan 20 ms" in output and "sorter: digits, scan 50 ms" in output
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        assert [row[0] for row in db.execute("SELECT DISTINCT network FROM state ORDER BY network")] == \
            ["kiln", "sorter"]


def test_serve_and_status_errors(runner, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('config_dir = "."\nscan_ms = 1\n')
    result = runner.invoke(main, ["serve", "--config", str(bad)])
    assert result.exit_code == 1 and "scan_ms" in result.output and str(bad) in result.output
    # a bad [[networks]] entry names the network and the key, and nothing starts (no store is created)
    (tmp_path / "many").mkdir()
    bad.write_text('config_dir = "many"\n[[networks]]\nname = "kiln"\n[[networks]]\nname = "sorter"\n'
                   'samples_per_scan = 1\n')
    result = runner.invoke(main, ["serve", "--config", str(bad)])
    assert result.exit_code == 1 and "network 'sorter'" in result.output and "'samples_per_scan'" in result.output
    assert not (tmp_path / "many" / "state.sqlite").exists()
    from plc_anna.testing import free_port

    result = runner.invoke(main, ["status", f"opc.tcp://127.0.0.1:{free_port()}", "--once"])
    assert result.exit_code == 1 and "cannot reach" in result.output
    import socket

    with socket.socket() as busy:  # the port is taken: the same line and exit code as plc-sim's
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        endpoint = f"opc.tcp://127.0.0.1:{busy.getsockname()[1]}/plc-anna"
        result = runner.invoke(main, ["serve", "--config-dir", str(tmp_path / "srv"), "--endpoint", endpoint])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == f"Error: cannot listen on {endpoint}: address already in use"


def test_logging_options(runner, tmp_path):
    """--log-file, --log-level, --quiet, and UTC timestamps in every line."""
    import logging
    import re

    log = tmp_path / "plc-anna.log"
    config = tmp_path / "broken.toml"
    config.write_text("scan_ms = 1\n")
    root = logging.getLogger()
    handlers, levels = list(root.handlers), {name: logging.getLogger(name).level for name in ("plc_anna", "asyncua")}
    try:
        result = runner.invoke(main, ["--log-file", str(log), "--log-level", "info", "serve", "--config",
                                      str(config)])
        assert result.exit_code == 1
        logging.getLogger("plc_anna.test").info("link lost")
        for handler in root.handlers:
            handler.flush()
        line = log.read_text().splitlines()[-1]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO plc_anna\.test: link lost", line), line
        assert logging.getLogger("plc_anna").level == logging.INFO
        assert runner.invoke(main, ["--quiet", "hash-password"], input="a\na\n").exit_code == 0
        assert logging.getLogger("plc_anna").level == logging.ERROR
    finally:
        for handler in set(root.handlers) - set(handlers):
            root.removeHandler(handler)
            handler.close()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    from plc_anna.testing import free_port

    quiet = runner.invoke(main, ["--quiet", "plc-sim", "--endpoint", f"opc.tcp://127.0.0.1:{free_port()}",
                                 "--duration", "0.1"])
    assert quiet.exit_code == 0 and quiet.output == ""  # no start-up lines
    result = runner.invoke(main, ["--quiet", "-v", "hash-password"])
    assert result.exit_code == 2 and "--quiet does not go with -v" in result.output
    result = runner.invoke(main, ["--log-file", str(tmp_path / "no" / "such" / "dir.log"), "hash-password"])
    assert result.exit_code == 2 and "cannot open the log file" in result.output


def test_a_killed_server_restarts_from_its_last_saved_state(tmp_path):
    """kill -9 while scanning: the store stays readable and the next start restores from it."""
    import asyncio
    import signal
    import sqlite3
    import time

    from plc_anna.server.store import StateStore
    from plc_anna.testing import free_port, rig

    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/plc-anna"
    (tmp_path / "plc-anna.toml").write_text(
        f'config_dir = "."\nendpoint = "{endpoint}"\nsamples_per_scan = 256\nhistory_period_s = 0.05\n'
        '[security]\npolicies = ["None"]\nallow_anonymous = true\n')
    process = subprocess.Popen([shutil.which("plc-anna"), "serve", "--config", str(tmp_path / "plc-anna.toml"),
                                "--scan-ms", "10"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, saved = time.monotonic() + 60, 0
        while time.monotonic() < deadline and saved < 2:  # the first save is the calibration's events
            time.sleep(0.3)
            if (tmp_path / "state.sqlite").exists():
                # read-only, and the file exists a moment before the server's schema transaction commits
                db = sqlite3.connect(f"file:{tmp_path / 'state.sqlite'}?mode=ro", uri=True)
                try:
                    saved = db.execute("SELECT COUNT(*) FROM state").fetchone()[0]
                except sqlite3.OperationalError:  # no schema yet
                    saved = 0
                finally:
                    db.close()
        assert saved >= 2
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    with StateStore(tmp_path / "state.sqlite") as store:
        entry = store.load_state_entry()
        assert entry is not None and entry.scan > 0
        assert store.read_history("Layer1.Gain")

    async def restart():
        async with rig(tmp_path) as r:
            return r.server.networks["digits"].restored_scan

    assert asyncio.run(asyncio.wait_for(restart(), 60)) == entry.scan


def test_the_demo_takes_one_final_age(runner):
    result = runner.invoke(main, ["demo", "--final-age", "1y,2y"])
    assert result.exit_code == 2 and "give one age, e.g. 10y, got '1y,2y'" in result.output
