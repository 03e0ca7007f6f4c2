"""What the endpoint benchmark sends: garbage and fuzzed OPC UA binary frames, seeded.

- :func:`garbage_payloads`: what a port scanner or a misdirected client sends
  first: random bytes, an HTTP request, a TLS ClientHello, a truncated Hello.
- :func:`fuzz_payloads`: random bytes; valid Hellos with bytes flipped,
  overwritten, inserted or deleted, or cut; a valid Hello with such an
  OpenSecureChannel request after it; and mutated request bodies
  (GetEndpoints, Read, Browse, CreateSession) that
  :func:`~plc_anna.bench.endpoint.exchange` sends on a valid None channel.

Valid frames are framed by asyncua's client-side classes, not by hand.
"""

from __future__ import annotations

import random
import struct
from typing import Any

GARBAGE_KINDS = ("random", "http", "tls", "truncated_hello")
FUZZ_KINDS = ("random", "hello", "truncated_hello", "open_channel", "request")


def client_channel() -> Any:
    """The client side of a None secure channel, asyncua's own (it frames and numbers the messages)."""
    from asyncua.common.connection import SecureConnection, TransportLimits
    from asyncua.crypto.security_policies import SecurityPolicyNone

    return SecureConnection(SecurityPolicyNone(), TransportLimits())


def open_channel_request(channel: Any = None) -> bytes:
    """A valid OpenSecureChannel request for the None policy, framed as asyncua's client frames it."""
    from asyncua import ua
    from asyncua.ua.ua_binary import struct_to_binary

    request = ua.OpenSecureChannelRequest()
    request.Parameters.ClientProtocolVersion = 0
    request.Parameters.RequestType = ua.SecurityTokenRequestType.Issue
    request.Parameters.SecurityMode = ua.MessageSecurityMode.None_
    request.Parameters.RequestedLifetime = 3_600_000
    return (channel or client_channel()).message_to_binary(
        struct_to_binary(request), message_type=ua.MessageType.SecureOpen, request_id=1)


def _requests() -> list[Any]:
    from asyncua import ua

    read = ua.ReadRequest()
    read.Parameters.NodesToRead = [ua.ReadValueId(NodeId=ua.NodeId(2259), AttributeId=ua.AttributeIds.Value)]
    browse = ua.BrowseRequest()
    browse.Parameters.NodesToBrowse = [ua.BrowseDescription(NodeId=ua.NodeId(85))]
    session = ua.CreateSessionRequest()
    session.Parameters.ClientDescription.ApplicationUri = "urn:plc-anna:fuzz"
    session.Parameters.SessionName = "fuzz"
    session.Parameters.RequestedSessionTimeout = 5000
    return [ua.GetEndpointsRequest(), read, browse, session]


def _mutate(rng: random.Random, frame: bytes, keep: int = 0) -> bytes:
    """Flip, drop, insert or overwrite a few bytes after the first ``keep``, or cut or extend the frame."""
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        how = rng.random()
        pos = rng.randrange(keep, max(keep + 1, len(data)))
        if how < 0.4 and pos < len(data):
            data[pos] ^= 1 << rng.randrange(8)
        elif how < 0.55 and pos < len(data):
            data[pos] = rng.choice((0, 0xFF, 0x7F, 0x80))
        elif how < 0.7 and len(data) >= pos + 4:
            struct.pack_into("<i", data, pos, rng.choice((-1, 0, 2**31 - 1, rng.randrange(-2**31, 2**31))))
        elif how < 0.8:
            del data[pos:pos + rng.randint(1, 16)]
        elif how < 0.9:
            data[pos:pos] = rng.randbytes(rng.randint(1, 32))
        else:
            data = data[:rng.randrange(keep, max(keep + 1, len(data)))]
    return bytes(data) or rng.randbytes(1)  # an empty request body would send no frame at all


def garbage_payloads(url: str, n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``n`` storm payloads, the kinds of :data:`GARBAGE_KINDS` in turn (seeded)."""
    from plc_anna.server.endpoint import hello_frame

    rng = random.Random(seed)
    hello = hello_frame(url)
    out = []
    for i in range(n):
        kind = GARBAGE_KINDS[i % len(GARBAGE_KINDS)]
        if kind == "random":
            payload = rng.randbytes(rng.randint(1, 512))
            while payload[:1] == b"H":  # no accidental Hello prefix: garbage from the first byte
                payload = rng.randbytes(len(payload))
        elif kind == "http":
            payload = b"GET /plc-anna HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: scanner\r\n\r\n"
        elif kind == "tls":
            payload = bytes.fromhex("16030100a5010000a10303") + rng.randbytes(32)
        else:
            payload = hello[:rng.randint(1, len(hello) - 1)]
        out.append((kind, payload))
    return out


def fuzz_payloads(url: str, n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``n`` fuzzed payloads, the kinds of :data:`FUZZ_KINDS` in turn (seeded).

    ``request`` payloads are mutated request bodies: the run opens a valid
    channel first and frames them on it (:func:`_send_on_channel`).
    """
    from asyncua.ua.ua_binary import struct_to_binary

    from plc_anna.server.endpoint import hello_frame

    rng = random.Random(seed)
    hello, opn = hello_frame(url), open_channel_request()
    bodies = [struct_to_binary(request) for request in _requests()]
    out = []
    for i in range(n):
        kind = FUZZ_KINDS[i % len(FUZZ_KINDS)]
        if kind == "random":
            payload = rng.randbytes(rng.randint(1, 1024))
        elif kind == "hello":
            payload = _mutate(rng, hello)
        elif kind == "truncated_hello":
            payload = hello[:rng.randint(1, len(hello) - 1)]
        elif kind == "open_channel":
            payload = hello + _mutate(rng, opn, keep=8)
        else:
            payload = _mutate(rng, rng.choice(bodies))
        out.append((kind, payload))
    return out
