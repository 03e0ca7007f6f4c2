"""The detection benchmark: its report structure, a clear detection, and its plot."""

import json

import pytest

from plc_anna.bench.detect import DETECTORS, KINDS, STREAMS, detect_benchmark, plot_detect


@pytest.fixture(scope="module")
def report():
    return detect_benchmark(scans=600, samples_per_scan=64, seed=0)


def test_report_has_every_stream_and_detector(report):
    json.dumps(report, allow_nan=False)
    assert (report["net"], report["device"], report["arl0"]) == ("digits", "pcm", 1e6)
    assert [s["name"] for s in report["streams"]] == list(STREAMS)
    for stream in report["streams"]:
        assert stream["kind"] == KINDS[stream["name"]]
        assert (stream["scans"], stream["samples_per_scan"]) == (600, 64)
        assert isinstance(stream["change"], str) and stream["change"]
        assert set(stream["detectors"]) == set(DETECTORS)
        for scores in stream["detectors"].values():
            assert scores["false_alarms_per_1e5"] >= 0
            if stream["kind"] != "drift":
                assert scores["delay_scans"] is None
            elif scores["delay_scans"] is not None:
                assert scores["delay_scans"] >= 0
    summary = report["summary"]
    assert isinstance(summary["no_plc_anna_false_alarm_in_noise_and_process_shift"], bool)
    assert isinstance(summary["gain_step_2pct_detected_within_200_scans"], bool)


def test_plc_anna_detects_a_five_percent_gain_step_quickly(report):
    step = next(s for s in report["streams"] if s["name"] == "gain_step_5pct")
    assert "at scan 60" in step["change"]
    delay = step["detectors"]["plc_anna"]["delay_scans"]
    assert delay is not None and delay < 50


def test_plot_writes_a_png(report, tmp_path):
    path = tmp_path / "detect.png"
    plot_detect(report, path)
    assert path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_does_not_depend_on_the_number_of_workers(report):
    streams = ("gain_step_2pct", "offset_step")
    serial = detect_benchmark(scans=600, samples_per_scan=64, seed=0, streams=streams, workers=1)
    pooled = [s for s in report["streams"] if s["name"] in streams]
    assert serial["streams"] == pooled


def test_bad_arguments():
    with pytest.raises(ValueError, match="scans"):
        detect_benchmark(scans=5)
    with pytest.raises(ValueError, match="samples_per_scan"):
        detect_benchmark(scans=100, samples_per_scan=1)
    with pytest.raises(ValueError, match="unknown"):
        detect_benchmark(scans=100, streams=("earthquake",))
    with pytest.raises(ValueError, match="workers"):
        detect_benchmark(scans=100, workers=0)
