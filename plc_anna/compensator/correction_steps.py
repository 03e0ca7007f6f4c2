"""How a layer corrects: estimates from windows, the deadband, the bumpless ramp, the hold-out that
commits or rolls back, and the drift latent that learns the trend and predicts ahead.

A mixin of :class:`~plc_anna.compensator.layer.LayerCompensator` (it works on the layer's state).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from plc_anna.compensator.windows import EstimateWindow
from plc_anna.correction.estimate import Correction
from plc_anna.correction.latent import CorrectionRecord
from plc_anna.correction.transition import Transition
from plc_anna.drift.fisher_rao import fisher_rao_distance, layer_distance
from plc_anna.drift.states import DriftState, Event, EventKind


class CorrectionSteps:
    """Estimate, propose, ramp, confirm, learn (see the module docstring)."""

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
        within = (np.all(gain_change < band * self.config.deadband_gain)
                  and np.all(offset_change < band * self.config.deadband_offset))
        if within:
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
            corrected_std = np.sqrt(gain**2 * signal_var + extra)
            ideal_std = np.sqrt(np.maximum(ref.ideal_var, 0.0) + extra)
            return layer_distance(fisher_rao_distance(gain * signal_mean + offset, corrected_std, ref.ideal_mean,
                                                      ideal_std))

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
