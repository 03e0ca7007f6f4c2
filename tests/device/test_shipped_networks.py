"""The shipped reference networks (plc_anna/networks/*.npz) load and meet their metrics.

They are produced by ``python -m training.train_digits`` and
``python -m training.train_thermocouple`` (see training/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from plc_anna.device.network import (
    SHIPPED_NETWORKS,
    digital_forward,
    load_network,
    resolve_network_path,
    task_metric,
)

# ``training/`` sits at the repository root and is not part of the installed
# package; make it importable however pytest was started.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

from training.its90 import type_k_emf_mv, type_k_temperature_c  # noqa: E402

#: Documented architecture: (n_in, n_out, activation) per layer.
LAYERS = {
    "digits": [(64, 32, "relu"), (32, 10, "linear")],
    "thermocouple": [(5, 32, "tanh"), (32, 32, "tanh"), (32, 4, "linear")],
}


@pytest.fixture(scope="module")
def digits():
    return load_network("digits")


@pytest.fixture(scope="module")
def thermocouple():
    return load_network("thermocouple")


@pytest.mark.parametrize("name", SHIPPED_NETWORKS)
def test_shipped_network_loads_with_documented_layers(name):
    net = load_network(name)
    assert net.name == name
    assert [(l.n_in, l.n_out, l.activation) for l in net.layers] == LAYERS[name]
    assert net.description
    assert net.X is not None and net.y is not None
    for layer in net.layers:
        assert layer.input_range > 0 and layer.output_range > 0
        assert np.all(np.isfinite(layer.weights)) and np.all(np.isfinite(layer.bias))


@pytest.mark.parametrize("name", SHIPPED_NETWORKS)
def test_shipped_files_are_small(name):
    assert resolve_network_path(name).stat().st_size < 1_000_000


def test_digits_metadata_and_held_out_data(digits):
    assert digits.task == "classification"
    assert digits.output_names == tuple(f"digit{k}" for k in range(10))
    assert digits.output_unit == ""
    assert "scikit-learn" in digits.description
    # Raw 8x8 pixel intensities 0..16 (the input scaling is folded into layer 0).
    assert digits.X.shape == (540, 64) and digits.y.shape == (540,)
    assert digits.X.min() == 0 and digits.X.max() == 16
    assert np.array_equal(digits.X, np.round(digits.X))
    assert digits.y.dtype.kind == "i"
    assert set(np.unique(digits.y)) == set(range(10))


def test_digits_digital_accuracy(digits):
    accuracy = task_metric(digits, digital_forward(digits, digits.X), digits.y)
    assert accuracy >= 0.93


def test_thermocouple_metadata_and_held_out_data(thermocouple):
    net = thermocouple
    assert net.task == "regression"
    assert net.output_names == ("T_hot_1", "T_hot_2", "T_hot_3", "T_hot_4")
    assert net.output_unit == "degC"
    assert "NIST" in net.description and "ITS-90" in net.description
    assert net.X.shape == (2000, 5) and net.y.shape == (2000, 4)
    assert net.y.min() >= 0.0 and net.y.max() <= 800.0
    t_cj = net.X[:, 4]
    assert t_cj.min() >= 0.0 and t_cj.max() <= 50.0


def test_thermocouple_held_out_targets_follow_its90(thermocouple):
    # Recompute every hot-junction temperature from the stored inputs:
    # measured EMF + E(T_cj) is the EMF against a 0 °C reference junction.
    X = thermocouple.X
    t_hot = type_k_temperature_c(X[:, :4] + type_k_emf_mv(X[:, 4])[:, None])
    np.testing.assert_allclose(t_hot, thermocouple.y, rtol=0, atol=1e-6)


def test_thermocouple_digital_rmse(thermocouple):
    pred = digital_forward(thermocouple, thermocouple.X)
    assert task_metric(thermocouple, pred, thermocouple.y) <= 2.0
    # Every channel, not only the average, is linearized.
    per_channel = np.sqrt(np.mean((pred - thermocouple.y) ** 2, axis=0))
    assert np.all(per_channel <= 2.0)
