"""The OPC UA information model: the committed XML, its loader and its generator.

Every server here is in-process (``init()`` only, no socket). The XML is
loaded once per module and described as plain data; the tests compare those
descriptions with the specification written out below, independently of the
generator's own tables.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from asyncua import Server, ua

from plc_anna.drift.states import DriftState
from plc_anna.server.model import (
    MODEL_PATH,
    NAMESPACE_URI,
    TYPE_NAMES,
    load_model,
    namespace_index,
    resolve_model_path,
    type_node,
)

BUILDER = Path(__file__).resolve().parents[2] / "opcua_models" / "build_model.py"
UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"

P, V, A, M = "PropertyType", "BaseDataVariableType", "AnalogItemType", "MultiStateValueDiscreteType"
MAND, OPT = "Mandatory", "Optional"
METHOD, OPT_METHOD = ("Method", None, None, MAND), ("Method", None, None, OPT)
MS = (A, "Double", -1, MAND)
#: type -> member -> (type definition, data type, value rank, modelling rule)
EXPECTED = {
    "AnalogNetworkType": {
        "Manufacturer": (P, "LocalizedText", -1, MAND), "Model": (P, "LocalizedText", -1, MAND),
        **{name: (P, "String", -1, MAND) for name in
           ("SerialNumber", "HardwareRevision", "SoftwareRevision", "DeviceRevision", "ProductCode")},
        "Age": (A, "Double", -1, MAND), "Temperature": (A, "Double", -1, MAND), "Task": (V, "String", -1, MAND),
        "Layers": ("FolderType", None, None, MAND)},
    "LayerType": {
        "Index": (P, "UInt32", -1, MAND), "Inputs": (P, "UInt32", -1, MAND), "Columns": (P, "UInt32", -1, MAND),
        "Sink": (P, "String", -1, MAND), "Gain": (A, "Double", 1, MAND), "Offset": (A, "Double", 1, MAND),
        "ColumnDistance": (A, "Double", 1, MAND), "LayerDistance": (A, "Double", -1, MAND),
        "DetectorStatistic": (A, "Double", -1, MAND), "DetectorThreshold": (A, "Double", -1, MAND),
        "DriftState": (M, "Int32", -1, MAND), "TransportCost": (A, "Double", 1, MAND),
        "SampleCount": (V, "UInt64", -1, MAND), "GainTrendPerDecade": (A, "Double", 1, MAND),
        "RemainingLife": (A, "Double", -1, OPT), "StateReason": (V, "String", -1, MAND),
        "Coverage": (A, "Double", -1, MAND)},
    "CompensatorType": {
        "Calibrate": METHOD, "Commit": METHOD, "Rollback": METHOD, "ResetReference": METHOD,
        "SetAge": OPT_METHOD, "SetTemperature": OPT_METHOD, "InjectFault": OPT_METHOD,
        "ScanPeriod": MS, "LastCycleTime": MS, "P99CycleTime": MS, "MaxCycleTime": MS, "DeadlineLateness": MS,
        "Overruns": (V, "UInt64", -1, MAND)},
    "ControllerLinkType": {
        "Protocol": (P, "String", -1, MAND), "Endpoint": (P, "String", -1, MAND),
        "Connected": (V, "Boolean", -1, MAND), "CommitCounter": (V, "UInt32", -1, MAND),
        "Heartbeat": (V, "UInt32", -1, MAND), "LastError": (V, "String", -1, MAND)},
    "DriftEventType": {
        "Layer": (P, "UInt32", -1, MAND), "DriftState": (P, "DriftStateEnumeration", -1, MAND),
        "Kind": (P, "String", -1, MAND)},
}
SUPERTYPES = {"DriftStateEnumeration": "Enumeration", "AnalogNetworkType": "BaseObjectType",
              "LayerType": "BaseObjectType", "CompensatorType": "BaseObjectType",
              "ControllerLinkType": "BaseObjectType", "DriftEventType": "BaseEventType"}
ARGUMENTS = {"SetAge": [("AgeSeconds", "Double", -1)], "SetTemperature": [("Temperature", "Double", -1)],
             "InjectFault": [("Layer", "UInt32", -1), ("Gain", "Double", 1), ("Offset", "Double", 1)]}


def unit_id(code: str) -> int:
    return int.from_bytes(code.encode("ascii"), "big")  # OPC 10000-8: the UNECE common code as an integer


# (type, member) -> (EURange low/high or None, (UnitId, DisplayName))
ANALOG = {("AnalogNetworkType", "Age"): ((0.0, 3.2e10), (unit_id("SEC"), "s")),
          ("AnalogNetworkType", "Temperature"): ((1.0, 1000.0), (unit_id("KEL"), "K")),
          ("LayerType", "Gain"): ((0.25, 4.0), (unit_id("C62"), "1")),
          ("LayerType", "Offset"): ((-1e6, 1e6), (-1, "(output unit)")),
          ("LayerType", "ColumnDistance"): ((0.0, 10.0), (unit_id("C62"), "1")),
          ("LayerType", "LayerDistance"): ((0.0, 10.0), (unit_id("C62"), "1")),
          ("LayerType", "DetectorStatistic"): ((0.0, 20.0), (unit_id("C62"), "1")),
          ("LayerType", "DetectorThreshold"): ((0.0, 20.0), (unit_id("C62"), "1")),
          ("LayerType", "TransportCost"): ((0.0, 1e6), (-1, "(output unit)²")),
          ("LayerType", "GainTrendPerDecade"): ((-1.0, 1.0), (unit_id("C62"), "1")),
          ("LayerType", "RemainingLife"): ((0.0, 3.2e10), (unit_id("SEC"), "s")),
          ("LayerType", "Coverage"): ((0.0, 1.0), (unit_id("C62"), "1")),
          ("CompensatorType", "ScanPeriod"): ((5.0, 10000.0), (unit_id("C26"), "ms")),
          **{("CompensatorType", name): ((0.0, 10000.0), (unit_id("C26"), "ms")) for name in
             ("LastCycleTime", "P99CycleTime", "MaxCycleTime", "DeadlineLateness")}}
#: Every drift state as the DriftState variable's EnumValues name it.
STATE_NAMES = ["Calibrating", "Nominal", "Suspect", "Drifting", "Compensating", "Fault"]


def load_builder():
    """``opcua_models/build_model.py`` as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("plc_anna_build_model", BUILDER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


async def _name(server: Server, nodeid: ua.NodeId) -> str:
    return (await server.get_node(nodeid).read_browse_name()).Name


async def _value(node, name: str):
    return await (await node.get_child(f"0:{name}")).read_value()


async def _describe_member(server: Server, child) -> tuple:
    rules = await child.get_referenced_nodes(ua.ObjectIds.HasModellingRule)
    rule = (await rules[0].read_browse_name()).Name if rules else None
    if await child.read_node_class() == ua.NodeClass.Method:
        return ("Method", None, None, rule)
    typedef = await _name(server, await child.read_type_definition())
    if typedef == "FolderType":
        return (typedef, None, None, rule)
    return (typedef, await _name(server, await child.read_data_type()), await child.read_value_rank(), rule)


async def describe(server: Server) -> dict:
    """The loaded model as plain data: members, analog metadata, arguments, the enumeration."""
    idx = await namespace_index(server)
    out = {"members": {}, "analog": {}, "arguments": {}, "supertypes": {}}
    for name in TYPE_NAMES:
        node = await type_node(server, name)
        parent = (await node.get_referenced_nodes(ua.ObjectIds.HasSubtype, ua.BrowseDirection.Inverse))[0]
        out["supertypes"][name] = (await parent.read_browse_name()).Name
        if name == "DriftStateEnumeration":
            out["enum_fields"] = [(f.Name, f.Value) for f in (await node.read_data_type_definition()).Fields]
            out["enum_strings"] = [text.Text for text in await _value(node, "EnumStrings")]
            continue
        members = out["members"][name] = {}
        for child in await node.get_children(refs=ua.ObjectIds.Aggregates):
            member = (await child.read_browse_name()).Name
            members[member] = await _describe_member(server, child)
            if members[member][0] == A:
                eurange = await _value(child, "EURange")
                unit = await _value(child, "EngineeringUnits")
                out["analog"][name, member] = ((eurange.Low, eurange.High) if eurange else None,
                                               (unit.NamespaceUri, unit.UnitId, unit.DisplayName.Text))
            if members[member][0] == M:
                out["enum_values"] = [(v.Value, v.DisplayName.Text) for v in await _value(child, "EnumValues")]
                out["value_as_text"] = (await _value(child, "ValueAsText")).Text
            if members[member][0] == "Method" and await child.get_children():
                out["arguments"][member] = [(arg.Name, await _name(server, arg.DataType), arg.ValueRank)
                                            for arg in await _value(child, "InputArguments")]
    # What the coming server will do: instantiate a layer without its optional members.
    layer = await server.nodes.objects.add_object(idx, "Layer0", await type_node(server, "LayerType"),
                                                  instantiate_optional=False)
    gain = await layer.get_child(f"{idx}:Gain")
    unit = await _value(gain, "EngineeringUnits")
    out["instance"] = {"children": sorted([(await c.read_browse_name()).Name for c in await layer.get_children()]),
                       "gain_range": await _value(gain, "EURange"), "gain_unit": unit.UnitId}
    return out


async def load_and_describe(path: Path, builder) -> tuple[dict, bytes]:
    """Load ``path`` into a fresh server: its description and the namespace exported again."""
    server = Server()
    await server.init()
    idx = await load_model(server, path)
    assert idx == await namespace_index(server) and idx > 0
    with pytest.raises(ValueError, match="already loaded"):
        await load_model(server, path)
    types = [(await type_node(server, name)).nodeid for name in TYPE_NAMES]
    ids = [ua.NodeId.from_string(el.get("NodeId")).Identifier for el in ET.parse(path).getroot() if el.get("NodeId")]
    model_nodes = [ua.NodeId(identifier, idx) for identifier in ids]  # not the NamespaceMetadata import adds
    assert set(types) <= set(model_nodes)
    exported = await builder.export_nodes(server, model_nodes)  # before describe() adds an instance
    return await describe(server), exported


@pytest.fixture(scope="module")
def builder():
    return load_builder()


@pytest.fixture(scope="module")
def loaded(builder):
    return asyncio.run(load_and_describe(MODEL_PATH, builder))


def test_xml_is_pretty_printed_and_well_formed():
    text = MODEL_PATH.read_text(encoding="utf-8")
    assert text.count("\n") > 500 and "\n  <UAObjectType " in text and "\n        <uax:Body>" in text
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag.endswith("UANodeSet")
    # asyncua's importer reads a structured value only from an element with text: minified, it drops them
    bare = [el.tag for el in root.iter() if len(el) and not (el.text and el.text.startswith("\n"))]
    assert bare == []
    uris = [el.text for el in root.iter("{http://opcfoundation.org/UA/2011/03/UANodeSet.xsd}Uri")]
    assert uris == [NAMESPACE_URI]


def test_every_type_with_its_members(loaded):
    description, _ = loaded
    assert description["supertypes"] == SUPERTYPES
    assert description["members"] == EXPECTED
    assert description["arguments"] == ARGUMENTS


def test_engineering_units_and_ranges_survive_import(loaded):
    description, _ = loaded
    expected = {key: (eurange, (UNECE, *unit)) for key, (eurange, unit) in ANALOG.items()}
    assert description["analog"] == expected
    assert description["analog"]["LayerType", "Gain"] == ((0.25, 4.0), (UNECE, 4404786, "1"))


def test_enumeration_matches_drift_state_member_by_member(loaded):
    description, _ = loaded
    assert description["enum_values"] == list(enumerate(STATE_NAMES))
    assert description["value_as_text"] == "Calibrating"
    assert [state.name.capitalize() for state in DriftState] == STATE_NAMES
    assert len(description["enum_fields"]) == len(DriftState)
    for (name, value), text, state in zip(description["enum_fields"], description["enum_strings"], DriftState,
                                          strict=True):
        assert (name.upper(), value) == (state.name, state.value)
        assert text == name


def test_instantiating_a_layer_copies_ranges_and_units(loaded):
    instance = loaded[0]["instance"]
    assert instance["children"] == sorted(set(EXPECTED["LayerType"]) - {"RemainingLife"})
    assert (instance["gain_range"].Low, instance["gain_range"].High) == (0.25, 4.0)
    assert instance["gain_unit"] == unit_id("C62")


def test_round_trip_through_a_second_server(loaded, builder, tmp_path):
    description, exported = loaded
    assert exported == MODEL_PATH.read_bytes()  # import then export changes nothing, byte for byte
    path = tmp_path / "again.xml"
    path.write_bytes(exported)
    again, exported_again = asyncio.run(load_and_describe(path, builder))
    assert again == description
    assert exported_again == exported


def test_generator_is_deterministic_and_matches_the_committed_xml(builder, tmp_path):
    first, second = builder.build(tmp_path / "a.xml"), builder.build(tmp_path / "b.xml")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == MODEL_PATH.read_bytes(), (
        "opcua_models/plc_anna.xml is stale: run `python opcua_models/build_model.py`")


class _BareServer:
    """Just enough of an asyncua server for the loader's checks that need no address space."""

    async def get_namespace_array(self):
        return ["http://opcfoundation.org/UA/"]


def test_loader_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        resolve_model_path(tmp_path / "missing.xml")
    broken = tmp_path / "broken.xml"
    broken.write_text("<UANodeSet><oops></UANodeSet>")
    with pytest.raises(ValueError, match="not well-formed"):
        asyncio.run(load_model(_BareServer(), broken))
    with pytest.raises(ValueError, match="unknown type 'Layer'"):
        asyncio.run(type_node(_BareServer(), "Layer"))
    with pytest.raises(ValueError, match="load the model first"):
        asyncio.run(type_node(_BareServer(), "LayerType"))
    assert resolve_model_path() == MODEL_PATH


def test_an_installed_copy_is_found_when_there_is_no_checkout(monkeypatch, tmp_path):
    import plc_anna.server.model as model

    installed = tmp_path / "share" / "plc_anna.xml"
    installed.parent.mkdir()
    installed.write_bytes(model.MODEL_PATH.read_bytes())
    monkeypatch.setattr(model, "MODEL_PATH", tmp_path / "no-checkout.xml")
    monkeypatch.setattr(model, "INSTALLED_MODEL_PATH", installed)
    assert model.resolve_model_path() == installed
    monkeypatch.setattr(model, "INSTALLED_MODEL_PATH", tmp_path / "missing.xml")
    with pytest.raises(ValueError, match="reinstall plc-anna"):
        model.resolve_model_path()


def _xml_nodes(path: Path) -> dict[str, dict]:
    """NodeId (``i=N`` in the model's namespace) -> browse name, parent and whether the file gives a value."""
    ns = "{http://opcfoundation.org/UA/2011/03/UANodeSet.xsd}"
    nodes = {}
    for el in ET.parse(path).getroot():
        if el.get("NodeId"):
            parent = el.get("ParentNodeId")
            nodes[el.get("NodeId").split(";")[-1]] = {
                "name": el.get("BrowseName").split(":")[-1], "parent": parent.split(";")[-1] if parent else None,
                "valued": el.find(f"{ns}Value") is not None}
    return nodes


def test_an_independent_implementation_loads_every_value(node_opcua):
    """node-opcua loads the file with every structured value, and reads the ranges and units we specify."""
    loaded = node_opcua.run("load_model.js", MODEL_PATH, NAMESPACE_URI)["values"]
    nodes = _xml_nodes(MODEL_PATH)
    valued = sorted(nid for nid, node in nodes.items() if node["valued"])
    assert len(valued) >= 18
    assert [nid for nid in valued if loaded[nid]["value"] is None] == []
    analog = {}
    for nid, node in nodes.items():
        if node["name"] in ("EURange", "EngineeringUnits"):
            member = nodes[node["parent"]]
            analog.setdefault((nodes[member["parent"]]["name"], member["name"]), {})[node["name"]] = loaded[nid]
    seen = {}
    for key, props in analog.items():
        eurange, unit = props.get("EURange"), props["EngineeringUnits"]
        assert unit["dataType"] == "EUInformation" and unit["value"]["namespaceUri"] == UNECE
        seen[key] = ((eurange["value"]["low"], eurange["value"]["high"]) if eurange else None,
                     (unit["value"]["unitId"], unit["value"]["displayName"]["text"]))
    assert seen == ANALOG
    arguments = {nodes[node["parent"]]["name"]: [(arg["name"], arg["valueRank"]) for arg in loaded[nid]["value"]]
                 for nid, node in nodes.items() if node["name"] == "InputArguments"}
    assert arguments == {method: [(name, rank) for name, _, rank in args] for method, args in ARGUMENTS.items()}
