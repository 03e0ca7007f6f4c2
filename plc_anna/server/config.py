"""The server's configuration file (``plc-anna serve --config FILE``) and password hashes.

A configuration is a TOML file of top-level keys and one ``[security]`` table
with ``[[security.users]]`` entries. Unknown keys, wrong types and impossible
values raise ``ValueError`` naming the key and the file; nothing is guessed.
Every key is documented in :data:`KEY_DOCS` (rendered in
``docs/server-config.md``), the one table both the checks and the docs read.

Configuration is explicit: the command line's flags override the file given
with ``--config`` (:meth:`ServerConfig.replace`); there is no search of the
home directory or ``/etc``. Paths in the file are relative to the file's
directory (``config_dir``), or for ``state_store`` and ``security.trust_dir``
to ``config_dir``.

Passwords are stored only as scrypt hashes (:mod:`plc_anna.server.passwords`,
``plc-anna hash-password``); a plain-text password in the file is refused.
This module imports neither asyncua nor cryptography.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from plc_anna.server.passwords import parse_password_hash
from plc_anna.sparkplug.config import SPARKPLUG_KEY_DOCS, sparkplug_config
from plc_anna.tomlfile import read_toml

#: Every security policy name the ``security.policies`` key accepts (OPC UA names, with the mode).
POLICY_NAMES = ("Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt",
                "Aes256_Sha256_RsaPss_Sign", "Aes256_Sha256_RsaPss_SignAndEncrypt", "None")
#: The default: every secure policy, no ``None``.
SECURE_POLICIES = POLICY_NAMES[:4]
#: The roles a user may have, least to most privileged.
ROLE_NAMES = ("viewer", "operator", "engineer")
#: The roles an anonymous session may have (anonymous sessions are read-only or disabled).
ANONYMOUS_ROLES = ("viewer",)
DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:4840/plc-anna"

def _key(doc: str, default: str, allowed: str = "", low: float | None = None, high: float | None = None,
         choices: tuple[str, ...] = ()) -> dict[str, Any]:
    """Metadata of one key: its meaning, default and allowed values as the docs show them."""
    return {"doc": doc, "default": default, "allowed": allowed, "low": low, "high": high, "choices": choices}


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    return {"doc": meta["doc"], "default": meta["default"], "allowed": meta["allowed"]}


@dataclass(frozen=True)
class UserEntry:
    """One ``[[security.users]]`` entry: a user name, its password hash and its role."""

    name: str = field(metadata=_key(
        "User name the client logs in with; unique within the file.", "required",
        "non-empty, no spaces"))
    password_hash: str = field(metadata=_key(
        "scrypt hash of the password, as printed by `plc-anna hash-password`; plain-text "
        "passwords are refused.", "required", "scrypt$N$r$p$SALT$HASH"))
    role: str = field(metadata=_key(
        "What the user may do (see Roles).", "required", "viewer, operator or engineer",
        choices=ROLE_NAMES))

    def __post_init__(self) -> None:
        _check_user(self.name, self.password_hash, self.role, "security.users[]")


def _check_user(name: Any, password_hash: Any, role: Any, where: str) -> None:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or not name.isprintable():
        raise ValueError(f"server key '{where}.name' must be a non-empty string without spaces, got {name!r}")
    if not isinstance(role, str) or role not in ROLE_NAMES:
        raise ValueError(f"server key '{where}.role' must be one of {', '.join(ROLE_NAMES)}, got {role!r}")
    if not isinstance(password_hash, str):
        raise ValueError(f"server key '{where}.password_hash' must be a string, got {password_hash!r}")
    try:
        parse_password_hash(password_hash)
    except ValueError as exc:
        raise ValueError(f"server key '{where}.password_hash' is not a hash made by `plc-anna hash-password` "
                         f"({exc}); plain-text passwords are refused") from None


@dataclass(frozen=True)
class SecurityConfig:
    """The ``[security]`` table: endpoints' policies, anonymous access, trust list and users."""

    policies: tuple[str, ...] = field(default=SECURE_POLICIES, metadata=_key(
        "Security policies the server offers, each with its message security mode. \"None\" "
        "(no signing, no encryption) is offered only when listed here; meant for a demo on "
        "loopback.", "the four secure ones", f"non-empty list from {', '.join(POLICY_NAMES)}",
        choices=POLICY_NAMES))
    allow_anonymous: bool = field(default=False, metadata=_key(
        "Accept sessions without a user name; they get anonymous_role.", "false", "true or false"))
    anonymous_role: str = field(default="viewer", metadata=_key(
        "Role of anonymous sessions when allow_anonymous is true: anonymous access is "
        "read-only or disabled.", "\"viewer\"", "viewer", choices=ANONYMOUS_ROLES))
    trust_dir: Path = field(default=Path("trusted"), metadata=_key(
        "Directory of trusted client certificates (.der, .pem, .crt or .cer); a client whose "
        "certificate is not there (nor issued by a CA there) is rejected. Relative to config_dir; "
        "created empty on first start.", "\"trusted\"", "a directory path"))
    rejected_dir: Path = field(default=Path("rejected"), metadata=_key(
        "Directory where the certificate of every refused client is saved (one .der file each, "
        "named by subject and thumbprint); move one to trust_dir to trust that client. Relative to "
        "config_dir; created empty on first start.", "\"rejected\"", "a directory path"))
    allow_insecure_login: bool = field(default=False, metadata=_key(
        "Accept user-name logins on the None endpoint, where the session is neither signed nor "
        "encrypted. Needs \"None\" in policies.", "false", "true or false"))
    max_connections: int = field(default=100, metadata=_key(
        "Most TCP connections served at once; one more is answered with BadMaxConnectionsReached and "
        "closed.", "100", "integer, 1 to 10000", low=1, high=10000))
    max_sessions: int = field(default=50, metadata=_key(
        "Most sessions open at once; one more CreateSession is answered with BadTooManySessions.",
        "50", "integer, 1 to 10000", low=1, high=10000))
    hello_timeout_s: float = field(default=0.5, metadata=_key(
        "A new connection must send its complete Hello within this time, or it is answered with "
        "BadTimeout and closed.", "0.5", "number, 0.05 to 60 (s)", low=0.05, high=60.0))
    users: tuple[UserEntry, ...] = field(default=(), metadata=_key(
        "The users, one [[security.users]] table each with name, password_hash and role.",
        "none", "user names unique"))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f"security.{f.name}", f, getattr(self, f.name)))
        if self.allow_insecure_login and "None" not in self.policies:
            raise ValueError("server key 'security.allow_insecure_login' = true needs \"None\" in "
                             "security.policies (it only concerns the None endpoint)")


@dataclass(frozen=True)
class ServerConfig:
    """The validated configuration of ``plc-anna serve``.

    Construct it from a file with :func:`load_server_config`, or directly with
    at least ``config_dir``; apply command-line flags with :meth:`replace`.
    After construction every path is absolute: ``config_dir`` (relative: to the
    working directory), ``state_store`` and ``security.trust_dir`` (relative:
    to ``config_dir``), and ``network``/``device`` when they name files.
    """

    config_dir: Path = field(metadata=_key(
        "Directory of the server's own files: its certificate and key, the trust list and the "
        "state store. Relative paths are relative to the configuration file's directory.",
        "the configuration file's directory (required without a file)", "a directory path"))
    endpoint: str = field(default=DEFAULT_ENDPOINT, metadata=_key(
        "URL the server listens on. The host is the address it binds to: 127.0.0.1 serves this "
        "machine only; 0.0.0.0 or an interface address opens it to the network.",
        f"\"{DEFAULT_ENDPOINT}\"", "opc.tcp://HOST:PORT[/path]"))
    application_uri: str = field(default="", metadata=_key(
        "ApplicationUri of this server instance, also written into its certificate. Empty: "
        "urn:HOSTNAME:plc-anna:PORT, from this machine's host name and the endpoint's port (a "
        "certificate made before keeps the URI it names).", "\"\" (derived)", "empty or a URI"))
    scan_ms: int = field(default=10, metadata=_key(
        "Period of the scan task that reads the network, runs the compensator and publishes.",
        "10", "integer, 5 to 10000 (ms)", low=5, high=10000))
    test_rig: bool = field(default=False, metadata=_key(
        "Run as a test rig: the simulated device with its test-rig methods, which only "
        "engineers may call.", "false", "true or false"))
    network: str = field(default="digits", metadata=_key(
        "Network the analog device runs: a shipped name (digits, thermocouple) or a .npz file.",
        "\"digits\"", "a shipped name or an existing .npz file"))
    device: str = field(default="pcm", metadata=_key(
        "Device parameters of the simulated network: a preset (pcm, hermes, ideal) or a .toml "
        "file (docs/device-parameters.md).", "\"pcm\"", "a preset or an existing .toml file"))
    device_backend: str = field(default="simulated", metadata=_key(
        "Where the network's outputs come from: `simulated` (the simulator) or `plc` (a physical network "
        "wired to the PLC, observed through `tag_map`; docs/plc-link.md).", "\"simulated\"",
        "simulated or plc", choices=("simulated", "plc")))
    tag_map: str = field(default="", metadata=_key(
        "Tag map of the PLC link (docs/tag-map.md): the PLC's endpoint and the tags the corrections are "
        "written to. Empty: no PLC link. Relative to the configuration file's directory.", "\"\" (no link)",
        "empty or an existing .toml file"))
    seed: int = field(default=0, metadata=_key(
        "Seed of the simulated device's random numbers (programming noise, drift, read noise).",
        "0", "integer >= 0", low=0))
    samples_per_scan: int = field(default=8, metadata=_key(
        "Samples of the simulated network's process taken each scan (the compensator needs at least 2).",
        "8", "integer, 2 to 4096", low=2, high=4096))
    age_rate: float = field(default=1.0, metadata=_key(
        "Seconds of simulated age per second of wall time: 1 ages the simulated network in real time, "
        "31536000 a year per second; 0 stops its clock (a test rig then sets the age with SetAge).",
        "1", "number, 0 to 1e9", low=0.0, high=1e9))
    history_period_s: float = field(default=1.0, metadata=_key(
        "How often distance, state, gains and offsets go to the history (and whenever a layer raises "
        "an event).", "1", "number, 0.01 to 3600 (s)", low=0.01, high=3600.0))
    state_store: Path = field(default=Path("state.sqlite"), metadata=_key(
        "SQLite file of the compensator's state and the value history. Relative to config_dir.",
        "\"state.sqlite\"", "a file path"))
    history_retention_days: float = field(default=30.0, metadata=_key(
        "How long the value history is kept.", "30", "number > 0 (days)"))
    security: SecurityConfig = field(default_factory=SecurityConfig, metadata=_key(
        "The [security] table (keys below).", "see below", "a table"))
    sparkplug: Any = field(default=None, metadata=_key(
        "The [sparkplug] table: publish every network over MQTT as a Sparkplug B edge node (docs/fleet.md). "
        "Without it nothing is published over MQTT.", "none", "a table (keys below)"))
    #: The file this configuration was loaded from (None when built in code); not a key.
    source: Path | None = field(default=None, compare=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name not in ("security", "source", "sparkplug"):
                object.__setattr__(self, f.name, _coerce(f.name, f, getattr(self, f.name)))
        security = self.security
        if isinstance(security, dict):
            security = _security_from_dict(security)
        if not isinstance(security, SecurityConfig):
            raise ValueError(f"server key 'security' must be a table, got {security!r}")
        config_dir = self.config_dir.absolute()
        if config_dir.exists() and not config_dir.is_dir():
            raise ValueError(f"server key 'config_dir': {config_dir} exists and is not a directory")
        object.__setattr__(self, "config_dir", config_dir)
        object.__setattr__(self, "state_store", config_dir / self.state_store)
        object.__setattr__(self, "security", dataclasses.replace(
            security, trust_dir=config_dir / security.trust_dir, rejected_dir=config_dir / security.rejected_dir))
        object.__setattr__(self, "sparkplug", sparkplug_config(self.sparkplug, config_dir))
        if self.state_store.is_dir():
            raise ValueError(f"server key 'state_store': {self.state_store} is a directory, not a file")
        for key in ("trust_dir", "rejected_dir"):
            path = getattr(self.security, key)
            if path.exists() and not path.is_dir():
                raise ValueError(f"server key 'security.{key}': {path} is not a directory")
        if self.application_uri and (":" not in self.application_uri or any(c.isspace()
                                                                            for c in self.application_uri)):
            raise ValueError(f"server key 'application_uri' must be a URI without spaces (e.g. "
                             f"urn:line3:plc-anna), got {self.application_uri!r}")
        object.__setattr__(self, "network", _check_network(self.network))
        object.__setattr__(self, "device", _check_device(self.device))
        object.__setattr__(self, "tag_map", _check_tag_map(self.tag_map))
        if self.device_backend == "plc" and not self.tag_map:
            raise ValueError("server key 'device_backend' = \"plc\" needs a 'tag_map': the PLC the network is "
                             "observed through")

    @property
    def host(self) -> str:
        """The host of :attr:`endpoint` (the address to bind to)."""
        return urlsplit(self.endpoint).hostname or ""

    @property
    def port(self) -> int:
        """The TCP port of :attr:`endpoint`."""
        return int(urlsplit(self.endpoint).port or 0)

    def replace(self, **overrides: Any) -> ServerConfig:
        """A copy with ``overrides`` (command-line flags: ``endpoint``, ``scan_ms``, ``test_rig``, ...) applied and validated.

        ``security`` may be a :class:`SecurityConfig` or a dict of ``[security]``
        keys applied on top of the current table. Paths already resolved stay
        where they are: replacing ``config_dir`` does not move ``state_store``
        or ``security.trust_dir``. A relative path is relative to the working
        directory (``state_store`` and ``trust_dir``: to ``config_dir``).

        Raises
        ------
        ValueError
            Naming the key, and the configuration file if there is one.
        """
        keys = [f.name for f in dataclasses.fields(self) if f.name != "source"]
        unknown = sorted(set(overrides) - set(keys))
        try:
            if unknown:
                raise ValueError(f"unknown server key(s) {', '.join(map(repr, unknown))}; valid keys: "
                                 f"{', '.join(keys)}")
            if isinstance(overrides.get("security"), dict):
                current = {f.name: getattr(self.security, f.name) for f in dataclasses.fields(SecurityConfig)}
                overrides["security"] = _security_from_dict({**current, **overrides["security"]})
            return dataclasses.replace(self, **overrides)
        except ValueError as exc:
            if self.source is None:
                raise
            raise ValueError(f"{self.source} (with overrides): {exc}") from None


KEY_DOCS: dict[str, dict[str, Any]] = {
    **{f.name: _plain(f.metadata) for f in dataclasses.fields(ServerConfig) if "internal" not in f.metadata},
    **{f"security.{f.name}": _plain(f.metadata) for f in dataclasses.fields(SecurityConfig)},
    **{f"security.users[].{f.name}": _plain(f.metadata) for f in dataclasses.fields(UserEntry)},
    **{f"sparkplug.{name}": meta for name, meta in SPARKPLUG_KEY_DOCS.items()},
}
"""Every key of the file, dotted (``security.users[].role``): its meaning, default and allowed values."""


def key_table_markdown() -> str:
    """The rows of the key table in ``docs/server-config.md``, rendered from :data:`KEY_DOCS`."""
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for name, meta in KEY_DOCS.items():
        lines.append(f"| `{name}` | {meta['default']} | {meta['allowed']} | {meta['doc']} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- checks

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _coerce(key: str, f: dataclasses.Field, value: Any) -> Any:
    """Check ``value`` of field ``f`` (named ``key`` in messages): type, range, choices; return it converted."""
    meta = f.metadata
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"server key {key!r} must be true or false, got {value!r}")
        return value
    if kind == "int":
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"server key {key!r} must be an integer, got {value!r}")
        _check_range(key, meta, value)
        return value
    if kind == "float":
        if not _is_number(value) or not math.isfinite(value):
            raise ValueError(f"server key {key!r} must be a finite number, got {value!r}")
        if meta["low"] is None and meta["high"] is None and value <= 0:
            raise ValueError(f"server key {key!r} must be > 0, got {value}")
        _check_range(key, meta, value)
        return float(value)
    if kind == "Path":
        if isinstance(value, str) and value:
            return Path(value)
        if isinstance(value, Path):
            return value
        raise ValueError(f"server key {key!r} must be a non-empty path string, got {value!r}")
    if kind == "str":
        if f.name in ("tag_map", "application_uri") and value == "":
            return value
        if not isinstance(value, str) or not value:
            raise ValueError(f"server key {key!r} must be a non-empty string, got {value!r}")
        if meta["choices"] and value not in meta["choices"]:
            raise ValueError(f"server key {key!r} must be one of {', '.join(meta['choices'])}, got {value!r}")
        if f.name == "endpoint":
            _check_endpoint(value)
        return value
    if f.name == "policies":
        if not (isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value)):
            raise ValueError(f"server key {key!r} must be a non-empty list of policy names, got {value!r}")
        for v in value:
            if v not in POLICY_NAMES:
                raise ValueError(f"server key {key!r}: unknown policy {v!r}; valid: {', '.join(POLICY_NAMES)}")
        if len(set(value)) != len(value):
            raise ValueError(f"server key {key!r} lists a policy twice: {list(value)!r}")
        return tuple(value)
    if f.name == "users":
        return _coerce_users(value)
    raise AssertionError(f"no check for key {key!r}")  # pragma: no cover


def _check_range(key: str, meta: Any, value: float) -> None:
    if meta["low"] is not None and value < meta["low"]:
        raise ValueError(f"server key {key!r} must be >= {meta['low']}, got {value}")
    if meta["high"] is not None and value > meta["high"]:
        raise ValueError(f"server key {key!r} must be <= {meta['high']}, got {value}")


def _check_endpoint(url: str) -> None:
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


def _coerce_users(value: Any) -> tuple[UserEntry, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"server key 'security.users' must be a list of [[security.users]] tables, got {value!r}")
    users: list[UserEntry] = []
    names = [f.name for f in dataclasses.fields(UserEntry)]
    for i, entry in enumerate(value):
        where = f"security.users[{i}]"
        if isinstance(entry, UserEntry):
            users.append(entry)
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"server key {where!r} must be a table with {', '.join(names)}, got {entry!r}")
        if "password" in entry:
            raise ValueError(f"server key '{where}.password': plain-text passwords are refused; store "
                             "password_hash = \"...\" as printed by `plc-anna hash-password`")
        unknown = sorted(set(entry) - set(names))
        if unknown:
            raise ValueError(f"unknown server key(s) {', '.join(repr(f'{where}.{k}') for k in unknown)}; "
                             f"a user has {', '.join(names)}")
        missing = [k for k in names if k not in entry]
        if missing:
            raise ValueError(f"server key {where!r} lacks {', '.join(missing)}")
        _check_user(entry["name"], entry["password_hash"], entry["role"], where)
        users.append(UserEntry(**entry))
    seen: set[str] = set()
    for i, user in enumerate(users):
        if user.name in seen:
            raise ValueError(f"server key 'security.users[{i}].name': user {user.name!r} is defined twice")
        seen.add(user.name)
    return tuple(users)


def _check_network(value: str) -> str:
    from plc_anna.device.network import SHIPPED_NETWORKS

    if value in SHIPPED_NETWORKS:
        return value
    path = Path(value).absolute()
    if path.suffix != ".npz" or not path.is_file():
        raise ValueError(f"server key 'network' must be a shipped network ({', '.join(SHIPPED_NETWORKS)}) or "
                         f"an existing .npz file, got {value!r}")
    return str(path)


def _check_tag_map(value: str) -> str:
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


def _check_device(value: str) -> str:
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


def _security_from_dict(values: dict[str, Any]) -> SecurityConfig:
    names = [f.name for f in dataclasses.fields(SecurityConfig)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown server key(s) {', '.join(repr(f'security.{k}') for k in unknown)}; valid "
                         f"[security] keys: {', '.join(names)}")
    return SecurityConfig(**values)


# ---------------------------------------------------------------- loading

def config_from_dict(values: dict[str, Any], base_dir: str | Path | None = None) -> ServerConfig:
    """A configuration from the parsed TOML ``values``.

    ``base_dir`` is the configuration file's directory: the default
    ``config_dir``, and what relative ``config_dir``, ``network``,
    ``device`` and ``tag_map`` paths are relative to. Without it ``config_dir`` is required.
    """
    values = dict(values)
    keys = [f.name for f in dataclasses.fields(ServerConfig) if f.name != "source"]
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ValueError(f"unknown server key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(keys)}")
    if "security" in values and not isinstance(values["security"], dict):
        raise ValueError(f"server key 'security' must be a table, got {values['security']!r}")
    base = Path(base_dir).absolute() if base_dir is not None else None
    if "config_dir" not in values:
        if base is None:
            raise ValueError("server key 'config_dir' is required without a configuration file")
        values["config_dir"] = base
    if base is not None:
        for key, suffix in (("config_dir", None), ("network", ".npz"), ("device", ".toml"), ("tag_map", ".toml")):
            text = values.get(key)
            if isinstance(text, str) and text and (suffix is None or text.endswith(suffix)) \
                    and not Path(text).is_absolute():
                values[key] = str(base / text)
    return ServerConfig(**values)


def load_server_config(path: str | Path) -> ServerConfig:
    """Load and validate a configuration file.

    Raises
    ------
    ValueError
        If the file is missing or not TOML, or for any bad key; the message
        names the file and the key.
    """
    path = Path(path).absolute()
    if not path.is_file():
        raise ValueError(f"configuration file {path} does not exist or is not a file")
    values = read_toml(path)
    try:
        config = config_from_dict(values, base_dir=path.parent)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    object.__setattr__(config, "source", path)
    return config
