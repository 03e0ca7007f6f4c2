"""PLC transports: one interface, one backend per protocol.

Backends are registered by name in :data:`TRANSPORTS` and imported lazily, so
a Modbus link never imports asyncua and the other way round. The base class
:class:`~plc_anna.plc.transport.base.Transport` owns the public methods and
their validation; a backend fills the ``_hook`` methods.

Examples
--------
>>> from plc_anna.contract.tagmap import PlcSettings
>>> open_transport(PlcSettings(protocol="profinet", endpoint="x://plc"))
Traceback (most recent call last):
...
ValueError: unknown PLC protocol 'profinet'; valid protocols: opcua, modbus
"""

from __future__ import annotations

from plc_anna.contract.tagmap import PlcSettings
from plc_anna.plc.transport.base import (AuthenticationFailed, CertificateRejected, LinkError, TagError, TagInfo,
                                         Transport, Unreachable, WriteRefused)
from plc_anna.registry import load_class

#: protocol name -> (module, class)
TRANSPORTS: dict[str, tuple[str, str]] = {
    "opcua": ("plc_anna.plc.transport.opcua", "OpcUaTransport"),
    "modbus": ("plc_anna.plc.transport.modbus", "ModbusTransport"),
}


def transport_class(protocol: str) -> type[Transport]:
    """Import and return the transport registered as ``protocol``."""
    return load_class(TRANSPORTS, protocol, "PLC protocol", "protocols")


def open_transport(settings: PlcSettings) -> Transport:
    """A (not yet connected) transport for ``settings.protocol``."""
    return transport_class(settings.protocol)(settings)


__all__ = ["TRANSPORTS", "AuthenticationFailed", "CertificateRejected", "LinkError", "TagError", "TagInfo",
           "Transport", "Unreachable", "WriteRefused", "open_transport", "transport_class"]
