"""Commissioning hands over to the server: draft or map, validate, run, then ``serve`` restores the baseline and
stays nominal on the PLC's live data, over OPC UA and Modbus TCP, while nothing in the hardware changes.

This is the sequence a plant meets on day one. It used to fault every layer within a fifth of a second: the
PLC-observed network handed the compensator batches of two trace rows, two equal converter codes gave a
variance of zero, and the jump rule read that as a fault.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from click.testing import CliRunner

from plc_anna.commands.commission import commission
from plc_anna.contract.tagmap import tag_map_to_toml
from plc_anna.drift.states import DriftState
from plc_anna.server.app import PlcAnnaServer
from plc_anna.server.config import load_server_config
from plc_anna.testing import free_port
from tests.commands.simplc import running_plc

CALIBRATION = ["--calibration-samples", "1024", "--calibration-timeout", "60"]
SERVE_S = 6.0


def serve_and_watch(config_path, seconds: float) -> tuple[int | None, set, list, int, list]:
    """Serve ``config_path`` for ``seconds``; the restored scan, every layer state seen, the state reasons,
    the scans since the restore, the samples taken."""
    async def run():
        seen: set = set()
        async with PlcAnnaServer(load_server_config(config_path)) as server:
            served = next(iter(server.networks.values()))
            start, last = time.monotonic(), None
            while time.monotonic() - start < seconds:
                latest = served.latest
                if latest is not None and latest is not last:   # every published scan: its states and events
                    last = latest
                    seen.update(layer.state for layer in latest.layers)
                    seen.update(event.state for event in latest.events)
                await asyncio.sleep(0.02)
            scans = last.scan - served.restored_scan
            reasons = [layer.state_reason for layer in last.layers]
            return served.restored_scan, seen, reasons, scans, last.layers[0].sample_count
    return asyncio.run(run())


@pytest.fixture(params=["opcua", "modbus"])
def plc(request):
    """A simulated PLC of the thermocouple network (over Modbus at its 10 ms cycle: see ``simplc``)."""
    with running_plc(request.param) as running:
        yield request.param, running


def test_commission_then_serve_stays_nominal(plc, tmp_path):
    protocol, sim = plc
    runner = CliRunner()
    tag_map = tmp_path / "plc.toml"
    if protocol == "opcua":   # as a user does: a map drafted from what the PLC offers
        result = runner.invoke(commission, ["draft", sim.endpoint, "--net", "thermocouple", "--out", str(tag_map)])
        assert result.exit_code == 0, result.output
    else:                     # OpenPLC's register map, as plc-sim and plc-code write it
        tag_map.write_text(tag_map_to_toml(sim.server.tag_map()))
    result = runner.invoke(commission, ["validate", str(tag_map), "--net", "thermocouple"])
    assert result.exit_code == 0, result.output
    config = tmp_path / "server.toml"
    config.write_text(f'network = "thermocouple"\ndevice_backend = "plc"\ntag_map = "plc.toml"\n'
                      f'state_store = "plc-anna.sqlite"\nendpoint = "opc.tcp://127.0.0.1:{free_port()}/plc-anna"\n'
                      'scan_ms = 10\n[security]\npolicies = ["None"]\nallow_anonymous = true\n')
    result = runner.invoke(commission, ["run", str(tag_map), "--config", str(config), *CALIBRATION, "--yes"])
    assert result.exit_code == 0, result.output

    restored, seen, reasons, scans, samples = serve_and_watch(config, SERVE_S)
    assert restored is not None                  # it began calibrated, from the baseline
    assert scans >= 50 and samples > 500         # and took the live data: the test is not vacuous
    assert seen == {DriftState.NOMINAL}, f"layers left Nominal with no hardware change: {reasons}"
