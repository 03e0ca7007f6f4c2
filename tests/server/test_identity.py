"""Who the server says it is (BuildInfo, ApplicationUri, ServerCapabilities) and its diagnostics, as a client reads them."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from importlib import metadata

import pytest
from asyncua import ua
from cryptography import x509

from plc_anna.server.app import PlcAnnaServer
from plc_anna.server.certificates import CERT_FILE, OWN_DIR, certificate_application_uri, ensure_server_certificate
from plc_anna.server.config import ServerConfig
from plc_anna.server.identity import SERVER_PROFILES, build_info, default_application_uri
from plc_anna.testing import free_port, rig
from tests.server.support import wait_for

I = ua.ObjectIds


def test_build_info_comes_from_the_package():
    info = build_info()
    assert info.software_version == metadata.version("plc-anna") == info.build_number
    assert info.product_name == "plc-anna OPC UA server" and info.manufacturer_name == "plc-anna"
    assert datetime(2020, 1, 1, tzinfo=UTC) < info.build_date <= datetime.now(UTC) + timedelta(minutes=1)


def test_the_server_says_who_it_is_and_counts_what_it_serves(tmp_path):
    async def scenario():
        async with rig(tmp_path, users={"vera": "viewer"}, security={"max_sessions": 7}) as r:
            port = int(r.endpoint.split(":")[2].split("/")[0])
            uri = f"urn:{socket.gethostname()}:plc-anna:{port}"
            async with r.client() as client:
                build = await client.get_node(I.Server_ServerStatus_BuildInfo).read_value()
                assert (build.ProductName, build.ProductUri, build.ManufacturerName) == (
                    "plc-anna OPC UA server", "urn:plc-anna", "plc-anna")
                assert build.SoftwareVersion == metadata.version("plc-anna") != "1.0pre"
                endpoints = await client.get_endpoints()
                assert {e.Server.ApplicationUri for e in endpoints} == {uri}
                assert await client.get_node(I.Server_ServerArray).read_value() == [uri]
                assert certificate_application_uri(tmp_path / OWN_DIR / CERT_FILE) == uri
                caps = {name: await client.get_node(getattr(I, f"Server_ServerCapabilities_{name}")).read_value()
                        for name in ("ServerProfileArray", "MaxArrayLength", "MaxStringLength", "MaxSessions",
                                     "MinSupportedSampleRate", "LocaleIdArray")}
                assert caps["ServerProfileArray"] == list(SERVER_PROFILES)
                assert caps["MaxSessions"] == 7 and caps["MaxArrayLength"] >= 1024 and caps["MaxStringLength"] > 0
                assert caps["MinSupportedSampleRate"] == 20.0 and caps["LocaleIdArray"] == ["en"]
                assert await client.get_node(I.HistoryServerCapabilities_AccessHistoryDataCapability).read_value()
                # diagnostics are on and count: this session, then a viewer's refused write
                assert await client.get_node(I.Server_ServerDiagnostics_EnabledFlag).read_value() is True
                summary = I.Server_ServerDiagnostics_ServerDiagnosticsSummary
                current = client.get_node(getattr(I, "Server_ServerDiagnostics_ServerDiagnosticsSummary_"
                                                     "CurrentSessionCount"))
                assert await wait_for(lambda: _at_least(current, 1))
                async with r.client("vera") as viewer:
                    with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                        await viewer.get_node(r.nodeid("Compensator.ScanPeriod")).write_value(
                            ua.Variant(30.0, ua.VariantType.Double))
                    subscription = await viewer.create_subscription(100, None)
                    rejected = client.get_node(getattr(I, "Server_ServerDiagnostics_ServerDiagnosticsSummary_"
                                                          "SecurityRejectedRequestsCount"))
                    assert await wait_for(lambda: _at_least(rejected, 1))
                    assert await wait_for(lambda: _at_least(current, 2))
                    value = await client.get_node(summary).read_value()
                    assert value.CurrentSubscriptionCount >= 1 and value.CumulatedSubscriptionCount >= 1
                    assert value.CumulatedSessionCount >= 2 and value.RejectedRequestsCount >= 1
                    await subscription.delete()
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    async with r.client("vera", password="wrong"):
                        pass
                logins = client.get_node(getattr(I, "Server_ServerDiagnostics_ServerDiagnosticsSummary_"
                                                    "RejectedSessionCount"))
                assert await wait_for(lambda: _at_least(logins, 1))

    asyncio.run(asyncio.wait_for(scenario(), 90))


async def _at_least(node, n):
    return await node.read_value() >= n


def _config(tmp_path, **keys) -> ServerConfig:
    return ServerConfig(config_dir=tmp_path, endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc-anna",
                        security={"policies": ["None"], "allow_anonymous": True}, **keys)


def test_a_configured_application_uri_goes_into_the_certificate_and_must_stay_its(tmp_path):
    async def start(config):
        async with PlcAnnaServer(config) as server:
            return server.server.get_application_uri()

    config = _config(tmp_path, application_uri="urn:line3:anna")
    assert asyncio.run(start(config)) == "urn:line3:anna"
    assert certificate_application_uri(tmp_path / OWN_DIR / CERT_FILE) == "urn:line3:anna"
    before = (tmp_path / OWN_DIR / CERT_FILE).read_bytes()
    with pytest.raises(ValueError, match="application_uri is 'urn:line4:anna' but the server certificate"):
        asyncio.run(start(config.replace(application_uri="urn:line4:anna")))
    assert (tmp_path / OWN_DIR / CERT_FILE).read_bytes() == before  # never regenerated behind the user's back
    with pytest.raises(ValueError, match="application_uri"):
        _config(tmp_path, application_uri="not a uri")


def test_a_certificate_of_an_earlier_version_keeps_its_uri(tmp_path, caplog):
    ensure_server_certificate(tmp_path, application_uri="urn:plc-anna:server")  # what every server was named
    config = _config(tmp_path)

    async def start():
        async with PlcAnnaServer(config) as server:
            return server.server.get_application_uri()

    assert asyncio.run(start()) == "urn:plc-anna:server"
    assert default_application_uri(config.endpoint) in caplog.text and "delete the pair" in caplog.text
    x509.load_der_x509_certificate((tmp_path / OWN_DIR / CERT_FILE).read_bytes())  # untouched, still readable
