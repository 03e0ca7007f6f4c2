"""plc-anna bench link runs end to end (a short run: the numbers themselves belong to the benchmark)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main

KEYS = {"protocol", "outputs", "scan_ms", "scans", "write_ms", "bare_write_ms", "missed_heartbeats", "reconnect_s",
        "bump"}


def test_a_short_modbus_run_reports_every_number(tmp_path):
    report = tmp_path / "link.json"
    result = CliRunner().invoke(main, ["bench", "link", "--protocol", "modbus", "--outputs", "16", "--scans", "50",
                                       "--scan-ms", "20", "--down-s", "0.3", "--json", str(report)])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(report.read_text())["runs"]
    assert KEYS <= set(run) and run["protocol"] == "modbus" and run["scans"] == 50
    assert run["write_ms"]["p50"] > 0 and run["bare_write_ms"]["p99"] >= run["bare_write_ms"]["p50"] > 0
    assert run["sets_written"] > 5 and run["plc_fault_cycles"] == 0 and run["late_cycles"] >= 0
    assert run["reconnect_s"] is not None and 0 <= run["reconnect_s"] < 5.0       # the link came back
    assert run["bump"] is not None and run["bump"] <= 0.02 * (1 + 1e-5)           # no jump beyond one PLC step
    assert run["targets"]["resumes_within_5_s"] is True and run["targets"]["no_missed_heartbeat"] is None
