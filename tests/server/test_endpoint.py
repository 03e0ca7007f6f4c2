"""The hardened endpoint: frame checks (with hypothesis) and a live GuardedServer on loopback.

Every answer is read from a real socket and decoded by asyncua's own decoder
(``header_from_binary``, ``struct_from_binary``), not by the module under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct

import pytest
from asyncua import Client, ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import header_from_binary, struct_from_binary, struct_to_binary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plc_anna.bench.endpoint import run_endpoint_bench
from plc_anna.server.endpoint import (
    HELLO_MAX_SIZE,
    MIN_BUFFER_SIZE,
    EndpointLimits,
    FrameCheck,
    GuardedServer,
    hello_frame,
)
from plc_anna.testing import free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ---------------------------------------------------------------- the frame check, on the decoder

def decode_hello(frame: bytes) -> ua.Hello:
    """asyncua's own decoding of a Hello frame."""
    buf = Buffer(frame)
    header = header_from_binary(buf)
    assert header.MessageType == ua.MessageType.Hello
    return struct_from_binary(ua.Hello, buf)


hellos = st.builds(hello_frame, url=st.text(max_size=200).map(lambda t: f"opc.tcp://{t}"),
                   receive_buffer=st.integers(0, 2**32 - 1), send_buffer=st.integers(0, 2**32 - 1),
                   max_message=st.integers(0, 2**32 - 1), max_chunks=st.integers(0, 2**32 - 1),
                   version=st.integers(0, 2**32 - 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_the_check_never_raises_and_what_it_passes_asyncua_decodes(data):
    check = FrameCheck(max_chunk=65535)
    refusal = check.check(data)
    if refusal is not None:
        assert refusal.name.startswith("Bad") and refusal.reason
    elif check.hello_seen:  # a complete Hello was let through: asyncua must decode it, with sane sizes
        size = struct.unpack_from("<I", data, 4)[0]
        hello = decode_hello(data[:size])
        assert hello.ReceiveBufferSize >= MIN_BUFFER_SIZE and hello.SendBufferSize >= MIN_BUFFER_SIZE
    else:  # nothing complete yet: at most the beginning of a Hello that may still be valid
        assert b"HELF".startswith(data[:4]) and (len(data) < 8 or struct.unpack_from("<I", data, 4)[0] > len(data))


@settings(max_examples=300, deadline=None)
@given(hellos, st.integers(0, 600))
def test_every_hello_prefix_is_judged_by_its_fields(frame, cut):
    """A Hello is refused exactly for its buffer sizes or its size; a prefix waits for the rest."""
    check = FrameCheck(max_chunk=65535)
    refusal = check.check(frame[:cut])
    hello = decode_hello(frame)
    too_big = len(frame) > HELLO_MAX_SIZE
    small = hello.ReceiveBufferSize < MIN_BUFFER_SIZE or hello.SendBufferSize < MIN_BUFFER_SIZE
    if cut < 8:
        assert refusal is None  # the beginning of a Hello header
    elif too_big:
        assert refusal.name == "BadTcpMessageTooLarge"
    elif cut < len(frame):
        assert refusal is None and not check.hello_seen
    elif small:
        assert refusal.name == "BadTcpNotEnoughResources"
    else:
        assert refusal is None and check.hello_seen


@given(st.sampled_from([b"ACKF", b"ERRF", b"HELF", b"OPNC", b"MSGX", b"RHEF", b"CLOA"]),
       st.integers(0, 2**32 - 1))
def test_after_the_hello_only_channel_frames_of_the_negotiated_size_pass(prefix, size):
    check = FrameCheck(max_chunk=65535)
    assert check.check(hello_frame("opc.tcp://h:1", send_buffer=8192)) is None
    assert check.max_chunk == 8192  # the client's send buffer bounds what it may send
    refusal = check.check(prefix + struct.pack("<I", size))
    assert refusal is not None and refusal.name == "BadTcpMessageTypeInvalid"
    ok = check.check(b"MSGF" + struct.pack("<I", 8192))
    assert ok is None
    assert check.check(b"MSGF" + struct.pack("<I", 8193)).name == "BadTcpMessageTooLarge"


# ---------------------------------------------------------------- a live endpoint

async def exchange(port: int, payload: bytes, wait: float = 5.0) -> tuple[list[tuple[str, object]], bool, float]:
    """Send ``payload``, read until the server closes (or ``wait`` s): decoded frames, closed?, time to close."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = loop.time()
    if payload:
        writer.write(payload)
        await writer.drain()
    data, closed = b"", False
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), wait)
            if not chunk:
                closed = True
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    elapsed = loop.time() - start
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    frames, buf = [], Buffer(data)
    while len(buf) >= 8:
        header = header_from_binary(buf)
        body = buf.copy(header.body_size)
        buf.skip(header.body_size)
        if header.MessageType == ua.MessageType.Error:
            error = struct_from_binary(ua.ErrorMessage, body)
            frames.append(("ERR", (error.Error.name, error.Reason)))
        else:
            frames.append((header.MessageType.decode(), None))
    return frames, closed, elapsed


@contextlib.asynccontextmanager
async def guarded(policies=(ua.SecurityPolicyType.NoSecurity,), pair=None, **limits):
    """A bare GuardedServer (no model) on a free loopback port; ``pair``: its certificate and key files."""
    server = GuardedServer(EndpointLimits(**limits))
    await server.init()
    if pair is not None:
        await server.load_certificate(str(pair[0]))
        await server.load_private_key(str(pair[1]))
    port = free_port()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}")
    server.set_security_policy(list(policies))
    async with server:
        yield server, port


def open_channel_frame(policy_uri: str) -> bytes:
    """An OpenSecureChannel request asking for ``policy_uri``, as a client's first frame after its Hello."""
    header = struct_to_binary(ua.AsymmetricAlgorithmHeader(SecurityPolicyURI=policy_uri))
    body = header + struct_to_binary(ua.SequenceHeader(SequenceNumber=1, RequestId=1)) + b"\x00" * 20
    return b"OPNF" + struct.pack("<II", 12 + len(body), 0) + body


def test_bad_frames_are_answered_with_an_error_and_closed():
    async def scenario():
        async with guarded(hello_timeout_s=0.3) as (server, port):
            url = f"opc.tcp://127.0.0.1:{port}"
            cases = {
                "garbage": (b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n", "BadTcpMessageTypeInvalid"),
                "tls": (bytes.fromhex("160301020001"), "BadTcpMessageTypeInvalid"),
                "truncated hello": (hello_frame(url)[:20], "BadTimeout"),
                "silence": (b"", "BadTimeout"),
                "1-byte buffer": (hello_frame(url, receive_buffer=1), "BadTcpNotEnoughResources"),
                "huge hello": (b"HELF" + struct.pack("<I", 10**6), "BadTcpMessageTooLarge"),
                "bad url": (hello_frame(url)[:-3] + b"\xff\xfe\xfd", "BadTcpEndpointUrlInvalid"),
                "policy not offered": (hello_frame(url) + open_channel_frame(
                    "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256"), "BadSecurityPolicyRejected"),
                "second hello": (hello_frame(url) * 2, "BadTcpMessageTypeInvalid"),
            }
            results = dict(zip(cases, await asyncio.gather(*(exchange(port, payload) for payload, _ in
                                                             cases.values()))))
            for name, (frames, closed, _) in results.items():
                errors = [status for kind, status in frames if kind == "ERR"]
                assert closed and len(errors) == 1 and errors[0][0] == cases[name][1], (name, frames)
                assert errors[0][1], name  # the reason in words
            assert server.stats.hello_timeouts == 2 and server.stats.frames_refused == 7
            # a good Hello is acknowledged and the connection stays open
            frames, closed, _ = await exchange(port, hello_frame(url), wait=0.5)
            assert frames == [("ACK", None)] and not closed
            async with Client(url, timeout=5) as client:  # and a real client is served as before
                assert await client.nodes.server_state.read_value() == ua.ServerState.Running

    asyncio.run(scenario())


def test_connections_and_sessions_are_capped_with_a_clear_refusal():
    async def scenario():
        async with guarded(max_connections=3, max_sessions=1) as (server, port):
            url = f"opc.tcp://127.0.0.1:{port}"
            async with Client(url, timeout=5) as first:
                with pytest.raises(ua.uaerrors.BadTooManySessions):
                    async with Client(url, timeout=5):
                        pass
                held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]  # 3 with `first`
                frames, closed, _ = await exchange(port, hello_frame(url))
                assert closed and frames == [("ERR", ("BadMaxConnectionsReached",
                                                      "the server is at its limit of 3 connections"))]
                for _, writer in held:
                    writer.close()
                await asyncio.sleep(0.2)
                assert await first.nodes.server_state.read_value() == ua.ServerState.Running
            async with Client(url, timeout=5) as again:  # the session's slot is free once it closed
                assert await again.nodes.server_state.read_value() == ua.ServerState.Running
            assert (server.stats.connections_refused, server.stats.sessions_refused) == (1, 1)
            assert server.stats.sessions_created == 2 and server.stats.open_sessions == 0

    asyncio.run(scenario())


def test_a_mode_the_server_does_not_offer_is_refused_at_once(tmp_path):
    """A client that asks for Sign where only SignAndEncrypt is offered gets an answer, not silence."""
    from asyncua.crypto import cert_gen
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = cert_gen.generate_private_key()
    uri = "urn:plc-anna:test-client"
    cert = cert_gen.generate_self_signed_app_certificate(key, uri, {}, [x509.UniformResourceIdentifier(uri)],
                                                         [ExtendedKeyUsageOID.CLIENT_AUTH], days=30)
    (tmp_path / "c.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (tmp_path / "c.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
    skey = cert_gen.generate_private_key()
    scert = cert_gen.generate_self_signed_app_certificate(skey, "server", {}, [
        x509.UniformResourceIdentifier("urn:freeopcua:python:server")], [ExtendedKeyUsageOID.SERVER_AUTH], days=30)
    (tmp_path / "s.der").write_bytes(scert.public_bytes(serialization.Encoding.DER))
    (tmp_path / "s.pem").write_bytes(cert_gen.dump_private_key_as_pem(skey))

    async def scenario():
        async with guarded(policies=[ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt],
                           pair=(tmp_path / "s.der", tmp_path / "s.pem")) as (server, port):
            client = Client(f"opc.tcp://127.0.0.1:{port}", timeout=20)
            client.application_uri = uri
            await client.set_security(SecurityPolicyBasic256Sha256, str(tmp_path / "c.der"), str(tmp_path / "c.pem"),
                                      server_certificate=str(tmp_path / "s.der"), mode=ua.MessageSecurityMode.Sign)
            start = asyncio.get_running_loop().time()
            with pytest.raises(ua.UaError) as refused:
                await client.connect()
            assert "BadSecurityPolicyRejected" in f"{refused.value!r} {refused.value}"
            assert asyncio.get_running_loop().time() - start < 10  # the client's own timeout is 20 s
            with contextlib.suppress(Exception):
                await client.disconnect()

    asyncio.run(scenario())


# ---------------------------------------------------------------- the fuzz harness against `plc-anna serve`

def test_storm_and_fuzz_leave_the_server_serving(tmp_path):
    """A garbage storm and fuzzed frames against a served rig in its own process (``plc-anna bench endpoint``
    runs the same at the issue's size). Sizes: PLC_ANNA_STORM_CONNECTIONS, PLC_ANNA_FUZZ_MESSAGES,
    PLC_ANNA_FUZZ_WARMUP, PLC_ANNA_FUZZ_SETTLE_S (docs/server.md#testing-the-endpoint)."""
    connections = int(os.environ.get("PLC_ANNA_STORM_CONNECTIONS", "100"))
    messages = int(os.environ.get("PLC_ANNA_FUZZ_MESSAGES", "300"))
    report = run_endpoint_bench(connections=connections, messages=messages, seed=1, directory=tmp_path,
                                settle_s=float(os.environ.get("PLC_ANNA_FUZZ_SETTLE_S", "0")),
                                warmup=int(os.environ.get("PLC_ANNA_FUZZ_WARMUP", "200")))
    storm, fuzz = report["storm"], report["fuzz"]
    assert report["server_exit_code"] is None  # alive
    # every garbage connection: an Error message, then closed by the server
    assert storm["answered_with_error"] == storm["closed_by_server"] == connections
    assert set(storm["errors"]) <= {"BadTcpMessageTypeInvalid", "BadTimeout", "BadMaxConnectionsReached"}
    first, after_storm, later = storm["heartbeat"]
    assert first < after_storm < later  # the scan went on through the storm
    # every fuzzed connection was answered (an Error and a close, or a valid exchange); none crashed the server
    assert fuzz["unanswered"] == 0 and fuzz["connections"] == messages
    assert fuzz["answered_with_error"] == fuzz["closed_by_server"]
    assert fuzz["heartbeat"][0] < fuzz["heartbeat"][1]
    assert fuzz["usage_after"]["fds"] <= fuzz["usage_before"]["fds"]
    assert fuzz["rss_growth"] <= 0.05
