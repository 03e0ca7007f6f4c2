"""The scan-cycle benchmark: the report's structure is the spec's, its numbers are measured (no timing asserted)."""

import json
import math

import pytest

from plc_anna.bench.cycle import TARGETS, CycleRun, check_targets, run_cycle_bench, spec_scan_ms, synthetic_network

#: The fields the issue lists for every run.
SPEC_KEYS = {"columns", "layers", "networks", "subscribers", "scan_ms", "cycles", "overruns", "compute_ms",
             "lateness_ms", "server_update_ms", "bare_asyncua_update_ms", "monitored_items", "publish_dropped"}
#: The fields the benchmark reported before (kept).
EARLIER_KEYS = {"inputs", "samples_per_scan", "age_rate", "read_ms", "work_ms", "server_update_max_ms",
                "bare_asyncua_update_max_ms", "compute_by_state_ms", "overrun_cycles", "overruns_before", "failures",
                "last_error"}
RUN = CycleRun(16, layers=2, networks=2, subscribers=2, scan_ms=10, cycles=120, publish_ms=50)


@pytest.fixture(scope="module")
def report():
    messages = []
    result = run_cycle_bench([RUN], on_progress=messages.append)
    assert len(messages) == 1 and "2 x 2 x 16 columns, 2 subscribers" in messages[0]
    return result


def test_structure_is_the_spec(report):
    assert set(report) == {"runs", "targets", "machine", "settings"}
    assert report["machine"]["cpus"] >= 1 and report["settings"]["isolation"] == "process"
    (run,) = report["runs"]
    assert SPEC_KEYS | EARLIER_KEYS <= set(run)
    for key in ("compute_ms", "lateness_ms", "numpy_floor_ms"):
        assert set(run[key]) == {"p50", "p99", "max"}
    for key in ("server_update_ms", "bare_asyncua_update_ms"):
        assert set(run[key]) == {"p50", "p99"}
    assert (run["columns"], run["layers"], run["networks"], run["subscribers"]) == (16, 2, 2, 2)
    assert (run["scan_ms"], run["cycles"], run["cycles_total"]) == (10.0, 120, 240)
    json.dumps(report, allow_nan=False)  # JSON-ready: plain types, every number finite


def test_values_are_measured(report):
    (run,) = report["runs"]
    for key in ("compute_ms", "server_update_ms", "bare_asyncua_update_ms", "read_ms", "work_ms", "numpy_floor_ms"):
        values = run[key]
        assert all(math.isfinite(v) and v > 0 for v in values.values()), (key, values)
        assert values["p50"] <= values["p99"] <= values.get("max", math.inf)
    assert all(math.isfinite(v) and v >= 0 for v in run["lateness_ms"].values())
    assert run["overruns"] == len(run["overrun_cycles"]) and run["failures"] == 0, run["last_error"]
    # 2 sessions x 2 networks x 2 layers x (distance, state, gain, offset); the bare server got the same load
    assert run["monitored_items"] == run["bare_asyncua_monitored_items"] == 32
    assert run["notifications"] > 0 and run["publish_passes"] > 0
    # A 10 ms scan published every 50 ms: most scans are published over, and counted.
    assert run["publish_dropped"] >= run["cycles_total"] // 2
    assert sum(state["cycles"] for state in run["compute_by_state_ms"].values()) == 240
    assert run["compute_ms"]["max"] < run["work_ms"]["max"] + 1e-9  # the update is part of the cycle


def test_targets_are_stated_not_assumed(report):
    targets = report["targets"]
    assert len(targets) == len(TARGETS) == 6
    assert all(t["met"] is None and t["why"] == "not run" for t in targets)
    measured = {**report["runs"][0], "columns": 256, "layers": 1, "networks": 1, "subscribers": 0}
    short = check_targets([measured])[0]
    assert short["met"] is None and "120 of the 100000" in short["why"]
    full = {**measured, "cycles": 100_000, "compute_ms": {"p50": 0.1, "p99": 0.5, "max": 2.0}, "overruns": 0}
    assert check_targets([full])[0]["met"] is True
    assert check_targets([{**full, "overruns": 1}])[0]["met"] is False
    assert check_targets([{**full, "compute_ms": {"p50": 0.1, "p99": 0.6, "max": 2.0}}])[0]["met"] is False
    items = {**full, "columns": 16, "layers": 64, "subscribers": 80, "publish_ms": 1000.0, "cycles": 10_000,
             "monitored_items": 19_000}
    (few,) = [t for t in check_targets([items]) if "monitored items" in t["target"]]
    assert few["met"] is None and "19000 of the 20000" in few["why"]


def test_spec_periods_and_arguments():
    assert [spec_scan_ms(c) for c in (64, 256, 257, 1024)] == [10.0, 10.0, 100.0, 100.0]
    net = synthetic_network(64, layers=3)
    assert (net.n_inputs, net.n_outputs, len(net.layers), net.output_unit) == (32, 64, 3, "V")
    assert (synthetic_network(64, layers=3).layers[1].weights == net.layers[1].weights).all()  # seeded
    with pytest.raises(ValueError, match="whole number"):
        run_cycle_bench([CycleRun(16, scan_ms=7.5, cycles=1)])
    with pytest.raises(ValueError, match="at least 1"):
        run_cycle_bench([CycleRun(16, layers=0)])
