"""The PLC-side correction block, ``FB_AnnaCorrection``, as a Python reference.

Every function block in ``ladder_examples/`` and :class:`CorrectionBlock` implement one specification
(``docs/plc-side.md``); a table of cases in the tests holds this reference to it. Each PLC cycle of
length ``dt``, for one corrected layer with ``N`` outputs:

1. Watchdog: a ``Heartbeat`` different from last cycle's resets the stall timer, an unchanged one adds
   ``dt``; a stall of at least ``HeartbeatTimeout`` sets ``Fault`` and holds the applied values.
2. Commit: when not in fault and ``CommitCounter <> AcceptedCommit`` the set ``GainSet``/``OffsetSet``
   is taken: rejected whole if any element is non-finite, else clamped into ``[GainMin, GainMax]`` and
   ``[OffsetMin, OffsetMax]`` as the new targets. Arrays that change without a new counter are ignored.
3. Ramp: each applied gain and offset moves toward its target by at most ``MaxGainStep`` /
   ``MaxOffsetStep`` per cycle.
4. Output: ``CorrectedOutputs[j] := AppliedGain[j] * RawOutputs[j] + AppliedOffset[j]`` and
   ``PlcHeartbeat := PlcHeartbeat + 1``.

Start: gains 1, offsets 0 (applied and target), ``AcceptedCommit = 0``, no fault before a first timeout.

Decisions the specification leaves open, the same in the docs and in every function block's comments:

D1. The stall timer adds the cycle time dt each cycle as an integer count (PLC: TIME; reference: ns); no clock is read.
D2. LastHeartbeat starts at 0; the stall stops growing once it reaches HeartbeatTimeout, so it never overflows.
D3. The watchdog runs first: the cycle in which the heartbeat moves again clears Fault and then runs steps 2 to 4.
D4. While Fault: no set is taken, AcceptedCommit keeps its value, Applied values hold and CorrectedOutputs use them.
D5. A set with any NaN or any |x| > 3.4E38 is rejected whole: targets stay, AcceptedCommit := CommitCounter, Status 3.
D6. Status 3 latches until the next valid set; Status priority is 2 (fault) > 3 (rejected) > 1 (ramping) > 0 (OK).
D7. A set is taken in the cycle CommitCounter changes and ramping starts in that cycle; counter 0 means no set yet.
D8. Counters are compared with <> only, so 4294967295 -> 0 is an ordinary change; PlcHeartbeat wraps the same way.
D9. Arithmetic is REAL (IEEE binary32), rounded after each operation; a ramp step never overshoots its target.
D10. RawOutputs are not checked (NaN in, NaN out); the state is not RETAIN, so a PLC restart starts from identity.
D11. Parameters must satisfy GainMin <= GainMax, OffsetMin <= OffsetMax, steps > 0, timeout > 0; the PLC does not check.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from plc_anna.contract.counters import next_beat, udint
from plc_anna.contract.ramp import ramp_step

REAL_LIMIT = np.float32(3.4e38)     #: beyond ±REAL_LIMIT a value counts as infinite (PLC: x > 3.4E38)


@dataclass(frozen=True)
class BlockParameters:
    """The block's parameter inputs and their defaults: one source for this reference, the simulated PLC
    and the generated PLC code (``plc-anna plc-code`` declares them as the block's input defaults)."""

    gain_min: float = 0.25              #: GainMin
    gain_max: float = 4.0               #: GainMax
    offset_min: float = -1.0e6          #: OffsetMin, output units
    offset_max: float = 1.0e6           #: OffsetMax, output units
    max_gain_step: float = 0.02         #: MaxGainStep, per cycle
    max_offset_step: float = 1.0e6      #: MaxOffsetStep, per cycle, output units
    heartbeat_timeout_s: float = 0.5    #: HeartbeatTimeout
    cycle_s: float = 0.01               #: CycleTime, the interval of the task that calls the block


#: The defaults of docs/plc-side.md.
DEFAULTS = BlockParameters()
#: The block's parameter inputs on the PLC -> the field of :class:`BlockParameters`, in declaration order.
IEC_PARAMETERS = {"CycleTime": "cycle_s", "GainMin": "gain_min", "GainMax": "gain_max", "OffsetMin": "offset_min",
                  "OffsetMax": "offset_max", "MaxGainStep": "max_gain_step", "MaxOffsetStep": "max_offset_step",
                  "HeartbeatTimeout": "heartbeat_timeout_s"}


class Status(IntEnum):
    """The block's ``Status`` output (an ``INT`` on the PLC); when several apply, the order is 2 > 3 > 1 > 0."""

    OK = 0          #: applied values equal the targets, no fault, the last set was accepted
    RAMPING = 1     #: applied values are moving toward the targets
    HOLDING = 2     #: heartbeat lost: Fault is set and the last applied values are held
    REJECTED = 3    #: the last set held a non-finite element and was rejected whole


@dataclass(frozen=True)
class CycleResult:
    """The block's outputs after one cycle (copies: later cycles do not change them)."""

    corrected_outputs: np.ndarray
    applied_gain: np.ndarray
    applied_offset: np.ndarray
    accepted_commit: int
    fault: bool
    plc_heartbeat: int
    status: Status


class CorrectionBlock:
    """One corrected layer's ``FB_AnnaCorrection``, cycle for cycle as the PLC runs it.

    Parameters
    ----------
    n_outputs
        ``N``, the layer's number of analog outputs.
    gain_min, gain_max
        ``GainMin``, ``GainMax``: the range each accepted gain is clamped into.
    offset_min, offset_max
        ``OffsetMin``, ``OffsetMax``: the range each accepted offset is clamped into, in output units.
    max_gain_step, max_offset_step
        ``MaxGainStep``, ``MaxOffsetStep``: the largest change of an applied value in one cycle.
    heartbeat_timeout_s
        ``HeartbeatTimeout`` in seconds.

    Attributes
    ----------
    applied_gain, applied_offset, target_gain, target_offset : numpy.ndarray
        float32 state (``AppliedGain``, ``AppliedOffset`` and the internal targets).
    accepted_commit, plc_heartbeat, last_heartbeat : int
        ``AcceptedCommit``, ``PlcHeartbeat`` and the heartbeat seen last cycle.
    stall_ns : int
        The stall timer in nanoseconds.
    fault, rejected : bool
        ``Fault`` and the rejected-set latch behind ``Status`` 3.
    status : Status
        ``Status`` after the last cycle.

    Raises
    ------
    ValueError
        For ``n_outputs < 1`` or parameters that break D11.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> raw = rng.uniform(0.0, 10.0, size=3).round(1)
    >>> raw
    array([6.4, 2.7, 0.4])
    >>> block = CorrectionBlock(3)
    >>> gain, offset = [1.1, 0.5, 9.0], [0.5, 0.0, -0.2]
    >>> r = block.cycle(raw, gain, offset, commit_counter=1, heartbeat=1, dt_s=0.01)
    >>> r.accepted_commit, r.status.name
    (1, 'RAMPING')
    >>> block.target_gain                          # 9.0 clamped to GainMax
    array([1.1, 0.5, 4. ], dtype=float32)
    >>> r.applied_gain                             # at most MaxGainStep per cycle
    array([1.02, 0.98, 1.02], dtype=float32)
    >>> r.corrected_outputs
    array([7.028     , 2.6460001 , 0.20799999], dtype=float32)

    The heartbeat then stays at 1: the 50th unchanged 10 ms cycle reaches the 500 ms timeout, and the
    applied values hold (REAL arithmetic: fifty steps of 0.02 from 1.0 end at 1.999999, not 2.0).

    >>> results = [block.cycle(raw, gain, offset, 1, 1, 0.01) for _ in range(50)]
    >>> [(k, r.status.name) for k, r in enumerate(results, 1) if r.fault]
    [(50, 'HOLDING')]
    >>> results[-1].applied_gain
    array([1.1     , 0.5     , 1.999999], dtype=float32)
    >>> r = block.cycle(raw, gain, offset, 1, 2, 0.01)      # the heartbeat moves: ramping resumes
    >>> r.fault, r.status.name, r.applied_gain
    (False, 'RAMPING', array([1.1     , 0.5     , 2.019999], dtype=float32))
    """

    def __init__(self, n_outputs: int, *, gain_min: float = DEFAULTS.gain_min, gain_max: float = DEFAULTS.gain_max,
                 offset_min: float = DEFAULTS.offset_min, offset_max: float = DEFAULTS.offset_max,
                 max_gain_step: float = DEFAULTS.max_gain_step, max_offset_step: float = DEFAULTS.max_offset_step,
                 heartbeat_timeout_s: float = DEFAULTS.heartbeat_timeout_s) -> None:
        self.n_outputs = operator.index(n_outputs)
        if self.n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs!r}")
        self.gain_min, self.gain_max = np.float32(gain_min), np.float32(gain_max)
        self.offset_min, self.offset_max = np.float32(offset_min), np.float32(offset_max)
        self.max_gain_step, self.max_offset_step = np.float32(max_gain_step), np.float32(max_offset_step)
        for name, low, high in (("gain", self.gain_min, self.gain_max), ("offset", self.offset_min, self.offset_max)):
            if not (np.isfinite(low) and np.isfinite(high) and low <= high):
                raise ValueError(f"{name}_min <= {name}_max must hold with finite REAL values, got {low}, {high}")
        if not (self.max_gain_step > 0 and self.max_offset_step > 0):
            raise ValueError("max_gain_step and max_offset_step must be > 0")
        self.heartbeat_timeout_ns = _nanoseconds(heartbeat_timeout_s, "heartbeat_timeout_s")
        n = self.n_outputs
        self.applied_gain, self.target_gain = np.ones(n, np.float32), np.ones(n, np.float32)
        self.applied_offset, self.target_offset = np.zeros(n, np.float32), np.zeros(n, np.float32)
        self.accepted_commit = 0
        self.plc_heartbeat = 0
        self.last_heartbeat = 0
        self.stall_ns = 0
        self.fault = False
        self.rejected = False
        self.status = Status.OK

    def cycle(self, raw_outputs, gain_set, offset_set, commit_counter: int, heartbeat: int,
              dt_s: float) -> CycleResult:
        """Run one PLC cycle.

        Parameters
        ----------
        raw_outputs, gain_set, offset_set
            ``RawOutputs``, ``GainSet``, ``OffsetSet``: ``N`` values each, stored as REAL (float32)
            the way a PLC tag stores a written value (finite values beyond the REAL range become inf).
        commit_counter, heartbeat
            ``CommitCounter`` and ``Heartbeat``, taken modulo 2**32 as a UDINT tag stores them.
        dt_s
            The cycle time ``dt`` in seconds (``CycleTime`` on the PLC), counted in whole nanoseconds.

        Returns
        -------
        CycleResult
            The outputs after this cycle.

        Raises
        ------
        ValueError
            If an array does not hold exactly ``N`` values or ``dt_s`` is not a positive time.
        """
        raw = self._real(raw_outputs, "raw_outputs")
        gain, offset = self._real(gain_set, "gain_set"), self._real(offset_set, "offset_set")
        counter, beat = udint(commit_counter), udint(heartbeat)
        dt_ns = _nanoseconds(dt_s, "dt_s")

        if beat != self.last_heartbeat:                               # 1. watchdog (D1-D3)
            self.last_heartbeat, self.stall_ns = beat, 0
        elif self.stall_ns < self.heartbeat_timeout_ns:
            self.stall_ns += dt_ns
        self.fault = self.stall_ns >= self.heartbeat_timeout_ns

        if not self.fault and counter != self.accepted_commit:       # 2. commit (D4, D5, D7)
            if _finite(gain) and _finite(offset):
                self.target_gain = np.maximum(self.gain_min, np.minimum(gain, self.gain_max))
                self.target_offset = np.maximum(self.offset_min, np.minimum(offset, self.offset_max))
                self.rejected = False
            else:
                self.rejected = True
            self.accepted_commit = counter

        ramping = False
        if not self.fault:                                            # 3. ramp (D9)
            self.applied_gain = ramp_step(self.applied_gain, self.target_gain, self.max_gain_step)
            self.applied_offset = ramp_step(self.applied_offset, self.target_offset, self.max_offset_step)
            ramping = bool(np.any(self.applied_gain != self.target_gain)
                           or np.any(self.applied_offset != self.target_offset))

        with np.errstate(over="ignore", invalid="ignore"):           # 4. output (D9, D10)
            corrected = self.applied_gain * raw + self.applied_offset
        self.plc_heartbeat = next_beat(self.plc_heartbeat)
        if self.fault:
            self.status = Status.HOLDING
        elif self.rejected:
            self.status = Status.REJECTED
        else:
            self.status = Status.RAMPING if ramping else Status.OK
        return CycleResult(corrected, self.applied_gain.copy(), self.applied_offset.copy(), self.accepted_commit,
                           self.fault, self.plc_heartbeat, self.status)

    def _real(self, values, name: str) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if array.shape != (self.n_outputs,):
            raise ValueError(f"{name} must hold {self.n_outputs} values, got shape {array.shape}")
        with np.errstate(over="ignore"):
            return array.astype(np.float32)


def _finite(values: np.ndarray) -> bool:
    """The PLC's test: no ``x <> x`` (NaN) and no ``x > 3.4E38`` or ``x < -3.4E38`` (Inf)."""
    return not bool(np.any(np.isnan(values)) or np.any(values > REAL_LIMIT) or np.any(values < -REAL_LIMIT))


def _nanoseconds(seconds: float, name: str) -> int:
    seconds = float(seconds)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a positive, finite time in seconds, got {seconds!r}")
    ns = round(seconds * 1e9)
    if ns < 1:
        raise ValueError(f"{name} must be at least 1 ns, got {seconds!r}")
    return ns
