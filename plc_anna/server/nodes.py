"""The server's objects: instances of the model's types with stable NodeIds, and their per-scan update.

Every node the server creates has a string NodeId in the model's namespace
that spells its browse path, e.g. ``AnalogNetwork.Layers.Layer1.Gain`` or
``Compensator.Calibrate``. asyncua gives the members of an instance whose
NodeId is a string the NodeId ``<instance>.<member>``, so these ids never
shift when the model grows (automatic numeric ids would). SCADA tag lists can
keep them.

A server of one network puts its AnalogNetwork, Compensator and
ControllerLink objects directly under Objects. A server of several puts each
network's three objects in a folder ``Objects/Networks/<name>``, and their
NodeIds gain the prefix ``Networks.<name>.``: ``Networks.line2.AnalogNetwork.
Layers.Layer1.Gain``, ``Networks.line2.Compensator.Calibrate``. Below the
prefix every path is the single network's.

:func:`publish` writes a scan's values through the server's fast path
(``write_attribute_value``: no request decoding, no access checks), arrays as
single values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from asyncua import Node, Server, ua

from plc_anna.device.network import Network
from plc_anna.drift.states import DriftState
from plc_anna.server.model import type_node
from plc_anna.server.runtime import Snapshot
from plc_anna.engine.task import CycleStats

UNECE_UNITS_URI = "http://www.opcfoundation.org/UA/units/un/cefact"
#: Output units of network files -> (UNECE common code, display symbol).
UNITS = {"": ("C62", "1"), "1": ("C62", "1"), "V": ("VLT", "V"), "mV": ("2Z", "mV"), "A": ("AMP", "A"),
         "mA": ("4K", "mA"), "K": ("KEL", "K"), "degC": ("CEL", "°C"), "°C": ("CEL", "°C"), "Pa": ("PAL", "Pa"),
         "bar": ("BAR", "bar"), "%": ("P1", "%")}

LAYER_MEMBERS = ("Gain", "Offset", "ColumnDistance", "LayerDistance", "DetectorStatistic", "DetectorThreshold",
                 "DriftState", "TransportCost", "SampleCount", "GainTrendPerDecade", "RemainingLife", "StateReason",
                 "Coverage")
#: DriftState's ValueAsText for each state (the names of the model's EnumValues).
STATE_TEXT = {state: ua.LocalizedText(state.name.capitalize()) for state in DriftState}
DIAGNOSTICS = ("ScanPeriod", "LastCycleTime", "P99CycleTime", "MaxCycleTime", "DeadlineLateness", "Overruns")
#: Publishing's own diagnostics, variables of each Compensator instance (ms, and scans not published).
PUBLISH_DIAGNOSTICS = (("PublishInterval", ua.VariantType.Double), ("PublishDropped", ua.VariantType.UInt64))
#: The folder of the networks of a server that serves several (a NodeId and a browse name).
NETWORKS_FOLDER = "Networks"
OPERATIONS = ("Calibrate", "Commit", "Rollback", "ResetReference")
TEST_RIG_METHODS = ("SetAge", "SetTemperature", "InjectFault")
LINK_MEMBERS = ("Protocol", "Endpoint", "Connected", "CommitCounter", "Heartbeat", "LastError")


#: The model's placeholder EURange of Offset: the bound of an unbounded offset range.
OFFSET_LIMIT = 1e6


def offset_eu_range(offset_range: tuple[float, float]) -> tuple[float, float]:
    """The EURange published (and enforced on writes) for Offset: the correction range within ±OFFSET_LIMIT."""
    return max(offset_range[0], -OFFSET_LIMIT), min(offset_range[1], OFFSET_LIMIT)


def engineering_units(unit: str, squared: bool = False) -> ua.EUInformation:
    """The OPC UA EUInformation of a unit string of a network file (UNECE code; UnitId -1 if unknown).

    ``squared``: the square of the unit (a transport cost); UNECE names no squares of these units, so
    the UnitId is -1 unless the unit is dimensionless.
    """
    code, symbol = UNITS.get(unit, (None, unit))
    if squared and code != "C62":
        return ua.EUInformation(NamespaceUri=UNECE_UNITS_URI, UnitId=-1, DisplayName=ua.LocalizedText(f"{symbol}²"),
                                Description=ua.LocalizedText(f"({unit}) squared"))
    unit_id = -1
    if code is not None:
        unit_id = 0
        for char in code:  # OPC UA Part 8: the UnitId of a UNECE code is its ASCII bytes, big-endian
            unit_id = (unit_id << 8) | ord(char)
    return ua.EUInformation(NamespaceUri=UNECE_UNITS_URI, UnitId=unit_id, DisplayName=ua.LocalizedText(symbol),
                            Description=ua.LocalizedText(unit or "dimensionless"))


@dataclass
class LayerNodes:
    """One layer object and its members by browse name (:data:`LAYER_MEMBERS`)."""

    index: int
    object: Node
    members: dict[str, Node]
    state_text: Node
    """DriftState's ValueAsText."""


def network_prefix(name: str | None) -> str:
    """The NodeId prefix of a network's objects: ``""`` for the single-network layout, else ``Networks.<name>.``."""
    return "" if name is None else f"{NETWORKS_FOLDER}.{name}."


@dataclass
class AddressSpace:
    """Every node of one network the server writes or links, by role."""

    idx: int
    prefix: str
    network: Node
    network_members: dict[str, Node]
    layers: list[LayerNodes]
    compensator: Node
    diagnostics: dict[str, Node]
    methods: dict[str, Node]
    link: Node
    link_members: dict[str, Node]

    def nodeid(self, path: str) -> ua.NodeId:
        """The NodeId of a path such as ``"Compensator.Calibrate"`` below the network's prefix."""
        return ua.NodeId(self.prefix + path, self.idx)


def _members(parent: Node, names: tuple[str, ...]) -> dict[str, Node]:
    """The members of an instance by browse name, from their NodeIds ``<instance>.<member>``."""
    ident, idx = parent.nodeid.Identifier, parent.nodeid.NamespaceIndex
    return {name: Node(parent.session, ua.NodeId(f"{ident}.{name}", idx)) for name in names}


async def build_address_space(server: Server, idx: int, network: Network, sinks: tuple[str, ...],
                              nameplate: dict[str, str],
                              gain_range: tuple[float, float], offset_range: tuple[float, float],
                              test_rig: bool, name: str | None = None) -> AddressSpace:
    """Instantiate the AnalogNetwork (with one Layer per network layer), Compensator and ControllerLink.

    Parameters
    ----------
    server, idx
        An initialised server with the model loaded, and the model's namespace index.
    network
        The network the server runs: layer sizes and output unit.
    sinks
        Where each layer's correction is applied (``device`` or ``plc``).
    nameplate
        Values of the AnalogNetworkType nameplate properties by browse name (Manufacturer, Model, ...).
    gain_range, offset_range
        The correction range, written as the EURange of every Gain and Offset.
    test_rig
        Whether the Compensator gets the test-rig methods (SetAge, SetTemperature, InjectFault).
    name
        None for the single-network layout; a network's name to put its objects in ``Networks/<name>``.
    """
    prefix = network_prefix(name)
    objects = server.nodes.objects if name is None else await _network_folder(server, idx, name)
    net = await objects.add_object(ua.NodeId(f"{prefix}AnalogNetwork", idx), ua.QualifiedName("AnalogNetwork", idx),
                                   await type_node(server, "AnalogNetworkType"))
    net_members = _members(net, ("Manufacturer", "Model", "SerialNumber", "HardwareRevision",
                                       "SoftwareRevision", "DeviceRevision", "ProductCode", "Age", "Temperature",
                                       "Task", "Layers"))
    for name, value in nameplate.items():
        node = net_members[name]
        text = ua.LocalizedText(value) if name in ("Manufacturer", "Model") else value
        await node.write_value(text)
    await net_members["Task"].write_value(network.task)
    layer_type = await type_node(server, "LayerType")
    layers = []
    offset_low, offset_high = offset_eu_range(offset_range)
    for i, layer in enumerate(network.layers):
        path = f"{prefix}AnalogNetwork.Layers.Layer{i}"
        obj = await net_members["Layers"].add_object(ua.NodeId(path, idx), ua.QualifiedName(f"Layer{i}", idx),
                                                     layer_type)
        members = _members(obj, LAYER_MEMBERS + ("Index", "Inputs", "Columns", "Sink"))
        n_out, n_in = layer.weights.shape
        for name, value, vtype in (("Index", i, ua.VariantType.UInt32), ("Inputs", n_in, ua.VariantType.UInt32),
                                   ("Columns", n_out, ua.VariantType.UInt32)):
            await members[name].write_value(ua.Variant(value, vtype))
        unit = network.output_unit if i == len(network.layers) - 1 else ""
        await members["Sink"].write_value(sinks[i])
        gain_props = _members(members["Gain"], ("EURange",))
        offset_props = _members(members["Offset"], ("EURange", "EngineeringUnits"))
        await gain_props["EURange"].write_value(ua.Range(Low=gain_range[0], High=gain_range[1]))
        await offset_props["EURange"].write_value(ua.Range(Low=offset_low, High=offset_high))
        await offset_props["EngineeringUnits"].write_value(engineering_units(unit))
        await _members(members["TransportCost"], ("EngineeringUnits",))["EngineeringUnits"].write_value(
            engineering_units(unit, squared=True))
        await members["Gain"].write_value(ua.Variant([1.0] * n_out, ua.VariantType.Double))
        await members["Offset"].write_value(ua.Variant([0.0] * n_out, ua.VariantType.Double))
        layers.append(LayerNodes(i, obj, members, _members(members["DriftState"], ("ValueAsText",))["ValueAsText"]))
    compensator = await objects.add_object(ua.NodeId(f"{prefix}Compensator", idx),
                                           ua.QualifiedName("Compensator", idx),
                                           await type_node(server, "CompensatorType"),
                                           instantiate_optional=test_rig)
    diagnostics = _members(compensator, DIAGNOSTICS)
    for member, vtype in PUBLISH_DIAGNOSTICS:
        diagnostics[member] = await compensator.add_variable(
            ua.NodeId(f"{prefix}Compensator.{member}", idx), ua.QualifiedName(member, idx),
            ua.Variant(0.0 if vtype == ua.VariantType.Double else 0, vtype))
    methods = _members(compensator, OPERATIONS + (TEST_RIG_METHODS if test_rig else ()))
    link = await objects.add_object(ua.NodeId(f"{prefix}ControllerLink", idx), ua.QualifiedName("ControllerLink", idx),
                                    await type_node(server, "ControllerLinkType"))
    link_members = _members(link, LINK_MEMBERS)
    return AddressSpace(idx=idx, prefix=prefix, network=net, network_members=net_members, layers=layers,
                        compensator=compensator, diagnostics=diagnostics, methods=methods, link=link,
                        link_members=link_members)


async def _network_folder(server: Server, idx: int, name: str) -> Node:
    """The folder ``Objects/Networks/<name>`` of one network (and ``Networks`` itself, the first time)."""
    folder = Node(server.iserver.isession, ua.NodeId(NETWORKS_FOLDER, idx))
    try:
        await folder.read_browse_name()
    except ua.UaStatusCodeError:
        folder = await server.nodes.objects.add_folder(ua.NodeId(NETWORKS_FOLDER, idx),
                                                       ua.QualifiedName(NETWORKS_FOLDER, idx))
    return await folder.add_folder(ua.NodeId(f"{NETWORKS_FOLDER}.{name}", idx), ua.QualifiedName(name, idx))


def _value(value, vtype: ua.VariantType, now: datetime) -> ua.DataValue:
    return ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=now, ServerTimestamp=now)


async def publish(server: Server, space: AddressSpace, snapshot: Snapshot, stats: CycleStats | None = None,
                  linked: bool = False, publishing: tuple[float, int] | None = None) -> None:
    """Write a scan's values to the nodes through ``server.write_attribute_value``.

    ``stats`` are the scan's (ScanPeriod and the cycle times); with ``linked`` a PLC link shows its own
    commit counter and heartbeat (:class:`~plc_anna.server.controller.ControllerService`);
    ``publishing`` is the publishing interval (ms) and the count of scans not published.
    """
    now = datetime.now(UTC)
    write = server.iserver.aspace.write_attribute_value
    value = ua.AttributeIds.Value
    D = ua.VariantType.Double
    await write(space.network_members["Age"].nodeid, value, _value(snapshot.age_s, D, now))
    await write(space.network_members["Temperature"].nodeid, value, _value(snapshot.temperature_k, D, now))
    for nodes, layer in zip(space.layers, snapshot.layers):
        m = nodes.members
        for name, item, vtype in (
                ("Gain", layer.gain.tolist(), D), ("Offset", layer.offset.tolist(), D),
                ("ColumnDistance", layer.column_distance.tolist(), D), ("LayerDistance", layer.layer_distance, D),
                ("DetectorStatistic", layer.statistic, D), ("DetectorThreshold", layer.threshold, D),
                ("DriftState", int(layer.state), ua.VariantType.Int32),
                ("TransportCost", layer.transport_cost.tolist(), D),
                ("SampleCount", layer.sample_count, ua.VariantType.UInt64),
                ("GainTrendPerDecade", layer.gain_trend.tolist(), D),
                ("StateReason", layer.state_reason, ua.VariantType.String), ("Coverage", layer.coverage, D)):
            await write(m[name].nodeid, value, _value(item, vtype, now))
        await write(nodes.state_text.nodeid, value, _value(STATE_TEXT[layer.state], ua.VariantType.LocalizedText, now))
        if layer.remaining_life_s is None:
            life = ua.DataValue(ua.Variant(None, ua.VariantType.Null), SourceTimestamp=now, ServerTimestamp=now,
                                StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData))
        else:
            life = _value(layer.remaining_life_s, D, now)
        await write(m["RemainingLife"].nodeid, value, life)
    link = space.link_members
    if not linked:
        await write(link["CommitCounter"].nodeid, value, _value(snapshot.commit_counter, ua.VariantType.UInt32, now))
        await write(link["Heartbeat"].nodeid, value, _value(snapshot.heartbeat, ua.VariantType.UInt32, now))
    diag = space.diagnostics
    if stats is not None:
        for name, item in (("ScanPeriod", stats.period_ms), ("LastCycleTime", stats.last_ms),
                           ("P99CycleTime", stats.p99_ms), ("MaxCycleTime", stats.max_ms),
                           ("DeadlineLateness", stats.lateness_ms)):
            await write(diag[name].nodeid, value, _value(float(item), D, now))
        await write(diag["Overruns"].nodeid, value, _value(stats.overruns, ua.VariantType.UInt64, now))
    if publishing is not None:
        await write(diag["PublishInterval"].nodeid, value, _value(float(publishing[0]), D, now))
        await write(diag["PublishDropped"].nodeid, value, _value(int(publishing[1]), ua.VariantType.UInt64, now))

