"""Drift monitoring: distances on the Gaussian manifold and sequential tests.

Each column of a layer is summarised by a Gaussian; :mod:`~plc_anna.drift.fisher_rao`
measures how far the observed Gaussians are from the reference along the
Fisher–Rao geometry (with the no-drift sampling law of that distance), and
:mod:`~plc_anna.drift.cusum` accumulates chi-square drift statistics in a CUSUM
whose false-alarm rate is set by its in-control average run length. Pure
numpy/scipy.
"""

from __future__ import annotations

from plc_anna.drift.cusum import ChiSquareCusum, siegmund_arl0, threshold_for_arl0, wilson_hilferty_score
from plc_anna.drift.fisher_rao import fisher_rao_distance, layer_distance, null_quantile

__all__ = [
    "ChiSquareCusum",
    "fisher_rao_distance",
    "layer_distance",
    "null_quantile",
    "siegmund_arl0",
    "threshold_for_arl0",
    "wilson_hilferty_score",
]
