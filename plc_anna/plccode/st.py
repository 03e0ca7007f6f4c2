"""CODESYS and TwinCAT 3: Structured Text objects, one file each, to paste or import into a project.

- ``FB_AnnaCorrection_<N>.st``: the correction block, one per layer width;
- ``GVL_PlcAnna_L<k>.st``: layer k's tags, published for the PLC's OPC UA server (CODESYS: symbol
  configuration pragmas; TwinCAT: ``OPC.UA.DA`` pragmas), writable only the four plc-anna writes;
- ``GVL_Device.st``: the network's age and temperature, if the PLC knows them;
- ``PRG_PlcAnna.st`` (CODESYS) or ``MAIN.st`` (TwinCAT): one block call per layer, then the layer's trace.

The OpenPLC writer (:mod:`plc_anna.plccode.openplc`) reuses the block and the trace statements.
"""

from __future__ import annotations

from plc_anna.contract.layout import LAYER_TAGS, WRITTEN_TAGS
from plc_anna.plccode.block import (INPUTS, LOCALS, OUTPUTS, PARAMETER_COMMENTS, array_type, block_name, iec_real,
                                    in_words, parameter_defaults, st_statements, summary_lines)
from plc_anna.plccode.program import PlcProgram

#: What a published tag says of itself in the GVL.
TAG_COMMENTS = {
    "GainSet": "written by plc-anna", "OffsetSet": "written by plc-anna",
    "CommitCounter": "written by plc-anna after each complete set, last in the batch",
    "Heartbeat": "written by plc-anna every scan",
    "Inputs": "the layer's digital inputs x, from your I/O scaling",
    "RawOutputs": "the layer's analog outputs y, from your I/O scaling",
    "CorrectedOutputs": "use these downstream instead of RawOutputs", "Status": "0 OK, 1 ramping, 2 holding, 3 rejected",
    "TraceCount": "samples recorded since the PLC started; sample s is row s MOD TRACE_LENGTH",
    "TraceInputs": "ring buffer: row r is elements r * N_INPUTS .. r * N_INPUTS + N_INPUTS - 1",
    "TraceRawOutputs": "ring buffer: row r is elements r * N_OUTPUTS .. r * N_OUTPUTS + N_OUTPUTS - 1",
}
#: How each family's OPC UA server is told to publish a tag, read-only or read-write.
PRAGMAS = {
    "codesys": lambda written: [f"{{attribute 'symbol' := '{'readwrite' if written else 'read'}'}}"],
    "twincat": lambda written: ["{attribute 'OPC.UA.DA' := '1'}",
                                f"{{attribute 'OPC.UA.DA.Access' := '{3 if written else 1}'}}"],
}
PROGRAM_NAMES = {"codesys": "PRG_PlcAnna", "twincat": "MAIN"}
FAMILY = {"codesys": "CODESYS", "twincat": "TwinCAT 3"}


def comment(lines: list[str], indent: str = "    ") -> str:
    """An ST block comment of ``lines``."""
    body = "\n".join(f"{indent}{line}".rstrip() for line in lines)
    return f"(*\n{body}\n*)\n"


def st_type(plc_type: str, length: int | None) -> str:
    return plc_type if length is None else array_type(length, plc_type)


def function_block(n_outputs: int, program: PlcProgram) -> str:
    """``FB_AnnaCorrection_<N>`` in Structured Text."""
    lines = [comment(summary_lines(n_outputs)), f"FUNCTION_BLOCK {block_name(n_outputs)}", "VAR_INPUT"]
    lines += [_declaration(name, kind, n_outputs, text) for name, kind, text in INPUTS]
    for name, (kind, literal) in parameter_defaults(program.parameters).items():
        lines.append(_declaration(name, kind, n_outputs, PARAMETER_COMMENTS.get(name, ""), literal))
    lines += ["END_VAR", "VAR_OUTPUT"]
    lines += [_declaration(name, kind, n_outputs, text) for name, kind, text in OUTPUTS]
    lines += ["END_VAR", "VAR"]
    lines += [_declaration(name, kind, n_outputs, "", value) for name, kind, value in LOCALS]
    lines += ["END_VAR", "", st_statements(n_outputs).rstrip(), "END_FUNCTION_BLOCK", ""]
    return "\n".join(lines)


def _declaration(name: str, kind: str, n: int, text: str = "", value: str | None = None) -> str:
    kind = array_type(n) if kind == "ARRAY" else kind
    line = f"    {name} : {kind}{f' := {value}' if value is not None else ''};"
    return f"{line}    (* {text} *)" if text else line


def initial_value(name: str, length: int | None) -> str | None:
    """The GVL's initial value of a tag: the identity in GainSet and AppliedGain, else the type's zero."""
    if name in ("GainSet", "AppliedGain"):
        return f"[{length}(1.0)]"
    return None


def global_variable_list(program: PlcProgram, k: int) -> str:
    """``GVL_PlcAnna_L<k>``: the tags of layer k, published."""
    family, layout = program.target, program.layout
    n_in, n_out = program.shapes[k]
    name = layout.style.variable_list(k)
    head = [f"{name} - the tags plc-anna writes and reads for {program.describe(k)} of "
            f"'{program.label}' ({FAMILY[family]}).", "",
            "plc-anna writes (one batched OPC UA write per new set, CommitCounter last in the batch):",
            "    GainSet, OffsetSet, CommitCounter;  and Heartbeat every scan.",
            "plc-anna reads everything else. Only the four written tags are writable from outside."]
    lines = [comment(head).rstrip(), "{attribute 'qualified_only'}", "VAR_GLOBAL CONSTANT",
             f"    N_INPUTS : DINT := {n_in};", f"    N_OUTPUTS : DINT := {n_out};"]
    if program.trace_length:
        lines.append(f"    TRACE_LENGTH : DINT := {program.trace_length};")
    lines += ["END_VAR", "VAR_GLOBAL"]
    for tag in layout.layer_tags():
        written = tag in WRITTEN_TAGS
        length = layout.length(k, tag)
        lines += [f"    {pragma}" for pragma in PRAGMAS[family](written)]
        value = initial_value(tag, length)
        declaration = f"    {tag} : {st_type(LAYER_TAGS[tag][0], length)}{f' := {value}' if value else ''};"
        lines.append(f"{declaration}    (* {TAG_COMMENTS[tag]} *)" if tag in TAG_COMMENTS else declaration)
    lines += ["END_VAR", ""]
    return "\n".join(lines)


def device_variable_list(program: PlcProgram) -> str:
    """``GVL_Device``: DeviceAge and DeviceTemperature, read by plc-anna."""
    family = program.target
    name = program.layout.style.variable_list(None)
    head = [f"{name} - the analog network's age and temperature, read by plc-anna ({FAMILY[family]}).", "",
            "Your program keeps DeviceAge (seconds since the network was programmed into the hardware) and",
            "DeviceTemperature (kelvin) up to date. If the PLC does not know them, delete age_s and",
            "temperature_k from the tag map's [device] table and set programmed_at there instead."]
    lines = [comment(head).rstrip(), "{attribute 'qualified_only'}", "VAR_GLOBAL"]
    for tag, value in (("DeviceAge", None), ("DeviceTemperature", iec_real(300.0))):
        lines += [f"    {pragma}" for pragma in PRAGMAS[family](False)]
        lines.append(f"    {tag} : LREAL{f' := {value}' if value else ''};")
    lines += ["END_VAR", ""]
    return "\n".join(lines)


def block_call(program: PlcProgram, k: int, instance: str, gvl: str) -> list[str]:
    """The call of layer k's block with its GVL's tags, outputs assigned with ``=>``."""
    parameters = parameter_defaults(program.parameters)
    arguments = [f"{name} := {gvl}.{name}" for name, _, _ in INPUTS]
    arguments += [f"CycleTime := {parameters['CycleTime'][1]}", f"HeartbeatTimeout := {parameters['HeartbeatTimeout'][1]}"]
    arguments += [f"{name} => {gvl}.{name}" for name, _, _ in OUTPUTS]
    return [f"{instance}("] + [f"    {argument}," for argument in arguments[:-1]] + [f"    {arguments[-1]});"]


def trace_statements(program: PlcProgram, k: int, gvl: str) -> list[str]:
    """This cycle's Inputs and RawOutputs into row ``TraceCount MOD TRACE_LENGTH``, then the count + 1."""
    if not program.trace_length:
        return []
    n_in, n_out = program.shapes[k]
    length = program.trace_length
    return [f"(* trace: this cycle's sample into row TraceCount MOD {length}; the count last *)",
            f"Row := UDINT_TO_DINT({gvl}.TraceCount MOD {length});",
            f"FOR i := 0 TO {n_in - 1} DO",
            f"    {gvl}.TraceInputs[Row * {n_in} + i] := {gvl}.Inputs[i];",
            "END_FOR;",
            f"FOR i := 0 TO {n_out - 1} DO",
            f"    {gvl}.TraceRawOutputs[Row * {n_out} + i] := {gvl}.RawOutputs[i];",
            "END_FOR;",
            f"{gvl}.TraceCount := {gvl}.TraceCount + 1;   (* UDINT: wraps to 0 after 4294967295 *)"]


def main_program(program: PlcProgram) -> str:
    """``PRG_PlcAnna`` / ``MAIN``: every layer's block, then its trace."""
    family, style = program.target, program.layout.style
    name = PROGRAM_NAMES[family]
    head = [f"{name} - the correction of every layer of '{program.label}', once per cycle ({FAMILY[family]}).", "",
            f"Run it in a cyclic task of {in_words(program.parameters.cycle_s)}: the CycleTime passed to every block.",
            "Your I/O scaling fills each layer's Inputs and RawOutputs before this program runs (a layer",
            "that takes the previous one's outputs: its CorrectedOutputs after the activation named below).",
            "Use CorrectedOutputs downstream instead of RawOutputs. While a layer's Fault is TRUE its block",
            "holds the last good correction; decide in your own logic whether the plant may run on it."]
    lines = [comment(head).rstrip(), f"PROGRAM {name}", "VAR"]
    lines += [f"    fbL{k} : {block_name(n_out)};" for k, (_, n_out) in enumerate(program.shapes)]
    if program.trace_length:
        lines += ["    Row : DINT;", "    i : DINT;"]
    lines += ["END_VAR", ""]
    for k in range(len(program.shapes)):
        gvl = style.variable_list(k)
        lines += [f"(* {program.describe(k)} *)"] + block_call(program, k, f"fbL{k}", gvl)
        lines += trace_statements(program, k, gvl) + [""]
    lines += ["END_PROGRAM", ""]
    return "\n".join(lines)


def files(program: PlcProgram) -> dict[str, str]:
    """The files of a CODESYS or TwinCAT program, by name."""
    out = {f"{block_name(n)}.st": function_block(n, program) for n in program.widths}
    style = program.layout.style
    out.update({f"{style.variable_list(k)}.st": global_variable_list(program, k) for k in range(len(program.shapes))})
    out[f"{style.variable_list(None)}.st"] = device_variable_list(program)
    out[f"{PROGRAM_NAMES[program.target]}.st"] = main_program(program)
    return out


__all__ = ["PROGRAM_NAMES", "TAG_COMMENTS", "block_call", "comment", "files", "function_block", "trace_statements"]
