"""Commissioning: calibrate the compensator on the PLC's live samples and save it as the server's baseline.

:func:`calibrate` runs what ``plc-anna serve`` runs with ``device_backend =
"plc"``: a :class:`~plc_anna.device.plc_observed.PlcObservedNetwork` fed by a
:class:`~plc_anna.plc.link.PlcLink` that cycles every scan (its heartbeat keeps
the PLC block out of fault; it writes no set, as nothing sets a target), and a
:class:`~plc_anna.server.runtime.Runtime` stepped until every layer has its
fingerprint. :func:`save_baseline` stores that state where ``serve`` restores
it, so the server starts calibrated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plc_anna.compensator import CompensatorConfig
from plc_anna.device.network import Network
from plc_anna.device.plc_observed import PlcObservedNetwork
from plc_anna.drift.states import DriftState
from plc_anna.commission.base import resolve_network
from plc_anna.plc.link import LinkEvent, PlcLink
from plc_anna.contract.tagmap import TagMap
from plc_anna.server.runtime import Runtime
from plc_anna.server.store import StateStore

#: Period of the link's cycle and the runtime's steps while calibrating.
PERIOD_S = 0.02

Progress = Callable[[int, int], None]


class CalibrationTimeout(TimeoutError):
    """The compensator did not get its calibration samples in time; the message says how many arrived."""


class _CountedNetwork(PlcObservedNetwork):
    """A PLC-observed network that counts the samples the runtime took (for the progress)."""

    def __init__(self, network: Network, tag_map: TagMap) -> None:
        super().__init__(network, tag_map)
        self.samples_taken = 0
        self.reads = 0

    def feed(self, values: list, read_s: float = 0.0) -> None:
        super().feed(values, read_s)
        self.reads += 1

    def scan_samples(self, n, rng):
        traces = super().scan_samples(n, rng)
        if traces is not None:
            self.samples_taken += len(traces[0].inputs)
        return traces


async def calibrate(tag_map: TagMap, network: Network | str | Path,
                    compensator_config: CompensatorConfig | None = None, timeout_s: float = 120.0,
                    progress: Progress | None = None, *, period_s: float = PERIOD_S) -> tuple[Runtime, dict[str, Any]]:
    """Calibrate a compensator on the PLC's live samples.

    Parameters
    ----------
    tag_map
        The checked tag map; it must map every layer and give the device's age.
    network
        The network the PLC's layers run.
    compensator_config
        The compensator's settings; ``calibration_samples`` is how many samples a fingerprint takes
        (default :class:`CompensatorConfig`, as ``plc-anna serve`` uses).
    timeout_s
        Give up after this many seconds.
    progress
        Called after every step with (samples gathered, samples needed).
    period_s
        Period of the link's cycle and of the runtime's steps.

    Returns
    -------
    runtime : Runtime
        The calibrated runtime (no layer in the calibrating state).
    info : dict
        ``samples``, ``samples_needed``, ``samples_lost``, ``scans``, ``seconds``, ``age_s``, ``states``
        (per layer), ``events`` (the compensator's) and ``link_events``.

    Raises
    ------
    CalibrationTimeout
        When the samples did not come in time, naming how many arrived.
    Unreachable, AuthenticationFailed, CertificateRejected
        When the link cannot connect at the start.
    ValueError
        For a map that does not fit the network, leaves a layer unmapped or gives no device age.
    """
    config = compensator_config or CompensatorConfig()
    net = _CountedNetwork(resolve_network(network), tag_map)
    link_events: list[LinkEvent] = []
    link = PlcLink(tag_map, observe=(net.observed_tags(), net.feed), on_event=link_events.append)
    runtime = Runtime(net, config)
    needed = config.calibration_samples
    try:
        await link.transport.connect()  # here, so a refused login is an error rather than a retry
    except BaseException:
        await link.transport.close()
        raise
    events: list[dict[str, Any]] = []
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(period_s, stop))
    start = time.monotonic()
    try:
        while True:
            await asyncio.sleep(period_s)
            if task.done():  # the link's loop never returns before stop: surface what ended it
                task.result()
                raise RuntimeError("the PLC link stopped during the calibration")
            if time.monotonic() - start > timeout_s:
                why = link.last_error or next((e.message for e in reversed(link_events) if e.severity >= 600), "")
                raise CalibrationTimeout(_timeout_words(net.samples_taken, needed, timeout_s, why))
            if net.reads == 0:  # the device's age comes with the first read: a step before it cannot run
                continue
            # The compensator's update is CPU work: off the event loop, so the link keeps its period.
            snapshot = await asyncio.to_thread(runtime.step)
            events += [{"layer": event.layer, "kind": event.kind.value, "message": event.message}
                       for event in snapshot.events]
            if progress is not None:
                progress(min(net.samples_taken, needed), needed)
            if all(layer.state != DriftState.CALIBRATING for layer in snapshot.layers):
                break
    finally:
        stop.set()
        await task  # the link closes its connection when it stops
    info = {"samples": net.samples_taken, "samples_needed": needed, "samples_lost": net.samples_lost,
            "scans": runtime.scan, "seconds": round(time.monotonic() - start, 3), "age_s": net.age_s,
            "states": [layer.state.name for layer in snapshot.layers], "events": events,
            "link_events": [{"kind": e.kind, "layer": e.layer, "message": e.message} for e in link_events]}
    return runtime, info


def _timeout_words(samples: int, needed: int, timeout_s: float, why: str) -> str:
    link = f" (link: {why})" if why else ""
    if samples == 0:
        return (f"calibration timed out after {timeout_s:g} s with no samples: is the PLC program running, "
                f"are Inputs and RawOutputs updated?{link}")
    return (f"calibration timed out after {timeout_s:g} s with {samples} of {needed} samples: the PLC delivers "
            f"too few; allow more time, or map the trace buffer (trace_*) to get every PLC cycle's sample{link}")


def save_baseline(runtime: Runtime, store_path: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Save ``runtime``'s state in the state store ``plc-anna serve`` restores at start.

    Parameters
    ----------
    runtime
        The calibrated runtime (:func:`calibrate`).
    store_path
        The server's ``state_store`` file (created when missing; its directory must exist).
    force
        Overwrite a store that holds the state of another network or device backend.

    Returns
    -------
    dict
        ``store`` (the path), ``scan``, and ``replaced``: None for a store without a state, else the scan
        and wall time of the state it held and whether that state was of another network.

    Raises
    ------
    ValueError
        For a store holding another network's state (without ``force``), a file that is no plc-anna store,
        or a directory that does not exist.
    """
    path = Path(store_path)
    store = StateStore(path)
    try:
        entry = store.load_state_entry()
        replaced = None
        if entry is not None:
            # The check `serve` makes at start (PlcAnnaServer._restore): would it take the saved state?
            probe = Runtime(runtime.net, runtime.compensator.layers[0].config)
            try:
                probe.load_state_dict(entry.state)
                other = None
            except ValueError as exc:
                other = str(exc)
            if other is not None and not force:
                raise ValueError(f"{path} holds the saved state of another network or device backend ({other}); "
                                 "it is left unchanged: choose another store, or force the overwrite")
            replaced = {"scan": entry.scan, "wall_time_s": entry.wall_time_s, "other_network": other is not None}
        store.save_state(runtime.state_dict(), runtime.scan)
    finally:
        store.close()
    return {"store": str(path), "scan": runtime.scan, "replaced": replaced}


__all__ = ["PERIOD_S", "CalibrationTimeout", "calibrate", "save_baseline"]
