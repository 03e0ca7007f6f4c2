"""The latent benchmark on a small run: structure, prediction beats holding, RUL and fault reports."""

import json

import pytest
from click.testing import CliRunner

from cli import main
from plc_anna.bench.latent import METHODS, latent_benchmark


@pytest.fixture(scope="module")
def report():
    return latent_benchmark(nets=["digits"], seeds=1, samples=8192)


def test_structure_and_targets(report):
    json.dumps(report)
    assert [run["scenario"] for run in report["runs"]] == ["drift", "crossing", "fault"]
    drift = report["runs"][0]
    assert drift["calibration_ages_s"] == [3600.0, 86400.0, 2592000.0]
    for row in drift["ages"]:
        assert set(row["methods"]) == set(METHODS)
        r = row["recovered_fraction"]
        assert r["predictive"] > r["hold_last"]  # the trend keeps up, holding does not
        assert r["predictive"] > 0.7
    assert drift["gain_prediction_error_pct"] < 5


def test_rul_band_and_fault(report):
    crossing, fault = report["runs"][1], report["runs"][2]
    rul = crossing["rul"]
    assert rul["true_age_s"] is not None and rul["low_s"] <= rul["estimated_age_s"]
    assert abs(rul["estimated_age_s"] / rul["true_age_s"] - 1) < 0.6
    assert fault["fault"]["detected_age_s"] is not None and not fault["fault"]["trend_changed"]
    assert "recalibrated" not in fault["ages"][0]["methods"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="end before"):
        latent_benchmark(nets=["digits"], calibration_ages_s=(3600.0, 1e9))
    with pytest.raises(ValueError, match="unknown scenario"):
        latent_benchmark(nets=["digits"], scenarios=["flood"])


def test_cli_quick(tmp_path):
    out = tmp_path / "latent.json"
    result = CliRunner().invoke(main, ["bench", "latent", "--quick", "--samples", "4096", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["runs"][0]["net"] == "thermocouple"
