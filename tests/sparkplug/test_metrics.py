"""Metric names, aliases and the report-by-exception rule; the docs' metrics table matches the code."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from plc_anna.sparkplug import metrics as m
from plc_anna.sparkplug.synthetic import SyntheticNetwork

DOCS = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"


def test_changed_compares_arrays_elementwise_and_nan_as_equal():
    a = np.array([1.0, math.nan])
    assert not m.changed(a, a.copy())
    assert m.changed(a, np.array([1.0, 2.0])) and m.changed(a, np.array([1.0]))
    assert not m.changed(math.nan, math.nan) and m.changed(None, 1.0) and m.changed(1, 1.0)
    assert m.changed(True, 1) and not m.changed("x", "x")


def test_aliases_are_unique_per_node_and_stable_per_shape():
    big = SyntheticNetwork("a", layers=40, columns=2).latest
    specs = m.node_specs() + m.device_specs(big, 0, ("Calibrate",)) + m.device_specs(big, 1, ())
    assert len({s.alias for s in specs}) == len(specs)
    assert m.device_specs(big, 3, ()) == m.device_specs(SyntheticNetwork("b", 40, 2, seed=9).latest, 3, ())


def test_every_metric_is_in_the_docs_table_with_its_meaning():
    text = DOCS.read_text()
    for table in (m.NETWORK_METRICS, m.NODE_METRICS):
        for name, (_, meaning) in table.items():
            assert f"| `{name}`" in text and meaning in text, name
    for name, (_, meaning) in m.LAYER_METRICS.items():
        assert f"| `Layer<i>/{name}` |" in text and meaning in text, name
