"""The plc-anna OPC UA server: the model's objects, the scan task, methods, events, history, persistence.

::

    async with PlcAnnaServer(config) as server:
        await server.serve_forever()        # or run a test against server.config.endpoint

Start-up order: open the state store and restore the saved state (a store
of another network stops the start, so nothing stored is overwritten), start
asyncua with the configured security, instantiate the model, link methods and
guarded writes, enable HistoryRead, publish once, then start the scan task.
Each scan's state goes to the store whenever a layer raised an event or a
command ran (and every :data:`STATE_PERIOD_S` otherwise); the store's writes
run on their own thread, so SQLite never delays a scan.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from asyncua import ua

import plc_anna
from plc_anna.compensator import CompensatorConfig
from plc_anna.device import AnalogNetwork, open_network
from plc_anna.device.network import Network, load_network
from plc_anna.device.params import load_device_params
from plc_anna.contract.tagmap import load_tag_map
from plc_anna.drift.states import Event
from plc_anna.server import nodes as ua_nodes
from plc_anna.server.alarms import NetworkAlarms
from plc_anna.server.conditions import ConditionServer
from plc_anna.server.config import ServerConfig
from plc_anna.server.controller import ControllerService
from plc_anna.server.diagnostics import ServerDiagnostics
from plc_anna.server.endpoint import EndpointLimits, GuardedServer
from plc_anna.server.history import enable_history
from plc_anna.server.identity import Capabilities, publish_identity
from plc_anna.server.model import load_model, type_node
from plc_anna.server.runtime import Runtime, Snapshot
from plc_anna.server.scan import CycleStats, ScanTask
from plc_anna.server.security import configure_server_security, loopback_rig_access
from plc_anna.server.store import StateStore
from plc_anna.server.writes import WriteGuard, WriteRefused, double_array_check, double_check

logger = logging.getLogger(__name__)

#: The state is saved at least this often even when nothing happens (scan counters, age).
STATE_PERIOD_S = 60.0
HISTORIZED = ("LayerDistance", "DriftState", "Gain", "Offset")
#: The state store's counter that holds the end of the commit counters reserved (Runtime.resume_counters).
COMMIT_COUNTER = "commit_counter"


class PlcAnnaServer:
    """The OPC UA server of one analog network and its compensator.

    Parameters
    ----------
    config
        The validated server configuration; a test rig on loopback also offers the None policy to
        anonymous viewers (:func:`~plc_anna.server.security.loopback_rig_access`), :attr:`config` says so.
    compensator_config
        The compensator's settings (default :class:`CompensatorConfig`).
    network
        A network to run instead of ``config.network`` (benchmarks, tests).
    """

    def __init__(self, config: ServerConfig, compensator_config: CompensatorConfig | None = None,
                 network: Network | None = None) -> None:
        self.config = loopback_rig_access(config)
        self.compensator_config = compensator_config or CompensatorConfig()
        self._network = network
        self.server: GuardedServer | None = None
        self.runtime: Runtime | None = None
        self.space: ua_nodes.AddressSpace | None = None
        self.scan: ScanTask | None = None
        self.store: StateStore | None = None
        self.controller: ControllerService | None = None
        self.diagnostics: ServerDiagnostics | None = None
        self.restored_scan: int | None = None
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plc-anna-store")
        self._dirty = False
        self._last_save = self._last_history = -float("inf")
        self._drift_events: Any = None
        self.alarms: NetworkAlarms | None = None
        #: The newest published snapshot (None before the first scan): what the Sparkplug edge node reads.
        self.latest: Snapshot | None = None
        self.edge_node: Any = None

    # ---------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> PlcAnnaServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Restore, start serving, start scanning. ValueError for a store or network that does not fit."""
        config = self.config
        network = self._network or load_network(config.network)
        tag_map = load_tag_map(config.tag_map) if config.tag_map else None
        net = self._open_network(network, tag_map)
        if tag_map is not None:
            tag_map.check_network([(layer.n_in, layer.n_out) for layer in network.layers])
            self.controller = ControllerService(tag_map, net, config.scan_ms / 1000.0)
        self.runtime = Runtime(net, self.compensator_config, samples_per_scan=config.samples_per_scan,
                               age_rate=config.age_rate, seed=config.seed,
                               reserve_counters=lambda mark: self.store.save_counter(COMMIT_COUNTER, mark))
        config.config_dir.mkdir(parents=True, exist_ok=True)
        self.store = StateStore(config.state_store, retention_s=config.history_retention_days * 86400.0)
        try:
            self._restore()
            device_name = (f"simulated {Path(str(config.device)).name}" if config.device_backend == "simulated"
                           else f"observed through {tag_map.plc.endpoint}")
            await self._start_server(network, device_name)
        except BaseException:
            self.store.close()
            raise
        first = self.runtime.snapshot()
        await ua_nodes.publish(self.server, self.space, first, None, scan_period_ms=config.scan_ms)
        if self.controller is not None:
            await self.controller.start(self.server, self.space)
        self.scan = ScanTask(config.scan_ms / 1000.0, self._work, self._publish, self._on_overrun)
        self.scan.start()
        if config.sparkplug is not None:
            from plc_anna.sparkplug import start_edge_node

            self.edge_node = await start_edge_node(self)
        logger.info("serving %s on %s (scan %d ms)", network.name, config.endpoint, config.scan_ms)

    async def stop(self) -> None:
        """Stop the Sparkplug edge node, stop scanning, save the state, stop serving, close the store."""
        if self.edge_node is not None:
            await self.edge_node.stop()
            self.edge_node = None
        if self.scan is not None:
            await self.scan.stop()
            self.scan = None
        if self.controller is not None:
            await self.controller.stop()
            self.controller = None
        if self.runtime is not None and self.store is not None:
            state, scan = self.runtime.state_dict(), self.runtime.scan
            await asyncio.get_running_loop().run_in_executor(self._store_thread, self.store.save_state, state, scan)
        if self.diagnostics is not None:
            await self.diagnostics.stop()
        if self.server is not None:
            await self.server.stop()
            self.server = None
        self._store_thread.shutdown(wait=True)
        if self.store is not None:
            self.store.close()

    async def serve_forever(self) -> None:
        """Serve until SIGINT or SIGTERM (Ctrl-C, a service manager's stop) or cancellation, then return.

        Returning lets the caller's ``async with`` stop the scan and save the state.
        """
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
                pass
        try:
            await stop.wait()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    def _open_network(self, network: Network, tag_map) -> AnalogNetwork:
        if self.config.device_backend == "plc":
            return open_network("plc", network=network, tag_map=tag_map)
        return open_network("simulated", network=network, device=load_device_params(self.config.device),
                            seed=self.config.seed)

    def _restore(self) -> None:
        entry = self.store.load_state_entry()
        if entry is None:
            self.runtime.resume_counters(self.store.load_counter(COMMIT_COUNTER))
            return
        try:
            self.runtime.load_state_dict(entry.state)
        except ValueError as exc:
            raise ValueError(f"{self.store.path} holds a saved state this server cannot take ({exc}); it is left "
                             "untouched: point state_store at another file to start afresh") from None
        self.runtime.resume_counters(self.store.load_counter(COMMIT_COUNTER))
        self.restored_scan = entry.scan
        logger.info("restored the state of scan %d from %s", entry.scan, self.store.path)

    async def _start_server(self, network: Network, device_name: str) -> None:
        config = self.config
        security = config.security
        server = GuardedServer(EndpointLimits(security.max_connections, security.max_sessions,
                                              security.hello_timeout_s))
        await server.init()
        server.set_endpoint(config.endpoint)
        server.set_server_name(f"plc-anna {network.name}")
        ruleset = await configure_server_security(server, config)
        await publish_identity(server, Capabilities(max_sessions=security.max_sessions,
                                                    max_message_size=server.limits.max_message_size,
                                                    min_sample_rate_ms=float(config.scan_ms)))
        self.diagnostics = ServerDiagnostics(server, server.stats, {
            "certificates": lambda: server.iserver.certificate_validator.refusals,
            "logins": lambda: server.iserver.user_manager.refusals, "requests": lambda: ruleset.refusals})
        idx = await load_model(server)
        manufacturer = "plc-anna (simulated device)" if config.device_backend == "simulated" else "unknown"
        nameplate = {"Manufacturer": manufacturer, "Model": network.name,
                     "SerialNumber": f"sim-seed-{config.seed}", "HardwareRevision": device_name,
                     "SoftwareRevision": plc_anna.__version__, "DeviceRevision": "1", "ProductCode": network.name}
        ramp = self.compensator_config.ramp
        space = await ua_nodes.build_address_space(server, idx, network, self.runtime.net.sinks, nameplate,
                                                   ramp.gain_range, ramp.offset_range, config.test_rig)
        self.server, self.space = server, space
        for name, handler in self._method_handlers().items():
            node = space.methods[name]
            server.link_method(node, handler)
            ruleset.allow_call(node, "call_test_rig" if name in ua_nodes.TEST_RIG_METHODS else "call_operation")
        guard = WriteGuard(server)
        offset_low, offset_high = ua_nodes.offset_eu_range(ramp.offset_range)
        for layer in space.layers:
            n = self.runtime.compensator.layers[layer.index].n_out
            for name, (low, high) in (("Gain", ramp.gain_range), ("Offset", (offset_low, offset_high))):
                node = layer.members[name]
                await node.set_writable()
                ruleset.allow_write(node)
                guard.register(node.nodeid, double_array_check(n, low, high, f"Layer{layer.index}.{name}"),
                               self._correction_writer(layer.index, name))
        period = space.diagnostics["ScanPeriod"]
        await period.set_writable()
        ruleset.allow_write(period)
        guard.register(period.nodeid, double_check(5.0, 10000.0, "ScanPeriod (ms)"), self._set_scan_period)
        event_type = await type_node(server, "DriftEventType")
        # asyncua delivers an event only to subscriptions on the node that emits it: emit from the Server
        # object, where SCADA clients subscribe, and name the layer or compensator as the source.
        self._drift_events = await server.get_event_generator(event_type, ua.ObjectIds.Server)
        conditions = await ConditionServer.install(server, ruleset)
        self.alarms = await NetworkAlarms.create(conditions, space, self.compensator_config.maintenance_horizon_s)
        if self.controller is not None:
            self.controller.on_link_event = self.alarms.link_event
        if self.controller is None:
            await space.link_members["Protocol"].write_value("none")
            await space.link_members["Endpoint"].write_value("")
            await space.link_members["Connected"].write_value(False)
            await space.link_members["LastError"].write_value("no controller link configured")
        historized = {layer.members[name]: (f"Layer{layer.index}.{name}", _HISTORY_TYPES[name])
                      for layer in space.layers for name in HISTORIZED}
        await enable_history(server, self.store, historized)
        await server.start()
        await self.diagnostics.start()

    # ---------------------------------------------------------------- the scan
    def _work(self) -> tuple[Snapshot, dict | None]:
        """One scan on the worker thread; with the state to save when it is due."""
        snapshot = self.runtime.step()
        now = time.monotonic()
        state = None
        if snapshot.events or self._dirty or now - self._last_save >= STATE_PERIOD_S:
            state, self._dirty, self._last_save = self.runtime.state_dict(), False, now
        return snapshot, state

    async def _publish(self, result: tuple[Snapshot, dict | None], stats: CycleStats) -> None:
        snapshot, state = result
        self.latest = snapshot
        await ua_nodes.publish(self.server, self.space, snapshot, stats, linked=self.controller is not None)
        if self.controller is not None:
            self.controller.after_scan(snapshot)
        for event in snapshot.events:
            await self._fire(event)
        await self.alarms.after_scan(snapshot)
        now = time.monotonic()
        history = None
        if snapshot.events or now - self._last_history >= self.config.history_period_s:
            self._last_history = now
            history = {f"Layer{layer.index}.{name}": value for layer in snapshot.layers
                       for name, value in (("LayerDistance", layer.layer_distance), ("DriftState", int(layer.state)),
                                           ("Gain", layer.gain), ("Offset", layer.offset))
                       if not (name == "LayerDistance" and not np.isfinite(value))}
        if state is not None or history is not None:
            self._store_thread.submit(self._persist, state, snapshot.scan, history)

    def _persist(self, state: dict | None, scan: int, history: dict | None) -> None:
        try:
            if history:
                self.store.append_history(time.time(), history)
            if state is not None:
                self.store.save_state(state, scan)
        except Exception:  # a full disk must not stop the scan; the log says what failed
            logger.exception("could not write to the state store %s", self.store.path)

    async def _fire(self, event: Event) -> None:
        generator = self._drift_events
        generator.event.SourceNode = self.space.layers[event.layer].object.nodeid
        generator.event.SourceName = f"Layer{event.layer}"
        generator.event.Layer = ua.Variant(event.layer, ua.VariantType.UInt32)
        generator.event.DriftState = ua.Variant(int(event.state), ua.VariantType.Int32)
        generator.event.Kind = ua.Variant(event.kind.value, ua.VariantType.String)
        generator.event.Severity = event.severity
        await generator.trigger(message=f"Layer{event.layer} {event.kind.value}: {event.message}")

    async def _on_overrun(self, overruns: int) -> None:
        await self.alarms.overrun(overruns, self.scan.period_s * 1e3)

    # ---------------------------------------------------------------- commands
    async def command(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` (a runtime command such as ``server.runtime.calibrate``) between scans.

        The state is saved after the next scan. ValueError if the command refuses its arguments.
        """
        await self.scan.call(fn, *args)
        self._dirty = True

    def _method_handlers(self) -> dict[str, Any]:
        def operation(name: str):
            async def handler(parent: ua.NodeId) -> list:
                await self.command(getattr(self.runtime, name))
                return []
            return handler

        async def set_age(parent: ua.NodeId, age: ua.Variant) -> list | ua.StatusCode:
            return await self._checked("set_age", _scalar(age))

        async def set_temperature(parent: ua.NodeId, temperature: ua.Variant) -> list | ua.StatusCode:
            return await self._checked("set_temperature", _scalar(temperature))

        async def inject_fault(parent: ua.NodeId, layer: ua.Variant, gain: ua.Variant,
                               offset: ua.Variant) -> list | ua.StatusCode:
            return await self._checked("inject_fault", _scalar(layer, int), _array(gain), _array(offset))

        handlers = {"Calibrate": operation("calibrate"), "Commit": operation("commit"),
                    "Rollback": operation("rollback"), "ResetReference": operation("reset_reference")}
        if self.config.test_rig:
            handlers.update(SetAge=set_age, SetTemperature=set_temperature, InjectFault=inject_fault)
        return handlers

    async def _checked(self, name: str, *args: Any) -> list | ua.StatusCode:
        if any(a is None for a in args):
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        try:
            await self.command(getattr(self.runtime, name), *args)
        except ValueError as exc:
            logger.warning("refused %s%r: %s", name, args, exc)
            return ua.StatusCode(ua.StatusCodes.BadOutOfRange)
        return []

    def _correction_writer(self, layer: int, name: str):
        async def apply(values: np.ndarray) -> None:
            def set_part() -> None:
                gain, offset = self.runtime.compensator.correction(layer)
                if name == "Gain":
                    gain = values
                else:
                    offset = values
                self.runtime.set_correction(layer, gain, offset)
            await self.command(set_part)
        return apply

    async def _set_scan_period(self, period_ms: float) -> None:
        try:
            self.scan.period_s = period_ms / 1000.0
        except ValueError as exc:
            raise WriteRefused(ua.StatusCodes.BadOutOfRange, str(exc)) from None


_HISTORY_TYPES = {"LayerDistance": ua.VariantType.Double, "DriftState": ua.VariantType.Int32,
                  "Gain": ua.VariantType.Double, "Offset": ua.VariantType.Double}


def _scalar(variant: Any, kind: type = float) -> Any:
    value = getattr(variant, "Value", variant)
    if isinstance(value, (list, tuple)) or value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _array(variant: Any) -> np.ndarray | None:
    value = getattr(variant, "Value", variant)
    if not isinstance(value, (list, tuple)):
        return None
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
