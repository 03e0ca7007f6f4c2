"""The tag map: every documented key read and checked, every bad file refused with a message naming the key."""

from __future__ import annotations

import math
import tomllib

import pytest

from plc_anna.contract.tagmap import load_tag_map, parse_tag_map, tag_map_to_toml

OPCUA = """
network = "thermocouple"
[plc]
protocol = "opcua"
endpoint = "opc.tcp://127.0.0.1:4841"
user = "anna"
password_env = "PLC_ANNA_TEST_PASSWORD"
[link]
deadband = 0.001
min_commit_interval_s = 0.5
max_gain_step = 0.01
[device]
age_s = { address = "ns=4;s=GVL_Device.DeviceAge", type = "LREAL" }
programmed_at = 2026-11-01T08:00:00Z
[[layer]]
index = 1
trace_length = 4
inputs = { address = "ns=4;s=L.Inputs", type = "REAL", length = 2 }
raw_outputs = { address = "ns=4;s=L.RawOutputs", type = "INT", length = 3, scale = 0.01, bias = -5.0 }
gain_set = { address = "ns=4;s=L.GainSet", type = "REAL", length = 3 }
offset_set = { address = "nsu=urn:x;s=L.OffsetSet", type = "LREAL", length = 3 }
commit_counter = { address = "ns=4;s=L.CommitCounter", type = "UDINT" }
heartbeat = { address = "ns=4;s=L.Heartbeat", type = "UDINT" }
accepted_commit = { address = "ns=4;s=L.AcceptedCommit", type = "UDINT" }
plc_heartbeat = { address = "ns=4;s=L.PlcHeartbeat", type = "UDINT" }
status = { address = "ns=4;s=L.Status", type = "INT" }
fault = { address = "ns=4;s=L.Fault", type = "BOOL" }
applied_gain = { address = "ns=4;s=L.AppliedGain", type = "REAL", length = 3 }
trace_inputs = { address = "ns=4;s=L.TraceInputs", type = "REAL", length = 8 }
trace_raw_outputs = { address = "ns=4;s=L.TraceRawOutputs", type = "REAL", length = 12 }
trace_count = { address = "ns=4;s=L.TraceCount", type = "UDINT" }
"""

MODBUS = """
[plc]
protocol = "modbus"
endpoint = "modbus://127.0.0.1:5020"
word_order = "little"
unit_id = 3
[[layer]]
index = 0
inputs = { address = 2448, type = "REAL", length = 2 }
raw_outputs = { address = 2192, type = "REAL", length = 3 }
gain_set = { address = 2048, type = "REAL", length = 3 }
offset_set = { address = 2112, type = "REAL", length = 3 }
commit_counter = { address = 2176, type = "UDINT" }
heartbeat = { address = 2178, type = "UDINT" }
accepted_commit = { address = 2180, type = "UDINT" }
plc_heartbeat = { address = 2182, type = "UDINT" }
status = { address = 2184, type = "DINT" }
fault = { address = 2186, type = "UDINT" }
"""


def parse(text: str):
    return parse_tag_map(tomllib.loads(text))


def test_an_opcua_map_reads_every_section(monkeypatch):
    tags = parse(OPCUA)
    assert tags.network == "thermocouple" and tags.plc.user == "anna"
    assert tags.link.deadband == 0.001 and tags.link.max_gain_step == 0.01 and tags.link.verify is True
    assert tags.link.max_offset_step == math.inf
    layer = tags.layer(1)
    assert (layer.n_in, layer.n_out, layer.trace_length) == (2, 3, 4)
    assert layer.raw_outputs.scale == 0.01 and layer.raw_outputs.bias == -5.0
    assert layer.offset_set.plc_type == "LREAL" and layer.applied_offset is None
    assert tags.device.programmed_at == pytest.approx(1793520000.0)
    monkeypatch.setenv("PLC_ANNA_TEST_PASSWORD", "s3cret")
    assert tags.plc.password() == "s3cret"
    monkeypatch.delenv("PLC_ANNA_TEST_PASSWORD")
    with pytest.raises(ValueError, match="PLC_ANNA_TEST_PASSWORD.*not set"):
        tags.plc.password()


def test_a_map_written_as_toml_reads_back_equal(tmp_path):
    for text in (OPCUA, MODBUS):
        tags = parse(text)
        path = tmp_path / "map.toml"
        path.write_text(tag_map_to_toml(tags))
        again = load_tag_map(path)
        assert again.layers == tags.layers and again.plc == tags.plc and again.link == tags.link
        assert again.device == tags.device and again.network == tags.network


def test_the_network_shape_is_checked():
    tags = parse(MODBUS)
    tags.check_network([(2, 3)])
    with pytest.raises(ValueError, match="layer 0 maps 2 inputs and 3 outputs; the network's layer has 2 and 4"):
        tags.check_network([(2, 4)])
    with pytest.raises(ValueError, match="layer index 0 is outside"):
        tags.check_network([])
    with pytest.raises(ValueError, match="no \\[\\[layer\\]\\] with index 5; mapped: 0"):
        tags.layer(5)


@pytest.mark.parametrize(("change", "message"), [
    (('protocol = "modbus"', 'protocol = "s7"'), "plc.protocol must be one of opcua, modbus"),
    (('endpoint = "modbus://127.0.0.1:5020"', 'endpoint = "opc.tcp://127.0.0.1:5020"'), "modbus://HOST:PORT"),
    (('word_order = "little"', 'word_order = "middle"'), "word_order must be one of big, little"),
    (("unit_id = 3", "unit_id = 300"), "unit_id must be within 0..255"),
    (("unit_id = 3", "unit_id = 3\ncolour = 1"), "unknown key 'colour' in plc"),
    (('type = "UDINT" }', 'type = "DWORD" }'), "type must be one of REAL"),
    (("address = 2448", "address = -1"), "holding register 0..65535"),
    (("address = 2448", "address = 65535"), "runs past holding register 65535"),
    (("address = 2448", "address = 2049"), "overlaps"),
    (("length = 2 }", "length = 0 }"), "length must be an integer >= 1"),
    (('raw_outputs = { address = 2192, type = "REAL", length = 3 }',
      'raw_outputs = { address = 2192, type = "REAL" }'), "raw_outputs is an array: give its length"),
    (('gain_set = { address = 2048, type = "REAL", length = 3 }',
      'gain_set = { address = 2048, type = "REAL", length = 4 }'), "gain_set has length 4; it must be 3"),
    (('gain_set = { address = 2048, type = "REAL", length = 3 }',
      'gain_set = { address = 2048, type = "INT", length = 3 }'), "gain_set must be REAL or LREAL"),
    (('status = { address = 2184, type = "DINT" }', 'status = { address = 2184, type = "REAL" }'),
     "status must be a scalar UDINT"),
    (('fault = { address = 2186, type = "UDINT" }\n', ""), "layer\\[0\\].fault is missing"),
    (("index = 0", "index = -1"), "index must be an integer >= 0"),
    (("[plc]", "format = 2\n[plc]"), "format 2 is not supported"),
])
def test_bad_modbus_maps_are_refused_naming_the_key(change, message):
    old, new = change
    assert old in MODBUS
    with pytest.raises(ValueError, match=message):
        parse(MODBUS.replace(old, new, 1))


@pytest.mark.parametrize(("change", "message"), [
    (('"ns=4;s=L.GainSet"', "2048"), "must be an OPC UA NodeId string"),
    (('type = "REAL", length = 8 }', 'type = "REAL", length = 9 }'), "trace_inputs has length 9; it must be 8"),
    (('trace_count = { address = "ns=4;s=L.TraceCount", type = "UDINT" }\n', ""), "a trace needs"),
    (("programmed_at = 2026-11-01T08:00:00Z", "programmed_at = 2026-11-01T08:00:00"), "with a time zone"),
    (("max_gain_step = 0.01", "max_gain_step = 0"), "must be > 0"),
    (("deadband = 0.001", "deadband = -1"), "link.deadband must be a number >= 0"),
    (('user = "anna"', "user = 7"), "plc.user must be a string"),
    (('endpoint = "opc.tcp://127.0.0.1:4841"', 'endpoint = "opc.tcp://127.0.0.1:4841"\n'
      'security_mode = "Sign"'), "both be None or both be set"),
    (('index = 1', 'index = 1\nsize = 3'), "unknown key 'size' in layer\\[0\\]"),
])
def test_bad_opcua_maps_are_refused_naming_the_key(change, message):
    old, new = change
    assert old in OPCUA
    with pytest.raises(ValueError, match=message):
        parse(OPCUA.replace(old, new, 1))


def test_files_name_themselves_in_errors(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ValueError, match="nope.toml: cannot read"):
        load_tag_map(missing)
    bad = tmp_path / "bad.toml"
    bad.write_text("[plc\n")
    with pytest.raises(ValueError, match="bad.toml: invalid TOML"):
        load_tag_map(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text('[plc]\nprotocol = "modbus"\nendpoint = "modbus://h:1"\n')
    with pytest.raises(ValueError, match="empty.toml: map at least one"):
        load_tag_map(empty)


def test_the_documented_example_is_a_valid_map():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "tag-map.md").read_text()
    example = re.search(r"```toml\n(.*?)```", doc, flags=re.S).group(1)
    tags = parse(example)
    assert tags.plc.security_mode == "SignAndEncrypt" and tags.layer(2).n_out == 4


def test_a_written_map_holds_no_keys_of_the_other_protocol():
    """An OPC UA map says nothing of Modbus word order or unit; a Modbus map nothing of security or logins."""
    for text, foreign in ((OPCUA, ("unit_id", "word_order")),
                          (MODBUS, ("user", "password_env", "security_policy", "security_mode", "certificate",
                                    "private_key", "server_certificate"))):
        written = tomllib.loads(tag_map_to_toml(parse(text)))["plc"]
        assert not set(written) & set(foreign), sorted(set(written) & set(foreign))
        assert {"protocol", "endpoint", "timeout_s"} <= set(written)
