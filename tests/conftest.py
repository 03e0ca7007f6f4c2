"""Shared fixtures: small synthetic networks that need no shipped data."""

from __future__ import annotations

import numpy as np
import pytest

# The test rig's fixture, the simulated PLCs (`opcua`, `modbus`) of the commissioning tests, and node-opcua.
pytest_plugins = ["plc_anna.testing", "tests.commands.simplc", "tests.nodeopcua.support"]

# Test data, not tests: the scripts there made the data (one imports torch, which no extra installs).
collect_ignore = ["data"]

from plc_anna.device.network import network_from_arrays


@pytest.fixture
def linear_net():
    """One linear 16 -> 8 layer with held-out data."""
    rng = np.random.default_rng(42)
    W = rng.normal(size=(8, 16)) / 4
    b = rng.normal(size=8) / 10
    X = rng.uniform(-1, 1, size=(200, 16))
    return network_from_arrays("linear", "regression", [W], [b], ["linear"], X=X, y=X @ W.T + b,
                               output_unit="V")


@pytest.fixture
def two_layer_net():
    """A 12 -> 6 (relu) -> 3 classifier with held-out data."""
    rng = np.random.default_rng(7)
    W0, b0 = rng.normal(size=(6, 12)) / 3, rng.normal(size=6) / 10
    W1, b1 = rng.normal(size=(3, 6)) / 2, rng.normal(size=3) / 10
    X = rng.uniform(0, 1, size=(300, 12))
    logits = np.maximum(X @ W0.T + b0, 0) @ W1.T + b1
    return network_from_arrays("two", "classification", [W0, W1], [b0, b1], ["relu", "linear"],
                               X=X, y=np.argmax(logits, axis=1))
