"""The table of cases over the wire: the simulated PLC, driven cycle by cycle through OPC UA and through
Modbus TCP by plain clients, against a ``CorrectionBlock`` fed the same inputs (the reference every ladder
example implements). Every cycle's outputs must equal the reference's; each case also checks the behaviour
it is named after, so a PLC (or a wire) that gets it wrong fails the case.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pytest
from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient

from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.contract.logic import CorrectionBlock, CycleResult, Status
from plc_anna.contract.layout import MODBUS_TYPES
from plc_anna.simulated_plc.modbus import SimulatedPlcModbus, decode, encode
from plc_anna.simulated_plc.opcua import SimulatedPlcOpcUa
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.testing import free_port

LAYER, N, DT = 2, 4, 0.01  # the thermocouple's last layer: 4 outputs
#: Short ramps and a 10-cycle timeout keep every case a few dozen cycles long.
PARAMS = {"gain_min": 0.25, "gain_max": 4.0, "offset_min": -2.0, "offset_max": 2.0, "max_gain_step": 0.25,
          "max_offset_step": 0.5, "heartbeat_timeout_s": 0.1}
TIMEOUT_CYCLES = 10
OUTPUTS = ("RawOutputs", "CorrectedOutputs", "AppliedGain", "AppliedOffset", "AcceptedCommit", "PlcHeartbeat",
           "Status", "Fault")
A, B = [1.5, 0.75, 1.0, 2.0], [0.5, 1.25, 1.0, 1.5]


# ---------------------------------------------------------------- the two wires

class OpcUaWire:
    def __init__(self, server: SimulatedPlcOpcUa, client: Client) -> None:
        self.server, self.client = server, client

    async def write(self, items: dict) -> None:
        """One batched write, counter last (the writer's side of docs/plc-side.md)."""
        if not items:
            return
        nodes = [self.client.get_node(self.server.nodeid(LAYER, name)) for name in items]
        values = [ua.Variant([float(v) for v in value], ua.VariantType.Float) if isinstance(value, list)
                  else ua.Variant(value, ua.VariantType.UInt32) for value in items.values()]
        await self.client.write_values(nodes, values)

    async def read(self) -> dict:
        nodes = [self.client.get_node(self.server.nodeid(LAYER, name)) for name in OUTPUTS]
        return dict(zip(OUTPUTS, await self.client.read_values(nodes)))


class ModbusWire:
    def __init__(self, server: SimulatedPlcModbus, client: AsyncModbusTcpClient) -> None:
        self.server, self.client = server, client

    async def write(self, items: dict) -> None:
        """FC 16 per tag, in the order gain, offset, counter, heartbeat (ladder_examples/openplc)."""
        for name, value in items.items():
            reply = await self.client.write_registers(self.server.address(LAYER, name),
                                                      encode(value, MODBUS_TYPES[name]), device_id=1)
            assert not reply.isError(), (name, reply)

    async def read(self) -> dict:
        values = {}
        for name in OUTPUTS:
            count = 2 * (N if name.endswith(("Outputs", "Gain", "Offset")) else 1)
            reply = await self.client.read_holding_registers(self.server.address(LAYER, name), count=count,
                                                             device_id=1)
            assert not reply.isError(), (name, reply)
            value = decode(reply.registers, MODBUS_TYPES[name])
            values[name] = value if count > 2 else int(value[0])
        return values


@pytest.fixture(scope="module", params=["opcua", "modbus"])
def wire(request):
    """One server and one plain client per protocol for the whole table; each case cold-restarts the PLC."""
    loop = asyncio.new_event_loop()
    plc = SimulatedPlc(SimulatedNetwork("thermocouple", "pcm", seed=3), cycle_s=DT, **PARAMS)
    port = free_port()

    async def start():  # pymodbus objects need the running loop
        if request.param == "opcua":
            server = SimulatedPlcOpcUa(plc, f"opc.tcp://127.0.0.1:{port}", run_cycles=False)
            client = Client(f"opc.tcp://127.0.0.1:{port}")
        else:
            server = SimulatedPlcModbus(plc, f"modbus://127.0.0.1:{port}", run_cycles=False)
            client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await server.__aenter__()
        await client.connect()
        return server, client

    server, client = loop.run_until_complete(start())
    try:
        yield loop, (OpcUaWire(server, client) if request.param == "opcua" else ModbusWire(server, client))
    finally:
        if request.param == "opcua":
            loop.run_until_complete(client.disconnect())
        else:
            client.close()
        loop.run_until_complete(server.__aexit__(None, None, None))
        loop.close()


# ---------------------------------------------------------------- the driver

@dataclass(frozen=True)
class Tick:
    """What the client writes before each of ``cycles`` PLC cycles (the set and counter only before the first)."""

    gain: list | None = None
    offset: list | None = None
    counter: int | None = None
    beat: bool = True
    cycles: int = 1


def same(got: dict, want: CycleResult) -> None:
    for name, value in (("CorrectedOutputs", want.corrected_outputs), ("AppliedGain", want.applied_gain),
                        ("AppliedOffset", want.applied_offset)):
        np.testing.assert_array_equal(np.asarray(got[name], np.float32), value, err_msg=name)
    assert (got["AcceptedCommit"], got["PlcHeartbeat"], Status(got["Status"]), bool(got["Fault"])) == \
        (want.accepted_commit, want.plc_heartbeat, want.status, want.fault)


async def drive(link, ticks: list[Tick]) -> list[tuple[dict, CycleResult]]:
    """Cold-restart the PLC, then run ``ticks`` over the wire next to a reference block; (wire, reference) per cycle."""
    server = link.server
    server.plc.cold_restart()
    await server.step()  # the PLC's memory and the protocol's copy back at their initial values
    reference = CorrectionBlock(N, **PARAMS)
    tags = {"GainSet": np.ones(N, np.float32), "OffsetSet": np.zeros(N, np.float32), "CommitCounter": 0,
            "Heartbeat": 0}

    def run_reference(got: dict) -> CycleResult:
        return reference.cycle(np.asarray(got["RawOutputs"], np.float32), tags["GainSet"], tags["OffsetSet"],
                               tags["CommitCounter"], tags["Heartbeat"], DT)

    got = await link.read()
    same(got, run_reference(got))
    history = []
    for tick in ticks:
        for i in range(tick.cycles):
            items = {}
            if i == 0:
                items.update({name: value for name, value in (("GainSet", tick.gain), ("OffsetSet", tick.offset),
                                                               ("CommitCounter", tick.counter)) if value is not None})
            if tick.beat:
                items["Heartbeat"] = (tags["Heartbeat"] + 1) % 2**32
            await link.write(items)
            tags.update({name: np.asarray(value, np.float32) if isinstance(value, list) else value
                         for name, value in items.items()})
            await server.step()
            got = await link.read()
            want = run_reference(got)
            same(got, want)
            history.append((got, want))
    return history


def gains(entry) -> list[float]:
    return np.asarray(entry[0]["AppliedGain"], np.float32).tolist()


def f32(values) -> list[float]:
    return np.asarray(values, np.float32).tolist()


# ---------------------------------------------------------------- the cases

def case_accept_a_set(history):
    assert history[0][0]["AcceptedCommit"] == 1, "the set is taken in the cycle the counter changes (D7)"
    assert Status(history[0][0]["Status"]) == Status.RAMPING
    assert gains(history[0]) == f32([1.25, 0.75, 1.0, 1.25]), "ramping starts in that cycle"
    assert Status(history[-1][0]["Status"]) == Status.OK and gains(history[-1]) == f32(A)
    np.testing.assert_array_equal(np.asarray(history[-1][0]["AppliedOffset"], np.float32), f32([0.5, -0.5, 0, 0]))


def case_clamp_to_gain_max(history):
    assert gains(history[-1]) == f32([4.0, 0.25, 1.0, 1.0]), "9 clamps to GainMax 4, 0.1 to GainMin 0.25"
    np.testing.assert_array_equal(np.asarray(history[-1][0]["AppliedOffset"], np.float32), f32([2, -2, 0, 0]))
    assert Status(history[-1][0]["Status"]) == Status.OK


def case_ramp_step_limit(history):
    trail = [gains(entry)[0] for entry in history]
    assert trail[:4] == f32([1.25, 1.5, 1.75, 2.0]), "at most MaxGainStep per cycle"
    assert max(abs(b - a) for a, b in itertools.pairwise(trail)) <= 0.25
    assert trail.index(f32([3.0])[0]) == 7 and Status(history[6][0]["Status"]) == Status.RAMPING


def case_counter_wraps(history):
    assert history[0][0]["AcceptedCommit"] == 4294967295 and gains(history[5]) == f32(A)
    assert history[6][0]["AcceptedCommit"] == 0, "4294967295 -> 0 is an ordinary change (D8)"
    assert gains(history[-1]) == f32(B)


def case_arrays_without_counter_are_ignored(history):
    assert all(entry[0]["AcceptedCommit"] == 1 and gains(entry) == f32(A) for entry in history[6:])
    assert all(np.asarray(entry[0]["AppliedOffset"], np.float32).tolist() == f32([0.5, -0.5, 0, 0])
               for entry in history[6:])
    assert Status(history[-1][0]["Status"]) == Status.OK


def case_nan_rejected_whole(history):
    after = history[6:10]
    assert all(entry[0]["AcceptedCommit"] == 2 for entry in after), "a rejected set is still acknowledged (D5)"
    assert all(Status(entry[0]["Status"]) == Status.REJECTED for entry in after), "Status 3 latches (D6)"
    assert all(gains(entry) == f32(A) for entry in after), "no element of a rejected set is taken"
    assert Status(history[10][0]["Status"]) == Status.RAMPING and history[10][0]["AcceptedCommit"] == 3
    assert gains(history[-1]) == f32(B)


def case_heartbeat_stall_times_out_exactly(history):
    stalled = history[1:]
    faults = [bool(entry[0]["Fault"]) for entry in stalled]
    assert faults.index(True) == TIMEOUT_CYCLES - 1, "Fault in the 10th cycle without a heartbeat change (D1)"
    assert all(faults[TIMEOUT_CYCLES - 1:])
    held = gains(stalled[TIMEOUT_CYCLES - 1])
    assert held == f32([3.5, 1.0, 1.0, 1.0]), "ten steps of the ramp to 4, then the fault came"
    assert all(gains(entry) == held and Status(entry[0]["Status"]) == Status.HOLDING
               for entry in stalled[TIMEOUT_CYCLES - 1:]), "applied values hold in fault (D4)"


def case_no_set_taken_in_fault_then_recovery_order(history):
    # The cold restart's first cycle already counts toward the stall: Fault rises at history[8].
    assert bool(history[TIMEOUT_CYCLES - 2][0]["Fault"]) and not history[TIMEOUT_CYCLES - 3][0]["Fault"]
    in_fault = history[TIMEOUT_CYCLES - 1:TIMEOUT_CYCLES + 3]
    assert all(entry[0]["Fault"] for entry in in_fault)
    assert all(entry[0]["AcceptedCommit"] == 0 and gains(entry) == [1.0] * N for entry in in_fault), \
        "no set is taken while in fault (D4)"
    recovered = history[TIMEOUT_CYCLES + 3][0]
    # D3: the cycle in which the heartbeat moves clears Fault, takes the pending set and starts ramping.
    assert (bool(recovered["Fault"]), recovered["AcceptedCommit"], Status(recovered["Status"])) == \
        (False, 1, Status.RAMPING)
    assert np.asarray(recovered["AppliedGain"], np.float32).tolist() == f32([0.75, 1.25, 1.0, 1.25])


SET_A = Tick(gain=A, offset=[0.5, -0.5, 0.0, 0.0], counter=1)
CASES = {
    "accept a set": ([SET_A, Tick(cycles=6)], case_accept_a_set),
    "clamp to GainMax": ([Tick(gain=[9.0, 0.1, 1.0, 1.0], offset=[5.0, -5.0, 0.0, 0.0], counter=1), Tick(cycles=13)],
                         case_clamp_to_gain_max),
    "ramp step limit": ([Tick(gain=[3.0, 0.25, 1.0, 1.6], counter=1), Tick(cycles=9)], case_ramp_step_limit),
    "counter wrap": ([Tick(gain=A, counter=4294967295), Tick(cycles=5), Tick(gain=B, counter=0), Tick(cycles=6)],
                     case_counter_wraps),
    "arrays without counter ignored": ([SET_A, Tick(cycles=5), Tick(gain=B, offset=[1.0] * N), Tick(cycles=4)],
                                       case_arrays_without_counter_are_ignored),
    "NaN rejected whole": ([SET_A, Tick(cycles=5), Tick(gain=[math.nan, 2.0, 2.0, 2.0], counter=2), Tick(cycles=3),
                            Tick(gain=B, counter=3), Tick(cycles=6)], case_nan_rejected_whole),
    "heartbeat stall timeout": ([Tick(gain=[4.0, 1.0, 1.0, 1.0], counter=1),
                                 Tick(beat=False, cycles=TIMEOUT_CYCLES + 3)], case_heartbeat_stall_times_out_exactly),
    "no set in fault, recovery order": ([Tick(beat=False, cycles=TIMEOUT_CYCLES),
                                         Tick(gain=B, counter=1, beat=False), Tick(beat=False, cycles=2),
                                         Tick(beat=True)], case_no_set_taken_in_fault_then_recovery_order),
}


@pytest.mark.parametrize("name", CASES)
def test_case_over_the_wire(wire, name):
    loop, link = wire
    ticks, check = CASES[name]
    history = loop.run_until_complete(drive(link, ticks))
    check(history)


def test_each_case_can_fail(wire):
    """A PLC that skipped the commit step would fail: the reference disagrees with a block that takes no set."""
    loop, link = wire
    history = loop.run_until_complete(drive(link, CASES["accept a set"][0]))
    broken = [({**got, "AcceptedCommit": 0}, want) for got, want in history]
    with pytest.raises(AssertionError):
        case_accept_a_set(broken)
    with pytest.raises(AssertionError):
        same(*broken[0])
