"""ONNX import: graphs built here (every supported operator, every refused one with its message), a model
PyTorch exported (committed, with the script that made it), one scikit-learn exported; each matched against
ONNX Runtime, and the imported network simulated on the ideal device gives ONNX Runtime's outputs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from plc_anna.device.network import activate, digital_forward, load_network  # noqa: E402
from plc_anna.device.simulated import SimulatedNetwork  # noqa: E402
from plc_anna.importers.onnx import check_against_runtime, import_onnx, input_features  # noqa: E402

TORCH_MODEL = Path(__file__).resolve().parents[1] / "data" / "onnx" / "torch_mlp.onnx"
RNG = np.random.default_rng(0)


def tensor(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def save_graph(tmp_path: Path, nodes, initializers, n_in=4, n_out=3, input_dims=None, name="g") -> Path:
    """A model of ``nodes`` from input ``x`` (batch, n_in) to output ``y``."""
    dims = input_dims or ["batch", n_in]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="plc-anna tests")
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def runtime(path: Path, X: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0]
    shape = [len(X), *source.shape[1:]] if all(isinstance(d, int) for d in source.shape[1:]) else X.shape
    return session.run(None, {source.name: X.astype(np.float32).reshape(shape)})[0].reshape(len(X), -1)


def simulated_outputs(network, X: np.ndarray) -> np.ndarray:
    """The network programmed on the ideal device (no noise, drift or quantization), layer by layer."""
    device = SimulatedNetwork(network, "ideal", seed=0)
    a = X
    for k, layer in enumerate(network.layers):
        a = activate(device.read_layer(k, a), layer.activation)
    return a


def imported(path: Path, n_in: int = 4, rows: int = 200):
    X = RNG.uniform(-1, 1, size=(rows, n_in))
    network = import_onnx(path, X=X)
    return network, X


W1, B1 = RNG.normal(size=(4, 8)), RNG.normal(size=8)           # (n_in, n_out) as MatMul takes them
W2, B2 = RNG.normal(size=(8, 3)), RNG.normal(size=3)


# ----------------------------------------------------------------------------------------- supported
@pytest.mark.parametrize("activation", ["Relu", "Tanh", "Sigmoid"])
def test_matmul_add_and_each_activation(tmp_path, activation):
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"], name="mm1"), helper.make_node("Add", ["h0", "B1"], ["h1"]),
             helper.make_node(activation, ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "W2"], ["h3"]),
             helper.make_node("Add", ["h3", "B2"], ["y"])]
    path = save_graph(tmp_path, nodes, [tensor("W1", W1), tensor("B1", B1), tensor("W2", W2), tensor("B2", B2)])
    network, X = imported(path)
    assert [layer.activation for layer in network.layers] == [activation.lower(), "linear"]
    np.testing.assert_allclose(network.layers[0].weights, W1.T.astype(np.float32))
    check = check_against_runtime(path, network, X)
    assert check.ok and check.relative_difference < 1e-6, check


@pytest.mark.parametrize("trans_b,alpha,beta", [(0, 1.0, 1.0), (1, 0.5, 2.0)])
def test_gemm_with_its_attributes(tmp_path, trans_b, alpha, beta):
    B = W1.T if trans_b else W1
    nodes = [helper.make_node("Gemm", ["x", "B", "C"], ["h"], transB=trans_b, alpha=alpha, beta=beta),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("Gemm", ["r", "W2", "B2"], ["y"])]
    path = save_graph(tmp_path, nodes, [tensor("B", B), tensor("C", B1), tensor("W2", W2), tensor("B2", B2)])
    network, X = imported(path)
    np.testing.assert_allclose(network.layers[0].bias, beta * B1.astype(np.float32), rtol=1e-6)
    assert check_against_runtime(path, network, X).relative_difference < 1e-6


def test_batch_normalization_folds_into_the_layer_before_and_after(tmp_path):
    def bn(name, n):
        return [tensor(f"{name}_s", RNG.uniform(0.5, 1.5, n)), tensor(f"{name}_b", RNG.uniform(-0.2, 0.2, n)),
                tensor(f"{name}_m", RNG.uniform(-0.5, 0.5, n)), tensor(f"{name}_v", RNG.uniform(0.5, 2.0, n))]

    nodes = [helper.make_node("Gemm", ["x", "W1", "B1"], ["h0"]),
             helper.make_node("BatchNormalization", ["h0", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["h1"], epsilon=1e-3),
             helper.make_node("Tanh", ["h1"], ["h2"]),
             helper.make_node("BatchNormalization", ["h2", "bn2_s", "bn2_b", "bn2_m", "bn2_v"], ["h3"]),
             helper.make_node("Identity", ["h3"], ["h4"]), helper.make_node("Gemm", ["h4", "W2", "B2"], ["y"])]
    path = save_graph(tmp_path, nodes, [tensor("W1", W1), tensor("B1", B1), tensor("W2", W2), tensor("B2", B2),
                                        *bn("bn1", 8), *bn("bn2", 8)])
    network, X = imported(path)
    assert [(layer.n_in, layer.n_out, layer.activation) for layer in network.layers] == [(4, 8, "tanh"),
                                                                                         (8, 3, "linear")]
    assert check_against_runtime(path, network, X).relative_difference < 1e-6


def test_flatten_cast_and_reshape_are_taken_as_they_are(tmp_path):
    nodes = [helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT), helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Gemm", ["f", "W", "B"], ["g"]), helper.make_node("Reshape", ["g", "shape"], ["y"])]
    W = RNG.normal(size=(6, 3))
    path = save_graph(tmp_path, nodes, [tensor("W", W), tensor("B", B2),
                                        numpy_helper.from_array(np.array([-1, 3], np.int64), "shape")],
                      input_dims=["batch", 2, 3])
    assert input_features(path) == 6
    network, X = imported(path, n_in=6)
    assert len(network.layers) == 1 and network.layers[0].n_in == 6
    assert check_against_runtime(path, network, X).relative_difference < 1e-6


def test_names_ranges_and_targets_come_from_the_model_and_the_data(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["y"])]
    path = save_graph(tmp_path, nodes, [tensor("W", W2[:4]), tensor("B", B2)])
    X = RNG.uniform(-2, 2, size=(50, 4))
    network = import_onnx(path, X=X, output_unit="degC")
    assert network.output_names == ("y[0]", "y[1]", "y[2]") and network.output_unit == "degC"
    assert network.layers[0].input_range == pytest.approx(1.25 * np.abs(X).max())
    np.testing.assert_allclose(network.y, digital_forward(network, X))         # no targets: the model's own
    labelled = import_onnx(path, X=X, task="classification")
    np.testing.assert_array_equal(labelled.y, np.argmax(runtime(path, X), axis=1))


# ------------------------------------------------------------------------------------------- refused
def refused(tmp_path, nodes, initializers, match, **kwargs):
    path = save_graph(tmp_path, nodes, initializers, **kwargs)
    with pytest.raises(ValueError, match=match) as raised:
        import_onnx(path, X=RNG.uniform(-1, 1, size=(10, 4)))
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)


def test_a_convolution_is_refused_with_its_name_and_node(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "K"], ["c"], name="conv1"), helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Gemm", ["f", "W", "B"], ["y"])]
    refused(tmp_path, nodes, [tensor("K", RNG.normal(size=(1, 1, 3))), tensor("W", W2[:2]), tensor("B", B2)],
            r"unsupported operator Conv in node 'conv1'; supported: Gemm, MatMul", input_dims=["batch", 1, 4])


@pytest.mark.parametrize("op", ["Softmax", "LeakyRelu", "Div"])
def test_other_operators_are_refused_by_name(tmp_path, op):
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["h"]), helper.make_node(op, ["h"] + (["two"] if op == "Div"
                                                                                        else []), ["y"], name="odd")]
    refused(tmp_path, nodes, [tensor("W", W2[:4]), tensor("B", B2), tensor("two", [2.0])],
            rf"unsupported operator {op} in node 'odd'")


def test_a_dynamic_feature_dimension_is_refused_a_dynamic_batch_is_not(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["y"])]
    refused(tmp_path, nodes, [tensor("W", W2[:4]), tensor("B", B2)],
            r"input 'x' has a dynamic feature dimension \('features'\)", input_dims=["batch", "features"])
    path = save_graph(tmp_path, nodes, [tensor("W", W2[:4]), tensor("B", B2)], input_dims=["N", 4], name="ok")
    assert imported(path)[0].layers[0].n_in == 4


def test_a_last_layer_with_an_activation_is_refused(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["h"]), helper.make_node("Sigmoid", ["h"], ["y"], name="out")]
    refused(tmp_path, nodes, [tensor("W", W2[:4]), tensor("B", B2)],
            r"the last layer ends in sigmoid \(Sigmoid node 'out'\): the PLC corrects the raw analog outputs")


def test_a_branching_graph_is_refused(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Add", ["r", "h"], ["y"], name="skip")]
    refused(tmp_path, nodes, [tensor("W", W2[:4]), tensor("B", B2)],
            r"Add node 'skip' takes r, h, not the output of the node before it .* must be a chain of layers")


def test_a_reshape_that_changes_the_rows_is_refused(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["h"]), helper.make_node("Reshape", ["h", "s"], ["y"])]
    refused(tmp_path, nodes, [tensor("W", W2[:4]), tensor("B", B2),
                              numpy_helper.from_array(np.array([-1, 1], np.int64), "s")],
            r"reshapes to \[-1, 1\]; only a reshape that keeps \(batch, 3\)")


def test_a_missing_or_broken_file_and_wrong_data_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match=r"nothing\.onnx: no such file"):
        import_onnx(tmp_path / "nothing.onnx", X=np.zeros((2, 4)))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffnot a protobuf at all" * 10)
    with pytest.raises(ValueError, match=r"garbage\.onnx: not a valid ONNX model") as raised:
        import_onnx(garbage, X=np.zeros((2, 4)))
    assert "\n" not in str(raised.value)
    path = save_graph(tmp_path, [helper.make_node("Gemm", ["x", "W", "B"], ["y"])], [tensor("W", W2[:4]),
                                                                                   tensor("B", B2)])
    with pytest.raises(ValueError, match=r"the data has 5 columns of inputs; the model's input 'x' has 4"):
        import_onnx(path, X=np.zeros((3, 5)))


# ---------------------------------------------------------------- models exported by frameworks
def test_a_pytorch_export_imports_and_matches_onnx_runtime():
    """tests/data/onnx/torch_mlp.onnx: made by make_torch_mlp.py beside it (PyTorch's default exporter)."""
    X = RNG.uniform(-3, 3, size=(500, input_features(TORCH_MODEL)))
    network = import_onnx(TORCH_MODEL, X=X)
    assert [(layer.n_in, layer.n_out, layer.activation) for layer in network.layers] == [
        (6, 24, "relu"), (24, 12, "tanh"), (12, 12, "sigmoid"), (12, 3, "linear")]
    check = check_against_runtime(TORCH_MODEL, network, X)
    assert check.relative_difference <= 1e-5, check
    np.testing.assert_allclose(simulated_outputs(network, X), runtime(TORCH_MODEL, X), rtol=1e-5,
                               atol=1e-5 * np.abs(runtime(TORCH_MODEL, X)).max())


def test_a_scikit_learn_export_imports_and_matches_onnx_runtime(tmp_path):
    sklearn = pytest.importorskip("sklearn.neural_network")
    skl2onnx = pytest.importorskip("skl2onnx")
    X = RNG.uniform(-1, 1, size=(300, 5))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                            # sklearn's convergence warning
        model = sklearn.MLPRegressor(hidden_layer_sizes=(16, 8), activation="tanh", max_iter=200,
                                     random_state=0).fit(X, y)
    path = tmp_path / "mlp.onnx"
    path.write_bytes(skl2onnx.to_onnx(model, X[:1].astype(np.float32), target_opset=17).SerializeToString())
    network = import_onnx(path, X=X, y=y[:, None])
    assert check_against_runtime(path, network, X).relative_difference <= 1e-5
    np.testing.assert_allclose(simulated_outputs(network, X)[:, 0], model.predict(X), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------- the command
def test_import_command_checks_against_runtime_and_writes_only_then(tmp_path):
    from cli import main

    runner = CliRunner()
    out = tmp_path / "mine.npz"
    data = tmp_path / "data.npz"
    np.savez(data, X=RNG.uniform(-2, 2, size=(64, 6)))
    result = runner.invoke(main, ["import", str(TORCH_MODEL), "--out", str(out), "--data", str(data),
                                  "--tolerance", "0"])
    assert result.exit_code == 1 and "above the tolerance 0" in result.output and not out.exists()
    result = runner.invoke(main, ["import", str(TORCH_MODEL), "--out", str(out), "--data", str(data),
                                  "--output-unit", "m3/h"])
    assert result.exit_code == 0, result.output
    assert re.search(r"max abs difference \S+, relative \S+ \(tolerance 1e-05\)", result.output)
    network = load_network(out)
    assert network.output_names == ("flow[0]", "flow[1]", "flow[2]") and network.output_unit == "m3/h"
    result = runner.invoke(main, ["import", str(TORCH_MODEL), "--out", str(out), "--input-range", "1"])
    assert result.exit_code == 1 and "exists" in result.output
    result = runner.invoke(main, ["import", str(TORCH_MODEL), "--out", str(tmp_path / "x.npz")])
    assert result.exit_code == 2 and "--data FILE" in result.output


def test_without_the_extra_the_command_says_which_to_install(tmp_path):
    code = ("import sys; sys.modules['onnx'] = None; from cli import main; "
            f"main(['import', {str(TORCH_MODEL)!r}, '--out', {str(tmp_path / 'x.npz')!r}, '--input-range', '1'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: reading ONNX models needs the onnx package: pip install 'plc-anna[onnx]'"
    assert not (tmp_path / "x.npz").exists()
