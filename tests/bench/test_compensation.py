"""The compensation benchmark: structure, baselines in the same run, and plc-anna's lead over GDC."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from plc_anna.bench.compensation import METHODS, compensation_benchmark, plot_compensation
from plc_anna.bench.speed import forward_speed, layer_update_speed
from plc_anna.bench.streams import draw, split
from plc_anna.device.network import load_network, save_network


@pytest.fixture(scope="module")
def report():
    return compensation_benchmark(nets=["digits"], devices=["pcm"], ages_s=[86400.0, 3e7], seeds=1,
                                  samples=16384, scenarios=["nominal", "process_shift"])


def test_structure(report):
    assert [(r["net"], r["device"], r["scenario"]) for r in report["runs"]] == [
        ("digits", "pcm", "nominal"), ("digits", "pcm", "process_shift")]
    for run in report["runs"]:
        for row in run["ages"]:
            assert set(row["methods"]) == set(METHODS)
            assert row["metric_name"] == "accuracy"
            for scores in row["methods"].values():
                assert 0 <= scores["metric"] <= 1 and scores["output_error"] >= 0
    json.dumps(report)  # JSON-ready, no numpy objects


def test_methods_rank_as_physics_says(report):
    for run in report["runs"]:
        for row in run["ages"]:
            m = {name: scores["output_error"] for name, scores in row["methods"].items()}
            assert m["oracle"] < m["gdc"] < m["none"]
            assert m["plc_anna"] < m["gdc_column"]  # label-free beats the published baseline
            assert row["recovered_fraction"] > 0.8


def test_process_shift_changes_the_class_mix():
    data = split(load_network("digits"))
    rng = np.random.default_rng(0)
    nominal = draw(data, "nominal", 4000, rng)
    shifted = draw(data, "process_shift", 4000, rng)
    assert not np.allclose(nominal.mean(axis=0), shifted.mean(axis=0), atol=0.2)
    with pytest.raises(ValueError, match="unknown scenario"):
        draw(data, "weekend", 10, rng)


def test_user_data_and_plot(tmp_path, two_layer_net):
    net_path, data_path = tmp_path / "net.npz", tmp_path / "data.npz"
    save_network(two_layer_net, net_path)
    np.savez(data_path, X=two_layer_net.X, y=two_layer_net.y)
    report = compensation_benchmark(nets=[str(net_path)], devices=["pcm"], ages_s=[86400.0], seeds=1, samples=2048,
                                    data=data_path, scenarios=["nominal"])
    plot_compensation(report, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 10_000
    np.savez(data_path, X=two_layer_net.X)
    with pytest.raises(ValueError, match="needs arrays 'X' and 'y'"):
        compensation_benchmark(nets=[str(net_path)], devices=["pcm"], seeds=1, samples=2048, data=data_path)


def test_speed_probes_report_percentiles():
    speed = layer_update_speed(columns=32, updates=20)
    assert speed["columns"] == 32 and 0 < speed["update_ms"]["p50"] <= speed["update_ms"]["p99"]
    forward = forward_speed(columns=32, calls=20)
    assert 0 < forward["forward_ms"]["p50"] <= forward["forward_ms"]["max"]


def test_cli_quick(tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["bench", "compensation", "--quick", "--net", "digits", "--device", "pcm",
                                       "--ages", "1d", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["runs"][0]["ages"][0]["age_s"] == 86400.0


def test_unreadable_data_file_is_named(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("garbage")
    with pytest.raises(ValueError, match="bad.npz: not a"):
        compensation_benchmark(nets=["digits"], devices=["pcm"], seeds=1, samples=2048, data=bad)
