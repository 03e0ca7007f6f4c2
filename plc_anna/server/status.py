"""Read a running plc-anna server's state as a client would: what ``plc-anna status`` shows.

Works against any server that instantiates the model (it browses the
``Layers`` folder; it does not assume NodeIds), in one batched read per
network. A server of several networks has them in ``Objects/Networks``
(:func:`read_networks` reads each).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asyncua import Client, Node, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from plc_anna.drift.states import DriftState
from plc_anna.server.certificates import certificate_application_uri
from plc_anna.server.model import NAMESPACE_URI

LAYER_VALUES = ("DriftState", "LayerDistance", "DetectorStatistic", "DetectorThreshold", "Gain", "Offset",
                "SampleCount", "StateReason", "Coverage")
DIAGNOSTIC_VALUES = ("ScanPeriod", "LastCycleTime", "P99CycleTime", "MaxCycleTime", "DeadlineLateness", "Overruns")
LINK_VALUES = ("Protocol", "Endpoint", "Connected", "LastError", "CommitCounter", "Heartbeat")


@asynccontextmanager
async def connect(endpoint: str, user: str | None = None, password: str | None = None,
                  certificate: str | None = None, private_key: str | None = None,
                  server_certificate: str | None = None, timeout: float = 10) -> AsyncIterator[Client]:
    """A connected client: Basic256Sha256 SignAndEncrypt with a client certificate, else no security.

    Any client certificate will do: the client takes its ApplicationUri from it (the server checks that
    they match), so the certificate of an HMI or of UaExpert works as well as one made for plc-anna.

    Raises
    ------
    ConnectionError
        Naming the endpoint and the reason (unreachable, refused login, untrusted certificate).
    """
    client = Client(endpoint, timeout=timeout)
    if certificate or private_key:
        if not (certificate and private_key):
            raise ValueError("a secure connection needs both the client certificate and its private key")
        client.application_uri = certificate_application_uri(certificate) or client.application_uri
        await client.set_security(SecurityPolicyBasic256Sha256, certificate, private_key,
                                  server_certificate=server_certificate, mode=ua.MessageSecurityMode.SignAndEncrypt)
    if user is not None:
        client.set_user(user)
        client.set_password(password or "")
    try:
        await client.connect()
    except ua.uaerrors.BadUserAccessDenied:
        raise ConnectionError(f"{endpoint} refused the login: wrong user name or password, anonymous access "
                              "disabled, or a security mode the server does not allow") from None
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(f"cannot reach {endpoint}: {exc or type(exc).__name__}") from None
    except ua.UaError as exc:
        raise ConnectionError(f"{endpoint} refused the connection: {exc}") from None
    try:
        yield client
    finally:
        try:
            await client.disconnect()
        except Exception:  # the server may be gone already; nothing to clean up then
            pass


async def read_networks(client: Client) -> list[tuple[str | None, dict[str, Any]]]:
    """Every network's :func:`read_status`, with its name (None for a server of one network)."""
    idx = await client.get_namespace_index(NAMESPACE_URI)
    try:
        folder = await client.nodes.objects.get_child(f"{idx}:Networks")
    except ua.UaStatusCodeError:  # a server of one network: its objects are under Objects
        return [(None, await read_status(client))]
    folders = sorted(await folder.get_children(), key=lambda n: str(n.nodeid.Identifier))
    return [((await node.read_browse_name()).Name, await read_status(client, node)) for node in folders]


async def read_status(client: Client, root: Node | None = None) -> dict[str, Any]:
    """The network's age and temperature, every layer's state, why, and correction, the PLC link, the scan
    diagnostics (NaN where a value is not known yet).

    ``root`` is the node holding the network's AnalogNetwork and Compensator objects: Objects (the
    default), or a network's folder in ``Objects/Networks``.
    """
    idx = await client.get_namespace_index(NAMESPACE_URI)
    root = root if root is not None else client.nodes.objects
    network = await root.get_child(f"{idx}:AnalogNetwork")
    compensator = await root.get_child(f"{idx}:Compensator")
    link = await root.get_child(f"{idx}:ControllerLink")
    layers_folder = await network.get_child(f"{idx}:Layers")
    layer_objects = sorted(await layers_folder.get_children(), key=lambda n: str(n.nodeid.Identifier))
    nodes = [await network.get_child(f"{idx}:Age"), await network.get_child(f"{idx}:Temperature")]
    for layer in layer_objects:
        nodes += [await layer.get_child(f"{idx}:{name}") for name in LAYER_VALUES]
    nodes += [await compensator.get_child(f"{idx}:{name}") for name in DIAGNOSTIC_VALUES]
    nodes += [await link.get_child(f"{idx}:{name}") for name in LINK_VALUES]
    values = await client.read_values(nodes)
    age, temperature = values[:2]
    rows, k = [], 2
    for layer in layer_objects:
        named = dict(zip(LAYER_VALUES, values[k:k + len(LAYER_VALUES)]))
        k += len(LAYER_VALUES)
        gain = list(named["Gain"] or [])
        rows.append({"layer": (await layer.read_browse_name()).Name,
                     "state": DriftState(int(named["DriftState"])).name,
                     "distance": _number(named["LayerDistance"]), "statistic": _number(named["DetectorStatistic"]),
                     "threshold": _number(named["DetectorThreshold"]),
                     "gain_min": min(gain) if gain else math.nan, "gain_max": max(gain) if gain else math.nan,
                     "columns": len(gain), "samples": int(named["SampleCount"] or 0),
                     "state_reason": named["StateReason"] or "", "coverage": _number(named["Coverage"])})
    diagnostics = {name: _number(v) for name, v in zip(DIAGNOSTIC_VALUES, values[k:k + len(DIAGNOSTIC_VALUES)])}
    k += len(DIAGNOSTIC_VALUES)
    protocol, plc, connected, error, counter, beat = values[k:k + len(LINK_VALUES)]
    link_status = {"protocol": protocol, "endpoint": plc, "connected": bool(connected), "last_error": error or "",
                   "commit_counter": int(counter or 0), "heartbeat": int(beat or 0)}
    return {"age_s": _number(age), "temperature_k": _number(temperature), "layers": rows, "link": link_status,
            "diagnostics": diagnostics}


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)
