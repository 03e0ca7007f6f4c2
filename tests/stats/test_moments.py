"""Streaming moments: equal to numpy on the whole sample, stable far from zero, strict on bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from plc_anna.stats import (
    EWMoments,
    Moments,
    RunningMoments,
    WindowMoments,
    batch_moments,
    empty_moments,
    merge_moments,
)

RTOL = 1e-9


def assert_moments_equal(got: Moments, want: Moments, rtol: float = RTOL, atol: float = 1e-12) -> None:
    assert got.count == pytest.approx(want.count, rel=rtol)
    assert got.covariance_tracked == want.covariance_tracked
    np.testing.assert_allclose(got.mean, want.mean, rtol=rtol, atol=atol)
    np.testing.assert_allclose(got.m2, want.m2, rtol=rtol, atol=atol)


def random_batches(rng: np.random.Generator, n_batches: int, d: int, max_rows: int) -> list[np.ndarray]:
    """Batches of 0..max_rows rows with columns on different scales and offsets."""
    scale, offset = rng.uniform(0.1, 10, size=d), rng.normal(0, 5, size=d)
    return [rng.normal(size=(int(rng.integers(0, max_rows + 1)), d)) * scale + offset
            for _ in range(n_batches)]


def weighted_reference(X: np.ndarray, decay: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Direct weighted count, mean and covariance with weights decay**age (newest age 0)."""
    w = decay ** np.arange(len(X) - 1, -1, -1, dtype=float)
    mean = w @ X / w.sum()
    D = X - mean
    return w.sum(), mean, (D * w[:, None]).T @ D / w.sum()


# --- batch and merge -------------------------------------------------------------

@pytest.mark.parametrize("n, d", [(1, 1), (2, 3), (50, 1), (400, 6)])
def test_batch_moments_equal_numpy(n, d):
    X = np.random.default_rng(n * 10 + d).normal(3.0, 2.0, size=(n, d))
    diag, full = batch_moments(X), batch_moments(X, covariance=True)
    for m in (diag, full):
        assert m.count == n and isinstance(m.count, float)
        np.testing.assert_allclose(m.mean, X.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(m.var, X.var(axis=0), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(m.std, X.std(axis=0), rtol=1e-10, atol=1e-14)
    assert not diag.covariance_tracked and diag.m2.shape == (d,)
    assert full.covariance_tracked and full.m2.shape == (d, d)
    np.testing.assert_allclose(full.cov, np.cov(X, rowvar=False, bias=True).reshape(d, d), rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(full.cov, full.cov.T)


@pytest.mark.parametrize("covariance", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_merging_random_splits_equals_whole(covariance, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 4)) * [1, 10, 0.1, 3] + [0, -5, 100, 2]
    cuts = np.sort(np.r_[0, len(X), rng.integers(0, len(X) + 1, size=5)])  # first and last parts empty
    parts = [batch_moments(p, covariance) if len(p) else empty_moments(4, covariance)
             for p in np.split(X, cuts)]
    assert parts[0].count == 0 and parts[-1].count == 0
    whole = batch_moments(X, covariance)
    merged = empty_moments(4, covariance)
    for part in parts:
        merged = merge_moments(merged, part)
    assert_moments_equal(merged, whole)
    # order and grouping do not matter: merge pairwise from the right
    tree = parts[-1]
    for part in reversed(parts[:-1]):
        tree = merge_moments(part, tree)
    assert_moments_equal(tree, whole)


@pytest.mark.parametrize("covariance", [False, True])
def test_empty_moments_are_the_identity(covariance):
    m = batch_moments(np.array([[1.0, 2.0], [3.0, 5.0]]), covariance)
    empty = empty_moments(2, covariance)
    assert merge_moments(m, empty) is m and merge_moments(empty, m) is m
    assert merge_moments(empty, empty).count == 0
    assert empty.covariance_tracked == covariance
    explicit = Moments(0, np.zeros(2), np.zeros((2, 2) if covariance else 2))
    assert_moments_equal(merge_moments(explicit, m), m)


def test_moments_are_immutable():
    mean = np.array([1.0, 2.0])
    m = Moments(3, mean, np.array([1.0, 1.0]))
    mean[0] = 99.0                                  # the caller's array is copied
    assert m.mean[0] == 1.0 and m.count == 3.0
    with pytest.raises(ValueError, match="read-only"):
        m.mean[0] = 5.0
    with pytest.raises(AttributeError):
        m.count = 4.0  # type: ignore[misc]


# --- numerical stability ------------------------------------------------------------

def test_stable_far_from_zero():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(20_000, 3))
    X = 1e9 + Z                                     # mean 1e9, std 1
    truth = np.var(X - 1e9, axis=0)                 # the subtraction is exact (Sterbenz)
    naive = (X**2).mean(axis=0) - X.mean(axis=0) ** 2
    assert np.max(np.abs(naive - truth) / truth) > 1e-2, "the naive formula should fail here"

    np.testing.assert_allclose(batch_moments(X).var, truth, rtol=1e-6)
    np.testing.assert_allclose(np.diag(batch_moments(X, covariance=True).cov),
                               truth, rtol=1e-6)
    running = RunningMoments(3, covariance=True)
    for batch in np.array_split(X, 997):            # many small merges
        running.update(batch)
    np.testing.assert_allclose(running.moments.var, truth, rtol=1e-6)
    np.testing.assert_allclose(running.moments.cov, np.cov(X - 1e9, rowvar=False, bias=True),
                               rtol=1e-6, atol=1e-6)
    window = WindowMoments(3, window=5000)
    ew = EWMoments(3, halflife=700.0)
    for batch in np.array_split(X, 301):
        window.update(batch)
        ew.update(batch)
    np.testing.assert_allclose(window.moments.var, np.var(X[-5000:] - 1e9, axis=0), rtol=1e-6)
    _, _, cov = weighted_reference(X - 1e9, ew.decay)
    np.testing.assert_allclose(ew.moments.var, np.diag(cov), rtol=1e-6)


# --- trackers ------------------------------------------------------------------------

@pytest.mark.parametrize("covariance", [False, True])
def test_running_moments_equal_batch_of_everything(covariance):
    rng = np.random.default_rng(3)
    rm = RunningMoments(3, covariance)
    batches = random_batches(rng, 30, 3, 17)
    for i, batch in enumerate(batches):
        rm.update(batch)
        seen = np.concatenate(batches[:i + 1])
        if len(seen):
            assert_moments_equal(rm.moments, batch_moments(seen, covariance))
    rm.reset()
    assert rm.moments.count == 0


@pytest.mark.parametrize("covariance", [False, True])
@pytest.mark.parametrize("window", [1, 7, 50])
def test_window_moments_equal_batch_of_last_rows(covariance, window):
    rng = np.random.default_rng(window)
    wm = WindowMoments(3, window, covariance)
    batches = random_batches(rng, 60, 3, 2 * window + 3)    # some batches exceed the window
    assert any(len(b) > window for b in batches) and any(len(b) == 0 for b in batches)
    seen = np.empty((0, 3))
    for batch in batches:
        wm.update(batch)
        seen = np.concatenate([seen, batch])
        if len(seen):
            assert_moments_equal(wm.moments, batch_moments(seen[-window:], covariance))
            assert wm.moments is wm.moments                  # cached until the next update
    wm.reset()
    assert wm.moments.count == 0
    wm.update(seen[:2])
    assert_moments_equal(wm.moments, batch_moments(seen[:2][-window:], covariance))


@pytest.mark.parametrize("covariance", [False, True])
@pytest.mark.parametrize("halflife", [0.7, 5.0, 40.0])
def test_ew_moments_equal_direct_weighted_computation(covariance, halflife):
    rng = np.random.default_rng(int(halflife * 10))
    ew = EWMoments(3, halflife, covariance)
    assert ew.decay == pytest.approx(0.5 ** (1 / halflife))
    seen = np.empty((0, 3))
    for batch in random_batches(rng, 40, 3, 25):
        ew.update(batch)
        seen = np.concatenate([seen, batch])
        if len(seen):
            count, mean, cov = weighted_reference(seen, ew.decay)
            m = ew.moments
            assert m.count == pytest.approx(count, rel=RTOL)
            np.testing.assert_allclose(m.mean, mean, rtol=RTOL, atol=1e-12)
            np.testing.assert_allclose(m.var, np.diag(cov), rtol=1e-8, atol=1e-12)
            if covariance:
                np.testing.assert_allclose(m.cov, cov, rtol=1e-8, atol=1e-12)


def test_ew_single_samples_follow_the_recursion_and_count_converges():
    ew = EWMoments(1, halflife=10.0)
    x = np.random.default_rng(5).normal(size=(3000, 1))
    total = 0.0
    for row in x:
        ew.update(row[None, :])
        total = ew.decay * total + 1.0
    assert ew.moments.count == pytest.approx(total, rel=1e-12)
    assert ew.moments.count == pytest.approx(1 / (1 - ew.decay), rel=1e-9)
    one_batch = EWMoments(1, halflife=10.0)
    one_batch.update(x)
    assert_moments_equal(one_batch.moments, ew.moments, rtol=1e-9)
    ew.reset()
    assert ew.moments.count == 0


def test_empty_batch_is_a_no_op():
    for tracker in (RunningMoments(2), WindowMoments(2, 3), EWMoments(2, 4.0)):
        tracker.update(np.array([[1.0, 2.0], [3.0, 4.0]]))
        before = tracker.moments
        tracker.update(np.empty((0, 2)))
        assert_moments_equal(tracker.moments, before, rtol=0, atol=0)


# --- bad input ---------------------------------------------------------------------

BAD_BATCHES = [
    (np.ones((3, 2)), "X has 2 columns, expected n_features = 3"),
    (np.array([[1.0, np.nan, 2.0]]), "X contains NaN or Inf"),
    (np.array([[1.0, 2.0, -np.inf]]), "X contains NaN or Inf"),
    (np.array([1.0, 2.0, 3.0]), r"X must have shape \(n, d\), got shape \(3,\); a 1-D array is ambiguous"),
    (np.ones((2, 3, 1)), r"X must have shape \(n, d\)"),
]


@pytest.mark.parametrize("make", [
    lambda: RunningMoments(3), lambda: RunningMoments(3, covariance=True),
    lambda: WindowMoments(3, 4), lambda: WindowMoments(3, 4, covariance=True),
    lambda: EWMoments(3, 2.0), lambda: EWMoments(3, 2.0, covariance=True),
])
@pytest.mark.parametrize("bad, message", BAD_BATCHES)
def test_bad_batches_raise_and_change_nothing(make, bad, message):
    rng = np.random.default_rng(0)
    tracker, twin = make(), make()
    good = rng.normal(size=(3, 3))
    tracker.update(good)
    twin.update(good)
    before = tracker.moments
    with pytest.raises(ValueError, match=message):
        tracker.update(bad)
    assert_moments_equal(tracker.moments, before, rtol=0, atol=0)
    more = rng.normal(size=(2, 3))                   # and the hidden state is intact too
    tracker.update(more)
    twin.update(more)
    assert_moments_equal(tracker.moments, twin.moments, rtol=0, atol=0)


def test_batch_moments_rejects_bad_input():
    with pytest.raises(ValueError, match=r"shape \(n, d\).*1-D array is ambiguous"):
        batch_moments(np.arange(4.0))
    with pytest.raises(ValueError, match="at least one sample"):
        batch_moments(np.empty((0, 2)))
    with pytest.raises(ValueError, match="at least one column"):
        batch_moments(np.empty((3, 0)))
    with pytest.raises(ValueError, match="contains NaN or Inf"):
        batch_moments(np.array([[1.0], [np.nan]]))


def test_statistics_of_no_samples_raise():
    for covariance in (False, True):
        empty = empty_moments(2, covariance)
        for attribute in ("var", "std", "cov") if covariance else ("var", "std"):
            with pytest.raises(ValueError, match=r"no samples \(count == 0\)"):
                getattr(empty, attribute)
    with pytest.raises(ValueError, match="covariance is not tracked.*covariance=True"):
        batch_moments(np.ones((2, 2))).cov


def test_merge_rejects_mismatches():
    a = batch_moments(np.ones((2, 2)))
    with pytest.raises(ValueError, match="cannot merge moments of 2 and 3 features"):
        merge_moments(a, batch_moments(np.ones((2, 3))))
    with pytest.raises(ValueError, match="with and without covariance"):
        merge_moments(a, batch_moments(np.ones((2, 2)), covariance=True))
    with pytest.raises(ValueError, match="with and without covariance"):
        merge_moments(empty_moments(2, covariance=True), a)


def test_moments_reject_inconsistent_fields():
    with pytest.raises(ValueError, match="count must be finite and >= 0"):
        Moments(-1, np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match=r"mean must have shape \(d,\)"):
        Moments(1, np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"m2 must have shape \(2,\) or \(2, 2\)"):
        Moments(1, np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("build, message", [
    (lambda: RunningMoments(0), "n_features must be an integer >= 1, got 0"),
    (lambda: RunningMoments(2.0), "n_features must be an integer >= 1, got 2.0"),
    (lambda: WindowMoments(-1, 5), "n_features must be an integer >= 1"),
    (lambda: WindowMoments(2, 0), "window must be an integer >= 1, got 0"),
    (lambda: WindowMoments(2, 2.5), "window must be an integer >= 1, got 2.5"),
    (lambda: EWMoments(True, 3.0), "n_features must be an integer >= 1, got True"),
    (lambda: EWMoments(2, 0.0), "halflife must be a finite number of samples > 0, got 0.0"),
    (lambda: EWMoments(2, -3), "halflife must be a finite number of samples > 0, got -3"),
    (lambda: EWMoments(2, float("inf")), "halflife must be a finite number"),
    (lambda: EWMoments(2, float("nan")), "halflife must be a finite number"),
    (lambda: EWMoments(2, "5"), "halflife must be a finite number of samples > 0, got '5'"),
    (lambda: empty_moments(0), "d must be an integer >= 1, got 0"),
])
def test_constructor_arguments_are_validated(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_numpy_integer_sizes_are_accepted():
    wm = WindowMoments(np.int64(2), np.int32(3))
    assert (wm.n_features, wm.window) == (2, 3)
    assert EWMoments(2, np.float32(4.0)).halflife == 4.0


def test_stats_import_only_numpy():
    code = ("import sys, plc_anna.stats; "
            "print(','.join(m for m in ('scipy', 'ot', 'click', 'rich') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
