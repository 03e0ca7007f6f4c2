"""Held-out data for an imported network: the process's inputs (and targets) from a ``.npz`` or ``.csv`` file.

The DAC/ADC ranges of an imported network come from these inputs (``docs/network-format.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_data(path: str | Path, n_in: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Held-out data from ``.npz`` (keys ``X`` and optionally ``y``) or ``.csv`` (a row per sample: the inputs,
    then optionally the targets; a header row is skipped). ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = list(data.files)
                X = data["X"] if "X" in keys else None
                y = data["y"] if "y" in keys else None
        except (OSError, ValueError) as exc:            # not a zip, a pickled object, a damaged array
            raise ValueError(f"{path}: cannot read the data: {exc}") from None
        if X is None:
            raise ValueError(f"{path}: no array 'X' (the inputs); keys: {', '.join(keys)}")
    elif path.suffix == ".csv":
        try:
            table = np.genfromtxt(path, delimiter=",", dtype=np.float64)
        except ValueError as exc:
            raise ValueError(f"{path}: cannot read the CSV: {exc}") from None
        table = np.atleast_2d(table)
        if np.all(np.isnan(table[0])):
            table = table[1:]                                  # the header
        if n_in is None or table.shape[1] < n_in:
            raise ValueError(f"{path}: {table.shape[1]} columns; the model takes {n_in} inputs")
        X, y = table[:, :n_in], (table[:, n_in:] if table.shape[1] > n_in else None)
    else:
        raise ValueError(f"{path}: data must be a .npz (X, y) or a .csv file")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0 or not np.all(np.isfinite(X)):
        raise ValueError(f"{path}: X must be a non-empty 2-D array of finite numbers, got shape {X.shape}")
    return X, y


__all__ = ["load_data"]
