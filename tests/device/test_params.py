"""Device files: presets, overrides and the errors a user sees."""

import dataclasses

import pytest

from plc_anna.device.params import KEY_DOCS, PRESETS, DeviceParams, load_device_params, preset_params


def write(tmp_path, text: str):
    path = tmp_path / "device.toml"
    path.write_text(text)
    return path


def test_presets():
    assert set(PRESETS) == {"pcm", "hermes", "ideal"}
    assert load_device_params("pcm").t0_s == 20.0
    hermes = load_device_params("hermes")
    assert (hermes.drift_law, hermes.t0_s) == ("hermes", 300.0)
    ideal = load_device_params("ideal")
    assert ideal.prog_noise_scale == ideal.drift_scale == ideal.read_noise_scale == ideal.output_noise_std == 0
    assert ideal.dac_bits == ideal.adc_bits == 0
    with pytest.raises(ValueError, match="valid presets: pcm, hermes, ideal"):
        preset_params("rram")


def test_every_key_is_documented():
    for f in dataclasses.fields(DeviceParams):
        assert KEY_DOCS[f.name]["doc"].strip(), f.name


def test_file_starts_from_preset_and_overrides(tmp_path):
    params = load_device_params(write(tmp_path, """
preset = "hermes"
nu_mean = 0.05
nu_std = 0
dac_bits = 6
temperature_profile = [[0, 300], [86400, 330.5]]
"""))
    assert params.drift_law == "hermes" and params.t0_s == 300.0
    assert params.nu_mean == 0.05 and params.nu_std == 0.0 and isinstance(params.nu_std, float)
    assert params.dac_bits == 6
    assert params.temperature_profile == ((0.0, 300.0), (86400.0, 330.5))


def test_file_without_preset_starts_from_pcm(tmp_path):
    assert load_device_params(write(tmp_path, "adc_bits = 12\n")) == PRESETS["pcm"].replace(adc_bits=12)


@pytest.mark.parametrize("text,message", [
    ("colour = 3", "unknown device key(s) 'colour'"),
    ('preset = "rram"', "unknown device preset 'rram'"),
    ('dac_bits = "8"', "'dac_bits' must be an integer"),
    ("dac_bits = 8.5", "'dac_bits' must be an integer"),
    ("dac_bits = 99", "'dac_bits' must be <= 24"),
    ("g_max_us = -1", "'g_max_us' must be >= 0.001"),
    ("t0_s = 0", "'t0_s' must be >= 1e-09"),
    ("nu_std = -0.01", "'nu_std' must be >= 0.0"),
    ("output_noise_std = nan", "'output_noise_std' must be finite"),
    ("prog_noise_scale = true", "'prog_noise_scale' must be a number"),
    ("bias_in_crossbar = 1", "'bias_in_crossbar' must be true or false"),
    ('drift_law = "linear"', "'drift_law' must be one of pcm, hermes"),
    ("temperature_profile = [[10, 300], [5, 310]]", "strictly increasing"),
    ("temperature_profile = [[10, 3000]]", "outside 1..1000 K"),
    ("temperature_profile = [300, 310]", "pairs"),
    ("prog_coeff = []", "'prog_coeff' must be a list of 1 to 8"),
    ("this is not toml", "invalid TOML"),
])
def test_file_errors_name_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_device_params(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_named():
    with pytest.raises(ValueError, match="neither a preset .* nor an existing .toml file"):
        load_device_params("/nonexistent/device.toml")


def test_replace_validates():
    with pytest.raises(ValueError, match="'adc_bits' must be >= 0"):
        PRESETS["pcm"].replace(adc_bits=-1)
    with pytest.raises(ValueError, match="unknown device key"):
        PRESETS["pcm"].replace(adc_bitz=4)


def test_every_key_is_in_the_user_docs():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "device-parameters.md").read_text()
    for name, meta in KEY_DOCS.items():
        assert f"| `{name}` |" in text, name
        assert meta["doc"] in text, name
