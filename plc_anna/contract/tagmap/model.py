"""The tag map's model: the PLC data types, the roles, and the frozen dataclasses a map is made of."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

FORMAT = 1
PROTOCOLS = ("opcua", "modbus")
#: PLC data type -> (numpy dtype, Modbus registers per element, integer?)
PLC_TYPES: dict[str, tuple[str, int, bool]] = {
    "REAL": ("float32", 2, False),
    "LREAL": ("float64", 4, False),
    "BOOL": ("bool", 1, True),
    "INT": ("int16", 1, True),
    "UINT": ("uint16", 1, True),
    "DINT": ("int32", 2, True),
    "UDINT": ("uint32", 2, True),
}
FLOAT_TYPES = ("REAL", "LREAL")
COUNTER_TYPES = ("UDINT", "DINT", "UINT", "INT")
#: Roles every ``[[layer]]`` must map; the value is True for the roles plc-anna writes.
REQUIRED_ROLES: dict[str, bool] = {
    "inputs": False, "raw_outputs": False, "gain_set": True, "offset_set": True,
    "commit_counter": True, "heartbeat": True, "accepted_commit": False, "plc_heartbeat": False,
    "status": False, "fault": False,
}
OPTIONAL_ROLES = ("applied_gain", "applied_offset", "corrected_outputs",
                  "trace_inputs", "trace_raw_outputs", "trace_count")
WRITTEN_ROLES = tuple(role for role, written in REQUIRED_ROLES.items() if written)
#: Array roles and the layer dimension their length must equal ("in", "out", or trace multiples).
ARRAY_ROLES = {"inputs": "in", "raw_outputs": "out", "gain_set": "out", "offset_set": "out",
               "applied_gain": "out", "applied_offset": "out", "corrected_outputs": "out",
               "trace_inputs": "trace_in", "trace_raw_outputs": "trace_out"}
WORD_ORDERS = ("big", "little")
SECURITY_POLICIES = ("None", "Basic256Sha256", "Aes256_Sha256_RsaPss")
TAG_KEYS = ("address", "type", "length", "scale", "bias")
#: ``[plc]`` keys that mean something for one protocol only (the others are common).
PROTOCOL_KEYS = {"opcua": ("user", "password_env", "security_policy", "security_mode", "certificate", "private_key",
                           "server_certificate"),
                 "modbus": ("unit_id", "word_order")}


@dataclass(frozen=True)
class Tag:
    """One PLC tag: where it is, its PLC data type, and for arrays its length."""

    role: str
    address: str | int
    """An OPC UA NodeId string, or a 0-based Modbus holding register."""
    plc_type: str
    length: int | None = None
    """Elements of an array tag; None for a scalar."""
    scale: float = 1.0
    bias: float = 0.0

    @property
    def dtype(self) -> str:
        return PLC_TYPES[self.plc_type][0]

    @property
    def registers(self) -> int:
        """Modbus holding registers the tag occupies."""
        return PLC_TYPES[self.plc_type][1] * (self.length or 1)

    @property
    def is_float(self) -> bool:
        return self.plc_type in FLOAT_TYPES


@dataclass(frozen=True)
class LayerTags:
    """The tags of one mapped layer (index in the network file, 0-based)."""

    index: int
    inputs: Tag
    raw_outputs: Tag
    gain_set: Tag
    offset_set: Tag
    commit_counter: Tag
    heartbeat: Tag
    accepted_commit: Tag
    plc_heartbeat: Tag
    status: Tag
    fault: Tag
    applied_gain: Tag | None = None
    applied_offset: Tag | None = None
    corrected_outputs: Tag | None = None
    trace_inputs: Tag | None = None
    trace_raw_outputs: Tag | None = None
    trace_count: Tag | None = None
    trace_length: int = 0
    """Rows of the optional trace ring buffer (0: no trace)."""

    @property
    def n_in(self) -> int:
        return int(self.inputs.length or 1)

    @property
    def n_out(self) -> int:
        return int(self.raw_outputs.length or 1)

    def tags(self) -> list[Tag]:
        """Every mapped tag of the layer, required roles first."""
        return [getattr(self, role) for role in (*REQUIRED_ROLES, *OPTIONAL_ROLES)
                if getattr(self, role) is not None]


@dataclass(frozen=True)
class PlcSettings:
    """``[plc]``: how to reach the controller."""

    protocol: str
    endpoint: str
    timeout_s: float = 2.0
    user: str | None = None
    password_env: str | None = None
    """Name of the environment variable holding the password (never the password itself)."""
    security_policy: str = "None"
    """OPC UA: ``None``, ``Basic256Sha256`` or ``Aes256_Sha256_RsaPss``."""
    security_mode: str = "None"
    """OPC UA: ``None``, ``Sign`` or ``SignAndEncrypt``."""
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    unit_id: int = 1
    """Modbus unit (slave) id."""
    word_order: str = "big"
    """Modbus: ``big`` puts the high 16 bits in the first register (ABCD), ``little`` the low ones (CDAB)."""

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @property
    def port(self) -> int:
        default = 4840 if self.protocol == "opcua" else 502
        return urlsplit(self.endpoint).port or default

    def password(self) -> str | None:
        """The password from ``password_env`` (ValueError when the variable is named but unset)."""
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ValueError(f"tag map: plc.password_env names {self.password_env!r}, which is not set")
        return value


@dataclass(frozen=True)
class LinkSettings:
    """``[link]``: the write-back policy."""

    deadband: float = 1e-6
    """A new set is written only when a gain or offset moved more than this since the last written set."""
    min_commit_interval_s: float = 0.1
    """Rate limit: at most one new set per this many seconds."""
    max_gain_step: float = 0.02
    """Slew limit: a new set moves each gain at most this far from the last-good set."""
    max_offset_step: float = math.inf
    """Slew limit of the offsets, in output units (inf: none beyond the PLC's own)."""
    verify: bool = True
    """Read the written set back and compare it with what was sent."""
    commit_timeout_s: float = 1.0
    """How long the PLC may take to report the new commit counter as accepted."""
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 5.0


@dataclass(frozen=True)
class DeviceTags:
    """``[device]``: the network's age and temperature, from tags or from a programming time."""

    age_s: Tag | None = None
    temperature_k: Tag | None = None
    programmed_at: float | None = None
    """Unix time the weights were programmed (``programmed_at = 2026-11-01T08:00:00Z`` in the file)."""
    temperature: float = 300.0
    """Kelvin, when no ``temperature_k`` tag is mapped."""


@dataclass(frozen=True)
class TagMap:
    plc: PlcSettings
    layers: tuple[LayerTags, ...]
    link: LinkSettings = field(default_factory=LinkSettings)
    device: DeviceTags = field(default_factory=DeviceTags)
    network: str | None = None
    """The network file the map was drafted for (a name or path), if recorded."""
    source: str = "tag map"

    def layer(self, index: int) -> LayerTags:
        for layer in self.layers:
            if layer.index == index:
                return layer
        raise ValueError(f"{self.source}: no [[layer]] with index {index}; mapped: "
                         f"{', '.join(str(layer.index) for layer in self.layers) or 'none'}")

    def check_network(self, shapes: list[tuple[int, int]]) -> None:
        """Check the layers against a network's (n_in, n_out) per layer; ValueError naming the mismatch."""
        for layer in self.layers:
            if not 0 <= layer.index < len(shapes):
                raise ValueError(f"{self.source}: layer index {layer.index} is outside the network's "
                                 f"layers 0..{len(shapes) - 1}")
            n_in, n_out = shapes[layer.index]
            if (layer.n_in, layer.n_out) != (n_in, n_out):
                raise ValueError(f"{self.source}: layer {layer.index} maps {layer.n_in} inputs and "
                                 f"{layer.n_out} outputs; the network's layer has {n_in} and {n_out}")
