"""The scan-cycle benchmark: the report's structure is the spec's, its numbers are measured (no timing asserted)."""

import json
import math

import pytest

from plc_anna.bench.cycle import check_targets, run_cycle_bench, spec_scan_ms, synthetic_network

SPEC_KEYS = {"columns", "scan_ms", "cycles", "compute_ms", "lateness_ms", "overruns", "server_update_ms",
             "bare_asyncua_update_ms"}


@pytest.fixture(scope="module")
def report():
    messages = []
    result = run_cycle_bench(columns=(16,), scan_ms=10, cycles=100, on_progress=messages.append)
    assert len(messages) == 1 and "16 columns" in messages[0]
    return result


def test_structure_is_the_spec(report):
    assert set(report) == {"runs", "targets", "machine"}
    assert report["machine"]["cpus"] >= 1
    (run,) = report["runs"]
    assert SPEC_KEYS <= set(run)
    for key in ("compute_ms", "lateness_ms"):
        assert set(run[key]) == {"p50", "p99", "max"}
    for key in ("server_update_ms", "bare_asyncua_update_ms"):
        assert set(run[key]) == {"p50", "p99"}
    assert (run["columns"], run["scan_ms"], run["cycles"]) == (16, 10.0, 100)
    assert run["samples_per_scan"] == 8 and run["inputs"] == 32
    json.dumps(report, allow_nan=False)  # JSON-ready: plain types, every number finite


def test_values_are_measured(report):
    (run,) = report["runs"]
    for key in ("compute_ms", "server_update_ms", "bare_asyncua_update_ms", "read_ms", "work_ms", "cycle_ms"):
        values = run[key]
        assert all(math.isfinite(v) and v > 0 for v in values.values()), (key, values)
        assert values["p50"] <= values["p99"] <= values.get("max", math.inf)
    lateness = run["lateness_ms"]
    assert all(math.isfinite(v) and v >= 0 for v in lateness.values())
    assert isinstance(run["overruns"], int) and run["overruns"] >= 0
    assert run["overruns"] == len(run["overrun_cycles"])
    assert run["failures"] == 0, run["last_error"]
    assert sum(state["cycles"] for state in run["compute_by_state_ms"].values()) == 100
    assert run["compute_ms"]["max"] < run["work_ms"]["max"] + 1e-9  # the update is part of the work


def test_targets_are_stated_not_assumed(report):
    targets = report["targets"]
    assert [t["columns"] for t in targets] == [256, 1024]
    assert all(t["met"] is None and t["why"] == "not run" for t in targets)
    run = {**report["runs"][0], "columns": 256}
    (short, _) = check_targets([run])
    assert short["met"] is None and "100 of the 10000" in short["why"]
    full = {**run, "cycles": 10000, "compute_ms": {"p50": 0.1, "p99": 0.5, "max": 2.0}, "overruns": 0}
    assert check_targets([full])[0]["met"] is True
    late = {**full, "overruns": 1}
    assert check_targets([late])[0]["met"] is False
    slow = {**full, "compute_ms": {"p50": 0.1, "p99": 1.5, "max": 2.0}}
    assert check_targets([slow])[0]["met"] is False


def test_spec_periods_and_arguments():
    assert [spec_scan_ms(c) for c in (64, 256, 257, 1024)] == [10.0, 10.0, 100.0, 100.0]
    net = synthetic_network(64)
    assert (net.n_inputs, net.n_outputs, net.output_unit) == (32, 64, "V")
    assert (synthetic_network(64).layers[0].weights == net.layers[0].weights).all()  # seeded
    with pytest.raises(ValueError, match="whole number"):
        run_cycle_bench(columns=(16,), scan_ms=7.5, cycles=1)
    with pytest.raises(ValueError, match="2 scan periods for 1"):
        run_cycle_bench(columns=(16,), scan_ms=(10, 20), cycles=1)
