"""Device parameters of the simulated analog network: presets and ``.toml`` files.

A device file names a ``preset`` (``pcm``, ``hermes`` or ``ideal``) and may
override any key; unknown keys, wrong types and impossible values raise
``ValueError`` naming the key. Every key is documented in :data:`KEY_DOCS`
(rendered in ``docs/device-parameters.md``).

The periphery constants are our own plausible defaults (no public simulator
models peripheral drift); the PCM constants are published (see
:mod:`plc_anna.device.physics`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plc_anna.device.physics import PCM_PROG_COEFF
from plc_anna.tomlfile import read_toml


def _key(doc: str, unit: str = "", low: float | None = None, high: float | None = None,
         choices: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"doc": doc, "unit": unit, "low": low, "high": high, "choices": choices}


@dataclass(frozen=True)
class DeviceParams:
    """Physical parameters of a simulated analog network (one value for all layers)."""

    # --- conductances and programming
    g_max_us: float = field(default=25.0, metadata=_key(
        "Conductance that the largest absolute weight of a layer is programmed to.", "µS", low=1e-3))
    prog_noise_scale: float = field(default=1.0, metadata=_key(
        "Multiplier of the programming-noise law sigma = c0 + c1 g + c2 g^2 (0 = off).", low=0.0))
    prog_coeff: tuple[float, ...] = field(default=PCM_PROG_COEFF, metadata=_key(
        "Programming-noise polynomial coefficients c0, c1, c2 (µS at g_max = 25 µS)."))
    # --- drift
    drift_law: str = field(default="pcm", metadata=_key(
        "State-dependent law of the drift exponent's mean.", choices=("pcm", "hermes")))
    nu_mean: float | None = field(default=None, metadata=_key(
        "Constant mean drift exponent for every device; unset: the state-dependent law of "
        "drift_law.", low=0.0, high=1.0))
    nu_std: float | None = field(default=None, metadata=_key(
        "Constant device-to-device spread of the drift exponent; unset: the published "
        "state-dependent spread. nu_std = 0 makes every device drift with exactly nu_mean.",
        low=0.0, high=1.0))
    drift_scale: float = field(default=1.0, metadata=_key(
        "Multiplier of every drift exponent (0 = no conductance drift).", low=0.0))
    t0_s: float = field(default=20.0, metadata=_key(
        "Drift reference time after programming: G(t) = G_prog ((t + t0)/t0)^-nu.", "s", low=1e-9))
    # --- 1/f read noise
    read_noise_scale: float = field(default=1.0, metadata=_key(
        "Multiplier of the accumulated 1/f conductance noise (0 = off).", low=0.0))
    t_read_s: float = field(default=250e-9, metadata=_key(
        "Read pulse duration in the 1/f noise law.", "s", low=1e-15))
    # --- temperature
    temperature_k: float = field(default=300.0, metadata=_key(
        "Operating temperature at age 0 (until the first step of temperature_profile).", "K",
        low=1.0, high=1000.0))
    temperature_profile: tuple[tuple[float, float], ...] = field(default=(), metadata=_key(
        "Steps [[age_s, temperature_k], ...]: from each age on, the network runs at that "
        "temperature. Ages strictly increasing."))
    reference_temperature_k: float = field(default=300.0, metadata=_key(
        "Temperature at which drift runs at its nominal rate.", "K", low=1.0, high=1000.0))
    activation_energy_ev: float = field(default=0.2, metadata=_key(
        "Arrhenius activation energy that accelerates drift and periphery ageing above "
        "the reference temperature (published range 0.1 to 0.23 eV).", "eV", low=0.0, high=5.0))
    # --- periphery (per column; our own model, no published constants)
    periphery_t0_s: float = field(default=60.0, metadata=_key(
        "Periphery ageing runs in decades of log10(1 + age/periphery_t0_s).", "s", low=1e-9))
    gain_drift_mean: float = field(default=-0.003, metadata=_key(
        "Mean column-gain change per decade of periphery age (fraction of gain).", "1/decade"))
    gain_drift_std: float = field(default=0.003, metadata=_key(
        "Column-to-column spread of the gain change per decade.", "1/decade", low=0.0))
    offset_drift_std: float = field(default=0.001, metadata=_key(
        "Column-to-column spread of the ADC offset change per decade (fraction of ADC full "
        "scale; mean 0).", "FS/decade", low=0.0))
    gain_tempco_std: float = field(default=50e-6, metadata=_key(
        "Column-to-column spread of the gain temperature coefficient.", "1/K", low=0.0))
    offset_tempco_std: float = field(default=20e-6, metadata=_key(
        "Column-to-column spread of the offset temperature coefficient.", "FS/K", low=0.0))
    # --- converters and output noise
    dac_bits: int = field(default=8, metadata=_key(
        "Input DAC resolution, signed (0 = no quantization; inputs are clipped to the layer's "
        "input_range either way).", "bit", low=0, high=24))
    adc_bits: int = field(default=10, metadata=_key(
        "Output ADC resolution, signed (0 = no quantization; outputs are clipped to the layer's "
        "output_range either way).", "bit", low=0, high=24))
    output_noise_std: float = field(default=0.002, metadata=_key(
        "Per-read Gaussian noise at the ADC input (fraction of ADC full scale; 0 = off).", "FS",
        low=0.0))
    bias_in_crossbar: bool = field(default=True, metadata=_key(
        "Program the bias as an extra crossbar row (it then drifts like the weights); false "
        "adds it digitally after the ADC."))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_value(f, getattr(self, f.name))

    def replace(self, **changes: Any) -> "DeviceParams":
        """A copy with ``changes`` applied and validated."""
        return from_dict(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples) suitable for JSON or TOML."""
        out = dataclasses.asdict(self)
        out["prog_coeff"] = list(self.prog_coeff)
        out["temperature_profile"] = [list(step) for step in self.temperature_profile]
        return out


KEY_DOCS: dict[str, dict[str, Any]] = {f.name: dict(f.metadata) for f in dataclasses.fields(DeviceParams)}

def _check_value(f: dataclasses.Field, value: Any) -> None:
    name, meta = f.name, f.metadata
    if name == "prog_coeff":
        if not (isinstance(value, tuple) and 1 <= len(value) <= 8
                and all(isinstance(c, float) and math.isfinite(c) for c in value)):
            raise ValueError(f"device key 'prog_coeff' must be a list of 1 to 8 finite numbers, got {value!r}")
        return
    if name == "temperature_profile":
        previous = -math.inf
        for step in value:
            if not (isinstance(step, tuple) and len(step) == 2
                    and all(isinstance(v, float) and math.isfinite(v) for v in step)):
                raise ValueError("device key 'temperature_profile' must be a list of "
                                 f"[age_s, temperature_k] pairs of numbers, got {step!r}")
            age, temp = step
            if age < 0 or age <= previous:
                raise ValueError("device key 'temperature_profile': ages must be >= 0 and strictly "
                                 f"increasing, got {age} after {previous}")
            if not 1.0 <= temp <= 1000.0:
                raise ValueError(f"device key 'temperature_profile': temperature {temp} K is outside 1..1000 K")
            previous = age
        return
    if meta["choices"]:
        if value not in meta["choices"]:
            raise ValueError(f"device key {name!r} must be one of {', '.join(meta['choices'])}, got {value!r}")
        return
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"device key {name!r} must be finite, got {value}")
    if meta["low"] is not None and value < meta["low"]:
        raise ValueError(f"device key {name!r} must be >= {meta['low']}, got {value}")
    if meta["high"] is not None and value > meta["high"]:
        raise ValueError(f"device key {name!r} must be <= {meta['high']}, got {value}")


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Check the TOML type of ``value`` for field ``f`` and convert it."""
    name = f.name
    default = f.default

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if name == "prog_coeff":
        if not (isinstance(value, (list, tuple)) and all(is_number(v) for v in value)):
            raise ValueError(f"device key 'prog_coeff' must be a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if name == "temperature_profile":
        if not (isinstance(value, (list, tuple))
                and all(isinstance(s, (list, tuple)) and all(is_number(v) for v in s) for s in value)):
            raise ValueError("device key 'temperature_profile' must be a list of "
                             f"[age_s, temperature_k] pairs, got {value!r}")
        return tuple(tuple(float(v) for v in s) for s in value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"device key {name!r} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"device key {name!r} must be an integer, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"device key {name!r} must be a string, got {value!r}")
        return value
    # float or optional float
    if not is_number(value):
        raise ValueError(f"device key {name!r} must be a number, got {value!r}")
    return float(value)


_IDEAL = dict(prog_noise_scale=0.0, drift_scale=0.0, read_noise_scale=0.0, gain_drift_mean=0.0,
              gain_drift_std=0.0, offset_drift_std=0.0, gain_tempco_std=0.0, offset_tempco_std=0.0,
              dac_bits=0, adc_bits=0, output_noise_std=0.0)

PRESETS: dict[str, DeviceParams] = {
    # aihwkit PCMLikeNoiseModel constants with our periphery model
    "pcm": DeviceParams(),
    # HERMES chip: state-dependent drift with a larger reference time
    "hermes": DeviceParams(drift_law="hermes", t0_s=300.0),
    # no noise, no drift, no quantization: the analog network equals the digital one
    "ideal": DeviceParams(**_IDEAL),
}


def from_dict(values: dict[str, Any], base: DeviceParams | None = None) -> DeviceParams:
    """Apply ``values`` on top of ``base`` (or of the preset named by ``values['preset']``)."""
    values = dict(values)
    preset = values.pop("preset", None)
    if preset is not None:
        if base is not None:
            raise ValueError("give either a base or a 'preset' key, not both")
        base = preset_params(preset)
    base = base if base is not None else PRESETS["pcm"]
    fields = {f.name: f for f in dataclasses.fields(DeviceParams)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown device key(s) {', '.join(map(repr, unknown))}; valid keys: "
                         f"preset, {', '.join(fields)}")
    changes = {name: _coerce(fields[name], value) for name, value in values.items()}
    return dataclasses.replace(base, **changes)


def preset_params(name: str) -> DeviceParams:
    """The parameters of a named preset."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown device preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def load_device_params(preset_or_path: str | Path) -> DeviceParams:
    """Parameters from a preset name or a ``.toml`` file.

    A file without a ``preset`` key starts from ``pcm``.

    Examples
    --------
    >>> load_device_params("hermes").t0_s
    300.0
    """
    text = str(preset_or_path)
    if text in PRESETS:
        return PRESETS[text]
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"device {text!r} is neither a preset ({', '.join(PRESETS)}) nor an existing .toml file")
    values = read_toml(path)
    try:
        return from_dict(values)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
