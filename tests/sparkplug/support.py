"""Helpers of the Sparkplug and fleet tests: a broker per test, and an independent Sparkplug B decoder.

The payloads are decoded here with the Eclipse Tahu reference code as the
``sparkplug-b-packets`` package ships it (its generated ``sparkplug_b_pb2``
and its ``array_packer``), not with pysparkplug, which the product encodes
with; commands the tests send are encoded with it too.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import sparkplub_b_packets.core.array_packer as tahu_arrays
import sparkplub_b_packets.core.sparkplug_b_pb2 as tahu

from plc_anna.sparkplug.broker import LocalBroker

#: Sparkplug datatype codes (the specification's, written out here rather than taken from either package).
INT32, INT64, UINT32, UINT64, DOUBLE, BOOLEAN, STRING, DOUBLE_ARRAY = 3, 4, 7, 8, 10, 11, 12, 31


def run(scenario, timeout=120):
    return asyncio.run(asyncio.wait_for(scenario(), timeout=timeout))


def decode(payload: bytes, datatypes: dict[int, int] | None = None) -> dict[str, Any]:
    """A Sparkplug B protobuf payload as a plain dict, by the Tahu reference code.

    ``datatypes`` maps aliases to the datatypes a birth declared (data messages may leave them out).
    """
    message = tahu.Payload()
    message.ParseFromString(payload)
    metrics = []
    for metric in message.metrics:
        kind = metric.WhichOneof("value")
        value = None if metric.is_null or kind is None else getattr(metric, kind)
        datatype = metric.datatype or (datatypes or {}).get(metric.alias, 0)
        if datatype == DOUBLE_ARRAY and value is not None:
            value = list(tahu_arrays.convert_from_packed_double_array(value))
        metrics.append({"name": metric.name if metric.HasField("name") else None,
                        "alias": metric.alias if metric.HasField("alias") else None,
                        "datatype": datatype, "value": value, "historical": metric.is_historical,
                        "null": metric.is_null,
                        "timestamp": metric.timestamp if metric.HasField("timestamp") else None})
    return {"timestamp": message.timestamp if message.HasField("timestamp") else None,
            "seq": message.seq if message.HasField("seq") else None, "metrics": metrics}


def command(name: str, value: Any = True, alias: int | None = None) -> bytes:
    """An NCMD/DCMD payload with one boolean metric, encoded by the Tahu reference code."""
    message = tahu.Payload()
    message.timestamp = int(time.time() * 1000)
    metric = message.metrics.add()
    if name:
        metric.name = name
    if alias is not None:
        metric.alias = alias
    metric.timestamp = message.timestamp
    metric.datatype = BOOLEAN
    metric.boolean_value = value
    return message.SerializeToString()


@dataclass
class Received:
    topic: str
    payload: bytes
    at: float

    @property
    def kind(self) -> str:
        return self.topic.split("/")[2] if self.topic.count("/") >= 3 else self.topic

    def decoded(self, datatypes: dict[int, int] | None = None) -> dict[str, Any]:
        if self.topic.startswith("spBv1.0/STATE/"):
            return json.loads(self.payload)
        return decode(self.payload, datatypes)


@dataclass
class Recorder:
    """An MQTT client that keeps every message on ``spBv1.0/#`` (a test's eyes on the broker)."""

    broker: LocalBroker
    messages: list[Received] = field(default_factory=list)
    _task: asyncio.Task | None = None

    async def __aenter__(self) -> Recorder:
        ready = asyncio.Event()

        async def listen() -> None:
            while True:
                try:
                    async with aiomqtt.Client("127.0.0.1", self.broker.port, identifier="test-recorder",
                                              **_login(self.broker)) as client:
                        await client.subscribe("spBv1.0/#", qos=1)
                        ready.set()
                        async for message in client.messages:
                            self.messages.append(Received(str(message.topic), bytes(message.payload), time.monotonic()))
                except aiomqtt.MqttError:
                    await asyncio.sleep(0.2)

        self._task = asyncio.create_task(listen())
        await asyncio.wait_for(ready.wait(), 20)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    def of(self, kind: str, device: str | None = None) -> list[Received]:
        return [m for m in self.messages if m.kind == kind and (device is None or m.topic.endswith("/" + device))]

    async def wait(self, predicate, timeout: float = 20.0) -> bool:
        def holds() -> bool:
            try:
                return bool(predicate())
            except LookupError:  # what the predicate reads is not there yet
                return False

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if holds():
                return True
            await asyncio.sleep(0.02)
        return holds()


def _login(broker: LocalBroker) -> dict[str, str]:
    if not broker.users:
        return {}
    user, password = next(iter(broker.users.items()))
    return {"username": user, "password": password}


async def publish(broker: LocalBroker, topic: str, payload: bytes, qos: int = 1) -> None:
    """Publish one message as another client would."""
    async with aiomqtt.Client("127.0.0.1", broker.port, **_login(broker)) as client:
        await client.publish(topic, payload, qos=qos)


def datatypes(birth: dict[str, Any]) -> dict[int, int]:
    """Alias to datatype, as a birth declares them."""
    return {metric["alias"]: metric["datatype"] for metric in birth["metrics"]}


def by_name(birth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {metric["name"]: metric for metric in birth["metrics"]}


def make_tls(directory, name: str = "broker"):
    """A CA and a certificate for 127.0.0.1 signed by it (PEM files in ``directory``): a broker's TLS files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    from plc_anna.sparkplug.broker import TlsFiles

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject, issuer, key, signer, ca):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = certificate(ca_name, ca_name, ca_key, ca_key, True)
    cert = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, key, ca_key, False)
    paths = TlsFiles(directory / f"{name}-ca.pem", directory / f"{name}.pem", directory / f"{name}-key.pem")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return paths
