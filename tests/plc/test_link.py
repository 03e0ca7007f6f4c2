"""The PLC link against the simulated PLC, over real OPC UA and real Modbus TCP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import numpy as np
import pytest

from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.plc.link import PlcLink
from plc_anna.contract.tagmap import LinkSettings
from plc_anna.simulated_plc.modbus import SimulatedPlcModbus
from plc_anna.simulated_plc.opcua import SimulatedPlcOpcUa
from plc_anna.simulated_plc.program import SimulatedPlc
from plc_anna.testing import free_port

FAST = LinkSettings(deadband=0.0, min_commit_interval_s=0.0, max_gain_step=0.5, commit_timeout_s=1.0,
                    reconnect_min_s=0.05, reconnect_max_s=0.2)
LAST = 2  # thermocouple: three layers, the last has 4 outputs


class RecordingPlc(SimulatedPlc):
    """Keeps the last layer's applied gains of every PLC cycle while ``applied`` is a list, and its
    (Heartbeat, Fault) while ``beats`` is."""

    applied: list | None = None
    beats: list | None = None

    def cycle(self) -> None:
        super().cycle()
        if self.applied is not None:
            self.applied.append(self.tags(LAST)["AppliedGain"].copy())
        if self.beats is not None:
            self.beats.append((self.tags(LAST)["Heartbeat"], self.tags(LAST)["Fault"]))


def make_plc(**kwargs) -> RecordingPlc:
    return RecordingPlc(SimulatedNetwork("thermocouple", "ideal", seed=0), cycle_s=0.01, trace_length=4, **kwargs)


@contextlib.asynccontextmanager
async def plc_and_link(protocol: str, settings: LinkSettings = FAST, run_cycles: bool = True, **server):
    plc = make_plc()
    scheme = "opc.tcp" if protocol == "opcua" else "modbus"
    endpoint = f"{scheme}://127.0.0.1:{free_port()}"
    cls = SimulatedPlcOpcUa if protocol == "opcua" else SimulatedPlcModbus
    async with cls(plc, endpoint, run_cycles=run_cycles, **server) as served:
        events = []
        link = PlcLink(plc.tag_map(protocol, endpoint, link=settings), on_event=events.append)
        try:
            yield plc, served, link, events
        finally:
            await link.close()


async def cycles(link: PlcLink, n: int, period_s: float = 0.01) -> None:
    for _ in range(n):
        await link.cycle()
        await asyncio.sleep(period_s)


def slow_set_writes(link: PlcLink, delay_s: float) -> asyncio.Event:
    """Every write that carries a set waits ``delay_s`` before it goes out (a slow PLC); the event is set
    when the first one starts."""
    write, gain_set, writing = link.transport._write_hook, link.layers[LAST].tags.gain_set, asyncio.Event()

    async def slow(items):
        if any(tag == gain_set for tag, _ in items):
            writing.set()
            await asyncio.sleep(delay_s)
        await write(items)

    link.transport._write_hook = slow
    return writing


def kinds(events) -> list[str]:
    return [event.kind for event in events]


@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
def test_a_set_is_written_verified_accepted_and_applied(protocol):
    async def main():
        gain, offset = np.array([1.1, 0.9, 1.3, 1.0]), np.array([0.5, -0.25, 0.0, 2.0])
        async with plc_and_link(protocol) as (plc, _, link, events):
            link.set_target(LAST, gain, offset)
            await cycles(link, 30)
            tags = plc.tags(LAST)
            written_gain, written_offset, counter = link.last_good(LAST)
            assert counter == tags["AcceptedCommit"] == 1 and link.sets_written == 1
            np.testing.assert_array_equal(tags["GainSet"], gain.astype(np.float32))
            np.testing.assert_array_equal(written_offset, offset.astype(np.float32))
            np.testing.assert_array_equal(tags["AppliedGain"], gain.astype(np.float32))   # ramped in by now
            assert tags["Status"] == 0 and not tags["Fault"]
            assert plc.tags(0)["AcceptedCommit"] == 0            # no target for layer 0: nothing written there
            assert link.heartbeat >= 30 and link.missed_heartbeats == 0 and link.connected
            assert events == [] and link.last_error == ""
            assert len(link.write_s) == 1 and len(link.verify_s) == 1 and len(link.heartbeat_s) >= 29
    asyncio.run(main())


def test_one_set_in_flight_the_counter_steps_by_one_and_the_slew_limit_holds():
    async def main():
        settings = LinkSettings(deadband=0.0, min_commit_interval_s=0.0, max_gain_step=0.05)
        async with plc_and_link("modbus", settings, run_cycles=False) as (plc, served, link, _):
            link.set_target(LAST, np.full(4, 1.2), np.zeros(4))
            await link.cycle()                    # writes set 1: one slew step of 0.05
            assert link.sets_written == 1 and link.last_good(LAST)[2] == 0     # read back next cycle
            await link.cycle()                    # the read-back makes it last-good
            assert link.last_good(LAST)[2] == 1
            np.testing.assert_allclose(link.last_good(LAST)[0], 1.05, rtol=1e-6)
            await cycles(link, 3, 0.0)            # the PLC has not cycled: set 1 is not accepted yet
            assert link.sets_written == 1
            await served.step()                   # the PLC takes set 1
            assert plc.tags(LAST)["AcceptedCommit"] == 1
            await link.cycle()                    # reads AcceptedCommit 1 ...
            await link.cycle()                    # ... and writes set 2, the next step
            assert link.sets_written == 2
            await served.step()
            assert plc.tags(LAST)["CommitCounter"] == 2 == plc.tags(LAST)["AcceptedCommit"]
            np.testing.assert_allclose(plc.tags(LAST)["GainSet"], 1.10, rtol=1e-6)
    asyncio.run(main())


def test_the_deadband_and_the_rate_limit_hold_sets_back():
    async def main():
        settings = LinkSettings(deadband=0.01, min_commit_interval_s=0.3, max_gain_step=1.0)
        async with plc_and_link("modbus", settings) as (plc, _, link, _):
            link.set_target(LAST, np.full(4, 1.005), np.zeros(4))      # inside the deadband
            await cycles(link, 10)
            assert link.sets_written == 0
            link.set_target(LAST, np.full(4, 1.5), np.zeros(4))
            await cycles(link, 5)
            assert link.sets_written == 1
            link.set_target(LAST, np.full(4, 2.0), np.zeros(4))
            start = time.monotonic()
            while link.sets_written < 2:
                await cycles(link, 1)
            assert time.monotonic() - start >= 0.2       # no second set within min_commit_interval_s
    asyncio.run(main())


def test_a_stalled_heartbeat_makes_the_plc_hold_and_the_link_reports_it():
    async def main():
        async with plc_and_link("modbus") as (plc, _, link, events):
            link.set_target(LAST, np.full(4, 1.2), np.zeros(4))
            await cycles(link, 20)
            held = plc.tags(LAST)["AppliedGain"].copy()
            await asyncio.sleep(0.7)                      # plc-anna stops: the heartbeat stalls past 0.5 s
            assert plc.tags(LAST)["Fault"] and plc.tags(LAST)["Status"] == 2
            np.testing.assert_array_equal(plc.tags(LAST)["AppliedGain"], held)
            await link.cycle(heartbeat=False)  # a read with no heartbeat first: the PLC cannot clear its fault
            assert "plc_fault" in kinds(events)    # between this cycle's write and its read
            await cycles(link, 10)                        # the heartbeat moves again: the PLC clears its fault
            assert not plc.tags(LAST)["Fault"] and "plc_fault_cleared" in kinds(events)
    asyncio.run(main())


@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
def test_a_plc_restart_is_ridden_through_without_a_bump(protocol):
    async def main():
        async with plc_and_link(protocol) as (plc, served, link, events):
            link.set_target(LAST, np.array([1.3, 0.8, 1.1, 1.0]), np.zeros(4))
            await cycles(link, 30)
            plc.applied = [plc.tags(LAST)["AppliedGain"].copy()]   # from now on, every PLC cycle's gains
            counter = link.last_good(LAST)[2]
            restart = asyncio.create_task(served.restart(0.6))
            link.set_target(LAST, np.array([1.35, 0.75, 1.1, 1.0]), np.zeros(4))  # the compensator moves on
            while not restart.done() or not link.connected:
                await cycles(link, 1)
            assert kinds(events)[:2] == ["link_lost", "link_restored"] and link.reconnects == 1
            assert served.endpoint in events[0].message and "holding the last-good set" in events[0].message
            await cycles(link, 30)
            assert link.last_good(LAST)[2] > counter            # writing resumed after the restart
            steps = [float(np.max(np.abs(b - a))) for a, b in itertools.pairwise(plc.applied)]
            assert max(steps) <= 0.02 + 1e-6                    # never more than the PLC's own ramp step
            np.testing.assert_allclose(plc.tags(LAST)["AppliedGain"], [1.35, 0.75, 1.1, 1.0], rtol=1e-6)
    asyncio.run(main())


def test_a_cold_restart_is_noticed_and_writing_resumes_from_what_the_plc_applies():
    async def main():
        settings = LinkSettings(deadband=0.0, min_commit_interval_s=0.0, max_gain_step=0.1)
        async with plc_and_link("modbus", settings) as (plc, _, link, events):
            link.set_target(LAST, np.full(4, 1.3), np.zeros(4))
            await cycles(link, 30)
            assert link.last_good(LAST)[0][0] == np.float32(1.3)
            plc.cold_restart()                      # identity, AcceptedCommit 0
            await cycles(link, 2)
            assert "set_lost" in kinds(events)
            first = plc.tags(LAST)["GainSet"].copy()
            assert first[0] <= np.float32(1.1) + 1e-6   # from the PLC's identity, one slew step at a time
            await cycles(link, 40)
            np.testing.assert_allclose(plc.tags(LAST)["AppliedGain"], 1.3, rtol=1e-6)
    asyncio.run(main())


def test_an_unreachable_plc_is_an_event_and_a_clear_error_never_an_exception():
    async def main():
        plc = make_plc()
        endpoint = f"modbus://127.0.0.1:{free_port()}"
        events = []
        link = PlcLink(plc.tag_map("modbus", endpoint, link=FAST), on_event=events.append)
        link.set_target(LAST, np.full(4, 1.1), np.zeros(4))
        await cycles(link, 5)
        assert kinds(events) == ["link_lost"] and not link.connected
        assert endpoint in link.last_error and "connection refused" in link.last_error
        assert link.missed_heartbeats == 5 and link.sets_written == 0
        await link.close()
    asyncio.run(main())


def test_wrong_credentials_are_named():
    async def main():
        async with plc_and_link("opcua", user="operator", password="right") as (plc, served, _, _):
            tag_map = plc.tag_map("opcua", served.endpoint, user="operator", password_env="PLC_ANNA_TEST_PW",
                                  link=FAST)
            events = []
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("PLC_ANNA_TEST_PW", "wrong")
                link = PlcLink(tag_map, on_event=events.append)
                await link.cycle()
            assert kinds(events) == ["link_lost"] and "refused user 'operator'" in link.last_error
            await link.close()
    asyncio.run(main())


def test_a_set_with_nan_or_the_wrong_length_is_refused_before_anything_is_sent():
    plc = make_plc()
    link = PlcLink(plc.tag_map("modbus", "modbus://127.0.0.1:1", link=FAST))
    with pytest.raises(ValueError, match="NaN"):
        link.set_target(LAST, np.array([1.0, np.nan, 1.0, 1.0]), np.zeros(4))
    with pytest.raises(ValueError, match="needs 4 gains"):
        link.set_target(LAST, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="layer 7 is not in the tag map"):
        link.set_target(7, np.ones(4), np.zeros(4))


def test_run_writes_the_heartbeat_every_scan_while_slow_set_writes_skip_cycles():
    """run(): the heartbeat has deadlines of its own. Set writes that take 3.5 scans skip set/status
    cycles (late_cycles) but never hold the heartbeat back, which a batch with the set would."""
    async def main():
        async with plc_and_link("modbus") as (plc, _, link, events):
            slow_set_writes(link, 0.035)        # a PLC that takes 35 ms to take a set
            flip = itertools.cycle([1.2, 0.8])
            stop = asyncio.Event()
            running = asyncio.create_task(link.run(
                0.01, stop, before_cycle=lambda: link.set_target(LAST, np.full(4, next(flip)), np.zeros(4))))
            await asyncio.sleep(0.3)            # connected, sets flowing
            plc.beats, sets, late = [], link.sets_written, link.late_cycles
            await asyncio.sleep(1.0)
            beats, plc.beats = plc.beats, None
            stop.set()
            await running
            assert link.sets_written - sets >= 5 and link.late_cycles - late >= 10
            assert not link.connected and "link_lost" not in kinds(events)
            assert not any(fault for _, fault in beats)
            # The PLC cycles on the link's period: the heartbeat moved in nearly every PLC cycle (with each
            # set write holding it back, it moved in fewer than half).
            moved = sum(a != b for (a, _), (b, _) in itertools.pairwise(beats))
            assert moved >= 0.6 * (len(beats) - 1), (moved, len(beats))
    asyncio.run(main())


def test_run_stops_when_stop_is_set_during_a_long_set_write():
    async def main():
        async with plc_and_link("modbus") as (_, _, link, _):
            writing = slow_set_writes(link, 0.1)   # heartbeats go out meanwhile
            link.set_target(LAST, np.full(4, 1.2), np.zeros(4))
            stop = asyncio.Event()
            running = asyncio.create_task(link.run(0.01, stop))
            await asyncio.wait_for(writing.wait(), 5.0)
            await asyncio.sleep(0.05)           # heartbeats pass the write; then stop
            stop.set()
            await asyncio.wait_for(running, 5.0)
            assert link.late_cycles >= 2 and not link.connected
    asyncio.run(main())


def test_a_set_in_flight_when_the_link_restarts_keeps_its_counter_to_itself():
    """The link dies (kill -9) after writing set 2, before the PLC took it; the link that starts next
    must not write another set as 2: the PLC takes set 2 once, and a second 2 would look unchanged to it
    and be ignored, while the read-back says it arrived."""
    async def main():
        async with plc_and_link("modbus", run_cycles=False) as (plc, served, first, _):
            first.set_target(LAST, np.full(4, 1.1), np.zeros(4))
            for _ in range(4):                   # set 1 written, taken by the PLC, read back
                await first.cycle()
                await served.step()
            assert first.last_good(LAST)[2] == 1 == plc.tags(LAST)["AcceptedCommit"]
            first.set_target(LAST, np.full(4, 1.2), np.zeros(4))
            await first.cycle()                  # set 2 written; the PLC has not cycled since
            assert plc.tags(LAST)["AcceptedCommit"] == 1
            await first.close()                  # the link is gone with set 2 in flight
            events = []
            second = PlcLink(plc.tag_map("modbus", served.endpoint, link=FAST), on_event=events.append)
            try:
                await second.transport.connect()
                await second._sync()             # the new link reads what the PLC holds ...
                await served.step()              # ... and the PLC takes set 2 meanwhile
                assert plc.tags(LAST)["AcceptedCommit"] == 2
                second.set_target(LAST, np.full(4, 1.3), np.zeros(4))
                for _ in range(30):              # long enough for the PLC's ramp to arrive
                    await second.cycle()
                    await served.step()
                tags = plc.tags(LAST)
                assert tags["AcceptedCommit"] == second.last_good(LAST)[2] >= 3
                np.testing.assert_array_equal(tags["GainSet"], np.full(4, 1.3, np.float32))
                np.testing.assert_allclose(tags["AppliedGain"], 1.3, rtol=1e-6)  # what the link believes
                assert "set_lost" not in kinds(events)
            finally:
                await second.close()
    asyncio.run(main())
