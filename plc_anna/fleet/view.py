"""What ``plc-anna fleet`` shows: one row per network of every edge node, as a rich table and as JSON."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.table import Table

from plc_anna.drift.states import DriftState
from plc_anna.fleet.host import FleetHost
from plc_anna.units import format_age


def fleet_rows(host: FleetHost) -> list[dict[str, Any]]:
    """Per network: node, online, age, worst layer state and its reason, largest distance, RUL, link, seq gaps."""
    rows = []
    for (group, node_id), node in sorted(host.nodes.items()):
        devices = node.devices or {}
        if not devices:
            rows.append({"group": group, "node": node_id, "network": None, "online": node.online,
                         "node_online": node.online, "bd_seq": node.bd_seq, "seq_gaps": node.seq_gaps,
                         "rebirths_requested": node.rebirths_requested})
            continue
        for name, device in sorted(devices.items()):
            values = device.values
            layers = sorted({key.split("/")[0] for key in values if key.startswith("Layer")},
                            key=lambda text: int(text[5:]) if text[5:].isdigit() else 0)
            worst, reason, distance = None, "", None
            for layer in layers:
                state = values.get(f"{layer}/DriftState")
                if state is not None and (worst is None or int(state) > worst):
                    worst, reason = int(state), values.get(f"{layer}/StateReason") or ""
                d = values.get(f"{layer}/LayerDistance")
                if d is not None and (distance is None or d > distance):
                    distance = float(d)
            rows.append({
                "group": group, "node": node_id, "network": name, "online": device.online and node.online,
                "node_online": node.online, "bd_seq": node.bd_seq, "last_birth_ms": device.last_birth_ms,
                "age_s": values.get("Age"), "state": None if worst is None else _state_name(worst),
                "reason": reason, "distance": distance, "remaining_life_s": values.get("RemainingLife"),
                "remaining_life": _life(values.get("RemainingLife")),
                "link_connected": values.get("Link/Connected"), "link_error": values.get("Link/LastError"),
                "updated_ms": device.updated_ms, "seq_gaps": node.seq_gaps,
                "rebirths_requested": node.rebirths_requested})
    return rows


def finite(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None (JSON has no such numbers)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(v) for v in data]
    return data


def fleet_report(host: FleetHost) -> dict[str, Any]:
    """The JSON of ``plc-anna fleet --json``: the rows and the host's counters (non-finite numbers as null)."""
    return finite({"time_ms": int(time.time() * 1000), "broker": host.settings.url, "group": host.group,
            "connected": host.connected, "last_error": host.last_error, "messages": host.messages,
            "malformed": host.malformed, "seq_gaps": host.seq_gaps, "rebirths_requested": host.rebirths_requested,
            "historized": host.historized, "networks": fleet_rows(host)})


def fleet_table(rows: list[dict[str, Any]], title: str = "plc-anna fleet") -> Table:
    table = Table(title=title)
    for name in ("node", "network", "status", "age", "worst layer", "reason", "distance", "RUL", "link"):
        table.add_column(name, no_wrap=name not in ("reason",), justify="left" if name in ("reason",) else "right")
    for row in rows:
        online = row["online"]
        status = "[green]online[/]" if online else "[red]OFFLINE[/]"
        age = row.get("age_s")
        life = row.get("remaining_life_s")
        link = row.get("link_connected")
        if row.get("link_error") == "no controller link configured":
            link = None
        table.add_row(
            row["node"], row.get("network") or "-", status, "-" if age is None else format_age(age),
            row.get("state") or "-", row.get("reason") or "", _number(row.get("distance")),
            "-" if life is None else ("never" if math.isinf(life) else format_age(life)),
            "none" if link is None else ("up" if link else "down"),
            style=None if online else "dim")
    return table


def _life(value: float | None) -> str:
    if value is None:
        return "not known yet"
    return "beyond 1000 years" if math.isinf(value) else "estimated"


def _state_name(value: int) -> str:
    try:
        return DriftState(value).name.capitalize()
    except ValueError:
        return str(value)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
