"""Siemens S7-1500: one SCL source file (TIA Portal: External source files > Generate blocks from source).

It holds the correction block per layer width (``"FB_AnnaCorrection_<N>"``), a global DB per layer
(``"PlcAnna_L<k>"``, published to the CPU's OPC UA server, writable only the four plc-anna writes),
``"PlcAnna_Device"``, an instance DB per layer and the cyclic interrupt OB that calls the blocks and
records the traces.

A data block with optimized access holds at most :data:`S7_MAX_DB_BYTES` on the smallest S7-1500
CPU (1511): a layer whose DB would be larger is refused (:func:`check_sizes`) before anything is written.
"""

from __future__ import annotations

from plc_anna.contract.layout import LAYER_TAGS, WRITTEN_TAGS
from plc_anna.plccode.block import (INPUTS, LOCALS, OUTPUTS, PARAMETER_COMMENTS, TEMPORARIES, block_name, in_words,
                                    parameter_defaults, scl_statements, summary_lines)
from plc_anna.plccode.program import PlcProgram
from plc_anna.plccode.st import TAG_COMMENTS

#: Largest data block with optimized access on a CPU 1511, the smallest S7-1500 (larger CPUs allow more).
S7_MAX_DB_BYTES = 1024 * 1024
#: Bytes per element in an optimized DB.
S7_BYTES = {"REAL": 4, "LREAL": 8, "UDINT": 4, "DINT": 4, "INT": 2, "BOOL": 1}
SCL_TYPES = {"REAL": "Real", "LREAL": "LReal", "UDINT": "UDInt", "DINT": "DInt", "INT": "Int", "BOOL": "Bool",
             "TIME": "Time"}


def scl_type(plc_type: str, length: int | None = None) -> str:
    """``Array[0..n-1] of Real``, ``UDInt``, ...

    >>> scl_type("REAL", 4), scl_type("UDINT")
    ('Array[0..3] of Real', 'UDInt')
    """
    base = SCL_TYPES[plc_type]
    return base if length is None else f"Array[0..{length - 1}] of {base}"


def db_bytes(program: PlcProgram, k: int) -> int:
    """Bytes of layer k's global DB (optimized access)."""
    layout = program.layout
    return sum(S7_BYTES[LAYER_TAGS[tag][0]] * (layout.length(k, tag) or 1) for tag in layout.layer_tags())


def check_sizes(program: PlcProgram) -> None:
    """ValueError naming the first layer whose DB exceeds the S7-1500 limit."""
    for k in range(len(program.shapes)):
        size = db_bytes(program, k)
        if size > S7_MAX_DB_BYTES:
            raise ValueError(
                f"{program.network}: layer {k}'s data block \"{program.layout.style.variable_list(k)}\" needs "
                f"{size} bytes, more than the {S7_MAX_DB_BYTES} an S7-1500 (CPU 1511) data block holds: give a "
                f"shorter trace length than {program.trace_length}")


def function_block(n: int, program: PlcProgram) -> str:
    lines = [f'FUNCTION_BLOCK "{block_name(n)}"', "TITLE = plc-anna correction block",
             "{ S7_Optimized_Access := 'TRUE' }", "VERSION : 0.1"]
    lines += [f"// {line}".rstrip() for line in summary_lines(n)[:1]]
    lines += ["   VAR_INPUT "]
    lines += [_declaration(name, kind, n, text) for name, kind, text in INPUTS]
    for name, (kind, literal) in parameter_defaults(program.parameters).items():
        lines.append(_declaration(name, kind, n, PARAMETER_COMMENTS.get(name, ""), literal))
    lines += ["   END_VAR", "", "   VAR_OUTPUT "]
    lines += [_declaration(name, kind, n, text) for name, kind, text in OUTPUTS]
    lines += ["   END_VAR", "", "   VAR "]
    lines += [_declaration(name, kind, n, "", value) for name, kind, value in LOCALS if name not in TEMPORARIES]
    lines += ["   END_VAR", "", "   VAR_TEMP "]
    lines += [_declaration(name, kind, n, "", value) for name, kind, value in LOCALS if name in TEMPORARIES]
    lines += ["   END_VAR", "", "", "BEGIN"]
    lines += [f"\t// {line}".rstrip() for line in summary_lines(n)[1:]]
    lines += ["\t"] + [f"\t{line}".rstrip() for line in scl_statements(n).splitlines()]
    lines += ["END_FUNCTION_BLOCK", ""]
    return "\n".join(lines)


def _declaration(name: str, kind: str, n: int, text: str = "", value: str | None = None) -> str:
    kind = scl_type("REAL", n) if kind == "ARRAY" else SCL_TYPES[kind]
    line = f"      {name} : {kind}{f' := {value}' if value is not None else ''};"
    return f"{line}   // {text}" if text else line


def global_db(program: PlcProgram, k: int) -> str:
    layout = program.layout
    name = layout.style.variable_list(k)
    lines = [f'DATA_BLOCK "{name}"', f"TITLE = plc-anna tags of {program.describe(k)}",
             "{ S7_Optimized_Access := 'TRUE' }", "VERSION : 0.1", "NON_RETAIN", "   VAR "]
    for tag in layout.layer_tags():
        length = layout.length(k, tag)
        writable = "True" if tag in WRITTEN_TAGS else "False"
        start = f" := [{length}(1.0)]" if tag in ("GainSet", "AppliedGain") else ""
        line = (f"      {tag} {{ ExternalAccessible := 'True'; ExternalVisible := 'True'; ExternalWritable := "
                f"'{writable}'}} : {scl_type(LAYER_TAGS[tag][0], length)}{start};")
        lines.append(f"{line}   // {TAG_COMMENTS[tag]}" if tag in TAG_COMMENTS else line)
    lines += ["   END_VAR", "", "BEGIN", "", "END_DATA_BLOCK", ""]
    return "\n".join(lines)


def device_db(program: PlcProgram) -> str:
    name = program.layout.style.variable_list(None)
    access = "{ ExternalAccessible := 'True'; ExternalVisible := 'True'; ExternalWritable := 'False'}"
    return "\n".join([
        f'DATA_BLOCK "{name}"', "TITLE = age and temperature of the analog network, read by plc-anna",
        "{ S7_Optimized_Access := 'TRUE' }", "VERSION : 0.1", "NON_RETAIN",
        "// Your program keeps DeviceAge (s since programming) and DeviceTemperature (K) up to date; if the PLC",
        "// does not know them, delete age_s and temperature_k from the tag map and set device.programmed_at.",
        "   VAR ", f"      DeviceAge {access} : LReal;", f"      DeviceTemperature {access} : LReal := 300.0;",
        "   END_VAR", "", "BEGIN", "", "END_DATA_BLOCK", ""])


def instance_db(program: PlcProgram, k: int) -> str:
    return "\n".join([f'DATA_BLOCK "{instance(program, k)}"', "{ S7_Optimized_Access := 'TRUE' }", "VERSION : 0.1",
                      "NON_RETAIN", f'"{block_name(program.shapes[k][1])}"', "", "BEGIN", "", "END_DATA_BLOCK", ""])


def instance(program: PlcProgram, k: int) -> str:
    return f"{program.layout.style.variable_list(k)}_Correction"


def cyclic_ob(program: PlcProgram) -> str:
    style = program.layout.style
    parameters = parameter_defaults(program.parameters)
    cycle = in_words(program.parameters.cycle_s)
    lines = ['ORGANIZATION_BLOCK "PlcAnna_Cyclic"', f"TITLE = plc-anna correction every {cycle}",
             "{ S7_Optimized_Access := 'TRUE' }", "VERSION : 0.1"]
    if program.trace_length:
        lines += ["   VAR_TEMP ", "      Row : DInt;", "      i : DInt;", "   END_VAR", ""]
    lines += ["BEGIN",
              f"\t// A cyclic interrupt OB (OB30) with a {cycle} cycle: CycleTime below must equal that "
              "interval.",
              "\t// Your I/O scaling fills each layer's Inputs and RawOutputs before these calls; use CorrectedOutputs",
              "\t// downstream instead of the raw outputs."]
    for k, (n_in, n_out) in enumerate(program.shapes):
        db = f'"{style.variable_list(k)}"'
        arguments = [f"{name} := {db}.{name}" for name, _, _ in INPUTS]
        arguments += [f"CycleTime := {parameters['CycleTime'][1]}",
                      f"HeartbeatTimeout := {parameters['HeartbeatTimeout'][1]}"]
        arguments += [f"{name} => {db}.{name}" for name, _, _ in OUTPUTS]
        lines += ["\t", f"\t// {program.describe(k)}", f'\t"{instance(program, k)}"({arguments[0]},']
        lines += [f"\t    {argument}," for argument in arguments[1:-1]] + [f"\t    {arguments[-1]});"]
        if program.trace_length:
            length = program.trace_length
            lines += [f"\t// trace: this cycle's sample into row TraceCount MOD {length}; the count last",
                      f"\t#Row := UDINT_TO_DINT({db}.TraceCount MOD {length});",
                      f"\tFOR #i := 0 TO {n_in - 1} DO",
                      f"\t    {db}.TraceInputs[#Row * {n_in} + #i] := {db}.Inputs[#i];", "\tEND_FOR;",
                      f"\tFOR #i := 0 TO {n_out - 1} DO",
                      f"\t    {db}.TraceRawOutputs[#Row * {n_out} + #i] := {db}.RawOutputs[#i];", "\tEND_FOR;",
                      f"\t{db}.TraceCount := {db}.TraceCount + 1;   // UDInt: wraps to 0 after 4294967295"]
    lines += ["END_ORGANIZATION_BLOCK", ""]
    return "\n".join(lines)


def files(program: PlcProgram) -> dict[str, str]:
    """``plc_anna.scl``: every block of the S7-1500 program, in dependency order."""
    check_sizes(program)
    header = (f"// plc-anna: the PLC side of '{program.label}' ({len(program.shapes)} layers) for Siemens S7-1500, "
              "SCL source.\n// Import: TIA Portal > External source files > Add new external file > this file > "
              "Generate blocks from source.\n\n")
    parts = [function_block(n, program) for n in program.widths]
    parts += [global_db(program, k) for k in range(len(program.shapes))] + [device_db(program)]
    parts += [instance_db(program, k) for k in range(len(program.shapes))] + [cyclic_ob(program)]
    return {"plc_anna.scl": header + "\n".join(parts)}


__all__ = ["S7_BYTES", "S7_MAX_DB_BYTES", "check_sizes", "db_bytes", "files", "scl_type"]
