"""OPC UA HistoryRead served from the :class:`~plc_anna.server.store.StateStore`.

The scan task writes the history itself (one :meth:`StateStore.append_history`
per history period, all names in one transaction), so asyncua's historizing
subscription is not used: :class:`StoreHistory` is a read-only history storage
answering raw ``HistoryRead`` from the store; :func:`enable_history` installs it.

- ``start <= end``, or an open end: oldest first. ``start > end``, or an open
  start (asyncua clients send 1601-01-01): newest first, from ``end`` back.
- A page holds at most ``NumValuesPerNode`` (0: no limit) and ``max_values``
  values; if the range holds more, the continuation point is the time of the
  first value left out. asyncua's HistoryManager hands it back as the next
  ``start``, which loses the direction of an open-start read, so StoreHistory
  remembers those points. Values at the boundary time may come twice.
- A node not registered gets a Good, empty result, as with asyncua's storages:
  a storage cannot set a per-node status, and raising would fail the request
  (a ServiceFault) for all its nodes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import Node, Server, ua
from asyncua.server.history import HistoryStorageInterface

from plc_anna.server.store import StateStore

logger = logging.getLogger(__name__)

#: The VariantTypes a history value may be returned as (a list value becomes an array of that type).
VARIANT_TYPES = frozenset({ua.VariantType.Double, ua.VariantType.UInt32, ua.VariantType.UInt64,
                           ua.VariantType.Int32, ua.VariantType.Boolean, ua.VariantType.String})
_INT_RANGES = {ua.VariantType.UInt32: (0, 2**32 - 1), ua.VariantType.UInt64: (0, 2**64 - 1),
               ua.VariantType.Int32: (-2**31, 2**31 - 1)}
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_S = (ua.get_win_epoch() - _UNIX) / timedelta(seconds=1)  # OPC UA DateTime range, in Unix seconds
_LAST_S = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _UNIX) / timedelta(seconds=1)
# A datetime rounds a time to the microsecond: widen the bounds by that much, so that a
# continuation point (a value's time, rounded) never skips the value it points at.
_SLACK_S = 1e-6
_REMEMBERED = 256  # continuation points of open-start reads kept (a client may drop any of them)


def _instant(when: datetime | None) -> datetime | None:
    """``when`` as an aware UTC datetime; None for an open bound (missing, or at or before 1601-01-01)."""
    if when is None:
        return None
    if when.tzinfo is None:  # asyncua's convention: naive datetimes are UTC
        when = when.replace(tzinfo=UTC)
    return None if when <= ua.get_win_epoch() else when


def _seconds(when: datetime) -> float:
    return (when - _UNIX) / timedelta(seconds=1)


def _datetime(time_s: float) -> datetime:
    return _UNIX + timedelta(seconds=min(max(time_s, _FIRST_S), _LAST_S))


def _scalar(value: Any, variant_type: ua.VariantType) -> Any:
    """``value`` as a Python value of ``variant_type``; ValueError if it is not one (no silent casts)."""
    if variant_type in (ua.VariantType.String, ua.VariantType.Boolean):
        if isinstance(value, str if variant_type is ua.VariantType.String else bool):
            return value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if variant_type is ua.VariantType.Double:
            return float(value)
        low, high = _INT_RANGES[variant_type]
        if low <= value <= high and float(value).is_integer():
            return int(value)
    raise ValueError(f"{value!r} is not a {variant_type.name}")


class StoreHistory(HistoryStorageInterface):
    """A read-only asyncua history storage: raw history of registered nodes, read from a :class:`StateStore`.

    Parameters
    ----------
    store
        The store the scan task appends history to; it stays the caller's (not closed by :meth:`stop`).
    max_values
        The most values one HistoryRead returns per node; more come by continuation point.

    Examples
    --------
    >>> import asyncio, os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with StateStore(os.path.join(tmp, "plc-anna.db")) as store:
    ...         store.append_history(1.0e9, {"layer1.Gain": [1.0, 0.98]})
    ...         history = StoreHistory(store)
    ...         history.register(ua.NodeId(7, 2), "layer1.Gain", ua.VariantType.Double)
    ...         values, more = asyncio.run(history.read_node_history(ua.NodeId(7, 2), None, None, 0))
    >>> values[0].Value.Value, values[0].SourceTimestamp.isoformat(), more
    ([1.0, 0.98], '2001-09-09T01:46:40+00:00', None)
    """

    def __init__(self, store: StateStore, max_values: int = 10000) -> None:
        if not isinstance(store, StateStore):  # bad arguments are ValueError throughout
            raise ValueError(f"store must be a StateStore, got {type(store).__name__}")  # noqa: TRY004
        if isinstance(max_values, bool) or not isinstance(max_values, int) or max_values < 1:
            raise ValueError(f"max_values must be a positive int, got {max_values!r}")
        super().__init__(max_values)
        self.store = store
        self._nodes: dict[ua.NodeId, tuple[str, ua.VariantType]] = {}
        # continuation points of open-start reads: (node, point, end) -> True
        self._backwards: OrderedDict[tuple[ua.NodeId, datetime, datetime | None], bool] = OrderedDict()

    def register(self, node_id: ua.NodeId, name: str, variant_type: ua.VariantType) -> None:
        """Serve the history ``name`` of the store for ``node_id``, as values of ``variant_type``.

        ``variant_type`` is one of :data:`VARIANT_TYPES`; a stored list comes
        back as an array, a stored value not of that type as a DataValue with
        status BadTypeMismatch. Registering a node again replaces its entry.
        """
        if not isinstance(node_id, ua.NodeId):
            raise ValueError(f"node_id must be a ua.NodeId, got {type(node_id).__name__}")  # noqa: TRY004
        if not isinstance(name, str) or not name:
            raise ValueError(f"the history name of {node_id} must be a non-empty string, got {name!r}")
        if variant_type not in VARIANT_TYPES:
            raise ValueError(f"the VariantType of {node_id} must be one of "
                             f"{sorted(t.name for t in VARIANT_TYPES)}, got {variant_type!r}")
        self._nodes[node_id] = (name, variant_type)

    @property
    def registered(self) -> dict[ua.NodeId, tuple[str, ua.VariantType]]:
        """A copy of the registrations: node id -> (history name, VariantType)."""
        return dict(self._nodes)

    async def init(self) -> None:
        """Nothing to set up: the store is open already (asyncua calls this at ``start()``)."""

    async def stop(self) -> None:
        """Nothing to release: the store outlives the server, which saves the final state into it."""

    async def new_historized_node(self, node_id: ua.NodeId, period: timedelta | None, count: int = 0) -> None:
        """Refused: the scan task writes history in batches; asyncua's per-change subscription would double it.

        ``save_node_value``, ``new_historized_event`` and ``save_event`` keep the
        base class's NotImplementedError likewise (no events are historized).
        """
        raise NotImplementedError("StoreHistory is read-only: the scan task writes history to the StateStore; "
                                  "use enable_history, not historize_node_data_change")

    async def read_event_history(self, source_id: ua.NodeId, start: datetime | None, end: datetime | None,
                                 nb_values: int, evfilter: Any) -> tuple[list, None]:
        """No event history: always ``([], None)``."""
        return [], None

    async def read_node_history(self, node_id: ua.NodeId, start: datetime | None, end: datetime | None,
                                nb_values: int) -> tuple[list[ua.DataValue], datetime | None]:
        """One page of the raw history of ``node_id`` and the continuation point (None: no more).

        ``start`` and ``end`` are inclusive, None or 1601-01-01 for open; the
        order and paging are described in the module docstring. A node not
        registered gives ``([], None)``.
        """
        entry = self._nodes.get(node_id)
        if entry is None:
            logger.debug("history read of %s, which is not historized: empty result", node_id)
            return [], None
        name, variant_type = entry
        page = min(nb_values, self.max_history_data_response_size) if nb_values > 0 \
            else self.max_history_data_response_size
        start, end = _instant(start), _instant(end)
        resumed = start is not None and self._backwards.pop((node_id, start, end), False)
        open_start = start is None or resumed  # newest first from `high` down, no lower bound
        if open_start:
            low, high, newest_first = None, start if resumed else end, True
        elif end is not None and start > end:
            low, high, newest_first = end, start, True
        else:
            low, high, newest_first = start, end, False
        # SQLite off the event loop: the scan task shares it
        rows = await asyncio.to_thread(self._rows, name, low, high, page + 1, newest_first)
        more = None
        if len(rows) > page:
            more, rows = _datetime(rows[page][0]), rows[:page]
            if open_start:
                self._backwards[(node_id, more, end)] = True
                if len(self._backwards) > _REMEMBERED:
                    self._backwards.popitem(last=False)
        return [self._datavalue(time_s, value, variant_type) for time_s, value in rows], more

    def _rows(self, name: str, low: datetime | None, high: datetime | None, count: int,
              newest_first: bool) -> list[tuple[float, Any]]:
        """At most ``count`` ``(time_s, value)`` of ``name`` between ``low`` and ``high`` (None: open)."""
        low_s = None if low is None else _seconds(low) - _SLACK_S
        high_s = None if high is None else _seconds(high) + _SLACK_S
        read = self.store.read_history
        if not newest_first:
            return read(name, low_s, high_s, limit=count)
        # The store reads oldest first: widen a window back from the top until it holds
        # `count` values, so a newest-first page costs about its own size, not the range's.
        first = read(name, low_s, high_s, limit=1)
        if not first:
            return []
        low_s = first[0][0]
        if high_s is None:  # find a time with no value after it (stamps ahead of the clock are possible)
            high_s, step = max(time.time(), low_s), 1.0
            while read(name, high_s, None, limit=1):
                high_s, step = high_s + step, step * 2
        width = 1.0
        while True:
            begin = max(low_s, high_s - width)
            rows = read(name, begin, high_s)
            if len(rows) >= count or begin <= low_s:
                return rows[::-1][:count]
            width *= 4

    @staticmethod
    def _datavalue(time_s: float, value: Any, variant_type: ua.VariantType) -> ua.DataValue:
        stamp = _datetime(time_s)
        try:
            if isinstance(value, list):
                variant = ua.Variant([_scalar(v, variant_type) for v in value], variant_type, is_array=True)
            else:
                variant = ua.Variant(_scalar(value, variant_type), variant_type)
        except ValueError:  # one bad value must not fail the whole read
            return ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadTypeMismatch),
                                SourceTimestamp=stamp, ServerTimestamp=stamp)
        return ua.DataValue(variant, SourceTimestamp=stamp, ServerTimestamp=stamp)


async def enable_history(server: Server, store: StateStore,
                         nodes: Mapping[Node | ua.NodeId, tuple[str, ua.VariantType]],
                         *, max_values: int = 10000) -> StoreHistory:
    """Serve HistoryRead of ``nodes`` from ``store``: install a :class:`StoreHistory` and mark the nodes.

    Sets each node's ``Historizing`` to True and adds the HistoryRead bit to
    its ``AccessLevel`` and ``UserAccessLevel``, so clients see it can be read.

    Parameters
    ----------
    server
        An initialised asyncua server (``await server.init()``), started or not.
    store
        The store the scan task appends history to.
    nodes
        Variable nodes or their ids -> (history name, VariantType), as for :meth:`StoreHistory.register`.
    max_values
        The most values per node in one HistoryRead response.

    Returns
    -------
    StoreHistory
        The installed storage; it keeps the registrations of a StoreHistory of the same store installed before.

    Raises
    ------
    ValueError
        For a node that is missing or not a variable, or a bad name or VariantType; nothing is changed then.
    """
    history = StoreHistory(store, max_values)
    previous = server.iserver.history_manager.storage
    if isinstance(previous, StoreHistory) and previous.store is store:
        for node_id, (name, variant_type) in previous.registered.items():
            history.register(node_id, name, variant_type)
    targets = []
    for key, entry in nodes.items():
        if not isinstance(key, Node | ua.NodeId):
            raise ValueError(f"nodes must be keyed by Node or ua.NodeId, got {type(key).__name__}")  # noqa: TRY004
        node = server.get_node(key.nodeid if isinstance(key, Node) else key)  # the server's node, not a client's
        if not isinstance(entry, tuple) or len(entry) != 2:
            raise ValueError(f"nodes[{node.nodeid}] must be (history name, VariantType), got {entry!r}")
        try:
            node_class = await node.read_node_class()
        except ua.UaStatusCodeError as exc:
            raise ValueError(f"node {node.nodeid} cannot be read ({exc}); is the server initialised?") from None
        if node_class != ua.NodeClass.Variable:
            raise ValueError(f"node {node.nodeid} is a {node_class.name}, not a Variable")
        history.register(node.nodeid, *entry)
        targets.append(node)
    server.iserver.history_manager.set_storage(history)
    for node in targets:
        await node.write_attribute(ua.AttributeIds.Historizing, ua.DataValue(True))
        for attribute in (ua.AttributeIds.AccessLevel, ua.AttributeIds.UserAccessLevel):
            await node.set_attr_bit(attribute, ua.AccessLevel.HistoryRead)  # keeps the other bits
    return history
