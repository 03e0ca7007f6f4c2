"""Benchmarks behind ``plc-anna bench …``: what every number in the docs comes from.

Each benchmark is a function returning a JSON-ready dict, seeded and
reproducible; baselines are measured in the same run. Plots need matplotlib
(the ``bench`` extra) and river's detectors need river.
"""


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or a ValueError saying how to install it."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError("plots need matplotlib: pip install 'plc-anna[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
