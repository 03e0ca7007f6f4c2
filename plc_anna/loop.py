"""The scan: load the device's corrections, read the network, update the compensator, hand off its jobs.

:class:`ScanLoop` is the one scan of plc-anna: the server's runtime, the
benchmarks, the demos and a notebook all run it. Each :meth:`ScanLoop.scan`:

1. adopts the results of off-scan jobs that finished since the last scan (with a
   :class:`~plc_anna.engine.jobs.JobWorker`; this is a scan boundary);
2. loads the hidden layers' corrections into the device (sink ``device``);
3. reads the network: an inference on the inputs given, or, without inputs,
   the network's own process samples (:meth:`AnalogNetwork.scan_samples
   <plc_anna.device.base.AnalogNetwork.scan_samples>`: rows of the network
   file's data for a simulated network, what the PLC gathered for an observed one);
4. feeds every layer's inputs and raw outputs to the compensator;
5. hands the jobs that became due (:meth:`Compensator.take_jobs
   <plc_anna.compensator.Compensator.take_jobs>`) to the worker, or runs
   them at once when there is none.

The last layer's correction is what a PLC applies (``Gain[j]·y[j] + Offset[j]``);
:meth:`ScanLoop.corrected` applies it here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from plc_anna.compensator import Compensator, CompensatorConfig, run_inline
from plc_anna.device.base import AnalogNetwork
from plc_anna.drift.states import Event

if TYPE_CHECKING:
    from plc_anna.engine.jobs import JobWorker

Corrections = list[tuple[np.ndarray, np.ndarray]]


def apply_device_corrections(net: AnalogNetwork, corrections: Corrections) -> None:
    """Load every device-sink layer's (gain, offset) into the network."""
    for layer, sink in enumerate(net.sinks):
        if sink == "device":
            net.set_correction(layer, *corrections[layer])


class ScanLoop:
    """A network wired to a :class:`~plc_anna.compensator.Compensator`.

    Parameters
    ----------
    net
        The analog network.
    config
        The compensator's settings.
    samples_per_scan, seed
        How many rows of the network file's data a scan without inputs draws, and the seed of the draws.
    jobs
        The worker that runs the compensator's off-scan jobs; None runs them inline, right after the update.
    record
        Keep every scan's update time in :attr:`update_s` and every event in :attr:`events` (a benchmark,
        a notebook); a server that runs for months keeps only the last ones (``False``).
    """

    def __init__(self, net: AnalogNetwork, config: CompensatorConfig | None = None, *, samples_per_scan: int = 64,
                 seed: int = 0, jobs: JobWorker | None = None, record: bool = True) -> None:
        self.net = net
        self.compensator = Compensator.for_network(net.network, config, sinks=net.sinks, converters=net.converters())
        # with a worker, the compensator's off-scan jobs wait for take_jobs; without, they run in its update
        self.compensator.offload = jobs is not None
        self.samples_per_scan = int(samples_per_scan)
        self.jobs = jobs
        self.record = record
        self._rng = np.random.default_rng(seed)
        self.update_s: list[float] = []
        self.events: list[Event] = []
        #: The last scan's network read and compensator update (s), and the samples it fed.
        self.last_read_s = self.last_update_s = 0.0
        self.last_samples = 0

    def corrections(self) -> Corrections:
        """Every layer's applied (gain, offset), in layer order."""
        return [layer.correction() for layer in self.compensator.layers]

    def scan(self, inputs: np.ndarray | None = None) -> list[Event]:
        """One scan (see the module docstring) on ``inputs``, or on the network's own process samples; its events.

        An observed network that gathered fewer than two samples since the last scan is not updated.
        """
        if self.jobs is not None:
            self.jobs.adopt_finished()
        start = time.perf_counter()
        apply_device_corrections(self.net, self.corrections())
        if inputs is not None:
            traces = self.net.trace(inputs)
        else:
            traces = self.net.scan_samples(self.samples_per_scan, self._rng)
        self.last_read_s = time.perf_counter() - start
        events: list[Event] = []
        start = time.perf_counter()
        if traces is not None:
            events = self.compensator.update([(t.inputs, t.outputs) for t in traces], age_s=self.net.age_s,
                                             temperature_k=self.net.temperature_k)
        self.last_update_s = time.perf_counter() - start
        self.last_samples = 0 if traces is None else len(traces[0].inputs)
        due = self.compensator.take_jobs()
        if self.jobs is None:
            run_inline(due)  # no worker: the jobs run now, one scan sooner than on a worker
        else:
            self.jobs.submit(due)
        if self.record:
            self.update_s.append(self.last_update_s)
            self.events += events
        return events

    def corrected(self, X: np.ndarray) -> np.ndarray:
        """Network outputs for ``X`` with every correction applied, the last as the PLC would."""
        corrections = self.corrections()
        apply_device_corrections(self.net, corrections)
        gain, offset = corrections[-1]
        return gain * self.net.infer(X) + offset
