"""Server security: certificate, trust list, users, roles, and one real secured connection on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import re
import shutil
import socket
import stat
from pathlib import Path

import pytest
from asyncua import Client, Server, ua
from asyncua.common.utils import Buffer, ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.ua_binary import struct_to_binary
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from plc_anna.server.certificates import (
    CERT_FILE,
    KEY_FILE,
    OWN_DIR,
    TrustList,
    certificate_application_uri,
    ensure_server_certificate,
)
from plc_anna.server.config import (
    SecurityConfig,
    ServerConfig,
    UserEntry,
)
from plc_anna.server.passwords import hash_password
from plc_anna.server.security import (
    ACTIONS,
    PlcUser,
    Role,
    RoleRuleset,
    UserDirectory,
    configure_server_security,
    identity_tokens,
    is_loopback,
    may,
    role_of,
    security_policies,
    loopback_rig_access,
)

CLIENT_URI = "urn:plc-anna:test-client"
DER = serialization.Encoding.DER
# cheap hashes: the cost parameters do not matter to these tests
USERS = tuple(UserEntry(name, hash_password(f"{name}-pw", n=16, r=1, p=1), role)
              for name, role in (("vera", "viewer"), ("otto", "operator"), ("eve", "engineer")))


def app_certificate(uri: str, issuer: tuple | None = None):
    """(certificate, key) of a client application: self-signed, or signed by ``issuer`` = (ca_cert, ca_key)."""
    key = cert_gen.generate_private_key()
    names = [x509.UniformResourceIdentifier(uri)]
    if issuer is None:
        cert = cert_gen.generate_self_signed_app_certificate(key, uri, {}, names, [ExtendedKeyUsageOID.CLIENT_AUTH],
                                                             days=30)
    else:
        csr = cert_gen.generate_app_certificate_signing_request(key, uri, {}, names, [ExtendedKeyUsageOID.CLIENT_AUTH])
        cert = cert_gen.sign_certificate_request(csr, issuer[0], issuer[1], days=30)
    return cert, key


def save(directory: Path, stem: str, cert, key=None) -> tuple[Path, Path | None]:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{stem}.der"
    cert_path.write_bytes(cert.public_bytes(DER))
    key_path = None
    if key is not None:
        key_path = directory / f"{stem}.pem"
        key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path


@pytest.fixture(scope="module")
def clients():
    """Client certificates made once: a trusted one, a stranger, a CA and a certificate it issued."""
    ca_key = cert_gen.generate_private_key()
    # cryptography >= 51 refuses an empty SubjectAlternativeName, so the CA names itself by URI
    ca = cert_gen.generate_self_signed_app_certificate(
        ca_key, "plc-anna test CA", {}, [x509.UniformResourceIdentifier("urn:plc-anna:test-ca")], [], days=30)
    return {"trusted": app_certificate(CLIENT_URI), "stranger": app_certificate("urn:plc-anna:stranger"),
            "ca": (ca, ca_key), "issued": app_certificate("urn:plc-anna:issued", issuer=(ca, ca_key))}


@pytest.fixture(scope="module")
def server_pair(tmp_path_factory) -> Path:
    """A directory holding one generated server certificate and key, to copy from."""
    directory = tmp_path_factory.mktemp("pair")
    ensure_server_certificate(directory)
    return directory


def copy_pair(source: Path, target: Path) -> tuple[Path, Path]:
    """Copy the pair into ``target/own``, where the server keeps it."""
    (target / OWN_DIR).mkdir(parents=True)
    for name in (CERT_FILE, KEY_FILE):
        shutil.copy2(source / OWN_DIR / name, target / OWN_DIR / name)
    return target / OWN_DIR / CERT_FILE, target / OWN_DIR / KEY_FILE


# ---------------------------------------------------------------- server certificate

def test_the_server_certificate_is_generated_once_then_reused(tmp_path, caplog):
    config_dir = tmp_path / "new" / "dir"
    cert_path, key_path = ensure_server_certificate(config_dir, application_uri="urn:line3:plc-anna:4840")
    assert (cert_path, key_path) == (config_dir / OWN_DIR / CERT_FILE, config_dir / OWN_DIR / KEY_FILE)
    cert = x509.load_der_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert key.key_size == 2048 and cert.public_key() == key.public_key()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:line3:plc-anna:4840"]
    assert certificate_application_uri(cert_path) == "urn:line3:plc-anna:4840"
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=3600) < lifetime < datetime.timedelta(days=3700)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (cert_path, key_path)}

    assert ensure_server_certificate(config_dir) == (cert_path, key_path)
    assert ensure_server_certificate(config_dir, hostname="plc.example") == (cert_path, key_path)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (cert_path, key_path)} == before
    assert "does not name host plc.example" in caplog.text


def test_a_host_name_goes_into_the_certificate_as_dns_name(tmp_path):
    cert_path, _ = ensure_server_certificate(tmp_path, hostname="plc-line-3")
    san = x509.load_der_x509_certificate(cert_path.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName)[0] == "plc-line-3"
    assert set(san.get_values_for_type(x509.DNSName)) <= {"plc-line-3", socket.gethostname()}


@pytest.mark.parametrize("damaged", [KEY_FILE, CERT_FILE])
def test_a_corrupt_file_is_refused_and_left_alone(tmp_path, server_pair, damaged):
    copy_pair(server_pair, tmp_path / "cfg")
    path = tmp_path / "cfg" / OWN_DIR / damaged
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n")
    before = {p: p.read_bytes() for p in (tmp_path / "cfg" / OWN_DIR).iterdir()}
    with pytest.raises(ValueError) as info:
        ensure_server_certificate(tmp_path / "cfg")
    assert str(path) in str(info.value)
    assert {p: p.read_bytes() for p in (tmp_path / "cfg" / OWN_DIR).iterdir()} == before


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("missing", [KEY_FILE, CERT_FILE])
def test_half_a_pair_is_refused_not_regenerated(tmp_path, server_pair, missing, legacy):
    copy_pair(server_pair, tmp_path / "cfg")
    where = tmp_path / "cfg" / OWN_DIR
    if legacy:  # where an earlier version kept the pair: config_dir itself
        for name in (CERT_FILE, KEY_FILE):
            (where / name).rename(tmp_path / "cfg" / name)
        where = tmp_path / "cfg"
    (where / missing).unlink()
    with pytest.raises(ValueError, match=f"{missing} is missing"):
        ensure_server_certificate(tmp_path / "cfg")
    assert not (where / missing).exists()
    assert not (tmp_path / "cfg" / OWN_DIR / missing).exists()


def test_a_pair_in_config_dir_moves_into_own_once(tmp_path, server_pair):
    copy_pair(server_pair, tmp_path / "cfg")
    original = {name: (tmp_path / "cfg" / OWN_DIR / name).read_bytes() for name in (CERT_FILE, KEY_FILE)}
    for name in (CERT_FILE, KEY_FILE):
        (tmp_path / "cfg" / OWN_DIR / name).rename(tmp_path / "cfg" / name)
    cert_path, key_path = ensure_server_certificate(tmp_path / "cfg")
    assert {path.name: path.read_bytes() for path in (cert_path, key_path)} == original  # the same pair
    assert not (tmp_path / "cfg" / CERT_FILE).exists() and not (tmp_path / "cfg" / KEY_FILE).exists()


def test_a_certificate_of_another_key_is_refused(tmp_path, server_pair):
    _, key_path = copy_pair(server_pair, tmp_path / "cfg")
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(cert_gen.generate_private_key()))
    with pytest.raises(ValueError, match="does not belong to the key"):
        ensure_server_certificate(tmp_path / "cfg")


# ---------------------------------------------------------------- roles and users

def test_what_each_role_may_do():
    table = {role: {action for action in ACTIONS if may(role, action)} for role in Role}
    assert table == {
        Role.VIEWER: {"read"},
        Role.OPERATOR: {"read", "call_operation"},
        Role.ENGINEER: {"read", "call_operation", "write_configuration", "call_test_rig"},
    }
    assert may("operator", "call_operation") and not may("viewer", "call_operation")
    with pytest.raises(ValueError, match="unknown action"):
        may(Role.ENGINEER, "delete_everything")
    with pytest.raises(ValueError, match="unknown role"):
        may("admin", "read")


def test_the_roles_table_of_the_user_docs_is_may():
    text = (Path(__file__).resolve().parents[2] / "docs" / "server-config.md").read_text()
    for action in ACTIONS:
        row = re.search(rf"^\| `{action}` \|[^|]*\|(.*)\|$", text, flags=re.MULTILINE)
        assert row, action
        cells = [cell.strip() for cell in row.group(1).split("|")]
        assert cells == ["yes" if may(role, action) else "–" for role in Role], action


def test_users_of_the_configuration(clients):
    channel = clients["trusted"][0].public_bytes(DER)
    directory = UserDirectory(ServerConfig(config_dir=Path("/unused"), security=SecurityConfig(users=USERS)),
                              trust_list=None)
    for name, role, asyncua_role in (("vera", Role.VIEWER, UserRole.User), ("otto", Role.OPERATOR, UserRole.User),
                                     ("eve", Role.ENGINEER, UserRole.Admin)):
        user = directory.get_user(None, username=name, password=f"{name}-pw", certificate=channel)
        assert isinstance(user, PlcUser) and (user.name, user.plc_role, user.role) == (name, role, asyncua_role)
        assert role_of(user) is role
    assert directory.get_user(None, username="eve", password="vera-pw", certificate=channel) is None
    assert directory.get_user(None, username="eve", password=None, certificate=channel) is None
    assert directory.get_user(None, username="mallory", password="x", certificate=channel) is None
    assert directory.get_user(None, certificate=channel) is None  # anonymous is off by default
    assert role_of(object()) is None


def test_anonymous_sessions_and_unsecured_channels(clients, tmp_path):
    channel = clients["trusted"][0].public_bytes(DER)
    secure = UserDirectory(SecurityConfig(users=USERS, allow_anonymous=True))
    anonymous = secure.get_user(None, certificate=channel)
    assert (anonymous.plc_role, anonymous.role, anonymous.name) == (Role.VIEWER, UserRole.User, None)
    # no None policy: nothing is accepted on an unsecured channel (asyncua passes b"" there)
    assert secure.get_user(None, certificate=b"") is None
    assert secure.get_user(None, username="eve", password="eve-pw", certificate=None) is None

    demo = UserDirectory(SecurityConfig(users=USERS, allow_anonymous=True, policies=["None"]))
    assert demo.get_user(None, certificate=b"").plc_role is Role.VIEWER
    assert demo.get_user(None, username="eve", password="eve-pw", certificate=b"") is None
    insecure = UserDirectory(SecurityConfig(users=USERS, policies=["None"], allow_insecure_login=True))
    assert insecure.get_user(None, username="eve", password="eve-pw", certificate=b"").plc_role is Role.ENGINEER
    assert insecure.get_user(None, certificate=b"") is None  # still no anonymous

    trust = TrustList(tmp_path / "trusted")
    save(tmp_path / "trusted", "client", clients["trusted"][0])
    checked = UserDirectory(SecurityConfig(users=USERS), trust_list=trust)
    assert checked.get_user(None, username="eve", password="eve-pw", certificate=channel).plc_role is Role.ENGINEER
    stranger = clients["stranger"][0].public_bytes(DER)
    assert checked.get_user(None, username="eve", password="eve-pw", certificate=stranger) is None


def test_policies_and_identity_tokens(tmp_path):
    config = ServerConfig(config_dir=tmp_path)
    assert security_policies(config) == [
        ua.SecurityPolicyType.Basic256Sha256_Sign, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign, ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt]
    assert security_policies(SecurityConfig(policies=["None"])) == [ua.SecurityPolicyType.NoSecurity]
    assert identity_tokens(config) == [ua.UserNameIdentityToken]
    assert identity_tokens(SecurityConfig(allow_anonymous=True)) == [ua.AnonymousIdentityToken,
                                                                     ua.UserNameIdentityToken]


# ---------------------------------------------------------------- trust list

def test_the_trust_list(tmp_path, clients):
    trust_dir = tmp_path / "trusted"
    trust = TrustList(trust_dir)  # created empty
    assert trust_dir.is_dir() and trust.certificates == ()
    assert not trust.is_trusted(clients["trusted"][0])

    save(trust_dir, "client", clients["trusted"][0])
    (trust_dir / "ca.pem").write_bytes(clients["ca"][0].public_bytes(serialization.Encoding.PEM)
                                       + clients["stranger"][0].public_bytes(serialization.Encoding.PEM))
    (trust_dir / "README.txt").write_text("not a certificate, ignored")
    assert trust.is_trusted(clients["trusted"][0])  # re-read on change, no reload call needed
    assert trust.is_trusted(clients["trusted"][0].public_bytes(DER))
    assert trust.is_trusted(clients["issued"][0])  # issued by the trusted CA
    assert trust.is_trusted(clients["stranger"][0])  # second certificate of the PEM file
    assert len(trust.certificates) == 3

    (trust_dir / "ca.pem").unlink()
    assert not trust.is_trusted(clients["issued"][0]) and not trust.is_trusted(clients["stranger"][0])

    (trust_dir / "broken.der").write_bytes(b"\x30\x03garbage")
    assert trust.is_trusted(clients["trusted"][0])  # a bad file while running: the previous list stays
    with pytest.raises(ValueError) as info:
        TrustList(trust_dir)
    assert str(trust_dir / "broken.der") in str(info.value)
    with pytest.raises(ValueError, match="is not a directory"):
        TrustList(trust_dir / "client.der")


def test_the_trust_list_validates_for_asyncua(tmp_path, clients):
    save(tmp_path, "client", clients["trusted"][0])
    trust = TrustList(tmp_path)
    good = ua.ApplicationDescription(ApplicationUri=CLIENT_URI, ApplicationType=ua.ApplicationType.Client)
    asyncio.run(trust(clients["trusted"][0], good))
    for cert, uri, status in ((clients["stranger"][0], "urn:plc-anna:stranger", "BadCertificateUntrusted"),
                              (clients["trusted"][0], "urn:someone:else", "BadCertificateUriInvalid")):
        description = ua.ApplicationDescription(ApplicationUri=uri, ApplicationType=ua.ApplicationType.Client)
        with pytest.raises(ServiceError) as info:
            asyncio.run(trust(cert, description))
        assert ua.StatusCode(info.value.code).name == status


# ---------------------------------------------------------------- the ruleset

def request(params) -> Buffer:
    return Buffer(struct_to_binary(params))


def test_the_ruleset_decides_per_node_and_method():
    setpoint, measured, calibrate, age = (ua.NodeId(i, 2) for i in (1, 2, 3, 4))
    ruleset = RoleRuleset()
    ruleset.allow_write(setpoint)
    ruleset.allow_call(calibrate)
    ruleset.allow_call([age], "call_test_rig")
    viewer, operator, engineer = PlcUser(Role.VIEWER), PlcUser(Role.OPERATOR), PlcUser(Role.ENGINEER, "eve")
    write_id = ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)
    call_id = ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)
    read_id = ua.NodeId(ua.ObjectIds.ReadRequest_Encoding_DefaultBinary)

    def write(*nodes, attribute=ua.AttributeIds.Value):
        return request(ua.WriteParameters(NodesToWrite=[
            ua.WriteValue(NodeId=n, AttributeId=attribute, Value=ua.DataValue(ua.Variant(1.0))) for n in nodes]))

    def call(*methods):
        return request(ua.CallParameters(MethodsToCall=[
            ua.CallMethodRequest(ObjectId=ua.NodeId(9, 2), MethodId=m) for m in methods]))

    assert all(ruleset.check_validity(u, read_id, Buffer(b"")) for u in (viewer, operator, engineer))
    assert [ruleset.check_validity(u, write_id, write(setpoint)) for u in (viewer, operator, engineer)] == [
        False, False, True]
    assert not ruleset.check_validity(engineer, write_id, write(setpoint, measured))  # all items or nothing
    assert not ruleset.check_validity(engineer, write_id, write(setpoint, attribute=ua.AttributeIds.DisplayName))
    assert [ruleset.check_validity(u, call_id, call(calibrate)) for u in (viewer, operator, engineer)] == [
        False, True, True]
    assert [ruleset.check_validity(u, call_id, call(age)) for u in (viewer, operator, engineer)] == [
        False, False, True]
    assert not ruleset.check_validity(engineer, call_id, call(ua.NodeId(99, 2)))  # unregistered method
    add_nodes = ua.NodeId(ua.ObjectIds.AddNodesRequest_Encoding_DefaultBinary)
    assert not ruleset.check_validity(engineer, add_nodes, Buffer(b""))
    assert not ruleset.check_validity(engineer, write_id, Buffer(b"\x01"))  # undecodable
    assert not ruleset.check_validity(User(role=UserRole.Admin), read_id, Buffer(b""))  # not one of ours
    with pytest.raises(ValueError, match="unknown action"):
        ruleset.allow_call(calibrate, "calibrate")


# ---------------------------------------------------------------- end to end

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_secured_session_on_loopback(tmp_path, clients, monkeypatch):
    """A real asyncua server and clients: Basic256Sha256 SignAndEncrypt, trust list, users and roles."""
    config = ServerConfig(config_dir=tmp_path / "server", endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc-anna",
                          security={"policies": ["Basic256Sha256_SignAndEncrypt"], "users": USERS,
                                    "allow_anonymous": True})
    assert security_policies(config) == [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
    client_cert, client_key = save(tmp_path / "client", "client", *clients["trusted"])
    save(config.security.trust_dir, "client", clients["trusted"][0])
    stranger_cert, stranger_key = save(tmp_path / "stranger", "stranger", *clients["stranger"])
    calls = []

    async def scenario():
        server = Server()
        await server.init()
        server.set_endpoint(config.endpoint)
        ruleset = await configure_server_security(server, config)
        idx = await server.register_namespace("urn:plc-anna:test")
        thing = await server.nodes.objects.add_object(idx, "Thing")
        setpoint = await thing.add_variable(idx, "Setpoint", 1.5)
        other = await thing.add_variable(idx, "Other", 0.0)
        for node in (setpoint, other):
            await node.set_writable()

        async def calibrate(parent):
            calls.append(parent)
            return [ua.Variant(True, ua.VariantType.Boolean)]

        method = await thing.add_method(idx, "Calibrate", calibrate, [], [ua.VariantType.Boolean])
        ruleset.allow_write(setpoint)
        ruleset.allow_call(method)
        server_cert = config.config_dir / OWN_DIR / CERT_FILE

        async def secure_client(user, password, cert=client_cert, key=client_key, uri=CLIENT_URI):
            client = Client(config.endpoint, timeout=5)
            client.application_uri = uri
            await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key),
                                      server_certificate=str(server_cert), mode=ua.MessageSecurityMode.SignAndEncrypt)
            client.set_user(user)
            client.set_password(password)
            return client

        async def refused(client):
            try:
                await client.connect()
            except Exception as exc:  # noqa: BLE001 - the status is what we check
                return exc
            finally:
                with contextlib.suppress(Exception):
                    await client.disconnect()
            return None

        async with server:
            async with await secure_client("vera", "vera-pw") as client:
                assert await client.get_node(setpoint.nodeid).read_value() == 1.5
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await client.get_node(setpoint.nodeid).write_value(9.0)
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await client.get_node(thing.nodeid).call_method(method.nodeid)
            assert await setpoint.read_value() == 1.5 and calls == []

            async with await secure_client("otto", "otto-pw") as client:
                assert await client.get_node(thing.nodeid).call_method(method.nodeid) is True
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await client.get_node(setpoint.nodeid).write_value(9.0)
            assert len(calls) == 1 and await setpoint.read_value() == 1.5

            async with await secure_client("eve", "eve-pw") as client:
                await client.get_node(setpoint.nodeid).write_value(2.5)
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await client.get_node(other.nodeid).write_value(3.0)  # not a configuration node
            assert await setpoint.read_value() == 2.5 and await other.read_value() == 0.0

            assert isinstance(await refused(await secure_client("eve", "wrong")), ua.uaerrors.BadUserAccessDenied)
            assert isinstance(await refused(await secure_client("eve", "eve-pw", stranger_cert, stranger_key,
                                                                "urn:plc-anna:stranger")),
                              ua.uaerrors.BadCertificateUntrusted)
            # a client without security finds no endpoint for it ...
            plain = Client(config.endpoint, timeout=5)
            assert "No matching endpoints" in str(await refused(plain))
            # ... and one that ignores the endpoint list is refused by the server, even as anonymous viewer
            with monkeypatch.context() as patch:
                patch.setattr(Client, "find_endpoint", staticmethod(lambda endpoints, mode, uri: endpoints[0]))
                assert isinstance(await refused(Client(config.endpoint, timeout=5)), ua.uaerrors.BadUserAccessDenied)
            assert await setpoint.read_value() == 2.5

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


# ---------------------------------------------------------------- a test rig on loopback

def test_only_a_test_rig_on_loopback_offers_none_to_anonymous_viewers(tmp_path):
    base = ServerConfig(config_dir=tmp_path, endpoint="opc.tcp://127.0.0.1:4840/plc-anna")
    assert loopback_rig_access(base) == base  # production: as configured
    rig_config = loopback_rig_access(base.replace(test_rig=True))
    assert rig_config.security.policies[-1] == "None" and rig_config.security.allow_anonymous
    assert rig_config.security.policies[:-1] == base.security.policies and not rig_config.security.allow_insecure_login
    for host in ("0.0.0.0", "192.168.0.10", "plc-line3"):
        remote = base.replace(test_rig=True, endpoint=f"opc.tcp://{host}:4840/plc-anna")
        assert loopback_rig_access(remote) == remote
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("10.0.0.1")


def test_any_client_attaches_to_a_served_test_rig_without_a_pki(tmp_path, node_opcua):
    """`plc-anna serve --test-rig` on loopback, read by node-opcua anonymously on the None policy (the
    client presents its own certificate, as UaExpert does; on None it is not checked)."""
    from plc_anna.testing import serve_process

    with serve_process(tmp_path / "rig") as served:
        plan = {"endpoint": served.endpoint, "pki": str(tmp_path / "client-pki"),
                "read": ["nsu=urn:plc-anna:ua;s=AnalogNetwork.Layers.Layer0.DriftState.ValueAsText", "i=2261"]}
        result = node_opcua.run("client.js", json.dumps(plan))
    assert result["connected"], result
    values = result["values"]
    assert values["i=2261"] == {"status": "Good", "value": "plc-anna OPC UA server"}  # BuildInfo.ProductName
    assert values["nsu=urn:plc-anna:ua;s=AnalogNetwork.Layers.Layer0.DriftState.ValueAsText"]["status"] == "Good"
