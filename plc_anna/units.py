"""Ages as people write them: ``90s``, ``15min``, ``1h``, ``30d``, ``10y``.

A year is the Julian year, 365.25 days.
"""

from __future__ import annotations

import math
import re

SECONDS_PER_UNIT = {
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "y": 365.25 * 86400.0,
}
_AGE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(s|min|h|d|y)?\s*$")


def parse_age(text: str) -> float:
    """Seconds in an age string; a bare number is seconds.

    Examples
    --------
    >>> parse_age("1h"), parse_age("1.5d"), parse_age("10y"), parse_age("30")
    (3600.0, 129600.0, 315576000.0, 30.0)
    """
    match = _AGE.match(str(text))
    if not match:
        raise ValueError(f"cannot read age {text!r}: write a number with a unit of s, min, h, d or y (e.g. 30d)")
    value = float(match.group(1)) * SECONDS_PER_UNIT[match.group(2) or "s"]
    if not math.isfinite(value):
        raise ValueError(f"age {text!r} is not finite")
    return value


def parse_ages(text: str) -> list[float]:
    """A comma-separated list of ages, in seconds.

    Examples
    --------
    >>> parse_ages("1h,1d")
    [3600.0, 86400.0]
    """
    parts = [p for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ValueError("no ages given")
    return [parse_age(p) for p in parts]


def format_age(seconds: float) -> str:
    """The largest unit that keeps the number at least 1, to 3 significant digits.

    Examples
    --------
    >>> format_age(3600.0), format_age(2_592_000.0), format_age(315576000.0), format_age(0)
    ('1h', '30d', '10y', '0s')
    """
    for unit in ("y", "d", "h", "min"):
        if seconds >= SECONDS_PER_UNIT[unit]:
            return f"{seconds / SECONDS_PER_UNIT[unit]:.3g}{unit}"
    return f"{seconds:.3g}s"
