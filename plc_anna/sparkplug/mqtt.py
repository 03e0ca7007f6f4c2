"""The MQTT session both sides use: where the broker is, how to log in, TLS, and errors in one line.

The edge node and the fleet host connect with aiomqtt (asyncio, over
paho-mqtt). :func:`connect_error` turns what a failed connection raises
(refused TCP, a refused login, a TLS handshake that failed) into one line
naming the broker, which the caller logs before it retries.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from plc_anna.sparkplug.config import check_broker_url

#: CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3), as a person reads them.
_CONNACK = {1: "the broker does not speak this MQTT version", 2: "the client id was rejected",
            3: "the broker is unavailable", 4: "bad user name or password",
            5: "not authorized (wrong user name or password, or anonymous login refused)"}


@dataclass(frozen=True)
class BrokerSettings:
    """How to reach a broker: its URL, the login, the TLS files, the keepalive."""

    url: str
    username: str = ""
    password: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    keepalive_s: int = 10

    def __post_init__(self) -> None:
        check_broker_url(self.url)

    @property
    def host(self) -> str:
        return check_broker_url(self.url)[0]

    @property
    def port(self) -> int:
        return check_broker_url(self.url)[1]

    @property
    def tls(self) -> bool:
        return check_broker_url(self.url)[2]

    def tls_context(self) -> ssl.SSLContext | None:
        """The client's TLS context for an ``mqtts://`` broker (None for ``mqtt://``)."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(self.tls_ca) if self.tls_ca else None)
        if self.tls_cert:
            context.load_cert_chain(str(self.tls_cert), str(self.tls_key) if self.tls_key else None)
        return context

    def client(self, identifier: str, will: aiomqtt.Will | None = None, clean_session: bool = True,
               timeout_s: float = 4.0) -> aiomqtt.Client:
        """An aiomqtt client of this broker (use it as ``async with``).

        ``timeout_s`` bounds the wait for CONNACK and SUBACK: a connection attempt that stalls (a broker
        that accepted the socket but never answered) is given up and retried rather than waited on.
        """
        return aiomqtt.Client(self.host, self.port, username=self.username or None, password=self.password,
                              identifier=identifier, will=will, clean_session=clean_session,
                              keepalive=self.keepalive_s, tls_context=self.tls_context(), timeout=timeout_s,
                              max_queued_outgoing_messages=None)


def connect_error(exc: BaseException, url: str) -> str:
    """One line saying why connecting to ``url`` failed."""
    rc = getattr(exc, "rc", None)
    if isinstance(exc, aiomqtt.MqttCodeError) and isinstance(rc, int) and rc in _CONNACK:
        return f"the MQTT broker {url} refused the connection: {_CONNACK[rc]}"
    text = str(exc) or type(exc).__name__
    if "SSL" in text or "certificate" in text.lower() or isinstance(exc, ssl.SSLError):
        return f"TLS with the MQTT broker {url} failed: {text}"
    if "refused" in text.lower() or "Errno" in text or "timed out" in text.lower():
        return f"cannot reach the MQTT broker {url}: {text}"
    return f"lost or failed connection to the MQTT broker {url}: {text}"
