"""``plc-anna demo --fleet``: three servers as edge nodes, the broker and the fleet host, in one command."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main


def test_the_fleet_demo_shows_three_lines_online(tmp_path):
    out = tmp_path / "fleet.json"
    result = CliRunner().invoke(main, ["demo", "--fleet", "--duration", "5", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = sorted((row["node"], row["network"]) for row in report["networks"])
    assert rows == [("line1", "thermocouple"), ("line2", "digits"), ("line3", "thermocouple")]
    assert all(row["online"] and row["age_s"] > 0 and row["state"] for row in report["networks"])
    assert report["seq_gaps"] == 0 and report["historized"] > 0 and report["malformed"] == 0
