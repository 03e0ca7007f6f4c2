"""Absolute deadlines: a cycle that ends late skips the deadlines it missed instead of catching up.

The server's scan, the PLC link's cycle and the simulated PLC's cycle all run on
``deadline += period``; when a cycle ends after its next deadline, the missed
ones are skipped (running cycles back to back would only make them later) and
counted.

Examples
--------
>>> next_deadline(10.0, now=10.5, period_s=1.0)       # on time: the next deadline
(11.0, 0)
>>> next_deadline(10.0, now=13.2, period_s=1.0)       # 11, 12 and 13 passed while the cycle ran
(14.0, 3)
"""

from __future__ import annotations


def next_deadline(deadline: float, now: float, period_s: float) -> tuple[float, int]:
    """The first of ``deadline + k * period_s`` (k >= 1) after ``now``, and how many before it ``now`` passed."""
    deadline += period_s
    if now <= deadline:
        return deadline, 0
    missed = int((now - deadline) // period_s) + 1
    return deadline + missed * period_s, missed
