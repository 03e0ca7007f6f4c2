"""The keys of one served network, and the ``[[networks]]`` table of a server that serves several.

A single-network configuration gives the network's keys (:class:`NetworkKeys`:
``network``, ``device``, ``device_backend``, ``tag_map``, ``seed``,
``scan_ms``, ``samples_per_scan``, ``age_rate``) at the top level of the file.
A configuration with ``[[networks]]`` gives them in each entry, with a
``name`` (:class:`NetworkEntry`); the top level then holds none of them.
Errors in an entry name the network and the key::

    network 'line2' ([[networks]] entry 2): server key 'scan_ms' must be <= 10000, got 20000
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plc_anna.server.config_keys import (
    check_device,
    check_network,
    check_tag_map,
    coerce,
    key,
    resolve_paths,
)

#: What a network's name may look like: it is a browse name, a NodeId part and a store key.
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
#: The file keys of a network, with the suffix that marks a path (relative to the configuration's directory).
FILE_KEYS = (("network", ".npz"), ("device", ".toml"), ("tag_map", ".toml"))


@dataclass(frozen=True, kw_only=True)
class NetworkKeys:
    """The keys of one network: the device, its process, its scan and its PLC link."""

    scan_ms: int = field(default=10, metadata=key(
        "Period of the network's scan: it reads the network and runs the compensator.",
        "10", "integer, 5 to 10000 (ms)", low=5, high=10000))
    network: str = field(default="digits", metadata=key(
        "Network the analog device runs: a shipped name (digits, thermocouple) or a .npz file.",
        "\"digits\"", "a shipped name or an existing .npz file"))
    device: str = field(default="pcm", metadata=key(
        "Device parameters of the simulated network: a preset (pcm, hermes, ideal) or a .toml "
        "file (docs/device-parameters.md).", "\"pcm\"", "a preset or an existing .toml file"))
    device_backend: str = field(default="simulated", metadata=key(
        "Where the network's outputs come from: `simulated` (the simulator) or `plc` (a physical network "
        "wired to the PLC, observed through `tag_map`; docs/plc-link.md).", "\"simulated\"",
        "simulated or plc", choices=("simulated", "plc")))
    tag_map: str = field(default="", metadata=key(
        "Tag map of the PLC link (docs/tag-map.md): the PLC's endpoint and the tags the corrections are "
        "written to. Empty: no PLC link. Relative to the configuration file's directory.", "\"\" (no link)",
        "empty or an existing .toml file"))
    seed: int = field(default=0, metadata=key(
        "Seed of the simulated device's random numbers (programming noise, drift, read noise).",
        "0", "integer >= 0", low=0))
    samples_per_scan: int = field(default=8, metadata=key(
        "Samples of the simulated network's process taken each scan (the compensator needs at least 2).",
        "8", "integer, 2 to 4096", low=2, high=4096))
    age_rate: float = field(default=1.0, metadata=key(
        "Seconds of simulated age per second of wall time: 1 ages the simulated network in real time, "
        "31536000 a year per second; 0 stops its clock (a test rig then sets the age with SetAge).",
        "1", "number, 0 to 1e9", low=0.0, high=1e9))

    def _check_network_keys(self) -> None:
        """Coerce every network key and check the files (call from ``__post_init__``)."""
        for f in network_fields():
            object.__setattr__(self, f.name, coerce(f.name, f, getattr(self, f.name)))
        object.__setattr__(self, "network", check_network(self.network))
        object.__setattr__(self, "device", check_device(self.device))
        object.__setattr__(self, "tag_map", check_tag_map(self.tag_map))
        if self.device_backend == "plc" and not self.tag_map:
            raise ValueError("server key 'device_backend' = \"plc\" needs a 'tag_map': the PLC the network is "
                             "observed through")


def network_fields() -> tuple[dataclasses.Field, ...]:
    """The fields of :class:`NetworkKeys`, in order."""
    return dataclasses.fields(NetworkKeys)


def network_key_names() -> tuple[str, ...]:
    return tuple(f.name for f in network_fields())


@dataclass(frozen=True, kw_only=True)
class NetworkEntry(NetworkKeys):
    """One ``[[networks]]`` entry: a name and the network's keys."""

    name: str = field(metadata=key(
        "The network's name: its browse name in the address space (Networks/<name>), the prefix of its "
        "NodeIds and its key in the state store. Unique within the file.", "required",
        "a letter, then letters, digits, _ or -; at most 64"))

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"server key 'name' must be a letter, then letters, digits, _ or - (at most 64), "
                             f"got {self.name!r}")
        self._check_network_keys()


def single_network_name(network: str) -> str:
    """The name of the network of a single-network configuration: its file's stem, when that is a valid name."""
    stem = Path(network).stem
    return stem if NAME_PATTERN.fullmatch(stem) else "network"


def entries_from_list(value: Any, base: Path | None = None) -> tuple[NetworkEntry, ...]:
    """The ``[[networks]]`` entries of a configuration (dicts from TOML, or entries); paths relative to ``base``.

    Raises
    ------
    ValueError
        Naming the network (or the entry's position) and the key; for unknown keys, a missing or
        repeated name, or an empty list.
    """
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"server key 'networks' must be a non-empty list of [[networks]] tables, got {value!r}")
    names = [f.name for f in dataclasses.fields(NetworkEntry)]
    entries: list[NetworkEntry] = []
    for i, raw in enumerate(value, start=1):
        if isinstance(raw, NetworkEntry):
            entries.append(raw)
            continue
        label = f"[[networks]] entry {i}"
        if not isinstance(raw, dict):
            raise ValueError(f"{label} must be a table, got {raw!r}")
        if "name" in raw:
            label = f"network {raw['name']!r} ({label})"
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise ValueError(f"{label}: unknown server key(s) {', '.join(map(repr, unknown))}; a network has "
                             f"{', '.join(names)}")
        if "name" not in raw:
            raise ValueError(f"{label}: server key 'name' is required")
        values = dict(raw)
        if base is not None:
            resolve_paths(values, base, FILE_KEYS)
        try:
            entries.append(NetworkEntry(**values))
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries, start=1):
        if entry.name in seen:
            raise ValueError(f"network {entry.name!r} ([[networks]] entries {seen[entry.name]} and {i}): server key "
                             "'name' must be unique")
        seen[entry.name] = i
    return tuple(entries)
