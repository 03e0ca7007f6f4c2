"""The simulated PLC over OPC UA: a CODESYS-, TwinCAT- or S7-1500-like address space around a :class:`SimulatedPlc`.

The default tree, CODESYS's (``docs/simulated-plc.md``)::

    Objects/DeviceSet/plc-anna Simulated PLC/Resources/Application/GlobalVars/
        GVL_PlcAnna_L<k>/GainSet, OffsetSet, CommitCounter, Heartbeat, ... (one GVL per layer)
        GVL_Device/DeviceAge, DeviceTemperature

with string NodeIds in the CODESYS style,
``ns=4;s=|var|plc-anna Simulated PLC.Application.GVL_PlcAnna_L0.GainSet``. The
namespace ``urn:plc-anna:simulated-plc`` is index 4 as on a CODESYS controller
(after DI and PLCopen). ``target="twincat"`` and ``"s7-1500"`` serve those
families' NodeIds and trees instead (:data:`~plc_anna.contract.layout.OPCUA_STYLES`),
the ones ``plc-anna plc-code`` generates tag maps for. Only GainSet, OffsetSet,
CommitCounter and Heartbeat are writable; a write of another Variant type or
array length is refused with ``BadTypeMismatch``; NaN is taken and then
rejected by the block (Status 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from plc_anna.contract.layout import DEVICE_TAGS, LAYER_TAGS, OPCUA_STYLES, TARGET_STYLES, WRITTEN_TAGS, tag_length
from plc_anna.contract.tagmap import TagMap
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.simulated_plc.server import SimulatedPlcServer, check_port_free
from plc_anna.server.writes import WriteGuard, WriteRefused

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:4841"
APPLICATION_URI = "urn:plc-anna:simulated-plc:server"
DI_DEVICE_SET = 5001  #: DeviceSet's numeric id in the DI namespace
VARIANT_TYPES = {"REAL": ua.VariantType.Float, "LREAL": ua.VariantType.Double, "UDINT": ua.VariantType.UInt32,
                 "INT": ua.VariantType.Int16, "BOOL": ua.VariantType.Boolean}
OUTPUT_TAGS = tuple(name for name in LAYER_TAGS if name not in WRITTEN_TAGS)


class SimulatedPlcOpcUa(SimulatedPlcServer):
    """A :class:`SimulatedPlc` served over OPC UA; use it as ``async with``.

    Parameters
    ----------
    plc
        The program.
    endpoint
        ``opc.tcp://HOST:PORT`` to listen on (127.0.0.1 unless told otherwise).
    user, password
        When given, the only login accepted; anonymous sessions are refused. Else anonymous only.
    certificate, private_key
        Server certificate (DER or PEM) and key: the endpoint becomes Basic256Sha256
        SignAndEncrypt (any client certificate is accepted) instead of None.
    run_cycles
        Run the cycle task (``cycle_s`` of the program, absolute deadlines); False for tests that
        call :meth:`step` themselves.
    target
        The PLC family whose address space to serve: ``codesys`` (default), ``twincat``, ``s7-1500``
        or ``plcopen-xml`` (CODESYS's).

    Examples
    --------
    >>> import asyncio
    >>> from asyncua import Client
    >>> from plc_anna.device.simulated import SimulatedNetwork
    >>> from plc_anna.testing import free_port
    >>> async def demo():
    ...     plc = SimulatedPlc(SimulatedNetwork("digits", "pcm"), trace_length=2)
    ...     endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    ...     async with SimulatedPlcOpcUa(plc, endpoint, run_cycles=False) as server:
    ...         await server.step()
    ...         async with Client(endpoint) as client:
    ...             return await client.get_node(server.nodeid(1, "PlcHeartbeat")).read_value()
    >>> asyncio.run(demo())
    1
    """

    def __init__(self, plc: SimulatedPlc, endpoint: str = DEFAULT_ENDPOINT, *, user: str | None = None,
                 password: str | None = None, certificate: str | Path | None = None,
                 private_key: str | Path | None = None, run_cycles: bool = True, target: str = "codesys") -> None:
        super().__init__(plc, run_cycles=run_cycles)
        if target not in TARGET_STYLES:
            raise ValueError(f"an OPC UA PLC target is one of {', '.join(TARGET_STYLES)}, got {target!r}")
        self.target, self.style = target, OPCUA_STYLES[TARGET_STYLES[target]]
        parts = urlsplit(endpoint)
        if parts.scheme != "opc.tcp" or not parts.hostname or parts.port is None:
            raise ValueError(f"endpoint must look like opc.tcp://HOST:PORT, got {endpoint!r}")
        if (user is None) != (password is None):
            raise ValueError("give user and password together, or neither (anonymous access)")
        if (certificate is None) != (private_key is None):
            raise ValueError("give certificate and private_key together, or neither (security policy None)")
        self.endpoint, self.host, self.port = endpoint, parts.hostname, parts.port
        self.user, self._password = user, password
        self.certificate, self.private_key = certificate, private_key
        self.server: Server | None = None
        self._nodes = {(k, name): self.nodeid(k, name) for k in range(plc.n_layers) for name in LAYER_TAGS}
        self._nodes.update({(None, name): self.nodeid(None, name) for name in DEVICE_TAGS})

    def nodeid(self, layer: int | None, name: str) -> ua.NodeId:
        """The NodeId of a tag (``layer=None``: DeviceAge or DeviceTemperature)."""
        return ua.NodeId.from_string(self.style.nodeid(layer, name))

    def tag_map(self, client_certificate: str | Path | None = None,
                client_private_key: str | Path | None = None) -> TagMap:
        """The tag map of this server (endpoint, user; the password from ``PLC_ANNA_PLC_PASSWORD``).

        A server with a certificate needs the client's certificate and key for the map's
        Basic256Sha256 SignAndEncrypt settings; ValueError without them.
        """
        tag_map = self.plc.tag_map("opcua", self.endpoint, target=self.target, user=self.user)
        if self.certificate is None:
            return tag_map
        if client_certificate is None or client_private_key is None:
            raise ValueError("this server only speaks Basic256Sha256 SignAndEncrypt: give the client's "
                             "certificate and private key for the tag map")
        plc = dataclasses.replace(tag_map.plc, security_policy="Basic256Sha256", security_mode="SignAndEncrypt",
                                  certificate=str(client_certificate), private_key=str(client_private_key),
                                  server_certificate=str(self.certificate))
        return dataclasses.replace(tag_map, plc=plc)

    # ---------------------------------------------------------------- lifecycle
    async def _start(self) -> None:
        check_port_free(self.host, self.port)  # a clear OSError instead of asyncua's logged traceback
        secure = self.certificate is not None
        server = Server(user_manager=_Credentials(self.user, self._password, secure_only=secure))
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(self.style.device_name)
        server.allow_remote_admin(False)  # asyncua's built-in "admin" could write the read-only tags
        if secure:
            await server.load_certificate(str(self.certificate))
            await server.load_private_key(str(self.private_key))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            await server.set_application_uri(_certificate_uri(server) or APPLICATION_URI)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            await server.set_application_uri(APPLICATION_URI)
        server.set_identity_tokens([ua.UserNameIdentityToken] if self.user else [ua.AnonymousIdentityToken])
        for uri in self.style.leading_namespaces:
            await server.register_namespace(uri)
        if await server.register_namespace(self.style.namespace_uri) != self.style.namespace_index:
            raise RuntimeError(f"{self.style.namespace_uri} did not get namespace index {self.style.namespace_index}")
        await self._build(server)
        await server.start()
        self.server = server

    async def _build(self, server: Server) -> None:
        style, idx = self.style, self.style.namespace_index
        parent, path = server.nodes.objects, ""
        for folder in style.folders:
            name = folder.format(device=style.device_name)
            if name == "DeviceSet":  # the DI companion specification's DeviceSet, as a CODESYS server has it
                parent = await parent.add_object(ua.NodeId(DI_DEVICE_SET, 2), ua.QualifiedName("DeviceSet", 2))
                continue
            path = f"{path}.{name}" if path else name
            parent = await parent.add_object(ua.NodeId(f"|obj|{path}", idx), ua.QualifiedName(name, idx))
        guard = WriteGuard(server)
        for k, (n_in, n_out) in enumerate(self.plc.shapes):
            gvl = await self._variable_list(parent, path, style.variable_list(k))
            tags = self.plc.tags(k)
            for name, (plc_type, _) in LAYER_TAGS.items():
                length = tag_length(name, n_in, n_out, self.plc.trace_length)
                node = await gvl.add_variable(self._nodes[k, name], ua.QualifiedName(name, idx),
                                              _value(tags[name]), VARIANT_TYPES[plc_type])
                if length is not None:  # ARRAY[0..length-1]: one dimension of a fixed length
                    await node.write_value_rank(ua.ValueRank.OneDimension)
                    await node.write_array_dimensions([length])
                if name in WRITTEN_TAGS:
                    await node.set_writable()
                    guard.register(node.nodeid, _check(VARIANT_TYPES[plc_type], length, f"L{k}.{name}"), _taken)
        gvl = await self._variable_list(parent, path, style.variable_list(None))
        for name, value in self.plc.device_tags().items():
            await gvl.add_variable(self._nodes[None, name], ua.QualifiedName(name, idx),
                                   ua.Variant(value, ua.VariantType.Double))

    async def _variable_list(self, parent, path: str, name: str):
        """The object of one GVL or DB below ``parent``."""
        idx = self.style.namespace_index
        return await parent.add_object(ua.NodeId(f"|obj|{path}.{name}" if path else f"|obj|{name}", idx),
                                       ua.QualifiedName(name, idx))

    async def _stop(self) -> None:
        if self.server is None:
            return
        # asyncua's stop waits for the clock task's 1 s sleep to end; cancel it instead.
        clock, self.server.iserver.time_task = self.server.iserver.time_task, None
        if clock is not None:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock
        await self.server.stop()
        self.server = None

    async def _stop_listening(self) -> None:
        await self.server.bserver.stop()

    async def _start_listening(self) -> None:
        await self.server.bserver.start()

    # ---------------------------------------------------------------- the cycle
    def _copy_in(self) -> None:
        read = self.server.read_attribute_value
        for k in range(self.plc.n_layers):
            for name in WRITTEN_TAGS:
                value = read(self._nodes[k, name]).Value
                try:
                    self.plc.set_tag(k, name, value.Value)
                except (ValueError, TypeError, AttributeError):
                    # Only a write with a Bad status gets past the guard (asyncua then stores Null):
                    # the PLC's variable keeps its value, as a real one would.
                    pass

    async def _publish(self, written: bool) -> None:
        now = datetime.now(UTC)
        write = self.server.write_attribute_value
        for k in range(self.plc.n_layers):
            tags = self.plc.tags(k)
            for name in (LAYER_TAGS if written else OUTPUT_TAGS):
                variant = ua.Variant(_value(tags[name]), VARIANT_TYPES[LAYER_TAGS[name][0]])
                await write(self._nodes[k, name], ua.DataValue(variant, SourceTimestamp=now, ServerTimestamp=now))
        for name, value in self.plc.device_tags().items():
            await write(self._nodes[None, name],
                        ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=now, ServerTimestamp=now))


def _value(tag: Any) -> Any:
    return tag.tolist() if hasattr(tag, "tolist") else tag


def _check(vtype: ua.VariantType, length: int | None, what: str):
    """The WriteGuard check of a written tag: its Variant type and, for an array, its length."""

    def check(variant: ua.Variant) -> None:
        is_array = isinstance(variant.Value, (list, tuple))
        if (variant.VariantType != vtype or is_array != (length is not None)
                or (is_array and len(variant.Value) != length)):
            shape = f"an array of {length} {vtype.name}" if length else f"a scalar {vtype.name}"
            raise WriteRefused(ua.StatusCodes.BadTypeMismatch, f"{what} takes {shape}")

    return check


async def _taken(_value: Any) -> None:
    """Nothing to do after a write: the next cycle copies the tag into the program."""


def _certificate_uri(server: Server) -> str | None:
    """The application URI in the server certificate's subjectAltName (asyncua checks they match)."""
    from cryptography import x509

    try:
        san = server.iserver.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, AttributeError):
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


class _Credentials(UserManager):
    """One user name and password, or anonymous access; optionally on secured channels only."""

    def __init__(self, user: str | None, password: str | None, secure_only: bool) -> None:
        self.user, self.password, self.secure_only = user, password, secure_only

    def get_user(self, iserver: Any = None, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if self.secure_only and not certificate:  # asyncua passes b"" on an unsecured channel
            return None
        if self.user is None:
            return User(role=UserRole.User)
        if username is None:
            return None
        # Both compared in full, so the time does not tell which one was wrong.
        ok = hmac.compare_digest(username.encode(), self.user.encode())
        ok &= hmac.compare_digest((password or "").encode(), self.password.encode())
        if not ok:
            logger.info("refused a login as %r: wrong user name or password", username)
            return None
        return User(role=UserRole.User, name=username)


__all__ = ["APPLICATION_URI", "DEFAULT_ENDPOINT", "SimulatedPlcOpcUa"]
