"""Generate ``opcua_models/plc_anna.xml``, the OPC UA information model of plc-anna.

Run ``python opcua_models/build_model.py [OUT.xml]`` (default: rewrite the
committed file). An asyncua ``Server`` is initialised in-process (``init()``
only: no socket is opened), the types are built with asyncua's node API, the
project namespace is exported with ``XmlExporter`` and pretty-printed: asyncua's
importer reads a structured value (EURange, EngineeringUnits, InputArguments,
EnumStrings) only from an element that has text, so it silently drops them from
a minified file. The output is byte-identical on every run (tests check it).

Node ids
--------
Numeric, explicit and stable (clients may store them), one block per type:

====  ======================  ====  ===================
1000  DriftStateEnumeration   4000  CompensatorType
2000  AnalogNetworkType       5000  ControllerLinkType
3000  LayerType               6000  DriftEventType
====  ======================  ====  ===================

A type's members take multiples of ten in its block (``N010``, ``N020``, …;
see the tables below) and a member's own properties (EURange, EngineeringUnits,
InputArguments, EnumValues, ValueAsText) the ids right after it (``+1``,
``+2``). An id is never reused or renumbered: a new member takes the next free
multiple of ten, and a property added to an existing member the next free id
after its others (the analog values that had units before they had ranges keep
EngineeringUnits at ``+1`` and take EURange at ``+2``). Bump ``MODEL_VERSION``
and ``PUBLICATION_DATE`` with every change of the model.
"""

from __future__ import annotations

import asyncio
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script from a checkout without an install
    sys.path.insert(0, str(HERE.parent))

from asyncua import Node, Server, ua
from asyncua.common.node_factory import make_node
from asyncua.common.ua_utils import get_nodes_of_namespace
from asyncua.common.xmlexporter import XmlExporter

from plc_anna.correction.transition import RampLimits
from plc_anna.drift.states import DriftState, EventKind
from plc_anna.server.model import NAMESPACE_URI

OUTPUT = HERE / "plc_anna.xml"
MODEL_VERSION = "0.2.0"
PUBLICATION_DATE = "2026-12-07T00:00:00Z"
REQUIRED_UA = {"ModelUri": "http://opcfoundation.org/UA/", "Version": "1.04.7",
               "PublicationDate": "2020-07-15T00:00:00Z"}  # AnalogUnitType and BaseAnalogType came with 1.04

I = ua.ObjectIds
DOUBLE, INT32, UINT32, UINT64, STRING, BOOLEAN, TEXT = (I.Double, I.Int32, I.UInt32, I.UInt64, I.String, I.Boolean,
                                                          I.LocalizedText)
ENUM_ID = 1000  # DriftStateEnumeration, as a member's data type

UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"


def unece(code: str, symbol: str, name: str) -> ua.EUInformation:
    """An engineering unit by UNECE Rec. 20 common code (UnitId as in OPC 10000-8, 5.6.4)."""
    unit_id = 0
    for char in code:
        unit_id = unit_id << 8 | ord(char)
    return ua.EUInformation(NamespaceUri=UNECE, UnitId=unit_id, DisplayName=ua.LocalizedText(symbol),
                            Description=ua.LocalizedText(name))


SECOND, KELVIN = unece("SEC", "s", "second"), unece("KEL", "K", "kelvin")
MILLISECOND, ONE = unece("C26", "ms", "millisecond"), unece("C62", "1", "one")
#: Offsets are in the layer's output unit, which only the server knows: it overwrites this (UnitId -1: none).
OUTPUT_UNIT = ua.EUInformation(NamespaceUri=UNECE, UnitId=-1, DisplayName=ua.LocalizedText("(output unit)"),
                               Description=ua.LocalizedText("placeholder: the server writes the layer's output unit"))
#: Transport costs (W2²) are in the square of the layer's output unit: the server overwrites this too.
OUTPUT_UNIT_SQUARED = ua.EUInformation(
    NamespaceUri=UNECE, UnitId=-1, DisplayName=ua.LocalizedText("(output unit)²"),
    Description=ua.LocalizedText("placeholder: the server writes the square of the layer's output unit"))
OFFSET_RANGE = (-1e6, 1e6)  # placeholder: the hardware offset range is unbounded by default
# Display ranges (EURange: what a value normally takes, for scaling a bar or a trend; values may leave it).
DISTANCE_RANGE = (0.0, 10.0)      # Fisher-Rao distance: ~0.1 per column without drift, grows with it
DETECTOR_RANGE = (0.0, 20.0)      # CUSUM and its threshold (a few units for the usual false-alarm rates)
COST_RANGE = (0.0, 1e6)           # placeholder, as OFFSET_RANGE
TREND_RANGE = (-1.0, 1.0)         # log-gain change per decade of age (PCM: about -0.1 to -0.25)
LIFE_RANGE = (0.0, 3.2e10)        # s: up to about 1000 years, the horizon of the prediction
CYCLE_RANGE = (0.0, 10000.0)      # ms: up to the longest scan period
SCAN_RANGE = (5.0, 10000.0)       # ms: the scan periods the server accepts


@dataclass(frozen=True)
class Member:
    """One instance declaration of a type.

    ``kind`` is ``property``, ``variable`` (BaseDataVariableType), ``analog``
    (AnalogItemType: ``unit`` and ``range``; ``unit_first`` for the members
    whose EngineeringUnits came before their EURange and keeps the id ``+1``),
    ``multistate`` (MultiStateValueDiscreteType: ``states``, the EnumValues),
    ``folder`` or ``method`` (``args``: name, data type, value rank,
    description of each input argument).
    """

    kind: str
    nid: int
    name: str
    dtype: int | None
    doc: str
    rank: int = -1
    unit: ua.EUInformation | None = None
    range: tuple[float, float] | None = None
    args: tuple[tuple[str, int, int, str], ...] = ()
    optional: bool = False
    unit_first: bool = False
    states: tuple[tuple[int, str, str], ...] = ()


PROP, VAR, ANALOG = (partial(Member, kind) for kind in ("property", "variable", "analog"))
METHOD = partial(Member, "method", dtype=None)
#: The drift states as EnumValues: (value, name, description).
DRIFT_STATES = tuple((int(state), state.name.capitalize(), doc) for state, doc in zip(DriftState, (
    "Recording the fingerprint of the layer's outputs.",
    "No drift beyond the detector's threshold.",
    "The detector's statistic is rising: drift is possible.",
    "Drift detected: estimating a new correction.",
    "Ramping to a new correction, then checking it on fresh data.",
    "An abrupt change that is not drift (see StateReason); calibration clears it.")))


def _ms(nid: int, name: str, doc: str, value_range: tuple[float, float] = CYCLE_RANGE) -> Member:
    return ANALOG(nid, name, DOUBLE, doc + " (ms).", unit=MILLISECOND, range=value_range, unit_first=True)


TYPES = [
    ("AnalogNetworkType", 2000, I.BaseObjectType,
     ("An analog neural-network accelerator: nameplate (in the style of the DI companion specification), "
      "age, temperature, task and its layers."), [
         PROP(2010, "Manufacturer", TEXT, "Name of the company that manufactured the device."),
         PROP(2020, "Model", TEXT, "Model name of the device."),
         PROP(2030, "SerialNumber", STRING, "Unique production number of the device."),
         PROP(2040, "HardwareRevision", STRING, "Revision level of the hardware."),
         PROP(2050, "SoftwareRevision", STRING, "Revision level of the software (plc-anna's version)."),
         PROP(2060, "DeviceRevision", STRING, "Overall revision level of the device."),
         PROP(2070, "ProductCode", STRING, "The device's order number."),
         ANALOG(2080, "Age", DOUBLE, "Operating age of the analog hardware (s).", unit=SECOND, range=(0.0, 3.2e10)),
         ANALOG(2090, "Temperature", DOUBLE, "Temperature of the analog hardware (K).", unit=KELVIN,
                range=(1.0, 1000.0)),
         VAR(2100, "Task", STRING, "What the network computes: classification or regression."),
         Member("folder", 2110, "Layers", None, "One LayerType object per network layer, in order.")]),
    ("LayerType", 3000, I.BaseObjectType, "One layer of the network and its drift compensation.", [
        PROP(3010, "Index", UINT32, "Position of the layer in the network (0 = first)."),
        PROP(3020, "Inputs", UINT32, "Number of inputs of the layer."),
        PROP(3030, "Columns", UINT32, "Number of output columns of the layer."),
        PROP(3040, "Sink", STRING, "Where the correction is applied: 'device' (the device's affine units) "
             "or 'plc' (the PLC program)."),
        ANALOG(3050, "Gain", DOUBLE, "Per-column gain correction applied to the raw outputs.", rank=1, unit=ONE,
               range=RampLimits().gain_range),
        ANALOG(3060, "Offset", DOUBLE, "Per-column offset correction, in the layer's output unit.", rank=1,
               unit=OUTPUT_UNIT, range=OFFSET_RANGE),
        ANALOG(3070, "ColumnDistance", DOUBLE, "Fisher-Rao distance of each column to its fingerprint, last scan.",
               rank=1, unit=ONE, range=DISTANCE_RANGE),
        ANALOG(3080, "LayerDistance", DOUBLE, "Fisher-Rao distance of the layer (product-manifold norm), last scan.",
               unit=ONE, range=DISTANCE_RANGE),
        ANALOG(3090, "DetectorStatistic", DOUBLE, "The sequential drift detector's statistic (CUSUM).", unit=ONE,
               range=DETECTOR_RANGE),
        ANALOG(3100, "DetectorThreshold", DOUBLE, "The detector's alarm threshold.", unit=ONE, range=DETECTOR_RANGE),
        Member("multistate", 3110, "DriftState", INT32, "Where the layer's compensation stands.",
               states=DRIFT_STATES),
        ANALOG(3120, "TransportCost", DOUBLE, "Optimal-transport cost (W2 squared) of each column's last "
               "correction, in the square of the layer's output unit.", rank=1, unit=OUTPUT_UNIT_SQUARED,
               range=COST_RANGE),
        VAR(3130, "SampleCount", UINT64, "Samples the layer has seen."),
        ANALOG(3140, "GainTrendPerDecade", DOUBLE, "Drift latent: change of log-gain per decade of age, per column.",
               rank=1, unit=ONE, range=TREND_RANGE),
        ANALOG(3150, "RemainingLife", DOUBLE, "Age at which the correction is predicted to leave the hardware "
               "range (s).", unit=SECOND, range=LIFE_RANGE, unit_first=True, optional=True),
        VAR(3160, "StateReason", STRING, "Why the layer is Suspect, Drifting or Fault: which statistic, which "
            "columns, since when (empty otherwise)."),
        ANALOG(3170, "Coverage", DOUBLE, "Fraction of the live input region the layer's reference can predict "
               "(NaN before a fingerprint).", unit=ONE, range=(0.0, 1.0))]),
    ("CompensatorType", 4000, I.BaseObjectType, "The drift compensator: commands and scan-cycle diagnostics.", [
        METHOD(4010, "Calibrate", doc="Record new fingerprints and correct to them."),
        METHOD(4020, "Commit", doc="Accept the corrections being ramped in as the last good ones."),
        METHOD(4030, "Rollback", doc="Return every layer to its last committed correction."),
        METHOD(4040, "ResetReference", doc="Discard the reference and record a new one."),
        METHOD(4050, "SetAge", doc="Test rig: set the simulated network's age.", optional=True,
               args=(("AgeSeconds", DOUBLE, -1, "Age in seconds."),)),
        METHOD(4060, "SetTemperature", doc="Test rig: set the simulated network's temperature.", optional=True,
               args=(("Temperature", DOUBLE, -1, "Temperature in kelvin."),)),
        METHOD(4070, "InjectFault", doc="Test rig: apply an abrupt gain/offset change to one layer.", optional=True,
               args=(("Layer", UINT32, -1, "Index of the layer."), ("Gain", DOUBLE, 1, "Gain factor per column."),
                     ("Offset", DOUBLE, 1, "Offset per column, in the layer's output unit."))),
        _ms(4080, "ScanPeriod", "Period of the scan task", SCAN_RANGE),
        _ms(4090, "LastCycleTime", "Compute time of the last scan cycle"),
        _ms(4100, "P99CycleTime", "99th percentile of the cycle compute time"),
        _ms(4110, "MaxCycleTime", "Largest cycle compute time"),
        _ms(4120, "DeadlineLateness", "How late the last cycle started against its absolute deadline"),
        VAR(4130, "Overruns", UINT64, "Cycles that missed their deadline.")]),
    ("ControllerLinkType", 5000, I.BaseObjectType, "The link that writes corrections to the PLC.", [
        PROP(5010, "Protocol", STRING, "Transport to the PLC, e.g. 'opcua' or 'modbus'."),
        PROP(5020, "Endpoint", STRING, "Address of the PLC."),
        VAR(5030, "Connected", BOOLEAN, "Whether the PLC is reachable."),
        VAR(5040, "CommitCounter", UINT32, "Incremented after each complete gain/offset set is written."),
        VAR(5050, "Heartbeat", UINT32, "Incremented every scan; the PLC holds last-good values when it stalls."),
        VAR(5060, "LastError", STRING, "The last communication error (empty when none).")]),
    ("DriftEventType", 6000, I.BaseEventType, "A layer changed drift state or raised an alarm.", [
        PROP(6010, "Layer", UINT32, "Index of the layer."),
        PROP(6020, "DriftState", ENUM_ID, "The layer's drift state after the event."),
        PROP(6030, "Kind", STRING, "What happened: " + ", ".join(kind.value for kind in EventKind) + ".")]),
]


async def _add(parent: Node, nodeid: ua.NodeId, name: ua.QualifiedName, node_class: ua.NodeClass, attrs,
               reftype: int, typedef: int | None = None) -> Node:
    """Add one node with an explicit NodeId (asyncua's helpers pick the ids of method arguments themselves)."""
    attrs.DisplayName = ua.LocalizedText(name.Name)
    item = ua.AddNodesItem(RequestedNewNodeId=nodeid, BrowseName=name, NodeClass=node_class,
                           ParentNodeId=parent.nodeid, ReferenceTypeId=ua.NodeId(reftype),
                           TypeDefinition=ua.NodeId(typedef or 0), NodeAttributes=attrs)
    (await parent.session.add_nodes([item]))[0].StatusCode.check()
    return make_node(parent.session, nodeid)


def _variable(doc: str, dtype: ua.NodeId, rank: int = -1, value=None, dims: list[int] | None = None):
    return ua.VariableAttributes(Description=ua.LocalizedText(doc), DataType=dtype, ValueRank=rank,
                                 ArrayDimensions=dims if rank == 1 else None, Value=ua.Variant(value),
                                 AccessLevel=ua.AccessLevel.CurrentRead.mask,
                                 UserAccessLevel=ua.AccessLevel.CurrentRead.mask)


async def _standard_property(parent: Node, nid: int, name: str, doc: str, dtype: int, value,
                             rule: bool | None = True) -> Node:
    """A property with a namespace-0 browse name (EURange, EnumStrings, …) and a value."""
    rank, dims = (1, [len(value)]) if isinstance(value, list) else (-1, None)
    attrs = _variable(doc, ua.NodeId(dtype), rank, value, dims)
    node = await _add(parent, ua.NodeId(nid, parent.nodeid.NamespaceIndex), ua.QualifiedName(name, 0),
                      ua.NodeClass.Variable, attrs, I.HasProperty, I.PropertyType)
    if rule is not None:
        await node.set_modelling_rule(rule)
    return node


async def _member(parent: Node, m: Member) -> None:
    idx = parent.nodeid.NamespaceIndex
    nodeid, name = ua.NodeId(m.nid, idx), ua.QualifiedName(m.name, idx)
    if m.kind == "folder":
        attrs = ua.ObjectAttributes(Description=ua.LocalizedText(m.doc), EventNotifier=0)
        node = await _add(parent, nodeid, name, ua.NodeClass.Object, attrs, I.HasComponent, I.FolderType)
    elif m.kind == "method":
        attrs = ua.MethodAttributes(Description=ua.LocalizedText(m.doc), Executable=True, UserExecutable=True)
        node = await _add(parent, nodeid, name, ua.NodeClass.Method, attrs, I.HasComponent)
        if m.args:
            await _standard_property(node, m.nid + 1, "InputArguments", "", I.Argument, [
                ua.Argument(Name=arg, DataType=ua.NodeId(dtype), ValueRank=rank, ArrayDimensions=[0] * (rank == 1),
                            Description=ua.LocalizedText(doc)) for arg, dtype, rank, doc in m.args])
    else:
        typedef = {"property": I.PropertyType, "variable": I.BaseDataVariableType, "analog": I.AnalogItemType,
                   "multistate": I.MultiStateValueDiscreteType}[m.kind]
        dtype = ua.NodeId(m.dtype, idx if m.dtype == ENUM_ID else 0)
        node = await _add(parent, nodeid, name, ua.NodeClass.Variable, _variable(m.doc, dtype, m.rank, dims=[0]),
                          I.HasProperty if m.kind == "property" else I.HasComponent, typedef)
        range_id, unit_id = (m.nid + 2, m.nid + 1) if m.unit_first else (m.nid + 1, m.nid + 2)
        if m.range:
            await _standard_property(node, range_id, "EURange", "Range of values the variable normally takes.",
                                     I.Range, ua.Range(Low=m.range[0], High=m.range[1]))
        if m.unit:
            await _standard_property(node, unit_id, "EngineeringUnits", "Unit of the value.", I.EUInformation, m.unit)
        if m.states:
            await _standard_property(node, m.nid + 1, "EnumValues", "The states and their names.", I.EnumValueType, [
                ua.EnumValueType(Value=value, DisplayName=ua.LocalizedText(text), Description=ua.LocalizedText(doc))
                for value, text, doc in m.states])
            await _standard_property(node, m.nid + 2, "ValueAsText", "The name of the current state.", TEXT,
                                     ua.LocalizedText(m.states[0][1]))
    await node.set_modelling_rule(not m.optional)


async def build_types(server: Server, idx: int) -> None:
    """Add the enumeration and every type of the model to an initialised server, in namespace ``idx``."""
    names = [state.name.capitalize() for state in DriftState]
    enum = await server.nodes.enum_data_type.add_data_type(
        ua.NodeId(ENUM_ID, idx), ua.QualifiedName("DriftStateEnumeration", idx),
        "Where a layer's drift compensation stands (values as plc_anna.drift.states.DriftState).")
    await enum.write_data_type_definition(ua.EnumDefinition(Fields=[
        ua.EnumField(Name=name, Value=int(state), DisplayName=ua.LocalizedText(name), Description=ua.LocalizedText())
        for name, state in zip(names, DriftState, strict=True)]))
    await _standard_property(enum, ENUM_ID + 1, "EnumStrings", "", TEXT, [ua.LocalizedText(n) for n in names],
                             rule=None)
    for name, nid, supertype, doc, members in TYPES:
        attrs = ua.ObjectTypeAttributes(Description=ua.LocalizedText(doc), IsAbstract=False)
        node = await _add(server.get_node(supertype), ua.NodeId(nid, idx), ua.QualifiedName(name, idx),
                          ua.NodeClass.ObjectType, attrs, I.HasSubtype)
        for member in members:
            await _member(node, member)


async def export_nodes(server: Server, nodes) -> bytes:
    """Export nodes (Nodes or NodeIds) of the model's namespace as pretty-printed NodeSet2 XML bytes.

    Nodes are written in NodeId order, each node's references in
    :func:`_reference_order`, with the model's ``Models`` entry.
    """
    nodeids = sorted((n if isinstance(n, ua.NodeId) else n.nodeid for n in nodes), key=lambda n: n.Identifier)
    exporter = XmlExporter(server, export_values=True)
    await exporter.build_etree([server.get_node(nodeid) for nodeid in nodeids])
    root = exporter.etree.getroot()
    models = ET.Element("Models")
    model = ET.SubElement(models, "Model", ModelUri=NAMESPACE_URI, Version=MODEL_VERSION,
                          PublicationDate=PUBLICATION_DATE)
    ET.SubElement(model, "RequiredModel", REQUIRED_UA)
    root.insert(1, models)  # after NamespaceUris, before Aliases (the NodeSet2 schema's order)
    _use_xml_encoding_ids(root)
    for refs in root.iter("References"):
        refs[:] = sorted(refs, key=_reference_order)  # asyncua's order depends on how the nodes were added
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _use_xml_encoding_ids(root: ET.Element) -> None:
    """Give every ExtensionObject value the NodeId of its type's XML encoding, as NodeSet2 requires.

    asyncua's exporter writes the DataType's NodeId into ``<TypeId>`` (i=884
    Range, i=887 EUInformation, i=296 Argument); other OPC UA stacks look the
    body's decoder up by the encoding's NodeId (i=885, i=888, i=297) and load
    such a value as null, silently. asyncua's own importer reads the body by
    its element name and takes either.
    """
    for type_id in root.iter("uax:TypeId"):
        identifier = type_id.find("uax:Identifier")
        nodeid = ua.NodeId.from_string(identifier.text)
        name = ua.ObjectIdNames.get(nodeid.Identifier) if nodeid.NamespaceIndex == 0 else None
        encoding = getattr(ua.ObjectIds, f"{name}_Encoding_DefaultXml", None)
        if encoding is None:
            raise ValueError(f"no XML encoding known for the ExtensionObject type {identifier.text}")
        identifier.text = ua.NodeId(encoding).to_string()


def _reference_order(ref: ET.Element) -> tuple:
    """Parent first, then type definition and modelling rule, then children by NodeId."""
    first = ("HasTypeDefinition", "HasModellingRule")
    kind = ref.get("ReferenceType")
    target = ua.NodeId.from_string(ref.text)
    return (ref.get("IsForward") != "false", kind not in first, first.index(kind) if kind in first else kind,
            target.NamespaceIndex, target.Identifier)


async def build_xml() -> bytes:
    """Build the model in a fresh in-process server and return its NodeSet2 XML."""
    server = Server()
    await server.init()
    idx = await server.register_namespace(NAMESPACE_URI)
    await build_types(server, idx)
    return await export_nodes(server, await get_nodes_of_namespace(server, [idx]))


def build(path: str | Path = OUTPUT) -> Path:
    """Generate the model into ``path`` (default: the committed file) via a temporary name; return the path."""
    path = Path(path)
    data = asyncio.run(build_xml())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


if __name__ == "__main__":
    import logging

    logging.getLogger("asyncua").setLevel(logging.ERROR)  # the exporter warns that value export is limited
    print(f"wrote {build(sys.argv[1] if len(sys.argv) > 1 else OUTPUT)}")
