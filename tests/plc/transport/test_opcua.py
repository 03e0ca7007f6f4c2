"""The OPC UA transport against a real asyncua server on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

from plc_anna.contract.tagmap import PlcSettings, Tag
from plc_anna.plc.transport import open_transport
from plc_anna.plc.transport.base import (AuthenticationFailed, CertificateRejected, TagError, Unreachable,
                                         WriteRefused)
from plc_anna.plc.transport.opcua import OpcUaTransport
from plc_anna.plc.transport.opcua_browse import browse_variables, discover_endpoints
from plc_anna.testing import free_port

URI = "urn:plc-anna:test-plc"
USER, PASSWORD = "engineer", "secret"
#: name -> (initial value, variant type, writable)
VARIABLES = {
    "GainSet": ([1.0, 1.0, 1.0], ua.VariantType.Float, True),
    "OffsetSet": ([0.0, 0.0, 0.0], ua.VariantType.Double, True),
    "CommitCounter": (0, ua.VariantType.UInt32, True),
    "Heartbeat": (0, ua.VariantType.UInt16, True),
    "Status": (3, ua.VariantType.Int32, False),
    "Raw": ([0, 0, 0, 0], ua.VariantType.Int16, True),
    "Fault": (False, ua.VariantType.Boolean, True),
    "Flags": ([False, False], ua.VariantType.Boolean, True),
    "LockedGain": ([1.0, 1.0, 1.0], ua.VariantType.Float, False),
}


class Users(UserManager):
    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is None or (username, password) == (USER, PASSWORD):
            return User(role=UserRole.User)
        return None


async def reject_intruders(certificate, application_description):
    if "intruder" in certificate.subject.rfc4514_string():
        raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)


async def certificate(directory: Path, name: str, server: bool = False) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.der", directory / f"{name}.pem"
    use = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    await setup_self_signed_certificate(key, cert, f"urn:plc-anna:{name}", socket.gethostname(), [use],
                                        {"commonName": name})
    return cert, key


async def build_server(port: int, directory: Path | None = None) -> tuple[Server, int]:
    """A PLC-like server: object Line1 with VARIABLES, a user manager; Basic256Sha256 too if ``directory``."""
    server = Server(user_manager=Users())
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/plc")
    if directory is None:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    else:
        cert, key = await certificate(directory, "server", server=True)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity,
                                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        server.set_certificate_validator(reject_intruders)
    idx = await server.register_namespace(URI)
    line = await server.nodes.objects.add_object(ua.NodeId("Line1", idx), "Line1")
    for name, (value, variant_type, writable) in VARIABLES.items():
        node = await line.add_variable(ua.NodeId(f"Line1.{name}", idx), name, ua.Variant(value, variant_type))
        if writable:
            await node.set_writable()
    offset = server.get_node(ua.NodeId("Line1.OffsetSet", idx))
    await offset.write_value_rank(1)
    await offset.write_array_dimensions([3])
    return server, idx


class ServerThread:
    """One server for the module, on its own thread and event loop (asyncua's init takes a second)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server, self.idx = self.run(self._start(), timeout=60)

    async def _start(self):
        server, idx = await build_server(self.port, self.directory)
        await server.start()
        return server, idx

    def run(self, coroutine, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/plc"

    def address(self, name: str) -> str:
        return f"ns={self.idx};s=Line1.{name}"

    def server_value(self, name: str) -> ua.Variant:
        node = self.server.get_node(ua.NodeId(f"Line1.{name}", self.idx))
        return self.run(node.read_data_value()).Value

    def settings(self, **changes) -> PlcSettings:
        return PlcSettings(**{"protocol": "opcua", "endpoint": self.endpoint, "timeout_s": 1.0, **changes})

    def stop(self) -> None:
        self.run(self.server.stop(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def plc(tmp_path_factory):
    running = ServerThread(tmp_path_factory.mktemp("opcua-plc"))
    yield running
    running.stop()


def run(coroutine, timeout: float = 20):
    async def main():
        async with asyncio.timeout(timeout):
            return await coroutine

    return asyncio.run(main())


def tag(plc: ServerThread, role: str, name: str, plc_type: str, length: int | None = None) -> Tag:
    return Tag(role=role, address=plc.address(name), plc_type=plc_type, length=length)


def count_requests(link: OpcUaTransport, kind: type) -> list:
    """Record the service requests of ``kind`` the transport sends from now on."""
    protocol = link._client.uaclient.protocol
    original = protocol.send_request
    sent = []

    async def recording(request, *args, **kwargs):
        if isinstance(request, kind):
            sent.append(request)
        return await original(request, *args, **kwargs)

    protocol.send_request = recording
    return sent


def test_round_trip_with_the_plc_types_variant_types(plc):
    tags = [tag(plc, "gain_set", "GainSet", "REAL", 3), tag(plc, "offset_set", "OffsetSet", "LREAL", 3),
            tag(plc, "commit_counter", "CommitCounter", "UDINT"), tag(plc, "heartbeat", "Heartbeat", "UINT"),
            tag(plc, "inputs", "Raw", "INT", 4), tag(plc, "fault", "Fault", "BOOL"),
            tag(plc, "trace_count", "Flags", "BOOL", 2)]
    values = [[0.5, 1.25, -2.0], [1e-3, np.pi, -1e300], 4294967295, 65535, [-32768, 0, 1, 32767], True,
              [True, False]]

    async def body():
        async with OpcUaTransport(plc.settings()) as link:
            writes = count_requests(link, ua.WriteRequest)
            await link.write(list(zip(tags, values)))
            assert len(writes) == 1 and len(writes[0].Parameters.NodesToWrite) == len(tags)
            reads = count_requests(link, ua.ReadRequest)
            back = await link.read(tags)
            assert len([r for r in reads if len(r.Parameters.NodesToRead) == len(tags)]) == 1
            return back

    back = run(body())
    for got, value in zip(back, values):
        np.testing.assert_array_equal(got, value)
    expected = {"GainSet": ua.VariantType.Float, "OffsetSet": ua.VariantType.Double,
                "CommitCounter": ua.VariantType.UInt32, "Heartbeat": ua.VariantType.UInt16,
                "Raw": ua.VariantType.Int16, "Fault": ua.VariantType.Boolean, "Flags": ua.VariantType.Boolean}
    for name, variant_type in expected.items():
        variant = plc.server_value(name)
        assert variant.VariantType == variant_type, name
    assert plc.server_value("GainSet").Value == [0.5, 1.25, -2.0]
    assert plc.server_value("CommitCounter").Value == 4294967295


def test_namespace_uri_addresses_resolve_at_connect(plc):
    async def body():
        async with OpcUaTransport(plc.settings()) as link:
            status = Tag(role="status", address=f"nsu={URI};s=Line1.Status", plc_type="DINT")
            assert await link.read([status]) == [3]
            stranger = Tag(role="status", address="nsu=urn:nobody;s=Line1.Status", plc_type="DINT")
            with pytest.raises(TagError, match=r"tag status: the PLC has no namespace 'urn:nobody'; its "
                                               r"namespaces: .*urn:plc-anna:test-plc"):
                await link.read([stranger])

    run(body())


def test_refused_and_missing_tags_are_named(plc):
    async def body():
        async with OpcUaTransport(plc.settings()) as link:
            locked = tag(plc, "gain_set", "LockedGain", "REAL", 3)
            with pytest.raises(WriteRefused, match=r"refused the write of tag gain_set \(ns=\d+;s=Line1.LockedGain"
                                                   r"\): Bad(UserAccessDenied|NotWritable)"):
                await link.write([(locked, [1, 2, 3])])
            missing = tag(plc, "status", "Missing", "DINT")
            with pytest.raises(TagError, match=r"cannot read tag status \(ns=\d+;s=Line1.Missing\): BadNodeIdUnknown"
                                               r" \(no such node on the PLC\)"):
                await link.read([tag(plc, "fault", "Fault", "BOOL"), missing])
            with pytest.raises(TagError, match="the PLC sent Float, the tag map says LREAL"):
                await link.read([tag(plc, "gain_set", "GainSet", "LREAL", 3)])
            with pytest.raises(TagError, match="BadTypeMismatch"):
                await link.write([(tag(plc, "gain_set", "GainSet", "LREAL", 3), [1, 2, 3])])
            assert link.connected  # refusals are answers: the session stays

    run(body())


def test_user_and_password(plc, monkeypatch):
    monkeypatch.setenv("PLC_ANNA_TEST_PASSWORD", PASSWORD)

    async def body():
        good = OpcUaTransport(plc.settings(user=USER, password_env="PLC_ANNA_TEST_PASSWORD"))
        async with good:
            assert await good.read([tag(plc, "status", "Status", "DINT")]) == [3]
        monkeypatch.setenv("PLC_ANNA_TEST_PASSWORD", "wrong")
        bad = OpcUaTransport(plc.settings(user=USER, password_env="PLC_ANNA_TEST_PASSWORD"))
        with pytest.raises(AuthenticationFailed, match=r"opc\.tcp://127\.0\.0\.1:\d+/plc: the PLC refused user "
                                                       r"'engineer': wrong user name or password"):
            await bad.connect()
        assert not bad.connected
        assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running after the failed connect

    run(body())


def test_certificates(plc):
    async def body():
        trusted = await certificate(plc.directory, "plc-anna")
        intruder = await certificate(plc.directory, "intruder")
        secure = {"security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt"}
        link = OpcUaTransport(plc.settings(certificate=str(trusted[0]), private_key=str(trusted[1]), **secure))
        async with link:
            assert link._client.security_policy.Mode == ua.MessageSecurityMode.SignAndEncrypt
            assert await link.read([tag(plc, "status", "Status", "DINT")]) == [3]
        link = OpcUaTransport(plc.settings(certificate=str(intruder[0]), private_key=str(intruder[1]), **secure))
        with pytest.raises(CertificateRejected, match="BadCertificateUntrusted"):
            await link.connect()
        link = OpcUaTransport(plc.settings(certificate=str(trusted[0]), private_key="/nonexistent/key.pem",
                                           **secure))
        with pytest.raises(CertificateRejected, match="plc.private_key /nonexistent/key.pem is not a readable file"):
            await link.connect()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(body())
    with pytest.raises(ValueError, match="security_policy must be one of"):
        OpcUaTransport(plc.settings(security_policy="Basic128Rsa15", security_mode="Sign"))


def test_describe_reports_type_length_and_write_access(plc):
    tags = [tag(plc, "gain_set", "GainSet", "REAL", 3), tag(plc, "offset_set", "GainSet", "LREAL", 3),
            tag(plc, "raw_outputs", "GainSet", "REAL", 4), tag(plc, "gain_set", "LockedGain", "REAL", 3),
            tag(plc, "applied_gain", "LockedGain", "REAL", 3), tag(plc, "status", "Missing", "DINT"),
            Tag(role="fault", address="nsu=urn:nobody;s=x", plc_type="BOOL"),
            tag(plc, "offset_set", "OffsetSet", "LREAL", 3), tag(plc, "status", "Status", "DINT"),
            tag(plc, "heartbeat", "Status", "DINT"), tag(plc, "fault", "Line1", "BOOL")]
    tags[-1] = Tag(role="fault", address=f"ns={plc.idx};s=Line1", plc_type="BOOL")

    async def body():
        async with OpcUaTransport(plc.settings()) as link:
            return await link.describe(tags)

    infos = run(body())
    ok = infos[0]
    assert (ok.exists, ok.plc_type, ok.length, ok.writable, ok.problem) == (True, "REAL", 3, True, None)
    assert infos[1].problem == "the PLC's data type is REAL, the tag map says LREAL"
    assert infos[2].problem == "the PLC holds an array of 3, the tag map says an array of 4"
    assert infos[3].writable is False
    assert infos[3].problem == "plc-anna writes this tag, but the PLC gives the anonymous session no write access"
    assert infos[4].writable is False and infos[4].problem is None  # plc-anna only reads applied_gain
    assert not infos[5].exists and "BadNodeIdUnknown" in infos[5].problem
    assert not infos[6].exists and "no namespace 'urn:nobody'" in infos[6].problem
    assert (infos[7].plc_type, infos[7].length, infos[7].problem) == ("LREAL", 3, None)  # ArrayDimensions set
    assert (infos[8].plc_type, infos[8].length, infos[8].writable, infos[8].problem) == ("DINT", None, False, None)
    assert "no write access" in infos[9].problem
    assert infos[10].exists and "not a variable" in infos[10].problem


def test_discover_endpoints(plc):
    endpoints = run(discover_endpoints(plc.endpoint, timeout_s=1.0))
    offered = {(e["security_policy"], e["security_mode"]) for e in endpoints}
    assert offered == {("None", "None"), ("Basic256Sha256", "SignAndEncrypt")}
    assert all(e["url"].startswith("opc.tcp://") for e in endpoints)
    assert {"Anonymous", "UserName"} <= set(endpoints[0]["user_tokens"])
    with pytest.raises(Unreachable, match=r"opc\.tcp://127\.0\.0\.1:\d+: cannot connect: connection refused"):
        run(discover_endpoints(f"opc.tcp://127.0.0.1:{free_port()}", timeout_s=0.5))


def test_browse_variables(plc):
    async def body():
        async with OpcUaTransport(plc.settings()) as link:
            everything = await browse_variables(link)
            gains = await browse_variables(link, pattern="GAIN")
            below = await browse_variables(link, root=f"nsu={URI};s=Line1", pattern="status")
            assert len(await browse_variables(link, max_nodes=3)) == 1  # Objects, Line1 and one variable
            return everything, gains, below

    everything, gains, below = run(body())
    assert {v["browse_path"] for v in everything} == {f"Objects/Line1/{name}" for name in VARIABLES}
    assert [v["browse_path"] for v in gains] == ["Objects/Line1/GainSet", "Objects/Line1/LockedGain"]
    gain, locked = gains
    assert gain == {"address": plc.address("GainSet"), "browse_path": "Objects/Line1/GainSet", "plc_type": "REAL",
                    "data_type": "Float", "length": 3, "writable": True}
    assert locked["writable"] is False
    assert below == [{"address": plc.address("Status"), "browse_path": "Line1/Status", "plc_type": "DINT",
                      "data_type": "Int32", "length": None, "writable": False}]


def test_unreachable_port_fails_fast():
    async def body():
        link = open_transport(PlcSettings(protocol="opcua", endpoint=f"opc.tcp://127.0.0.1:{free_port()}",
                                          timeout_s=0.5))
        started = time.monotonic()
        with pytest.raises(Unreachable, match=r"opc\.tcp://127\.0\.0\.1:\d+: cannot connect: connection refused"):
            await link.connect()
        assert time.monotonic() - started < 1.5
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(body())


def test_a_silent_server_times_out():
    async def body():
        hung_up = asyncio.Event()

        async def silent(reader, writer):  # reads what the client sends, never answers
            while await reader.read(1000):
                pass
            writer.close()
            hung_up.set()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            link = OpcUaTransport(PlcSettings(protocol="opcua", endpoint=f"opc.tcp://127.0.0.1:{port}",
                                              timeout_s=0.5))
            started = time.monotonic()
            with pytest.raises(Unreachable, match="cannot connect: no answer within 0.5 s"):
                await link.connect()
            assert time.monotonic() - started < 2
            await asyncio.wait_for(hung_up.wait(), 1)  # the transport closed its socket
        finally:
            server.close()
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(body())


def test_a_stopped_server_makes_the_link_unreachable():
    async def body():
        server, idx = await build_server(free_port())
        await server.start()
        try:
            link = OpcUaTransport(PlcSettings(protocol="opcua", endpoint=server.endpoint.geturl(), timeout_s=0.5))
            await link.connect()
            status = Tag(role="status", address=f"ns={idx};s=Line1.Status", plc_type="DINT")
            assert await link.read([status]) == [3]
        finally:
            await server.stop()
        started = time.monotonic()
        with pytest.raises(Unreachable, match="read failed: the connection was lost"):
            await link.read([status])
        assert not link.connected
        with pytest.raises(Unreachable, match="connection refused"):
            await link.connect()
        await link.close()
        assert time.monotonic() - started < 2
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(body())
