"""The simulated PLC: the program a controller runs with one ``FB_AnnaCorrection`` per layer.

:class:`SimulatedPlc` is protocol independent: its tags are numpy arrays and
integers in the object, and the servers (:mod:`plc_anna.simulated_plc.opcua`,
:mod:`plc_anna.simulated_plc.modbus`) only copy them in and out around each cycle.
The tags live where :class:`~plc_anna.contract.layout.PlcLayout` says, the
layout generated PLC code uses too (:meth:`SimulatedPlc.layout`,
:meth:`SimulatedPlc.tag_map`); the cycle task both servers share is
:class:`~plc_anna.simulated_plc.server.SimulatedPlcServer`.
``docs/simulated-plc.md`` describes the layouts, the trace ring buffer and the
restart semantics.

Each cycle draws one process row ``x`` from the network's held-out data and runs
the chain ``a_0 = x``, ``raw_k = read_layer(k, a_k)``, ``corrected_k = block_k(raw_k)``,
``a_{k+1} = activate(corrected_k)``: every layer is corrected in the PLC.

Examples
--------
>>> from plc_anna.device.simulated import SimulatedNetwork
>>> plc = SimulatedPlc(SimulatedNetwork("thermocouple", "pcm", seed=0), trace_length=4)
>>> plc.set_tag(2, "GainSet", [1.1, 1.0, 1.0, 0.9])
>>> plc.set_tag(2, "CommitCounter", 1)
>>> plc.set_tag(2, "Heartbeat", 1)
>>> for _ in range(5):
...     plc.cycle()
>>> tags = plc.tags(2)
>>> tags["AcceptedCommit"], Status(tags["Status"]).name, tags["AppliedGain"].astype(float).round(6).tolist()
(1, 'RAMPING', [1.1, 1.0, 1.0, 0.9])
>>> plc.cycle()
>>> Status(plc.tags(2)["Status"]).name, plc.tags(2)["TraceCount"], plc.tags(2)["TraceRawOutputs"].shape
('OK', 6, (16,))

REAL rounding: 1.0 + 5 x 0.02 ends at 1.0999999, the sixth cycle lands on 1.1 (docs/plc-side.md).
The trace keeps the last 4 of the 6 samples: 4 rows x 4 outputs.
"""

from __future__ import annotations

import math

import numpy as np

from plc_anna.contract.counters import UDINT_MODULUS
from plc_anna.contract.layout import LAYER_TAGS, TARGETS, WRITTEN_TAGS, PlcLayout
from plc_anna.contract.logic import DEFAULTS, CorrectionBlock, Status
from plc_anna.contract.tagmap import LinkSettings, TagMap
from plc_anna.device.base import AnalogNetwork
from plc_anna.device.crossbar import HORIZON_S
from plc_anna.device.network import activate, digital_forward

PASSWORD_ENV = "PLC_ANNA_PLC_PASSWORD"  #: the environment variable a tag map names for the PLC password


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class _Layer:
    """One layer's block, tags and trace ring."""

    def __init__(self, n_in: int, n_out: int, trace_length: int, block_args: dict) -> None:
        self.n_in, self.n_out = n_in, n_out
        self.block = CorrectionBlock(n_out, **block_args)
        self.ring_in = np.zeros((trace_length, n_in), np.float32)
        self.ring_out = np.zeros((trace_length, n_out), np.float32)
        self.count = 0  # samples ever recorded, not wrapped
        zeros_out = np.zeros(n_out, np.float32)
        # The GVL's initial values: identity in the set, counters 0 (CommitCounter = AcceptedCommit: no set).
        self.tags: dict[str, np.ndarray | int | bool] = {
            "GainSet": np.ones(n_out, np.float32), "OffsetSet": zeros_out.copy(), "CommitCounter": 0,
            "Heartbeat": 0, "AcceptedCommit": 0, "PlcHeartbeat": 0, "Status": int(Status.OK), "Fault": False,
            "RawOutputs": zeros_out.copy(), "CorrectedOutputs": zeros_out.copy(),
            "AppliedGain": np.ones(n_out, np.float32), "AppliedOffset": zeros_out.copy(),
            "Inputs": np.zeros(n_in, np.float32), "TraceCount": 0,
            "TraceInputs": self.ring_in.reshape(-1), "TraceRawOutputs": self.ring_out.reshape(-1)}  # live views


class SimulatedPlc:
    """A PLC program correcting every layer of a simulated network, cycle by cycle.

    Parameters
    ----------
    net
        The analog network (the hardware); its ``network.X`` is the process data.
    cycle_s
        The task interval ``dt`` the blocks are called with (``CycleTime``).
    trace_length
        Rows of each layer's trace ring buffer of (Inputs, RawOutputs).
    age_rate
        Simulated device seconds per real second: each cycle first ages the network by
        ``age_rate * cycle_s`` (up to the device model's 1000-year horizon). 0 stops its clock.
    seed
        Seed of the process-row draws.
    samples_per_cycle
        Process samples taken each cycle, as an oversampling input card delivers them: every one
        goes through the network and into the trace; the blocks and the scalar tags (``Inputs``,
        ``RawOutputs``, ``CorrectedOutputs``) take the newest. Each sample's next-layer input is
        corrected with the block's applied gain and offset of this cycle.
    gain_min, gain_max, offset_min, offset_max, max_gain_step, max_offset_step, heartbeat_timeout_s
        The blocks' parameters (:class:`~plc_anna.contract.logic.CorrectionBlock`), the same for every layer.

    Attributes
    ----------
    cycles : int
        Cycles run since construction.
    cold_restarts : int
        Calls of :meth:`cold_restart`; the servers watch it to reset the written tags they hold.
    last_ideal : numpy.ndarray or None
        The ideal digital outputs of the last layer for the last cycle's ``x`` (no analog error), for demos.

    Raises
    ------
    ValueError
        For parameters out of range or a network without held-out data to draw from.
    """

    def __init__(self, net: AnalogNetwork, *, cycle_s: float = DEFAULTS.cycle_s, trace_length: int = 64,
                 age_rate: float = 0.0, seed: int = 0, samples_per_cycle: int = 1,
                 gain_min: float = DEFAULTS.gain_min, gain_max: float = DEFAULTS.gain_max,
                 offset_min: float = DEFAULTS.offset_min, offset_max: float = DEFAULTS.offset_max,
                 max_gain_step: float = DEFAULTS.max_gain_step, max_offset_step: float = DEFAULTS.max_offset_step,
                 heartbeat_timeout_s: float = DEFAULTS.heartbeat_timeout_s) -> None:
        if not isinstance(net, AnalogNetwork):
            raise ValueError(f"net must be an analog network (e.g. a SimulatedNetwork), got {type(net).__name__}")
        if net.network.X is None or len(net.network.X) == 0:
            raise ValueError(f"network {net.network.name!r} has no held-out X to draw process rows from")
        self.cycle_s = float(cycle_s)
        if not (math.isfinite(self.cycle_s) and self.cycle_s > 0):
            raise ValueError(f"cycle_s must be a positive number of seconds, got {cycle_s!r}")
        if not _is_int(trace_length) or trace_length < 1:
            raise ValueError(f"trace_length must be an integer >= 1, got {trace_length!r}")
        self.age_rate = float(age_rate)
        if not (math.isfinite(self.age_rate) and self.age_rate >= 0):
            raise ValueError(f"age_rate must be a finite number >= 0, got {age_rate!r}")
        if self.age_rate > 0 and not hasattr(net, "set_age"):
            raise ValueError(f"age_rate > 0 needs a network with its own clock (set_age); {type(net).__name__} "
                             "has none")
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not _is_int(samples_per_cycle) or samples_per_cycle < 1:
            raise ValueError(f"samples_per_cycle must be an integer >= 1, got {samples_per_cycle!r}")
        self.samples_per_cycle = int(samples_per_cycle)
        self.net, self.trace_length, self.seed = net, int(trace_length), int(seed)
        self._block_args = {"gain_min": gain_min, "gain_max": gain_max, "offset_min": offset_min,
                            "offset_max": offset_max, "max_gain_step": max_gain_step,
                            "max_offset_step": max_offset_step, "heartbeat_timeout_s": heartbeat_timeout_s}
        self._rng = np.random.default_rng(self.seed)
        self.cycles = 0
        self.cold_restarts = 0
        self.last_ideal: np.ndarray | None = None
        self._layers = self._new_layers()  # checks the block parameters too

    def _new_layers(self) -> list[_Layer]:
        return [_Layer(spec.n_in, spec.n_out, self.trace_length, self._block_args) for spec in self.net.network.layers]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(n_in, n_out) per layer."""
        return [(layer.n_in, layer.n_out) for layer in self._layers]

    @property
    def n_layers(self) -> int:
        return len(self._layers)

    def block(self, layer: int) -> CorrectionBlock:
        """The correction block of ``layer`` (its internal state: targets, stall timer)."""
        return self._layers[self._index(layer)].block

    # ---------------------------------------------------------------- tags
    def tags(self, layer: int) -> dict[str, np.ndarray | int | bool]:
        """The tags of ``layer`` by GVL name: float32 arrays, ``int`` counters and Status, ``bool`` Fault.

        The arrays are the PLC's memory (the trace arrays are live views of the ring): read them,
        write through :meth:`set_tag`.
        """
        return dict(self._layers[self._index(layer)].tags)

    def device_tags(self) -> dict[str, float]:
        """``DeviceAge`` (s) and ``DeviceTemperature`` (K) of the network now."""
        return {"DeviceAge": float(self.net.age_s), "DeviceTemperature": float(self.net.temperature_k)}

    def set_tag(self, layer: int, name: str, value) -> None:
        """Store a written tag as the PLC stores it: GainSet/OffsetSet as REAL, the counters as UDINT.

        Raises
        ------
        ValueError
            For a read-only or unknown tag, an array of the wrong length, or a counter outside 0..2**32-1.
        """
        entry = self._layers[self._index(layer)]
        if name not in WRITTEN_TAGS:
            raise ValueError(f"{name!r} is not a written tag; the client writes {', '.join(WRITTEN_TAGS)}")
        if LAYER_TAGS[name][0] == "REAL":
            array = np.asarray(value, dtype=np.float64)
            if array.shape != (entry.n_out,):
                raise ValueError(f"layer {layer} {name} takes {entry.n_out} values, got shape {array.shape}")
            with np.errstate(over="ignore"):  # beyond the REAL range is inf, as the PLC stores it
                entry.tags[name] = array.astype(np.float32)
        else:
            if not _is_int(value) or not 0 <= value < UDINT_MODULUS:
                raise ValueError(f"layer {layer} {name} is a UDINT (0..4294967295), got {value!r}")
            entry.tags[name] = int(value)

    def _index(self, layer: int) -> int:
        if not _is_int(layer) or not 0 <= layer < len(self._layers):
            raise ValueError(f"layer must be within 0..{len(self._layers) - 1}, got {layer!r}")
        return int(layer)

    # ---------------------------------------------------------------- the cycle
    def cycle(self) -> None:
        """One PLC cycle: age the network, draw a process row, run the chain of blocks, record the trace."""
        if self.age_rate > 0:
            self.net.set_age(min(self.net.age_s + self.age_rate * self.cycle_s, HORIZON_S))
        network = self.net.network
        X = network.X[self._rng.integers(len(network.X), size=self.samples_per_cycle)]
        a = X
        for k, (entry, spec) in enumerate(zip(self._layers, network.layers)):
            raw = self.net.read_layer(k, a)
            tags = entry.tags
            # The block runs once per cycle on the newest sample, as the ladder examples do.
            result = entry.block.cycle(raw[-1], tags["GainSet"], tags["OffsetSet"], tags["CommitCounter"],
                                       tags["Heartbeat"], self.cycle_s)
            inputs, raw32 = a.astype(np.float32), raw.astype(np.float32)
            tags.update(Inputs=inputs[-1], RawOutputs=raw32[-1], CorrectedOutputs=result.corrected_outputs,
                        AppliedGain=result.applied_gain, AppliedOffset=result.applied_offset,
                        AcceptedCommit=result.accepted_commit, PlcHeartbeat=result.plc_heartbeat,
                        Status=int(result.status), Fault=bool(result.fault))
            for row_in, row_out in zip(inputs, raw32):
                row = entry.count % self.trace_length  # sample s lives in row s % trace_length
                entry.ring_in[row], entry.ring_out[row] = row_in, row_out
                entry.count += 1
            tags["TraceCount"] = entry.count % UDINT_MODULUS
            with np.errstate(over="ignore", invalid="ignore"):  # REAL arithmetic, as the block's output step
                corrected = result.applied_gain * raw32 + result.applied_offset
            a = activate(corrected.astype(np.float64), spec.activation)
        self.last_ideal = digital_forward(network, X[-1:])[0]
        self.cycles += 1

    def cold_restart(self) -> None:
        """A PLC cold restart: every tag back to its initial value (D10: nothing is RETAIN).

        The blocks start from identity with ``AcceptedCommit = 0``, the written tags from the GVL's
        initial values (GainSet 1, OffsetSet 0, counters 0), the trace rings are cleared and
        ``TraceCount`` is 0. The network (the hardware, its age) and the process-row draws go on.
        """
        self._layers = self._new_layers()
        self.cold_restarts += 1

    # ---------------------------------------------------------------- the tag map
    def layout(self, target: str = "codesys") -> PlcLayout:
        """Where this PLC's tags are for a PLC family (``openplc``: the Modbus registers)."""
        return PlcLayout(tuple(self.shapes), self.trace_length, target)

    def tag_map(self, protocol: str, endpoint: str, *, target: str | None = None, word_order: str = "big",
                user: str | None = None, password_env: str | None = None,
                link: LinkSettings | None = None) -> TagMap:
        """The tag map a client needs for this PLC over ``protocol`` at ``endpoint``.

        Every layer with all required roles, ``applied_gain``, ``applied_offset``,
        ``corrected_outputs`` and the trace; the device tags ``age_s`` and ``temperature_k``.
        ``target`` is the address style of an OPC UA PLC (``codesys``, ``twincat``, ``s7-1500``;
        default ``codesys``); Modbus is OpenPLC's. With a ``user``, the password is read from
        ``password_env`` (default ``PLC_ANNA_PLC_PASSWORD``).
        """
        if protocol not in ("opcua", "modbus"):
            raise ValueError(f"protocol must be 'opcua' or 'modbus', got {protocol!r}")
        target = "openplc" if protocol == "modbus" else (target or "codesys")
        if TARGETS.get(target) != protocol:
            raise ValueError(f"target {target!r} is not reached over {protocol}")
        return self.layout(target).tag_map(
            endpoint, network=self.net.network.name, word_order=word_order, user=user,
            password_env=password_env or PASSWORD_ENV, link=link, temperature=float(self.net.temperature_k),
            source=f"simulated PLC at {endpoint}")


__all__ = ["PASSWORD_ENV", "SimulatedPlc"]
