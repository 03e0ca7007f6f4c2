"""Layering: the numerics and the device never import the server, the PLC link or the CLI; the PLC
link, the scan engine and the simulated PLC's program import a protocol library only when a transport or
server needs it (the engine's process loads a PLC transport only for a network with a link)."""

import subprocess
import sys

import pytest

FORBIDDEN = ("click", "asyncua", "pymodbus", "cli", "onnx", "onnxruntime", "aiomqtt", "pysparkplug", "amqtt")


@pytest.mark.parametrize("module", [
    "plc_anna.device", "plc_anna.device.simulated", "plc_anna.device.network", "plc_anna.device.params",
    "plc_anna.ageing", "plc_anna.units", "plc_anna.stats", "plc_anna.stats.reference", "plc_anna.drift",
    "plc_anna.drift.monitor", "plc_anna.correction.transport", "plc_anna.correction.estimate",
    "plc_anna.compensator", "plc_anna.loop", "plc_anna.bench.compensation",
    "plc_anna.device.plc_observed", "plc_anna.contract.tagmap", "plc_anna.contract.logic", "plc_anna.plc.link",
    "plc_anna.simulated_plc.program", "plc_anna.contract.layout", "plc_anna.simulated_plc.server", "plc_anna.commission",
    "plc_anna.plccode", "plc_anna.importers.onnx",
    "plc_anna.engine.task", "plc_anna.engine.jobs", "plc_anna.engine.scan", "plc_anna.engine.host",
    "plc_anna.engine.process", "plc_anna.server.network_config",
])
def test_library_modules_stay_light(module):
    """Protocol libraries are imported by the transport or server that speaks them, never before."""
    code = (f"import sys, {module}; "
            f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{module} imports {result.stdout.strip()}"


@pytest.mark.parametrize("module", ["plc_anna.stats", "plc_anna.drift", "plc_anna.correction.estimate",
                                    "plc_anna.compensator"])
def test_numerics_do_not_know_the_device(module):
    code = f"import sys, {module}; print(any(m.startswith('plc_anna.device') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("module", ["plc_anna.device", "plc_anna.device.plc_observed", "plc_anna.contract.logic",
                                    "plc_anna.contract.ramp", "plc_anna.contract.tagmap",
                                    "plc_anna.simulated_plc.program"])
def test_the_device_and_the_contract_do_not_know_the_link(module):
    """The PLC contract is one package below the device, the link and the simulated PLC: none of these
    reach up into the link or its transports."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('plc_anna.plc')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["plc_anna.server.app", "plc_anna.server.config", "plc_anna.sparkplug",
                                    "plc_anna.sparkplug.config"])
def test_mqtt_is_imported_only_by_the_edge_node_and_the_fleet(module):
    """A server without a [sparkplug] table never loads the MQTT or Sparkplug libraries."""
    code = f"import sys, {module}; print(sorted(m for m in ('aiomqtt', 'paho', 'pysparkplug') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
