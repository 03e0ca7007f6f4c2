"""The PLC-side correction block against its specification (docs/plc-side.md), case by case.

Each case is a run of cycles: the inputs of each cycle (changes against ``BASE``, which carry over to later
cycles) and the outputs expected after it. The same table can drive any other implementation of the block.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest

from plc_anna.contract.counters import UDINT_MODULUS
from plc_anna.contract.logic import REAL_LIMIT, CorrectionBlock, Status

N = 3
BASE = {"raw": [1.0, 2.0, -1.0], "gain": [1.0, 1.0, 1.0], "offset": [0.0, 0.0, 0.0], "counter": 0, "hb": 0,
        "dt": 0.1}
WIDE = {"max_gain_step": 10.0, "max_offset_step": 1.0e7}          # no ramp: targets apply at once
TOP = UDINT_MODULUS - 1


@dataclass
class Cycle:
    inputs: dict = field(default_factory=dict)
    expect: dict = field(default_factory=dict)


def beat(k: int, **inputs) -> dict:
    """Inputs of a cycle whose heartbeat reads ``k``."""
    return {"hb": k, **inputs}


def run(params: dict, cycles: list[Cycle]):
    block = CorrectionBlock(N, **params)
    inputs = dict(BASE)
    for index, cycle in enumerate(cycles, 1):
        inputs.update(cycle.inputs)
        result = block.cycle(inputs["raw"], inputs["gain"], inputs["offset"], inputs["counter"], inputs["hb"],
                             inputs["dt"])
        for name, expected in cycle.expect.items():
            actual = getattr(block, name) if name in ("target_gain", "target_offset", "stall_ns") \
                else getattr(result, name)
            if isinstance(expected, (list, np.ndarray)):
                np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6,
                                           err_msg=f"{name} after cycle {index}")
            else:
                assert actual == expected, f"{name} after cycle {index}: {actual!r} != {expected!r}"
    return block


def stall(cycles: int, start: int = 1, **inputs) -> list[Cycle]:
    """``cycles`` cycles with the heartbeat standing still at ``start``."""
    return [Cycle(beat(start, **inputs)) for _ in range(cycles)]


CASES = {
    "start: identity, no set, no fault": (
        {}, [Cycle(beat(1), {"applied_gain": [1, 1, 1], "applied_offset": [0, 0, 0], "corrected_outputs": [1, 2, -1],
                             "accepted_commit": 0, "fault": False, "status": Status.OK, "plc_heartbeat": 1})]),
    "start: arrays with counter 0 are not a set": (
        WIDE, [Cycle(beat(1, gain=[2, 2, 2]), {"applied_gain": [1, 1, 1], "accepted_commit": 0})]),
    "commit accepted and clamped": (
        WIDE, [Cycle(beat(1, counter=1, gain=[1.5, 0.1, 9.0], offset=[2e6, -5.0, -3e6]),
                     {"applied_gain": [1.5, 0.25, 4.0], "applied_offset": [1e6, -5.0, -1e6], "accepted_commit": 1,
                      "status": Status.OK, "corrected_outputs": [1.5 + 1e6, 0.5 - 5.0, -4.0 - 1e6]})]),
    "arrays changed without a new counter are ignored": (
        WIDE, [Cycle(beat(1, counter=7, gain=[1.5, 1.5, 1.5])),
               Cycle(beat(2, gain=[3.0, 3.0, 3.0], offset=[9.0, 9.0, 9.0]),
                     {"applied_gain": [1.5, 1.5, 1.5], "applied_offset": [0, 0, 0], "accepted_commit": 7}),
               Cycle(beat(3, counter=8), {"applied_gain": [3, 3, 3], "applied_offset": [9, 9, 9]})]),
    "ramp: at most MaxGainStep and MaxOffsetStep per cycle, from the accepting cycle on": (
        {"max_offset_step": 0.5},
        [Cycle(beat(1, counter=1, gain=[1.1, 0.95, 1.0], offset=[1.2, 0.0, -0.3]),
               {"applied_gain": [1.02, 0.98, 1.0], "applied_offset": [0.5, 0.0, -0.3], "status": Status.RAMPING}),
         Cycle(beat(2), {"applied_gain": [1.04, 0.96, 1.0], "applied_offset": [1.0, 0, -0.3]}),
         Cycle(beat(3), {"applied_gain": [1.06, 0.95, 1.0], "applied_offset": [1.2, 0, -0.3],
                         "status": Status.RAMPING}),
         Cycle(beat(4), {"applied_gain": [1.08, 0.95, 1.0]}),
         Cycle(beat(5), {"applied_gain": [1.1, 0.95, 1.0], "status": Status.RAMPING}),   # REAL: 1.0999999
         Cycle(beat(6), {"applied_gain": [1.1, 0.95, 1.0], "status": Status.OK})]),
    "a NaN set is rejected whole; the next valid set clears Status 3": (
        WIDE, [Cycle(beat(1, counter=1, gain=[1.5, 1.5, 1.5])),
               Cycle(beat(2, counter=2, gain=[2.0, float("nan"), 2.0]),
                     {"applied_gain": [1.5, 1.5, 1.5], "target_gain": [1.5, 1.5, 1.5], "accepted_commit": 2,
                      "status": Status.REJECTED}),
               Cycle(beat(3), {"status": Status.REJECTED, "accepted_commit": 2}),
               Cycle(beat(4, counter=3, gain=[2.0, 2.0, 2.0]),
                     {"applied_gain": [2, 2, 2], "accepted_commit": 3, "status": Status.OK})]),
    "heartbeat stall: fault and hold after exactly the timeout": (
        {},
        [Cycle(beat(1, counter=1, gain=[2.0, 2.0, 2.0])),                      # ramping toward 2.0
         *stall(3), Cycle(beat(1), {"fault": False, "stall_ns": 400_000_000, "applied_gain": [1.1, 1.1, 1.1]}),
         Cycle(beat(1, counter=2, gain=[0.5, 0.5, 0.5], offset=[3, 3, 3]),   # 5 x 0.1 s: the timeout
               {"fault": True, "status": Status.HOLDING, "applied_gain": [1.1, 1.1, 1.1],
                "accepted_commit": 1, "target_gain": [2, 2, 2], "corrected_outputs": [1.1, 2.2, -1.1]}),
         Cycle(beat(1), {"applied_gain": [1.1, 1.1, 1.1], "applied_offset": [0, 0, 0], "fault": True,
                         "stall_ns": 500_000_000, "plc_heartbeat": 7})]),
    "heartbeat resumes: fault clears and a pending set is taken in that cycle": (
        {"max_offset_step": 1.0e7},
        [Cycle(beat(5)), *stall(4, start=5), Cycle(beat(5), {"fault": True}),
         Cycle(beat(5, counter=4, gain=[1.5, 1.5, 1.5], offset=[1, 1, 1]), {"fault": True, "accepted_commit": 0}),
         Cycle(beat(6), {"fault": False, "accepted_commit": 4, "applied_gain": [1.02, 1.02, 1.02],
                         "applied_offset": [1, 1, 1], "status": Status.RAMPING, "stall_ns": 0})]),
    "no heartbeat ever: fault after exactly the timeout from start": (
        {}, [*(Cycle(beat(0), {"fault": False}) for _ in range(4)), Cycle(beat(0), {"fault": True})]),
    "fault hides a rejected set, which shows again after": (
        WIDE, [Cycle(beat(1, counter=1, gain=[np.inf, 1, 1]), {"status": Status.REJECTED}),
               *stall(4), Cycle(beat(1), {"status": Status.HOLDING}), Cycle(beat(2), {"status": Status.REJECTED})]),
    "heartbeat wraps: 4294967295 -> 0 is a change": (
        {}, [Cycle(beat(TOP - 1)), *(Cycle(beat(TOP)) for _ in range(5)), Cycle(beat(0), {"stall_ns": 0}),
             Cycle(beat(UDINT_MODULUS), {"stall_ns": 100_000_000})]),       # 2**32 is stored as 0
    "commit counter wraps: 4294967295 -> 0 is a new set": (
        WIDE, [Cycle(beat(1, counter=TOP, gain=[2, 2, 2]), {"accepted_commit": TOP}),
               Cycle(beat(2, counter=0, gain=[3, 3, 3]), {"accepted_commit": 0, "applied_gain": [3, 3, 3]})]),
}


@pytest.mark.parametrize("params,cycles", CASES.values(), ids=CASES.keys())
def test_spec_case(params, cycles):
    run(params, cycles)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39, -1e39, 3.402e38])
@pytest.mark.parametrize("array", ["gain", "offset"])
def test_non_finite_sets_are_rejected(bad, array):
    values = [1.0, 1.0, 1.0] if array == "gain" else [0.0, 0.0, 0.0]
    values[1] = bad
    run(WIDE, [Cycle(beat(1, counter=1, **{array: values}),
                     {"status": Status.REJECTED, "accepted_commit": 1, "applied_gain": [1, 1, 1],
                      "applied_offset": [0, 0, 0]})])


def test_largest_accepted_value_is_the_reals_limit():
    run(WIDE, [Cycle(beat(1, counter=1, offset=[float(REAL_LIMIT), 0, 0]),
                     {"status": Status.OK, "applied_offset": [1e6, 0, 0]})])


@pytest.mark.parametrize("dt,cycles", [(0.1, 5), (0.01, 50), (0.001, 500), (0.3, 2), (0.5, 1), (0.7, 1),
                                       (0.125, 4), (0.0005, 1000)])
def test_fault_after_exactly_the_timeout(dt, cycles):
    """The k-th unchanged cycle faults where k·dt first reaches 0.5 s: no rounding drift in the count."""
    block = run({}, [Cycle(beat(1, dt=dt)), *(Cycle(beat(1), {"fault": False}) for _ in range(cycles - 1)),
                     Cycle(beat(1), {"fault": True})])
    assert block.stall_ns == round(cycles * dt * 1e9)                  # stops growing once reached


def test_plc_heartbeat_wraps():
    block = CorrectionBlock(N)
    block.plc_heartbeat = TOP
    assert block.cycle(*BASE.values()).plc_heartbeat == 0


def test_ramp_never_overshoots():
    rng = np.random.default_rng(3)
    block = CorrectionBlock(N, max_offset_step=0.05)
    for k in range(1, 200):
        counter = k // 20 + 1
        gain, offset = rng.uniform(0.1, 5.0, N), rng.normal(0.0, 0.5, N)
        before = block.applied_gain.copy(), block.applied_offset.copy()
        block.cycle(BASE["raw"], gain if k % 20 == 0 else BASE["gain"], offset, counter, k, 0.01)
        for now, then, target, step in ((block.applied_gain, before[0], block.target_gain, 0.02),
                                        (block.applied_offset, before[1], block.target_offset, 0.05)):
            ulp = np.spacing(np.maximum(np.abs(now), np.abs(then)))          # REAL rounding of A + step
            assert np.all(np.abs(now - then) <= np.float32(step) + ulp)
            assert np.all((now - then) * (target - now) >= 0)          # moved toward the target, not past it


@pytest.mark.parametrize("name", ["raw", "gain", "offset"])
@pytest.mark.parametrize("value", [[1.0, 2.0], [1.0, 2.0, 3.0, 4.0], [[1.0, 2.0, 3.0]], 1.0, []])
def test_wrong_lengths_raise(name, value):
    inputs = {**BASE, name: value}
    with pytest.raises(ValueError, match="must hold 3 values"):
        CorrectionBlock(N).cycle(*inputs.values())


@pytest.mark.parametrize("dt", [0.0, -0.01, float("nan"), float("inf"), 1e-12])
def test_bad_cycle_time_raises(dt):
    with pytest.raises(ValueError, match="dt_s"):
        CorrectionBlock(N).cycle(*{**BASE, "dt": dt}.values())


@pytest.mark.parametrize("kwargs", [{"n_outputs": 0}, {"gain_min": 5.0}, {"offset_min": 2e6},
                                    {"offset_max": float("inf")}, {"max_gain_step": 0.0},
                                    {"max_offset_step": -1.0}, {"heartbeat_timeout_s": 0.0}])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        CorrectionBlock(**{"n_outputs": N, **kwargs})


def test_results_are_copies():
    block = CorrectionBlock(N)
    result = block.cycle(*BASE.values())
    result.applied_gain[:] = 7.0
    assert np.all(block.applied_gain == 1.0)


def test_logic_stays_light():
    code = "import sys, plc_anna.contract.logic; print([m for m in ('asyncua', 'pymodbus', 'click') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
