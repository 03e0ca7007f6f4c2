"""OpenPLC (v3 runtime): one uploadable ST program behind the runtime's Modbus TCP server, and its register map.

OpenPLC has no OPC UA server, and its located variables cannot be arrays: the program declares one
located ``%MD`` variable per element (``%MDk`` is holding registers ``2048 + 2k`` and ``2049 + 2k``, high
word first) and copies them to and from each layer's block. The addresses are the simulated PLC's
Modbus map (:func:`plc_anna.contract.layout.modbus_register_map`); the device's age and temperature
are ``%ML0`` and ``%ML1`` (registers 4096 and 4100). A network whose tags do not fit OpenPLC's
``%MD0 .. %MD1023`` is refused before anything is written.
"""

from __future__ import annotations

from plc_anna.contract.layout import LAYER_TAGS, MODBUS_BASE, MODBUS_TYPES, OPENPLC_END, WRITTEN_TAGS, modbus_registers
from plc_anna.plccode.block import block_name, iec_time, in_words, parameter_defaults
from plc_anna.plccode.program import PlcProgram
from plc_anna.plccode.st import comment, function_block

#: The block's inputs the program copies in from located variables, and the outputs it copies out.
COPIED_IN = ("RawOutputs", "GainSet", "OffsetSet")
COPIED_OUT = ("CorrectedOutputs", "AppliedGain", "AppliedOffset")
OPENPLC_LAYER_TAGS = tuple(tag for tag in LAYER_TAGS if not tag.startswith("Trace"))


def md(register: int) -> int:
    """The ``%MD`` index of a holding register (``%MDk`` is 2048 + 2k)."""
    return (register - MODBUS_BASE) // 2


def check_fits(program: PlcProgram) -> None:
    """ValueError when a layer's tags run past OpenPLC's ``%MD1023`` (holding register 4095)."""
    registers = program.layout.registers()
    for k, (n_in, n_out) in enumerate(program.shapes):
        end = max(registers[k, tag] + modbus_registers(tag, n_in, n_out, 0) for tag in OPENPLC_LAYER_TAGS)
        if end > OPENPLC_END:
            raise ValueError(
                f"{program.network}: layer {k}'s tags need holding registers up to {end - 1}, beyond OpenPLC's "
                f"%MD1023 (register {OPENPLC_END - 1}): this network is too large for OpenPLC's memory")


def located(program: PlcProgram) -> list[tuple[int, str, str, str, int]]:
    """``(layer, tag, variable name, IEC type, %MD)`` of every element, in register order."""
    registers = program.layout.registers()
    out = []
    for k in range(len(program.shapes)):
        for tag in OPENPLC_LAYER_TAGS:
            kind = MODBUS_TYPES[tag]
            length = program.layout.length(k, tag)
            if length is None:
                out.append((k, tag, f"MbL{k}{tag}", kind, md(registers[k, tag])))
            else:
                out += [(k, tag, f"MbL{k}{tag}{j}", kind, md(registers[k, tag]) + j) for j in range(length)]
    return sorted(out, key=lambda item: item[4])


def program_text(program: PlcProgram) -> str:
    parameters = parameter_defaults(program.parameters)
    head = ["PlcAnnaModbus - the correction blocks behind OpenPLC's Modbus TCP server.", "",
            "OpenPLC has no OPC UA server; plc-anna reaches it over Modbus TCP (port 502). OpenPLC maps",
            "%MDk (32 bit) to the holding registers 2048 + 2k and 2049 + 2k, the high 16 bits first, and %MLk",
            "(64 bit) to 4096 + 4k .. 4099 + 4k; a REAL located there travels as its IEEE 754 bit pattern.",
            "README.md in this folder has the register map. Located variables cannot be arrays here, so",
            "the program copies them into each block's arrays. The task interval (in the configuration",
            "below) is the CycleTime passed to the blocks.",
            "Your I/O scaling fills each layer's MbL<k>Inputs and MbL<k>RawOutputs; use MbL<k>CorrectedOutputs",
            "downstream."]
    lines = [comment(head).rstrip(), "PROGRAM PlcAnnaModbus", "VAR"]
    for k, tag, name, kind, index in located(program):
        initial = " := 1.0" if tag in ("GainSet", "AppliedGain") else ""
        lines.append(f"    {name} AT %MD{index} : {kind}{initial};")
    lines += ["    (* the analog network's age (s since programming) and temperature (K), kept by your program *)",
              "    DeviceAge AT %ML0 : LREAL;", "    DeviceTemperature AT %ML1 : LREAL := 300.0;", "END_VAR", "VAR"]
    for k, (_, n_out) in enumerate(program.shapes):
        lines.append(f"    fbL{k} : {block_name(n_out)};")
        lines += [f"    L{k}{tag} : ARRAY[0..{n_out - 1}] OF REAL;" for tag in COPIED_IN]
    lines += ["END_VAR", ""]
    for k, (_, n_out) in enumerate(program.shapes):
        lines.append(f"(* {program.describe(k)}: inputs of the block *)")
        lines += [f"L{k}{tag}[{j}] := MbL{k}{tag}{j};" for tag in COPIED_IN for j in range(n_out)]
        lines += [f"fbL{k}(", f"    RawOutputs := L{k}RawOutputs,", f"    GainSet := L{k}GainSet,",
                  f"    OffsetSet := L{k}OffsetSet,", f"    CommitCounter := MbL{k}CommitCounter,",
                  f"    Heartbeat := MbL{k}Heartbeat,", f"    CycleTime := {parameters['CycleTime'][1]},",
                  f"    HeartbeatTimeout := {parameters['HeartbeatTimeout'][1]});",
                  f"(* {program.describe(k)}: outputs of the block, for plc-anna and for the plant *)"]
        lines += [f"MbL{k}{tag}{j} := fbL{k}.{tag}[{j}];" for tag in COPIED_OUT for j in range(n_out)]
        lines += [f"MbL{k}AcceptedCommit := fbL{k}.AcceptedCommit;", f"MbL{k}PlcHeartbeat := fbL{k}.PlcHeartbeat;",
                  f"MbL{k}Status := INT_TO_DINT(fbL{k}.Status);", f"IF fbL{k}.Fault THEN", f"    MbL{k}Fault := 1;",
                  "ELSE", f"    MbL{k}Fault := 0;", "END_IF;", ""]
    lines += ["END_PROGRAM", ""]
    return "\n".join(lines)


def configuration(program: PlcProgram) -> str:
    cycle = iec_time(program.parameters.cycle_s)
    return "\n".join(["CONFIGURATION Config0", "    RESOURCE Res0 ON PLC",
                      f"        TASK MainTask(INTERVAL := {cycle}, PRIORITY := 0);",
                      "        PROGRAM Instance0 WITH MainTask : PlcAnnaModbus;", "    END_RESOURCE",
                      "END_CONFIGURATION", ""])


def readme(program: PlcProgram) -> str:
    """The register map of this network, as a Markdown page."""
    registers = program.layout.registers()
    lines = [f"# OpenPLC: the register map of '{program.label}'", "",
             "Generated by `plc-anna plc-code --target openplc`. `plc_anna_openplc.st` is one uploadable program: "
             "the correction block(s), the program `PlcAnnaModbus` that binds them to located memory variables, "
             f"and a configuration with a {in_words(program.parameters.cycle_s)} task. "
             "`plc_anna.toml` is the tag map with these addresses.", "",
             "OpenPLC binds `%MDk` to the holding registers `2048 + 2k` and `2049 + 2k` and `%MLk` to "
             "`4096 + 4k` … `4099 + 4k`, the high 16 bits first (\"ABCD\"); 0-based protocol addresses (in the "
             "1-based \"4xxxxx\" notation add 400001). `Status` is the block's `INT` code widened to `DINT`, `Fault` "
             "is 0 or 1. plc-anna writes `GainSet`, `OffsetSet`, `CommitCounter` (function code 16, in that "
             "order: the block takes the set in the first cycle after the counter's request) and `Heartbeat`; "
             "every other register is the program's: never write it. OpenPLC has no memory for a trace ring "
             "buffer: plc-anna reads one sample per read.", "",
             "| Layer | Tag | Elements | First %MD | First register | Registers | Type | Direction |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for k, (n_in, n_out) in enumerate(program.shapes):
        for tag in OPENPLC_LAYER_TAGS:
            length = program.layout.length(k, tag) or 1
            direction = "plc-anna → PLC" if tag in WRITTEN_TAGS else "PLC → plc-anna"
            lines.append(f"| {k} | {tag} | {length} | %MD{md(registers[k, tag])} | {registers[k, tag]} | "
                         f"{modbus_registers(tag, n_in, n_out, 0)} | {MODBUS_TYPES[tag]} | {direction} |")
    for index, tag in enumerate(("DeviceAge", "DeviceTemperature")):
        lines.append(f"| - | {tag} | 1 | %ML{index} | {registers[None, tag]} | 4 | LREAL | PLC → plc-anna |")
    return "\n".join(lines) + "\n"


def files(program: PlcProgram) -> dict[str, str]:
    """``plc_anna_openplc.st`` (blocks, program, configuration) and ``README.md`` (the register map)."""
    check_fits(program)
    blocks = "\n".join(function_block(n, program) for n in program.widths)
    return {"plc_anna_openplc.st": f"{blocks}\n{program_text(program)}\n{configuration(program)}",
            "README.md": readme(program)}


__all__ = ["check_fits", "files", "located", "md"]
