"""The server's TCP endpoint, hardened: bad frames answered and closed at once, connections and sessions capped.

asyncua's binary endpoint waits for more bytes whenever a frame header does
not make sense (garbage, a truncated Hello) and only its 30 s activation
watchdog closes such a connection; it acknowledges any buffer size a Hello
asks for; it closes a connection over its cap without a word; and a client
that asks for a security policy or mode that is not offered gets no answer.
OPC 10000-6 (7.1) wants an Error message and a closed socket in all of these.

:class:`GuardedServer` is an ``asyncua.Server`` whose connections run
:class:`GuardedProtocol`, asyncua's own protocol with a check in front of it
(:class:`FrameCheck`) and these rules:

- The first frame must be a Hello, complete within ``hello_timeout_s`` of the
  connection: its header is checked as soon as its 8 bytes arrive, its body
  once complete (buffer sizes of at least :data:`MIN_BUFFER_SIZE` bytes, an
  EndpointUrl of at most :data:`MAX_URL_BYTES`). After it, only
  OpenSecureChannel, Message and CloseSecureChannel frames of the negotiated
  size are taken. A frame that breaks a rule is answered with an Error message
  naming the rule (``BadTcpMessageTypeInvalid``, ``BadTcpMessageTooLarge``,
  ``BadTcpNotEnoughResources``, ``BadTcpEndpointUrlInvalid``, ``BadTimeout``)
  and the connection is closed.
- A connection beyond ``max_connections`` is answered with
  ``BadMaxConnectionsReached`` and closed; a CreateSession beyond
  ``max_sessions`` open sessions with ``BadTooManySessions``.
- A frame asyncua cannot process (a policy or mode not offered, a signature
  that does not verify, a body that does not decode) is answered with
  ``BadSecurityPolicyRejected``, ``BadSecurityChecksFailed`` or
  ``BadDecodingError`` and closed, where asyncua would stay silent.
- A connection that has not activated a session within
  :data:`ACTIVATION_TIMEOUT_S` is closed (asyncua's watchdog, shortened).

Nothing of asyncua is copied but :meth:`GuardedServer.start`, which does
asyncua's start-up steps with this module's binary server in place of
asyncua's (asyncua makes its binary server inside ``start`` and offers no
hook for another protocol).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import uacrypto
from asyncua.server.binary_server_asyncio import BinaryServer, OPCUAProtocol
from asyncua.server.internal_session import SessionState
from asyncua.ua.ua_binary import uatcp_to_binary

logger = logging.getLogger(__name__)

#: OPC 10000-6, 7.1.2.3: a Hello's ReceiveBufferSize and SendBufferSize are at least this.
MIN_BUFFER_SIZE = 8192
#: OPC 10000-6, 7.1.2.3: the longest EndpointUrl a Hello may carry, in bytes.
MAX_URL_BYTES = 4096
#: A Hello: 8 bytes of header, 5 UInt32 and the EndpointUrl (Int32 length, then its bytes).
HELLO_MIN_SIZE, HELLO_MAX_SIZE = 32, 32 + MAX_URL_BYTES
#: The largest request the server takes, in bytes (asyncua's default is 100 MB).
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: A connection must activate a session this soon after it was opened (asyncua's default: 30 s).
ACTIVATION_TIMEOUT_S = 10.0

_AFTER_HELLO = {b"OPN": b"F", b"CLO": b"F", b"MSG": b"FCA"}
_NONE_POLICY = "http://opcfoundation.org/UA/SecurityPolicy#None"

#: The security policy URI of the channel whose frame is being processed (set in the connection's own
#: task, where asyncua processes the frame); None outside a GuardedServer's request.
_CHANNEL_POLICY: ContextVar[str | None] = ContextVar("plc_anna_channel_policy", default=None)


def channel_is_unsecured() -> bool:
    """True while a request that came over a None channel is processed (neither signed nor encrypted)."""
    return _CHANNEL_POLICY.get() == _NONE_POLICY


@dataclass(frozen=True)
class EndpointLimits:
    """The endpoint's limits (``security.max_connections``, ``max_sessions``, ``hello_timeout_s``)."""

    max_connections: int = 100
    max_sessions: int = 50
    hello_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        if not (isinstance(self.max_connections, int) and self.max_connections >= 1):
            raise ValueError(f"max_connections must be an integer >= 1, got {self.max_connections!r}")
        if not (isinstance(self.max_sessions, int) and self.max_sessions >= 1):
            raise ValueError(f"max_sessions must be an integer >= 1, got {self.max_sessions!r}")
        if not 0.01 <= float(self.hello_timeout_s) <= 60.0:
            raise ValueError(f"hello_timeout_s must be within 0.01..60 s, got {self.hello_timeout_s!r}")


@dataclass(frozen=True)
class Refusal:
    """Why a connection is refused: the status its Error message carries, and the reason in words."""

    status: int
    reason: str

    @property
    def name(self) -> str:
        return ua.StatusCode(self.status).name


class FrameCheck:
    """The checks of one connection's frames, before asyncua decodes them.

    :meth:`check` takes the connection's unprocessed bytes (which always begin
    at a frame boundary) and returns a :class:`Refusal` for the first frame
    that breaks a rule, or None. Headers are checked as soon as they are
    complete, a Hello's body once the Hello is. It never raises.

    Examples
    --------
    >>> check = FrameCheck(max_chunk=65535)
    >>> check.check(b"GET / HTTP/1.1\\r\\n").name
    'BadTcpMessageTypeInvalid'
    >>> hello = hello_frame("opc.tcp://localhost:4840", receive_buffer=1)
    >>> FrameCheck(65535).check(hello).reason
    'the Hello asks for a receive buffer of 1 bytes; the minimum is 8192'
    >>> ok = FrameCheck(65535)
    >>> ok.check(hello_frame("opc.tcp://localhost:4840")) is None, ok.hello_seen
    (True, True)
    """

    def __init__(self, max_chunk: int) -> None:
        self.max_chunk = max_chunk
        self.hello_seen = False

    def check(self, data: bytes) -> Refusal | None:
        pos = 0
        while len(data) - pos >= 8:
            kind, chunk, size = struct.unpack_from("<3scI", data, pos)
            refusal = self._header(kind, chunk, size)
            if refusal is not None:
                return refusal
            if len(data) - pos < size:
                return None  # the rest of this frame has not arrived yet
            if kind == b"HEL":
                body = data[pos + 8:pos + size]
                refusal = check_hello(body)
                if refusal is not None:
                    return refusal
                self.hello_seen = True
                # the server receives chunks of at most the client's send buffer (asyncua's Acknowledge)
                self.max_chunk = min(self.max_chunk, struct.unpack_from("<I", body, 8)[0])
            pos += size
        return self._partial_header(data[pos:])

    def _partial_header(self, head: bytes) -> Refusal | None:
        """Judge the first bytes of a header before all 8 have arrived (a TLS ClientHello's record header
        is 5 bytes): the type and chunk type so far must begin a frame that may follow."""
        if not head:
            return None
        kinds = (b"HEL",) if not self.hello_seen else tuple(_AFTER_HELLO)
        if not any(kind.startswith(head[:3]) for kind in kinds):
            return self._header(head[:3].ljust(3, b"?"), b"F", HELLO_MIN_SIZE)
        if len(head) < 4:
            return None
        return self._header(head[:3], head[3:4], HELLO_MIN_SIZE if not self.hello_seen else 16)

    def _header(self, kind: bytes, chunk: bytes, size: int) -> Refusal | None:
        text = kind.decode("latin-1")
        if not self.hello_seen:
            if kind != b"HEL":
                return Refusal(ua.StatusCodes.BadTcpMessageTypeInvalid,
                               f"the first frame must be a Hello (HEL), got {text!r}")
            if chunk != b"F":
                return Refusal(ua.StatusCodes.BadTcpMessageTypeInvalid, "a Hello is a single chunk ('F')")
            if not HELLO_MIN_SIZE <= size <= HELLO_MAX_SIZE:
                return Refusal(ua.StatusCodes.BadTcpMessageTooLarge if size > HELLO_MAX_SIZE
                               else ua.StatusCodes.BadTcpMessageTypeInvalid,
                               f"a Hello of {size} bytes; a Hello has {HELLO_MIN_SIZE} to {HELLO_MAX_SIZE}")
            return None
        if kind not in _AFTER_HELLO:
            return Refusal(ua.StatusCodes.BadTcpMessageTypeInvalid,
                           f"after the Hello only OPN, MSG and CLO frames are taken, got {text!r}")
        if chunk not in _AFTER_HELLO[kind]:
            return Refusal(ua.StatusCodes.BadTcpMessageTypeInvalid,
                           f"chunk type {chunk.decode('latin-1')!r} is not valid for {text}")
        if size < 16:
            return Refusal(ua.StatusCodes.BadTcpMessageTypeInvalid, f"a {text} frame of {size} bytes is too short")
        if size > self.max_chunk:
            return Refusal(ua.StatusCodes.BadTcpMessageTooLarge,
                           f"a {text} chunk of {size} bytes; the negotiated maximum is {self.max_chunk}")
        return None


def check_hello(body: bytes) -> Refusal | None:
    """The rules of a complete Hello's body (the bytes after its 8-byte header)."""
    _version, receive, send, _max_message, _max_chunks, url_length = struct.unpack_from("<IIIIIi", body)
    if receive < MIN_BUFFER_SIZE:
        return Refusal(ua.StatusCodes.BadTcpNotEnoughResources,
                       f"the Hello asks for a receive buffer of {receive} bytes; the minimum is {MIN_BUFFER_SIZE}")
    if send < MIN_BUFFER_SIZE:
        return Refusal(ua.StatusCodes.BadTcpNotEnoughResources,
                       f"the Hello asks for a send buffer of {send} bytes; the minimum is {MIN_BUFFER_SIZE}")
    if url_length != len(body) - 24 or not 0 <= url_length <= MAX_URL_BYTES:
        return Refusal(ua.StatusCodes.BadTcpEndpointUrlInvalid,
                       f"the Hello's EndpointUrl length {url_length} does not match its {len(body) - 24} bytes")
    try:
        body[24:].decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(ua.StatusCodes.BadTcpEndpointUrlInvalid, "the Hello's EndpointUrl is not UTF-8")
    return None


def hello_frame(url: str, receive_buffer: int = 65535, send_buffer: int = 65535, max_message: int = 0,
                max_chunks: int = 0, version: int = 0) -> bytes:
    """A Hello frame as a client sends it (for tests, the fuzz harness and the benchmark)."""
    url_bytes = url.encode("utf-8")
    body = struct.pack("<IIIIIi", version, receive_buffer, send_buffer, max_message, max_chunks, len(url_bytes))
    body += url_bytes
    return b"HELF" + struct.pack("<I", 8 + len(body)) + body


def error_frame(status: int, reason: str) -> bytes:
    """An OPC UA Error message (ERR) carrying ``status`` and ``reason``."""
    return uatcp_to_binary(ua.MessageType.Error, ua.ErrorMessage(ua.StatusCode(status), reason))


@dataclass
class EndpointStats:
    """What the guard refused, since the start (read by the diagnostics and the benchmark)."""

    connections_refused: int = 0
    """Connections beyond ``max_connections``."""
    frames_refused: int = 0
    """Connections closed for a frame that broke a rule (garbage, a bad Hello, an undecodable frame)."""
    hello_timeouts: int = 0
    """Connections closed because no complete Hello arrived in time."""
    sessions_refused: int = 0
    """CreateSession requests beyond ``max_sessions``."""
    sessions_created: int = 0
    sessions: weakref.WeakSet = field(default_factory=weakref.WeakSet, repr=False)

    @property
    def open_sessions(self) -> int:
        return sum(1 for session in list(self.sessions) if session.state != SessionState.Closed)

    @property
    def active_sessions(self) -> int:
        return sum(1 for session in list(self.sessions) if session.state == SessionState.Activated)


class GuardedProtocol(OPCUAProtocol):
    """asyncua's per-connection protocol behind a :class:`FrameCheck`, a Hello deadline and a connection cap."""

    def __init__(self, *args: Any, guard: GuardedServer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.frames = FrameCheck(max_chunk=self.limits.max_recv_buffer)
        self._refused = False
        self._hello_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self.clients) >= self.guard.endpoint_limits.max_connections:
            self.peer_name = transport.get_extra_info("peername")
            self.guard.stats.connections_refused += 1
            self._refuse_transport(transport, Refusal(
                ua.StatusCodes.BadMaxConnectionsReached,
                f"the server is at its limit of {self.guard.endpoint_limits.max_connections} connections"))
            return
        super().connection_made(transport)
        if self.transport is not None:
            self._hello_timer = asyncio.get_running_loop().call_later(self.guard.endpoint_limits.hello_timeout_s,
                                                                      self._hello_overdue)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timer()
        if self.transport is not None:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport is None:
            return
        refusal = self.frames.check(self._buffer + data)
        if self.frames.hello_seen:
            self._cancel_timer()
        if refusal is not None:
            self.guard.stats.frames_refused += 1
            self._refuse(refusal)
            return
        super().data_received(data)

    async def _process_one_msg(self, header: Any, buf: Any) -> bool:
        if self.processor is not None:
            _CHANNEL_POLICY.set(self.processor._connection.security_policy.URI)
        try:
            return await super()._process_one_msg(header, buf)
        except Exception as exc:  # asyncua would log it and leave the client waiting: answer, then close
            self.guard.stats.frames_refused += 1
            self._refuse(_refusal_of(exc))
            return False

    def _hello_overdue(self) -> None:
        self._hello_timer = None
        if not self.frames.hello_seen and not self._refused:
            self.guard.stats.hello_timeouts += 1
            self._refuse(Refusal(ua.StatusCodes.BadTimeout, f"no complete Hello within "
                                                            f"{self.guard.endpoint_limits.hello_timeout_s:g} s"))

    def _cancel_timer(self) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None

    def _refuse(self, refusal: Refusal) -> None:
        self._refused = True
        self._cancel_timer()
        if self.transport is not None:
            self._refuse_transport(self.transport, refusal)

    def _refuse_transport(self, transport: asyncio.BaseTransport, refusal: Refusal) -> None:
        logger.info("closed the connection from %s: %s (%s)", self.peer_name, refusal.reason, refusal.name)
        try:
            transport.write(error_frame(refusal.status, refusal.reason))  # type: ignore[attr-defined]
        finally:
            transport.close()


def _refusal_of(exc: Exception) -> Refusal:
    """The Error message for an exception asyncua raised while it processed a frame."""
    if isinstance(exc, (ServiceError, ua.UaStatusCodeError)):
        return Refusal(exc.code, str(exc) or ua.StatusCode(exc.code).name)
    text = str(exc) or type(exc).__name__
    if "No matching policy" in text:
        return Refusal(ua.StatusCodes.BadSecurityPolicyRejected, f"no such security policy or mode is offered "
                                                                 f"({text})")
    if type(exc).__name__ in ("InvalidSignature", "InvalidTag"):
        return Refusal(ua.StatusCodes.BadSecurityChecksFailed, "a signature or decryption check failed")
    return Refusal(ua.StatusCodes.BadDecodingError, f"the frame could not be decoded ({text})")


class GuardedBinaryServer(BinaryServer):
    """asyncua's binary server whose connections run :class:`GuardedProtocol`."""

    def __init__(self, *args: Any, guard: GuardedServer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard

    def _make_protocol(self) -> GuardedProtocol:
        return GuardedProtocol(iserver=self.iserver, policies=self._policies, clients=self.clients,
                               closing_tasks=self.closing_tasks, limits=self.limits, guard=self.guard)


class GuardedServer(Server):
    """An ``asyncua.Server`` with the hardened endpoint of this module.

    Parameters
    ----------
    limits
        The connection and session caps and the Hello deadline.
    """

    def __init__(self, limits: EndpointLimits | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint_limits = limits or EndpointLimits()
        self.stats = EndpointStats()
        self.limits.max_message_size = MAX_MESSAGE_SIZE
        self.limits.max_chunk_count = MAX_MESSAGE_SIZE // self.limits.max_recv_buffer + 1
        self.iserver.max_connections = self.endpoint_limits.max_connections
        self.iserver.max_pending_activation_seconds = ACTIVATION_TIMEOUT_S
        create_session = self.iserver.create_session

        def capped_create_session(name: str, *args: Any, **kw: Any) -> Any:
            if kw.get("external") and self.stats.open_sessions >= self.endpoint_limits.max_sessions:
                self.stats.sessions_refused += 1
                logger.warning("refused a session: the server is at its limit of %d sessions",
                               self.endpoint_limits.max_sessions)
                raise ServiceError(ua.StatusCodes.BadTooManySessions)
            session = create_session(name, *args, **kw)
            if kw.get("external"):
                self.stats.sessions.add(session)
                self.stats.sessions_created += 1
            return session

        self.iserver.create_session = capped_create_session

    async def start(self) -> None:
        """asyncua's ``Server.start`` with :class:`GuardedBinaryServer` as the binary server."""
        if self.iserver.certificate is not None:
            uacrypto.check_certificate(self.iserver.certificate, self._application_uri, socket.gethostname())
        await self._setup_server_nodes()
        await self.iserver.start()
        try:
            host, port = self._get_bind_socket_info()
            self.bserver = GuardedBinaryServer(self.iserver, host, port, self.limits, guard=self)
            self.bserver.set_policies(self._policies)
            await self.bserver.start()
        except Exception:
            await self.iserver.stop()
            raise


__all__ = ["ACTIVATION_TIMEOUT_S", "EndpointLimits", "EndpointStats", "FrameCheck", "GuardedServer", "Refusal",
           "channel_is_unsecured", "check_hello", "error_frame", "hello_frame"]
