"""The streaming compensator: statistics → drift monitor → transport → transition, per layer.

Usable from plain Python, without any server: feed each scan's per-layer
digital inputs and raw analog outputs, read the state, the distance and the
correction to apply, and receive events.

Examples
--------
>>> from plc_anna.device.network import digital_forward
>>> from plc_anna.device.simulated import SimulatedNetwork
>>> sim = SimulatedNetwork("thermocouple", "pcm", seed=0)
>>> comp = Compensator.for_network(sim.network, CompensatorConfig(calibration_samples=2048))
>>> rng = np.random.default_rng(0)
>>> def scan():
...     traces = sim.trace(sim.network.X[rng.integers(0, 1000, 64)])
...     events = comp.update([(t.inputs, t.outputs) for t in traces], age_s=sim.age_s)
...     for layer in comp.device_layers:
...         sim.set_correction(layer, *comp.correction(layer))
...     return events
>>> sim.set_age(60.0)
>>> kinds = [e.kind.value for _ in range(250) for e in scan()]   # t0 fingerprint, first corrections
>>> kinds[:2], [state.name for state in comp.states]
(['calibrated', 'transition_started'], ['NOMINAL', 'NOMINAL', 'NOMINAL'])
>>> for age in np.geomspace(60.0, 30 * 86400.0, 300):          # a month of drift, scan by scan
...     sim.set_age(age)
...     kinds += [e.kind.value for e in scan()]
>>> kinds += [e.kind.value for _ in range(150) for e in scan()]   # and a little longer at 30 days
>>> kinds.count("committed") >= 3
True
>>> X, ideal = sim.network.X[1000:], digital_forward(sim.network, sim.network.X[1000:])
>>> gain, offset = comp.correction(2)
>>> raw = sim.infer(X)
>>> rms = lambda e: float(np.sqrt(np.mean(e**2)))
>>> round(rms(raw - ideal)), round(rms(gain * raw + offset - ideal), 1)   # °C, uncorrected and corrected
(202, 28.4)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING
from dataclasses import dataclass, field

import numpy as np

from plc_anna.correction.estimate import Correction, estimate_correction, refine_clipped
from plc_anna.correction.transition import RampLimits, Transition
from plc_anna.drift.fisher_rao import fisher_rao_distance, layer_distance
from plc_anna.drift.monitor import DEFAULT_MODEL_ERROR, DriftMonitor, ScanStatistic
from plc_anna.drift.states import DriftState, Event, EventKind
from plc_anna.stats.moments import Moments, RunningMoments
from plc_anna.stats.reference import Fingerprint, Reference, fit_fingerprint, reference_moments

if TYPE_CHECKING:  # the numerics never import the device package at run time
    from plc_anna.device.network import Network


@dataclass(frozen=True)
class CompensatorConfig:
    """Settings of a compensator (one set for every layer).

    Parameters
    ----------
    calibration_samples
        Samples of the t0 fingerprint. The least-squares response of a layer
        with ``n_in`` inputs needs many more than ``n_in`` samples; its
        prediction error enters the statistic's variance.
    estimate_samples
        Minimum samples of a correction estimate after a detection.
    holdout_samples
        Fresh samples that must confirm a new correction before it commits.
    arl0
        Target mean number of scans between false alarms of the detector.
    detector_shift
        Mean shift of the statistic's normal score the CUSUM is tuned for.
    deadband_gain, deadband_offset
        A new correction that differs from the applied one by less than this
        in every gain (relative) and offset (fraction of the column's
        calibrated standard deviation) is absorbed, not applied.
    fault_distance
        A column whose Fisher–Rao distance to the reference grows by more
        than this from one scan to the next has not drifted: that is a fault.
    model_error
        Variance floor of the monitor's mean prediction, as a fraction of the
        noise variance (see :class:`~plc_anna.drift.monitor.DriftMonitor`).
    schedule_ratio
        Log-age schedule: after a commit at age ``a`` the next estimate waits
        until age ``a · schedule_ratio`` (when ages are given).
    ramp
        Limits of the bumpless transition.
    """

    calibration_samples: int = 4096
    estimate_samples: int = 2048
    holdout_samples: int = 1024
    arl0: float = 1e6
    detector_shift: float = 1.0
    deadband_gain: float = 0.02
    deadband_offset: float = 0.02
    fault_distance: float = 1.0
    model_error: float = DEFAULT_MODEL_ERROR
    schedule_ratio: float = 1.05
    ramp: RampLimits = field(default_factory=RampLimits)

    def __post_init__(self) -> None:
        for name in ("calibration_samples", "estimate_samples", "holdout_samples"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 2):
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        for name in ("arl0", "detector_shift", "fault_distance"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        if self.arl0 <= 1:
            raise ValueError(f"arl0 must exceed 1 scan, got {self.arl0}")
        for name in ("deadband_gain", "deadband_offset", "model_error"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.schedule_ratio >= 1:
            raise ValueError(f"schedule_ratio must be >= 1, got {self.schedule_ratio}")


class LayerCompensator:
    """Drift monitor and correction of one layer.

    Parameters
    ----------
    index
        The layer's position in the network (for events).
    weights, bias
        The programmed weights (n_out, n_in) and bias: the ideal response.
    config
        Shared settings.
    """

    def __init__(self, index: int, weights: np.ndarray, bias: np.ndarray, config: CompensatorConfig) -> None:
        self.index = index
        self.weights = np.asarray(weights, dtype=float)
        self.bias = np.asarray(bias, dtype=float)
        self.config = config
        self.n_out, self.n_in = self.weights.shape
        self.scan = 0
        self._fingerprint: Fingerprint | None = None
        self._monitor: DriftMonitor | None = None
        self._gain, self._offset = np.ones(self.n_out), np.zeros(self.n_out)
        self._good = (self._gain.copy(), self._offset.copy())
        self._next_age = -math.inf
        self.calibrate()

    # ------------------------------------------------------------ read-only
    @property
    def state(self) -> DriftState:
        return self._state

    @property
    def fingerprint(self) -> Fingerprint | None:
        return self._fingerprint

    @property
    def monitor(self) -> DriftMonitor | None:
        """The drift monitor against the current fingerprint (the previous one while calibrating)."""
        return self._monitor

    @property
    def last_statistic(self) -> ScanStatistic | None:
        return None if self._monitor is None else self._monitor.last

    @property
    def distance(self) -> float:
        """Layer Fisher–Rao distance of the last scan measured (product-manifold norm); NaN before any."""
        last = self.last_statistic
        return math.nan if last is None else layer_distance(last.distances)

    @property
    def pending(self) -> Correction | None:
        """The correction being ramped to or confirmed, if any."""
        return self._pending

    def correction(self) -> tuple[np.ndarray, np.ndarray]:
        """The (gain, offset) to apply to the raw outputs now (copies)."""
        return self._gain.copy(), self._offset.copy()

    def last_good(self) -> tuple[np.ndarray, np.ndarray]:
        """The last committed (gain, offset)."""
        return self._good[0].copy(), self._good[1].copy()

    # ------------------------------------------------------------- commands
    def calibrate(self) -> None:
        """Record a new fingerprint from the next ``calibration_samples`` and correct to it.

        The applied correction stays until a new one has ramped in and
        passed its hold-out (bumpless); the fingerprint is taken on the raw
        outputs, which the correction does not touch.
        """
        self._start_fingerprint()

    def rollback(self) -> None:
        """Return to the last committed correction now."""
        self._gain, self._offset = self.last_good()
        self._enter_nominal()

    # ----------------------------------------------------------------- scan
    def update(self, inputs: np.ndarray, outputs: np.ndarray, age_s: float | None = None) -> list[Event]:
        """Feed one scan; returns the events it raised.

        Parameters
        ----------
        inputs
            The layer's digital inputs (n, n_in).
        outputs
            Its raw analog outputs (n, n_out), before this layer's correction.
        age_s
            The network's age, for the log-age schedule (optional).
        """
        inputs, outputs = self._check(inputs, outputs)
        self.scan += 1
        if self._state is DriftState.CALIBRATING:
            return self._calibrate_step(inputs, outputs, self._ideal(inputs), age_s)
        monitoring = self._state in (DriftState.NOMINAL, DriftState.SUSPECT)
        detected = self._monitor.update(inputs, outputs) if monitoring else False
        if not monitoring:
            self._monitor.measure(inputs, outputs)
        distances = self._monitor.last.distances
        previous, self._previous_distances = self._previous_distances, distances
        if self._state is DriftState.FAULT:
            return []
        if previous is not None and float(np.max(distances - previous)) > self.config.fault_distance:
            column = int(np.argmax(distances - previous))
            self.rollback()
            self._state = DriftState.FAULT
            return [self._event(EventKind.FAULT, age_s, f"column {column} jumped by a Fisher-Rao distance of "
                                f"{float(distances[column] - previous[column]):.3g} in one scan: not drift; "
                                "holding the last good correction until recalibration")]
        if monitoring:
            return self._monitor_step(detected, age_s)
        stacked = np.hstack([outputs, self._ideal(inputs), self._monitor.calibrated])
        if self._state is DriftState.DRIFTING:
            return self._estimate_step(stacked, age_s)
        return self._compensate_step(stacked, age_s)

    # ------------------------------------------------------------ internals
    def _check(self, inputs: np.ndarray, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs, outputs = np.asarray(inputs, dtype=float), np.asarray(outputs, dtype=float)
        if inputs.ndim != 2 or inputs.shape[1] != self.n_in:
            raise ValueError(f"layer {self.index}: inputs must have shape (n, {self.n_in}), got {inputs.shape}")
        if outputs.shape != (inputs.shape[0], self.n_out):
            raise ValueError(f"layer {self.index}: outputs must have shape ({inputs.shape[0]}, {self.n_out}), "
                             f"got {outputs.shape}")
        if inputs.shape[0] < 2:
            raise ValueError(f"layer {self.index}: a scan needs at least 2 samples")
        if not (np.all(np.isfinite(inputs)) and np.all(np.isfinite(outputs))):
            raise ValueError(f"layer {self.index}: inputs or outputs contain NaN or Inf")
        return inputs, outputs

    def _ideal(self, inputs: np.ndarray) -> np.ndarray:
        """What the programmed weights make of these inputs (only needed off the monitoring path)."""
        return inputs @ self.weights.T + self.bias

    def _event(self, kind: EventKind, age_s: float | None, message: str) -> Event:
        return Event(kind=kind, layer=self.index, scan=self.scan, state=self._state, message=message, age_s=age_s)

    def _start_fingerprint(self) -> None:
        self._state = DriftState.CALIBRATING
        self._calibration = RunningMoments(self.n_in + self.n_out, covariance=True)
        self._calibration_ideal = RunningMoments(self.n_out)
        self._previous_distances: np.ndarray | None = None
        self._window: RunningMoments | None = None
        self._samples: list[np.ndarray] = []
        self._transition: Transition | None = None
        self._pending: Correction | None = None

    def _calibrate_step(self, inputs, outputs, ideal, age_s) -> list[Event]:
        self._calibration.update(np.hstack([inputs, outputs]))
        self._calibration_ideal.update(ideal)
        joint = self._calibration.moments
        if joint.count < self.config.calibration_samples:
            return []
        self._fingerprint = fp = fit_fingerprint(joint, self.n_in)
        self._monitor = DriftMonitor(fp, arl0=self.config.arl0, shift=self.config.detector_shift,
                                     model_error=self.config.model_error)
        self._enter_nominal()
        events = [self._event(EventKind.CALIBRATED, age_s, f"fingerprint of {int(joint.count)} samples recorded; "
                              f"median noise {float(np.sqrt(np.median(fp.noise_var))):.3g}")]
        # Today's state is the calibrated one: map it to the ideal straight away.
        outputs_moments = Moments(count=joint.count, mean=joint.mean[self.n_in:],
                                  m2=np.diag(joint.m2)[self.n_in:])
        calibrated = Moments(count=joint.count, mean=joint.mean[self.n_in:], m2=fp.signal_var * joint.count)
        reference = reference_moments(self._calibration_ideal.moments, calibrated)
        return events + self._propose(estimate_correction(reference, outputs_moments.mean, outputs_moments.var,
                                                          fp.noise_var), age_s)

    def _enter_nominal(self) -> None:
        self._state = DriftState.NOMINAL
        self._monitor.reset()
        self._window = None
        self._transition = None
        self._pending = None

    def _monitor_step(self, detected: bool, age_s) -> list[Event]:
        detector = self._monitor.detector
        if detected:
            self._state = DriftState.DRIFTING
            self._window = None
            return [self._event(EventKind.DRIFT_DETECTED, age_s, f"CUSUM {detector.cusum:.3g} crossed "
                                f"{detector.threshold:.3g}; layer distance {self.distance:.3g}")]
        if self._state is DriftState.NOMINAL and detector.cusum > 0.5 * detector.threshold:
            self._state = DriftState.SUSPECT
            return [self._event(EventKind.SUSPECT, age_s, f"CUSUM {detector.cusum:.3g} above half its threshold")]
        if self._state is DriftState.SUSPECT and detector.cusum == 0.0:
            self._state = DriftState.NOMINAL
        return []

    def _accumulate(self, stacked: np.ndarray) -> Moments:
        """Add a scan's ``[outputs, ideal, calibrated]`` columns to the current window.

        The samples are kept too (for the empirical transport of clipped columns).
        """
        if self._window is None:
            self._window = RunningMoments(3 * self.n_out)
            self._samples = []
        self._window.update(stacked)
        self._samples.append(stacked[:, :2 * self.n_out])
        return self._window.moments

    def _split(self, window: Moments) -> tuple[Moments, Reference]:
        """Output moments and the reference of a window of ``[outputs, ideal, calibrated]``."""
        k = self.n_out
        part = [Moments(count=window.count, mean=window.mean[i * k:(i + 1) * k], m2=window.m2[i * k:(i + 1) * k])
                for i in range(3)]
        return part[0], reference_moments(part[1], part[2])

    def _estimate_step(self, stacked, age_s) -> list[Event]:
        if age_s is not None and age_s < self._next_age:
            return []  # the log-age schedule holds the next estimate back
        window = self._accumulate(stacked)
        if window.count < self.config.estimate_samples:
            return []
        out, ref = self._split(window)
        correction = estimate_correction(ref, out.mean, out.var, self._fingerprint.noise_var)
        samples = np.vstack(self._samples)
        correction, clipped = refine_clipped(correction, samples[:, :self.n_out], samples[:, self.n_out:])
        events = []
        if np.any(clipped):
            events.append(self._event(EventKind.CLIPPED, age_s, f"columns {np.flatnonzero(clipped).tolist()} are "
                                      "clipped: empirical transport instead of the Gaussian map"))
        return events + self._propose(correction, age_s)

    def _propose(self, new: Correction, age_s) -> list[Event]:
        """Ramp to ``new`` unless it is within the deadband of the applied correction."""
        gain_change = np.abs(new.gain / self._gain - 1.0)
        # Offsets compare with the column's own signal spread, so the deadband means the same in any unit.
        offset_change = np.abs(new.offset - self._offset) / np.sqrt(np.maximum(self._fingerprint.signal_var, 1e-300))
        if np.all(gain_change < self.config.deadband_gain) and np.all(offset_change < self.config.deadband_offset):
            event = self._event(EventKind.WITHIN_DEADBAND, age_s, f"largest gain change "
                                f"{float(gain_change.max()):.2%} within the deadband; correction unchanged")
            if self._state is DriftState.DRIFTING:
                # Refresh the reference; its own calibration map is checked against the deadband
                # again, so small drifts absorbed here can never add up unseen.
                self._start_fingerprint()
            return [event]
        self._pending = new
        self._transition = Transition((self._gain, self._offset), (new.gain, new.offset), self.config.ramp)
        self._window = None
        self._state = DriftState.COMPENSATING
        events = [self._event(EventKind.TRANSITION_STARTED, age_s, f"ramping over {self._transition.scans_left} "
                              f"scans; mean transport cost {float(np.mean(new.transport_cost)):.3g}")]
        if np.any(self._transition.saturated):
            columns = np.flatnonzero(self._transition.saturated).tolist()
            events.append(self._event(EventKind.SATURATED, age_s, f"columns {columns} need a correction outside "
                                      "the hardware range: hardware fatigue, clamped"))
        return events

    def _compensate_step(self, stacked, age_s) -> list[Event]:
        if not self._transition.done:
            self._gain, self._offset = self._transition.step()
            return []
        # Ramp complete: a fresh hold-out window must confirm that the distance to the ideal fell.
        window = self._accumulate(stacked)
        if window.count < self.config.holdout_samples:
            return []
        out, ref = self._split(window)
        ideal_std = np.sqrt(np.maximum(ref.ideal_var, 1e-300))

        def distance_to_ideal(gain: np.ndarray, offset: np.ndarray) -> float:
            std = np.maximum(np.abs(gain) * out.std, 1e-300)
            return layer_distance(fisher_rao_distance(gain * out.mean + offset, std, ref.ideal_mean, ideal_std))

        old_d, new_d = distance_to_ideal(*self._good), distance_to_ideal(self._gain, self._offset)
        if new_d < old_d:
            self._good = (self._gain.copy(), self._offset.copy())
            if age_s is not None:
                self._next_age = age_s * self.config.schedule_ratio
            event = self._event(EventKind.COMMITTED, age_s, f"hold-out distance to the ideal fell from {old_d:.3g} "
                                f"to {new_d:.3g}; committed; refreshing the reference")
            self._start_fingerprint()
            return [event]
        self.rollback()
        return [self._event(EventKind.ROLLED_BACK, age_s, f"hold-out distance to the ideal did not fall "
                            f"({old_d:.3g} -> {new_d:.3g}); back to the last good correction")]


class Compensator:
    """One :class:`LayerCompensator` per layer of a network, fed scan by scan.

    ``device_layers`` lists the layers whose correction the caller loads into
    the device's own affine units; the last layer's goes to the PLC.
    """

    def __init__(self, layers: Sequence[LayerCompensator], sinks: Sequence[str]) -> None:
        if len(layers) != len(sinks):
            raise ValueError("one sink per layer")
        self.layers = list(layers)
        self.sinks = tuple(sinks)

    @classmethod
    def for_network(cls, network: "Network", config: CompensatorConfig | None = None,
                    sinks: Sequence[str] | None = None) -> "Compensator":
        config = config or CompensatorConfig()
        n = len(network.layers)
        sinks = tuple(sinks) if sinks is not None else ("device",) * (n - 1) + ("plc",)
        return cls([LayerCompensator(i, layer.weights, layer.bias, config) for i, layer in enumerate(network.layers)],
                   sinks)

    @property
    def device_layers(self) -> list[int]:
        return [i for i, sink in enumerate(self.sinks) if sink == "device"]

    @property
    def states(self) -> list[DriftState]:
        return [layer.state for layer in self.layers]

    def correction(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        return self.layers[layer].correction()

    def update(self, batches: Sequence[tuple[np.ndarray, np.ndarray]], age_s: float | None = None) -> list[Event]:
        """Feed one scan: a ``(inputs, raw_outputs)`` pair per layer, in layer order.

        Each layer corrects its own drift: its ideal is what the programmed
        weights make of the inputs it actually receives. (Targeting the ideal
        network's activations instead lets a layer absorb its upstream
        layers' transient errors, and the benchmark scores that worse.)
        """
        if len(batches) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} (inputs, outputs) pairs, got {len(batches)}")
        events: list[Event] = []
        for layer, (inputs, outputs) in zip(self.layers, batches):
            events.extend(layer.update(inputs, outputs, age_s=age_s))
        return events

    def calibrate(self) -> None:
        for layer in self.layers:
            layer.calibrate()
