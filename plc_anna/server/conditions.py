"""OPC UA Alarms & Conditions on asyncua: AlarmConditionType instances with Acknowledge and ConditionRefresh.

asyncua has the types, the event objects, and ConditionRefresh over the
events it retains, but no condition state machine: nothing keeps an alarm's
ActiveState and AckedState, computes Retain, or answers Acknowledge. This
module does (OPC 10000-9, without branches, shelving or confirmation):

- :class:`Condition`: one AlarmConditionType instance in the address space
  (a component of its source, with a HasCondition reference from it). It is
  Active or Inactive and Acked or Unacked; it goes Active and Unacked when
  :meth:`Condition.set` activates it, Acked when a client acknowledges it, and
  is retained (``Retain``) while it is active or unacknowledged. Every change
  is an event from the Server object (where HMIs subscribe) with a new
  EventId, and is written to the instance's variables.
- :class:`ConditionServer`: the server's side of the methods. Acknowledge
  (the type's method, i=9111, called on the condition, or the instance's own)
  takes the EventId of one of the condition's events since it last went
  active and a comment; it answers ``BadEventIdUnknown``,
  ``BadConditionBranchAlreadyAcked`` or ``BadNodeIdUnknown`` when those do not
  fit. ConditionRefresh (asyncua's) resends the retained conditions between a
  RefreshStart and a RefreshEnd event. Who may call which is the ruleset's
  business: :meth:`ConditionServer.install` registers Acknowledge as an
  operation and ConditionRefresh as a read. Enable, Disable and AddComment
  answer ``BadNotImplemented``.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from asyncua import Node, Server, ua
from asyncua.server.event_generator import EventGenerator

from plc_anna.server.security import caller_name

if TYPE_CHECKING:
    from plc_anna.server.security import RoleRuleset

logger = logging.getLogger(__name__)

I = ua.ObjectIds
#: The condition classes an alarm may belong to (OPC 10000-9, 5.9).
CONDITION_CLASSES = {"process": I.ProcessConditionClassType, "maintenance": I.MaintenanceConditionClassType,
                     "system": I.SystemConditionClassType}
#: EventIds of one activation an Acknowledge may name (the newest ones).
EVENT_IDS_KEPT = 32
_TEXT = ua.LocalizedText
_BUILTIN_OF = {I.UtcTime: ua.VariantType.DateTime, I.Duration: ua.VariantType.Double,
               I.LocaleId: ua.VariantType.String}
_STATE_TEXT = {"active": (_TEXT("Active"), _TEXT("Inactive")), "acked": (_TEXT("Acknowledged"), _TEXT("Unacknowledged")),
               "enabled": (_TEXT("Enabled"), _TEXT("Disabled"))}


@dataclass(frozen=True)
class ConditionSpec:
    """What a condition is: its browse name, class and severity."""

    name: str
    condition_class: str
    severity: int


class Condition:
    """One alarm: an AlarmConditionType instance and its state (use :meth:`ConditionServer.add` to make one)."""

    def __init__(self, server: Server, node: Node, source: Node, source_name: str, spec: ConditionSpec,
                 generator: EventGenerator) -> None:
        self.server, self.node, self.source, self.spec = server, node, source, spec
        self.active = False
        self.acked = True
        self.message = ""
        self.comment = ""
        self.acked_by = ""
        self._transition = datetime.now(UTC)
        self._generator = generator
        self._event_ids: deque[bytes] = deque(maxlen=EVENT_IDS_KEPT)
        event = generator.event
        for name, vtype in event.data_types.items():
            # asyncua's event classes type a few fields by DataType NodeId (UtcTime, Duration), which its
            # event encoder cannot use once such a field has a value: give them their builtin types
            if isinstance(vtype, ua.NodeId):
                event.data_types[name] = _BUILTIN_OF.get(vtype.Identifier, ua.VariantType.Variant)
        class_id = CONDITION_CLASSES[spec.condition_class]
        for name, value in (("SourceNode", source.nodeid), ("SourceName", source_name),
                            ("ConditionName", spec.name), ("ConditionClassId", ua.NodeId(class_id)),
                            ("ConditionClassName", _TEXT(ua.ObjectIdNames[class_id])), ("NodeId", node.nodeid),
                            ("BranchId", ua.NodeId()), ("EnabledState", _STATE_TEXT["enabled"][0]),
                            ("EnabledState/Id", True), ("Quality", ua.StatusCode()),
                            ("SuppressedOrShelved", False), ("InputNode", ua.NodeId())):
            setattr(event, name, value)
        self._fill(event)

    @property
    def retain(self) -> bool:
        """Whether a client refreshing its alarm list must see this condition: active or unacknowledged."""
        return self.active or not self.acked

    @property
    def event_id(self) -> bytes | None:
        """The EventId of the newest event of this condition."""
        return self._event_ids[-1] if self._event_ids else None

    async def set(self, active: bool, message: str) -> bool:
        """Activate or deactivate with ``message`` (the same state with a new message is reported too).

        Returns True if an event was sent. Going active makes the condition
        unacknowledged; going inactive leaves it retained until acknowledged.
        """
        if active == self.active and (message == self.message or not active):
            return False
        if active and not self.active:
            self.acked, self.comment, self.acked_by = False, "", ""
            self._event_ids.clear()
        if active != self.active:
            self._transition = datetime.now(UTC)
        self.active, self.message = active, message
        await self._report()
        return True

    async def acknowledge(self, event_id: bytes | None, comment: str, user: str) -> int:
        """A client's Acknowledge: the OPC UA status it answers (Good, or why not)."""
        if event_id not in self._event_ids:
            return ua.StatusCodes.BadEventIdUnknown
        if self.acked:
            return ua.StatusCodes.BadConditionBranchAlreadyAcked
        self.acked, self.comment, self.acked_by = True, comment, user
        logger.info("%s acknowledged by %s%s", self.spec.name, user or "anonymous", f": {comment}" if comment else "")
        await self._report()
        return ua.StatusCodes.Good

    def _fill(self, event: Any) -> None:
        for name, value in (("ActiveState", _STATE_TEXT["active"][not self.active]), ("ActiveState/Id", self.active),
                            ("AckedState", _STATE_TEXT["acked"][not self.acked]), ("AckedState/Id", self.acked),
                            ("Retain", self.retain), ("Severity", self.spec.severity),
                            ("LastSeverity", self.spec.severity), ("Comment", _TEXT(self.comment)),
                            ("ClientUserId", self.acked_by), ("ActiveState/TransitionTime", self._transition)):
            setattr(event, name, value)

    async def _report(self) -> None:
        event = self._generator.event
        self._fill(event)
        await self._generator.trigger(message=self.message or f"{self.spec.name} inactive")
        self._event_ids.append(event.EventId.Value)
        await self._write_instance(event)

    async def _write_instance(self, event: Any) -> None:
        """The instance's variables, for clients that browse rather than subscribe."""
        write = self.server.iserver.aspace.write_attribute_value
        path, idx = self.node.nodeid.Identifier, self.node.nodeid.NamespaceIndex
        for member, value, vtype in (
                ("EventId", event.EventId.Value, ua.VariantType.ByteString),
                ("Time", event.Time, ua.VariantType.DateTime), ("Message", event.Message, ua.VariantType.LocalizedText),
                ("Severity", self.spec.severity, ua.VariantType.UInt16),
                ("LastSeverity", self.spec.severity, ua.VariantType.UInt16),
                ("Retain", self.retain, ua.VariantType.Boolean),
                ("ActiveState", event.ActiveState, ua.VariantType.LocalizedText),
                ("ActiveState.Id", self.active, ua.VariantType.Boolean),
                ("AckedState", event.AckedState, ua.VariantType.LocalizedText),
                ("AckedState.Id", self.acked, ua.VariantType.Boolean),
                ("Comment", event.Comment, ua.VariantType.LocalizedText),
                ("ClientUserId", self.acked_by, ua.VariantType.String)):
            nodeid = ua.NodeId(f"{path}.{member}", idx)
            if nodeid in self.server.iserver.aspace:
                await write(nodeid, ua.AttributeIds.Value, ua.DataValue(ua.Variant(value, vtype)))


class ConditionServer:
    """The Alarms & Conditions of one asyncua server: its conditions and the methods that act on them.

    Make it with :meth:`install` after ``server.init()``; add conditions with :meth:`add`.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.conditions: dict[ua.NodeId, Condition] = {}
        self._ruleset: RoleRuleset | None = None

    @classmethod
    async def install(cls, server: Server, ruleset: RoleRuleset | None = None) -> ConditionServer:
        """Bind Acknowledge and asyncua's ConditionRefresh on ``server``, and register them in ``ruleset``."""
        self = cls(server)
        iserver = server.iserver
        if not iserver.bind_condition_methods:  # asyncua binds ConditionRefresh only when asked to at init
            await iserver.setup_condition_methods()
        iserver.isession.add_method_callback(ua.NodeId(I.AcknowledgeableConditionType_Acknowledge), self._acknowledge)
        for method in (I.ConditionType_Enable, I.ConditionType_Disable, I.ConditionType_AddComment):
            iserver.isession.add_method_callback(ua.NodeId(method), self._not_implemented)
        if ruleset is not None:
            ruleset.allow_call([ua.NodeId(I.ConditionType_ConditionRefresh), ua.NodeId(I.ConditionType_ConditionRefresh2)],
                               "read")
            ruleset.allow_call([ua.NodeId(I.AcknowledgeableConditionType_Acknowledge), ua.NodeId(I.ConditionType_Enable),
                                ua.NodeId(I.ConditionType_Disable), ua.NodeId(I.ConditionType_AddComment)],
                               "call_operation")
        self._ruleset = ruleset
        return self

    async def add(self, source: Node, spec: ConditionSpec, nodeid: ua.NodeId | None = None) -> Condition:
        """A new, inactive condition ``spec`` of ``source``: a component of it, referenced by HasCondition.

        ``nodeid`` defaults to ``<source>.<spec.name>`` (a string NodeId in the source's namespace).
        """
        idx = source.nodeid.NamespaceIndex
        nodeid = nodeid or ua.NodeId(f"{source.nodeid.Identifier}.{spec.name}", idx)
        node = await source.add_object(nodeid, ua.QualifiedName(spec.name, idx), objecttype=I.AlarmConditionType,
                                       instantiate_optional=False)
        await source.add_reference(node.nodeid, I.HasCondition)
        source_name = (await source.read_browse_name()).Name
        for member, value, vtype in (("SourceNode", source.nodeid, ua.VariantType.NodeId),
                                     ("SourceName", source_name, ua.VariantType.String),
                                     ("ConditionName", spec.name, ua.VariantType.String),
                                     ("EventType", ua.NodeId(I.AlarmConditionType), ua.VariantType.NodeId),
                                     ("ConditionClassId", ua.NodeId(CONDITION_CLASSES[spec.condition_class]),
                                      ua.VariantType.NodeId),
                                     ("Retain", False, ua.VariantType.Boolean),
                                     ("EnabledState", _STATE_TEXT["enabled"][0], ua.VariantType.LocalizedText),
                                     ("EnabledState.Id", True, ua.VariantType.Boolean),
                                     ("AckedState", _STATE_TEXT["acked"][0], ua.VariantType.LocalizedText),
                                     ("AckedState.Id", True, ua.VariantType.Boolean),
                                     ("ActiveState", _STATE_TEXT["active"][1], ua.VariantType.LocalizedText),
                                     ("ActiveState.Id", False, ua.VariantType.Boolean)):
            member_id = ua.NodeId(f"{nodeid.Identifier}.{member}", idx)
            if member_id in self.server.iserver.aspace:
                await self.server.get_node(member_id).write_value(ua.Variant(value, vtype))
        instance_ack = ua.NodeId(f"{nodeid.Identifier}.Acknowledge", idx)
        if instance_ack in self.server.iserver.aspace:  # clients may call the instance's own method too
            self.server.link_method(self.server.get_node(instance_ack), self._acknowledge)
            if self._ruleset is not None:
                self._ruleset.allow_call(instance_ack, "call_operation")
        generator = EventGenerator(self.server.iserver.isession)
        await generator.init(I.AlarmConditionType, emitting_node=I.Server,
                             add_generates_event=not self.conditions)
        condition = Condition(self.server, node, source, source_name, spec, generator)
        self.conditions[nodeid] = condition
        return condition

    @property
    def retained(self) -> list[Condition]:
        """The conditions a ConditionRefresh sends: active or unacknowledged."""
        return [c for c in self.conditions.values() if c.retain]

    async def _acknowledge(self, parent: ua.NodeId, event_id: Any = None, comment: Any = None) -> list | ua.StatusCode:
        condition = self.conditions.get(parent)
        if condition is None:
            return ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown)
        event_id, comment = getattr(event_id, "Value", event_id), getattr(comment, "Value", comment)
        text = comment.Text if isinstance(comment, ua.LocalizedText) else (comment or "")
        status = await condition.acknowledge(event_id if isinstance(event_id, bytes) else None, text or "",
                                             caller_name())
        return [] if status == ua.StatusCodes.Good else ua.StatusCode(status)

    async def _not_implemented(self, parent: ua.NodeId, *args: Any) -> ua.StatusCode:
        return ua.StatusCode(ua.StatusCodes.BadNotImplemented)
