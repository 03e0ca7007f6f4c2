"""A physical analog network wired to a PLC, observed through the PLC's tags.

The network's weights come from the network file (what was programmed); its
live inputs and raw outputs come from the PLC, every scan, through the tag map:
each mapped layer's ``inputs`` and ``raw_outputs`` (one sample per read), or
its trace ring buffer (``trace_inputs``, ``trace_raw_outputs``, ``trace_count``:
every PLC cycle since the last read, up to half the ring). The PLC link reads the tags
(:meth:`PlcObservedNetwork.observed_tags`) and hands the values to
:meth:`PlcObservedNetwork.feed`; the scan takes the samples gathered since
with :meth:`PlcObservedNetwork.scan_samples`.

Such a network cannot run an inference on inputs of our choosing: the plant
chooses them. Every layer must be mapped, and every layer's correction is
applied by the PLC (sink ``plc``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from plc_anna.converters import Converters
from plc_anna.device.base import AnalogNetwork, LayerTrace
from plc_anna.device.network import Network, load_network
from plc_anna.contract.counters import UDINT_MODULUS
from plc_anna.contract.tagmap import Tag, TagMap, load_tag_map

#: Samples kept between two scans at most (older ones are dropped and counted).
BUFFER_SAMPLES = 65536


class PlcObservedNetwork(AnalogNetwork):
    """A network whose process data are read from a PLC.

    Parameters
    ----------
    network
        The programmed network (a :class:`Network`, a shipped name or a ``.npz`` path).
    tag_map
        The tag map (a :class:`TagMap` or a path); it must map every layer of the network,
        and give the device's age by a ``device.age_s`` tag or ``device.programmed_at``.
    """

    observes_process = True

    def __init__(self, network: Network | str | Path, tag_map: TagMap | str | Path) -> None:
        network = network if isinstance(network, Network) else load_network(network)
        tag_map = tag_map if isinstance(tag_map, TagMap) else load_tag_map(tag_map)
        super().__init__(network, sinks=("plc",) * len(network.layers))
        tag_map.check_network([(layer.n_in, layer.n_out) for layer in network.layers])
        mapped = {layer.index for layer in tag_map.layers}
        missing = [str(k) for k in range(len(network.layers)) if k not in mapped]
        if missing:
            raise ValueError(f"{tag_map.source}: a PLC-observed network needs every layer mapped; "
                             f"layer(s) {', '.join(missing)} of {network.name!r} are not")
        if tag_map.device.age_s is None and tag_map.device.programmed_at is None:
            raise ValueError(f"{tag_map.source}: give the network's age: a device.age_s tag or "
                             "device.programmed_at")
        self.tag_map = tag_map
        self._layers = sorted(tag_map.layers, key=lambda layer: layer.index)
        self._lock = threading.Lock()
        self._samples: list[deque] = [deque() for _ in self._layers]
        self._last_count: list[int | None] = [None] * len(self._layers)
        self._last_read_at: list[float] = [0.0] * len(self._layers)
        self._row_rate: list[float | None] = [None] * len(self._layers)   # trace rows the PLC writes a second
        self.unsafe_reads = 0
        """Reads that took so long the PLC could have written over every row: their rows were dropped."""
        self._last_row: list[tuple[bytes, bytes] | None] = [None] * len(self._layers)
        self._age_s: float | None = None   # the PLC's age tag, once read
        self._temperature_k = tag_map.device.temperature
        self.samples_lost = 0
        """Samples the PLC's trace overwrote before they were read, or the buffer dropped."""

    # ----------------------------------------------------------------- clock
    @property
    def age_s(self) -> float:
        """Seconds since programming: from ``programmed_at``, or the PLC's age tag (NaN until first read)."""
        if self.tag_map.device.age_s is None:
            return time.time() - self.tag_map.device.programmed_at
        return math.nan if self._age_s is None else self._age_s

    @property
    def temperature_k(self) -> float:
        return self._temperature_k

    # ------------------------------------------------------------ observing
    def observed_tags(self) -> list[Tag]:
        """The tags to read every scan, in the order :meth:`feed` expects their values.

        With a trace, ``trace_count`` comes before the rows, and must be read before them (over Modbus:
        map it at a lower register, as the simulated PLC does): only rows of the newest half of the
        ring count, since the PLC may write over the oldest while a read of several requests runs.
        Read at least twice per ``trace_length / 2`` samples, or samples are lost (:attr:`samples_lost`).
        """
        tags: list[Tag] = []
        for layer in self._layers:
            if layer.trace_length:
                tags += [layer.trace_count, layer.trace_inputs, layer.trace_raw_outputs]
            else:
                tags += [layer.inputs, layer.raw_outputs]
        device = self.tag_map.device
        return tags + [tag for tag in (device.age_s, device.temperature_k) if tag is not None]

    def feed(self, values: list, read_s: float = 0.0) -> None:
        """Take one read of :meth:`observed_tags` that took ``read_s`` seconds: new samples join the buffer
        (thread-safe)."""
        k = 0
        rows: list[list[tuple[np.ndarray, np.ndarray]]] = []
        for i, layer in enumerate(self._layers):
            if layer.trace_length:
                count, inputs, raw = int(values[k]), values[k + 1], values[k + 2]
                k += 3
                rows.append(self._trace_rows(i, layer.trace_length, count, np.asarray(inputs),
                                             np.asarray(raw), layer.n_in, layer.n_out, read_s))
            else:
                inputs, raw = np.asarray(values[k], dtype=float), np.asarray(values[k + 1], dtype=float)
                k += 2
                key = (inputs.tobytes(), raw.tobytes())
                # A PLC that has not cycled since the last read shows the same sample: count it once.
                rows.append([] if key == self._last_row[i] else [(inputs, raw)])
                self._last_row[i] = key
        device = self.tag_map.device
        if device.age_s is not None:
            self._age_s = float(values[k])
            k += 1
        if device.temperature_k is not None:
            self._temperature_k = float(values[k])
        with self._lock:
            for buffer, new in zip(self._samples, rows, strict=True):
                buffer.extend(new)
                while len(buffer) > BUFFER_SAMPLES:
                    buffer.popleft()
                    self.samples_lost += 1

    def _trace_rows(self, i: int, length: int, count: int, inputs: np.ndarray, raw: np.ndarray,
                    n_in: int, n_out: int, read_s: float) -> list[tuple[np.ndarray, np.ndarray]]:
        last, last_at = self._last_count[i], self._last_read_at[i]
        now = time.monotonic()
        self._last_count[i], self._last_read_at[i] = count, now
        if last is None:
            return []       # the first read only sets the position: older rows may predate this link
        new = (count - last) % UDINT_MODULUS
        if now > last_at:
            rate = new / (now - last_at)
            self._row_rate[i] = rate if self._row_rate[i] is None else 0.8 * self._row_rate[i] + 0.2 * rate
        # The count is read before the rows; a read of several requests (Modbus) lets the PLC write on
        # meanwhile, over the oldest rows of the ring: a row whose slot may have been written again during
        # the read would pair one cycle's inputs with another's outputs. Only rows the PLC cannot have
        # reached (at its measured row rate, with half again as margin) count, and at most half the ring.
        during = math.ceil(1.5 * (self._row_rate[i] or 0.0) * max(read_s, 0.0)) + 1
        usable = min(length // 2, length - during)
        if usable < 1:
            self.samples_lost += new
            self.unsafe_reads += 1
            return []
        if new > usable:
            self.samples_lost += new - usable
            new = usable
        inputs, raw = inputs.reshape(length, n_in), raw.reshape(length, n_out)
        return [(inputs[s % length].astype(float), raw[s % length].astype(float))
                for s in range(count - new, count)]

    def converters(self) -> list[Converters | None]:
        """Each layer's DAC and ADC when the tag map's ``[device]`` gives their bits (full scales: the
        network file's ranges); else unknown."""
        device = self.tag_map.device
        if device.dac_bits is None or device.adc_bits is None:
            return [None] * len(self.network.layers)
        return [Converters(layer.input_range, device.dac_bits, layer.output_range, device.adc_bits)
                for layer in self.network.layers]

    def scan_samples(self, n: int, rng: np.random.Generator) -> list[LayerTrace] | None:
        """The samples gathered since the last scan (at most ``BUFFER_SAMPLES``); None for none.

        However few they are: the compensator pools them into windows of its own size.

        ``n`` and ``rng`` are the simulated process's knobs; the plant sets the pace here.
        """
        with self._lock:
            available = min(len(buffer) for buffer in self._samples)
            if available < 1:
                return None
            taken = [[buffer.popleft() for _ in range(available)] for buffer in self._samples]
        return [LayerTrace(inputs=np.array([row[0] for row in rows]), outputs=np.array([row[1] for row in rows]))
                for rows in taken]

    def _layer_hook(self, index: int, inputs: np.ndarray) -> np.ndarray:
        raise ValueError("a PLC-observed network cannot run an inference on chosen inputs: the plant chooses "
                         "them; its samples come from the PLC (scan_samples)")
