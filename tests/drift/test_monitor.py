"""The conditioned statistic follows its chi-square law under no drift and grows with drift."""

import numpy as np

from plc_anna.drift.monitor import conditioned_statistic


def simulate(drift_gain=1.0, n=64, k=16, scans=4000, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(k, 6))
    noise = 0.05
    stats = []
    for _ in range(scans):
        x = rng.normal(size=(n, 6)) * rng.uniform(0.5, 2.0) + rng.normal()  # the process moves every scan
        cal = x @ w.T
        y = drift_gain * cal + noise * rng.normal(size=(n, k))
        s = conditioned_statistic(n, y.mean(0), y.var(0), cal.mean(0), cal.var(0), np.full(k, noise**2))
        stats.append(s.statistic)
    return np.array(stats), 2 * k


def test_null_law_is_chi_square_even_when_the_process_moves():
    stats, dof = simulate()
    assert abs(stats.mean() / dof - 1) < 0.05
    assert abs(stats.var() / (2 * dof) - 1) < 0.25


def test_statistic_grows_with_a_one_percent_gain_drift():
    null, dof = simulate(scans=200)
    drifted, _ = simulate(drift_gain=1.01, scans=200)
    assert np.median(drifted) > 5 * np.median(null)
