"""The detection benchmark: its report structure, its targets, a clear detection, and its plot."""

import json

import pytest

from plc_anna.bench.detect import DETECTORS, detect_benchmark, plot_detect
from plc_anna.bench.processes import KINDS, STREAMS


@pytest.fixture(scope="module")
def report():
    return detect_benchmark(scans=600, samples_per_scan=64, seed=0)


def test_report_has_every_stream_and_detector(report):
    json.dumps(report, allow_nan=False)
    assert (report["net"], report["device"], report["arl0"]) == ("digits", "pcm", 1e6)
    assert [s["name"] for s in report["streams"]] == list(STREAMS)
    assert {KINDS[name] for name in STREAMS} == {"noise", "process_shift", "slow_process", "drift"}
    for stream in report["streams"]:
        assert stream["kind"] == KINDS[stream["name"]]
        assert (stream["scans"], stream["samples_per_scan"]) == (600, 64)
        assert isinstance(stream["change"], str) and stream["change"]
        assert set(stream["detectors"]) == set(DETECTORS)
        for name, scores in stream["detectors"].items():
            assert scores["false_alarms_per_1e5"] >= 0
            assert (scores["faults"] is None) == (name != "plc_anna")
            if stream["kind"] != "drift":
                assert scores["delay_scans"] is None
            elif scores["delay_scans"] is not None:
                assert scores["delay_scans"] >= 0
        if stream["kind"] == "drift":
            assert stream["delay_bound_scans"] > 0
        else:
            assert "delay_bound_scans" not in stream


def test_no_quiet_stream_alarms_and_the_targets_never_claim_what_was_not_measured(report):
    quiet = [s for s in report["streams"] if s["kind"] != "drift"]
    assert all(s["detectors"]["plc_anna"]["false_alarms"] == 0 and s["detectors"]["plc_anna"]["faults"] == 0
               for s in quiet)
    targets = {t["target"]: t for t in report["targets"]}
    # 600 scans are not 1e5: a clean stream is "not measured", never "met"
    assert all(t["met"] is None for name, t in targets.items() if "1e5 scans" in name)
    assert targets["gain_step_2pct detected within 50 scans"]["met"] is True
    assert targets["offset_step detected within 50 scans"]["met"] is True


def test_plc_anna_detects_a_five_percent_gain_step_at_once(report):
    step = next(s for s in report["streams"] if s["name"] == "gain_step_5pct")
    assert "at scan 60" in step["change"]
    assert step["detectors"]["plc_anna"]["delay_scans"] == 0 < step["delay_bound_scans"] < 1


def test_plot_writes_a_png(report, tmp_path):
    path = tmp_path / "detect.png"
    plot_detect(report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_does_not_depend_on_the_number_of_workers(report):
    streams = ("gain_step_2pct", "daily_cycle")
    serial = detect_benchmark(scans=600, samples_per_scan=64, seed=0, streams=streams, workers=1)
    pooled = {s["name"]: s for s in report["streams"] if s["name"] in streams}
    assert {s["name"]: s for s in serial["streams"]} == pooled


def test_bad_arguments():
    with pytest.raises(ValueError, match="scans"):
        detect_benchmark(scans=5)
    with pytest.raises(ValueError, match="samples_per_scan"):
        detect_benchmark(scans=100, samples_per_scan=2)
    with pytest.raises(ValueError, match="unknown"):
        detect_benchmark(scans=100, streams=("earthquake",))
