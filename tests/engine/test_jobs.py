"""Off-scan jobs: run on the worker, adopted at the first scan boundary after they finished, saved whole.

``Compensator.take_jobs`` hands over no jobs yet (the drift latent's fit moves
into one); these tests hand the scan loop a job of that shape: ``run`` fits a
copy of a layer's drift latent, ``adopt`` installs the fitted copy.
"""

from __future__ import annotations

import copy
import json
import threading

import numpy as np
import pytest

from plc_anna.compensator import Compensator, CompensatorConfig, Job
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.engine.jobs import JobWorker
from plc_anna.loop import ScanLoop

FAST = CompensatorConfig(calibration_samples=256, estimate_samples=128, holdout_samples=64, min_history=3)


def _latent_fit_job(layer, gate: threading.Event, ran: list) -> Job:
    """A job as the compensator's latent fit will be: a fit on a copy, adopted whole."""
    latent = copy.deepcopy(layer.latent)

    def run():
        gate.wait(timeout=30)
        latent.rates  # the fit (cached on the copy)
        ran.append(threading.get_ident())
        return latent

    def adopt(fitted):
        layer.latent = fitted

    return Job(f"latent fit layer {layer.index}", run, adopt)


def _aged_loop(net, jobs):
    sim = SimulatedNetwork(net, "pcm", seed=3)
    loop = ScanLoop(sim, FAST, samples_per_scan=32, seed=3, jobs=jobs)
    for age in np.geomspace(60.0, 86400.0 * 400, 400):
        sim.set_age(float(age))
        loop.scan()
    return loop


def test_a_job_is_adopted_at_the_first_scan_boundary_after_it_finished(linear_net):
    worker = JobWorker()
    try:
        loop = _aged_loop(linear_net, worker)
        layer = loop.compensator.layers[0]
        assert len(layer.latent.records) >= 3, "the stream must have given the latent some history"
        gate, ran = threading.Event(), []
        handed: list = []
        loop.compensator.take_jobs = lambda: [handed.pop()] if handed else []
        worker.wait(timeout=30)                   # the compensator's own jobs of the stream: finished, adopted
        loop.scan()
        adopted = worker.adopted
        assert worker.in_flight == 0
        handed.append(_latent_fit_job(layer, gate, ran))
        before = layer.latent
        loop.scan()                               # takes the job: the worker starts it, blocked on the gate
        for _ in range(5):                        # scans go on while it runs; nothing is adopted
            loop.scan()
            assert layer.latent is before and worker.in_flight == 1
        gate.set()
        worker.wait(timeout=30)
        assert ran and ran[0] != threading.get_ident()    # it ran on the worker, not the scan's thread
        assert layer.latent is before and worker.in_flight == 1   # finished, not yet adopted: no boundary yet
        loop.scan()                               # the boundary: adopted before this scan's update
        assert layer.latent is not before and worker.adopted == adopted + 1 and worker.in_flight == 0
        fitted = layer.latent

        # The state saved after the boundary holds the adopted latent whole, and round-trips.
        saved = json.loads(json.dumps(loop.compensator.state_dict()))
        assert saved["layers"][0]["latent"] == fitted.to_dict()
        fresh = Compensator.for_network(linear_net, FAST)
        fresh.load_state_dict(saved)
        assert fresh.layers[0].latent.to_dict() == fitted.to_dict()
        np.testing.assert_allclose(fresh.layers[0].latent.rates[0], fitted.rates[0])
    finally:
        worker.close()


def test_a_failing_job_is_counted_and_the_scans_go_on(linear_net):
    worker = JobWorker()
    try:
        loop = _aged_loop(linear_net, worker)

        def boom():
            raise np.linalg.LinAlgError("singular")

        handed = [Job("bad fit", boom, lambda result: None)]
        loop.compensator.take_jobs = lambda: [handed.pop()] if handed else []
        loop.scan()
        worker.wait(timeout=30)
        loop.scan()
        assert worker.failed == 1 and "bad fit: LinAlgError: singular" == worker.last_error
        assert worker.in_flight == 0
        loop.scan()
    finally:
        worker.close()


def test_without_a_worker_jobs_run_inline_in_the_scan(linear_net):
    sim = SimulatedNetwork(linear_net, "ideal", seed=0)
    loop = ScanLoop(sim, FAST, samples_per_scan=16)
    adopted = []
    handed = [Job("inline", lambda: threading.get_ident(), adopted.append)]
    loop.compensator.take_jobs = lambda: [handed.pop()] if handed else []
    loop.scan()
    assert adopted == [threading.get_ident()]


@pytest.mark.parametrize("record", [True, False])
def test_the_scan_records_only_when_asked(linear_net, record):
    sim = SimulatedNetwork(linear_net, "ideal", seed=0)
    loop = ScanLoop(sim, FAST, samples_per_scan=16, record=record)
    for _ in range(20):
        loop.scan()
    assert len(loop.update_s) == (20 if record else 0)
    assert loop.last_samples == 16 and loop.last_update_s > 0
