import pytest

from plc_anna.demo import run_demo


def test_demo_rows_show_compensation_working():
    rows = run_demo("thermocouple", "pcm", seed=1, scans=1200, checkpoints=[3600.0, 10 * 365.25 * 86400.0])
    assert [row["age"] for row in rows] == ["1h", "10y"]
    for row in rows:
        assert row["rmse_corrected"] < row["rmse_uncorrected"]
        assert row["unit"] == "degC" and len(row["states"]) == 3
    assert rows[-1]["rmse_corrected"] < 0.25 * rows[-1]["rmse_uncorrected"]
    assert rows[-1]["gain_min"] > 1.0  # conductances decayed: the PLC gains rose above 1


def test_demo_needs_enough_scans():
    with pytest.raises(ValueError, match="at least"):
        run_demo("digits", scans=10)
