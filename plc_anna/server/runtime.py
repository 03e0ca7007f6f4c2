"""One scan of a network and its compensator, and the commands between scans: what the server runs.

:class:`Runtime` is synchronous and not thread-safe: the server's scan task
calls :meth:`Runtime.step` and every command on one worker thread, so they
never overlap. It knows nothing of OPC UA; each step returns a
:class:`Snapshot`, plain arrays the server publishes.

The process that drives a simulated network is sampled from the network
file's own input data (``X``), ``samples_per_scan`` rows a scan; its age
advances ``age_rate`` simulated seconds per second of wall time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from plc_anna.compensator import CompensatorConfig
from plc_anna.contract.counters import next_beat, next_counter, udint
from plc_anna.device.base import AnalogNetwork
from plc_anna.device.simulated import HORIZON_S, SimulatedNetwork
from plc_anna.drift.states import DriftState, Event
from plc_anna.loop import ScanLoop

if TYPE_CHECKING:
    from plc_anna.engine.jobs import JobWorker

logger = logging.getLogger(__name__)

#: Age at which a freshly programmed simulated network starts (its t0 fingerprint a minute later).
START_AGE_S = 60.0
STATE_FORMAT = 1
#: Commit counters reserved at a time: the end of a block is persisted before its first counter is used.
COUNTER_BLOCK = 1000
#: A saved state from before counters were reserved: resume this far ahead of its counter, past any
#: counter used after it was saved (the state was saved at least once a minute; a counter moves at most
#: once a scan, 6000 a minute at the fastest scan).
UNRESERVED_SKIP = 1_000_000


@dataclass(frozen=True)
class LayerSnapshot:
    """What one layer's nodes show after a scan (arrays of length ``columns``)."""

    index: int
    state: DriftState
    gain: np.ndarray
    offset: np.ndarray
    column_distance: np.ndarray
    layer_distance: float
    statistic: float
    threshold: float
    transport_cost: np.ndarray
    sample_count: int
    gain_trend: np.ndarray
    """Gain change per decade of age per column; empty until the drift latent is ready."""
    remaining_life_s: float | None
    """Age at which a correction leaves the hardware range; None: not known yet; inf: not within 1000 years."""
    state_reason: str = ""
    """Why the layer is Suspect, Drifting or Fault (which statistic, which columns, when); "" otherwise."""
    coverage: float = float("nan")
    """Fraction of the live input region the reference can predict (0..1); NaN before a fingerprint."""


@dataclass(frozen=True)
class Snapshot:
    """The result of one :meth:`Runtime.step`."""

    scan: int
    age_s: float
    temperature_k: float
    layers: tuple[LayerSnapshot, ...]
    events: tuple[Event, ...]
    commit_counter: int
    heartbeat: int
    read_s: float
    """Time to read the network (a simulated inference here)."""
    compute_s: float
    """Time of the compensator update."""


class Runtime:
    """A network, its compensator and the process that drives it.

    Parameters
    ----------
    net
        The analog network: simulated, or observed through a PLC (its samples come from the PLC link).
    config
        The compensator's settings.
    samples_per_scan
        Process samples per scan (at least 2).
    age_rate
        Simulated seconds of age per wall-clock second (0 stops the clock).
    seed
        Seed of the process sampling.
    jobs
        The worker of the compensator's off-scan jobs (None: they run inline, in the scan).
    reserve_counters
        Persists the end of the next block of commit counters, durably, before it returns (the
        server's state store); without it the commit counter starts from its saved value on a restart
        and may repeat what it published after that save.
    """

    def __init__(self, net: AnalogNetwork, config: CompensatorConfig | None = None, samples_per_scan: int = 8,
                 age_rate: float = 1.0, seed: int = 0, jobs: JobWorker | None = None,
                 reserve_counters: Callable[[int], None] | None = None) -> None:
        if not 2 <= int(samples_per_scan) <= 4096:
            raise ValueError(f"samples_per_scan must be within 2..4096, got {samples_per_scan}")
        if not (math.isfinite(age_rate) and age_rate >= 0):
            raise ValueError(f"age_rate must be a finite number >= 0, got {age_rate}")
        if not net.observes_process and (net.network.X is None or len(net.network.X) < 2):
            raise ValueError(f"network {net.network.name!r} carries no input data (X) to drive the simulated process")
        self.net = net
        self.loop = ScanLoop(net, config, samples_per_scan=int(samples_per_scan), seed=seed, jobs=jobs, record=False)
        if net.observes_process and any(c is None for c in net.converters()):
            logger.warning("the converters of %s are not known (give dac_bits and adc_bits in the tag map's "
                           "[device]): a process that moves its inputs between DAC codes may read as drift",
                           net.network.name)
        self.samples_per_scan = int(samples_per_scan)
        self.age_rate = float(age_rate)
        self.scan = 0
        self.samples = 0
        """Process samples the compensator took, since the first scan (kept across restarts)."""
        self.commit_counter = 0
        self._reserve = reserve_counters
        self._reserved_left = 0
        self.heartbeat = 0
        self._published: tuple[np.ndarray, np.ndarray] | None = None
        self._last_wall: float | None = None
        if isinstance(net, SimulatedNetwork) and net.age_s < START_AGE_S:
            net.set_age(START_AGE_S)

    @property
    def compensator(self):
        return self.loop.compensator

    @property
    def simulated(self) -> SimulatedNetwork:
        """The simulated network, for the test-rig commands; ValueError for any other backend."""
        if not isinstance(self.net, SimulatedNetwork):
            raise ValueError("test-rig commands need the simulated network")
        return self.net

    # ------------------------------------------------------------------ scan
    def step(self) -> Snapshot:
        """Advance the clock and run one scan (:meth:`ScanLoop.scan <plc_anna.loop.ScanLoop.scan>`)."""
        now = time.monotonic()
        if self._last_wall is not None and self.age_rate > 0 and isinstance(self.net, SimulatedNetwork):
            self.net.advance(min(self.age_rate * (now - self._last_wall), 1e9))
        self._last_wall = now
        events = self.loop.scan()
        self.samples += self.loop.last_samples
        self.scan += 1
        return self._snapshot(tuple(events), self.loop.last_read_s, self.loop.last_update_s)

    def snapshot(self) -> Snapshot:
        """The current values without a scan (after a command, or before the first scan)."""
        return self._snapshot((), 0.0, 0.0, beat=False)

    def _snapshot(self, events: tuple[Event, ...], read_s: float, compute_s: float, beat: bool = True) -> Snapshot:
        if beat:  # the heartbeat counts scans
            self.heartbeat = next_beat(self.heartbeat)
        plc_set = self.compensator.correction(len(self.compensator.layers) - 1)
        if self._published is None or not all(np.array_equal(a, b) for a, b in zip(plc_set, self._published)):
            if self._published is not None:
                self.commit_counter = self._next_commit_counter()
            self._published = plc_set
        return Snapshot(scan=self.scan, age_s=self.net.age_s, temperature_k=self.net.temperature_k,
                        layers=tuple(_layer_snapshot(layer, self.samples)
                                     for layer in self.compensator.layers),
                        events=events, commit_counter=self.commit_counter, heartbeat=self.heartbeat,
                        read_s=read_s, compute_s=compute_s)

    def _next_commit_counter(self) -> int:
        """The next commit counter; a new block is reserved (persisted) before its first counter is used."""
        counter = next_counter(self.commit_counter)
        if self._reserve is not None:
            if self._reserved_left <= 0:
                # every counter up to the mark may be used before the next reservation (one more when the
                # block wraps past 0, which is skipped): a restart resumes after the mark
                self._reserve(udint(counter + COUNTER_BLOCK))
                self._reserved_left = COUNTER_BLOCK
            self._reserved_left -= 1
        return counter

    def resume_counters(self, reserved: int | None) -> None:
        """After a restart: continue the commit counter after every counter it may have published.

        ``reserved`` is the last block end persisted (None: never reserved). Without one, a restored
        state's counter is advanced by :data:`UNRESERVED_SKIP`. Either way the next counter is
        reserved anew before it is used.
        """
        if reserved is not None:
            self.commit_counter = udint(reserved)
        elif self.commit_counter:
            self.commit_counter = udint(self.commit_counter + UNRESERVED_SKIP)
        self._reserved_left = 0

    # -------------------------------------------------------------- commands
    def calibrate(self) -> None:
        self.compensator.calibrate()

    def commit(self) -> None:
        self.compensator.commit()

    def rollback(self) -> None:
        self.compensator.rollback()

    def reset_reference(self) -> None:
        self.compensator.reset_reference()

    def set_correction(self, layer: int, gain: np.ndarray, offset: np.ndarray) -> None:
        """An engineer's correction for ``layer``, applied and committed now (ValueError: nothing changes)."""
        self._layer(layer).set_correction(gain, offset)

    def set_gain(self, layer: int, gain: np.ndarray) -> None:
        """An engineer's gains for ``layer`` with its offsets as they are, applied and committed now."""
        self.set_correction(layer, gain, self._layer(layer).correction()[1])

    def set_offset(self, layer: int, offset: np.ndarray) -> None:
        """An engineer's offsets for ``layer`` with its gains as they are, applied and committed now."""
        self.set_correction(layer, self._layer(layer).correction()[0], offset)

    def set_age(self, age_s: float) -> None:
        self.simulated.set_age(_finite(age_s, "age"))

    def set_temperature(self, temperature_k: float) -> None:
        self.simulated.set_temperature(_finite(temperature_k, "temperature"))

    def inject_fault(self, layer: int, gain: np.ndarray, offset: np.ndarray) -> None:
        """Multiply ``layer``'s column gains by ``gain`` and add ``offset`` in the simulated device."""
        n = self._layer(layer).n_out
        gain, offset = np.asarray(gain, dtype=float), np.asarray(offset, dtype=float)
        for name, values in (("gain", gain), ("offset", offset)):
            if values.shape != (n,):
                raise ValueError(f"layer {layer}: a fault {name} needs {n} values, got {values.size}")
            if not np.all(np.isfinite(values)):
                raise ValueError(f"layer {layer}: the fault {name} contains NaN or Inf")
        self.simulated.inject_fault(layer, gain, offset)

    def _layer(self, layer: int):
        layers = self.compensator.layers
        if not (isinstance(layer, (int, np.integer)) and 0 <= layer < len(layers)):
            raise ValueError(f"no layer {layer!r}: the network has layers 0..{len(layers) - 1}")
        return layers[int(layer)]

    # ----------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """What a restart needs: the compensator's state, the device's age and temperature, the counters."""
        return {"format": STATE_FORMAT, "scan": self.scan, "samples": self.samples,
                "commit_counter": self.commit_counter,
                # An observed network's age is NaN until the PLC was first read: stored as null.
                "age_s": self.net.age_s if math.isfinite(self.net.age_s) else None,
                "temperature_k": self.net.temperature_k,
                "compensator": self.compensator.state_dict()}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; ValueError (naming the problem) leaves everything as it was."""
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"not a saved server state of format {STATE_FORMAT}")
        try:
            scan, counter = int(data["scan"]), udint(int(data["commit_counter"]))
            age = math.nan if data["age_s"] is None else float(data["age_s"])
            temperature = float(data["temperature_k"])
            saved = data["compensator"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a saved server state lacks {exc}") from None
        if isinstance(self.net, SimulatedNetwork):  # check what the device takes before anything changes
            # (an observed network's clock is the plant's: a saved age is not restored, and may be NaN)
            age, temperature = _finite(age, "age"), _finite(temperature, "temperature")
            if not 0.0 <= age <= HORIZON_S:
                raise ValueError(f"a saved age of {age} s is outside 0..{HORIZON_S:.4g} s")
            if not 1.0 <= temperature <= 1000.0:
                raise ValueError(f"a saved temperature of {temperature} K is outside 1..1000 K")
        recalibrating = self.compensator.load_state_dict(saved)
        if recalibrating:
            logger.warning("the saved fingerprint of layer(s) %s is of an older format: they calibrate again from "
                           "live data (corrections and drift history kept)", ", ".join(map(str, recalibrating)))
        if isinstance(self.net, SimulatedNetwork):
            self.net.set_age(max(age, self.net.age_s))
            if temperature != self.net.temperature_k:
                self.net.set_temperature(temperature)
        self.scan, self.commit_counter = scan, counter
        # States saved before the sample count was kept: every scan took samples_per_scan samples.
        self.samples = int(data.get("samples", scan * self.samples_per_scan))
        self._published = self.compensator.correction(len(self.compensator.layers) - 1)


def _finite(value: Any, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value}")
    return value


def _layer_snapshot(layer, samples: int) -> LayerSnapshot:
    gain, offset = layer.correction()
    last = layer.last_statistic
    monitor = layer.monitor
    n = layer.n_out
    distances = np.full(n, math.nan) if last is None else np.asarray(last.distances, dtype=float)
    pending = layer.pending
    trend = layer.gain_trend
    life = layer.remaining_life
    if life is not None:
        life_s: float | None = float(life.age_s)
    else:
        life_s = math.inf if layer.trend_established else None
    return LayerSnapshot(
        index=layer.index, state=layer.state, gain=gain, offset=offset, column_distance=distances,
        layer_distance=float(layer.distance),
        # the monitor's tests, as the largest CUSUM over its threshold: an alarm at 1
        statistic=math.nan if monitor is None else float(monitor.ratio),
        threshold=math.nan if monitor is None else 1.0,
        transport_cost=np.zeros(n) if pending is None else np.asarray(pending.transport_cost, dtype=float),
        sample_count=samples, gain_trend=trend, remaining_life_s=life_s, state_reason=layer.state_reason,
        coverage=float(layer.coverage))
