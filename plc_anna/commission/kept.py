"""The dry run's calibration, kept for the run: what ``commission run --dry-run`` showed is what ``run`` commits.

A dry run calibrates on the live process and shows the plan; the engineer reads it and runs again
without ``--dry-run``. Calibrating a second time would give another fingerprint and another plan than
the one reviewed, and take minutes more. So the dry run keeps its calibrated state in a small state
store beside the tag map (:func:`keep_calibration`, ``<map>.calibration.sqlite``), and the run takes it
back (:func:`kept_calibration`) when it belongs to the same tag map (byte for byte), the same network
(its weights), the same number of calibration samples, and is at most :data:`REUSE_WITHIN_S` old;
otherwise the run says why and calibrates anew.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from plc_anna.compensator import CompensatorConfig
from plc_anna.contract.tagmap import TagMap
from plc_anna.device.network import Network
from plc_anna.device.plc_observed import PlcObservedNetwork
from plc_anna.server.runtime import Runtime
from plc_anna.server.store import StateStore

#: A kept calibration is reused this long after the dry run made it.
REUSE_WITHIN_S = 3600.0
KIND = "plc-anna commissioning calibration"


def calibration_path(tag_map_path: str | Path) -> Path:
    """Where a dry run keeps its calibration: beside the tag map.

    >>> calibration_path("/etc/plc-anna/plc.toml").name
    'plc.calibration.sqlite'
    """
    path = Path(tag_map_path)
    return path.with_name(f"{path.stem}.calibration.sqlite")


def network_digest(network: Network) -> str:
    """SHA-256 of the network's shapes, weights, biases and activations: which network was programmed."""
    digest = hashlib.sha256()
    for layer in network.layers:
        digest.update(f"{layer.weights.shape}{layer.activation}".encode())
        digest.update(layer.weights.astype("<f8").tobytes())
        digest.update(layer.bias.astype("<f8").tobytes())
    return digest.hexdigest()


def _identity(tag_map_path: Path, network: Network, config: CompensatorConfig) -> dict[str, Any]:
    return {"kind": KIND, "tag_map": str(tag_map_path),
            "tag_map_sha256": hashlib.sha256(tag_map_path.read_bytes()).hexdigest(),
            "network": network.name, "network_sha256": network_digest(network),
            "calibration_samples": config.calibration_samples}


def keep_calibration(runtime: Runtime, info: dict[str, Any], path: str | Path, *, tag_map_path: str | Path,
                     network: Network, config: CompensatorConfig) -> Path:
    """Keep a calibrated runtime (and :func:`~plc_anna.commission.calibrate`'s ``info``) at ``path``.

    The file is a state store of its own (never the server's): an older calibration in it is replaced.
    """
    path = Path(path)
    state = runtime.state_dict()
    state["commissioning"] = {**_identity(Path(tag_map_path), network, config), "info": info}
    with StateStore(path, keep_states=1) as store:
        store.save_state(state, runtime.scan)
    return path


def kept_calibration(path: str | Path, *, tag_map: TagMap, tag_map_path: str | Path, network: Network,
                     config: CompensatorConfig,
                     now_s: float | None = None) -> tuple[Runtime | None, dict[str, Any] | None, str]:
    """The calibration a dry run kept at ``path``, if the run may take it.

    Returns
    -------
    runtime, info, why
        The restored runtime and the dry run's calibration info (with ``kept_at`` and ``age_s``), or
        ``None, None`` and, in words, why not (no such file, another tag map, another network, other
        calibration samples, too old, unreadable).
    """
    path = Path(path)
    if not path.is_file():
        return None, None, f"no calibration kept at {path}"
    try:
        with StateStore(path) as store:
            entry = store.load_state_entry()
    except (ValueError, OSError) as exc:
        return None, None, f"{path} is unreadable ({exc})"
    meta = None if entry is None else entry.state.get("commissioning")
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        return None, None, f"{path} holds no kept calibration"
    expected = _identity(Path(tag_map_path), network, config)
    for key, words in (("tag_map_sha256", "the tag map changed since"), ("network_sha256", "it is of another network"),
                       ("calibration_samples", f"it took {meta.get('calibration_samples')} samples, not "
                                               f"{config.calibration_samples}")):
        if meta.get(key) != expected[key]:
            return None, None, f"the calibration kept at {path} is not reused: {words}"
    age_s = (time.time() if now_s is None else now_s) - entry.wall_time_s
    if not 0 <= age_s <= REUSE_WITHIN_S:
        return None, None, (f"the calibration kept at {path} is not reused: it is {age_s / 60:.0f} min old, more than "
                            f"{REUSE_WITHIN_S / 60:.0f} min")
    runtime = Runtime(PlcObservedNetwork(network, tag_map), config)
    try:
        runtime.load_state_dict(entry.state)
    except ValueError as exc:
        return None, None, f"the calibration kept at {path} is not reused: {exc}"
    info = {**meta.get("info", {}), "kept_at": entry.wall_time_s, "age_s": round(age_s, 1)}
    return runtime, info, f"reusing the dry run's calibration kept at {path} ({age_s / 60:.0f} min old)"


__all__ = ["REUSE_WITHIN_S", "calibration_path", "keep_calibration", "kept_calibration", "network_digest"]
