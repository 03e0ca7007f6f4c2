"""``plc-anna fleet`` and ``plc-anna fleet history`` against a real broker and an edge node process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from click.testing import CliRunner

from cli import main
from plc_anna.sparkplug.broker import LocalBroker
from plc_anna.testing import free_port


def test_fleet_once_sees_the_nodes_and_history_reads_the_store(tmp_path):
    broker = LocalBroker(tmp_path / "broker")
    asyncio.run(broker.start())
    settings = {"broker": broker.url, "group": "plant", "nodes": ["press1", "press2"], "networks": 2, "columns": 4,
                "layers": 1, "publish_ms": 200, "keepalive_s": 5, "directory": str(tmp_path / "nodes")}
    (tmp_path / "nodes.json").write_text(json.dumps(settings))
    nodes = subprocess.Popen([sys.executable, "-m", "plc_anna.bench.fleet_nodes", str(tmp_path / "nodes.json")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert nodes.stdout.readline().strip() == "ready"
        runner = CliRunner()
        store, report = tmp_path / "fleet.sqlite", tmp_path / "fleet.json"
        result = runner.invoke(main, ["fleet", "--broker", broker.url, "--group", "plant", "--store", str(store),
                                      "--once", "--json", str(report)])
        assert result.exit_code == 0, result.output
        assert "press1" in result.output and "net1" in result.output
        data = json.loads(report.read_text())
        assert sorted((row["node"], row["network"]) for row in data["networks"]) == [
            ("press1", "net0"), ("press1", "net1"), ("press2", "net0"), ("press2", "net1")]
        assert all(row["online"] and row["state"] == "Nominal" for row in data["networks"])
        # joined late: the host asked the nodes to rebirth and got every metric from the births
        assert data["rebirths_requested"] >= 2 and data["seq_gaps"] == 0
        series = tmp_path / "series.json"
        result = runner.invoke(main, ["fleet", "history", "--store", str(store), "--json", str(series)])
        assert result.exit_code == 0, result.output
        names = {row["metric"] for row in json.loads(series.read_text())["rows"]}
        assert {"Layer0/Gain", "Scan/Count", "Layer0/StateReason"} <= names and "Scan/Count" in result.output
        out = tmp_path / "history.json"
        result = runner.invoke(main, ["fleet", "history", "--store", str(store), "--node", "press2", "--network",
                                      "net1", "--metric", "Scan/Count", "--json", str(out)])
        assert result.exit_code == 0, result.output
        rows = json.loads(out.read_text())["rows"]
        assert rows and all(r["node"] == "press2" and r["device"] == "net1" for r in rows)
        scans = [r["value"] for r in rows]
        assert scans == sorted(scans)
    finally:
        nodes.terminate()
        nodes.wait(20)
        nodes.stdout.close()
        asyncio.run(broker.stop())


def test_fleet_without_a_broker_ends_with_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["fleet", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--store",
                                  str(tmp_path / "f.sqlite"), "--once"])
    assert result.exit_code == 1
    assert "cannot reach the MQTT broker" in result.output
    result = runner.invoke(main, ["fleet", "--once"])
    assert result.exit_code == 2 and "--broker is required" in result.output
    result = runner.invoke(main, ["fleet", "history", "--store", str(tmp_path / "missing.sqlite")])
    assert result.exit_code == 1 and "no fleet history" in result.output
