"""A network from an ONNX model: the exchange format PyTorch, Keras and scikit-learn export (``plc-anna import``).

The graph must be a chain of fully connected layers, as an analog crossbar computes them:

==========================  ===================================================================
operator                    becomes
==========================  ===================================================================
``Gemm``                    a layer: ``W = alpha * op(B)^T``, ``b = beta * C`` (``transA = 0``)
``MatMul`` (+ ``Add``)      a layer: ``W = B^T``; an ``Add`` of a constant right after it is its bias
``Relu``, ``Tanh``,         the activation of the layer before it (``relu``, ``tanh``, ``sigmoid``)
``Sigmoid``
``BatchNormalization``      folded: into the layer before it while that has no activation yet
                            (``W' = diag(s) W``, ``b' = s (b - mean) + beta``, ``s = scale / sqrt(var +
                            eps)``), else into the layer after it (``W' = W diag(s)``, ``b' = b + W t``)
``Identity``, ``Flatten``   nothing (``Flatten`` of the input with ``axis = 1``)
``Cast``, ``Reshape``       nothing, when a ``Cast`` is to a float type and a ``Reshape`` keeps
                            ``(batch, features)`` (scikit-learn's converter adds both)
==========================  ===================================================================

Any other operator is refused with its name and node; so is a graph that branches, an input with a
dynamic feature dimension (a dynamic batch dimension, as frameworks export by default, is fine), and
a last layer with an activation (the PLC corrects the raw analog outputs: the output function belongs
to the PLC program). Weights come from the graph's initializers (or ``Constant`` nodes).

``onnx`` is needed to read the file, ``onnxruntime`` to check the import (:func:`check_against_runtime`):
both in the ``onnx`` extra (``pip install 'plc-anna[onnx]'``). The numerics and the device never
import this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plc_anna.device.network import Network, digital_forward, network_from_arrays

ACTIVATIONS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}
SUPPORTED = ("Gemm", "MatMul", "Add", *ACTIVATIONS, "Identity", "Flatten", "BatchNormalization", "Cast", "Reshape",
             "Constant")
EXTRA = "pip install 'plc-anna[onnx]'"


class MissingExtra(ImportError):
    """``onnx`` or ``onnxruntime`` is not installed; the message says which extra to install."""


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise MissingExtra(f"reading ONNX models needs the onnx package: {EXTRA}") from None
    return onnx, numpy_helper


@dataclass
class _Layer:
    weights: np.ndarray                 # (n_out, n_in)
    bias: np.ndarray                    # (n_out,)
    activation: str = "linear"
    node: str = ""


@dataclass
class _Chain:
    """The layers found so far, and a per-feature affine (a BatchNormalization) waiting for the next layer."""

    n_in: int
    layers: list[_Layer] = field(default_factory=list)
    pending: tuple[np.ndarray, np.ndarray] | None = None     # x -> scale * x + shift, before the next layer

    @property
    def width(self) -> int:
        return self.layers[-1].weights.shape[0] if self.layers else self.n_in

    def open_layer(self) -> _Layer | None:
        """The last layer while it can still take a bias or a fold (no activation yet)."""
        return self.layers[-1] if self.layers and self.layers[-1].activation == "linear" else None

    def add_layer(self, weights: np.ndarray, bias: np.ndarray, node: str) -> None:
        if self.pending is not None:                          # fold x -> s x + t into this layer's inputs
            scale, shift = self.pending
            bias = bias + weights @ shift
            weights = weights * scale[None, :]
            self.pending = None
        self.layers.append(_Layer(weights, bias, node=node))


def _read(path: str | Path):
    """The checked model, its constants, and its graph's one input and output; ValueError naming the file."""
    onnx, numpy_helper = _onnx()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ...: all mean "not a model we can read"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a valid ONNX model: {first}") from None
    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init).astype(np.float64) for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(f"{path}: the graph has {len(inputs)} input(s) and {len(graph.output)} output(s); "
                         "a network has one of each")
    return model, constants, inputs[0], graph.output[0]


def input_features(path: str | Path) -> int:
    """The number of features the model's input takes (all dimensions after the batch)."""
    _, _, source, _ = _read(path)
    return abs(_features(Path(path), source))


def import_onnx(path: str | Path, *, name: str | None = None, task: str = "regression",
                X: np.ndarray | None = None, y: np.ndarray | None = None, output_unit: str = "",
                description: str | None = None) -> Network:
    """Read an ONNX model as a :class:`~plc_anna.device.network.Network`.

    Parameters
    ----------
    path
        The ``.onnx`` file.
    name
        The network's name (default: the file's stem).
    task
        ``regression`` or ``classification`` (the outputs are then the logits).
    X, y
        Held-out inputs (the DAC/ADC ranges are derived from them) and targets; without ``y`` the
        model's own outputs on ``X`` are the targets (its digital behaviour), the class of the largest
        output for a classifier.
    output_unit, description
        As in ``docs/network-format.md``.

    Raises
    ------
    ValueError
        For a file that is not an ONNX model, an unsupported operator (naming it and its node), a graph
        that is not a chain, a dynamic feature dimension, a last layer with an activation, or data of the
        wrong width, each in one line naming the file.
    MissingExtra
        When the ``onnx`` package is missing.
    """
    onnx, numpy_helper = _onnx()
    path = Path(path)
    model, constants, source, output = _read(path)
    chain = _Chain(_features(path, source))
    current = source.name
    for node in model.graph.node:
        label = f"{node.op_type} node {node.name or '(unnamed)'!r}"
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t).astype(np.float64)
            continue
        if node.op_type not in SUPPORTED:
            raise ValueError(f"{path}: unsupported operator {node.op_type} in node {node.name or '(unnamed)'!r}; "
                             f"supported: {', '.join(op for op in SUPPORTED if op != 'Constant')}")
        data = [name for name in node.input if name and name not in constants]
        if data != [current]:
            raise ValueError(f"{path}: {label} takes {', '.join(data) or 'only constants'}, not the output of the "
                             f"node before it ({current!r}): the graph must be a chain of layers")
        _apply(path, chain, node, label, constants, onnx)
        current = node.output[0]
    if current != output.name:
        raise ValueError(f"{path}: the graph's output {output.name!r} is not the end of the chain ({current!r})")
    if not chain.layers:
        raise ValueError(f"{path}: the graph has no Gemm or MatMul: no layer to program")
    if chain.pending is not None:
        raise ValueError(f"{path}: a BatchNormalization after the last layer's activation cannot be folded into "
                         "any layer")
    last = chain.layers[-1]
    if last.activation != "linear":
        raise ValueError(f"{path}: the last layer ends in {last.activation} ({last.node}): the PLC corrects the raw "
                         "analog outputs, so the output function belongs to the PLC program; export the model "
                         "without it")
    n_out = last.weights.shape[0]
    output_names = (output.name,) if n_out == 1 else tuple(f"{output.name}[{j}]" for j in range(n_out))
    weights = [layer.weights for layer in chain.layers]
    biases = [layer.bias for layer in chain.layers]
    activations = [layer.activation for layer in chain.layers]
    if X is not None:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != chain.n_in:
            raise ValueError(f"{path}: the data has {X.shape[1] if X.ndim == 2 else X.shape} columns of inputs; "
                             f"the model's input {source.name!r} has {chain.n_in} features")
        if y is None:
            probe = network_from_arrays("probe", "regression", weights, biases, activations,
                                        X=X[:1], y=np.zeros((1, n_out)))
            outputs = digital_forward(probe, X)
            y = np.argmax(outputs, axis=1) if task == "classification" else outputs
    if description is None:
        description = (f"imported from {path.name} (ONNX, producer {model.producer_name or 'unknown'} "
                       f"{model.producer_version}); input {source.name!r}, output {output.name!r}")
    try:
        return network_from_arrays(name or path.stem, task, weights, biases, activations, X=X, y=y,
                                   output_names=output_names, output_unit=output_unit, description=description)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _features(path: Path, value) -> int:
    """The fixed feature count of the graph's input (its dimensions after the batch)."""
    dims = value.type.tensor_type.shape.dim
    if len(dims) < 2:
        raise ValueError(f"{path}: input {value.name!r} has {len(dims)} dimension(s); a network takes a batch of "
                         "feature vectors (batch, features)")
    count = 1
    for dim in dims[1:]:
        if not dim.HasField("dim_value") or dim.dim_value < 1:
            shown = dim.dim_param or "?"
            raise ValueError(f"{path}: input {value.name!r} has a dynamic feature dimension ({shown!r}): export the "
                             "model with a fixed number of features (a dynamic batch dimension is fine)")
        count *= dim.dim_value
    if len(dims) > 2:
        return -count                                         # must be flattened before the first layer
    return count


def _attributes(node, onnx) -> dict:
    return {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}


def _apply(path: Path, chain: _Chain, node, label: str, constants: dict, onnx) -> None:
    """Take one node into the chain."""
    op, attributes = node.op_type, _attributes(node, onnx)
    if chain.n_in < 0 and op not in ("Flatten", "Identity", "Cast"):
        raise ValueError(f"{path}: {label} gets a multi-dimensional input: flatten it first (Flatten, axis = 1)")
    if op == "Identity":
        return
    if op == "Cast":
        to = attributes.get("to")
        if to not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
            raise ValueError(f"{path}: {label} casts to {onnx.TensorProto.DataType.Name(to)}; only a cast to a float "
                             "type keeps the values")
        return
    if op == "Reshape":
        shape = _constant(path, constants, node.input[1], label).astype(np.int64).reshape(-1).tolist()
        if len(shape) != 2 or shape[1] != chain.width or shape[0] not in (-1, 0):
            raise ValueError(f"{path}: {label} reshapes to {shape}; only a reshape that keeps (batch, "
                             f"{chain.width}) is supported")
        return
    if op == "Flatten":
        if attributes.get("axis", 1) != 1:
            raise ValueError(f"{path}: {label} has axis {attributes['axis']}; only axis = 1 (keep the batch) is "
                             "supported")
        chain.n_in = abs(chain.n_in) if not chain.layers else chain.n_in
        return
    if op in ACTIVATIONS:
        layer = chain.layers[-1] if chain.layers else None
        if layer is None or layer.activation != "linear" or chain.pending is not None:
            raise ValueError(f"{path}: {label} does not follow a layer: an activation must come right after "
                             "Gemm, MatMul or Add")
        layer.activation, layer.node = ACTIVATIONS[op], label
        return
    weight_names = [name for name in node.input[1:] if name]
    if op == "Gemm":
        if attributes.get("transA", 0):
            raise ValueError(f"{path}: {label} has transA = 1: the layer's input must be its first operand as is")
        B = _constant(path, constants, node.input[1], label, ndim=2)
        W = B if attributes.get("transB", 0) else B.T
        W = float(attributes.get("alpha", 1.0)) * W
        bias = np.zeros(W.shape[0])
        if len(node.input) > 2 and node.input[2]:
            C = _constant(path, constants, node.input[2], label)
            bias = float(attributes.get("beta", 1.0)) * np.broadcast_to(C, (W.shape[0],)).astype(np.float64)
        _check_width(path, chain, W, label)
        chain.add_layer(W, bias.copy(), label)
    elif op == "MatMul":
        B = _constant(path, constants, node.input[1], label, ndim=2)
        _check_width(path, chain, B.T, label)
        chain.add_layer(B.T.copy(), np.zeros(B.shape[1]), label)
    elif op == "Add":
        layer = chain.open_layer()
        if layer is None:
            raise ValueError(f"{path}: {label} adds a constant outside a layer: only a bias right after Gemm or "
                             "MatMul is supported")
        C = _constant(path, constants, weight_names[0], label)
        if C.size not in (1, layer.bias.size):
            raise ValueError(f"{path}: {label} adds {C.size} values to a layer of {layer.bias.size} outputs")
        layer.bias = layer.bias + C.reshape(-1)
    elif op == "BatchNormalization":
        scale, shift, mean, var = (_constant(path, constants, name, label).reshape(-1) for name in node.input[1:5])
        s = scale / np.sqrt(var + float(attributes.get("epsilon", 1e-5)))
        if s.size != chain.width:
            raise ValueError(f"{path}: {label} normalizes {s.size} features; the data there has {chain.width}")
        layer = chain.open_layer()
        if layer is not None:                                  # into the layer before: its outputs scaled
            layer.weights = layer.weights * s[:, None]
            layer.bias = s * (layer.bias - mean) + shift
        elif chain.pending is None:                            # into the layer after: its inputs scaled
            chain.pending = (s, shift - s * mean)
        else:
            raise ValueError(f"{path}: {label} follows another BatchNormalization with no layer between")


def _constant(path: Path, constants: dict, name: str, label: str, ndim: int | None = None) -> np.ndarray:
    if name not in constants:
        raise ValueError(f"{path}: {label} needs {name!r} as a constant (an initializer): weights computed in the "
                         "graph are not supported")
    value = constants[name]
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{path}: {label}: {name!r} has {value.ndim} dimension(s), expected {ndim}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{path}: {label}: {name!r} holds NaN or Inf")
    return value


def _check_width(path: Path, chain: _Chain, W: np.ndarray, label: str) -> None:
    if chain.n_in < 0:
        raise ValueError(f"{path}: {label} gets a multi-dimensional input: flatten it first (Flatten, axis = 1)")
    if W.shape[1] != chain.width:
        raise ValueError(f"{path}: {label} takes {W.shape[1]} inputs; the data there has {chain.width}")


@dataclass(frozen=True)
class RuntimeCheck:
    """The imported network against ONNX Runtime on the same inputs."""

    samples: int
    max_abs_difference: float
    relative_difference: float
    """``max |network - runtime|`` over ``max |runtime|``."""
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.relative_difference <= self.tolerance


def check_against_runtime(path: str | Path, network: Network, X: np.ndarray, tolerance: float = 1e-5) -> RuntimeCheck:
    """Run the model in ONNX Runtime and the imported network (float64) on ``X``; compare their outputs.

    Raises
    ------
    MissingExtra
        When ``onnxruntime`` is missing.
    """
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtra(f"checking the import needs the onnxruntime package: {EXTRA}") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0]
    shape = [len(X), *[d if isinstance(d, int) else None for d in source.shape[1:]]]
    batch = np.asarray(X, dtype=np.float32)
    if len(shape) > 2 and all(isinstance(d, int) for d in shape[1:]):
        batch = batch.reshape(shape)
    expected = np.asarray(session.run(None, {source.name: batch})[0], dtype=np.float64).reshape(len(X), -1)
    found = digital_forward(network, np.asarray(X, dtype=np.float64))
    difference = float(np.max(np.abs(found - expected))) if expected.size else 0.0
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    relative = difference / scale if scale > 0 else (0.0 if difference == 0 else math.inf)
    return RuntimeCheck(len(X), difference, relative, tolerance)


__all__ = ["ACTIVATIONS", "SUPPORTED", "MissingExtra", "RuntimeCheck", "check_against_runtime", "import_onnx",
           "input_features"]
