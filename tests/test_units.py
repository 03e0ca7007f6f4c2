import pytest

from plc_anna.units import format_age, parse_age, parse_ages


@pytest.mark.parametrize("text,seconds", [
    ("45s", 45.0), ("2min", 120.0), ("1h", 3600.0), ("1d", 86400.0), ("30d", 2_592_000.0),
    ("1y", 31_557_600.0), ("10y", 315_576_000.0), ("0.5h", 1800.0), ("1e3", 1000.0), (" 7 d ", 604800.0),
])
def test_parse_age(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1w", "-1h", "1 hour", "nan", "1hh", "1e999y"])
def test_parse_age_rejects(text):
    with pytest.raises(ValueError):
        parse_age(text)


def test_parse_ages_list():
    assert parse_ages("1h,1d,30d,1y,10y") == [3600.0, 86400.0, 2_592_000.0, 31_557_600.0, 315_576_000.0]
    with pytest.raises(ValueError, match="no ages"):
        parse_ages(" , ")


def test_format_age_round_trip():
    for text in ("1h", "1d", "30d", "1y", "10y", "90s"):
        assert parse_age(format_age(parse_age(text))) == pytest.approx(parse_age(text))
