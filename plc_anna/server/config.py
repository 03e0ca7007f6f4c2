"""The server's configuration file (``plc-anna serve --config FILE``) and password hashes.

A configuration is a TOML file of top-level keys, one ``[security]`` table
with ``[[security.users]]`` entries and, for a server of several networks,
one ``[[networks]]`` table per network (:mod:`plc_anna.server.network_config`).
Unknown keys, wrong types and impossible values raise ``ValueError`` naming
the key and the file (and the network); nothing is guessed. Every key is
documented in :data:`KEY_DOCS` (rendered in ``docs/server-config.md``), the one
table both the checks and the docs read.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from plc_anna.server.config_keys import coerce, key, plain, resolve_paths
from plc_anna.server.network_config import (
    FILE_KEYS,
    NetworkEntry,
    NetworkKeys,
    entries_from_list,
    network_fields,
    network_key_names,
    single_network_name,
)
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

@dataclass(frozen=True)
class UserEntry:
    """One ``[[security.users]]`` entry: a user name, its password hash and its role."""

    name: str = field(metadata=key(
        "User name the client logs in with; unique within the file.", "required",
        "non-empty, no spaces"))
    password_hash: str = field(metadata=key(
        "scrypt hash of the password, as printed by `plc-anna hash-password`; plain-text "
        "passwords are refused.", "required", "scrypt$N$r$p$SALT$HASH"))
    role: str = field(metadata=key(
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

    policies: tuple[str, ...] = field(default=SECURE_POLICIES, metadata=key(
        "Security policies the server offers, each with its message security mode. \"None\" "
        "(no signing, no encryption) is offered only when listed here; meant for a demo on "
        "loopback.", "the four secure ones", f"non-empty list from {', '.join(POLICY_NAMES)}",
        choices=POLICY_NAMES))
    allow_anonymous: bool = field(default=False, metadata=key(
        "Accept sessions without a user name; they get anonymous_role.", "false", "true or false"))
    anonymous_role: str = field(default="viewer", metadata=key(
        "Role of anonymous sessions when allow_anonymous is true: anonymous access is "
        "read-only or disabled.", "\"viewer\"", "viewer", choices=ANONYMOUS_ROLES))
    trust_dir: Path = field(default=Path("trusted"), metadata=key(
        "Directory of trusted client certificates (.der, .pem, .crt or .cer); a client whose "
        "certificate is not there (nor issued by a CA there) is rejected. Relative to config_dir; "
        "created empty on first start.", "\"trusted\"", "a directory path"))
    rejected_dir: Path = field(default=Path("rejected"), metadata=key(
        "Directory where the certificate of every refused client is saved (one .der file each, "
        "named by subject and thumbprint); move one to trust_dir to trust that client. Relative to "
        "config_dir; created empty on first start.", "\"rejected\"", "a directory path"))
    allow_insecure_login: bool = field(default=False, metadata=key(
        "Accept user-name logins on the None endpoint, where the session is neither signed nor "
        "encrypted. Needs \"None\" in policies.", "false", "true or false"))
    max_connections: int = field(default=100, metadata=key(
        "Most TCP connections served at once; one more is answered with BadMaxConnectionsReached and "
        "closed.", "100", "integer, 1 to 10000", low=1, high=10000))
    max_sessions: int = field(default=50, metadata=key(
        "Most sessions open at once; one more CreateSession is answered with BadTooManySessions.",
        "50", "integer, 1 to 10000", low=1, high=10000))
    hello_timeout_s: float = field(default=0.5, metadata=key(
        "A new connection must send its complete Hello within this time, or it is answered with "
        "BadTimeout and closed.", "0.5", "number, 0.05 to 60 (s)", low=0.05, high=60.0))
    users: tuple[UserEntry, ...] = field(default=(), metadata=key(
        "The users, one [[security.users]] table each with name, password_hash and role.",
        "none", "user names unique"))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce_security(f"security.{f.name}", f, getattr(self, f.name)))
        if self.allow_insecure_login and "None" not in self.policies:
            raise ValueError("server key 'security.allow_insecure_login' = true needs \"None\" in "
                             "security.policies (it only concerns the None endpoint)")


@dataclass(frozen=True, kw_only=True)
class ServerConfig(NetworkKeys):
    """The validated configuration of ``plc-anna serve``.

    Construct it from a file with :func:`load_server_config`, or directly with
    at least ``config_dir``; apply command-line flags with :meth:`replace`.
    After construction every path is absolute: ``config_dir`` (relative: to the
    working directory), ``state_store`` and ``security.trust_dir`` (relative:
    to ``config_dir``), and ``network``/``device``/``tag_map`` when they name files.

    The network keys (:class:`~plc_anna.server.network_config.NetworkKeys`)
    describe the one network of a single-network configuration; with
    ``networks`` they keep their defaults and each entry has its own.
    :attr:`served_networks` is the list of networks either way.
    """

    config_dir: Path = field(metadata=key(
        "Directory of the server's own files: its certificate and key, the trust list and the "
        "state store. Relative paths are relative to the configuration file's directory.",
        "the configuration file's directory (required without a file)", "a directory path"))
    endpoint: str = field(default=DEFAULT_ENDPOINT, metadata=key(
        "URL the server listens on. The host is the address it binds to: 127.0.0.1 serves this "
        "machine only; 0.0.0.0 or an interface address opens it to the network.",
        f"\"{DEFAULT_ENDPOINT}\"", "opc.tcp://HOST:PORT[/path]"))
    application_uri: str = field(default="", metadata=key(
        "ApplicationUri of this server instance, also written into its certificate. Empty: "
        "urn:HOSTNAME:plc-anna:PORT, from this machine's host name and the endpoint's port (a "
        "certificate made before keeps the URI it names).", "\"\" (derived)", "empty or a URI"))
    test_rig: bool = field(default=False, metadata=key(
        "Run as a test rig: the simulated device with its test-rig methods, which only "
        "engineers may call.", "false", "true or false"))
    publish_ms: int = field(default=100, metadata=key(
        "How often the newest scan of each network is written to the address space (never more often than "
        "it scans). Publishing that takes more than half of this becomes coarser by itself; the scans "
        "published over are counted (Compensator.PublishDropped).", "100", "integer, 10 to 10000 (ms)",
        low=10, high=10000))
    scan_isolation: str = field(default="process", metadata=key(
        "Where the scans run: `process`, a process of their own (they share no interpreter lock with the "
        "OPC UA server), or `thread`, threads of the server's process (starts faster; the scans then wait "
        "for serving under load). docs/server.md#the-scan-engine has the measurements.", "\"process\"",
        "process or thread", choices=("process", "thread")))
    scan_priority: int = field(default=40, metadata=key(
        "Real-time priority (SCHED_FIFO) of the scans' threads, so that a loaded machine delays serving, not "
        "scans; 0: normal scheduling. Needs root, CAP_SYS_NICE or an rtprio limit; without, the scans run at "
        "normal priority and the log says so.", "40", "integer, 0 to 49", low=0, high=49))
    history_period_s: float = field(default=1.0, metadata=key(
        "How often distance, state, gains and offsets go to the history (and whenever a layer raises "
        "an event).", "1", "number, 0.01 to 3600 (s)", low=0.01, high=3600.0))
    state_store: Path = field(default=Path("state.sqlite"), metadata=key(
        "SQLite file of the compensators' state and the value history. Relative to config_dir.",
        "\"state.sqlite\"", "a file path"))
    history_retention_days: float = field(default=30.0, metadata=key(
        "How long the value history is kept.", "30", "number > 0 (days)"))
    networks: tuple[NetworkEntry, ...] = field(default=(), metadata=key(
        "The networks of a server that serves several: one [[networks]] table each, with a `name` and the "
        f"network keys ({', '.join(network_key_names())}); the top level then holds none of those.",
        "none: one network, from the top-level keys", "[[networks]] tables, names unique"))
    security: SecurityConfig = field(default_factory=SecurityConfig, metadata=key(
        "The [security] table (keys below).", "see below", "a table"))
    sparkplug: Any = field(default=None, metadata=key(
        "The [sparkplug] table: publish every network over MQTT as a Sparkplug B edge node (docs/fleet.md). "
        "Without it nothing is published over MQTT.", "none", "a table (keys below)"))
    #: The file this configuration was loaded from (None when built in code); not a key.
    source: Path | None = field(default=None, compare=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name not in ("security", "source", "networks", "sparkplug") and f.name not in network_key_names():
                object.__setattr__(self, f.name, coerce(f.name, f, getattr(self, f.name)))
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
        for key_name in ("trust_dir", "rejected_dir"):
            path = getattr(self.security, key_name)
            if path.exists() and not path.is_dir():
                raise ValueError(f"server key 'security.{key_name}': {path} is not a directory")
        if self.application_uri and (":" not in self.application_uri or any(c.isspace()
                                                                            for c in self.application_uri)):
            raise ValueError(f"server key 'application_uri' must be a URI without spaces (e.g. "
                             f"urn:line3:plc-anna), got {self.application_uri!r}")
        if self.networks:
            object.__setattr__(self, "networks", entries_from_list(self.networks))
            given = [f.name for f in network_fields() if getattr(self, f.name) != f.default]
            if given:
                raise ValueError(f"server key(s) {', '.join(map(repr, given))} describe a single network: with "
                                 "[[networks]], give them in each entry")
        else:
            self._check_network_keys()

    @property
    def served_networks(self) -> tuple[NetworkEntry, ...]:
        """The networks the server runs: the ``[[networks]]`` entries, or the one the top-level keys describe
        (named after its network file, :func:`~plc_anna.server.network_config.single_network_name`)."""
        if self.networks:
            return self.networks
        return (NetworkEntry(name=single_network_name(self.network),
                             **{name: getattr(self, name) for name in network_key_names()}),)

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
        keys applied on top of the current table. With ``[[networks]]``,
        ``scan_ms`` applies to every network and the other network keys are
        refused. Paths already resolved stay where they are: replacing
        ``config_dir`` does not move ``state_store`` or ``security.trust_dir``.
        A relative path is relative to the working directory (``state_store``
        and ``trust_dir``: to ``config_dir``).

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
            networks = overrides.get("networks", self.networks)
            if networks and "scan_ms" in overrides:
                scan_ms = overrides.pop("scan_ms")
                overrides["networks"] = tuple(dataclasses.replace(entry, scan_ms=scan_ms)
                                              for entry in entries_from_list(networks))
            return dataclasses.replace(self, **overrides)
        except ValueError as exc:
            if self.source is None:
                raise
            raise ValueError(f"{self.source} (with overrides): {exc}") from None


def _server_key_names() -> list[str]:
    """The top-level keys in the docs' order: the server's own, the network keys, then the tables."""
    own = [f.name for f in dataclasses.fields(ServerConfig)
           if "internal" not in f.metadata and f.name not in network_key_names()
           and f.name not in ("networks", "security")]
    return own + list(network_key_names()) + ["networks"]


KEY_DOCS: dict[str, dict[str, Any]] = {
    **{name: plain(ServerConfig.__dataclass_fields__[name].metadata) for name in _server_key_names()},
    "networks[].name": plain(NetworkEntry.__dataclass_fields__["name"].metadata),
    "security": plain(ServerConfig.__dataclass_fields__["security"].metadata),
    **{f"security.{f.name}": plain(f.metadata) for f in dataclasses.fields(SecurityConfig)},
    **{f"security.users[].{f.name}": plain(f.metadata) for f in dataclasses.fields(UserEntry)},
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

def _coerce_security(key_name: str, f: dataclasses.Field, value: Any) -> Any:
    """Check a ``[security]`` key: the policy list and the users here, the scalars by :func:`coerce`."""
    if f.name == "policies":
        if not (isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value)):
            raise ValueError(f"server key {key_name!r} must be a non-empty list of policy names, got {value!r}")
        for v in value:
            if v not in POLICY_NAMES:
                raise ValueError(f"server key {key_name!r}: unknown policy {v!r}; valid: {', '.join(POLICY_NAMES)}")
        if len(set(value)) != len(value):
            raise ValueError(f"server key {key_name!r} lists a policy twice: {list(value)!r}")
        return tuple(value)
    if f.name == "users":
        return _coerce_users(value)
    return coerce(key_name, f, value)


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
    ``device`` and ``tag_map`` paths (top-level and in ``[[networks]]``) are
    relative to. Without it ``config_dir`` is required.
    """
    values = dict(values)
    keys = [f.name for f in dataclasses.fields(ServerConfig) if f.name != "source"]
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ValueError(f"unknown server key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(keys)}")
    if "security" in values and not isinstance(values["security"], dict):
        raise ValueError(f"server key 'security' must be a table, got {values['security']!r}")
    if "networks" in values:
        given = [name for name in network_key_names() if name in values]
        if given:
            raise ValueError(f"server key(s) {', '.join(map(repr, given))} describe a single network: with "
                             "[[networks]], give them in each entry")
    base = Path(base_dir).absolute() if base_dir is not None else None
    if "config_dir" not in values:
        if base is None:
            raise ValueError("server key 'config_dir' is required without a configuration file")
        values["config_dir"] = base
    if base is not None:
        resolve_paths(values, base, (("config_dir", None),) + FILE_KEYS)
        if "networks" in values:
            values["networks"] = entries_from_list(values["networks"], base)
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
