"""Who the server says it is: ApplicationUri, BuildInfo and ServerCapabilities.

An integrator's tools read these before anything else: the ApplicationUri
names this instance (and must match its certificate), BuildInfo the product
and version, ServerCapabilities the profiles it implements and the limits it
keeps. asyncua's defaults ("FreeOpcUa Python Server", version "1.0pre", empty
capabilities) say nothing true about plc-anna.

- :func:`default_application_uri` derives an instance's URI from the host
  name and the endpoint's port, so two servers never share one;
  :func:`application_uri` is the one a server runs with (its certificate's).
- :func:`build_info` reads the product's version and build date from the
  installed package.
- :func:`publish_identity` writes BuildInfo and ServerCapabilities into a
  started or initialised asyncua server.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import plc_anna
from plc_anna.server.certificates import certificate_application_uri

if TYPE_CHECKING:
    from asyncua import Server

    from plc_anna.server.config import ServerConfig

logger = logging.getLogger(__name__)

PRODUCT_NAME = "plc-anna OPC UA server"
PRODUCT_URI = "urn:plc-anna"
MANUFACTURER = "plc-anna"

#: What the server implements, as OPC UA profile and facet URIs (OPC 10000-7). Built to these and
#: tested against asyncua and node-opcua clients; not certified by the OPC Foundation's test tool.
SERVER_PROFILES = (
    "http://opcfoundation.org/UA-Profile/Server/StandardEventSubscription",
    "http://opcfoundation.org/UA-Profile/Server/DataAccess",
    "http://opcfoundation.org/UA-Profile/Server/Methods",
    "http://opcfoundation.org/UA-Profile/Server/HistoricalRawData",
    "http://opcfoundation.org/UA-Profile/Server/ACBaseCondition",
    "http://opcfoundation.org/UA-Profile/Server/ACAlarm",
    "http://opcfoundation.org/UA-Profile/Server/ACAckAlarm",
    "http://opcfoundation.org/UA-Profile/Server/ACAddressSpaceInstance",
    "http://opcfoundation.org/UA-Profile/Transport/uatcp-uasc-uabinary",
    "http://opcfoundation.org/UA-Profile/Security/UserToken/Server/UserNamePassword",
)


def default_application_uri(endpoint: str, hostname: str | None = None) -> str:
    """``urn:<host name>:plc-anna:<port>``: unique per machine and endpoint.

    Examples
    --------
    >>> default_application_uri("opc.tcp://0.0.0.0:4840/plc-anna", hostname="line3-ipc")
    'urn:line3-ipc:plc-anna:4840'
    """
    host = hostname or socket.gethostname() or "localhost"
    return f"urn:{host}:plc-anna:{urlsplit(endpoint).port}"


def application_uri(config: ServerConfig, cert_path: Path) -> str:
    """The ApplicationUri the server runs with: the one its certificate names.

    A configured ``application_uri`` must be the certificate's (ValueError
    otherwise: the certificate cannot change without every client trusting it
    anew). Without one, a certificate made before the URI was derived per
    instance keeps its URI, with a warning.
    """
    named = certificate_application_uri(cert_path)
    if config.application_uri:
        if named != config.application_uri:
            raise ValueError(f"application_uri is {config.application_uri!r} but the server certificate {cert_path} "
                             f"names {named!r}: set application_uri = {named!r}, or delete {cert_path.name} and "
                             f"its key to make a new pair (every client must then trust the new certificate)")
        return named
    derived = default_application_uri(config.endpoint)
    if named is None:
        raise ValueError(f"the server certificate {cert_path} names no ApplicationUri: delete it and its key to "
                         "make a new pair")
    if named != derived:
        logger.warning("the server certificate %s names ApplicationUri %s, not %s as derived from this host and "
                       "endpoint; the server keeps %s (set application_uri to silence this, or delete the pair to "
                       "make a new one)", cert_path, named, derived, named)
    return named


@dataclass(frozen=True)
class BuildInfo:
    """The fields of OPC UA's BuildInfo (Server.ServerStatus.BuildInfo)."""

    product_uri: str
    manufacturer_name: str
    product_name: str
    software_version: str
    build_number: str
    build_date: datetime


def build_info() -> BuildInfo:
    """plc-anna's BuildInfo: its version from the installed package, its build date from its files.

    The build date is the time the newest of the package's modules was
    written: when a wheel was installed, or a checkout last changed.
    """
    try:
        version = metadata.version("plc-anna")
    except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
        version = plc_anna.__version__
    package = Path(plc_anna.__file__).resolve().parent
    newest = max(path.stat().st_mtime for path in package.rglob("*.py"))
    return BuildInfo(product_uri=PRODUCT_URI, manufacturer_name=MANUFACTURER, product_name=PRODUCT_NAME,
                     software_version=version, build_number=version,
                     build_date=datetime.fromtimestamp(int(newest), UTC))


@dataclass(frozen=True)
class Capabilities:
    """The limits the server announces in ServerCapabilities (and keeps)."""

    max_sessions: int
    max_message_size: int
    """Largest request, in bytes: it bounds every array, string and byte string a request can carry."""
    min_sample_rate_ms: float
    """Values change once per scan: sampling faster shows nothing new."""
    max_history_values: int = 0
    """Values one HistoryRead returns at most (0: no limit)."""


async def publish_identity(server: Server, capabilities: Capabilities, info: BuildInfo | None = None) -> None:
    """Write BuildInfo and ServerCapabilities (profiles, locales, limits, history capabilities).

    Call it after ``server.init()``; asyncua writes its own BuildInfo when it
    starts, so a server that is not started yet gets this again from
    :func:`publish_identity` after ``start()`` (the server's start-up does both).
    """
    from asyncua import ua

    info = info or build_info()
    await server.set_build_info(info.product_uri, info.manufacturer_name, info.product_name, info.software_version,
                                info.build_number, info.build_date)
    ids = ua.ObjectIds
    u32, f64 = ua.VariantType.UInt32, ua.VariantType.Double
    bytes_per_double = 8
    values = {
        ids.Server_ServerCapabilities_ServerProfileArray: ua.Variant(list(SERVER_PROFILES), ua.VariantType.String),
        ids.Server_ServerCapabilities_LocaleIdArray: ua.Variant(["en"], ua.VariantType.String),
        ids.Server_ServerCapabilities_MinSupportedSampleRate: ua.Variant(float(capabilities.min_sample_rate_ms), f64),
        ids.Server_ServerCapabilities_MaxBrowseContinuationPoints: ua.Variant(0, ua.VariantType.UInt16),
        ids.Server_ServerCapabilities_MaxQueryContinuationPoints: ua.Variant(0, ua.VariantType.UInt16),
        ids.Server_ServerCapabilities_MaxHistoryContinuationPoints: ua.Variant(0, ua.VariantType.UInt16),
        ids.Server_ServerCapabilities_MaxArrayLength: ua.Variant(capabilities.max_message_size // bytes_per_double,
                                                                 u32),
        ids.Server_ServerCapabilities_MaxStringLength: ua.Variant(capabilities.max_message_size, u32),
        ids.Server_ServerCapabilities_MaxByteStringLength: ua.Variant(capabilities.max_message_size, u32),
        ids.Server_ServerCapabilities_MaxSessions: ua.Variant(capabilities.max_sessions, u32),
        ids.Server_ServerCapabilities_MaxSubscriptions: ua.Variant(server.iserver.max_subscriptions, u32),
        ids.Server_ServerCapabilities_MaxMonitoredItemsQueueSize: ua.Variant(
            server.iserver.max_monitored_item_queue_size, u32),
        ids.HistoryServerCapabilities_AccessHistoryDataCapability: ua.Variant(True, ua.VariantType.Boolean),
        ids.HistoryServerCapabilities_AccessHistoryEventsCapability: ua.Variant(False, ua.VariantType.Boolean),
        ids.HistoryServerCapabilities_MaxReturnDataValues: ua.Variant(capabilities.max_history_values, u32),
        ids.HistoryServerCapabilities_MaxReturnEventValues: ua.Variant(0, u32),
        ids.HistoryServerCapabilities_ServerTimestampSupported: ua.Variant(True, ua.VariantType.Boolean),
    }
    for name in ("InsertData", "ReplaceData", "UpdateData", "DeleteRaw", "DeleteAtTime", "InsertEvent",
                 "ReplaceEvent", "UpdateEvent", "DeleteEvent", "InsertAnnotation"):
        values[getattr(ids, f"HistoryServerCapabilities_{name}Capability")] = ua.Variant(False,
                                                                                         ua.VariantType.Boolean)
    for nodeid, value in values.items():
        await server.get_node(ua.NodeId(nodeid)).write_value(value)
