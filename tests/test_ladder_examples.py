"""The IEC 61131-3 examples in ladder_examples/ parse, declare the specification's interface and agree.

- Every ``.st`` file is parsed with blark (a test tool only: the package never imports it). blark 0.8
  has no rule for ``CONFIGURATION``, so the OpenPLC program's configuration block is cut off and
  checked on its own.
- The Siemens SCL source is not IEC ST and blark does not read it: it is checked for closed blocks, the
  specification's names and types, and a body equal to the ST one once the SCL notation is removed.
- Every PLCopen ``.xml`` file is validated against the TC6 v2.01 schema in ``tests/data/plcopen``.
- The open decisions (D1 ...) read the same in the docs, the Python reference and every block.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
import re
from pathlib import Path
from xml.etree import ElementTree

import blark.parse as blark_parse
import blark.summary as blark_summary
import blark.transform as blark_transform
import pytest
import xmlschema

from plc_anna.contract import logic

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "ladder_examples"
XSD = ROOT / "tests" / "data" / "plcopen" / "tc6_xml_v201.xsd"
XSD_SHA256 = "db546a6d1847fee06268fa29baf9f643c8bdd75b3ad083eb9ebd4bfa93cb6c9b"
ST_FILES = sorted(EXAMPLES.rglob("*.st"))
XML_FILES = sorted(EXAMPLES.rglob("*.xml"))
SCL_FILES = sorted(EXAMPLES.rglob("*.scl"))
FB_FILES = [EXAMPLES / "codesys" / "FB_AnnaCorrection.st", EXAMPLES / "twincat" / "FB_AnnaCorrection.st",
            EXAMPLES / "openplc" / "plc_anna_openplc.st"]
PPX = "{http://www.plcopen.org/xml/tc6_0201}"

ARRAY = "ARRAY OF REAL"
SPEC_INPUTS = {"RawOutputs": ARRAY, "GainSet": ARRAY, "OffsetSet": ARRAY, "CommitCounter": "UDINT",
               "Heartbeat": "UDINT", "CycleTime": "TIME", "GainMin": "REAL", "GainMax": "REAL", "OffsetMin": "REAL",
               "OffsetMax": "REAL", "MaxGainStep": "REAL", "MaxOffsetStep": "REAL", "HeartbeatTimeout": "TIME"}
SPEC_OUTPUTS = {"CorrectedOutputs": ARRAY, "AppliedGain": ARRAY, "AppliedOffset": ARRAY, "AcceptedCommit": "UDINT",
                "Fault": "BOOL", "PlcHeartbeat": "UDINT", "Status": "INT"}
SPEC_DEFAULTS = {"CycleTime": 0.010, "GainMin": 0.25, "GainMax": 4.0, "OffsetMin": -1.0e6, "OffsetMax": 1.0e6,
                 "MaxGainStep": 0.02, "MaxOffsetStep": 1.0e6, "HeartbeatTimeout": 0.5}
PYTHON_NAMES = {"GainMin": "gain_min", "GainMax": "gain_max", "OffsetMin": "offset_min", "OffsetMax": "offset_max",
                "MaxGainStep": "max_gain_step", "MaxOffsetStep": "max_offset_step",
                "HeartbeatTimeout": "heartbeat_timeout_s"}
WRITTEN_TAGS = {"GainSet": ARRAY, "OffsetSet": ARRAY, "CommitCounter": "UDINT", "Heartbeat": "UDINT"}
READ_TAGS = {"Inputs": ARRAY, "RawOutputs": ARRAY, "CorrectedOutputs": ARRAY, "AppliedGain": ARRAY,
             "AppliedOffset": ARRAY, "AcceptedCommit": "UDINT", "PlcHeartbeat": "UDINT", "Fault": "BOOL",
             "Status": "INT"}
BOUNDS = {"7", "GVL_PlcAnna.N_OUTPUTS - 1", "15", "GVL_PlcAnna.N_INPUTS - 1"}


# ----------------------------------------------------------------------------------------------- helpers
def split_configuration(source: str) -> tuple[str, str]:
    """``(source without its CONFIGURATION block, the block)``: blark 0.8 has no rule for configurations."""
    match = re.search(r"^CONFIGURATION\b.*?^END_CONFIGURATION\s*$", source, flags=re.DOTALL | re.MULTILINE)
    if match is None:
        return source, ""
    return source[:match.start()] + source[match.end():], match.group(0)


@functools.cache
def parse(path: Path):
    source, _ = split_configuration(path.read_text())
    result = blark_parse.parse_source_code(source, fn=str(path))
    assert result.exception is None, f"{path.relative_to(ROOT)}: {result.exception}"
    return result.transform().items


def normalise_type(text: str) -> str:
    """``ARRAY [0..7] OF REAL`` -> ``ARRAY OF REAL`` (the bound is checked apart); SCL spellings upper-cased."""
    text = " ".join(text.split()).upper()
    match = re.fullmatch(r"ARRAY\s*\[\s*0\s*\.\.\s*(.+?)\s*\]\s*OF\s*(\w+)", text)
    if match:
        assert match.group(1) in {b.upper() for b in BOUNDS}, f"unexpected array bound {match.group(1)}"
        return f"ARRAY OF {match.group(2)}"
    return text


def seconds(value: str) -> float:
    """An IEC literal as a number: ``T#500MS``/``TIME#500MS`` -> 0.5, ``-1.0E6`` -> -1e6."""
    match = re.fullmatch(r"(?:T|TIME)#(\d+)(MS|S)", value.strip().upper())
    if match:
        return int(match.group(1)) / (1000 if match.group(2) == "MS" else 1)
    return float(value)


def function_block(path: Path):
    blocks = [item for item in parse(path) if isinstance(item, blark_transform.FunctionBlock)]
    assert [str(b.name) for b in blocks] == ["FB_AnnaCorrection"]
    return blark_summary.FunctionBlockSummary.from_function_block(blocks[0])


def declarations(summary, block: str) -> dict[str, tuple[str, str]]:
    return {d.name: (normalise_type(d.type), d.value) for d in summary.declarations.values() if d.block == block}


def fb_section(path: Path) -> str:
    """``FUNCTION_BLOCK`` … ``END_FUNCTION_BLOCK`` of a file, array bounds written as the literal 7."""
    text = path.read_text()
    section = text[text.index("FUNCTION_BLOCK FB_AnnaCorrection"):text.index("END_FUNCTION_BLOCK")]
    return section.replace("GVL_PlcAnna.N_OUTPUTS - 1", "7")


def st_statements(section: str) -> str:
    """The statements of an ST function block (after its last ``END_VAR``), comments and layout removed."""
    body = section[section.rindex("END_VAR") + len("END_VAR"):]
    return " ".join(re.sub(r"\(\*.*?\*\)", " ", body, flags=re.DOTALL).split())


def decisions(text: str) -> list[str]:
    return re.findall(r"\b(D\d{1,2}\. [^\n]*?)\s*(?:\*\))?\s*$", text, flags=re.MULTILINE)


# ------------------------------------------------------------------------------------------ ST with blark
def test_examples_are_all_there():
    assert {p.parent.name for p in ST_FILES} == {"codesys", "twincat", "openplc"}
    assert SCL_FILES and XML_FILES


@pytest.mark.parametrize("path", ST_FILES, ids=[str(p.relative_to(EXAMPLES)) for p in ST_FILES])
def test_st_parses_with_blark(path):
    assert parse(path)


@pytest.mark.parametrize("path", FB_FILES, ids=[str(p.relative_to(EXAMPLES)) for p in FB_FILES])
def test_function_block_declares_the_spec(path):
    summary = function_block(path)
    inputs, outputs = declarations(summary, "VAR_INPUT"), declarations(summary, "VAR_OUTPUT")
    assert {name: kind for name, (kind, _) in inputs.items()} == SPEC_INPUTS
    assert {name: kind for name, (kind, _) in outputs.items()} == SPEC_OUTPUTS
    assert {name: seconds(inputs[name][1]) for name in SPEC_DEFAULTS} == SPEC_DEFAULTS


def test_python_reference_has_the_spec_defaults():
    parameters = inspect.signature(logic.CorrectionBlock).parameters
    assert {st: parameters[py].default for st, py in PYTHON_NAMES.items()} == \
        {st: SPEC_DEFAULTS[st] for st in PYTHON_NAMES}


def test_function_blocks_are_one_text():
    """TwinCAT shares the CODESYS block; OpenPLC's differs only by literal array bounds."""
    codesys, twincat, openplc = FB_FILES
    assert twincat.read_text() == codesys.read_text()
    assert fb_section(openplc) == fb_section(codesys)


@pytest.mark.parametrize("folder,pragma,written,read", [
    ("codesys", r"\{attribute 'symbol' := '(\w+)'\}", "readwrite", "read"),
    ("twincat", r"\{attribute 'OPC.UA.DA.Access' := '(\d)'\}", "3", "1"),
])
def test_global_variable_list_publishes_the_tags(folder, pragma, written, read):
    path = EXAMPLES / folder / "GVL_PlcAnna.st"
    tags = {}
    for item in parse(path):
        if isinstance(item, blark_transform.GlobalVariableDeclarations):
            summary = blark_summary.GlobalVariableSummary.from_globals(item)
            tags.update({d.name: normalise_type(d.type) for d in summary.declarations.values()})
    assert {name: tags[name] for name in {**WRITTEN_TAGS, **READ_TAGS}} == {**WRITTEN_TAGS, **READ_TAGS}
    access = {m.group(2): m.group(1) for m in re.finditer(pragma + r"\s*(\w+)\s*:", path.read_text())}
    assert access == {**dict.fromkeys(WRITTEN_TAGS, written), **dict.fromkeys(READ_TAGS, read)}
    if folder == "twincat":
        assert path.read_text().count("{attribute 'OPC.UA.DA' := '1'}") == len(access)


@pytest.mark.parametrize("path", [EXAMPLES / "codesys" / "PRG_PlcAnna.st", EXAMPLES / "twincat" / "MAIN.st",
                                  EXAMPLES / "openplc" / "plc_anna_openplc.st"], ids=lambda p: p.parent.name)
def test_program_calls_the_block(path):
    programs = [item for item in parse(path) if isinstance(item, blark_transform.Program)]
    assert len(programs) == 1
    text = path.read_text()
    assert re.search(r"fbCorrection\s*:\s*FB_AnnaCorrection\s*;", text)
    call = text[text.index("fbCorrection("):]
    call = call[:call.index(");")]
    for name in ("RawOutputs", "GainSet", "OffsetSet", "CommitCounter", "Heartbeat", "CycleTime"):
        assert re.search(rf"\b{name}\s*:=", call), f"the call does not pass {name}"


# -------------------------------------------------------------------------------------- OpenPLC and Modbus
def register_map() -> dict[str, tuple[int, int, str]]:
    """``tag -> (first %MD, first register, type)`` from the table in openplc/README.md."""
    rows = re.findall(r"^\| (\w+) \| [^|]+ \| %MD(\d+) \| (\d+) \| [^|]+ \| (\w+) \|",
                      (EXAMPLES / "openplc" / "README.md").read_text(), flags=re.MULTILINE)
    return {tag: (int(md), int(register), kind) for tag, md, register, kind in rows}


def test_register_map_is_consistent():
    table = register_map()
    assert set(table) == {*WRITTEN_TAGS, *READ_TAGS}
    spans = sorted((md, md + (64 if tag == "Inputs" else 32 if kind == "REAL" else 1))
                   for tag, (md, _, kind) in table.items())              # reserved: 32 outputs, 64 inputs
    for tag, (md, register, _) in table.items():
        assert register == 2048 + 2 * md, tag                    # OpenPLC: %MDk is holding register 2048 + 2k
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert end <= next_start, "blocks of the register map overlap"
    assert spans[-1][1] <= 1024


def test_openplc_program_follows_the_register_map():
    path = EXAMPLES / "openplc" / "plc_anna_openplc.st"
    program = next(item for item in parse(path) if isinstance(item, blark_transform.Program))
    located = {str(d.name): (str(d.location).removeprefix("AT ").strip(), str(d.init.base_type_name))
               for block in program.declarations if isinstance(block, blark_transform.LocatedVariableDeclarations)
               for d in block.items}
    table = register_map()
    expected = {}
    for tag, (md, _, kind) in table.items():
        count = {"Inputs": 16}.get(tag, 8) if kind == "REAL" else 1
        for index in range(count):
            expected[f"Mb{tag}{index}" if kind == "REAL" else f"Mb{tag}"] = (f"%MD{md + index}", kind)
    assert located == expected


def test_openplc_configuration_runs_the_program_at_the_cycle_time():
    text = (EXAMPLES / "openplc" / "plc_anna_openplc.st").read_text()
    _, configuration = split_configuration(text)
    assert re.search(r"TASK (\w+)\(INTERVAL := T#10MS, PRIORITY := 0\);", configuration)
    assert re.search(r"PROGRAM \w+ WITH \w+ : PlcAnnaModbus;", configuration)
    assert "END_RESOURCE" in configuration and "CycleTime := T#10MS" in text


# ------------------------------------------------------------------------------------------- Siemens SCL
SCL_OPENERS = {"FUNCTION_BLOCK": "END_FUNCTION_BLOCK", "DATA_BLOCK": "END_DATA_BLOCK",
               "ORGANIZATION_BLOCK": "END_ORGANIZATION_BLOCK", "IF": "END_IF", "FOR": "END_FOR",
               "VAR_INPUT": "END_VAR", "VAR_OUTPUT": "END_VAR", "VAR_TEMP": "END_VAR", "VAR": "END_VAR"}


def scl_code(text: str) -> str:
    """SCL without comments (``//``, ``(* *)``) and without single-quoted strings."""
    text = re.sub(r"\(\*.*?\*\)", " ", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r"'[^']*'", "''", text)


@pytest.mark.parametrize("path", SCL_FILES, ids=lambda p: p.name)
def test_scl_blocks_are_closed(path):
    code = scl_code(path.read_text())
    stack = []
    for token in re.findall(r"\b(?:END_\w+|FUNCTION_BLOCK|DATA_BLOCK|ORGANIZATION_BLOCK|IF|FOR|VAR_\w+|VAR|"
                            r"ELSIF|ELSE|BEGIN)\b", code):
        if token in SCL_OPENERS:
            stack.append(token)
        elif token.startswith("END_"):
            assert stack and SCL_OPENERS[stack.pop()] == token, f"{token} closes nothing open"
        elif token in ("ELSIF", "ELSE"):
            assert stack and stack[-1] == "IF", f"{token} outside IF"
        else:                                                   # BEGIN: only at a block's top level
            assert len(stack) == 1 and stack[0].endswith("_BLOCK"), "BEGIN inside a nested construct"
    assert stack == []
    for statement in code.split(";"):                            # brackets close within each statement
        assert statement.count("(") == statement.count(")") and statement.count("[") == statement.count("]"), \
            " ".join(statement.split())
    assert code.count("BEGIN") == len(re.findall(r"\bEND_(?:FUNCTION_BLOCK|DATA_BLOCK|ORGANIZATION_BLOCK)\b", code))


def scl_function_block(path: Path) -> str:
    text = path.read_text()
    return text[text.index('FUNCTION_BLOCK "FB_AnnaCorrection"'):text.index("END_FUNCTION_BLOCK")]


def scl_declarations(section: str, block: str) -> dict[str, tuple[str, str | None]]:
    match = re.search(rf"^\s*{block}\s*\n(.*?)^\s*END_VAR", scl_code(section), flags=re.DOTALL | re.MULTILINE)
    found = {}
    for name, kind, value in re.findall(r"^\s*(\w+)\s*:\s*([^:;]+?)\s*(?::=\s*([^;]+?))?\s*;", match.group(1),
                                        flags=re.MULTILINE):
        found[name] = (normalise_type(kind), value or None)
    return found


@pytest.mark.parametrize("path", SCL_FILES, ids=lambda p: p.name)
def test_scl_function_block_matches_the_st_one(path):
    scl = scl_function_block(path)
    st = function_block(FB_FILES[2])
    for block in ("VAR_INPUT", "VAR_OUTPUT", "VAR"):
        expected = {name: (kind, None if value == "None" else value.replace("TIME#", "T#"))
                    for name, (kind, value) in declarations(st, block).items()}
        if block == "VAR":                                      # SCL keeps the loop variables in VAR_TEMP
            expected = {k: v for k, v in expected.items() if k not in ("Delta", "j")}
            assert scl_declarations(scl, "VAR_TEMP") == {"Delta": ("REAL", None), "j": ("DINT", None)}
        assert scl_declarations(scl, block) == expected
    body = scl[scl.index("BEGIN") + len("BEGIN"):]
    body = re.sub(r"LIMIT\(MN := ([^,]+), IN := ([^,]+), MX := ([^)]+)\)", r"LIMIT(\1, \2, \3)", scl_code(body))
    body = re.sub(r"(?<!\w)#(?=[A-Za-z_])", "", body)         # #Local -> Local; T#0MS stays
    assert " ".join(body.split()) == st_statements(fb_section(FB_FILES[2]))


@pytest.mark.parametrize("path", SCL_FILES, ids=lambda p: p.name)
def test_scl_global_db_publishes_the_tags(path):
    text = path.read_text()
    db = text[text.index('DATA_BLOCK "PlcAnna"'):]
    db = db[:db.index("END_DATA_BLOCK")]
    tags = {name: (normalise_type(kind), writable) for name, writable, kind in re.findall(
        r"^\s*(\w+) \{ ExternalAccessible := 'True'; ExternalVisible := 'True'; ExternalWritable := '(\w+)'\} : "
        r"([^;]+);", db, flags=re.MULTILINE)}
    assert tags == {**{n: (k, "True") for n, k in WRITTEN_TAGS.items()},
                    **{n: (k, "False") for n, k in READ_TAGS.items()}}


# ------------------------------------------------------------------------------------------- PLCopen XML
def test_stored_schema_is_the_published_one():
    assert hashlib.sha256(XSD.read_bytes()).hexdigest() == XSD_SHA256


@pytest.fixture(scope="module")
def tc6_schema():
    return xmlschema.XMLSchema(str(XSD))


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: p.name)
def test_plcopen_xml_is_valid_tc6(path, tc6_schema):
    errors = list(tc6_schema.iter_errors(str(path)))
    assert not errors, "\n".join(f"{e.path}: {e.reason}" for e in errors[:5])


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: p.name)
def test_plcopen_graphics_are_wired(path):
    """Beyond the schema: local ids are unique per body and every connection points at one of them."""
    tree = ElementTree.parse(path).getroot()
    ladders = tree.findall(f".//{PPX}LD")
    assert ladders, "no ladder diagram"
    for body in ladders + tree.findall(f".//{PPX}FBD"):
        ids = [element.get("localId") for element in body if element.get("localId") is not None]
        assert len(ids) == len(set(ids))
        refs = {c.get("refLocalId") for c in body.iter(f"{PPX}connection")}
        assert refs <= set(ids), f"connections to missing elements: {refs - set(ids)}"
        assert body.findall(f"{PPX}leftPowerRail") and body.findall(f"{PPX}rightPowerRail") or body.tag.endswith("FBD")


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: p.name)
def test_plcopen_function_block_is_the_st_one(path):
    tree = ElementTree.parse(path).getroot()
    pou = next(p for p in tree.iter(f"{PPX}pou") if p.get("name") == "FB_AnnaCorrection")
    st = function_block(FB_FILES[2])
    for tag, block in (("inputVars", "VAR_INPUT"), ("outputVars", "VAR_OUTPUT"), ("localVars", "VAR")):
        found = {}
        for variable in pou.find(f"{PPX}interface/{PPX}{tag}"):
            kind = variable.find(f"{PPX}type")[0]
            if kind.tag == f"{PPX}array":
                base = kind.find(f"{PPX}baseType")[0].tag.removeprefix(PPX)
                assert kind.find(f"{PPX}dimension").attrib == {"lower": "0", "upper": "7"}
                kind_text = f"ARRAY OF {base}"
            else:
                kind_text = kind.tag.removeprefix(PPX)
            initial = variable.find(f"{PPX}initialValue/{PPX}simpleValue")
            found[variable.get("name")] = (kind_text, "None" if initial is None else initial.get("value"))
        expected = {name: (kind, value.replace("TIME#", "T#")) for name, (kind, value) in declarations(st, block).items()}
        assert found == expected
    body = "".join(pou.find(f"{PPX}body/{PPX}ST").itertext())
    assert " ".join(re.sub(r"\(\*.*?\*\)", " ", body, flags=re.DOTALL).split()) == st_statements(fb_section(FB_FILES[2]))


# ------------------------------------------------------------------------------------- one specification
def test_open_decisions_read_the_same_everywhere():
    reference = decisions(logic.__doc__)
    assert [d.split(".")[0] for d in reference] == [f"D{k}" for k in range(1, 12)]
    texts = {"docs/plc-side.md": (ROOT / "docs" / "plc-side.md").read_text()}
    texts.update({str(p.relative_to(ROOT)): p.read_text() for p in FB_FILES + SCL_FILES + XML_FILES})
    for name, text in texts.items():
        assert decisions(text) == reference, name
