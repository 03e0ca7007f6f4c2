"""The activation functions a network file may name, applied digitally (pure numpy).

Shared by the network files (:mod:`plc_anna.device.network`) and the
compensator, which computes the ideal network's activations from the digital
inputs without knowing anything of the device.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")


def activate(z: np.ndarray, activation: str) -> np.ndarray:
    """Apply a digital activation function by name.

    Examples
    --------
    >>> activate(np.array([-1.0, 2.0]), "relu").tolist()
    [0.0, 2.0]
    """
    if activation == "linear":
        return z
    if activation == "relu":
        return np.maximum(z, 0.0)
    if activation == "tanh":
        return np.tanh(z)
    if activation == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
