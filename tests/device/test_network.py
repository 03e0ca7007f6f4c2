"""Network files: round trip, derived converter ranges and validation errors."""

import numpy as np
import pytest

from plc_anna.device.network import (
    INPUT_HEADROOM,
    OUTPUT_HEADROOM,
    digital_forward,
    load_network,
    save_network,
    task_metric,
)


def test_round_trip(tmp_path, two_layer_net):
    path = tmp_path / "net.npz"
    save_network(two_layer_net, path)
    loaded = load_network(path)
    assert loaded.name == "two" and loaded.task == "classification"
    assert [layer.activation for layer in loaded.layers] == ["relu", "linear"]
    for a, b in zip(loaded.layers, two_layer_net.layers):
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert (a.input_range, a.output_range) == (b.input_range, b.output_range)
    np.testing.assert_array_equal(loaded.y, two_layer_net.y)
    assert not list(tmp_path.glob("*.tmp*"))


def test_ranges_derived_from_held_out_data(linear_net):
    layer = linear_net.layers[0]
    assert layer.input_range == pytest.approx(INPUT_HEADROOM * np.abs(linear_net.X).max())
    z = linear_net.X @ layer.weights.T + layer.bias
    assert layer.output_range == pytest.approx(OUTPUT_HEADROOM * np.abs(z).max())


def test_metrics(linear_net, two_layer_net):
    assert task_metric(linear_net, digital_forward(linear_net, linear_net.X), linear_net.y) == pytest.approx(0)
    assert task_metric(two_layer_net, digital_forward(two_layer_net, two_layer_net.X), two_layer_net.y) == 1.0


def test_forward_rejects_bad_inputs(linear_net):
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        digital_forward(linear_net, np.zeros((3, 15)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        digital_forward(linear_net, np.full((1, 16), np.nan))


def _saved(tmp_path, net, **changes):
    """Save ``net``, then rewrite the archive with ``changes`` (None deletes a key)."""
    path = tmp_path / "net.npz"
    save_network(net, path)
    with np.load(path) as data:
        arrays = dict(data)
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("changes,message", [
    ({"format_version": np.array(2)}, "'format_version' must be 1"),
    ({"task": np.array("clustering")}, "'task' must be one of"),
    ({"task": None}, "lacks required key 'task'"),
    ({"layer1_weights": None}, "lacks required key 'layer1_weights'"),
    ({"layer0_weights": np.zeros((6, 12))}, "layer0_weights are all zero"),
    ({"layer0_weights": np.ones((6, 11))}, "'X' must have 11 columns"),
    ({"layer1_weights": np.ones((3, 5))}, "layer1_weights expects 5 inputs but layer0 has 6 outputs"),
    ({"layer1_bias": np.ones(4)}, "layer1_bias has 4 values but layer1_weights has 3 rows"),
    ({"layer0_weights": np.full((6, 12), np.nan)}, "'layer0_weights' contains NaN or Inf"),
    ({"layer0_activation": np.array("swish")}, "layer0_activation must be one of"),
    ({"layer1_activation": np.array("relu")}, "layer1_activation must be 'linear'"),
    ({"layer0_input_range": np.array(-1.0)}, "'layer0_input_range' must be a positive finite number"),
    ({"extra": np.array(1)}, "unknown keys ['extra']"),
    ({"y": np.full(300, 7)}, "'y' labels must lie in 0..2"),
    ({"y": None}, "'X' is present but 'y' is missing"),
    ({"output_names": np.array(["a", "b"])}, "'output_names' must be 3 strings"),
    ({"n_layers": np.array(1.5)}, "'n_layers' must be a positive integer"),
])
def test_validation_errors_name_the_key(tmp_path, two_layer_net, changes, message):
    path = _saved(tmp_path, two_layer_net, **changes)
    with pytest.raises(ValueError) as info:
        load_network(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_ranges_required_without_data(tmp_path, two_layer_net):
    path = _saved(tmp_path, two_layer_net, X=None, y=None, layer1_output_range=None)
    with pytest.raises(ValueError, match="layer1_output_range is not given and the file has no held-out 'X'"):
        load_network(path)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        load_network(bad)
    with pytest.raises(ValueError, match="neither a shipped network"):
        load_network(tmp_path / "missing.npz")


def test_object_arrays_are_refused(tmp_path, two_layer_net):
    path = _saved(tmp_path, two_layer_net, name=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="key 'name' holds Python objects"):
        load_network(path)
