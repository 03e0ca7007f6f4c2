"""Work a compensator hands off its scan: eigen-solves and fits that may take longer than a scan.

A :class:`Job` is split in two so the scan never waits for it:

- :meth:`Job.run` does the heavy part on copies of the data it needs (it may
  run on any thread, concurrently with later scans, and touches no shared
  state);
- :meth:`Job.adopt` installs the result; the caller runs it *between* scans,
  on the thread that runs the scans (a scan boundary), so a scan sees either
  the old result or the new one, never half of each.

``Compensator.take_jobs()`` returns the jobs that became due since the last
call. An engine runs them on a worker and adopts each at the next scan
boundary after it finished; a plain loop (a notebook, a benchmark) runs them
inline with :func:`run_inline`, which gives the same results one scan sooner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    """A piece of off-scan work: ``run`` computes, ``adopt`` installs (at a scan boundary)."""

    name: str
    run: Callable[[], Any]
    adopt: Callable[[Any], None]


def run_inline(jobs: Iterable[Job]) -> int:
    """Run and adopt every job now, in order; returns how many ran."""
    count = 0
    for job in jobs:
        job.adopt(job.run())
        count += 1
    return count
