"""The compensator's persistent state as plain data: what a store writes and a restart reads.

Saved: per layer its drift state and why, scan count, fingerprint, applied
and last-good corrections, drift latent, temperature and schedule. Not saved:
what is in flight (a calibration or estimate window, a ramp, a hold-out, the
monitor's tests, live data gathered for coverage): after a restart the
applied correction stays where it was (no bump), a layer that was
calibrating starts its fingerprint again, one that was drifting or ramping
returns to monitoring and will detect again what is still there, and a fault
stays a fault (one from a jump still clears itself once the windows match).

Format 1 (before the fingerprint became a posterior with the programmed
weights as its prior) still loads: corrections, drift history and counters
are kept, and the layer calibrates its fingerprint again from live data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from plc_anna.compensator.layer import LayerCompensator
from plc_anna.correction.latent import DriftLatent
from plc_anna.drift.states import DriftState
from plc_anna.stats.reference import Fingerprint

FORMAT_VERSION = 2
#: Formats :func:`restore_layer` reads.
READABLE_FORMATS = (1, 2)


def _pair(layer: LayerCompensator, gain, offset) -> tuple[np.ndarray, np.ndarray]:
    gain, offset = np.asarray(gain, dtype=float), np.asarray(offset, dtype=float)
    if gain.shape != (layer.n_out,) or offset.shape != (layer.n_out,):
        raise ValueError(f"layer {layer.index}: a saved correction needs {layer.n_out} gains and offsets")
    if not (np.all(np.isfinite(gain)) and np.all(np.isfinite(offset))):
        raise ValueError(f"layer {layer.index}: a saved correction contains NaN or Inf")
    return gain, offset


def layer_state(layer: LayerCompensator) -> dict[str, Any]:
    """One layer's persistent state."""
    return {
        "index": layer.index,
        "shape": [layer.n_out, layer.n_in],
        "state": layer.state.name,
        "scan": int(layer.scan),
        "fingerprint": None if layer.fingerprint is None else layer.fingerprint.to_dict(),
        "gain": layer._gain.tolist(),
        "offset": layer._offset.tolist(),
        "good_gain": layer._good[0].tolist(),
        "good_offset": layer._good[1].tolist(),
        "latent": layer.latent.to_dict(),
        "temperature_k": float(layer._temperature_k),
        "next_age_s": None if not math.isfinite(layer._next_age) else float(layer._next_age),
        "maintenance_alarmed": bool(layer._maintenance_alarmed),
        "reason": layer._reason,
        "fault_kind": layer._fault_kind,
    }


def restore_layer(layer: LayerCompensator, data: dict[str, Any], format_version: int = FORMAT_VERSION) -> bool:
    """Load ``data`` (from :func:`layer_state`) into a freshly built ``layer``; ValueError leaves it untouched.

    Returns False when the saved fingerprint is of an older format: the layer then calibrates again.
    """
    try:
        if list(data["shape"]) != [layer.n_out, layer.n_in]:
            raise ValueError(f"layer {layer.index}: saved shape {data['shape']} does not match "
                             f"{[layer.n_out, layer.n_in]}")
        state = DriftState[data["state"]]
        gain, offset = _pair(layer, data["gain"], data["offset"])
        good = _pair(layer, data["good_gain"], data["good_offset"])
        fingerprint = None
        if data["fingerprint"] is not None and format_version >= 2:
            fingerprint = Fingerprint.from_dict(data["fingerprint"], layer.weights)
        latent = DriftLatent.from_dict(data["latent"])
        scan, temperature = int(data["scan"]), float(data["temperature_k"])
        next_age = -math.inf if data["next_age_s"] is None else float(data["next_age_s"])
        alarmed = bool(data["maintenance_alarmed"])
        reason, fault_kind = str(data.get("reason", "")), data.get("fault_kind", "trend")
    except (KeyError, TypeError) as exc:
        raise ValueError(f"layer {layer.index}: not a saved compensator state ({exc!r})") from None
    # Everything parsed: now change the layer.
    layer.scan = scan
    layer._gain, layer._offset = gain, offset
    layer._good = good
    layer.latent = latent
    layer._temperature_k, layer._next_age, layer._maintenance_alarmed = temperature, next_age, alarmed
    layer._start_fingerprint()
    if fingerprint is None:
        return data["fingerprint"] is None
    layer._fingerprint = fingerprint
    layer._monitor = layer._new_monitor(fingerprint)
    if state is DriftState.CALIBRATING:
        return True
    layer._enter_nominal()
    if state is DriftState.FAULT:
        layer._state = DriftState.FAULT
        layer._fault_kind = fault_kind if fault_kind in ("jump", "trend") else "trend"
        layer._matching_windows = 0
    layer._reason = reason
    return True
