"""The scan task: absolute deadlines, overruns, failures, commands on the worker thread, and its cycle statistics.

The project does not use pytest-asyncio: each scenario is a coroutine run by
:func:`run` under a timeout. Timing bounds are generous (CI machines are slow
and have two cores) but each still fails for the behaviour it guards against.
"""

from __future__ import annotations

import asyncio
import doctest
import itertools
import math
import statistics
import threading
import time

import pytest

from plc_anna.server import scan as scan_module
from plc_anna.server.scan import PERIOD_RANGE_S, CycleStats, ScanTask

PERIOD_S = 0.010


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


async def _ignore(result, stats) -> None:
    """A publish that does nothing."""


async def _run_for(task: ScanTask, seconds: float, until=lambda: True) -> float:
    """Start ``task``, let it run at least ``seconds`` and until ``until()``, stop it; the running time."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    task.start()
    try:
        await asyncio.sleep(seconds)
        await _until(until)
    finally:
        await task.stop()
    return loop.time() - start


# ---------------------------------------------------------------- deadlines
async def _until(condition, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds (a slow machine only makes this wait longer)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.005)


def _timed(starts: list[float], seconds: float = 0.0):
    """A work that records when it starts (on the loop's clock) and then takes ``seconds``."""

    def work() -> None:
        starts.append(time.monotonic())
        if seconds:
            time.sleep(seconds)

    return work


def _gaps_after_on_time_cycles(starts: list[float], overran: set[int], first: int = 0) -> list[float]:
    """Start-to-start times of consecutive cycles from cycle ``first`` on whose first did not overrun
    (cycles counted from 0).

    With absolute deadlines such a gap is ``period + lateness(k+1) - lateness(k)``: its median is
    the period however slow the machine. With ``next = end of cycle + period`` it would be the
    period plus the cycle time, every time.
    """
    return [b - a for k, (a, b) in enumerate(itertools.pairwise(starts)) if k >= first and k not in overran]


async def _record(into: list, value) -> None:
    into.append(value)


def _on_overrun_recorder(overran: set[int], task_of):
    async def on_overrun(overruns: int) -> None:
        overran.add(task_of().stats.cycles - 1)

    return on_overrun


def test_trivial_work_runs_at_the_scan_period():
    starts: list[float] = []
    overran: set[int] = set()

    async def scenario():
        task = ScanTask(PERIOD_S, _timed(starts), _ignore, _on_overrun_recorder(overran, lambda: task))
        elapsed = await _run_for(task, 0.5, lambda: len(_gaps_after_on_time_cycles(starts, overran)) >= 20)
        # 0.5 s at 10 ms is 50 (or 51) cycles, never more; a loaded machine may skip a few deadlines.
        assert 0.3 * elapsed / PERIOD_S <= task.stats.cycles <= elapsed / PERIOD_S + 1, (task.stats.cycles, elapsed)
        mean_period = (starts[-1] - starts[0]) / (len(starts) - 1)
        assert mean_period >= 0.95 * PERIOD_S
        gaps = _gaps_after_on_time_cycles(starts, overran)
        assert statistics.median(gaps) == pytest.approx(PERIOD_S, abs=0.003)
        assert task.failures == 0

    run(scenario)


def test_deadlines_are_absolute_so_cycle_time_does_not_add_up():
    """With 5 ms of work a 10 ms scan still starts a cycle every 10 ms: deadlines are
    ``deadline += period``, not ``now + period`` (that would be a cycle every 15 ms or more)."""
    starts: list[float] = []
    overran: set[int] = set()

    async def scenario():
        task = ScanTask(PERIOD_S, _timed(starts, 0.005), _ignore, _on_overrun_recorder(overran, lambda: task))
        elapsed = await _run_for(task, 0.5, lambda: len(_gaps_after_on_time_cycles(starts, overran)) >= 20)
        assert task.stats.cycles <= elapsed / PERIOD_S + 1, (task.stats.cycles, elapsed)
        gaps = _gaps_after_on_time_cycles(starts, overran)
        assert statistics.median(gaps) == pytest.approx(PERIOD_S, abs=0.003)
        assert task.failures == 0

    run(scenario)


def test_overruns_are_counted_alarmed_and_missed_deadlines_skipped():
    calls: list[int] = []
    lateness_ms: list[float] = []

    async def on_overrun(overruns: int) -> None:
        calls.append(overruns)
        lateness_ms.append(task.stats.lateness_ms)

    task = ScanTask(PERIOD_S, lambda: time.sleep(0.030), _ignore, on_overrun)

    async def scenario():
        elapsed = await _run_for(task, 0.6)
        cycles, overruns = task.stats.cycles, task.stats.overruns
        # Every 30 ms cycle ends after the next 10 ms deadline.
        assert overruns >= cycles - 1 >= 4
        assert calls == list(range(1, len(calls) + 1))  # once per overrun, with the running count
        assert overruns - 1 <= len(calls) <= overruns
        # One cycle per 30 ms or more (on the next free deadline), not one per 10 ms.
        assert cycles <= elapsed / 0.030 + 1, (cycles, elapsed)
        # Missed deadlines are skipped: each cycle starts on the next free deadline. Running them
        # back to back instead would make each cycle start 20 ms later than the one before
        # (a median lateness of some 150 ms here).
        assert statistics.median(lateness_ms) < 2 * PERIOD_S * 1e3, lateness_ms
        assert task.stats.max_ms >= 29.0

    run(scenario)


def test_an_on_overrun_that_raises_is_a_failure_and_the_scan_goes_on():
    async def on_overrun(overruns: int) -> None:
        raise ConnectionError("alarm could not be sent")

    async def scenario():
        task = ScanTask(PERIOD_S, lambda: time.sleep(0.015), _ignore, on_overrun)
        task.start()
        try:
            await _until(lambda: task.stats.cycles >= 3 or not task.running)
            assert task.running
            assert task.failures >= 1 and task.last_error == "ConnectionError: alarm could not be sent"
        finally:
            await task.stop()
        assert not task.running
        # Every 15 ms cycle overran its 10 ms period and every alarm failed (stop may cut off the last).
        assert task.stats.overruns - 1 <= task.failures <= task.stats.overruns

    run(scenario)


# ----------------------------------------------------------------- failures
def test_a_cycle_that_raises_is_counted_and_the_scan_goes_on():
    count = 0
    published: list[int] = []

    def work() -> int:
        nonlocal count
        count += 1
        if count in (2, 4):
            raise ValueError(f"boom {count}")
        return count

    async def scenario():
        task = ScanTask(PERIOD_S, work, lambda n, stats: _record(published, n))
        task.start()
        try:
            await _until(lambda: len(published) >= 8)  # cycles after the failures ran
            assert task.running
        finally:
            await task.stop()
        assert task.failures == 2
        assert task.last_error == "ValueError: boom 4"
        assert 2 not in published and 4 not in published
        assert published[:4] == [1, 3, 5, 6]
        assert task.stats.cycles == count  # a failed cycle is still a cycle

    run(scenario)


def test_a_publish_that_raises_is_counted_too():
    async def publish(result, stats) -> None:
        raise RuntimeError("client gone")

    async def scenario():
        task = ScanTask(PERIOD_S, lambda: None, publish)
        task.start()
        try:
            await _until(lambda: task.stats.cycles >= 3)
            assert task.running
        finally:
            await task.stop()
        assert task.failures == task.stats.cycles >= 3
        assert task.last_error == "RuntimeError: client gone"

    run(scenario)


# ----------------------------------------------------------------- commands
def test_call_runs_on_the_work_thread_and_never_during_a_cycle():
    work_threads: set[int] = set()
    busy = threading.Lock()
    overlaps: list[str] = []

    def work() -> None:
        if not busy.acquire(blocking=False):
            overlaps.append("work during a command")
            return
        try:
            work_threads.add(threading.get_ident())
            time.sleep(0.003)
        finally:
            busy.release()

    def command(i: int) -> tuple[int, int]:
        if not busy.acquire(blocking=False):
            overlaps.append(f"command {i} during a cycle")
            return i, threading.get_ident()
        try:
            time.sleep(0.001)
            return i, threading.get_ident()
        finally:
            busy.release()

    def fails() -> None:
        raise KeyError("no such layer")

    async def scenario():
        task = ScanTask(0.005, work, _ignore)
        task.start()
        try:
            results = []
            for i in range(40):
                results.append(await task.call(command, i))
                await asyncio.sleep(0.001 * (i % 3))
            results += await asyncio.gather(*(task.call(command, i) for i in range(40, 60)))
            with pytest.raises(KeyError, match="no such layer"):
                await task.call(fails)
            await _until(lambda: task.stats.cycles >= 5)
            assert task.running and task.failures == 0
        finally:
            await task.stop()
        assert [i for i, _ in results] == list(range(60))
        assert len(work_threads) == 1
        assert {thread for _, thread in results} == work_threads
        assert threading.get_ident() not in work_threads
        assert overlaps == []

    run(scenario)


# ------------------------------------------------------------------- period
@pytest.mark.parametrize("value", [0.004, 0.0, -0.01, 10.5, math.nan, math.inf, "0.01", None])
def test_period_out_of_range_is_rejected(value):
    with pytest.raises(ValueError, match=r"within 5\.\.10000 ms"):
        ScanTask(value, lambda: None, _ignore)
    task = ScanTask(0.1, lambda: None, _ignore)
    with pytest.raises(ValueError, match=r"within 5\.\.10000 ms"):
        task.period_s = value
    assert task.period_s == 0.1


def test_period_range_edges_are_accepted():
    low, high = PERIOD_RANGE_S
    task = ScanTask(low, lambda: None, _ignore)
    assert task.period_s == low
    task.period_s = high
    assert task.period_s == high
    task.period_s = 1  # an int is a number of seconds too
    assert task.period_s == 1.0 and isinstance(task.period_s, float)


def test_changing_the_period_while_running_takes_effect():
    starts: list[float] = []
    overran: set[int] = set()

    async def scenario():
        task = ScanTask(0.050, _timed(starts), _ignore, _on_overrun_recorder(overran, lambda: task))
        task.start()
        try:
            await _until(lambda: len(starts) >= 10)
            task.period_s = PERIOD_S
            await asyncio.sleep(0.06)  # the sleep in progress ends on the old deadline
            changed = len(starts)
            await _until(lambda: len(starts) >= changed + 20)
        finally:
            await task.stop()
        slow = _gaps_after_on_time_cycles(starts[:10], overran)
        fast = _gaps_after_on_time_cycles(starts, overran, first=changed)
        assert statistics.median(slow) == pytest.approx(0.050, abs=0.010)
        assert statistics.median(fast) == pytest.approx(PERIOD_S, abs=0.005)

    run(scenario)


# --------------------------------------------------------------- lifecycle
def test_stop_stops_the_task_after_the_cycle_in_progress():
    started: list[float] = []
    finished: list[float] = []

    def work() -> None:
        started.append(time.monotonic())
        time.sleep(0.02)
        finished.append(time.monotonic())

    async def scenario():
        task = ScanTask(PERIOD_S, work, _ignore)
        assert not task.running
        task.start()
        assert task.running
        with pytest.raises(RuntimeError, match="already running"):
            task.start()
        await _until(lambda: len(started) >= 3)
        await task.stop()
        assert not task.running
        assert len(finished) == len(started) >= 2  # the cycle in progress was finished, not abandoned
        cycles = task.stats.cycles
        await asyncio.sleep(0.05)
        assert len(started) == len(finished) and task.stats.cycles == cycles

    run(scenario)


def test_stop_before_start_is_harmless():
    async def scenario():
        task = ScanTask(PERIOD_S, lambda: None, _ignore)
        await task.stop()
        assert not task.running

    run(scenario)


# --------------------------------------------------------------- CycleStats
def test_cycle_stats_doctest_exists_and_passes():
    tests = [t for t in doctest.DocTestFinder().find(scan_module) if t.name.endswith("CycleStats")]
    assert tests and tests[0].examples
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_cycle_stats_are_nan_before_any_cycle():
    stats = CycleStats(window=10)
    assert math.isnan(stats.last_ms) and math.isnan(stats.p99_ms)
    assert math.isnan(stats.max_ms) and math.isnan(stats.lateness_ms)
    assert stats.cycles == 0 and stats.overruns == 0


def test_cycle_stats_p99_is_over_the_window_and_max_over_all_cycles():
    stats = CycleStats(window=10)
    for _ in range(10):
        stats.record(cycle_s=1.0, lateness_s=0.5, overran=True)
    assert stats.p99_ms == pytest.approx(1000.0)
    for ms in range(1, 11):
        stats.record(cycle_s=ms / 1000, lateness_s=ms / 10_000, overran=False)
    # Only the last 10 cycles (1..10 ms) count for the percentile: 9 + 0.91 ms by linear interpolation.
    assert stats.p99_ms == pytest.approx(9.91)
    assert stats.last_ms == pytest.approx(10.0)
    assert stats.lateness_ms == pytest.approx(1.0)
    assert stats.max_ms == pytest.approx(1000.0)
    assert stats.cycles == 20 and stats.overruns == 10


def test_cycle_stats_window_must_be_positive():
    with pytest.raises(ValueError, match="window must be at least 1"):
        CycleStats(window=0)
