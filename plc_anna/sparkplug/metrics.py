"""The Sparkplug metrics of a network and of the edge node: names, aliases, datatypes, values.

Names follow the OPC UA model's browse paths (``Layer0/Gain`` is
``AnalogNetwork.Layers.Layer0.Gain``); docs/fleet.md has the table. Aliases
are unique within the edge node and stable for a given device index and
network shape: the node's own metrics take 1, 2, ...; device number ``d``
(in the order the node first saw it) takes ``(d + 1) * 65536 + k``.

:func:`changed` is the report-by-exception rule: a metric goes into DDATA
only when its value differs from the last one sent (arrays elementwise, NaN
equal to NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pysparkplug import DataType, Metric

from plc_anna.server.runtime import Snapshot
from plc_anna.engine.task import CycleStats
from plc_anna.sparkplug.config import COMMANDS

REBIRTH = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
#: Per layer ``Layer<i>/<name>``: datatype and meaning (the docs' table is made from these).
LAYER_METRICS = {
    "Gain": (DataType.DOUBLE_ARRAY, "applied gain per column"),
    "Offset": (DataType.DOUBLE_ARRAY, "applied offset per column (network output unit)"),
    "LayerDistance": (DataType.DOUBLE, "Fisher-Rao distance of the layer (null before the first measurement)"),
    "DriftState": (DataType.INT32, "0 Calibrating, 1 Nominal, 2 Suspect, 3 Drifting, 4 Compensating, 5 Fault"),
    "StateReason": (DataType.STRING, "why the layer is Suspect, Drifting or Fault; empty otherwise"),
    "TransportCost": (DataType.DOUBLE_ARRAY, "W2 squared per column of the correction being ramped to"),
    "Coverage": (DataType.DOUBLE,
                 "fraction of the live input region the reference can predict (null before a fingerprint)"),
    "RemainingLife": (DataType.DOUBLE, "age (s) at which a correction leaves the hardware range; null: not known yet"),
}
#: Per network: datatype and meaning.
NETWORK_METRICS = {
    "Age": (DataType.DOUBLE, "age of the network (s)"),
    "Temperature": (DataType.DOUBLE, "operating temperature (K)"),
    "RemainingLife": (DataType.DOUBLE, "the soonest remaining life of its layers (s); null: not known yet"),
    "CommitCounter": (DataType.UINT32, "the server's commit counter (as ControllerLink.CommitCounter)"),
    "Scan/Count": (DataType.UINT64, "scans since the first"),
    "Scan/LastCycleTime": (DataType.DOUBLE, "ms, the last scan cycle"),
    "Scan/P99CycleTime": (DataType.DOUBLE, "ms, p99 over the last 1000 cycles"),
    "Scan/MaxCycleTime": (DataType.DOUBLE, "ms, the longest cycle"),
    "Scan/Lateness": (DataType.DOUBLE, "ms, how late the last cycle started"),
    "Scan/Overruns": (DataType.UINT64, "cycles that ended after the next deadline"),
    "Link/Connected": (DataType.BOOLEAN, "the PLC link reaches the PLC (false without a link)"),
    "Link/LastError": (DataType.STRING, "why not (\"no controller link configured\" without one)"),
}
#: The node's own metrics besides bdSeq and the rebirth control.
NODE_METRICS = {
    "Properties/Software": (DataType.STRING, "plc-anna and its version"),
    "Properties/Networks": (DataType.UINT32, "networks this node serves (its devices)"),
}
DEVICE_ALIAS_STRIDE = 65536


@dataclass(frozen=True)
class MetricSpec:
    """One metric as born: its name, alias and datatype."""

    name: str
    alias: int
    datatype: DataType


def node_specs() -> list[MetricSpec]:
    names = [(BD_SEQ, DataType.INT64), (REBIRTH, DataType.BOOLEAN),
             *((name, kind) for name, (kind, _) in NODE_METRICS.items())]
    return [MetricSpec(name, k + 1, kind) for k, (name, kind) in enumerate(names)]


def device_specs(snapshot: Snapshot, device_index: int, commands: tuple[str, ...]) -> list[MetricSpec]:
    """The metrics of a network with ``snapshot``'s layers; the allowed commands appear as writable booleans."""
    names = [(name, kind) for name, (kind, _) in NETWORK_METRICS.items()]
    for layer in snapshot.layers:
        names += [(f"Layer{layer.index}/{name}", kind) for name, (kind, _) in LAYER_METRICS.items()]
    names += [(f"Compensator/{command}", DataType.BOOLEAN) for command in COMMANDS if command in commands]
    base = (device_index + 1) * DEVICE_ALIAS_STRIDE
    return [MetricSpec(name, base + k, kind) for k, (name, kind) in enumerate(names)]


def device_values(snapshot: Snapshot, stats: CycleStats | None, link: Any | None) -> dict[str, Any]:
    """Every value of a network's metrics (None: null), commands excluded."""
    lives = [layer.remaining_life_s for layer in snapshot.layers if layer.remaining_life_s is not None]
    plc_link = getattr(link, "link", link)
    values: dict[str, Any] = {
        "Age": _number(snapshot.age_s), "Temperature": _number(snapshot.temperature_k),
        "RemainingLife": min(lives) if lives else None, "CommitCounter": int(snapshot.commit_counter),
        "Scan/Count": int(snapshot.scan),
        "Scan/LastCycleTime": None if stats is None else _number(stats.last_ms),
        "Scan/P99CycleTime": None if stats is None else _number(stats.p99_ms),
        "Scan/MaxCycleTime": None if stats is None else _number(stats.max_ms),
        "Scan/Lateness": None if stats is None else _number(stats.lateness_ms),
        "Scan/Overruns": 0 if stats is None else int(stats.overruns),
        "Link/Connected": bool(getattr(plc_link, "connected", False)),
        "Link/LastError": "no controller link configured" if plc_link is None else str(plc_link.last_error or ""),
    }
    for layer in snapshot.layers:
        prefix = f"Layer{layer.index}/"
        values.update({
            prefix + "Gain": np.asarray(layer.gain, dtype=float),
            prefix + "Offset": np.asarray(layer.offset, dtype=float),
            prefix + "LayerDistance": _number(layer.layer_distance), prefix + "DriftState": int(layer.state),
            prefix + "StateReason": layer.state_reason,
            prefix + "TransportCost": np.asarray(layer.transport_cost, dtype=float),
            prefix + "Coverage": _number(layer.coverage), prefix + "RemainingLife": layer.remaining_life_s,
        })
    return values


def changed(old: Any, new: Any) -> bool:
    """Whether ``new`` differs from the last value sent (``old``)."""
    if isinstance(new, np.ndarray) or isinstance(old, np.ndarray):
        if not (isinstance(new, np.ndarray) and isinstance(old, np.ndarray)) or old.shape != new.shape:
            return True
        return not np.array_equal(old, new, equal_nan=True)
    if isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new):
        return False
    return type(old) is not type(new) or old != new


def metric(spec: MetricSpec, value: Any, timestamp: int | None = None, with_name: bool = True,
           historical: bool = False) -> Metric:
    """A pysparkplug metric of ``spec`` holding ``value`` (None: null)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return Metric(timestamp=timestamp, name=spec.name if with_name else None, datatype=spec.datatype, value=value,
                  alias=spec.alias, is_historical=historical, is_null=value is None)


def values_by_name(specs: list[MetricSpec]) -> Mapping[str, MetricSpec]:
    return {spec.name: spec for spec in specs}


def _number(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value
