"""The ramp step of the PLC contract: how an applied gain or offset moves toward its target.

Each cycle every applied value moves toward its target by at most the step
(``MaxGainStep``/``MaxOffsetStep``), in REAL (IEEE binary32) arithmetic,
rounded after each operation; a value within one step lands exactly on the
target, so a ramp never overshoots (D9 in :mod:`plc_anna.contract.logic`).
The PLC's correction block ramps this way every PLC cycle; the PLC link moves
each set it writes this way from the last-good set, so the PLC never sees a
jump its own ramp would not make; commissioning commits the same steps.
"""

from __future__ import annotations

import numpy as np

from plc_anna.contract.tagmap import LayerTags


def ramp_step(applied: np.ndarray, target: np.ndarray, max_step: float) -> np.ndarray:
    """``applied`` moved toward ``target`` by at most ``max_step`` per element, as the PLC computes it (REAL).

    Examples
    --------
    >>> ramp_step(np.ones(3), np.array([1.5, 1.01, 0.5]), 0.02).tolist()
    [1.0199999809265137, 1.0099999904632568, 0.9800000190734863]
    """
    applied = np.asarray(applied, np.float32)
    with np.errstate(over="ignore"):
        target = np.asarray(target, np.float64).astype(np.float32)
    step = np.float32(max_step)
    delta = target - applied
    return np.where(delta > step, applied + step, np.where(delta < -step, applied - step, target)).astype(np.float32)


def ramp_position(tags: LayerTags, accepted: int, gain, offset) -> tuple[np.ndarray, np.ndarray]:
    """Where a layer's ramp stands on the PLC, from what was read: ``gain``/``offset`` are the applied
    values (or, without those tags, the set); the identity when the PLC took no set since power-on and
    shows no applied values. As REAL (float32)."""
    if accepted == 0 and tags.applied_gain is None:
        return np.ones(tags.n_out, np.float32), np.zeros(tags.n_out, np.float32)
    return np.asarray(gain, np.float32), np.asarray(offset, np.float32)
