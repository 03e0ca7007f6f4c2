"""The simulated analog network: the embedded default device backend.

Signal chain of one layer (see ``docs/simulator.md``)::

    x ─ clip to ±input_range, DAC ─► u ─ crossbar (G+ − G−)/g_max ─► z
      ─ ×input_range·w_max/output_range ─► column gain, ADC offset, read noise
      ─ ADC (clip to ±1, quantize) ─► ×output_range ─► raw y

With the ``ideal`` preset the raw output equals the digital network's
pre-activation exactly (up to floating point).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plc_anna.device.base import AnalogNetwork, check_correction
from plc_anna.device.clock import AgeClock
from plc_anna.device.crossbar import HORIZON_S, Crossbar
from plc_anna.device.network import Network, load_network
from plc_anna.device.params import DeviceParams, load_device_params
from plc_anna.device.periphery import Periphery
from plc_anna.converters import Converters, quantize

# Independent random streams per layer, so that changing one part of the
# model never changes the draws of another.
_STREAM_CROSSBAR, _STREAM_PERIPHERY, _STREAM_READS = 1, 2, 3


class SimulatedNetwork(AnalogNetwork):
    """A network programmed into simulated PCM crossbars, on its own clock.

    Parameters
    ----------
    network
        A :class:`~plc_anna.device.network.Network`, a shipped network name or a ``.npz`` path.
    device
        :class:`~plc_anna.device.params.DeviceParams`, a preset name or a ``.toml`` path.
    seed
        Draws every device once; the same seed gives the same network.
    sinks
        Correction sink per layer (default: hidden ``device``, last ``plc``).

    Examples
    --------
    >>> sim = SimulatedNetwork("thermocouple", "pcm", seed=1)
    >>> sim.set_age(365.25 * 86400)  # one year, in no time
    >>> round(sim.conductance_ratio_median(0), 3)
    0.431
    """

    def __init__(self, network: Network | str, device: DeviceParams | str = "pcm", seed: int = 0,
                 sinks: Sequence[str] | None = None) -> None:
        network = network if isinstance(network, Network) else load_network(network)
        super().__init__(network, sinks)
        self.params = device if isinstance(device, DeviceParams) else load_device_params(device)
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        p = self.params
        self.clock = AgeClock(p.temperature_k, p.temperature_profile, p.reference_temperature_k,
                              p.activation_energy_ev)
        self._crossbars: list[Crossbar] = []
        self._peripheries: list[Periphery] = []
        self._read_rngs: list[np.random.Generator] = []
        for index, layer in enumerate(network.layers):
            matrix = layer.weights
            if p.bias_in_crossbar:
                # The bias row is driven at full-scale input (u = 1), so it holds bias/input_range.
                matrix = np.hstack([matrix, layer.bias[:, None] / layer.input_range])
            self._crossbars.append(Crossbar(matrix, p, self._rng(index, _STREAM_CROSSBAR)))
            self._peripheries.append(Periphery(layer.n_out, p, self._rng(index, _STREAM_PERIPHERY)))
            self._read_rngs.append(self._rng(index, _STREAM_READS))
        self._faults = [(np.ones(layer.n_out), np.zeros(layer.n_out)) for layer in network.layers]
        self._cache_key: tuple[float, float] | None = None
        self._effective: list[np.ndarray] = []  # per layer (n_out, n_rows) matrix at the current state
        self._periphery_now: list[tuple[np.ndarray, np.ndarray]] = []

    def _rng(self, layer: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, layer, stream])

    # ----------------------------------------------------------------- clock
    @property
    def age_s(self) -> float:
        return self.clock.age_s

    @property
    def temperature_k(self) -> float:
        return self.clock.temperature_k

    def set_age(self, age_s: float) -> None:
        """Set the simulated age in seconds (a device is never redrawn)."""
        if age_s > HORIZON_S:
            raise ValueError(f"age must be within 0..{HORIZON_S:.4g} s (1000 years), got {age_s}")
        self.clock.set_age(age_s)

    def advance(self, dt_s: float) -> None:
        """Advance the simulated age by ``dt_s`` seconds."""
        if not dt_s >= 0:
            raise ValueError(f"time step must be a finite number of seconds >= 0, got {dt_s}")
        self.set_age(self.clock.age_s + dt_s)

    def set_temperature(self, temperature_k: float) -> None:
        """Operate at ``temperature_k`` from the current age on."""
        self.clock.set_temperature(temperature_k)

    # ---------------------------------------------------------------- state
    def _refresh(self) -> None:
        key = (self.clock.age_s, self.clock.drift_age_s, self.clock.temperature_k)
        if key == self._cache_key:
            return
        age, drift_age, temp = key
        self._effective = []
        self._periphery_now = []
        for crossbar, periphery in zip(self._crossbars, self._peripheries):
            g = crossbar.conductances_us(age, drift_age)
            self._effective.append((g[0] - g[1]) / self.params.g_max_us)
            self._periphery_now.append(periphery.gain_offset(drift_age, temp))
        self._cache_key = key

    def conductances_us(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """(programmed, current) conductances of ``layer`` in µS, each (2, n_out, n_rows)."""
        self._check_layer(layer)
        crossbar = self._crossbars[layer]
        return crossbar.g_prog_us.copy(), crossbar.conductances_us(self.clock.age_s, self.clock.drift_age_s)

    def conductance_ratio_median(self, layer: int) -> float:
        """Median of G(age)/G(programmed) over the devices of ``layer`` with G(programmed) > 0."""
        programmed, current = self.conductances_us(layer)
        alive = programmed > 0
        return float(np.median(current[alive] / programmed[alive]))

    def periphery(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """True per-column (gain, offset) of ``layer``'s periphery now; offset in output units.

        Ground truth for tests and benchmarks; a physical network has no such method.
        """
        self._check_layer(layer)
        self._refresh()
        gain, offset = self._periphery_now[layer]
        return gain.copy(), offset * self.network.layers[layer].output_range

    def inject_fault(self, layer: int, gain: np.ndarray | float = 1.0, offset: np.ndarray | float = 0.0) -> None:
        """Test rig: multiply ``layer``'s column gains by ``gain`` and add ``offset`` (output units).

        The fault acts at the ADC input, on top of the periphery's own
        ageing, and stays until replaced; ``inject_fault(layer)`` clears it.
        """
        self._check_layer(layer)
        spec = self.network.layers[layer]
        gain, offset = check_correction(spec.n_out, gain, offset)
        self._faults[layer] = (gain, offset / spec.output_range)

    def converters(self) -> list[Converters]:
        """Each layer's DAC and ADC: the layer's full scales and the device's resolutions."""
        p = self.params
        return [Converters(layer.input_range, p.dac_bits, layer.output_range, p.adc_bits)
                for layer in self.network.layers]

    # ------------------------------------------------------------- inference
    def _layer_hook(self, index: int, inputs: np.ndarray) -> np.ndarray:
        self._refresh()
        layer = self.network.layers[index]
        p = self.params
        u = quantize(inputs / layer.input_range, p.dac_bits)
        if p.bias_in_crossbar:
            u = np.hstack([u, np.ones((u.shape[0], 1))])
        crossbar = self._crossbars[index]
        # Normalized crossbar output in units of w_max, then in ADC full scales.
        adc_in = (u @ self._effective[index].T) * (layer.input_range * crossbar.w_max / layer.output_range)
        gain, offset = self._periphery_now[index]
        fault_gain, fault_offset = self._faults[index]
        adc_in = fault_gain * (gain * adc_in + offset) + fault_offset
        if p.output_noise_std > 0:
            adc_in = adc_in + p.output_noise_std * self._read_rngs[index].standard_normal(adc_in.shape)
        y = quantize(adc_in, p.adc_bits) * layer.output_range
        if not p.bias_in_crossbar:
            y = y + layer.bias
        return y
