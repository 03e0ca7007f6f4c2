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

from plc_anna.compensator.calibration import CalibrationWindow, CoverageGrowth
from plc_anna.compensator.windows import EstimateWindow
from plc_anna.compensator.config import CompensatorConfig
from plc_anna.compensator.correction_steps import CorrectionSteps
from plc_anna.compensator.reference_steps import ReferenceSteps
from plc_anna.compensator.jobs import Job, run_inline
from plc_anna.converters import Converters
from plc_anna.correction.estimate import Correction
from plc_anna.correction.latent import REFERENCE_TEMPERATURE_K, CorrectionRecord, DriftLatent, RemainingLife
from plc_anna.correction.transition import Transition
from plc_anna.drift.fisher_rao import layer_distance
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


class LayerCompensator(ReferenceSteps, CorrectionSteps):
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

        It holds until the compensator has a reason of its own to move it: drift on this layer, or a
        new correction upstream (this layer's inputs changed); a re-estimate begun before is dropped.

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
        self._refresh = None  # an estimate begun before the engineer's value does not replace it
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
        if self._fresh is not None:
            # a fingerprint recorded in the background waited for a nominal moment: this is one
            self._swap_fresh()
            monitor.reset()
            self._state = DriftState.NOMINAL
            return []
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
