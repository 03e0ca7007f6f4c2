"""Streaming moments of a layer's inputs and outputs: what a least-squares response needs, and no more.

For inputs ``u`` (d) and outputs ``y`` (k) a linear response needs the input
scatter ``S_uu`` (d × d), the cross scatter ``S_uy`` (d × k) and each output's
own scatter ``diag S_yy`` (k): never the k × k output covariance. The cost of a
batch of ``n`` samples is therefore ``O(n·d·(d + k))``: linear in the columns.
Batches merge with the parallel formula of Chan, Golub & LeVeque (1979), as in
:mod:`plc_anna.stats.moments`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class CrossMoments:
    """Count, means and centred scatters of paired samples ``(u, y)``.

    Attributes
    ----------
    count : number of samples.
    input_mean : (d,) mean of ``u``.
    output_mean : (k,) mean of ``y``.
    input_scatter : (d, d) ``Σ (u − ū)(u − ū)ᵀ``.
    cross_scatter : (d, k) ``Σ (u − ū)(y − ȳ)ᵀ``.
    output_scatter : (k,) ``Σ (y − ȳ)²`` per column.

    Examples
    --------
    >>> u = np.array([[0.0], [1.0], [2.0]]); y = 2 * u + 1
    >>> m = cross_moments(u, y)
    >>> float(m.count), m.input_scatter.tolist(), m.cross_scatter.tolist(), m.output_scatter.tolist()
    (3.0, [[2.0]], [[4.0]], [8.0])
    >>> a = merge_cross(cross_moments(u[:1], y[:1]), cross_moments(u[1:], y[1:]))
    >>> a.input_scatter.tolist(), a.cross_scatter.tolist(), a.output_mean.tolist()
    ([[2.0]], [[4.0]], [3.0])
    """

    count: float
    input_mean: np.ndarray
    output_mean: np.ndarray
    input_scatter: np.ndarray
    cross_scatter: np.ndarray
    output_scatter: np.ndarray

    @property
    def n_inputs(self) -> int:
        return int(self.input_mean.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.output_mean.shape[0])

    def about(self, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The input scatter and the input sums about ``centre`` instead of the mean:
        ``(Σ (u − c)(u − c)ᵀ, Σ (u − c))``."""
        shift = self.input_mean - np.asarray(centre, dtype=float)
        return self.input_scatter + self.count * np.outer(shift, shift), self.count * shift


def empty_cross(n_inputs: int, n_outputs: int) -> CrossMoments:
    """The moments of no samples: the identity of :func:`merge_cross`."""
    return CrossMoments(0.0, np.zeros(n_inputs), np.zeros(n_outputs), np.zeros((n_inputs, n_inputs)),
                        np.zeros((n_inputs, n_outputs)), np.zeros(n_outputs))


def cross_moments(inputs: np.ndarray, outputs: np.ndarray) -> CrossMoments:
    """The moments of one batch (two passes: means first, then centred products)."""
    inputs, outputs = np.asarray(inputs, dtype=float), np.asarray(outputs, dtype=float)
    if inputs.ndim != 2 or outputs.ndim != 2 or inputs.shape[0] != outputs.shape[0] or inputs.shape[0] < 1:
        raise ValueError(f"inputs and outputs must be (n >= 1, d) and (n, k) arrays, got {inputs.shape} and "
                         f"{outputs.shape}")
    u_mean, y_mean = inputs.mean(axis=0), outputs.mean(axis=0)
    du, dy = inputs - u_mean, outputs - y_mean
    scatter = du.T @ du
    return CrossMoments(float(inputs.shape[0]), u_mean, y_mean, 0.5 * (scatter + scatter.T), du.T @ dy,
                        np.einsum("ij,ij->j", dy, dy))


def merge_cross(a: CrossMoments, b: CrossMoments) -> CrossMoments:
    """The moments of the union of two samples; either may be empty."""
    if a.input_mean.shape != b.input_mean.shape or a.output_mean.shape != b.output_mean.shape:
        raise ValueError("cannot merge moments of layers of different shapes")
    if not b.count > 0:
        return a
    if not a.count > 0:
        return b
    count = a.count + b.count
    du, dy = b.input_mean - a.input_mean, b.output_mean - a.output_mean
    f = a.count * b.count / count
    return CrossMoments(count, a.input_mean + du * (b.count / count), a.output_mean + dy * (b.count / count),
                        a.input_scatter + b.input_scatter + f * np.outer(du, du),
                        a.cross_scatter + b.cross_scatter + f * np.outer(du, dy),
                        a.output_scatter + b.output_scatter + f * dy * dy)


class RunningCross:
    """Cumulative :class:`CrossMoments` of every batch since the last reset.

    Examples
    --------
    >>> rc = RunningCross(1, 1)
    >>> rc.update(np.array([[0.0], [1.0]]), np.array([[1.0], [3.0]])); rc.update(np.array([[2.0]]), np.array([[5.0]]))
    >>> float(rc.moments.count), rc.moments.cross_scatter.tolist()
    (3.0, [[4.0]])
    """

    def __init__(self, n_inputs: int, n_outputs: int) -> None:
        self.n_inputs, self.n_outputs = int(n_inputs), int(n_outputs)
        self.reset()

    @property
    def moments(self) -> CrossMoments:
        return self._state

    def update(self, inputs: np.ndarray, outputs: np.ndarray) -> None:
        """Add a batch (n, d) and (n, k); an empty batch changes nothing."""
        if np.shape(inputs)[0] == 0:
            return
        batch = cross_moments(inputs, outputs)
        if batch.n_inputs != self.n_inputs or batch.n_outputs != self.n_outputs:
            raise ValueError(f"expected ({self.n_inputs}, {self.n_outputs}) columns, got "
                             f"({batch.n_inputs}, {batch.n_outputs})")
        self._state = merge_cross(self._state, batch)

    def reset(self) -> None:
        self._state = empty_cross(self.n_inputs, self.n_outputs)
