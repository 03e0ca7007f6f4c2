"""PLC code for networks of other sizes (1 to 8 layers, 2 to 1024 columns): the independent parsers take it, the
generated tag map validates against ``plc-anna plc-sim`` started with the same network, over OPC UA and Modbus,
and a network too large for a target is refused with one line and nothing written."""

from __future__ import annotations

import asyncio
import re
import tomllib

import numpy as np
import pytest
from click.testing import CliRunner

from plc_anna import commission
from plc_anna.contract.layout import LAYER_TAGS, PlcLayout
from plc_anna.contract.tagmap import parse_tag_map
from plc_anna.device.network import load_network, network_from_arrays, save_network
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.plccode import generate
from plc_anna.plccode.scl import S7_MAX_DB_BYTES
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.testing import free_port
from tests.plccode.support import (check_scl_structure, function_blocks, global_declarations, parse_st, programs,
                                   scl_data_blocks, tc6_errors)

OPCUA_TARGETS = ("codesys", "twincat", "s7-1500", "plcopen-xml")


def make_network(name: str, widths: list[int], seed: int = 0, samples: int = 64):
    """A regression network of ``widths[0]`` inputs and layers of ``widths[1:]`` outputs, with held-out data."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(n_out, n_in)) / np.sqrt(n_in) for n_in, n_out in zip(widths, widths[1:])]
    biases = [rng.normal(size=n_out) / 10 for n_out in widths[1:]]
    activations = ["tanh"] * (len(weights) - 1) + ["linear"]
    X = rng.uniform(-1, 1, size=(samples, widths[0]))
    a = X
    for W, b, activation in zip(weights, biases, activations):
        a = a @ W.T + b
        a = np.tanh(a) if activation == "tanh" else a
    return network_from_arrays(name, "regression", weights, biases, activations, X=X, y=a)


#: Networks nobody trained: one tiny layer, eight layers, and layers 1024 columns wide.
NETWORKS = {
    "tiny": ([2, 2], 64),
    "eight-layers": ([4, 6, 6, 6, 6, 6, 6, 6, 3], 64),
    "wide": ([16, 1024, 1024, 2], 8),
}


@pytest.fixture(scope="module", params=list(NETWORKS))
def sized(request):
    widths, trace = NETWORKS[request.param]
    return make_network(request.param, widths), trace


# ------------------------------------------------------------------------------------ the parsers
def test_st_parses_with_blark_and_declares_every_tag(sized):
    network, trace = sized
    shapes = [(layer.n_in, layer.n_out) for layer in network.layers]
    for target in ("codesys", "twincat"):
        code = generate(network, target, trace_length=trace)
        blocks = [name for name in code.files if name.startswith("FB_")]
        assert sorted(blocks) == sorted({f"FB_AnnaCorrection_{n_out}.st" for _, n_out in shapes})
        if target == "codesys":                                   # TwinCAT's blocks are the same text
            for name in blocks:
                assert list(function_blocks(code.files[name], name)) == [name.removesuffix(".st")]
        layout = PlcLayout(tuple(shapes), trace, target)
        for k in range(len(shapes)):
            name = f"GVL_PlcAnna_L{k}.st"
            declared = global_declarations(code.files[name], name)
            for tag in LAYER_TAGS:
                length = layout.length(k, tag)
                assert declared[tag].startswith(f"ARRAY [0..{length - 1}]" if length else LAYER_TAGS[tag][0]), tag
        program = "PRG_PlcAnna.st" if target == "codesys" else "MAIN.st"
        assert len(programs(code.files[program], program)) == 1
        assert parse_st(code.files["GVL_Device.st"])
        assert [f"fbL{k}(" in code.files[program] for k in range(len(shapes))] == [True] * len(shapes)


def test_plcopen_xml_validates_against_the_tc6_schema(sized):
    network, trace = sized
    errors = tc6_errors(generate(network, "plcopen-xml", trace_length=trace).files["plc_anna_ld.xml"])
    assert not errors, "\n".join(errors[:5])


def test_scl_is_closed_and_its_data_blocks_have_the_declared_sizes(sized):
    network, trace = sized
    text = generate(network, "s7-1500", trace_length=trace).files["plc_anna.scl"]
    check_scl_structure(text)
    blocks = scl_data_blocks(text)
    layout = PlcLayout(tuple((layer.n_in, layer.n_out) for layer in network.layers), trace, "s7-1500")
    for k in range(layout.n_layers):
        assert {tag: length for tag, (_, length, _) in blocks[f"PlcAnna_L{k}"].items()} == \
            {tag: layout.length(k, tag) for tag in LAYER_TAGS}
    assert len(re.findall(r'^FUNCTION_BLOCK "FB_AnnaCorrection_(\d+)"', text, flags=re.MULTILINE)) == \
        len({n_out for _, n_out in layout.shapes})


def test_openplc_program_parses_or_the_network_is_refused(sized):
    network, _ = sized
    if max(max(layer.n_in, layer.n_out) for layer in network.layers) > 64:
        with pytest.raises(ValueError, match=r"too large for OpenPLC's memory"):
            generate(network, "openplc")
        return
    code = generate(network, "openplc")
    assert len(programs(code.files["plc_anna_openplc.st"])) == 1


# ------------------------------------------------------------------------ the tag map and plc-sim
def test_generated_tag_map_reads_back_and_fits_the_network(sized):
    network, trace = sized
    for target in (*OPCUA_TARGETS, "openplc"):
        try:
            code = generate(network, target, trace_length=0 if target == "openplc" else trace)
        except ValueError:
            continue                                              # OpenPLC: refused above
        tag_map = parse_tag_map(tomllib.loads(code.files["plc_anna.toml"]))
        assert tag_map.layers == code.tag_map.layers and tag_map.network == network.name
        tag_map.check_network([(layer.n_in, layer.n_out) for layer in network.layers])


async def _validate_against_plc_sim(network, target: str, trace: int) -> list:
    plc = SimulatedPlc(SimulatedNetwork(network, "ideal", seed=0), cycle_s=0.01, trace_length=max(trace, 1))
    if target == "openplc":
        from plc_anna.simulated_plc.modbus import SimulatedPlcModbus
        endpoint = f"modbus://127.0.0.1:{free_port()}"
        server = SimulatedPlcModbus(plc, endpoint)
    else:
        from plc_anna.simulated_plc.opcua import SimulatedPlcOpcUa
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        server = SimulatedPlcOpcUa(plc, endpoint, target=target)
    code = generate(network, target, trace_length=trace, endpoint=endpoint)
    async with server:
        return await commission.validate(code.tag_map, network)


@pytest.mark.parametrize("target", (*OPCUA_TARGETS, "openplc"))
def test_generated_tag_map_validates_against_plc_sim_started_with_the_same_network(sized, target):
    network, trace = sized
    if target == "openplc":
        if max(max(layer.n_in, layer.n_out) for layer in network.layers) > 64:
            pytest.skip("too large for OpenPLC: refused (test_openplc_program_parses_or_the_network_is_refused)")
        trace = 0
    checks = asyncio.run(_validate_against_plc_sim(network, target, trace))
    assert all(check.ok for check in checks), [check for check in checks if not check.ok]
    assert {check.name for check in checks} >= {"network", "connect", "PLC running",
                                               *(f"layer {k} tags" for k in range(len(network.layers)))}


def test_a_generated_map_of_another_network_fails_validation():
    """The check can fail: a map drafted for 6 columns against a PLC running 5."""
    network = make_network("five", [3, 5, 2])
    other = make_network("six", [3, 6, 2])

    async def check():
        plc = SimulatedPlc(SimulatedNetwork(network, "ideal", seed=0), trace_length=64)
        from plc_anna.simulated_plc.opcua import SimulatedPlcOpcUa
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        async with SimulatedPlcOpcUa(plc, endpoint):
            return await commission.validate(generate(other, "codesys", endpoint=endpoint).tag_map, other)

    checks = asyncio.run(check())
    failed = [check for check in checks if not check.ok]
    assert [check.name for check in failed] == ["layer 0 tags", "layer 1 tags"]
    assert "array of 5" in failed[0].detail


# --------------------------------------------------------------------------------- bad input
def test_a_network_too_large_for_s7_is_refused_naming_the_data_block():
    network = make_network("huge", [1024, 1024], samples=4)
    with pytest.raises(ValueError, match=r'layer 0\'s data block "PlcAnna_L0" needs \d+ bytes, more than the '
                                         rf"{S7_MAX_DB_BYTES} an S7-1500"):
        generate(network, "s7-1500", trace_length=128)
    generate(network, "s7-1500", trace_length=64)                  # 64 rows fit


@pytest.mark.parametrize("widths,target,trace,message", [
    ([2] * 10, "codesys", 64, r"9 layers; the PLC code generator takes 1 to 8"),
    ([2, 1025], "codesys", 64, r"layer 0 has 2 inputs and 1025 outputs; the PLC code generator takes 1 to 1024"),
    ([2, 4, 2], "twincat", 48, r"trace length 48 is not a power of two"),
    ([2, 4, 2], "openplc", 64, r"OpenPLC has no memory for a trace ring buffer"),
    ([8, 300, 2], "openplc", None, r"layer 0's tags need holding registers up to \d+, beyond OpenPLC's %MD1023"),
])
def test_bad_requests_are_refused_with_one_line(widths, target, trace, message):
    with pytest.raises(ValueError, match=message) as raised:
        generate(make_network("bad", widths, samples=4), target, trace_length=trace)
    assert "\n" not in str(raised.value)


def test_the_command_writes_every_file_or_none(tmp_path):
    from cli import main

    save_network(make_network("huge", [1024, 1024], samples=4), tmp_path / "huge.npz")
    runner = CliRunner()
    out = tmp_path / "s7"
    result = runner.invoke(main, ["plc-code", "--net", str(tmp_path / "huge.npz"), "--target", "s7-1500", "--out",
                                  str(out), "--trace-length", "256"])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "needs" in result.output
    assert not out.exists()                                       # nothing written
    result = runner.invoke(main, ["plc-code", "--net", "missing.npz", "--target", "codesys", "--out", str(out)])
    assert result.exit_code == 1 and "missing.npz" in result.output and not out.exists()
    result = runner.invoke(main, ["plc-code", "--net", "thermocouple", "--target", "twincat", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(generate(load_network("thermocouple"), "twincat").files)
    before = {p.name: p.read_text() for p in out.iterdir()}
    result = runner.invoke(main, ["plc-code", "--net", "digits", "--target", "twincat", "--out", str(out)])
    assert result.exit_code == 1 and "exists" in result.output and "--force" in result.output
    assert {p.name: p.read_text() for p in out.iterdir()} == before  # an existing folder is left as it was
