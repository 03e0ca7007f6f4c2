"""Off-scan work: a compensator's jobs run on a worker thread and are adopted at a scan boundary.

:meth:`Compensator.take_jobs <plc_anna.compensator.Compensator.take_jobs>`
hands over :class:`~plc_anna.compensator.jobs.Job`\\ s (an eigen-solve, a
fit) that may take longer than a scan. :class:`JobWorker` runs each job's
``run`` on its own thread, in the order submitted, while the scans go on; the
scan thread calls :meth:`JobWorker.adopt_finished` at the start of every scan
(a scan boundary), which installs each finished result with the job's
``adopt``. A scan therefore sees a result whole or not at all, and a state
saved between two scans never holds half of one.

A job whose ``run`` or ``adopt`` raises is counted (:attr:`JobWorker.failed`)
and logged; the scans go on with what they had. Jobs still running when the
worker closes are not adopted: what they computed is derived again from the
saved state after a restart.

Examples
--------
>>> from plc_anna.compensator import Job
>>> adopted = []
>>> worker = JobWorker()
>>> worker.submit([Job("square", run=lambda: 7 * 7, adopt=adopted.append)])
>>> worker.wait()                 # a test's shortcut: wait until the worker is idle
>>> adopted                       # finished, but not adopted before a scan boundary
[]
>>> worker.adopt_finished(), adopted
(1, [49])
>>> worker.close()
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from plc_anna.compensator.jobs import Job

logger = logging.getLogger(__name__)


class JobWorker:
    """Runs jobs on one worker thread; :meth:`adopt_finished` installs the finished ones on the caller's thread."""

    def __init__(self, name: str = "plc-anna-jobs") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: deque[tuple[Job, Future]] = deque()
        self._lock = threading.Lock()
        self.submitted = self.adopted = self.failed = 0
        self.last_error = ""

    def submit(self, jobs: Iterable[Job]) -> None:
        """Start ``jobs`` on the worker, after the ones already submitted."""
        for job in jobs:
            future = self._executor.submit(job.run)
            with self._lock:
                self._pending.append((job, future))
                self.submitted += 1

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not yet adopted (running, queued, or finished and waiting for a boundary)."""
        with self._lock:
            return len(self._pending)

    def adopt_finished(self) -> int:
        """Adopt every finished job, in the order submitted, up to the first unfinished one; how many.

        Call it between scans, on the thread that runs them.
        """
        count = 0
        while True:
            with self._lock:
                if not self._pending or not self._pending[0][1].done():
                    return count
                job, future = self._pending.popleft()
            try:
                job.adopt(future.result())
            except Exception as exc:  # a failed fit must not stop the scan: the compensator keeps what it had
                self.failed += 1
                self.last_error = f"{job.name}: {type(exc).__name__}: {exc}"
                logger.exception("off-scan job %s failed", job.name)
                continue
            self.adopted += 1
            count += 1

    def wait(self, timeout: float | None = None) -> None:
        """Wait until every submitted job has finished running (not adopted): for tests and a clean stop."""
        with self._lock:
            futures = [future for _, future in self._pending]
        wait(futures, timeout=timeout)

    def close(self, wait: bool = True) -> None:
        """Stop the worker; with ``wait``, after the running job (queued ones are cancelled)."""
        self._executor.shutdown(wait=wait, cancel_futures=True)
