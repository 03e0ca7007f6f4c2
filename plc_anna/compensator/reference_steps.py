"""How a layer keeps its reference: the fingerprint's first calibration, its re-recording beside
monitoring, and its growth into input regions calibration never saw.

A mixin of :class:`~plc_anna.compensator.layer.LayerCompensator` (it works on the layer's state); the
heavy parts are :class:`~plc_anna.compensator.jobs.Job` work, adopted at a scan boundary only if the layer
is still where it was when the job was made.
"""

from __future__ import annotations

import numpy as np

from plc_anna.compensator.calibration import CalibrationWindow, grow
from plc_anna.compensator.jobs import Job
from plc_anna.correction.estimate import estimate_correction
from plc_anna.drift.monitor import DriftMonitor
from plc_anna.drift.states import DriftState, Event, EventKind
from plc_anna.stats.reference import Fingerprint


class ReferenceSteps:
    """The fingerprint's life cycle (see the module docstring)."""

    def _output_floor(self) -> float:
        return 0.0 if self.converters is None else self.converters.adc_variance

    def _new_monitor(self, fingerprint: Fingerprint) -> DriftMonitor:
        return DriftMonitor(fingerprint, arl0=self.config.arl0, window=self.config.window_samples,
                            dead_zone=self.config.dead_zone, fault_distance=self.config.fault_distance,
                            output_floor=self._output_floor())

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
