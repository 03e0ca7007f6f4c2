"""The compensator of one layer: statistics → drift monitor → transport → transition → drift latent."""

from __future__ import annotations

import math

import numpy as np

from plc_anna.compensator.config import CompensatorConfig
from plc_anna.correction.estimate import Correction, estimate_correction, refine_clipped
from plc_anna.correction.latent import REFERENCE_TEMPERATURE_K, CorrectionRecord, DriftLatent, RemainingLife
from plc_anna.correction.transition import Transition
from plc_anna.drift.fisher_rao import fisher_rao_distance, layer_distance
from plc_anna.drift.monitor import DriftMonitor, ScanStatistic
from plc_anna.drift.states import DriftState, Event, EventKind
from plc_anna.stats.moments import Moments, RunningMoments
from plc_anna.stats.reference import Fingerprint, Reference, fit_fingerprint, reference_moments


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
        self._reason = ""
        self.latent = DriftLatent(beta=config.latent_beta, min_records=config.min_history)
        self._remaining_life: RemainingLife | None = None
        self._maintenance_alarmed = False
        self._temperature_k = REFERENCE_TEMPERATURE_K
        self.calibrate()

    # ------------------------------------------------------------ read-only
    @property
    def state(self) -> DriftState:
        return self._state

    @property
    def state_reason(self) -> str:
        """Why the layer is Suspect, Drifting or Fault: which statistic, which columns, when; "" otherwise."""
        return self._reason if self._state in (DriftState.SUSPECT, DriftState.DRIFTING, DriftState.FAULT) else ""

    @property
    def coverage(self) -> float:
        """How much of the live input region the reference can predict (0..1); NaN before a fingerprint."""
        return math.nan

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

    @property
    def remaining_life(self) -> RemainingLife | None:
        """When the latent predicts the correction leaves the hardware range (None: not within 1000 years)."""
        return self._remaining_life

    @property
    def trend_established(self) -> bool:
        """Whether the drift history is long enough for a remaining life and for calling an estimate a fault."""
        return self._trend_established()

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
        if self._monitor is None:  # no fingerprint yet: keep calibrating
            self._start_fingerprint()
        else:
            self._enter_nominal()

    def commit(self) -> None:
        """Make the applied correction the last good one now (an operator's commit).

        A ramp in progress stops where it is (no bump) and its hold-out check
        is skipped; a calibration in progress goes on.
        """
        self._good = (self._gain.copy(), self._offset.copy())
        if self._state in (DriftState.DRIFTING, DriftState.COMPENSATING):
            self._enter_nominal()

    def reset_reference(self) -> None:
        """Forget the fingerprint and the drift history, and calibrate afresh.

        For a network that was reprogrammed or repaired: the old trend says
        nothing about it. The applied correction stays until the new
        calibration replaces it (bumpless).
        """
        self.latent = DriftLatent(beta=self.config.latent_beta, min_records=self.config.min_history)
        self._remaining_life = None
        self._maintenance_alarmed = False
        self._next_age = -math.inf
        self._fingerprint = None
        self._monitor = None
        self._start_fingerprint()

    def set_correction(self, gain: np.ndarray, offset: np.ndarray) -> None:
        """Apply an engineer's (gain, offset) now and commit it as the last good one.

        Raises
        ------
        ValueError
            For a wrong length, NaN or Inf, or a gain outside ``config.ramp.gain_range``
            or an offset outside ``config.ramp.offset_range``; nothing changes then.
        """
        gain, offset = np.asarray(gain, dtype=float), np.asarray(offset, dtype=float)
        for name, values, (low, high) in (("gain", gain, self.config.ramp.gain_range),
                                          ("offset", offset, self.config.ramp.offset_range)):
            if values.shape != (self.n_out,):
                raise ValueError(f"layer {self.index}: {name} needs {self.n_out} values, got shape {values.shape}")
            if not np.all(np.isfinite(values)):
                raise ValueError(f"layer {self.index}: {name} contains NaN or Inf")
            if np.any(values < low) or np.any(values > high):
                raise ValueError(f"layer {self.index}: {name} outside its range {low:g} .. {high:g}")
        self._gain, self._offset = gain.copy(), offset.copy()
        self.commit()

    # ----------------------------------------------------------------- scan
    def update(self, inputs: np.ndarray, outputs: np.ndarray, age_s: float | None = None,
               temperature_k: float | None = None) -> list[Event]:
        """Feed one scan; returns the events it raised.

        Parameters
        ----------
        inputs
            The layer's digital inputs (n, n_in).
        outputs
            Its raw analog outputs (n, n_out), before this layer's correction.
        age_s
            The network's age: for the log-age schedule and the drift latent
            (without ages there is no latent).
        temperature_k
            The network's temperature, for the drift latent (optional).
        """
        inputs, outputs = self._check(inputs, outputs)
        if temperature_k is not None:
            self._temperature_k = float(temperature_k)
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
            return self._fault(age_s, f"column {column} jumped by a Fisher-Rao distance of "
                               f"{float(distances[column] - previous[column]):.3g} in one scan: not drift; "
                               "holding the last good correction until recalibration")
        if monitoring:
            events = self._monitor_step(detected, age_s)
            if not events and self._state is DriftState.NOMINAL:
                events = self._predict_step(age_s)
            return events
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
        if kind in (EventKind.SUSPECT, EventKind.DRIFT_DETECTED, EventKind.FAULT):
            self._reason = message
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
        self._pending_record: CorrectionRecord | None = None
        self._window_start_age: float | None = None

    def _calibrate_step(self, inputs, outputs, ideal, age_s) -> list[Event]:
        if self._calibration.moments.count == 0:
            self._window_start_age = age_s
        self._calibration.update(np.hstack([inputs, outputs]))
        self._calibration_ideal.update(ideal)
        joint = self._calibration.moments
        if joint.count < self.config.calibration_samples:
            return []
        self._fingerprint = fp = fit_fingerprint(joint, self.n_in)
        # Below the deadband an estimate is never evidence of a fault: floor the trend's residuals there.
        # An offset inherits the gain's error times the column's mean, so its floor carries both.
        mean = np.abs(fp.predict(fp.input_mean[None, :])[0])
        deadband_gain, deadband_offset = max(self.config.deadband_gain, 1e-6), max(self.config.deadband_offset, 1e-6)
        self.latent.noise_floor = np.concatenate([
            np.full(self.n_out, deadband_gain),
            deadband_offset * np.sqrt(np.maximum(fp.signal_var, 1e-24)) + deadband_gain * mean])
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

    def _fault(self, age_s, message: str) -> list[Event]:
        """Hold the last good correction in the Fault state until calibration."""
        self.rollback()
        self._state = DriftState.FAULT
        return [self._event(EventKind.FAULT, age_s, message)]

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

    def _accumulate(self, stacked: np.ndarray, age_s) -> Moments:
        """Add a scan's ``[outputs, ideal, calibrated]`` columns to the current window.

        The samples are kept too (for the empirical transport of clipped columns).
        """
        if self._window is None:
            self._window = RunningMoments(3 * self.n_out)
            self._samples = []
            self._window_start_age = age_s
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
        window = self._accumulate(stacked, age_s)
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

    def _record(self, correction: Correction, age_s) -> CorrectionRecord | None:
        """The estimate as a history record, dated at the middle (in log-age) of its data window."""
        if age_s is None or self._window_start_age is None or np.any(correction.gain <= 0):
            return None
        age = math.sqrt((self._window_start_age + 1.0) * (age_s + 1.0)) - 1.0
        return CorrectionRecord(age, self._temperature_k, correction.gain, correction.offset)

    def _propose(self, new: Correction, age_s, source: str = "estimate") -> list[Event]:
        """Ramp to ``new`` unless it is within the deadband of the applied correction.

        ``source`` is ``estimate`` (from data: checked against the drift trend,
        and learned from) or ``prediction`` (from the drift latent).
        """
        record = self._record(new, age_s) if source == "estimate" else None
        if record is not None and self._trend_established():
            surprise = self.latent.surprise(record)
            if float(surprise.max()) > self.config.fault_sigma:
                feature = int(np.argmax(surprise))
                what = "gain" if feature < self.n_out else "offset"
                return self._fault(age_s, f"the estimated {what} of column {feature % self.n_out} is "
                                   f"{float(surprise[feature]):.1f} standard deviations off the drift trend: "
                                   "a fault, not fatigue; not learned, last good correction held")
        gain_change = np.abs(new.gain / self._gain - 1.0)
        # Offsets compare with the column's own signal spread, so the deadband means the same in any unit.
        offset_change = np.abs(new.offset - self._offset) / np.sqrt(np.maximum(self._fingerprint.signal_var, 1e-300))
        if np.all(gain_change < self.config.deadband_gain) and np.all(offset_change < self.config.deadband_offset):
            if source == "prediction":
                return []
            events = [self._event(EventKind.WITHIN_DEADBAND, age_s, f"largest gain change "
                                  f"{float(gain_change.max()):.2%} within the deadband; correction unchanged")]
            events += self._learn(record, age_s)
            if self._state is DriftState.DRIFTING:
                # Refresh the reference; its own calibration map is checked against the deadband
                # again, so small drifts absorbed here can never add up unseen.
                self._start_fingerprint()
            return events
        self._pending = new
        self._pending_record = record
        self._transition = Transition((self._gain, self._offset), (new.gain, new.offset), self.config.ramp)
        self._window = None
        self._state = DriftState.COMPENSATING
        events = [self._event(EventKind.TRANSITION_STARTED, age_s, f"ramping to the {source} over "
                              f"{self._transition.scans_left} scans; mean transport cost "
                              f"{float(np.mean(new.transport_cost)):.3g}")]
        if np.any(self._transition.saturated):
            columns = np.flatnonzero(self._transition.saturated).tolist()
            events.append(self._event(EventKind.SATURATED, age_s, f"columns {columns} need a correction outside "
                                      "the hardware range: hardware fatigue, clamped"))
        return events

    def _trend_established(self) -> bool:
        """Whether the history is long enough to call an estimate a fault: twice the records the
        latent needs, spanning at least a decade of age (a trend of minutes says little of days)."""
        records = self.latent.records
        if len(records) < 2 * self.config.min_history:
            return False
        ages = [r.age_s for r in records]
        return math.log10((max(ages) + 60.0) / (min(ages) + 60.0)) >= 1.0

    def _learn(self, record: CorrectionRecord | None, age_s) -> list[Event]:
        """Add an estimate to the drift latent and check the remaining useful life."""
        if record is None:
            return []
        self.latent.add(record)
        if not self._trend_established():
            return []
        ramp = self.config.ramp
        self._remaining_life = life = self.latent.remaining_life(ramp.gain_range, ramp.offset_range,
                                                                 self._temperature_k)
        due = life is not None and bool(life.age_s - age_s < self.config.maintenance_horizon_s)
        if due and not self._maintenance_alarmed:
            self._maintenance_alarmed = True
            gain_rate, offset_rate = self.latent.rates
            rate = (gain_rate if life.parameter == "gain" else offset_rate)[life.column]
            return [self._event(EventKind.MAINTENANCE, age_s, f"column {life.column}'s {life.parameter} leaves the "
                                f"hardware range at an age of {life.age_s:.3g} s (band {life.low_s:.3g} to "
                                f"{life.high_s:.3g} s; trend {rate:+.3g} per decade of age): plan maintenance")]
        self._maintenance_alarmed = due
        return []

    def _predict_step(self, age_s) -> list[Event]:
        """Feed-forward: follow the drift latent's prediction between estimates."""
        if not self.config.predictive or age_s is None or not self.latent.ready or age_s < self._next_age:
            return []
        self._next_age = max(age_s, 1.0) * self.config.schedule_ratio  # the log-age schedule
        gain, offset = self.latent.predict(age_s, self._temperature_k)
        zeros = np.zeros(self.n_out)
        return self._propose(Correction(gain=gain, offset=offset, drift_gain=np.ones(self.n_out),
                                        drift_offset=zeros, transport_cost=zeros), age_s, source="prediction")

    def _compensate_step(self, stacked, age_s) -> list[Event]:
        if not self._transition.done:
            self._gain, self._offset = self._transition.step()
            return []
        # Ramp complete: a fresh hold-out window must confirm that the distance to the ideal fell.
        window = self._accumulate(stacked, age_s)
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
            events = [self._event(EventKind.COMMITTED, age_s, f"hold-out distance to the ideal fell from "
                                  f"{old_d:.3g} to {new_d:.3g}; committed; refreshing the reference")]
            events += self._learn(self._pending_record, age_s)
            self._start_fingerprint()
            return events
        self.rollback()
        return [self._event(EventKind.ROLLED_BACK, age_s, f"hold-out distance to the ideal did not fall "
                            f"({old_d:.3g} -> {new_d:.3g}); back to the last good correction")]
