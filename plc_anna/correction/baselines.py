"""The corrections plc-anna is measured against, as plain functions over arrays.

- **GDC**, global drift compensation as IBM aihwkit defines it: read the
  layer with one-hot inputs (the identity matrix, with the device's own
  noise) right after programming and again now; scale every output of the
  layer by ``mean|readout(t0)| / mean|readout(t)|``.
- **per-column GDC**: the same ratio per output column.
- **oracle**: the per-column least-squares affine fit of the raw outputs to
  the ideal digital outputs. It needs labels (the ideal outputs of every
  sample) and is the best any per-column affine correction can do.
"""

from __future__ import annotations

import numpy as np


def _readouts(readout_t0: np.ndarray, readout_now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(readout_t0, dtype=float), np.asarray(readout_now, dtype=float)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"readouts must be two (n_in, n_out) arrays of one shape, got {a.shape} and {b.shape}")
    return a, b


def gdc_scale(readout_t0: np.ndarray, readout_now: np.ndarray) -> float:
    """One scale for the whole layer: ``mean|r_t0| / mean|r_now|``.

    Examples
    --------
    >>> gdc_scale(np.array([[1.0, -2.0]]), np.array([[0.5, -1.0]]))
    2.0
    """
    a, b = _readouts(readout_t0, readout_now)
    return float(np.mean(np.abs(a)) / max(np.mean(np.abs(b)), 1e-12))


def gdc_column_scale(readout_t0: np.ndarray, readout_now: np.ndarray) -> np.ndarray:
    """One scale per column: ``mean_i |r_t0[i, j]| / mean_i |r_now[i, j]|``.

    Examples
    --------
    >>> gdc_column_scale(np.array([[1.0, -2.0]]), np.array([[0.5, -1.0]]))
    array([2., 2.])
    """
    a, b = _readouts(readout_t0, readout_now)
    return np.mean(np.abs(a), axis=0) / np.maximum(np.mean(np.abs(b), axis=0), 1e-12)


def oracle_affine(raw: np.ndarray, ideal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column least-squares (gain, offset) minimising ``|gain · raw + offset − ideal|²``.

    Examples
    --------
    >>> raw = np.array([[0.0], [1.0], [2.0]])
    >>> oracle_affine(raw, 3.0 * raw + 1.0)
    (array([3.]), array([1.]))
    """
    raw, ideal = np.asarray(raw, dtype=float), np.asarray(ideal, dtype=float)
    if raw.ndim != 2 or raw.shape != ideal.shape or raw.shape[0] < 2:
        raise ValueError(f"raw and ideal must be (n >= 2, k) arrays of one shape, got {raw.shape} and {ideal.shape}")
    raw_c = raw - raw.mean(axis=0)
    var = np.sum(raw_c**2, axis=0)
    gain = np.where(var > 0, np.sum(raw_c * (ideal - ideal.mean(axis=0)), axis=0) / np.where(var > 0, var, 1.0), 1.0)
    return gain, ideal.mean(axis=0) - gain * raw.mean(axis=0)
