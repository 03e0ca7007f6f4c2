"""Security of the OPC UA server: certificate, trust list, users, roles and what each role may do.

The pieces, each usable alone, and :func:`configure_server_security` that
wires them into an ``asyncua.Server`` (after ``await server.init()``, before
``start()``):

- :func:`~plc_anna.server.certificates.ensure_server_certificate` and
  :class:`~plc_anna.server.certificates.TrustList` (in their own module)
  make the server's certificate and check the clients'.
- :class:`UserDirectory` is asyncua's user manager: users of the
  configuration with scrypt password hashes, anonymous sessions as viewers or
  not at all. It returns :class:`PlcUser`, an asyncua ``User`` that carries
  our :class:`Role`.
- :func:`may` is the one table of what each role may do; :class:`RoleRuleset`
  enforces it on every request, so a write or call without the right role
  fails with ``BadUserAccessDenied`` before anything changes.

Why a ruleset rather than checks in the method handlers: asyncua has three
fixed roles (Admin, User, Anonymous), lets any ``User`` write every writable
value and call every method, lets ``Admin`` write any attribute of any node,
and does not tell a method handler who called it. The ruleset sees the session
user and the decoded request, so it can decide per node and per method.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from enum import Enum
from typing import TYPE_CHECKING, Any

from asyncua import ua
from asyncua.crypto.permission_rules import (
    USER_TYPES,
    PermissionRuleset,
    User,
    UserRole,
)
from asyncua.server.user_managers import UserManager
from asyncua.ua.ua_binary import struct_from_binary

from plc_anna.server.certificates import TrustList, ensure_server_certificate
from plc_anna.server.config import (
    SecurityConfig,
    ServerConfig,
)
from plc_anna.server.identity import application_uri, default_application_uri
from plc_anna.server.passwords import hash_password, verify_password

if TYPE_CHECKING:
    from asyncua import Node, Server

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- roles

class Role(str, Enum):
    """Our roles, least to most privileged; the values are the configuration's role names."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ENGINEER = "engineer"


#: What each role may do, the one table :func:`may` and ``docs/server-config.md`` show.
#: ``read``: read, browse, subscribe, read history, ConditionRefresh. ``call_operation``: Calibrate,
#: Commit, Rollback, ResetReference, acknowledge an alarm. ``write_configuration``: write configuration variables.
#: ``call_test_rig``: the simulated device's test-rig methods (``test_rig = true``).
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.VIEWER: frozenset({"read"}),
    Role.OPERATOR: frozenset({"read", "call_operation"}),
    Role.ENGINEER: frozenset({"read", "call_operation", "write_configuration", "call_test_rig"}),
}
ACTIONS = ("read", "call_operation", "write_configuration", "call_test_rig")

#: How our roles map onto asyncua's: viewers and operators are asyncua ``User`` (asyncua's
#: ``Anonymous`` may not even read), engineers ``Admin``. :class:`RoleRuleset` narrows both.
ASYNCUA_ROLES = {Role.VIEWER: UserRole.User, Role.OPERATOR: UserRole.User, Role.ENGINEER: UserRole.Admin}


def may(role: Role | str, action: str) -> bool:
    """True if ``role`` may do ``action`` (one of :data:`ACTIONS`).

    Examples
    --------
    >>> may("operator", "call_operation"), may(Role.OPERATOR, "write_configuration")
    (True, False)

    Raises
    ------
    ValueError
        For an unknown role or action (a typo must not silently deny or grant).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    try:
        role = Role(role)
    except ValueError:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}") from None
    return action in PERMISSIONS[role]


class PlcUser(User):
    """An asyncua ``User`` that also carries our :class:`Role` (``plc_role``)."""

    def __init__(self, plc_role: Role, name: str | None = None) -> None:
        super().__init__(role=ASYNCUA_ROLES[plc_role], name=name)
        self.plc_role = plc_role

    def __repr__(self) -> str:
        return f"PlcUser(name={self.name!r}, plc_role={self.plc_role.value!r}, role={self.role.name})"


def role_of(user: Any) -> Role | None:
    """Our role of an asyncua session user, or None for a user we did not make."""
    role = getattr(user, "plc_role", None)
    return role if isinstance(role, Role) else None


# ---------------------------------------------------------------- users

class UserDirectory(UserManager):
    """asyncua user manager of the configured users (``security.users``) and anonymous access.

    - A user name with the right password gets a :class:`PlcUser` with the
      user's role; a wrong password or an unknown name gets None, which asyncua
      answers with ``BadUserAccessDenied``.
    - An anonymous session gets a viewer when ``allow_anonymous`` is true,
      else None.
    - On an unsecured channel (no client certificate) every session is
      refused unless ``"None"`` is among the policies: asyncua accepts such
      channels even without a None endpoint (clients fetch the endpoints over
      them) and does not apply the permission ruleset to them. With ``"None"``
      configured, anonymous sessions are accepted there (if allowed), user
      names only with ``allow_insecure_login``.
    - With a ``trust_list``, a session whose secure channel's client
      certificate is not trusted is refused too. asyncua validates the client
      certificate only when CreateSession carries one; this closes the gap of a
      client that sends an empty one.

    Install it with ``server.iserver.set_user_manager(directory)`` or
    ``Server(user_manager=directory)`` (asyncua 2.1's ``Server`` has no
    ``set_user_manager``).
    """

    _dummy_hash: str | None = None

    def __init__(self, config: ServerConfig | SecurityConfig, trust_list: TrustList | None = None) -> None:
        security = config.security if isinstance(config, ServerConfig) else config
        self.security = security
        self.trust_list = trust_list
        self._users = {u.name: u for u in security.users}
        self.refusals = 0
        """Sessions refused since the start (a wrong login, anonymous or unsecured access not allowed)."""

    def get_user(self, iserver: Any = None, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> PlcUser | None:
        user = self._user(username, password, certificate)
        if user is None:
            self.refusals += 1
        return user

    def _user(self, username: str | None, password: str | None, certificate: Any) -> PlcUser | None:
        channel_cert = certificate or None  # asyncua passes b"" on an unsecured channel
        if channel_cert is None and "None" not in self.security.policies:
            # asyncua accepts an unsecured channel even without a None endpoint (for GetEndpoints), and
            # its requests skip the permission ruleset: no session may be activated on it.
            logger.warning("refused a session on an unsecured channel: the None policy is not configured")
            return None
        if channel_cert is not None and self.trust_list is not None and not self.trust_list.is_trusted(channel_cert):
            kept = self.trust_list.reject(channel_cert)
            logger.warning("refused a session: the channel's client certificate is not trusted%s",
                           f" (kept as {kept})" if kept is not None else "")
            return None
        if username is None:
            if not self.security.allow_anonymous:
                logger.info("refused an anonymous session (security.allow_anonymous is false)")
                return None
            return PlcUser(Role(self.security.anonymous_role), name=None)
        if channel_cert is None and not self.security.allow_insecure_login:
            logger.warning("refused user %r on the None endpoint (security.allow_insecure_login is false)", username)
            return None
        entry = self._users.get(username)
        if entry is None:
            verify_password(password or "", self._dummy())  # same time as a known name
            logger.warning("refused unknown user %r", username)
            return None
        if not isinstance(password, str) or not verify_password(password, entry.password_hash):
            logger.warning("refused user %r: wrong password", username)
            return None
        return PlcUser(Role(entry.role), name=entry.name)

    @classmethod
    def _dummy(cls) -> str:
        if cls._dummy_hash is None:
            cls._dummy_hash = hash_password("no such user")
        return cls._dummy_hash


# ---------------------------------------------------------------- policies and tokens

#: Configuration policy names -> asyncua's SecurityPolicyType.
POLICY_TYPES: dict[str, ua.SecurityPolicyType] = {
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    "Aes256_Sha256_RsaPss_Sign": ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    "Aes256_Sha256_RsaPss_SignAndEncrypt": ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
    "None": ua.SecurityPolicyType.NoSecurity,
}


def security_policies(config: ServerConfig | SecurityConfig) -> list[ua.SecurityPolicyType]:
    """The policies of ``security.policies`` for ``server.set_security_policy``, in the file's order."""
    security = config.security if isinstance(config, ServerConfig) else config
    return [POLICY_TYPES[name] for name in security.policies]


def identity_tokens(config: ServerConfig | SecurityConfig) -> list[type]:
    """User token types for ``server.set_identity_tokens``: user names, and anonymous if allowed.

    Certificate (X509) user tokens are not offered: users are the
    configuration's names and passwords.
    """
    security = config.security if isinstance(config, ServerConfig) else config
    tokens: list[type] = [ua.UserNameIdentityToken]
    if security.allow_anonymous:
        tokens.insert(0, ua.AnonymousIdentityToken)
    return tokens


# ---------------------------------------------------------------- enforcement

_WRITE = ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)
_CALL = ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)
#: Requests that only read (asyncua's user requests without Write and Call, plus BrowseNext,
#: which asyncua's own ruleset forgets).
_READ_REQUESTS = frozenset(
    {ua.NodeId(t) for t in USER_TYPES} | {ua.NodeId(ua.ObjectIds.BrowseNextRequest_Encoding_DefaultBinary)}
) - {_WRITE, _CALL}

Classifier = Callable[[ua.NodeId], "str | None"]

#: The session user of the request being processed. asyncua does not tell a method handler who
#: called it; :class:`RoleRuleset` sets this before each request it checks, in the connection's own
#: task, where asyncua then runs the request: a handler reads it with :func:`caller_name`.
_CALLER: ContextVar[Any] = ContextVar("plc_anna_caller", default=None)


def caller_name() -> str:
    """Who sent the request being processed: the user name, ``anonymous``, or ``""`` outside a request."""
    user = _CALLER.get()
    if user is None:
        return ""
    return getattr(user, "name", None) or "anonymous"


class RoleRuleset(PermissionRuleset):
    """asyncua permission ruleset that applies :func:`may` to every request of a session.

    - Read-only requests (read, browse, subscribe, history read) need ``read``.
    - A write needs, for every item, the action its node is registered with
      (:meth:`allow_write`, default ``write_configuration``); writes of
      unregistered nodes and of any attribute but Value are refused for
      everyone (asyncua lets ``Admin`` write any attribute of any node).
    - A call needs, for every method, the action the method is registered with
      (:meth:`allow_call`, default ``call_operation``); unregistered methods
      are refused for everyone.
    - Address-space changes (AddNodes, DeleteNodes, ...) and every other
      request are refused for everyone.

    A refused request is answered with ``BadUserAccessDenied`` as a whole,
    before any of its items is applied. Register nodes as the server creates
    them; the registry is read on every request. Pass the ruleset as
    ``server.set_security_policy(policies, permission_ruleset=ruleset)``.
    """

    def __init__(self, writes: Mapping[ua.NodeId, str] | Classifier | None = None,
                 calls: Mapping[ua.NodeId, str] | Classifier | None = None) -> None:
        self.refusals = 0
        """Requests refused since the start."""
        self._writes: dict[ua.NodeId, str] = {}
        self._calls: dict[ua.NodeId, str] = {}
        self._write_fn = writes if callable(writes) else None
        self._call_fn = calls if callable(calls) else None
        for node, action in (writes.items() if isinstance(writes, Mapping) else ()):
            self.allow_write(node, action)
        for node, action in (calls.items() if isinstance(calls, Mapping) else ()):
            self.allow_call(node, action)

    def allow_write(self, node: Node | ua.NodeId | Iterable[Node | ua.NodeId],
                    action: str = "write_configuration") -> None:
        """Let the roles that may do ``action`` write the Value of ``node`` (or of each node given)."""
        self._register(self._writes, node, action)

    def allow_call(self, method: Node | ua.NodeId | Iterable[Node | ua.NodeId], action: str = "call_operation") -> None:
        """Let the roles that may do ``action`` call ``method`` (the method node, or each given)."""
        self._register(self._calls, method, action)

    @staticmethod
    def _register(table: dict[ua.NodeId, str], nodes: Any, action: str) -> None:
        may(Role.ENGINEER, action)  # raises for an unknown action
        for node in (nodes if isinstance(nodes, (list, tuple, set, frozenset)) else [nodes]):
            table[getattr(node, "nodeid", node)] = action

    def write_action(self, node_id: ua.NodeId) -> str | None:
        """The action a Value write of ``node_id`` needs, or None if nobody may write it."""
        return self._writes.get(node_id) or (self._write_fn(node_id) if self._write_fn else None)

    def call_action(self, method_id: ua.NodeId) -> str | None:
        """The action a call of ``method_id`` needs, or None if nobody may call it."""
        return self._calls.get(method_id) or (self._call_fn(method_id) if self._call_fn else None)

    def check_validity(self, user: Any, action_type_id: ua.NodeId, body: Any) -> bool:
        _CALLER.set(user)
        role = role_of(user)
        if role is None or (action_type_id in _READ_REQUESTS and not may(role, "read")):
            self.refusals += 1
            return False
        if action_type_id in _READ_REQUESTS:
            return True
        try:
            if action_type_id == _WRITE:
                items = struct_from_binary(ua.WriteParameters, body.copy()).NodesToWrite
                actions = [self.write_action(w.NodeId) if w.AttributeId == ua.AttributeIds.Value else None
                           for w in items]
            elif action_type_id == _CALL:
                items = struct_from_binary(ua.CallParameters, body.copy()).MethodsToCall
                actions = [self.call_action(c.MethodId) for c in items]
            else:
                self.refusals += 1
                return False
        except Exception:  # an undecodable request is refused, never let through
            logger.exception("refused an undecodable request")
            self.refusals += 1
            return False
        allowed = all(action is not None and may(role, action) for action in actions)
        if not allowed:
            self.refusals += 1
            logger.warning("refused a %s of %s: role %s", "write" if action_type_id == _WRITE else "call",
                           getattr(user, "name", None) or "anonymous", role.value)
        return allowed


# ---------------------------------------------------------------- wiring

def is_loopback(host: str) -> bool:
    """True for an address or name that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_rig_access(config: ServerConfig) -> ServerConfig:
    """A test rig on loopback offers the None policy to anonymous viewers, so any client can attach.

    Only for ``test_rig = true`` and an endpoint on loopback; any other
    configuration is returned unchanged (production never offers None unless
    configured). Users and roles stay as configured.
    """
    if not config.test_rig or not is_loopback(config.host):
        return config
    security = config.security
    policies = security.policies if "None" in security.policies else (*security.policies, "None")
    return config.replace(security=dataclasses.replace(security, policies=policies, allow_anonymous=True))

async def configure_server_security(server: Server, config: ServerConfig,
                                    ruleset: RoleRuleset | None = None) -> RoleRuleset:
    """Apply the configuration's security to an initialised ``asyncua.Server`` (before ``start()``).

    Generates or loads the server certificate in ``config_dir/own``, sets the
    ApplicationUri (:func:`application_uri`), the security policies with a
    :class:`RoleRuleset`, the identity tokens, the :class:`UserDirectory` and
    the :class:`TrustList` of ``security.trust_dir`` (refused certificates go
    to ``security.rejected_dir``) as certificate validator. Returns the
    ruleset, in which the server registers its writable configuration nodes
    and methods.
    """
    host = config.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    cert_path, key_path = ensure_server_certificate(
        config.config_dir, hostname=host, application_uri=config.application_uri or default_application_uri(
            config.endpoint))
    uri = application_uri(config, cert_path)
    await server.load_certificate(str(cert_path))
    await server.load_private_key(str(key_path))
    await server.set_application_uri(uri)
    await server.get_node(ua.NodeId(ua.ObjectIds.Server_ServerArray)).write_value([uri])
    trust_list = TrustList(config.security.trust_dir, rejected_dir=config.security.rejected_dir)
    ruleset = ruleset if ruleset is not None else RoleRuleset()
    server.set_security_policy(security_policies(config), permission_ruleset=ruleset)
    server.set_identity_tokens(identity_tokens(config))
    server.iserver.set_user_manager(UserDirectory(config, trust_list=trust_list))
    server.set_certificate_validator(trust_list)
    return ruleset

