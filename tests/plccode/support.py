"""The independent checks of generated PLC code: blark for ST, the TC6 schema for PLCopen XML, a structural
reading of SCL (blark does not read it). blark is GPL: it is imported here, in the tests, never by the package."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import blark.parse as blark_parse
import blark.summary as blark_summary
import blark.transform as blark_transform
import xmlschema

ROOT = Path(__file__).resolve().parents[2]
XSD = ROOT / "tests" / "data" / "plcopen" / "tc6_xml_v201.xsd"
PPX = "{http://www.plcopen.org/xml/tc6_0201}"


def split_configuration(source: str) -> tuple[str, str]:
    """``(source without its CONFIGURATION block, the block)``: blark 0.8 has no rule for configurations."""
    match = re.search(r"^CONFIGURATION\b.*?^END_CONFIGURATION\s*$", source, flags=re.DOTALL | re.MULTILINE)
    if match is None:
        return source, ""
    return source[:match.start()] + source[match.end():], match.group(0)


@functools.cache
def parse_st(source: str, name: str = "<generated>"):
    """The items blark finds in ST ``source`` (its configuration cut off); AssertionError naming the error."""
    result = blark_parse.parse_source_code(split_configuration(source)[0], fn=name)
    assert result.exception is None, f"{name}: {result.exception}"
    return result.transform().items


def function_blocks(source: str, name: str = "<generated>") -> dict[str, object]:
    """``{block name: blark FunctionBlockSummary}`` of every function block in ``source``."""
    return {str(item.name): blark_summary.FunctionBlockSummary.from_function_block(item)
            for item in parse_st(source, name) if isinstance(item, blark_transform.FunctionBlock)}


def programs(source: str, name: str = "<generated>") -> list:
    return [item for item in parse_st(source, name) if isinstance(item, blark_transform.Program)]


def global_declarations(source: str, name: str = "<generated>") -> dict[str, str]:
    """``{variable: type}`` of every VAR_GLOBAL in ``source``, types with single spaces."""
    found = {}
    for item in parse_st(source, name):
        if isinstance(item, blark_transform.GlobalVariableDeclarations):
            summary = blark_summary.GlobalVariableSummary.from_globals(item)
            found.update({d.name: " ".join(str(d.type).split()) for d in summary.declarations.values()})
    return found


@functools.cache
def tc6_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def tc6_errors(text: str) -> list[str]:
    return [f"{e.path}: {e.reason}" for e in tc6_schema().iter_errors(text)]


def scl_code(text: str) -> str:
    """SCL without comments (``//``, ``(* *)``) and without single-quoted strings."""
    text = re.sub(r"\(\*.*?\*\)", " ", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r"'[^']*'", "''", text)


SCL_OPENERS = {"FUNCTION_BLOCK": "END_FUNCTION_BLOCK", "DATA_BLOCK": "END_DATA_BLOCK",
               "ORGANIZATION_BLOCK": "END_ORGANIZATION_BLOCK", "IF": "END_IF", "FOR": "END_FOR",
               "VAR_INPUT": "END_VAR", "VAR_OUTPUT": "END_VAR", "VAR_TEMP": "END_VAR", "VAR": "END_VAR"}


def check_scl_structure(text: str) -> None:
    """Every block, IF, FOR and VAR section closed in order; BEGIN once per block; brackets balanced per statement."""
    code = scl_code(text)
    stack: list[str] = []
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
    for statement in code.split(";"):
        assert statement.count("(") == statement.count(")") and statement.count("[") == statement.count("]"), \
            " ".join(statement.split())
    assert code.count("BEGIN") == len(re.findall(r"\bEND_(?:FUNCTION_BLOCK|DATA_BLOCK|ORGANIZATION_BLOCK)\b", code))


def scl_data_blocks(text: str) -> dict[str, dict[str, tuple[str, int | None, str]]]:
    """``{DB name: {variable: (SCL base type, array length or None, ExternalWritable)}}`` of the global DBs."""
    blocks = {}
    for name, body in re.findall(r'^DATA_BLOCK "(\w+)"\n(.*?)^END_DATA_BLOCK', text, flags=re.DOTALL | re.MULTILINE):
        found = {}
        for var, writable, kind in re.findall(r"^\s*(\w+) \{ ExternalAccessible := 'True'; ExternalVisible := "
                                              r"'True'; ExternalWritable := '(\w+)'\} : ([^;:]+?)(?: := [^;]+)?;",
                                              body, flags=re.MULTILINE):
            array = re.fullmatch(r"Array\[0\.\.(\d+)\] of (\w+)", kind.strip())
            found[var] = (array.group(2), int(array.group(1)) + 1, writable) if array else (kind.strip(), None,
                                                                                             writable)
        if found:
            blocks[name] = found
    return blocks
