"""PLCopen XML (IEC 61131-10, TC6 XML v2.01): the program for CODESYS, Beremiz/OpenPLC Editor and other importers.

One ``plc_anna_ld.xml`` with the correction block per layer width (ST), ``FB_HeartbeatWatchdog``
(the block's watchdog in ladder), ``PRG_PlcAnnaLD`` (ladder: one rung calling each layer's block, the
latched fault alarm with acknowledge, the ladder watchdog driving ``LinkLost``), ``PRG_PlcAnnaTrace``
(ST: the trace rings), one named global variable list per layer (``GVL_PlcAnna_L<k>``, as CODESYS
names its GVLs) and a configuration whose task runs both programs.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from plc_anna.contract.layout import LAYER_TAGS
from plc_anna.plccode.block import (INPUTS, LOCALS, OUTPUTS, block_name, iec_time, parameter_defaults, st_statements,
                                    summary_lines)
from plc_anna.plccode.program import PlcProgram
from plc_anna.plccode.st import TAG_COMMENTS, trace_statements

NAMESPACES = 'xmlns="http://www.plcopen.org/xml/tc6_0201" xmlns:xhtml="http://www.w3.org/1999/xhtml"'
ALARMS = (("FaultAlarm", "latched alarm for the operator: a layer's heartbeat fault"),
          ("AckFault", "operator acknowledge"), ("LinkLost", "heartbeat lost, from the ladder watchdog"))


def xml_type(plc_type: str, length: int | None = None) -> str:
    base = f"<{plc_type}/>"
    if length is None:
        return base
    return f'<array><dimension lower="0" upper="{length - 1}"/><baseType>{base}</baseType></array>'


def variable(name: str, plc_type: str, length: int | None = None, initial: str | None = None,
             documentation: str | None = None, indent: str = "            ") -> str:
    lines = [f"{indent}<variable name={quoteattr(name)}>", f"{indent}  <type>{xml_type(plc_type, length)}</type>"]
    if initial is not None:
        if length is None:
            lines.append(f'{indent}  <initialValue><simpleValue value={quoteattr(initial)}/></initialValue>')
        else:
            lines.append(f'{indent}  <initialValue><arrayValue><value repetitionValue="{length}"><simpleValue '
                         f'value={quoteattr(initial)}/></value></arrayValue></initialValue>')
    if documentation:
        lines.append(f"{indent}  <documentation><xhtml:p>{escape(documentation)}</xhtml:p></documentation>")
    lines.append(f"{indent}</variable>")
    return "\n".join(lines)


def cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def function_block(n: int, program: PlcProgram) -> str:
    def kind(k: str) -> tuple[str, int | None]:
        return ("REAL", n) if k == "ARRAY" else (k, None)

    inputs = [variable(name, *kind(k)) for name, k, _ in INPUTS]
    inputs += [variable(name, k, None, literal) for name, (k, literal) in parameter_defaults(program.parameters).items()]
    outputs = [variable(name, *kind(k)) for name, k, _ in OUTPUTS]
    local = [variable(name, *kind(k), value) for name, k, value in LOCALS]
    return "\n".join([
        f'      <pou name="{block_name(n)}" pouType="functionBlock">', "        <interface>",
        "          <inputVars>", *inputs, "          </inputVars>", "          <outputVars>", *outputs,
        "          </outputVars>", "          <localVars>", *local, "          </localVars>", "        </interface>",
        "        <body>", "          <ST>", f"            <xhtml:p>{cdata(st_statements(n))}</xhtml:p>", "          </ST>",
        "        </body>", "        <documentation>",
        f"          <xhtml:p>{cdata(chr(10).join(summary_lines(n)) + chr(10))}</xhtml:p>", "        </documentation>",
        "      </pou>"])


WATCHDOG = """      <pou name="FB_HeartbeatWatchdog" pouType="functionBlock">
{interface}        <body>
          <LD>
            <comment localId="1" width="600" height="40"><position x="10" y="10"/><content><xhtml:p>Step 1 of the correction block (FB_AnnaCorrection_N) in ladder (D1, D2): a moved Heartbeat resets the stall, an unchanged one adds CycleTime while below HeartbeatTimeout; Fault when the stall reaches it.</xhtml:p></content></comment>
            <leftPowerRail localId="2" width="2" height="40"><position x="10" y="70"/><connectionPointOut formalParameter=""/></leftPowerRail>
            <inVariable localId="3" width="120" height="20"><position x="60" y="110"/><connectionPointOut/><expression>Heartbeat</expression></inVariable>
            <inVariable localId="4" width="120" height="20"><position x="60" y="140"/><connectionPointOut/><expression>LastHeartbeat</expression></inVariable>
            <block localId="5" typeName="NE" width="80" height="80"><position x="220" y="70"/><inputVariables><variable formalParameter="EN"><connectionPointIn><connection refLocalId="2"/></connectionPointIn></variable><variable formalParameter="IN1"><connectionPointIn><connection refLocalId="3"/></connectionPointIn></variable><variable formalParameter="IN2"><connectionPointIn><connection refLocalId="4"/></connectionPointIn></variable></inputVariables><inOutVariables/><outputVariables><variable formalParameter="ENO"><connectionPointOut/></variable><variable formalParameter="OUT"><connectionPointOut/></variable></outputVariables></block>
            <coil localId="6" width="21" height="20"><position x="400" y="90"/><connectionPointIn><connection refLocalId="5" formalParameter="OUT"/></connectionPointIn><connectionPointOut/><variable>Moved</variable></coil>
            <rightPowerRail localId="7" width="2" height="40"><position x="500" y="70"/><connectionPointIn><connection refLocalId="6"/></connectionPointIn></rightPowerRail>
            <leftPowerRail localId="8" width="2" height="40"><position x="10" y="190"/><connectionPointOut formalParameter=""/></leftPowerRail>
            <contact localId="9" width="21" height="20"><position x="60" y="210"/><connectionPointIn><connection refLocalId="8"/></connectionPointIn><connectionPointOut/><variable>Moved</variable></contact>
            <inVariable localId="10" width="120" height="20"><position x="60" y="250"/><connectionPointOut/><expression>Heartbeat</expression></inVariable>
            <block localId="11" typeName="MOVE" width="80" height="60"><position x="220" y="190"/><inputVariables><variable formalParameter="EN"><connectionPointIn><connection refLocalId="9"/></connectionPointIn></variable><variable formalParameter="IN"><connectionPointIn><connection refLocalId="10"/></connectionPointIn></variable></inputVariables><inOutVariables/><outputVariables><variable formalParameter="ENO"><connectionPointOut/></variable><variable formalParameter="OUT"><connectionPointOut/></variable></outputVariables></block>
            <outVariable localId="12" width="120" height="20"><position x="360" y="250"/><connectionPointIn><connection refLocalId="11" formalParameter="OUT"/></connectionPointIn><expression>LastHeartbeat</expression></outVariable>
            <inVariable localId="13" width="120" height="20"><position x="300" y="290"/><connectionPointOut/><expression>T#0ms</expression></inVariable>
            <block localId="14" typeName="MOVE" width="80" height="60"><position x="460" y="190"/><inputVariables><variable formalParameter="EN"><connectionPointIn><connection refLocalId="11" formalParameter="ENO"/></connectionPointIn></variable><variable formalParameter="IN"><connectionPointIn><connection refLocalId="13"/></connectionPointIn></variable></inputVariables><inOutVariables/><outputVariables><variable formalParameter="ENO"><connectionPointOut/></variable><variable formalParameter="OUT"><connectionPointOut/></variable></outputVariables></block>
            <outVariable localId="15" width="120" height="20"><position x="600" y="250"/><connectionPointIn><connection refLocalId="14" formalParameter="OUT"/></connectionPointIn><expression>Stall</expression></outVariable>
            <leftPowerRail localId="16" width="2" height="40"><position x="10" y="330"/><connectionPointOut formalParameter=""/></leftPowerRail>
            <inVariable localId="17" width="120" height="20"><position x="60" y="370"/><connectionPointOut/><expression>Stall</expression></inVariable>
            <inVariable localId="18" width="120" height="20"><position x="60" y="400"/><connectionPointOut/><expression>HeartbeatTimeout</expression></inVariable>
            <block localId="19" typeName="LT" width="80" height="80"><position x="220" y="330"/><inputVariables><variable formalParameter="EN"><connectionPointIn><connection refLocalId="16"/></connectionPointIn></variable><variable formalParameter="IN1"><connectionPointIn><connection refLocalId="17"/></connectionPointIn></variable><variable formalParameter="IN2"><connectionPointIn><connection refLocalId="18"/></connectionPointIn></variable></inputVariables><inOutVariables/><outputVariables><variable formalParameter="ENO"><connectionPointOut/></variable><variable formalParameter="OUT"><connectionPointOut/></variable></outputVariables></block>
            <coil localId="20" width="21" height="20"><position x="400" y="350"/><connectionPointIn><connection refLocalId="19" formalParameter="OUT"/></connectionPointIn><connectionPointOut/><variable>Growing</variable></coil>
            <rightPowerRail localId="21" width="2" height="40"><position x="500" y="330"/><connectionPointIn><connection refLocalId="20"/></connectionPointIn></rightPowerRail>
            <leftPowerRail localId="22" width="2" height="40"><position x="10" y="450"/><connectionPointOut formalParameter=""/></leftPowerRail>
            <contact localId="23" width="21" height="20" negated="true"><position x="60" y="470"/><connectionPointIn><connection refLocalId="22"/></connectionPointIn><connectionPointOut/><variable>Moved</variable></contact>
            <contact localId="24" width="21" height="20"><position x="120" y="470"/><connectionPointIn><connection refLocalId="23"/></connectionPointIn><connectionPointOut/><variable>Growing</variable></contact>
            <inVariable localId="25" width="120" height="20"><position x="60" y="510"/><connectionPointOut/><expression>Stall</expression></inVariable>
            <inVariable localId="26" width="120" height="20"><position x="60" y="540"/><connectionPointOut/><expression>CycleTime</expression></inVariable>
            <block localId="27" typeName="ADD" width="80" height="80"><position x="240" y="450"/><inputVariables><variable formalParameter="EN"><connectionPointIn><connection refLocalId="24"/></connectionPointIn></variable><variable formalParameter="IN1"><connectionPointIn><connection refLocalId="25"/></connectionPointIn></variable><variable formalParameter="IN2"><connectionPointIn><connection refLocalId="26"/></connectionPointIn></variable></inputVariables><inOutVariables/><outputVariables><variable formalParameter="ENO"><connectionPointOut/></variable><variable formalParameter="OUT"><connectionPointOut/></variable></outputVariables></block>
            <outVariable localId="28" width="120" height="20"><position x="400" y="510"/><connectionPointIn><connection refLocalId="27" formalParameter="OUT"/></connectionPointIn><expression>Stall</expression></outVariable>
            <leftPowerRail localId="29" width="2" height="40"><position x="10" y="590"/><connectionPointOut formalParameter=""/></leftPowerRail>
            <inVariable localId="30" width="120" height="20"><position x="60" y="630"/><connectionPointOut/><expression>Stall</expression></inVariable>
            <inVariable localId="31" width="120" height="20"><position x="60" y="660"/><connectionPointOut/><expression>HeartbeatTimeout</expression></inVariable>
            <block localId="32" typeName="GE" width="80" height="80"><position x="220" y="590"/><inputVariables><variable formalParameter="EN"><connectionPointIn><connection refLocalId="29"/></connectionPointIn></variable><variable formalParameter="IN1"><connectionPointIn><connection refLocalId="30"/></connectionPointIn></variable><variable formalParameter="IN2"><connectionPointIn><connection refLocalId="31"/></connectionPointIn></variable></inputVariables><inOutVariables/><outputVariables><variable formalParameter="ENO"><connectionPointOut/></variable><variable formalParameter="OUT"><connectionPointOut/></variable></outputVariables></block>
            <coil localId="33" width="21" height="20"><position x="400" y="610"/><connectionPointIn><connection refLocalId="32" formalParameter="OUT"/></connectionPointIn><connectionPointOut/><variable>Fault</variable></coil>
            <rightPowerRail localId="34" width="2" height="40"><position x="500" y="590"/><connectionPointIn><connection refLocalId="33"/></connectionPointIn></rightPowerRail>
          </LD>
        </body>
        <documentation>
          <xhtml:p><![CDATA[Step 1 of the plc-anna specification (heartbeat watchdog) in ladder, identical to the
watchdog inside every FB_AnnaCorrection_N: D1 and D2 of docs/plc-side.md.]]></xhtml:p>
        </documentation>
      </pou>
"""


def watchdog(cycle: str, timeout: str) -> str:
    """``FB_HeartbeatWatchdog``: step 1 of the block (D1, D2) in ladder, with the program's CycleTime and timeout."""
    interface = "\n".join([
        "        <interface>", "          <inputVars>", variable("Heartbeat", "UDINT"),
        variable("CycleTime", "TIME", initial=cycle), variable("HeartbeatTimeout", "TIME", initial=timeout),
        "          </inputVars>", "          <outputVars>", variable("Fault", "BOOL"), "          </outputVars>",
        "          <localVars>", variable("LastHeartbeat", "UDINT", initial="0"),
        variable("Stall", "TIME", initial="T#0MS"), variable("Moved", "BOOL"), variable("Growing", "BOOL"),
        "          </localVars>", "        </interface>"])
    return WATCHDOG.rstrip().format(interface=interface + "\n")


class Ladder:
    """The elements of one LD body, with local ids handed out in order and rungs stacked downward."""

    def __init__(self) -> None:
        self.elements: list[str] = []
        self.next_id = 1
        self.y = 10

    def add(self, template: str) -> int:
        local_id = self.next_id
        self.next_id += 1
        self.elements.append(template.format(id=local_id))
        return local_id

    def comment(self, text: str) -> None:
        self.add(f'<comment localId="{{id}}" width="600" height="40"><position x="10" y="{self.y}"/><content>'
                 f"<xhtml:p>{escape(text)}</xhtml:p></content></comment>")
        self.y += 60

    def rail(self, side: str, x: int = 10, connect: int | None = None, height: int = 40) -> int:
        if side == "left":
            return self.add(f'<leftPowerRail localId="{{id}}" width="2" height="{height}"><position x="{x}" '
                            f'y="{self.y}"/><connectionPointOut formalParameter=""/></leftPowerRail>')
        return self.add(f'<rightPowerRail localId="{{id}}" width="2" height="{height}"><position x="{x}" '
                        f'y="{self.y}"/><connectionPointIn>{_connection(connect)}</connectionPointIn></rightPowerRail>')

    def in_variable(self, expression: str, x: int, y: int) -> int:
        return self.add(f'<inVariable localId="{{id}}" width="160" height="20"><position x="{x}" y="{y}"/>'
                        f"<connectionPointOut/><expression>{escape(expression)}</expression></inVariable>")

    def out_variable(self, expression: str, source: int, parameter: str, x: int, y: int) -> int:
        return self.add(f'<outVariable localId="{{id}}" width="200" height="20"><position x="{x}" y="{y}"/>'
                        f"<connectionPointIn>{_connection(source, parameter)}</connectionPointIn>"
                        f"<expression>{escape(expression)}</expression></outVariable>")

    def contact(self, variable_name: str, source: int, x: int, negated: bool = False) -> int:
        flag = ' negated="true"' if negated else ""
        return self.add(f'<contact localId="{{id}}" width="21" height="20"{flag}><position x="{x}" y="{self.y + 20}"/>'
                        f"<connectionPointIn>{_connection(source)}</connectionPointIn><connectionPointOut/>"
                        f"<variable>{escape(variable_name)}</variable></contact>")

    def coil(self, variable_name: str, source: int, parameter: str | None, x: int, y: int, storage: str = "") -> int:
        flag = f' storage="{storage}"' if storage else ""
        return self.add(f'<coil localId="{{id}}" width="21" height="20"{flag}><position x="{x}" y="{y}"/>'
                        f"<connectionPointIn>{_connection(source, parameter)}</connectionPointIn><connectionPointOut/>"
                        f"<variable>{escape(variable_name)}</variable></coil>")

    def block(self, type_name: str, instance: str, inputs: list[tuple[str, int]], outputs: list[str], x: int,
              height: int) -> int:
        ins = "".join(f'<variable formalParameter="{name}"><connectionPointIn>{_connection(source)}'
                      f"</connectionPointIn></variable>" for name, source in inputs)
        outs = "".join(f'<variable formalParameter="{name}"><connectionPointOut/></variable>' for name in outputs)
        return self.add(f'<block localId="{{id}}" typeName="{type_name}" instanceName="{instance}" width="200" '
                        f'height="{height}"><position x="{x}" y="{self.y}"/><inputVariables>{ins}</inputVariables>'
                        f"<inOutVariables/><outputVariables>{outs}</outputVariables></block>")

    def body(self) -> str:
        return "\n".join(f"            {element}" for element in self.elements)


def _connection(source: int | None, parameter: str | None = None) -> str:
    if source is None:
        return ""
    return f'<connection refLocalId="{source}"{f" formalParameter={quoteattr(parameter)}" if parameter else ""}/>'


def ladder_program(program: PlcProgram) -> str:
    style, parameters = program.layout.style, parameter_defaults(program.parameters)
    cycle, timeout = parameters["CycleTime"][1], parameters["HeartbeatTimeout"][1]
    ld = Ladder()
    for k, (_, n_out) in enumerate(program.shapes):
        gvl = style.variable_list(k)
        ld.comment(f"Rung {k + 1}: {program.describe(k)}: its correction block, once per cycle of MainTask "
                   f"({cycle} = CycleTime). Use CorrectedOutputs downstream instead of RawOutputs.")
        left = ld.rail("left", height=40)
        y0 = ld.y + 40
        sources = [(name, ld.in_variable(f"{gvl}.{name}", 40, y0 + 30 * row)) for row, (name, _, _) in enumerate(INPUTS)]
        sources += [("CycleTime", ld.in_variable(cycle, 40, y0 + 30 * len(INPUTS))),
                    ("HeartbeatTimeout", ld.in_variable(timeout, 40, y0 + 30 * (len(INPUTS) + 1)))]
        height = 30 * (len(OUTPUTS) + 2)
        block = ld.block(block_name(n_out), f"fbL{k}", [("EN", left)] + sources,
                         ["ENO"] + [name for name, _, _ in OUTPUTS], 260, height)
        fault = None
        for row, (name, _, _) in enumerate(OUTPUTS):
            if name == "Fault":
                fault = ld.coil(f"{gvl}.Fault", block, "Fault", 560, y0 + 30 * row)
            else:
                ld.out_variable(f"{gvl}.{name}", block, name, 560, y0 + 30 * row)
        ld.rail("right", x=800, connect=fault)
        ld.y += max(height, 30 * (len(INPUTS) + 2)) + 60
    last = len(program.shapes) + 1
    ld.comment(f"Rungs {last} and {last + 1}: the fault alarm latches when any layer's block holds, and AckFault "
               "resets it once every heartbeat is back.")
    left = ld.rail("left")
    source = left
    for k in range(len(program.shapes)):
        source = ld.contact(f"{style.variable_list(k)}.Fault", left, 60)
        coil = ld.coil("FaultAlarm", source, None, 300, ld.y + 20, storage="set")
        ld.rail("right", x=400, connect=coil)
        ld.y += 50
        if k + 1 < len(program.shapes):
            left = ld.rail("left")
    left = ld.rail("left")
    source = ld.contact("AckFault", left, 60)
    for k in range(len(program.shapes)):
        source = ld.contact(f"{style.variable_list(k)}.Fault", source, 120 + 60 * k, negated=True)
    coil = ld.coil("FaultAlarm", source, None, 180 + 60 * len(program.shapes), ld.y + 20, storage="reset")
    ld.rail("right", x=280 + 60 * len(program.shapes), connect=coil)
    ld.y += 70
    gvl = style.variable_list(len(program.shapes) - 1)
    ld.comment(f"Rung {last + 2}: the same watchdog in ladder (FB_HeartbeatWatchdog) on {gvl}.Heartbeat drives "
               "LinkLost, e.g. to switch a loop to manual; with the same parameters it agrees with that block's Fault "
               "cycle for cycle.")
    left = ld.rail("left")
    y0 = ld.y + 40
    sources = [("Heartbeat", ld.in_variable(f"{gvl}.Heartbeat", 40, y0)), ("CycleTime", ld.in_variable(cycle, 40, y0 + 30)),
               ("HeartbeatTimeout", ld.in_variable(timeout, 40, y0 + 60))]
    block = ld.block("FB_HeartbeatWatchdog", "fbWatchdog", [("EN", left)] + sources, ["ENO", "Fault"], 260, 100)
    coil = ld.coil("LinkLost", block, "Fault", 560, y0)
    ld.rail("right", x=700, connect=coil)
    local = [f"            <variable name=\"fbL{k}\">\n              <type><derived name=\"{block_name(n_out)}\"/></type>"
             f"\n            </variable>" for k, (_, n_out) in enumerate(program.shapes)]
    local.append('            <variable name="fbWatchdog">\n              <type><derived name="FB_HeartbeatWatchdog"/>'
                 "</type>\n            </variable>")
    external = [variable(name, "BOOL") for name, _ in ALARMS]
    return "\n".join([
        '      <pou name="PRG_PlcAnnaLD" pouType="program">', "        <interface>", "          <localVars>", *local,
        "          </localVars>", "          <externalVars>", *external, "          </externalVars>",
        "        </interface>", "        <body>", "          <LD>", ld.body(), "          </LD>", "        </body>",
        "      </pou>"])


def trace_program(program: PlcProgram) -> str:
    style = program.layout.style
    statements = []
    for k in range(len(program.shapes)):
        statements += trace_statements(program, k, style.variable_list(k)) + [""]
    return "\n".join([
        '      <pou name="PRG_PlcAnnaTrace" pouType="program">', "        <interface>", "          <localVars>",
        variable("Row", "DINT"), variable("i", "DINT"), "          </localVars>", "        </interface>",
        "        <body>", "          <ST>", f"            <xhtml:p>{cdata(chr(10).join(statements))}</xhtml:p>",
        "          </ST>", "        </body>", "        <documentation>",
        "          <xhtml:p>Each layer's trace ring: this cycle's Inputs and RawOutputs into row TraceCount MOD "
        "trace length, then TraceCount + 1. Runs after PRG_PlcAnnaLD in the same task.</xhtml:p>",
        "        </documentation>", "      </pou>"])


def global_lists(program: PlcProgram) -> list[str]:
    layout, style = program.layout, program.layout.style
    lists = []
    for k in range(len(program.shapes)):
        items = []
        for tag in layout.layer_tags():
            length = layout.length(k, tag)
            initial = "1.0" if tag in ("GainSet", "AppliedGain") else None
            items.append(variable(tag, LAYER_TAGS[tag][0], length, initial, TAG_COMMENTS.get(tag), "          "))
        lists.append(f'        <globalVars name="{style.variable_list(k)}">\n' + "\n".join(items)
                     + "\n        </globalVars>")
    device = [variable("DeviceAge", "LREAL", documentation="seconds since the network was programmed; kept by your "
                                                         "program", indent="          "),
              variable("DeviceTemperature", "LREAL", initial="300.0", documentation="kelvin; kept by your program",
                       indent="          ")]
    lists.append(f'        <globalVars name="{style.variable_list(None)}">\n' + "\n".join(device)
                 + "\n        </globalVars>")
    alarms = [variable(name, "BOOL", documentation=text, indent="          ") for name, text in ALARMS]
    lists.append("        <globalVars>\n" + "\n".join(alarms) + "\n        </globalVars>")
    return lists


def files(program: PlcProgram) -> dict[str, str]:
    """``plc_anna_ld.xml``."""
    parameters = parameter_defaults(program.parameters)
    cycle = iec_time(program.parameters.cycle_s)
    pous = [function_block(n, program) for n in program.widths]
    pous.append(watchdog(parameters["CycleTime"][1], parameters["HeartbeatTimeout"][1]))
    pous.append(ladder_program(program))
    instances = ['            <pouInstance name="Instance0" typeName="PRG_PlcAnnaLD"/>']
    if program.trace_length:
        pous.append(trace_program(program))
        instances.append('            <pouInstance name="Instance1" typeName="PRG_PlcAnnaTrace"/>')
    shapes = ", ".join(f"{n_in} -> {n_out}" for n_in, n_out in program.shapes)
    text = "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<!-- plc-anna: the PLC side of '{program.label}' ({shapes}) in PLCopen XML (IEC 61131-10 / TC6 XML "
        "v2.01),\n     generated by plc-anna plc-code for the target plcopen-xml. -->",
        f"<project {NAMESPACES}>",
        '  <fileHeader companyName="plc-anna" productName="plc-anna plc-code" productVersion="1"',
        '              creationDateTime="2025-01-01T00:00:00" contentDescription="PLC side of plc-anna: commit counter, '
        'clamps, ramp, heartbeat hold"/>',
        '  <contentHeader name="plc_anna_ld" modificationDateTime="2025-01-01T00:00:00" language="en">',
        "    <coordinateInfo>", '      <fbd><scaling x="1" y="1"/></fbd>', '      <ld><scaling x="1" y="1"/></ld>',
        '      <sfc><scaling x="1" y="1"/></sfc>', "    </coordinateInfo>", "  </contentHeader>", "  <types>",
        "    <dataTypes/>", "    <pous>", *pous, "    </pous>", "  </types>", "  <instances>", "    <configurations>",
        '      <configuration name="Config0">', '        <resource name="Res0">',
        f'          <task name="MainTask" priority="0" interval="{cycle}">', *instances, "          </task>",
        "        </resource>", *global_lists(program), "      </configuration>", "    </configurations>",
        "  </instances>", "</project>", ""])
    return {"plc_anna_ld.xml": text}


__all__ = ["files"]
