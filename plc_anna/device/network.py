"""Network files: the programmed weights of an analog network and its task.

A network is stored as a NumPy ``.npz`` archive (format documented in
``docs/network-format.md``). Loading validates every array and names the
offending key on error; nothing in this module knows about device physics.

The *digital* forward pass defined here is the ideal network: the reference
against which drift, noise and every correction are measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from plc_anna.activations import ACTIVATIONS, activate

FORMAT_VERSION = 1
TASKS = ("classification", "regression")
#: Headroom applied when converter ranges are derived from held-out data: the
#: DAC full scale is 1.25 x the largest input seen, the ADC full scale 1.5 x
#: the largest pre-activation, so live data a little outside the held-out set
#: is not clipped.
INPUT_HEADROOM = 1.25
OUTPUT_HEADROOM = 1.5

SHIPPED_NETWORKS = ("digits", "thermocouple")


@dataclass(frozen=True)
class Layer:
    """One fully connected layer: ``activation(x @ weights.T + bias)``.

    ``input_range`` is the DAC full scale (inputs are clipped to
    ``±input_range``), ``output_range`` the ADC full scale of the
    pre-activation output, both in the layer's own units.
    """

    weights: np.ndarray  # (n_out, n_in)
    bias: np.ndarray  # (n_out,)
    activation: str
    input_range: float
    output_range: float

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[0])


@dataclass(frozen=True)
class Network:
    """A programmed network: layers, task, names and optional held-out data."""

    name: str
    task: str
    layers: tuple[Layer, ...]
    output_names: tuple[str, ...]
    output_unit: str
    description: str = ""
    X: np.ndarray | None = field(default=None, repr=False)  # (n, n_in)
    y: np.ndarray | None = field(default=None, repr=False)  # (n,) labels or (n, n_out)

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out

    @property
    def metric_name(self) -> str:
        return "accuracy" if self.task == "classification" else "rmse"


def check_inputs(network: Network, X: np.ndarray) -> np.ndarray:
    """Return ``X`` as a finite float array of shape (n, n_inputs) or raise ValueError."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != network.n_inputs:
        raise ValueError(
            f"inputs must have shape (n, {network.n_inputs}) for network "
            f"{network.name!r}; got {X.shape}"
        )
    if not np.all(np.isfinite(X)):
        raise ValueError("inputs contain NaN or Inf")
    return X


def digital_forward(network: Network, X: np.ndarray) -> np.ndarray:
    """Outputs of the ideal digital network, shape (n, n_outputs)."""
    a = check_inputs(network, X)
    for layer in network.layers:
        a = activate(a @ layer.weights.T + layer.bias, layer.activation)
    return a


def task_metric(network: Network, outputs: np.ndarray, y: np.ndarray) -> float:
    """Accuracy (classification) or RMSE in output units (regression).

    Examples
    --------
    >>> net = load_network("digits")
    >>> round(task_metric(net, digital_forward(net, net.X), net.y), 3) > 0.9
    True
    """
    outputs = np.asarray(outputs, dtype=float)
    if network.task == "classification":
        return float(np.mean(np.argmax(outputs, axis=1) == np.asarray(y)))
    return float(np.sqrt(np.mean((outputs - np.asarray(y, dtype=float)) ** 2)))


# --------------------------------------------------------------------------- files


def _scalar_str(data, key: str, default: str | None = None) -> str:
    if key not in data:
        if default is None:
            raise ValueError(f"network file lacks required key {key!r}")
        return default
    value = data[key]
    if value.dtype.kind != "U" or value.ndim != 0:
        raise ValueError(f"{key!r} must be a string, got an array of dtype {value.dtype}")
    return str(value)


def _str_tuple(data, key: str, length: int, default: tuple[str, ...]) -> tuple[str, ...]:
    if key not in data:
        return default
    value = data[key]
    if value.dtype.kind != "U" or value.shape != (length,):
        raise ValueError(f"{key!r} must be {length} strings, got dtype {value.dtype} shape {value.shape}")
    return tuple(str(v) for v in value)


def _float_array(data, key: str, shape_desc: str, ndim: int) -> np.ndarray:
    if key not in data:
        raise ValueError(f"network file lacks required key {key!r}")
    value = data[key]
    if value.dtype.kind not in "fiu" or value.ndim != ndim:
        raise ValueError(f"{key!r} must be a numeric array of shape {shape_desc}, got {value.dtype} {value.shape}")
    value = value.astype(float)
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{key!r} contains NaN or Inf")
    return value


def _optional_range(data, key: str) -> float | None:
    if key not in data:
        return None
    value = data[key]
    if value.ndim != 0 or value.dtype.kind not in "fiu":
        raise ValueError(f"{key!r} must be a positive number, got {value.dtype} {value.shape}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{key!r} must be a positive finite number, got {value}")
    return value


def resolve_network_path(name_or_path: str | Path) -> Path:
    """Map a shipped network name or a file path to an existing ``.npz`` path."""
    text = str(name_or_path)
    if text in SHIPPED_NETWORKS:
        return Path(str(resources.files("plc_anna.networks").joinpath(f"{text}.npz")))
    path = Path(text)
    if not path.is_file():
        raise ValueError(
            f"network {text!r} is neither a shipped network ({', '.join(SHIPPED_NETWORKS)}) "
            "nor an existing .npz file"
        )
    return path


def load_network(name_or_path: str | Path) -> Network:
    """Load and validate a network by shipped name or ``.npz`` path.

    Raises ``ValueError`` naming the key for any malformed content.
    """
    path = resolve_network_path(name_or_path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({exc})") from exc
    with archive as data:
        try:
            arrays = _read_all(data)
            return _parse(arrays, default_name=path.stem)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _read_all(data) -> "_ArrayMap":
    """Read every array of an open archive, refusing pickled Python objects by key."""
    arrays = _ArrayMap()
    for key in data.files:
        try:
            arrays[key] = data[key]
        except ValueError:
            raise ValueError(f"key {key!r} holds Python objects (pickle), which are refused; "
                             "store plain numeric or string arrays") from None
    return arrays


def _parse(data, default_name: str) -> Network:
    version = int(data["format_version"]) if "format_version" in data else None
    if version != FORMAT_VERSION:
        raise ValueError(f"'format_version' must be {FORMAT_VERSION}, got {version}")
    known = {"format_version", "name", "description", "task", "n_layers", "output_names",
             "output_unit", "X", "y"}
    task = _scalar_str(data, "task")
    if task not in TASKS:
        raise ValueError(f"'task' must be one of {', '.join(TASKS)}, got {task!r}")
    if "n_layers" not in data or data["n_layers"].ndim != 0 or data["n_layers"].dtype.kind not in "iu":
        raise ValueError("'n_layers' must be a positive integer")
    n_layers = int(data["n_layers"])
    if n_layers < 1:
        raise ValueError(f"'n_layers' must be at least 1, got {n_layers}")

    raw_layers = []
    for i in range(n_layers):
        p = f"layer{i}_"
        known |= {p + k for k in ("weights", "bias", "activation", "input_range", "output_range")}
        w = _float_array(data, p + "weights", "(n_out, n_in)", 2)
        b = _float_array(data, p + "bias", "(n_out,)", 1)
        if b.shape[0] != w.shape[0]:
            raise ValueError(f"{p}bias has {b.shape[0]} values but {p}weights has {w.shape[0]} rows")
        if raw_layers and w.shape[1] != raw_layers[-1][0].shape[0]:
            raise ValueError(
                f"{p}weights expects {w.shape[1]} inputs but layer{i - 1} has {raw_layers[-1][0].shape[0]} outputs"
            )
        if not np.any(w):
            raise ValueError(f"{p}weights are all zero")
        act = _scalar_str(data, p + "activation", default="linear")
        if act not in ACTIVATIONS:
            raise ValueError(f"{p}activation must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        raw_layers.append((w, b, act, _optional_range(data, p + "input_range"),
                           _optional_range(data, p + "output_range")))
    if raw_layers[-1][2] != "linear":
        raise ValueError(
            f"layer{n_layers - 1}_activation must be 'linear': the last layer's raw analog output is "
            "what the PLC corrects, so any output function belongs to the PLC program"
        )
    unknown = sorted(set(data.files) - known)
    if unknown:
        raise ValueError(f"unknown keys {unknown}; see docs/network-format.md")

    n_in, n_out = raw_layers[0][0].shape[1], raw_layers[-1][0].shape[0]
    X = y = None
    if "X" in data:
        X = _float_array(data, "X", f"(n, {n_in})", 2)
        if X.shape[1] != n_in:
            raise ValueError(f"'X' must have {n_in} columns, got {X.shape[1]}")
        if "y" not in data:
            raise ValueError("'X' is present but 'y' is missing")
        if task == "classification":
            y = data["y"]
            if y.dtype.kind not in "iu" or y.shape != (X.shape[0],):
                raise ValueError(f"'y' must be {X.shape[0]} integer labels, got {y.dtype} {y.shape}")
            if y.min() < 0 or y.max() >= n_out:
                raise ValueError(f"'y' labels must lie in 0..{n_out - 1}")
        else:
            y = _float_array(data, "y", f"({X.shape[0]}, {n_out})", 2)
            if y.shape != (X.shape[0], n_out):
                raise ValueError(f"'y' must have shape ({X.shape[0]}, {n_out}), got {y.shape}")
    elif "y" in data:
        raise ValueError("'y' is present but 'X' is missing")

    layers = _with_ranges(raw_layers, X)
    return Network(
        name=_scalar_str(data, "name", default=default_name),
        task=task,
        layers=layers,
        output_names=_str_tuple(data, "output_names", n_out, tuple(f"y{j}" for j in range(n_out))),
        output_unit=_scalar_str(data, "output_unit", default=""),
        description=_scalar_str(data, "description", default=""),
        X=X,
        y=y,
    )


def _with_ranges(raw_layers, X: np.ndarray | None) -> tuple[Layer, ...]:
    """Fill converter ranges absent from the file from the held-out inputs."""
    layers = []
    a = X
    for i, (w, b, act, in_range, out_range) in enumerate(raw_layers):
        z = None if a is None else a @ w.T + b
        if in_range is None or out_range is None:
            if a is None:
                missing = "input_range" if in_range is None else "output_range"
                raise ValueError(
                    f"layer{i}_{missing} is not given and the file has no held-out 'X' to derive it from"
                )
            if in_range is None:
                in_range = INPUT_HEADROOM * max(float(np.max(np.abs(a))), 1e-12)
            if out_range is None:
                out_range = OUTPUT_HEADROOM * max(float(np.max(np.abs(z))), 1e-12)
        layers.append(Layer(w, b, act, in_range, out_range))
        a = None if z is None else activate(z, act)
    return tuple(layers)


def save_network(network: Network, path: str | Path) -> None:
    """Write ``network`` to ``path`` in the documented ``.npz`` format.

    The file is written to a temporary name and renamed, so an existing file
    is never left half-written.
    """
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION),
        "name": np.array(network.name),
        "description": np.array(network.description),
        "task": np.array(network.task),
        "n_layers": np.array(len(network.layers)),
        "output_names": np.array(network.output_names),
        "output_unit": np.array(network.output_unit),
    }
    for i, layer in enumerate(network.layers):
        p = f"layer{i}_"
        arrays[p + "weights"] = np.asarray(layer.weights, dtype=float)
        arrays[p + "bias"] = np.asarray(layer.bias, dtype=float)
        arrays[p + "activation"] = np.array(layer.activation)
        arrays[p + "input_range"] = np.array(float(layer.input_range))
        arrays[p + "output_range"] = np.array(float(layer.output_range))
    if network.X is not None:
        arrays["X"] = np.asarray(network.X, dtype=float)
        arrays["y"] = np.asarray(network.y)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def network_from_arrays(
    name: str,
    task: str,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    activations: list[str],
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
    output_names: tuple[str, ...] | None = None,
    output_unit: str = "",
    description: str = "",
) -> Network:
    """Build a validated :class:`Network` from plain arrays (ranges derived from ``X``).

    Goes through the same validation as :func:`load_network`.
    """
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION),
        "name": np.array(name),
        "description": np.array(description),
        "task": np.array(task),
        "n_layers": np.array(len(weights)),
        "output_unit": np.array(output_unit),
    }
    if output_names is not None:
        arrays["output_names"] = np.array(output_names)
    for i, (w, b, act) in enumerate(zip(weights, biases, activations, strict=True)):
        arrays[f"layer{i}_weights"] = np.asarray(w)
        arrays[f"layer{i}_bias"] = np.asarray(b)
        arrays[f"layer{i}_activation"] = np.array(act)
    if X is not None:
        arrays["X"] = np.asarray(X)
    if y is not None:
        arrays["y"] = np.asarray(y)
    return _parse(_ArrayMap(arrays), default_name=name)


class _ArrayMap(dict):
    """A dict that answers ``.files`` like an open ``NpzFile``."""

    @property
    def files(self) -> list[str]:
        return list(self.keys())
