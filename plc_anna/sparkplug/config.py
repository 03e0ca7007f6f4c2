"""The ``[sparkplug]`` table of the server configuration: the Sparkplug B edge node's settings.

Parsed and checked here, not in :mod:`plc_anna.server.config`, which only
holds the parsed :class:`SparkplugConfig` (or None: without the table the
server publishes nothing over MQTT). Every key is documented in
:data:`SPARKPLUG_KEY_DOCS`, which ``docs/server-config.md`` renders; a bad key
raises ``ValueError`` naming ``sparkplug.<key>``. This module imports no MQTT
library.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: The device commands an edge node can accept, as the DCMD metric names them (``Compensator/<name>``).
COMMANDS = ("Calibrate", "Commit", "Rollback", "ResetReference")
#: A Sparkplug id (group, edge node, device, host): MQTT topic levels without the separator or wildcards.
_ID = re.compile(r"^[^/+#\s]+$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _doc(doc: str, default: str, allowed: str) -> dict[str, str]:
    return {"doc": doc, "default": default, "allowed": allowed}


SPARKPLUG_KEY_DOCS: dict[str, dict[str, str]] = {
    "broker": _doc("The MQTT broker: `mqtt://` plain, `mqtts://` TLS (port 1883 and 8883 when left out).",
                   "required", "mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"),
    "group_id": _doc("Sparkplug group of this edge node (the plant, area or line).", "required",
                     "non-empty, no `/`, `+`, `#` or spaces"),
    "edge_node_id": _doc("Sparkplug edge node id of this server, unique within the group.", "required",
                         "non-empty, no `/`, `+`, `#` or spaces"),
    "username": _doc("User name to log in to the broker with; empty: no login.", "\"\"", "a string"),
    "password_env": _doc("Name of the environment variable that holds the broker password (the password is "
                         "never stored in the file).", "\"\"", "an environment variable name"),
    "tls_ca": _doc("CA certificate (PEM) that signed the broker's certificate; empty: the system's CAs. "
                   "Relative to config_dir.", "\"\"", "a file path, mqtts:// only"),
    "tls_cert": _doc("Client certificate (PEM) for brokers that require one; with tls_key.", "\"\"",
                     "a file path, mqtts:// only"),
    "tls_key": _doc("Private key (PEM) of tls_cert.", "\"\"", "a file path, mqtts:// only"),
    "publish_ms": _doc("How often the edge node looks at the newest scan and publishes what changed (DDATA, "
                       "report by exception).", "1000", "integer, 10 to 3600000 (ms)"),
    "keepalive_s": _doc("MQTT keepalive: the broker publishes this node's NDEATH about 1.5 keepalives after "
                        "the node vanished.", "10", "integer, 1 to 3600 (s)"),
    "primary_host_id": _doc("Host id of the primary host application: births wait for its STATE to be "
                            "online, and while it is offline data goes to the store. Empty: publish whenever "
                            "connected.", "\"\"", "empty or a Sparkplug id"),
    "commands": _doc("Device commands (DCMD) this node accepts; any other command is refused and logged.",
                     "[] (none)", f"list from {', '.join(COMMANDS)}"),
    "store": _doc("SQLite file where data waits while the broker (or the primary host) is unreachable; "
                  "it is replayed with is_historical after reconnection. Relative to config_dir.",
                  "\"sparkplug.sqlite\"", "a file path"),
    "store_max_mb": _doc("Largest size of the stored data; beyond it the oldest is dropped (and counted).",
                         "64", "number, 0.1 to 100000 (MB)"),
}


@dataclass(frozen=True)
class SparkplugConfig:
    """The validated ``[sparkplug]`` table; paths are absolute (relative ones resolved against ``config_dir``)."""

    broker: str
    group_id: str
    edge_node_id: str
    username: str = ""
    password_env: str = ""
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    publish_ms: int = 1000
    keepalive_s: int = 10
    primary_host_id: str = ""
    commands: tuple[str, ...] = ()
    store: Path = field(default=Path("sparkplug.sqlite"))
    store_max_mb: float = 64.0

    @property
    def tls(self) -> bool:
        return self.broker.startswith("mqtts://")

    def password(self) -> str | None:
        """The broker password from ``password_env``; ValueError when that variable is not set."""
        if not self.password_env:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ValueError(f"sparkplug.password_env names the environment variable {self.password_env}, "
                             "which is not set")
        return value


def sparkplug_config(values: Any, config_dir: Path) -> SparkplugConfig | None:
    """The ``[sparkplug]`` table ``values`` checked (None stays None); ValueError naming the key.

    ``values`` may already be a :class:`SparkplugConfig` (its paths are then kept as they are).
    """
    if values is None or isinstance(values, SparkplugConfig):
        return values
    if not isinstance(values, dict):
        raise ValueError(f"server key 'sparkplug' must be a table, got {values!r}")
    unknown = sorted(set(values) - set(SPARKPLUG_KEY_DOCS))
    if unknown:
        raise ValueError(f"unknown server key(s) {', '.join(repr(f'sparkplug.{k}') for k in unknown)}; valid "
                         f"[sparkplug] keys: {', '.join(SPARKPLUG_KEY_DOCS)}")
    missing = [k for k in ("broker", "group_id", "edge_node_id") if k not in values]
    if missing:
        raise ValueError(f"the [sparkplug] table lacks {', '.join(f'sparkplug.{k}' for k in missing)}")
    broker = _string(values, "broker")
    check_broker_url(broker, "server key 'sparkplug.broker'")
    settings: dict[str, Any] = {"broker": broker}
    for key in ("group_id", "edge_node_id"):
        settings[key] = _sparkplug_id(values, key)
    if values.get("primary_host_id", ""):
        settings["primary_host_id"] = _sparkplug_id(values, "primary_host_id")
    if "username" in values:
        settings["username"] = _string(values, "username", empty=True)
    if values.get("password_env", ""):
        name = _string(values, "password_env")
        if not _ENV.match(name):
            raise ValueError(f"server key 'sparkplug.password_env' must name an environment variable, got {name!r}")
        settings["password_env"] = name
    for key in ("tls_ca", "tls_cert", "tls_key"):
        text = _string(values, key, empty=True) if key in values else ""
        if text:
            if not broker.startswith("mqtts://"):
                raise ValueError(f"server key 'sparkplug.{key}' needs an mqtts:// broker, got {broker!r}")
            path = config_dir / text
            if not path.is_file():
                raise ValueError(f"server key 'sparkplug.{key}': {path} is not a file")
            settings[key] = path
    if ("tls_cert" in settings) != ("tls_key" in settings):
        raise ValueError("server keys 'sparkplug.tls_cert' and 'sparkplug.tls_key' go together")
    settings["publish_ms"] = _integer(values, "publish_ms", 1000, 10, 3_600_000)
    settings["keepalive_s"] = _integer(values, "keepalive_s", 10, 1, 3600)
    commands = values.get("commands", [])
    if not isinstance(commands, (list, tuple)) or not all(isinstance(c, str) for c in commands):
        raise ValueError(f"server key 'sparkplug.commands' must be a list of command names, got {commands!r}")
    for command in commands:
        if command not in COMMANDS:
            raise ValueError(f"server key 'sparkplug.commands': unknown command {command!r}; valid: "
                             f"{', '.join(COMMANDS)}")
    settings["commands"] = tuple(dict.fromkeys(commands))
    store = _string(values, "store") if "store" in values else "sparkplug.sqlite"
    settings["store"] = config_dir / store
    if settings["store"].is_dir():
        raise ValueError(f"server key 'sparkplug.store': {settings['store']} is a directory, not a file")
    size = values.get("store_max_mb", 64.0)
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not math.isfinite(size) \
            or not 0.1 <= size <= 100000:
        raise ValueError(f"server key 'sparkplug.store_max_mb' must be a number within 0.1..100000, got {size!r}")
    settings["store_max_mb"] = float(size)
    return SparkplugConfig(**settings)


def check_broker_url(url: str, what: str = "broker") -> tuple[str, int, bool]:
    """``(host, port, tls)`` of an ``mqtt://`` or ``mqtts://`` URL; ValueError naming ``what`` otherwise."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or (port is not None and not 1 <= port <= 65535) \
            or parts.path not in ("", "/"):
        raise ValueError(f"{what} must read mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {url!r}")
    tls = parts.scheme == "mqtts"
    return parts.hostname, port or (8883 if tls else 1883), tls


def check_id(value: Any, what: str) -> str:
    """A Sparkplug id (group, node, device or host id); ValueError naming ``what``."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"{what} must be a non-empty string without '/', '+', '#' or spaces, got {value!r}")
    return value


def _string(values: dict, key: str, empty: bool = False) -> str:
    value = values[key]
    if not isinstance(value, str) or (not value and not empty):
        raise ValueError(f"server key 'sparkplug.{key}' must be a{'' if empty else ' non-empty'} string, got {value!r}")
    return value


def _sparkplug_id(values: dict, key: str) -> str:
    return check_id(values[key], f"server key 'sparkplug.{key}'")


def _integer(values: dict, key: str, default: int, low: int, high: int) -> int:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"server key 'sparkplug.{key}' must be an integer within {low}..{high}, got {value!r}")
    return value
