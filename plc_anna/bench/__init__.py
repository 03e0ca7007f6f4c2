"""Benchmarks behind ``plc-anna bench …``: what every number in the docs comes from.

Each benchmark is a function returning a JSON-ready dict, seeded and
reproducible; baselines are measured in the same run. Plots need matplotlib
(the ``bench`` extra) and river's detectors need river.
"""


import importlib
from types import ModuleType


def bench_module(name: str, what: str) -> ModuleType:
    """Import ``name`` from the ``bench`` extra, or a ValueError saying ``what`` needs it and how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError(f"{what}: pip install 'plc-anna[bench]'") from None


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or a ValueError saying how to install it."""
    matplotlib = bench_module("matplotlib", "plots need matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
