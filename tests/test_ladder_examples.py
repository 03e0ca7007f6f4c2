"""ladder_examples/ is the PLC code generator's output for the shipped thermocouple network, and it holds the
specification: every block parses, declares the specification's interface with the contract's defaults, runs
the same statements, and the tags are published where the simulated PLC serves them.

- Every ``.st`` file is parsed with blark (a test tool only: the package never imports it); blark 0.8 has
  no rule for ``CONFIGURATION``, so the OpenPLC program's configuration block is checked on its own.
- The Siemens SCL source is not IEC ST and blark does not read it: it is checked for closed blocks, the
  specification's names and types, the data blocks' sizes, and a body equal to the ST one once the SCL
  notation is removed.
- Every PLCopen ``.xml`` file is validated against the TC6 v2.01 schema in ``tests/data/plcopen``.
- The open decisions (D1 ...) read the same in the docs, the Python reference and every block.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

import blark.transform as blark_transform

from plc_anna.contract import logic
from plc_anna.contract.layout import LAYER_TAGS, MODBUS_TYPES, WRITTEN_TAGS, PlcLayout
from plc_anna.contract.tagmap import load_tag_map
from plc_anna.device.network import load_network
from plc_anna.plccode import generate
from plc_anna.plccode.block import decisions as contract_decisions
from tests.plccode.support import (PPX, XSD, check_scl_structure, function_blocks, global_declarations, parse_st,
                                   programs, scl_code, scl_data_blocks, split_configuration, tc6_errors)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "ladder_examples"
XSD_SHA256 = "db546a6d1847fee06268fa29baf9f643c8bdd75b3ad083eb9ebd4bfa93cb6c9b"
NETWORK = "thermocouple"
FOLDERS = {"codesys": "codesys", "twincat": "twincat", "s7-1500": "siemens_s7_1500", "openplc": "openplc",
           "plcopen-xml": "plcopen"}
ST_FILES = sorted(EXAMPLES.rglob("*.st"))
FB_FILES = sorted(EXAMPLES.glob("codesys/FB_*.st")) + sorted(EXAMPLES.glob("twincat/FB_*.st")) + \
    [EXAMPLES / "openplc" / "plc_anna_openplc.st"]
SHAPES = tuple((layer.n_in, layer.n_out) for layer in load_network(NETWORK).layers)

ARRAY = "ARRAY OF REAL"
SPEC_INPUTS = {"RawOutputs": ARRAY, "GainSet": ARRAY, "OffsetSet": ARRAY, "CommitCounter": "UDINT",
               "Heartbeat": "UDINT", "CycleTime": "TIME", "GainMin": "REAL", "GainMax": "REAL", "OffsetMin": "REAL",
               "OffsetMax": "REAL", "MaxGainStep": "REAL", "MaxOffsetStep": "REAL", "HeartbeatTimeout": "TIME"}
SPEC_OUTPUTS = {"CorrectedOutputs": ARRAY, "AppliedGain": ARRAY, "AppliedOffset": ARRAY, "AcceptedCommit": "UDINT",
                "Fault": "BOOL", "PlcHeartbeat": "UDINT", "Status": "INT"}
SPEC_DEFAULTS = {"CycleTime": 0.010, "GainMin": 0.25, "GainMax": 4.0, "OffsetMin": -1.0e6, "OffsetMax": 1.0e6,
                 "MaxGainStep": 0.02, "MaxOffsetStep": 1.0e6, "HeartbeatTimeout": 0.5}


# ----------------------------------------------------------------------------------------------- helpers
def normalise_type(text: str) -> tuple[str, int | None]:
    """``ARRAY [0..7] OF REAL`` -> (``ARRAY OF REAL``, 8); SCL spellings upper-cased."""
    text = " ".join(text.split()).upper()
    match = re.fullmatch(r"ARRAY\s*\[\s*0\s*\.\.\s*(\d+)\s*\]\s*OF\s*(\w+)", text)
    if match:
        return f"ARRAY OF {match.group(2)}", int(match.group(1)) + 1
    return text, None


def seconds(value: str) -> float:
    """An IEC literal as a number: ``T#500MS``/``TIME#500MS`` -> 0.5, ``-1.0E6`` -> -1e6."""
    match = re.fullmatch(r"(?:T|TIME)#(\d+)(MS|S)", value.strip().upper())
    if match:
        return int(match.group(1)) / (1000 if match.group(2) == "MS" else 1)
    return float(value)


def declarations(summary, block: str) -> dict[str, tuple[str, str]]:
    return {d.name: (normalise_type(d.type)[0], d.value) for d in summary.declarations.values() if d.block == block}


def fb_sections(text: str) -> dict[int, str]:
    """``{N: FUNCTION_BLOCK FB_AnnaCorrection_N ... (up to END_FUNCTION_BLOCK)}`` of a file."""
    return {int(n): body for n, body in re.findall(r"^FUNCTION_BLOCK (?:\")?FB_AnnaCorrection_(\d+)(?:\")?\n(.*?)"
                                                   r"^END_FUNCTION_BLOCK", text, flags=re.DOTALL | re.MULTILINE)}


def statements(section: str, n: int) -> str:
    """The statements of an ST block (after its last ``END_VAR``), comments and layout removed, bound as N-1."""
    body = section[section.rindex("END_VAR") + len("END_VAR"):]
    body = " ".join(re.sub(r"\(\*.*?\*\)", " ", body, flags=re.DOTALL).split())
    return body.replace(f"TO {n - 1} DO", "TO N-1 DO")


def decisions(text: str) -> list[str]:
    return re.findall(r"\b(D\d{1,2}\. [^\n]*?)\s*(?:\*\))?\s*$", text, flags=re.MULTILINE)


def layer_gvls(folder: str) -> list[Path]:
    return sorted(EXAMPLES.glob(f"{folder}/GVL_PlcAnna_L*.st"))


# --------------------------------------------------------------------------------- the generator's output
@pytest.mark.parametrize("target", FOLDERS)
def test_examples_are_the_generators_output_for_the_thermocouple_network(target):
    """Regenerate with: plc-anna plc-code --net thermocouple --target TARGET --out ladder_examples/FOLDER --force"""
    code = generate(load_network(NETWORK), target)
    folder = EXAMPLES / FOLDERS[target]
    assert sorted(path.name for path in folder.iterdir()) == sorted(code.files)
    for name, text in code.files.items():
        assert (folder / name).read_text() == text, f"{folder.name}/{name} differs from the generator's output"


@pytest.mark.parametrize("target", FOLDERS)
def test_example_tag_maps_are_the_simulated_plcs_layout(target):
    tag_map = load_tag_map(EXAMPLES / FOLDERS[target] / "plc_anna.toml")
    trace = 0 if target == "openplc" else 64
    expected = PlcLayout(SHAPES, trace, target).tag_map(tag_map.plc.endpoint, network=NETWORK)
    assert tag_map.layers == expected.layers and tag_map.device == expected.device
    tag_map.check_network(list(SHAPES))


# ------------------------------------------------------------------------------------------ ST with blark
@pytest.mark.parametrize("path", ST_FILES, ids=[str(p.relative_to(EXAMPLES)) for p in ST_FILES])
def test_st_parses_with_blark(path):
    assert parse_st(path.read_text(), str(path))


@pytest.mark.parametrize("path", FB_FILES, ids=[str(p.relative_to(EXAMPLES)) for p in FB_FILES])
def test_function_block_declares_the_spec(path):
    blocks = function_blocks(path.read_text(), str(path))
    assert blocks and set(blocks) <= {f"FB_AnnaCorrection_{n_out}" for _, n_out in SHAPES}
    for name, summary in blocks.items():
        n = int(name.rsplit("_", 1)[1])
        inputs, outputs = declarations(summary, "VAR_INPUT"), declarations(summary, "VAR_OUTPUT")
        assert {name: kind for name, (kind, _) in inputs.items()} == SPEC_INPUTS
        assert {name: kind for name, (kind, _) in outputs.items()} == SPEC_OUTPUTS
        assert {name: seconds(inputs[name][1]) for name in SPEC_DEFAULTS} == SPEC_DEFAULTS
        lengths = {normalise_type(d.type)[1] for d in summary.declarations.values()} - {None}
        assert lengths == {n}, f"{name}: array lengths {lengths}"


def test_python_reference_has_the_spec_defaults():
    parameters = inspect.signature(logic.CorrectionBlock).parameters
    python = {py: parameters[py].default for py in logic.IEC_PARAMETERS.values() if py != "cycle_s"}
    assert {st: SPEC_DEFAULTS[st] for st, py in logic.IEC_PARAMETERS.items() if py in python} == \
        {st: python[py] for st, py in logic.IEC_PARAMETERS.items() if py in python}
    assert logic.DEFAULTS.cycle_s == SPEC_DEFAULTS["CycleTime"]


def test_function_blocks_are_one_text():
    """TwinCAT shares the CODESYS blocks, OpenPLC's are the same; blocks of other widths differ only by the bound."""
    codesys = {n: text for path in EXAMPLES.glob("codesys/FB_*.st") for n, text in fb_sections(path.read_text()).items()}
    twincat = {n: text for path in EXAMPLES.glob("twincat/FB_*.st") for n, text in fb_sections(path.read_text()).items()}
    openplc = fb_sections((EXAMPLES / "openplc" / "plc_anna_openplc.st").read_text())
    assert codesys == twincat == openplc and set(codesys) == {4, 32}
    assert statements(codesys[4], 4) == statements(codesys[32], 32)


@pytest.mark.parametrize("folder,pragma,written,read", [
    ("codesys", r"\{attribute 'symbol' := '(\w+)'\}", "readwrite", "read"),
    ("twincat", r"\{attribute 'OPC.UA.DA.Access' := '(\d)'\}", "3", "1"),
])
def test_global_variable_lists_publish_every_tag_at_its_size(folder, pragma, written, read):
    paths = layer_gvls(folder)
    assert [p.stem for p in paths] == [f"GVL_PlcAnna_L{k}" for k in range(len(SHAPES))]
    layout = PlcLayout(SHAPES, 64, folder)
    for k, path in enumerate(paths):
        found = {name: normalise_type(kind) for name, kind in global_declarations(path.read_text(), str(path)).items()}
        expected = {name: ((f"ARRAY OF {kind}", layout.length(k, name)) if layout.length(k, name) else (kind, None))
                    for name, (kind, _) in LAYER_TAGS.items()}
        expected.update(dict.fromkeys(("N_INPUTS", "N_OUTPUTS", "TRACE_LENGTH"), ("DINT", None)))  # the constants
        assert found == expected
        access = {m.group(2): m.group(1) for m in re.finditer(pragma + r"\s*(\w+)\s*:", path.read_text())}
        assert access == {name: written if name in WRITTEN_TAGS else read for name in LAYER_TAGS}
        assert re.search(r"GainSet : ARRAY\[0\.\.\d+\] OF REAL := \[\d+\(1\.0\)\];", path.read_text()), \
            "GainSet starts at the identity"
    device = EXAMPLES / folder / "GVL_Device.st"
    assert global_declarations(device.read_text(), str(device)) == {"DeviceAge": "LREAL", "DeviceTemperature": "LREAL"}


@pytest.mark.parametrize("path", [EXAMPLES / "codesys" / "PRG_PlcAnna.st", EXAMPLES / "twincat" / "MAIN.st",
                                  EXAMPLES / "openplc" / "plc_anna_openplc.st"], ids=lambda p: p.parent.name)
def test_program_calls_each_layers_block(path):
    text = path.read_text()
    assert len(programs(text, str(path))) == 1
    for k, (_, n_out) in enumerate(SHAPES):
        assert re.search(rf"fbL{k}\s*:\s*FB_AnnaCorrection_{n_out}\s*;", text)
        call = text[text.index(f"fbL{k}("):]
        call = call[:call.index(");")]
        for name in ("RawOutputs", "GainSet", "OffsetSet", "CommitCounter", "Heartbeat", "CycleTime"):
            assert re.search(rf"\b{name}\s*:=", call), f"layer {k}'s call does not pass {name}"


@pytest.mark.parametrize("path", [EXAMPLES / "codesys" / "PRG_PlcAnna.st", EXAMPLES / "twincat" / "MAIN.st"],
                         ids=lambda p: p.parent.name)
def test_program_records_each_layers_trace_count_last(path):
    text = path.read_text()
    for k, (n_in, n_out) in enumerate(SHAPES):
        gvl = f"GVL_PlcAnna_L{k}"
        rows = text.index(f"Row := UDINT_TO_DINT({gvl}.TraceCount MOD 64);")
        inputs = text.index(f"{gvl}.TraceInputs[Row * {n_in} + i] := {gvl}.Inputs[i];")
        outputs = text.index(f"{gvl}.TraceRawOutputs[Row * {n_out} + i] := {gvl}.RawOutputs[i];")
        count = text.index(f"{gvl}.TraceCount := {gvl}.TraceCount + 1;")
        assert text.index(f"fbL{k}(") < rows < inputs < outputs < count


# -------------------------------------------------------------------------------------- OpenPLC and Modbus
def register_table() -> dict[tuple[int | None, str], tuple[int, int, str]]:
    """``(layer, tag) -> (first %MD or %ML, first register, type)`` from the table in openplc/README.md."""
    rows = re.findall(r"^\| (\d+|-) \| (\w+) \| \d+ \| %M[DL](\d+) \| (\d+) \| \d+ \| (\w+) \|",
                      (EXAMPLES / "openplc" / "README.md").read_text(), flags=re.MULTILINE)
    return {(None if k == "-" else int(k), tag): (int(m), int(register), kind) for k, tag, m, register, kind in rows}


def test_register_map_is_the_simulated_plcs():
    table = register_table()
    registers = PlcLayout(SHAPES, 0, "openplc").registers()
    assert {key: register for key, (_, register, _) in table.items()} == registers
    for (layer, tag), (m, register, kind) in table.items():
        if layer is None:
            assert (register, kind) == (4096 + 4 * m, "LREAL")           # OpenPLC: %MLk is 4096 + 4k
        else:
            assert register == 2048 + 2 * m and kind == MODBUS_TYPES[tag]  # OpenPLC: %MDk is 2048 + 2k
            assert register < 4096


def test_openplc_program_locates_every_element_at_the_register_map():
    path = EXAMPLES / "openplc" / "plc_anna_openplc.st"
    program = programs(path.read_text(), str(path))[0]
    located = {str(d.name): (str(d.location).removeprefix("AT ").strip(), str(d.init.base_type_name))
               for block in program.declarations if isinstance(block, blark_transform.LocatedVariableDeclarations)
               for d in block.items}
    expected = {"DeviceAge": ("%ML0", "LREAL"), "DeviceTemperature": ("%ML1", "LREAL")}
    for (layer, tag), (md, _, kind) in register_table().items():
        if layer is None:
            continue
        count = PlcLayout(SHAPES, 0, "openplc").length(layer, tag)
        if count is None:
            expected[f"MbL{layer}{tag}"] = (f"%MD{md}", kind)
        else:
            expected.update({f"MbL{layer}{tag}{j}": (f"%MD{md + j}", kind) for j in range(count)})
    assert located == expected


def test_openplc_configuration_runs_the_program_at_the_cycle_time():
    text = (EXAMPLES / "openplc" / "plc_anna_openplc.st").read_text()
    _, configuration = split_configuration(text)
    assert re.search(r"TASK (\w+)\(INTERVAL := T#10MS, PRIORITY := 0\);", configuration)
    assert re.search(r"PROGRAM \w+ WITH \w+ : PlcAnnaModbus;", configuration)
    assert "END_RESOURCE" in configuration and "CycleTime := T#10MS" in text


# ------------------------------------------------------------------------------------------- Siemens SCL
SCL = EXAMPLES / "siemens_s7_1500" / "plc_anna.scl"


def test_scl_blocks_are_closed():
    check_scl_structure(SCL.read_text())


def scl_declarations(section: str, block: str) -> dict[str, tuple[str, str | None]]:
    match = re.search(rf"^\s*{block}\s*\n(.*?)^\s*END_VAR", scl_code(section), flags=re.DOTALL | re.MULTILINE)
    return {name: (normalise_type(kind)[0], value or None) for name, kind, value in re.findall(
        r"^\s*(\w+)\s*:\s*([^:;]+?)\s*(?::=\s*([^;]+?))?\s*;", match.group(1), flags=re.MULTILINE)}


def codesys_blocks() -> tuple[dict[str, object], dict[int, str]]:
    """The CODESYS blocks (the ones every other form is compared with): blark summaries and sections."""
    summaries, sections = {}, {}
    for path in sorted(EXAMPLES.glob("codesys/FB_*.st")):
        summaries.update(function_blocks(path.read_text(), str(path)))
        sections.update(fb_sections(path.read_text()))
    return summaries, sections


def test_scl_function_blocks_match_the_st_ones():
    sections = fb_sections(SCL.read_text())
    summaries, st = codesys_blocks()
    assert set(sections) == set(st)
    for n, scl in sections.items():
        summary = summaries[f"FB_AnnaCorrection_{n}"]
        for block in ("VAR_INPUT", "VAR_OUTPUT", "VAR"):
            expected = {name: (kind, None if value == "None" else value.replace("TIME#", "T#"))
                        for name, (kind, value) in declarations(summary, block).items()}
            if block == "VAR":                                      # SCL keeps the loop variables in VAR_TEMP
                expected = {k: v for k, v in expected.items() if k not in ("Delta", "j")}
                assert scl_declarations(scl, "VAR_TEMP") == {"Delta": ("REAL", None), "j": ("DINT", None)}
            assert scl_declarations(scl, block) == expected
        body = scl[scl.index("BEGIN") + len("BEGIN"):]
        body = re.sub(r"LIMIT\(MN := ([^,]+), IN := ([^,]+), MX := ([^)]+)\)", r"LIMIT(\1, \2, \3)", scl_code(body))
        body = re.sub(r"(?<!\w)#(?=[A-Za-z_])", "", body)         # #Local -> Local; T#0MS stays
        assert " ".join(body.split()).replace(f"TO {n - 1} DO", "TO N-1 DO") == statements(st[n], n)


def test_scl_data_blocks_publish_every_tag_at_its_size():
    blocks = scl_data_blocks(SCL.read_text())
    layout = PlcLayout(SHAPES, 64, "s7-1500")
    scl_types = {"REAL": "Real", "UDINT": "UDInt", "INT": "Int", "BOOL": "Bool"}
    for k in range(len(SHAPES)):
        assert blocks[f"PlcAnna_L{k}"] == {
            name: (scl_types[kind], layout.length(k, name), "True" if name in WRITTEN_TAGS else "False")
            for name, (kind, _) in LAYER_TAGS.items()}
    assert blocks["PlcAnna_Device"] == {"DeviceAge": ("LReal", None, "False"),
                                        "DeviceTemperature": ("LReal", None, "False")}


# ------------------------------------------------------------------------------------------- PLCopen XML
XML = EXAMPLES / "plcopen" / "plc_anna_ld.xml"


def test_stored_schema_is_the_published_one():
    assert hashlib.sha256(XSD.read_bytes()).hexdigest() == XSD_SHA256


def test_plcopen_xml_is_valid_tc6():
    errors = tc6_errors(XML.read_text())
    assert not errors, "\n".join(errors[:5])


def test_plcopen_graphics_are_wired():
    """Beyond the schema: local ids are unique per body and every connection points at one of them."""
    tree = ElementTree.parse(XML).getroot()
    ladders = tree.findall(f".//{PPX}LD")
    assert len(ladders) == 2, "the watchdog and the program in ladder"
    for body in ladders:
        ids = [element.get("localId") for element in body if element.get("localId") is not None]
        assert len(ids) == len(set(ids))
        refs = {c.get("refLocalId") for c in body.iter(f"{PPX}connection")}
        assert refs <= set(ids), f"connections to missing elements: {refs - set(ids)}"
        assert body.findall(f"{PPX}leftPowerRail") and body.findall(f"{PPX}rightPowerRail")
    program = next(p for p in tree.iter(f"{PPX}pou") if p.get("name") == "PRG_PlcAnnaLD")
    calls = {b.get("instanceName"): b.get("typeName") for b in program.iter(f"{PPX}block")}
    assert calls == {**{f"fbL{k}": f"FB_AnnaCorrection_{n_out}" for k, (_, n_out) in enumerate(SHAPES)},
                     "fbWatchdog": "FB_HeartbeatWatchdog"}


def test_plcopen_function_blocks_are_the_st_ones():
    tree = ElementTree.parse(XML).getroot()
    summaries, sections = codesys_blocks()
    pous = [p for p in tree.iter(f"{PPX}pou") if p.get("name").startswith("FB_AnnaCorrection_")]
    assert sorted(p.get("name") for p in pous) == sorted(summaries)
    for pou in pous:
        n = int(pou.get("name").rsplit("_", 1)[1])
        for tag, block in (("inputVars", "VAR_INPUT"), ("outputVars", "VAR_OUTPUT"), ("localVars", "VAR")):
            found = {}
            for variable in pou.find(f"{PPX}interface/{PPX}{tag}"):
                kind = variable.find(f"{PPX}type")[0]
                if kind.tag == f"{PPX}array":
                    base = kind.find(f"{PPX}baseType")[0].tag.removeprefix(PPX)
                    assert kind.find(f"{PPX}dimension").attrib == {"lower": "0", "upper": str(n - 1)}
                    kind_text = f"ARRAY OF {base}"
                else:
                    kind_text = kind.tag.removeprefix(PPX)
                initial = variable.find(f"{PPX}initialValue/{PPX}simpleValue")
                found[variable.get("name")] = (kind_text, "None" if initial is None else initial.get("value"))
            expected = {name: (kind, value.replace("TIME#", "T#"))
                        for name, (kind, value) in declarations(summaries[pou.get("name")], block).items()}
            assert found == expected
        body = "".join(pou.find(f"{PPX}body/{PPX}ST").itertext())
        assert statements("END_VAR" + body, n) == statements(sections[n], n)


def test_plcopen_global_lists_are_the_layout():
    tree = ElementTree.parse(XML).getroot()
    layout = PlcLayout(SHAPES, 64, "plcopen-xml")
    lists = {g.get("name"): g for g in tree.iter(f"{PPX}globalVars") if g.get("name")}
    assert set(lists) == {f"GVL_PlcAnna_L{k}" for k in range(len(SHAPES))} | {"GVL_Device"}
    for k in range(len(SHAPES)):
        found = {}
        for variable in lists[f"GVL_PlcAnna_L{k}"]:
            kind = variable.find(f"{PPX}type")[0]
            if kind.tag == f"{PPX}array":
                found[variable.get("name")] = (kind.find(f"{PPX}baseType")[0].tag.removeprefix(PPX),
                                               int(kind.find(f"{PPX}dimension").get("upper")) + 1)
            else:
                found[variable.get("name")] = (kind.tag.removeprefix(PPX), None)
        assert found == {name: (kind, layout.length(k, name)) for name, (kind, _) in LAYER_TAGS.items()}


# ------------------------------------------------------------------------------------- one specification
def test_open_decisions_read_the_same_everywhere():
    reference = decisions(logic.__doc__)
    assert [d.split(".")[0] for d in reference] == [f"D{k}" for k in range(1, 12)]
    assert contract_decisions() == reference
    texts = {"docs/plc-side.md": (ROOT / "docs" / "plc-side.md").read_text()}
    texts.update({str(p.relative_to(ROOT)): p.read_text() for p in FB_FILES + [SCL, XML]})
    for name, text in texts.items():
        found = decisions(text)
        assert found and len(found) % len(reference) == 0, name
        for start in range(0, len(found), len(reference)):          # once per block in the file
            assert found[start:start + len(reference)] == reference, name
