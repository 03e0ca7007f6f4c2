"""The streams of ``plc-anna bench detect``: what the plant does, and what the hardware does, scan by scan.

Every stream is a :class:`Plan`: the scans that calibrate the detectors, the
scans that follow, and a hardware event before each scan (a fault injected,
the age moved). Streams of kind:

- ``noise``: nominal inputs, nothing changes;
- ``process_shift``: the inputs move from scan 0 and stay (a 2σ mean shift, twice
  the variance, another class mix), clipped to the live pool's range;
- ``slow_process``: the operating point moves slowly and visits input regions
  the calibration never saw; the hardware never changes. The calibration sees
  what a plant's first minute shows: the process where it starts.

  - ``random_walk``: the operating point (a neighbourhood of the pool, along its
    first two principal components) walks randomly;
  - ``daily_cycle``: a 24 h cycle of the operating point sampled at the scan
    rate, one cycle over the stream: each scan sees a narrow slice;
  - ``regime_change``: a tenth into the stream the process jumps to a region
    the calibration never saw (a new product recipe) and stays;
  - ``narrow_calibration``: the calibration covers a tenth of the range the
    stream then visits uniformly;

- ``drift``: nominal inputs, and at ``change_at = scans // 10`` the hardware
  changes: the gain of a tenth of the columns of every layer drops by 1, 2 or
  5 %, their offset moves by 0.5 % of the ADC range, or the device ages from
  one day to two (genuine PCM drift, geometric in time).

A neighbourhood is the ``width`` share of the pool nearest (in the pool's
standardized input space) to a centre point; centres move along a path through
the pool's first two principal components, within the pool's range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from plc_anna.bench.streams import Split, draw
from plc_anna.device.simulated import SimulatedNetwork

STREAMS = ("noise", "mean_shift_2sigma", "variance_x2", "class_mix", "random_walk", "daily_cycle",
           "regime_change", "narrow_calibration", "gain_step_1pct", "gain_step_2pct", "gain_step_5pct",
           "offset_step", "pcm_log_age")
KINDS = {"noise": "noise", "mean_shift_2sigma": "process_shift", "variance_x2": "process_shift",
         "class_mix": "process_shift", "random_walk": "slow_process", "daily_cycle": "slow_process",
         "regime_change": "slow_process", "narrow_calibration": "slow_process", "gain_step_1pct": "drift",
         "gain_step_2pct": "drift", "gain_step_5pct": "drift", "offset_step": "drift", "pcm_log_age": "drift"}
GAIN_STEPS = {"gain_step_1pct": 0.99, "gain_step_2pct": 0.98, "gain_step_5pct": 0.95}
BASE_AGE_S = 86400.0
CALIBRATION_SAMPLES = 8192
OFFSET_FRACTION = 0.005     # of the layer's ADC full scale
COLUMN_FRACTION = 0.1       # of the columns of every layer that a gain or offset step hits
NEIGHBOURHOOD = 0.1         # share of the pool an operating point draws from
SLICE = 0.05                # share of the pool a daily-cycle scan draws from
DRAW_SCANS = 64             # scans of live inputs drawn at once


@dataclass
class Plan:
    """One stream: its description, the change scan (drift only), calibration and live scans, and
    ``event(i, sim)``, the hardware change before scan ``i`` applied to a simulated device (the same one
    can be applied to a twin of it)."""

    change: str
    change_at: int | None
    calibration: list[np.ndarray]
    scans: Iterator[np.ndarray]
    event: Callable[[int, SimulatedNetwork], None]


class _Pool:
    """The live pool in the coordinates neighbourhoods are taken in."""

    def __init__(self, data: Split) -> None:
        self.X = data.live_X
        mean, std = self.X.mean(axis=0), self.X.std(axis=0)
        self.z = (self.X - mean) / np.where(std > 0, std, 1.0)
        components = np.linalg.svd(self.z, full_matrices=False)[2][:2]
        scores = self.z @ components.T
        self.components, self.low, self.high = components, scores.min(axis=0), scores.max(axis=0)

    def centre(self, position: np.ndarray) -> np.ndarray:
        """The point at ``position`` (two numbers in [0, 1]) of the pool's principal-component box."""
        return (self.low + np.clip(position, 0.0, 1.0) * (self.high - self.low)) @ self.components

    def near(self, position: np.ndarray, width: float, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples from the ``width`` share of the pool nearest to ``position``."""
        distance = np.sum((self.z - self.centre(position)) ** 2, axis=1)
        size = max(2, int(round(width * len(self.X))))
        nearest = np.argpartition(distance, size - 1)[:size]
        return self.X[nearest[rng.integers(0, size, n)]]


def _scans(make: Callable[[int], np.ndarray], n: int) -> Iterator[np.ndarray]:
    """Endless scans of ``n`` samples, ``make(m)`` drawing ``m`` samples :data:`DRAW_SCANS` scans at a time."""
    while True:
        yield from make(n * DRAW_SCANS).reshape(DRAW_SCANS, n, -1)


def _calibration(make: Callable[[int], np.ndarray], n: int) -> list[np.ndarray]:
    return [make(n) for _ in range(-(-CALIBRATION_SAMPLES // n))]


def _nothing(i: int, sim: SimulatedNetwork) -> None:
    return None


def plan(name: str, sim: SimulatedNetwork, data: Split, rng: np.random.Generator, scans: int, n: int) -> Plan:
    """The :class:`Plan` of stream ``name`` (see the module docstring)."""
    pool = data.live_X
    mean, std, low, high = pool.mean(axis=0), pool.std(axis=0), pool.min(axis=0), pool.max(axis=0)

    def nominal(m: int) -> np.ndarray:
        return draw(data, "nominal", m, rng)

    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"unknown stream {name!r}; valid: {', '.join(STREAMS)}")
    if kind == "slow_process":
        return _slow(name, _Pool(data), rng, scans, n)
    calibration = _calibration(nominal, n)
    if name == "noise":
        return Plan("nothing changes", None, calibration, _scans(nominal, n), _nothing)
    if name == "mean_shift_2sigma":
        return Plan("inputs + 2 sigma per feature from scan 0, clipped to the pool's range", None, calibration,
                    _scans(lambda m: np.clip(nominal(m) + 2.0 * std, low, high), n), _nothing)
    if name == "variance_x2":
        return Plan("inputs mean + sqrt(2) (x - mean) per feature from scan 0, clipped to the pool's range", None,
                    calibration, _scans(lambda m: np.clip(mean + np.sqrt(2.0) * (nominal(m) - mean), low, high), n),
                    _nothing)
    if name == "class_mix":
        return Plan("'process_shift' class mix (first half of the classes 4x as frequent) from scan 0", None,
                    calibration, _scans(lambda m: draw(data, "process_shift", m, rng), n), _nothing)
    return _drift(name, sim, rng, scans, calibration, _scans(nominal, n))


def _slow(name: str, pool: _Pool, rng: np.random.Generator, scans: int, n: int) -> Plan:
    if name == "random_walk":
        start = np.array([0.5, 0.5])

        def walk() -> Iterator[np.ndarray]:
            position = start.copy()
            while True:
                position = 1.0 - np.abs(1.0 - np.abs(position + rng.normal(0.0, 0.004, 2)))   # reflect in [0, 1]
                yield pool.near(position, NEIGHBOURHOOD, n, rng)

        return Plan("the operating point walks randomly through the pool (steps of 0.4 % of its range per scan) "
                    "from where the calibration saw it", None,
                    _calibration(lambda m: pool.near(start, NEIGHBOURHOOD, m, rng), n), walk(), _nothing)
    if name == "daily_cycle":
        def position(i: int) -> np.ndarray:
            angle = 2.0 * np.pi * i / scans
            return np.array([0.5 + 0.45 * np.cos(angle), 0.5 + 0.45 * np.sin(angle)])

        def cycle() -> Iterator[np.ndarray]:
            for i in range(scans):
                yield pool.near(position(i), SLICE, n, rng)
            while True:
                yield pool.near(position(scans), SLICE, n, rng)

        return Plan("one 24 h cycle of the operating point over the stream, each scan a 5 % slice of the pool; "
                    "calibrated on the first minute's slice", None,
                    _calibration(lambda m: pool.near(position(0), SLICE, m, rng), n), cycle(), _nothing)
    if name == "regime_change":
        before, after = np.array([0.15, 0.5]), np.array([0.85, 0.5])

        def regimes() -> Iterator[np.ndarray]:
            for i in range(scans):
                yield pool.near(before if i < scans // 10 else after, 2 * NEIGHBOURHOOD, n, rng)

        return Plan(f"at scan {scans // 10} the process moves from one end of the pool to the other, a region "
                    "the calibration never saw", None,
                    _calibration(lambda m: pool.near(before, 2 * NEIGHBOURHOOD, m, rng), n), regimes(), _nothing)
    centre = np.array([0.5, 0.5])
    return Plan("calibrated on the tenth of the pool around its centre; the stream then visits all of it", None,
                _calibration(lambda m: pool.near(centre, NEIGHBOURHOOD, m, rng), n),
                _scans(lambda m: pool.X[rng.integers(0, len(pool.X), m)], n), _nothing)


def _drift(name: str, sim: SimulatedNetwork, rng: np.random.Generator, scans: int, calibration: list[np.ndarray],
           live: Iterator[np.ndarray]) -> Plan:
    change_at = scans // 10
    if name == "pcm_log_age":
        ages = np.geomspace(BASE_AGE_S, 2.0 * BASE_AGE_S, scans - change_at + 1)[1:]

        def age(i: int, target: SimulatedNetwork) -> None:
            if i >= change_at:
                target.set_age(float(ages[i - change_at]))

        return Plan(f"age 1 d -> 2 d, geometric, from scan {change_at} to the end", change_at, calibration, live, age)
    layers = sim.network.layers
    hit = [rng.choice(layer.n_out, size=max(1, int(COLUMN_FRACTION * layer.n_out)), replace=False)
           for layer in layers]
    counts = ", ".join(f"{h.size}/{layer.n_out}" for h, layer in zip(hit, layers))
    if name in GAIN_STEPS:
        factor = GAIN_STEPS[name]
        faults = [(np.where(np.isin(np.arange(layer.n_out), h), factor, 1.0), np.zeros(layer.n_out))
                  for h, layer in zip(hit, layers)]
        change = f"gain x{factor:g} on 10% of columns ({counts}) at scan {change_at}"
    else:
        faults = [(np.ones(layer.n_out), np.where(np.isin(np.arange(layer.n_out), h),
                                                  OFFSET_FRACTION * layer.output_range, 0.0))
                  for h, layer in zip(hit, layers)]
        change = f"offset +0.5% of the ADC range on 10% of columns ({counts}) at scan {change_at}"

    def inject(i: int, target: SimulatedNetwork) -> None:
        if i == change_at:
            for layer, (gain, offset) in enumerate(faults):
                target.inject_fault(layer, gain, offset)

    return Plan(change, change_at, calibration, live, inject)
