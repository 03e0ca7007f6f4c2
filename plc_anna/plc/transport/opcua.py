"""OPC UA transport: PLC tags as variables of the PLC's OPC UA server (asyncua client).

Tag addresses are NodeId strings, ``"ns=4;s=|var|Dev.Application.GVL.GainSet"``
or ``"nsu=URN;s=..."`` (the namespace URI is resolved to its index at
connect). A read is one Read service call for all tags, a write one Write
service call with every value sent as the variant type of its PLC type
(:data:`VARIANT_TYPES`). :func:`discover_endpoints` and :func:`browse_variables`
help commissioning: what does the PLC offer, and which variables are there.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from asyncua import Client, ua
from asyncua.crypto import security_policies, uacrypto
from cryptography import x509

from plc_anna.contract.tagmap import WRITTEN_ROLES, PlcSettings, Tag
from plc_anna.plc.transport.base import (AuthenticationFailed, CertificateRejected, LinkError, TagError, TagInfo,
                                         Transport, Unreachable, WriteRefused)

T = TypeVar("T")
#: PLC data type -> the OPC UA variant type its values are written as.
VARIANT_TYPES: dict[str, ua.VariantType] = {
    "REAL": ua.VariantType.Float, "LREAL": ua.VariantType.Double, "BOOL": ua.VariantType.Boolean,
    "INT": ua.VariantType.Int16, "UINT": ua.VariantType.UInt16, "DINT": ua.VariantType.Int32,
    "UDINT": ua.VariantType.UInt32,
}
#: OPC UA built-in data type (namespace 0 identifier) -> PLC data type.
PLC_TYPE_OF_DATA_TYPE: dict[int, str] = {int(vt.value): plc for plc, vt in VARIANT_TYPES.items()}
SECURITY_POLICIES = {"Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
                     "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss}
_AUTH_FAULTS = ("BadUserAccessDenied", "BadIdentityTokenInvalid", "BadIdentityTokenRejected")
_SECURITY_FAULTS = ("BadSecurityChecksFailed", "BadSecurityPolicyRejected", "BadSecurityModeRejected",
                    "BadNoValidCertificates", "BadApplicationSignatureInvalid")
#: Faults of one request (the session is fine): not a reason to reconnect.
_REQUEST_FAULTS = ("BadTooManyOperations", "BadNothingToDo", "BadNodeIdUnknown", "BadNodeIdInvalid",
                   "BadTypeMismatch", "BadUserAccessDenied", "BadNotWritable", "BadNotReadable")
_STATUS_WORDS = {"BadNodeIdUnknown": "no such node on the PLC", "BadNodeIdInvalid": "not a valid node id",
                 "BadUserAccessDenied": "no access for this user", "BadNotReadable": "not readable",
                 "BadNotWritable": "the node is read-only", "BadAttributeIdInvalid": "not a variable",
                 "BadTypeMismatch": "the PLC's data type differs from the tag map's"}
_CURRENT_WRITE = 0x02
_HAS_PROPERTY = 46
_READ_CHUNK = 500
_BROWSE_CHUNK = 100
_FACT_ATTRIBUTES = (ua.AttributeIds.DataType, ua.AttributeIds.ValueRank, ua.AttributeIds.ArrayDimensions,
                    ua.AttributeIds.UserAccessLevel)


def _status_name(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return ua.StatusCode(code).name if isinstance(code, int) else type(exc).__name__


def _os_words(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _connect_error(endpoint: str, exc: BaseException, timeout_s: float, user: str | None = None,
                   security: str = "None") -> LinkError:
    """The :class:`LinkError` a failed connect or endpoint query becomes, in a controls engineer's words."""
    name = _status_name(exc)
    if name in _AUTH_FAULTS:
        who = f"user {user!r}" if user is not None else "an anonymous session (set plc.user and plc.password_env)"
        return AuthenticationFailed(f"{endpoint}: the PLC refused {who}: wrong user name or password ({name})")
    if name in _SECURITY_FAULTS or name.startswith("BadCertificate") or isinstance(exc, ssl.SSLError) \
            or type(exc).__module__.startswith("cryptography"):
        return CertificateRejected(f"{endpoint}: the secure connection ({security}) was rejected ({name}): check "
                                   "that the PLC trusts plc-anna's certificate and plc.server_certificate is the "
                                   "PLC's")
    if isinstance(exc, ua.UaError) and "No matching endpoints" in str(exc):
        return CertificateRejected(f"{endpoint}: the PLC offers no endpoint with security {security}")
    if isinstance(exc, (OSError, TimeoutError)):
        return Unreachable(f"{endpoint}: cannot connect: {_os_words(exc, timeout_s)}")
    if isinstance(exc, ua.UaStatusCodeError):
        return Unreachable(f"{endpoint}: cannot connect: the PLC answered {name}")
    return Unreachable(f"{endpoint}: cannot connect: {type(exc).__name__}: {exc}")


async def _dispose(client: Client, timeout_s: float) -> None:
    """Disconnect ``client`` without hanging or raising; no task or socket is left behind."""
    with suppress(Exception):  # a connection that is gone cannot be closed more
        await asyncio.wait_for(client.disconnect(), timeout_s)
    with suppress(Exception):
        client.disconnect_socket()


@dataclass(frozen=True)
class _Facts:
    """What the server says about one node (``status``: None for a variable, else the failing status name)."""

    status: str | None
    plc_type: str | None = None
    type_name: str | None = None
    length: int | None = None
    writable: bool | None = None


class OpcUaTransport(Transport):
    """Variables of an OPC UA server (:class:`asyncua.Client`).

    Parameters
    ----------
    settings
        ``[plc]`` with ``protocol = "opcua"``, ``endpoint = "opc.tcp://HOST:PORT/..."``, ``timeout_s``,
        optional ``user``/``password_env`` and security (``security_policy``, ``security_mode``,
        ``certificate``, ``private_key``, ``server_certificate``).
    """

    protocol = "opcua"

    def __init__(self, settings: PlcSettings) -> None:
        super().__init__(settings)
        if settings.security_mode != "None" and settings.security_policy not in SECURITY_POLICIES:
            raise ValueError(f"plc.security_policy must be one of {', '.join(SECURITY_POLICIES)} for a secure "
                             f"OPC UA connection, got {settings.security_policy!r}")
        self._client: Client | None = None
        self._namespaces: list[str] = []
        self._nodeids: dict[str, ua.NodeId] = {}

    # ------------------------------------------------------------ connection
    async def _connect_hook(self) -> None:
        await self._drop_client()
        settings = self.settings
        password = settings.password()
        client = Client(self.endpoint, timeout=settings.timeout_s)
        if settings.user is not None:
            client.set_user(settings.user)
            client.set_password(password or "")
        try:
            if settings.security_mode != "None":
                await self._secure(client)
            await client.connect()
            namespaces = await client.get_namespace_array()
        except BaseException as exc:
            await _dispose(client, settings.timeout_s)
            if isinstance(exc, LinkError) or not isinstance(exc, Exception):
                raise
            raise _connect_error(self.endpoint, exc, settings.timeout_s, settings.user,
                                 f"{settings.security_policy}/{settings.security_mode}") from exc
        self._client, self._namespaces, self._nodeids = client, list(namespaces), {}

    async def _secure(self, client: Client) -> None:
        settings = self.settings
        for key in ("certificate", "private_key", "server_certificate"):
            path = getattr(settings, key)
            if path is not None and not Path(path).is_file():
                raise CertificateRejected(f"{self.endpoint}: plc.{key} {path} is not a readable file")
        try:  # the server checks our application URI against the certificate's
            extensions = (await uacrypto.load_certificate(settings.certificate)).extensions
            names = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            client.application_uri = names.get_values_for_type(x509.UniformResourceIdentifier)[0]
        except (x509.ExtensionNotFound, IndexError):
            pass
        except (ValueError, TypeError) as exc:
            raise CertificateRejected(f"{self.endpoint}: cannot read plc.certificate {settings.certificate}: "
                                      f"{exc}") from exc
        await client.set_security(SECURITY_POLICIES[settings.security_policy], settings.certificate,
                                  settings.private_key, server_certificate=settings.server_certificate,
                                  mode=getattr(ua.MessageSecurityMode, settings.security_mode))

    async def _close_hook(self) -> None:
        await self._drop_client()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _dispose(client, min(self.settings.timeout_s, 2.0))

    async def _service(self, call: Callable[[Client], Awaitable[T]], what: str) -> T:
        """Run one service call; a lost link becomes Unreachable (and drops the client)."""
        client = self._client
        if client is None:
            raise Unreachable(f"{self.endpoint}: not connected")
        try:
            return await call(client)
        except LinkError:
            raise
        except ua.UaStatusCodeError as exc:
            name = _status_name(exc)
            if name in _REQUEST_FAULTS:
                error = WriteRefused if what == "write" else TagError
                raise error(f"{self.endpoint}: the PLC refused the {what} ({name})") from exc
            why = f"{what} failed: the PLC answered {name}"
            cause: BaseException = exc
        except ConnectionError as exc:
            why, cause = f"{what} failed: the connection was lost ({str(exc) or type(exc).__name__})", exc
        except (OSError, TimeoutError, ua.UaError) as exc:
            why, cause = f"{what} failed: {_os_words(exc, self.settings.timeout_s)}", exc
        except Exception as exc:
            if client.uaclient.protocol is not None and not client.uaclient.protocol.is_closed:
                raise  # the link is up: a real bug, not a lost connection
            why, cause = f"{what} failed: the connection is closed", exc
        await self._drop_client()
        raise Unreachable(f"{self.endpoint}: {why}") from cause

    # ------------------------------------------------------------ node ids
    def _nodeid(self, address: str, what: str) -> ua.NodeId:
        """``address`` as a NodeId with its namespace index; TagError naming ``what``."""
        if address in self._nodeids:
            return self._nodeids[address]
        try:
            parsed = ua.NodeId.from_string(address)
        except (ua.UaError, ValueError, TypeError) as exc:
            raise TagError(f"{self.endpoint}: {what}: {address!r} is not an OPC UA NodeId") from exc
        index = parsed.NamespaceIndex
        uri = getattr(parsed, "NamespaceUri", None)
        if uri:
            if uri not in self._namespaces:
                raise TagError(f"{self.endpoint}: {what}: the PLC has no namespace {uri!r}; its namespaces: "
                               f"{', '.join(self._namespaces)}")
            index = self._namespaces.index(uri)
        nodeid = ua.NodeId(Identifier=parsed.Identifier, NamespaceIndex=index, NodeIdType=parsed.NodeIdType)
        self._nodeids[address] = nodeid
        return nodeid

    def _tag_nodeid(self, tag: Tag) -> ua.NodeId:
        return self._nodeid(str(tag.address), f"tag {tag.role}")

    # ------------------------------------------------------------ hooks
    async def _read_hook(self, tags: list[Tag]) -> list[np.ndarray]:
        nodeids = [self._tag_nodeid(tag) for tag in tags]
        values = await self._service(lambda client: client.uaclient.read_attributes(nodeids, ua.AttributeIds.Value),
                                     "read")
        raws = []
        for tag, value in zip(tags, values, strict=True):
            where = f"{self.endpoint}: cannot read tag {tag.role} ({tag.address})"
            if value.StatusCode is not None and value.StatusCode.is_bad():
                raise TagError(f"{where}: {_status_words(value.StatusCode.name)}")
            variant = value.Value
            if variant is None or variant.Value is None:
                raise TagError(f"{where}: the PLC sent no value")
            if variant.VariantType != VARIANT_TYPES[tag.plc_type]:
                raise TagError(f"{where}: the PLC sent {variant.VariantType.name}, the tag map says {tag.plc_type} "
                               f"({VARIANT_TYPES[tag.plc_type].name})")
            raws.append(np.asarray(variant.Value, dtype=tag.dtype).reshape(-1))
        return raws

    async def _write_hook(self, items: list[tuple[Tag, np.ndarray]]) -> None:
        nodeids = [self._tag_nodeid(tag) for tag, _ in items]
        values = [ua.DataValue(ua.Variant(raw.tolist() if tag.length is not None else raw[0].item(),
                                          VARIANT_TYPES[tag.plc_type]))
                  for tag, raw in items]
        results = await self._service(
            lambda client: client.uaclient.write_attributes(nodeids, values, ua.AttributeIds.Value), "write")
        failed = [(tag, status.name) for (tag, _), status in zip(items, results, strict=True) if status.is_bad()]
        if failed:
            (tag, name), others = failed[0], "".join(f"; {t.role} refused too ({n})" for t, n in failed[1:])
            error = TagError if name in ("BadTypeMismatch", "BadNodeIdUnknown", "BadNodeIdInvalid") else WriteRefused
            raise error(f"{self.endpoint}: the PLC refused the write of tag {tag.role} ({tag.address}): "
                        f"{_status_words(name)}{others}")

    async def _describe_hook(self, tags: list[Tag]) -> list[TagInfo]:
        nodeids: dict[int, ua.NodeId] = {}
        unknown: dict[int, TagInfo] = {}
        for k, tag in enumerate(tags):
            try:
                nodeids[k] = self._tag_nodeid(tag)
            except TagError as exc:  # an unknown namespace URI: the tag cannot exist
                unknown[k] = TagInfo(tag=tag, exists=False, problem=str(exc).split(": ", 1)[-1])
        facts = dict(zip(nodeids, await _node_facts(self, list(nodeids.values())), strict=True))
        return [unknown[k] if k in unknown else self._tag_info(tag, facts[k]) for k, tag in enumerate(tags)]

    def _tag_info(self, tag: Tag, fact: _Facts) -> TagInfo:
        if fact.status is not None:
            return TagInfo(tag=tag, exists=fact.status not in ("BadNodeIdUnknown", "BadNodeIdInvalid"),
                           problem=f"node {tag.address}: {_status_words(fact.status)}")
        problems = []
        if fact.plc_type != tag.plc_type:
            problems.append(f"the PLC's data type is {fact.plc_type or fact.type_name}, the tag map says "
                            f"{tag.plc_type}")
        if fact.length != tag.length:
            problems.append(f"the PLC holds {_shape(fact.length)}, the tag map says {_shape(tag.length)}")
        if tag.role in WRITTEN_ROLES and fact.writable is False:
            who = f"user {self.settings.user!r}" if self.settings.user else "the anonymous session"
            problems.append(f"plc-anna writes this tag, but the PLC gives {who} no write access")
        return TagInfo(tag=tag, exists=True, plc_type=fact.plc_type or fact.type_name, length=fact.length,
                       writable=fact.writable, problem="; ".join(problems) or None)


def _status_words(name: str) -> str:
    return f"{name} ({_STATUS_WORDS[name]})" if name in _STATUS_WORDS else name


def _shape(length: int | None) -> str:
    return "a scalar" if length is None else f"an array of {length}"


def _value(data_value: ua.DataValue) -> Any:
    bad = data_value.StatusCode is not None and data_value.StatusCode.is_bad()
    return None if bad or data_value.Value is None else data_value.Value.Value


async def _read_many(transport: OpcUaTransport, nodeids: Sequence[ua.NodeId],
                     attributes: Sequence[ua.AttributeIds]) -> list[list[ua.DataValue]]:
    """Every attribute of every node, in Read requests of at most ``_READ_CHUNK`` items."""
    items = [ua.ReadValueId(NodeId=nodeid, AttributeId=attribute) for nodeid in nodeids for attribute in attributes]
    values: list[ua.DataValue] = []
    for first in range(0, len(items), _READ_CHUNK):
        parameters = ua.ReadParameters(NodesToRead=items[first:first + _READ_CHUNK])
        values += await transport._service(lambda client, p=parameters: client.uaclient.read(p), "read")
    n = len(attributes)
    return [values[k * n:(k + 1) * n] for k in range(len(nodeids))]


async def _node_facts(transport: OpcUaTransport, nodeids: Sequence[ua.NodeId]) -> list[_Facts]:
    """Data type, array length and write access of each node (values read only where dimensions are unknown)."""
    rows = await _read_many(transport, nodeids, _FACT_ATTRIBUTES)
    facts: list[_Facts | None] = []
    need_value: list[int] = []
    for k, (data_type, rank, dims, access) in enumerate(rows):
        if data_type.StatusCode is not None and data_type.StatusCode.is_bad():
            facts.append(_Facts(status=data_type.StatusCode.name))
            continue
        type_id = _value(data_type)
        plc_type = type_name = None
        if isinstance(type_id, ua.NodeId):
            builtin = type_id.NamespaceIndex == 0 and isinstance(type_id.Identifier, int)
            plc_type = PLC_TYPE_OF_DATA_TYPE.get(type_id.Identifier) if builtin else None
            type_name = ua.ObjectIdNames.get(type_id.Identifier) if builtin else type_id.to_string()
        dimensions, value_rank, level = _value(dims), _value(rank), _value(access)
        length = None
        if dimensions and all(int(d) > 0 for d in dimensions):
            length = int(np.prod(dimensions))
        elif value_rank != -1:
            need_value.append(k)
        facts.append(_Facts(status=None, plc_type=plc_type, type_name=type_name, length=length,
                            writable=None if level is None else bool(int(level) & _CURRENT_WRITE)))
    if need_value:
        values = await _read_many(transport, [nodeids[k] for k in need_value], (ua.AttributeIds.Value,))
        for k, (value,) in zip(need_value, values, strict=True):
            raw = _value(value)
            facts[k] = replace(facts[k], length=int(np.size(raw)) if isinstance(raw, (list, tuple)) else None)
    return facts


__all__ = ["PLC_TYPE_OF_DATA_TYPE", "SECURITY_POLICIES", "VARIANT_TYPES", "OpcUaTransport"]
