"""The hand-off from the scans to publishing: the newest report per network, never a queue that can block.

A scan puts its :class:`~plc_anna.engine.scan.ScanReport` and goes on; the
publisher takes what is there when it is ready. A report not taken before the
next one of the same network arrives is merged into it
(:meth:`ScanReport.after <plc_anna.engine.scan.ScanReport.after>`): its values
are dropped (``dropped`` counts them) but its events, link events and state to
save ride on. So publishing that falls behind shows fewer intermediate values;
it never loses an alarm or a save, and it never delays a scan. The lock is held
only to swap a reference.

Examples
--------
>>> from plc_anna.engine.task import CycleStats
>>> from plc_anna.server.runtime import Snapshot
>>> def report(scan, events=()):
...     snapshot = Snapshot(scan, 60.0, 300.0, (), tuple(events), 0, scan, 0.0, 0.0)
...     return ScanReport("line1", snapshot, CycleStats(cycles=scan))
>>> box = ReportBox()
>>> for scan in (1, 2, 3):
...     box.put(report(scan, events=["calibrated"] if scan == 1 else []))
>>> taken = box.take()["line1"]
>>> taken.snapshot.scan, taken.snapshot.events, taken.dropped, box.take()
(3, ('calibrated',), 2, {})
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from plc_anna.engine.scan import ScanReport


class ReportBox:
    """The newest :class:`ScanReport` of each network, merged with the ones nobody took (thread-safe).

    Parameters
    ----------
    notify
        Called after each :meth:`put` (outside the lock), e.g. to wake a sender thread; must not block.
    """

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        self._reports: dict[str, ScanReport] = {}
        self._lock = threading.Lock()
        self._notify = notify

    def put(self, report: ScanReport) -> None:
        with self._lock:
            older = self._reports.get(report.network)
            self._reports[report.network] = report if older is None else report.after(older)
        if self._notify is not None:
            self._notify()

    def put_all(self, reports: list[ScanReport]) -> None:
        for report in reports:
            self.put(report)

    def take(self) -> dict[str, ScanReport]:
        """Every network's report since the last take (and empty the box)."""
        with self._lock:
            reports, self._reports = self._reports, {}
        return reports

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._reports)
