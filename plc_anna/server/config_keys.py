"""How a key of the server's configuration is described and checked (shared by the server and network tables).

Each key is a dataclass field whose metadata (:func:`key`) holds its meaning,
default and allowed values as the docs show them, and the range or choices
:func:`coerce` enforces. Errors name the key: ``server key 'scan_ms' must be
>= 5, got 1``. This module imports neither asyncua nor numpy.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def key(doc: str, default: str, allowed: str = "", low: float | None = None, high: float | None = None,
        choices: tuple[str, ...] = ()) -> dict[str, Any]:
    """Metadata of one key: its meaning, default and allowed values as the docs show them."""
    return {"doc": doc, "default": default, "allowed": allowed, "low": low, "high": high, "choices": choices}


def plain(meta: dict[str, Any]) -> dict[str, Any]:
    """The documented part of a key's metadata."""
    return {"doc": meta["doc"], "default": meta["default"], "allowed": meta["allowed"]}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def coerce(key_name: str, f: dataclasses.Field, value: Any) -> Any:
    """Check ``value`` of a scalar field ``f`` (named ``key_name`` in messages): type, range, choices; converted."""
    meta = f.metadata
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"server key {key_name!r} must be true or false, got {value!r}")
        return value
    if kind == "int":
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"server key {key_name!r} must be an integer, got {value!r}")
        check_range(key_name, meta, value)
        return value
    if kind == "float":
        if not _is_number(value) or not math.isfinite(value):
            raise ValueError(f"server key {key_name!r} must be a finite number, got {value!r}")
        if meta["low"] is None and meta["high"] is None and value <= 0:
            raise ValueError(f"server key {key_name!r} must be > 0, got {value}")
        check_range(key_name, meta, value)
        return float(value)
    if kind == "Path":
        if isinstance(value, str) and value:
            return Path(value)
        if isinstance(value, Path):
            return value
        raise ValueError(f"server key {key_name!r} must be a non-empty path string, got {value!r}")
    if kind == "str":
        if f.name in ("tag_map", "application_uri") and value == "":
            return value
        if not isinstance(value, str) or not value:
            raise ValueError(f"server key {key_name!r} must be a non-empty string, got {value!r}")
        if meta["choices"] and value not in meta["choices"]:
            raise ValueError(f"server key {key_name!r} must be one of {', '.join(meta['choices'])}, got {value!r}")
        if f.name == "endpoint":
            check_endpoint(value)
        return value
    raise AssertionError(f"no check for key {key_name!r}")  # pragma: no cover


def check_range(key_name: str, meta: Any, value: float) -> None:
    if meta["low"] is not None and value < meta["low"]:
        raise ValueError(f"server key {key_name!r} must be >= {meta['low']}, got {value}")
    if meta["high"] is not None and value > meta["high"]:
        raise ValueError(f"server key {key_name!r} must be <= {meta['high']}, got {value}")


def check_endpoint(url: str) -> None:
    if not url.startswith("opc.tcp://"):
        raise ValueError(f"server key 'endpoint' must start with opc.tcp://, got {url!r}")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port is None or not 1 <= port <= 65535:
        raise ValueError(f"server key 'endpoint' must read opc.tcp://HOST:PORT[/path] with a port "
                         f"1..65535, got {url!r}")


def check_network(value: str) -> str:
    """A shipped network name, or the absolute path of an existing ``.npz`` file."""
    from plc_anna.device.network import SHIPPED_NETWORKS

    if value in SHIPPED_NETWORKS:
        return value
    path = Path(value).absolute()
    if path.suffix != ".npz" or not path.is_file():
        raise ValueError(f"server key 'network' must be a shipped network ({', '.join(SHIPPED_NETWORKS)}) or "
                         f"an existing .npz file, got {value!r}")
    return str(path)


def check_tag_map(value: str) -> str:
    """Empty (no link), or the absolute path of a valid tag map file."""
    from plc_anna.contract.tagmap import load_tag_map

    if not value:
        return value
    path = Path(value).absolute()
    if path.suffix != ".toml" or not path.is_file():
        raise ValueError(f"server key 'tag_map' must be an existing .toml file, got {value!r}")
    try:
        load_tag_map(path)
    except ValueError as exc:
        raise ValueError(f"server key 'tag_map': {exc}") from None
    return str(path)


def check_device(value: str) -> str:
    """A device preset, or the absolute path of a valid device file."""
    from plc_anna.device.params import PRESETS, load_device_params

    if value in PRESETS:
        return value
    path = Path(value).absolute()
    if path.suffix != ".toml" or not path.is_file():
        raise ValueError(f"server key 'device' must be a device preset ({', '.join(PRESETS)}) or an existing "
                         f".toml file, got {value!r}")
    try:
        load_device_params(path)
    except ValueError as exc:
        raise ValueError(f"server key 'device': {exc}") from None
    return str(path)


def resolve_paths(values: dict[str, Any], base: Path, keys: tuple[tuple[str, str | None], ...]) -> None:
    """Make the relative file paths among ``values`` (``key``, required suffix or None) relative to ``base``."""
    for name, suffix in keys:
        text = values.get(name)
        if isinstance(text, str) and text and (suffix is None or text.endswith(suffix)) \
                and not Path(text).is_absolute():
            values[name] = str(base / text)
