"""The compensator of one layer: fingerprint → drift monitor → transport → transition → drift latent.

The raw outputs are judged against the layer's fingerprint (its posterior
response, :mod:`plc_anna.stats.reference`) by a :class:`DriftMonitor`; the
correction maps them to the ideal outputs the caller names (the ideal
network's pre-activations, or by default what the programmed weights make of
this layer's own inputs). Everything heavier than a scan (the fingerprint's
eigen-solve, its growth, the drift latent's fit) is handed off as
:class:`~plc_anna.compensator.jobs.Job` work (:meth:`LayerCompensator.take_jobs`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from plc_anna.compensator.calibration import CalibrationWindow, CoverageGrowth, grow
from plc_anna.compensator.windows import EstimateWindow
from plc_anna.compensator.config import CompensatorConfig
from plc_anna.compensator.jobs import Job, run_inline
from plc_anna.converters import Converters
from plc_anna.correction.estimate import Correction, estimate_correction
from plc_anna.correction.latent import REFERENCE_TEMPERATURE_K, CorrectionRecord, DriftLatent, RemainingLife
from plc_anna.correction.transition import Transition
from plc_anna.drift.fisher_rao import fisher_rao_distance, layer_distance
from plc_anna.drift.monitor import DriftMonitor, WindowStatistic
from plc_anna.drift.states import DriftState, Event, EventKind
from plc_anna.stats.reference import Fingerprint
from plc_anna.units import format_age

#: A window whose coverage is below this adds to the fingerprint's growth (inside it, there is nothing to learn).
GROWTH_COVERAGE = 0.995
#: The monitor's tests must stand below this fraction of their thresholds for live data to teach the fingerprint.
GROWTH_QUIET = 0.25
#: Suspect from three quarters of the threshold (under no drift the largest of a layer's CUSUMs passes half
#: of it in about one window in a thousand); back to nominal below a quarter of it.
SUSPECT_RATIO, NOMINAL_RATIO = 0.75, 0.25
#: A window whose every column statistic is below this chi-square(3) quantile matches the fingerprint.
MATCH_LIMIT = 16.27   # scipy.stats.chi2.isf(1e-3, 3)


class LayerCompensator:
    """Drift monitor and correction of one layer.

    Parameters
    ----------
    index
        The layer's position in the network (for events).
    weights, bias
        The programmed weights (n_out, n_in) and bias: the prior of the fingerprint and, unless the
        caller names another, the ideal response.
    config
        Shared settings.
    converters
        The layer's DAC and ADC, when known: the fingerprint then models the DAC's rounding and no
        output variance is believed below the ADC's.

    Attributes
    ----------
    offload
        False (the default): off-scan work runs inside :meth:`update`, so a plain loop needs nothing
        else. True: :meth:`update` only queues it, and the caller runs :meth:`take_jobs` on a worker
        and adopts each job between scans (an engine that must keep its scan period).
    """

    def __init__(self, index: int, weights: np.ndarray, bias: np.ndarray, config: CompensatorConfig,
                 converters: Converters | None = None) -> None:
        self.index = index
        self.weights = np.asarray(weights, dtype=float)
        self.bias = np.asarray(bias, dtype=float)
        self.config = config
        self.converters = converters
        self.n_out, self.n_in = self.weights.shape
        self.offload = False
        self.scan = 0
        self._fingerprint: Fingerprint | None = None
        self._monitor: DriftMonitor | None = None
        self._gain, self._offset = np.ones(self.n_out), np.zeros(self.n_out)
        self._good = (self._gain.copy(), self._offset.copy())
        self._next_age = -math.inf
        self._reason = ""
        self._fault_kind: str | None = None
        self._generation = 0
        self._jobs: list[Job] = []
        self._queued: list[Event] = []
        self._last_age: float | None = None
        self.latent = DriftLatent(beta=config.latent_beta, min_records=config.min_history)
        self._latent_fit_scheduled = 0
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
        """Why the layer is Suspect, Drifting or Fault: which test, which columns, what coverage, when."""
        return self._reason if self._state in (DriftState.SUSPECT, DriftState.DRIFTING, DriftState.FAULT) else ""

    @property
    def coverage(self) -> float:
        """Share of the last window's input variation the fingerprint could predict (0..1); NaN before one."""
        last = self.last_statistic
        return math.nan if last is None else float(last.coverage)

    @property
    def fingerprint(self) -> Fingerprint | None:
        return self._fingerprint

    @property
    def monitor(self) -> DriftMonitor | None:
        """The drift monitor against the current fingerprint (None while the first one is calibrated)."""
        return self._monitor

    @property
    def last_statistic(self) -> WindowStatistic | None:
        return None if self._monitor is None else self._monitor.last

    @property
    def distance(self) -> float:
        """Layer Fisher–Rao distance of the last window judged (product-manifold norm); NaN before any."""
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

    @property
    def gain_trend(self) -> np.ndarray:
        """Per column, the gain's change per decade of age once the trend is established and fitted; else empty.
        Never fits on the caller's thread."""
        if not self._trend_established() or self.latent.stale:
            return np.zeros(0)
        return np.asarray(self.latent.rates[0], dtype=float)

    def correction(self) -> tuple[np.ndarray, np.ndarray]:
        """The (gain, offset) to apply to the raw outputs now (copies)."""
        return self._gain.copy(), self._offset.copy()

    def destination(self) -> tuple[np.ndarray, np.ndarray]:
        """The (gain, offset) the layer is moving to: the ramp's target while it ramps, else the applied one."""
        if self._transition is not None and not self._transition.done:
            return self._transition.target[0].copy(), self._transition.target[1].copy()
        return self.correction()

    def predict_raw(self, inputs: np.ndarray) -> np.ndarray | None:
        """The fingerprint's prediction of the raw outputs for digital ``inputs`` (None without a fingerprint)."""
        if self._fingerprint is None:
            return None
        return self._fingerprint.predict(inputs if self.converters is None else self.converters.dac(inputs))

    def last_good(self) -> tuple[np.ndarray, np.ndarray]:
        """The last committed (gain, offset)."""
        return self._good[0].copy(), self._good[1].copy()

    # ------------------------------------------------------------- commands
    def calibrate(self) -> None:
        """Record a new fingerprint from the next ``calibration_samples`` and correct to it.

        The applied correction stays until a new one has ramped in and passed
        its hold-out (bumpless); the fingerprint is taken on the raw outputs,
        which the correction does not touch. Clears a fault.
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

    def request_estimate(self) -> None:
        """Estimate the correction again from the next ``estimate_samples`` while monitoring goes on.

        For a layer whose inputs changed although its hardware did not (an upstream layer committed a
        new correction): the correction aims at the ideal outputs, which its inputs now reach differently.
        """
        if self._state in (DriftState.NOMINAL, DriftState.SUSPECT):
            self._refresh = EstimateWindow(self.n_out, self._last_age)

    def take_jobs(self) -> list[Job]:
        """The off-scan jobs that became due (see :mod:`plc_anna.compensator.jobs`)."""
        jobs, self._jobs = self._jobs, []
        if self.latent.stale and self._latent_fit_scheduled != len(self.latent.records):
            self._latent_fit_scheduled = len(self.latent.records)
            run, adopt = self.latent.fit_work()
            jobs.append(Job(f"layer {self.index}: drift latent fit", run, self._adopt_latent(adopt)))
        return jobs

    # ----------------------------------------------------------------- scan
    def update(self, inputs: np.ndarray, outputs: np.ndarray, age_s: float | None = None,
               temperature_k: float | None = None, ideal: np.ndarray | None = None,
               anticipated: np.ndarray | None = None) -> list[Event]:
        """Feed one scan; returns the events it raised (and those of jobs adopted since the last scan).

        Parameters
        ----------
        inputs
            The layer's digital inputs (n, n_in), n >= 1: scans are pooled into windows.
        outputs
            Its raw analog outputs (n, n_out), before this layer's correction.
        age_s
            The network's age: for the log-age schedule and the drift latent
            (without ages there is no latent).
        temperature_k
            The network's temperature, for the drift latent (optional).
        ideal
            The ideal pre-activations (n, n_out) the correction aims at; default ``inputs @ Wᵀ + b``.
        anticipated
            The raw outputs (n, n_out) as they will be once the upstream layers reach the corrections
            they are moving to; the correction is estimated on these (default: ``outputs``). The drift
            monitor always judges the outputs as they are.
        """
        events = self._update(inputs, outputs, age_s, temperature_k, ideal, anticipated)
        if not self.offload:
            run_inline(self.take_jobs())
            events, self._queued = events + self._queued, []
        return events

    def _update(self, inputs, outputs, age_s, temperature_k, ideal, anticipated) -> list[Event]:
        inputs, outputs, ideal = self._check(inputs, outputs, ideal)
        if anticipated is None:
            anticipated = outputs
        elif np.shape(anticipated) != outputs.shape or not np.all(np.isfinite(anticipated)):
            raise ValueError(f"layer {self.index}: anticipated outputs must be finite, of shape {outputs.shape}")
        if temperature_k is not None:
            self._temperature_k = float(temperature_k)
        self._last_age = age_s
        self.scan += 1
        events, self._queued = self._queued, []
        driven = inputs if self.converters is None else self.converters.dac(inputs)
        if self._state is DriftState.CALIBRATING:
            return events + self._calibrate_step(driven, outputs, ideal, age_s, anticipated)
        monitor = self._monitor
        detected = monitor.update(driven, outputs)
        if self._state in (DriftState.NOMINAL, DriftState.SUSPECT):
            self._growth_pending.append((driven, outputs))
        if monitor.fault_detected and self._state is not DriftState.FAULT:
            return events + self._fault(age_s, "jump", f"{monitor.reason()} ({self._when(age_s)}): not drift; "
                                        "holding the last good correction")
        if self._state is DriftState.FAULT:
            return events + self._fault_step(age_s)
        if self._background is not None:
            self._background_step(driven, outputs, ideal, age_s)
        if self._state in (DriftState.NOMINAL, DriftState.SUSPECT):
            if monitor.window_closed:
                events += self._monitor_step(detected, driven, outputs, age_s)
            if self._state in (DriftState.NOMINAL, DriftState.SUSPECT) and self._refresh is not None:
                events += self._refresh_step(anticipated, ideal, outputs, driven, age_s)
            if not events and self._state is DriftState.NOMINAL:
                events += self._predict_step(age_s)
            return events
        if self._window is None:
            self._window = EstimateWindow(self.n_out, age_s)
        self._window.add(anticipated, ideal, outputs, self._fingerprint.predict(driven))
        if self._state is DriftState.DRIFTING:
            return events + self._estimate_step(age_s)
        return events + self._compensate_step(age_s)

    # ------------------------------------------------------------ internals
    def _check(self, inputs, outputs, ideal) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        inputs, outputs = np.asarray(inputs, dtype=float), np.asarray(outputs, dtype=float)
        if inputs.ndim != 2 or inputs.shape[1] != self.n_in:
            raise ValueError(f"layer {self.index}: inputs must have shape (n, {self.n_in}), got {inputs.shape}")
        if outputs.shape != (inputs.shape[0], self.n_out):
            raise ValueError(f"layer {self.index}: outputs must have shape ({inputs.shape[0]}, {self.n_out}), "
                             f"got {outputs.shape}")
        if inputs.shape[0] < 1:
            raise ValueError(f"layer {self.index}: a scan needs at least 1 sample")
        if not (np.all(np.isfinite(inputs)) and np.all(np.isfinite(outputs))):
            raise ValueError(f"layer {self.index}: inputs or outputs contain NaN or Inf")
        if ideal is None:
            ideal = inputs @ self.weights.T + self.bias
        else:
            ideal = np.asarray(ideal, dtype=float)
            if ideal.shape != outputs.shape or not np.all(np.isfinite(ideal)):
                raise ValueError(f"layer {self.index}: ideal outputs must be finite, of shape {outputs.shape}")
        return inputs, outputs, ideal

    def _event(self, kind: EventKind, age_s: float | None, message: str) -> Event:
        if kind in (EventKind.SUSPECT, EventKind.DRIFT_DETECTED, EventKind.FAULT):
            self._reason = message
        return Event(kind=kind, layer=self.index, scan=self.scan, state=self._state, message=message, age_s=age_s)

    def _when(self, age_s) -> str:
        age = "" if age_s is None or not math.isfinite(age_s) else f", age {format_age(age_s)}"
        return f"scan {self.scan}{age}"

    def _output_floor(self) -> float:
        return 0.0 if self.converters is None else self.converters.adc_variance

    def _new_monitor(self, fingerprint: Fingerprint) -> DriftMonitor:
        return DriftMonitor(fingerprint, arl0=self.config.arl0, window=self.config.window_samples,
                            dead_zone=self.config.dead_zone, fault_distance=self.config.fault_distance,
                            output_floor=self._output_floor())

    def _start_fingerprint(self) -> None:
        self._generation += 1
        self._state = DriftState.CALIBRATING
        self._fault_kind = None
        self._calibration = CalibrationWindow(self.n_in, self.n_out)
        self._calibration_scheduled = False
        self._background: CalibrationWindow | None = None
        self._background_started = -1
        self._fresh: Fingerprint | None = None
        self._awaiting_reference = False
        self._growth = CoverageGrowth(self.n_in, self.n_out, self.config.growth_samples)
        self._growth_pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._window: EstimateWindow | None = None
        self._refresh: EstimateWindow | None = None
        self._transition: Transition | None = None
        self._pending: Correction | None = None
        self._pending_record: CorrectionRecord | None = None
        self._window_start_age: float | None = None

    def _calibrate_step(self, driven, outputs, ideal, age_s, anticipated) -> list[Event]:
        if self._calibration_scheduled:
            return []
        self._calibration.add(driven, outputs, ideal, age_s, anticipated)
        if self._calibration.count < self.config.calibration_samples:
            return []
        self._calibration_scheduled = True
        window, generation = self._calibration, self._generation
        floor = self._output_floor()

        def adopt(fingerprint: Fingerprint) -> None:
            if generation == self._generation and self._state is DriftState.CALIBRATING:
                self._queued += self._adopt_fingerprint(fingerprint, window)

        self._jobs.append(Job(f"layer {self.index}: fingerprint", lambda: window.fit(self.weights, floor), adopt))
        return []

    def _adopt_fingerprint(self, fp: Fingerprint, window: CalibrationWindow) -> list[Event]:
        """Install a new fingerprint (at a scan boundary) and propose the correction it implies."""
        self._fingerprint = fp
        self._window_start_age = window.start_age
        age_s = window.end_age
        # Below the deadband an estimate is never evidence of a fault: floor the trend's residuals there.
        # An offset inherits the gain's error times the column's mean, so its floor carries both.
        mean = np.abs(fp.bias + fp.weights @ fp.input_mean)
        deadband_gain, deadband_offset = max(self.config.deadband_gain, 1e-6), max(self.config.deadband_offset, 1e-6)
        self.latent.noise_floor = np.concatenate([
            np.full(self.n_out, deadband_gain),
            deadband_offset * np.sqrt(np.maximum(fp.signal_var, 1e-24)) + deadband_gain * mean])
        self._monitor = self._new_monitor(fp)
        self._enter_nominal()
        covered = int(fp.covered().sum())
        events = [self._event(EventKind.CALIBRATED, age_s, f"fingerprint of {int(fp.count)} samples recorded; "
                              f"median noise {float(np.sqrt(np.median(fp.noise_var))):.3g}; {covered} of "
                              f"{self.n_in} input directions calibrated, the others follow the programmed "
                              "weights")]
        # Today's state is the calibrated one: map it to the ideal straight away.
        outputs, reference = window.reference(fp)
        return events + self._propose(estimate_correction(reference, outputs.mean, outputs.var, fp.noise_var),
                                      age_s)

    def _fault(self, age_s, kind: str, message: str) -> list[Event]:
        """Hold the last good correction in the Fault state (``kind``: ``jump`` clears itself, ``trend`` holds)."""
        self.rollback()
        self._state = DriftState.FAULT
        self._fault_kind = kind
        self._matching_windows = 0
        return [self._event(EventKind.FAULT, age_s, message)]

    def _fault_step(self, age_s) -> list[Event]:
        """While in Fault: a jump that the following windows no longer show was a process excursion."""
        monitor = self._monitor
        if self._fault_kind != "jump" or not monitor.window_closed:
            return []
        matches = bool(np.all(monitor.last.column_statistic < MATCH_LIMIT))
        self._matching_windows = self._matching_windows + 1 if matches else 0
        if self._matching_windows < max(self.config.fault_clear_windows, 1):
            return []
        self._enter_nominal()
        return [self._event(EventKind.FAULT_CLEARED, age_s, f"{self._matching_windows} windows in a row match the "
                            f"fingerprint again ({self._when(age_s)}): the jump was a process excursion, not the "
                            "hardware; monitoring resumes")]

    def _begin_background(self) -> None:
        """Record a fresh fingerprint beside monitoring (after a commit, or a drift the correction cannot
        take out): it replaces the current one without a gap in monitoring. Nothing new if one is on its way."""
        if self._background is None:
            self._background = CalibrationWindow(self.n_in, self.n_out)
            self._background_started = self.scan

    def _background_step(self, driven, outputs, ideal, age_s) -> None:
        window = self._background
        window.add(driven, outputs, ideal, age_s)
        if window.count < self.config.calibration_samples:
            return
        self._background = None
        generation, floor, started = self._generation, self._output_floor(), self._background_started

        def adopt(fingerprint: Fingerprint) -> None:
            if generation != self._generation or self._background_started != started:
                return
            self._fresh = fingerprint
            if self._state in (DriftState.NOMINAL, DriftState.SUSPECT):
                self._monitor.reset()
                self._state = DriftState.NOMINAL
                self._swap_fresh()

        self._jobs.append(Job(f"layer {self.index}: fingerprint", lambda: window.fit(self.weights, floor), adopt))

    def _swap_fresh(self) -> None:
        """Monitor against the fingerprint recorded in the background (it waited for a nominal moment), and
        estimate the correction again against it: drift the new reference took in never hides there."""
        fingerprint, self._fresh = self._fresh, None
        self._fingerprint = fingerprint
        self._monitor.set_fingerprint(fingerprint)
        self._awaiting_reference = False
        self.request_estimate()
        self._queued.append(self._event(EventKind.CALIBRATED, self._last_age, f"reference refreshed in the "
                                        f"background from {int(fingerprint.count)} samples; median noise "
                                        f"{float(np.sqrt(np.median(fingerprint.noise_var))):.3g}"))

    def _enter_nominal(self) -> None:
        self._state = DriftState.NOMINAL
        self._fault_kind = None
        self._monitor.reset()
        self._growth_pending = []
        self._window = None
        self._refresh = None
        self._transition = None
        self._pending = None

    def _monitor_step(self, detected: bool, driven, outputs, age_s) -> list[Event]:
        monitor = self._monitor
        if detected and self._awaiting_reference:
            # Already explained: the reference is being recorded afresh. Faults are still watched.
            monitor.reset()
            self._growth_pending = []
            return []
        if detected:
            self._growth_pending = []
            self._state = DriftState.DRIFTING
            self._window = None
            self._refresh = None
            return [self._event(EventKind.DRIFT_DETECTED, age_s, f"{monitor.reason()} ({self._when(age_s)}); "
                                f"layer distance {self.distance:.3g}")]
        ratio = monitor.ratio
        window, self._growth_pending = self._growth_pending, []
        if ratio < GROWTH_QUIET and monitor.last.coverage < GROWTH_COVERAGE and self.config.growth_samples > 0:
            for scan_inputs, scan_outputs in window:
                self._grow(scan_inputs, scan_outputs)
        if self._state is DriftState.NOMINAL and ratio > SUSPECT_RATIO:
            self._state = DriftState.SUSPECT
            return [self._event(EventKind.SUSPECT, age_s, f"{monitor.reason()} ({self._when(age_s)})")]
        if self._state is DriftState.SUSPECT and ratio < NOMINAL_RATIO:
            self._state = DriftState.NOMINAL
        return []

    def _grow(self, driven, outputs) -> None:
        """Gather a quiet window from outside the covered region; when enough, hand the growth off."""
        self._growth.add(driven, outputs)
        if not self._growth.ready or any(job.name.endswith("coverage growth") for job in self._jobs):
            return
        live, fingerprint, generation = self._growth.take(), self._fingerprint, self._generation

        def adopt(grown: Fingerprint) -> None:
            if generation != self._generation or self._fingerprint is not fingerprint:
                return
            self._fingerprint = grown
            self._monitor.set_fingerprint(grown)
            before, after = int(fingerprint.covered().sum()), int(grown.covered().sum())
            self._queued.append(self._event(EventKind.COVERAGE_GROWN, self._last_age, f"{int(live.count)} live "
                                            f"samples from new input regions calibrated {after - before} more input "
                                            f"directions ({after} of {self.n_in})"))

        self._jobs.append(Job(f"layer {self.index}: coverage growth", lambda: grow(fingerprint, live), adopt))

    def _estimate(self, window: EstimateWindow, age_s) -> tuple[Correction, list[Event]]:
        self._window_start_age = window.start_age
        rail = None if self.converters is None else self.converters.output_range * (1.0 - 1e-9)
        correction, clipped = window.correction(self._fingerprint.noise_var, rail)
        events = []
        if np.any(clipped):
            events.append(self._event(EventKind.CLIPPED, age_s, f"columns {np.flatnonzero(clipped).tolist()} are "
                                      "clipped: empirical transport instead of the Gaussian map"))
        return correction, events

    def _estimate_step(self, age_s) -> list[Event]:
        window = self._window
        if window.count < self.config.estimate_samples:
            return []
        correction, events = self._estimate(window, age_s)
        return events + self._propose(correction, age_s)

    def _refresh_step(self, anticipated, ideal, outputs, driven, age_s) -> list[Event]:
        """A requested re-estimate beside monitoring (see :meth:`request_estimate`)."""
        self._refresh.add(anticipated, ideal, outputs, self._fingerprint.predict(driven))
        if self._refresh.count < self.config.estimate_samples:
            return []
        window, self._refresh = self._refresh, None
        correction, events = self._estimate(window, age_s)
        return events + self._propose(correction, age_s, source="refresh")

    def _record(self, correction: Correction, age_s) -> CorrectionRecord | None:
        """The estimate as a history record, dated at the middle (in log-age) of its data window."""
        if age_s is None or self._window_start_age is None or np.any(correction.gain <= 0):
            return None
        age = math.sqrt((self._window_start_age + 1.0) * (age_s + 1.0)) - 1.0
        return CorrectionRecord(age, self._temperature_k, correction.gain, correction.offset)

    def _propose(self, new: Correction, age_s, source: str = "estimate") -> list[Event]:
        """Ramp to ``new`` unless it is within the deadband of the applied correction.

        ``source`` is ``estimate`` (from data after a detection or a calibration: checked against the
        drift trend, and learned from), ``refresh`` (from data after an upstream change: not learned) or
        ``prediction`` (from the drift latent).
        """
        record = self._record(new, age_s) if source == "estimate" else None
        if record is not None and self._trend_established() and not self.latent.stale:
            surprise = self.latent.surprise(record)
            # fault_sigma holds for one feature; over 2·n_out features the largest of them needs more
            limit = float(stats.norm.isf(stats.norm.sf(self.config.fault_sigma) / surprise.size))
            if float(surprise.max()) > limit:
                feature = int(np.argmax(surprise))
                what = "gain" if feature < self.n_out else "offset"
                return self._fault(age_s, "trend", f"the estimated {what} of column {feature % self.n_out} is "
                                   f"{float(surprise[feature]):.1f} standard deviations off the drift trend "
                                   f"({self._when(age_s)}): a fault, not fatigue; not learned, last good correction "
                                   "held until calibration")
        gain_change = np.abs(new.gain / self._gain - 1.0)
        # Offsets compare with the column's own signal spread, so the deadband means the same in any unit.
        offset_change = np.abs(new.offset - self._offset) / np.sqrt(np.maximum(self._fingerprint.signal_var, 1e-300))
        # A refresh is asked for, not forced by a detection: only a clear change (twice the deadband) moves it.
        band = 2.0 if source == "refresh" else 1.0
        if np.all(gain_change < band * self.config.deadband_gain) and np.all(offset_change < band * self.config.deadband_offset):
            if source != "estimate":
                return []
            events = [self._event(EventKind.WITHIN_DEADBAND, age_s, f"largest gain change "
                                  f"{float(gain_change.max()):.2%} within the deadband; correction unchanged")]
            events += self._learn(record, age_s)
            if self._state is DriftState.DRIFTING:
                # What the monitor saw, the correction cannot take out (its shape, not its scale, changed):
                # record a fresh reference beside monitoring and judge against it; the correction is
                # estimated again against the fresh one, so small drifts can never add up unseen.
                self._enter_nominal()
                self._begin_background()
                self._awaiting_reference = True
            return events
        self._pending = new
        self._pending_record = record
        self._pending_source = source
        self._transition = Transition((self._gain, self._offset), (new.gain, new.offset), self.config.ramp)
        self._window = None
        self._refresh = None
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
        """Add an estimate to the drift latent; its fit runs off the scan (:meth:`take_jobs`)."""
        if record is not None:
            self.latent.add(record)
        return []

    def _adopt_latent(self, adopt):
        """Install a latent fit, then check the remaining useful life with it (events join the next scan)."""
        def install(fit: dict) -> None:
            adopt(fit)
            if self.latent.stale or not self._trend_established():
                return
            ramp = self.config.ramp
            self._remaining_life = life = self.latent.remaining_life(ramp.gain_range, ramp.offset_range,
                                                                     self._temperature_k)
            age_s = self._last_age
            due = life is not None and age_s is not None and bool(life.age_s - age_s
                                                                  < self.config.maintenance_horizon_s)
            if due and not self._maintenance_alarmed:
                gain_rate, offset_rate = self.latent.rates
                rate = (gain_rate if life.parameter == "gain" else offset_rate)[life.column]
                self._queued.append(self._event(
                    EventKind.MAINTENANCE, age_s, f"column {life.column}'s {life.parameter} leaves the hardware "
                    f"range at an age of {life.age_s:.3g} s (band {life.low_s:.3g} to {life.high_s:.3g} s; trend "
                    f"{rate:+.3g} per decade of age): plan maintenance"))
            self._maintenance_alarmed = due
        return install

    def _predict_step(self, age_s) -> list[Event]:
        """Feed-forward: follow the drift latent's prediction between estimates."""
        if (not self.config.predictive or age_s is None or not self.latent.ready or self.latent.stale
                or age_s < self._next_age):
            return []
        self._next_age = max(age_s, 1.0) * self.config.schedule_ratio  # the log-age schedule
        gain, offset = self.latent.predict(age_s, self._temperature_k)
        zeros = np.zeros(self.n_out)
        return self._propose(Correction(gain=gain, offset=offset, drift_gain=np.ones(self.n_out),
                                        drift_offset=zeros, transport_cost=zeros), age_s, source="prediction")

    def _compensate_step(self, age_s) -> list[Event]:
        if not self._transition.done:
            self._gain, self._offset = self._transition.step()
            self._window = None    # the hold-out starts once the ramp is complete
            return []
        # Ramp complete: a fresh hold-out window must confirm that the distance to the ideal fell.
        window = self._window
        if window.count < self.config.holdout_samples:
            return []
        _, ref = window.split()
        signal_mean, signal_var = window.signal()
        noise = self._fingerprint.noise_var

        def distance_to_ideal(gain: np.ndarray, offset: np.ndarray) -> float:
            # The noise-free outputs, corrected, against the ideal, each with the corrected noise added: the
            # noise is no correction's to remove, and a column without signal must not decide the layer.
            extra = gain**2 * noise
            return layer_distance(fisher_rao_distance(gain * signal_mean + offset, np.sqrt(gain**2 * signal_var + extra),
                                                      ref.ideal_mean, np.sqrt(np.maximum(ref.ideal_var, 0.0) + extra)))

        old_d, new_d = distance_to_ideal(*self._good), distance_to_ideal(self._gain, self._offset)
        if new_d < old_d:
            self._good = (self._gain.copy(), self._offset.copy())
            if self._pending_source == "refresh":
                # The hardware did not change (the inputs did): the fingerprint still holds.
                self._enter_nominal()
                return [self._event(EventKind.COMMITTED, age_s, f"hold-out distance to the ideal fell from "
                                    f"{old_d:.3g} to {new_d:.3g}; committed")]
            events = [self._event(EventKind.COMMITTED, age_s, f"hold-out distance to the ideal fell from "
                                  f"{old_d:.3g} to {new_d:.3g}; committed; the reference follows the measured "
                                  "drift and is recorded afresh beside monitoring")]
            events += self._learn(self._pending_record, age_s)
            if age_s is not None:
                # a measured correction beats a predicted one: no feed-forward until the age moved on
                self._next_age = max(self._next_age, max(age_s, 1.0) * self.config.schedule_ratio)
            # The hardware drifted since the fingerprint: move it by the drift the hold-out measured (or take
            # the one recorded in the background meanwhile), so monitoring goes on at once, and record a
            # fresh one in the background.
            # A fingerprint recorded before the commit is older than the hold-out's measurement: dropped.
            if self._fresh is not None:
                # a fingerprint recorded in the background meanwhile also has the drift's shape, not only
                # its per-column scale
                fresh, self._fresh = self._fresh, None
                self._fingerprint = fresh
            else:
                self._fingerprint = self._fingerprint.rescaled(*window.drift.estimate())
            self._monitor.set_fingerprint(self._fingerprint)
            self._enter_nominal()
            self._begin_background()
            return events
        self.rollback()
        return [self._event(EventKind.ROLLED_BACK, age_s, f"hold-out distance to the ideal did not fall "
                            f"({old_d:.3g} -> {new_d:.3g}); back to the last good correction")]
