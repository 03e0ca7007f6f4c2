"""What every commissioning step shares: the :class:`Check` result, credentials, settings from a URL.

The steps themselves live in :mod:`plc_anna.commission` (the public surface)
and its modules; this one holds the small pieces they have in
common and imports no protocol library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from plc_anna.device.network import Network, load_network
from plc_anna.simulated_plc.program import PASSWORD_ENV
from plc_anna.contract.tagmap import PlcSettings, TagMap

#: URL scheme -> tag-map protocol.
SCHEMES = {"opc.tcp": "opcua", "modbus": "modbus"}
MODBUS_NO_BROWSING = ("Modbus has no browsing: give a tag map (the OpenPLC layout is in "
                      "ladder_examples/openplc/README.md)")


@dataclass(frozen=True)
class Check:
    """One commissioning check: what was checked, whether it passed, and what was found, in words.

    Examples
    --------
    >>> Check("connect", True, "opc.tcp://127.0.0.1:4840: connected").to_dict()
    {'name': 'connect', 'ok': True, 'detail': 'opc.tcp://127.0.0.1:4840: connected'}
    """

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The check as JSON-ready data."""
        return {"name": self.name, "ok": bool(self.ok), "detail": self.detail}


@dataclass(frozen=True)
class _GivenPassword(PlcSettings):
    """``[plc]`` with a password given on the command line instead of through ``password_env``.

    The password is no field of :class:`PlcSettings`, so it is never written to a tag map
    (:func:`~plc_anna.contract.tagmap.tag_map_to_toml` writes the base class's fields) nor shown in a repr.
    """

    given_password: str | None = field(default=None, repr=False, compare=False)

    def password(self) -> str | None:
        if self.given_password is not None:
            return self.given_password
        return super().password()


def plain_settings(settings: PlcSettings) -> PlcSettings:
    """``settings`` as a plain :class:`PlcSettings` (a given password dropped)."""
    return PlcSettings(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(PlcSettings)})


def with_credentials(settings: PlcSettings, *, user: str | None = None, password: str | None = None,
                     timeout_s: float | None = None) -> PlcSettings:
    """``settings`` with a user, password and timeout given by the engineer (None: keep the map's).

    A ``password`` takes the place of ``password_env``; without one the map's ``password_env`` applies.

    Raises
    ------
    ValueError
        For a user or password with Modbus, which has no login, or a timeout that is not > 0.
    """
    if settings.protocol == "modbus" and (user is not None or password is not None):
        raise ValueError("Modbus TCP has no login: a user or password is for OPC UA")
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"the timeout must be > 0 s, got {timeout_s}")
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(PlcSettings)}
    if user is not None:
        values["user"] = user
    if timeout_s is not None:
        values["timeout_s"] = float(timeout_s)
    if password is None and isinstance(settings, _GivenPassword):
        password = settings.given_password
    return _GivenPassword(**values, given_password=password)


def tag_map_with_credentials(tag_map: TagMap, *, user: str | None = None, password: str | None = None,
                             timeout_s: float | None = None) -> TagMap:
    """``tag_map`` with :func:`with_credentials` applied to its ``[plc]`` table."""
    plc = with_credentials(tag_map.plc, user=user, password=password, timeout_s=timeout_s)
    return dataclasses.replace(tag_map, plc=plc)


def settings_for_url(url: str, *, user: str | None = None, password: str | None = None,
                     timeout_s: float = 2.0) -> PlcSettings:
    """``[plc]`` settings for a bare endpoint URL (``opc.tcp://HOST:PORT[/path]`` or ``modbus://HOST:PORT``).

    >>> settings_for_url("modbus://127.0.0.1:5020").protocol
    'modbus'
    >>> settings_for_url("http://plc")
    Traceback (most recent call last):
    ...
    ValueError: 'http://plc' is no PLC endpoint: give opc.tcp://HOST:PORT (OPC UA) or modbus://HOST:PORT (Modbus TCP)
    """
    parts = urlsplit(url)
    protocol = SCHEMES.get(parts.scheme)
    if protocol is None or not parts.hostname:
        raise ValueError(f"{url!r} is no PLC endpoint: give opc.tcp://HOST:PORT (OPC UA) or modbus://HOST:PORT "
                         "(Modbus TCP)")
    return with_credentials(PlcSettings(protocol=protocol, endpoint=url), user=user, password=password,
                            timeout_s=timeout_s)


def resolve_network(network: Network | str | Path) -> Network:
    """A :class:`Network` from itself, a shipped name or a ``.npz`` path (ValueError naming it)."""
    return network if isinstance(network, Network) else load_network(network)


def network_label(network: Network | str | Path) -> str:
    """What a tag map records as its ``network``: the name or path as given, else the network's name."""
    return str(network) if isinstance(network, (str, Path)) else network.name


def shapes(network: Network) -> list[tuple[int, int]]:
    """(n_in, n_out) of every layer."""
    return [(layer.n_in, layer.n_out) for layer in network.layers]


__all__ = [
    "MODBUS_NO_BROWSING",
    "PASSWORD_ENV",
    "SCHEMES",
    "Check",
    "network_label",
    "plain_settings",
    "resolve_network",
    "settings_for_url",
    "shapes",
    "tag_map_with_credentials",
    "with_credentials",
]
