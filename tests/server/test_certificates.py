"""The PKI folders as UaExpert's users know them: a refused client is kept in rejected/ and trusted from there.

The client is node-opcua, an independent implementation that makes and presents its own application
certificate as UaExpert does; the server is a running PlcAnnaServer that offers only Basic256Sha256
SignAndEncrypt.
"""

from __future__ import annotations

import asyncio
import json
import shutil

from plc_anna.server.app import PlcAnnaServer
from plc_anna.server.certificates import certificate_application_uri
from plc_anna.server.config import ServerConfig
from plc_anna.server.passwords import hash_password
from plc_anna.testing import free_port

NODE_CLIENT_URI = "urn:plc-anna:node-opcua-test"  # what tests/nodeopcua/client.js names itself


def test_a_refused_certificate_is_kept_in_rejected_then_trusted_without_a_restart(tmp_path, node_opcua, caplog):
    config = ServerConfig(
        config_dir=tmp_path / "server", endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc-anna",
        security={"policies": ["Basic256Sha256_SignAndEncrypt"],
                  "users": [{"name": "otto", "password_hash": hash_password("otto-pw", n=16, r=1, p=1),
                             "role": "operator"}]})
    plan = json.dumps({"endpoint": config.endpoint, "pki": str(tmp_path / "client-pki"),
                       "securityMode": "SignAndEncrypt", "securityPolicy": "Basic256Sha256", "user": "otto",
                       "password": "otto-pw", "read": ["nsu=urn:plc-anna:ua;s=AnalogNetwork.Task"]})
    rejected, trusted = config.security.rejected_dir, config.security.trust_dir

    async def scenario():
        async with PlcAnnaServer(config):
            first = await node_opcua.arun("client.js", plan)
            assert not first["connected"] and "BadCertificateUntrusted" in first["error"], first
            kept = sorted(rejected.glob("*.der"))
            assert len(kept) == 1 and certificate_application_uri(kept[0]) == NODE_CLIENT_URI
            assert str(kept[0]) in caplog.text  # the log names the file
            again = await node_opcua.arun("client.js", plan)  # refused again: the same file, not a second one
            assert not again["connected"] and sorted(rejected.glob("*.der")) == kept
            shutil.move(kept[0], trusted / kept[0].name)  # what the user does; the server keeps running
            trusted_now = await node_opcua.arun("client.js", plan)
            assert trusted_now["connected"], trusted_now
            assert trusted_now["values"]["nsu=urn:plc-anna:ua;s=AnalogNetwork.Task"] == {
                "status": "Good", "value": "classification"}

    asyncio.run(asyncio.wait_for(scenario(), 180))
