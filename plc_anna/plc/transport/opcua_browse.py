"""Looking around an OPC UA server before there is a tag map: its endpoints, and its variables.

What commissioning needs (``plc-anna commission discover`` and ``browse``); the
link itself never browses.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from asyncua import Client, ua

from plc_anna.plc.transport.base import TagError
from plc_anna.plc.transport.opcua import (_BROWSE_CHUNK, _HAS_PROPERTY, OpcUaTransport, _connect_error, _node_facts,
                                          _read_many, _value)


async def discover_endpoints(url: str, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """The endpoints an OPC UA server offers.

    Each is a dict: ``url``, ``security_policy`` (short name, e.g. ``Basic256Sha256``), ``security_mode``
    (``None``, ``Sign``, ``SignAndEncrypt``), ``security_level`` and ``user_tokens`` (e.g. ``["Anonymous",
    "UserName"]``).

    Raises :class:`Unreachable` (or :class:`CertificateRejected`) naming ``url`` when the server cannot be asked.
    """
    client = Client(url, timeout=timeout_s)
    try:
        endpoints = await asyncio.wait_for(client.connect_and_get_server_endpoints(), 4 * timeout_s)
    except Exception as exc:
        raise _connect_error(url, exc, timeout_s) from exc
    finally:
        with suppress(Exception):
            client.disconnect_socket()
    return [{"url": endpoint.EndpointUrl,
             "security_policy": str(endpoint.SecurityPolicyUri).rsplit("#", 1)[-1],
             "security_mode": ua.MessageSecurityMode(endpoint.SecurityMode).name.rstrip("_"),
             "security_level": int(endpoint.SecurityLevel),
             "user_tokens": [ua.UserTokenType(token.TokenType).name for token in endpoint.UserIdentityTokens]}
            for endpoint in endpoints]


async def _browse(transport: OpcUaTransport, nodeids: list[ua.NodeId]) -> list[list[ua.ReferenceDescription]]:
    """Forward hierarchical references (objects and variables) of each node, following continuation points."""
    out: list[list[ua.ReferenceDescription]] = []
    for first in range(0, len(nodeids), _BROWSE_CHUNK):
        descriptions = [ua.BrowseDescription(NodeId=nodeid, BrowseDirection=ua.BrowseDirection.Forward,
                                             ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences),
                                             IncludeSubtypes=True,
                                             NodeClassMask=ua.NodeClass.Object | ua.NodeClass.Variable,
                                             ResultMask=ua.BrowseResultMask.All)
                        for nodeid in nodeids[first:first + _BROWSE_CHUNK]]
        parameters = ua.BrowseParameters(NodesToBrowse=descriptions)
        results = await transport._service(lambda client, p=parameters: client.uaclient.browse(p), "browse")
        for result in results:
            references = list(result.References) if result.StatusCode.is_good() else []
            point = result.ContinuationPoint
            while point:
                more = ua.BrowseNextParameters(ReleaseContinuationPoints=False, ContinuationPoints=[point])
                (result,) = await transport._service(lambda client, p=more: client.uaclient.browse_next(p), "browse")
                references += result.References if result.StatusCode.is_good() else []
                point = result.ContinuationPoint if result.StatusCode.is_good() else None
            out.append(references)
    return out


async def browse_variables(transport: OpcUaTransport, root: str | None = None, pattern: str | None = None,
                           max_nodes: int = 5000) -> list[dict[str, Any]]:
    """The variables below the Objects folder (or ``root``), breadth-first, with type, length and write access.

    Parameters
    ----------
    transport
        A connected OPC UA transport.
    root
        A NodeId string to start from; the Objects folder (without the server's own namespace-0 nodes) if None.
    pattern
        Keep only variables whose browse path contains this text (case-insensitive).
    max_nodes
        Stop after visiting this many nodes.

    Returns
    -------
    list of dict
        ``address`` (NodeId string), ``browse_path`` (``"Objects/DeviceSet/..."``), ``plc_type`` (None when the
        data type is no PLC type), ``data_type`` (the OPC UA name), ``length`` (None for a scalar), ``writable``.
    """
    transport._require_connection()
    if root is None:
        start, start_name = ua.NodeId(ua.ObjectIds.ObjectsFolder), "Objects"
    else:
        start = transport._nodeid(root, "browse root")
        (name,) = await _read_many(transport, [start], (ua.AttributeIds.BrowseName,))
        if name[0].StatusCode.is_bad():
            raise TagError(f"{transport.endpoint}: browse root {root}: {name[0].StatusCode.name}")
        start_name = _value(name[0]).Name
    visited = {start}
    frontier = [(start, start_name)]
    found: list[tuple[ua.NodeId, str]] = []
    while frontier and len(visited) < max_nodes:
        references = await _browse(transport, [nodeid for nodeid, _ in frontier])
        next_frontier = []
        for (_, path), refs in zip(frontier, references, strict=True):
            for ref in refs:
                target = ua.NodeId(Identifier=ref.NodeId.Identifier, NamespaceIndex=ref.NodeId.NamespaceIndex,
                                   NodeIdType=ref.NodeId.NodeIdType)
                skip = ref.ReferenceTypeId == ua.NodeId(_HAS_PROPERTY) or (root is None and target.NamespaceIndex == 0)
                if skip or target in visited or len(visited) >= max_nodes:
                    continue
                visited.add(target)
                child = (target, f"{path}/{ref.BrowseName.Name}")
                next_frontier.append(child)
                if ref.NodeClass == ua.NodeClass.Variable:
                    found.append(child)
        frontier = next_frontier
    if pattern is not None:
        found = [(nodeid, path) for nodeid, path in found if pattern.lower() in path.lower()]
    facts = await _node_facts(transport, [nodeid for nodeid, _ in found])
    return [{"address": nodeid.to_string(), "browse_path": path, "plc_type": fact.plc_type,
             "data_type": fact.type_name, "length": fact.length, "writable": fact.writable}
            for (nodeid, path), fact in zip(found, facts, strict=True) if fact.status is None]


__all__ = ["browse_variables", "discover_endpoints"]
