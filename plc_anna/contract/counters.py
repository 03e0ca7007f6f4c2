"""The counters of the PLC contract: ``CommitCounter``, ``Heartbeat``, ``PlcHeartbeat``, ``TraceCount``.

All are PLC ``UDINT`` tags: they wrap at 2**32 and are compared with ``<>``
only (D8 in :mod:`plc_anna.contract.logic`), so ``4294967295 -> 0`` is an
ordinary change. A commit counter of 0 means "no set yet" (D7), so the
writer skips it when wrapping.
"""

from __future__ import annotations

import operator

#: CommitCounter, Heartbeat, PlcHeartbeat and TraceCount wrap here.
UDINT_MODULUS = 2**32


def udint(value: int) -> int:
    """``value`` as a UDINT tag stores it (modulo 2**32).

    Examples
    --------
    >>> udint(2**32 + 5), udint(-1)
    (5, 4294967295)
    """
    return operator.index(value) % UDINT_MODULUS


def next_counter(counter: int) -> int:
    """The commit counter after ``counter``: it wraps as a UDINT, and 0 is skipped (D7: "no set yet").

    Examples
    --------
    >>> next_counter(41), next_counter(2**32 - 1)
    (42, 1)
    """
    return (int(counter) + 1) % UDINT_MODULUS or 1


def next_beat(beat: int) -> int:
    """The heartbeat after ``beat``: it wraps as a UDINT (0 is an ordinary value).

    Examples
    --------
    >>> next_beat(2**32 - 1)
    0
    """
    return (int(beat) + 1) % UDINT_MODULUS
