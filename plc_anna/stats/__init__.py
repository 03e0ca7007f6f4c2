"""Streaming statistics of a layer's digital inputs and analog outputs: per-column
mean, variance and covariance, numerically stable and mergeable across batches,
kept cumulatively, over a sliding window of the latest samples or with
exponential forgetting, so drift can be watched without storing the history.
"""

from __future__ import annotations

from plc_anna.stats.moments import (
    EWMoments,
    Moments,
    RunningMoments,
    WindowMoments,
    batch_moments,
    empty_moments,
    merge_moments,
)

__all__ = [
    "EWMoments",
    "Moments",
    "RunningMoments",
    "WindowMoments",
    "batch_moments",
    "empty_moments",
    "merge_moments",
]
