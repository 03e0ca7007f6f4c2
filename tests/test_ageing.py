import numpy as np
import pytest

from plc_anna.ageing import simulate_ageing
from plc_anna.device.network import save_network

YEAR = 365.25 * 86400.0


def test_ageing_report_shape_and_trend(two_layer_net):
    report = simulate_ageing(two_layer_net, "pcm", [3600.0, YEAR, 10 * YEAR], seed=4)
    assert report["net"] == "two" and report["seed"] == 4 and report["samples"] == 300
    assert report["digital_metric"] == {"name": "accuracy", "value": 1.0, "unit": ""}
    ratios = [row["layers"][0]["conductance_ratio_median"] for row in report["ages"]]
    assert ratios[0] > ratios[1] > ratios[2] > 0  # conductances decay with age
    assert [row["age"] for row in report["ages"]] == ["1h", "1y", "10y"]
    assert all(0 <= row["metric"]["value"] <= 1 for row in report["ages"])


def test_ageing_is_reproducible(linear_net):
    first = simulate_ageing(linear_net, "pcm", [86400.0], seed=1)
    second = simulate_ageing(linear_net, "pcm", [86400.0], seed=1)
    assert first == second


def test_network_without_data_reports_no_metric(tmp_path, linear_net):
    path = tmp_path / "net.npz"
    save_network(linear_net, path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k not in ("X", "y")}
    np.savez(path, **arrays)
    report = simulate_ageing(path, "ideal", [60.0])
    assert report["digital_metric"] is None and report["ages"][0]["metric"] is None
    assert report["ages"][0]["layers"][0]["conductance_ratio_median"] == 1.0


def test_no_ages():
    with pytest.raises(ValueError, match="at least one age"):
        simulate_ageing("digits", "pcm", [])
