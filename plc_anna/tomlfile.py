"""Reading a TOML file with errors that name it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read_toml(path: str | Path) -> dict[str, Any]:
    """The table of a TOML file; ValueError naming the file when it is unreadable or not TOML."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the file: {exc}") from None
