"""The plc-anna OPC UA server: its networks' objects, the scan engine, methods, events, history, persistence.

::

    async with PlcAnnaServer(config) as server:
        await server.serve_forever()        # or run a test against server.config.endpoint

Start-up order: open the state store and read every network's saved state;
start the scan engine (:mod:`plc_anna.engine`), which builds each network and
restores its state (a network that cannot be built, or a store holding a
state it cannot take, stops the start: nothing is served and the store is
left untouched); start asyncua with the configured security, instantiate one
set of objects per network, link methods and guarded writes, enable
HistoryRead, publish each network's first values, then start the scans and
publishing.

The scans run on the engine's own threads, by default in a process of their
own; the server's event loop only **publishes**: every ``publish_ms`` it takes
the newest report of each network (:meth:`EngineHost.take
<plc_anna.engine.host.EngineHost.take>`, which never waits for a scan) and
writes it to the address space (:meth:`ServedNetwork.publish
<plc_anna.server.served.ServedNetwork.publish>`). A publishing pass that takes
more than half the interval makes the next interval twice as long as the pass
took: serving degrades to coarser publishing, the scans published over are
counted (``Compensator.PublishDropped``), their events and states to save are
kept, and the scans keep their deadlines. States go to the store on a thread
of its own, so SQLite delays neither publishing nor a scan.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from asyncua import ua

import plc_anna
from plc_anna.compensator import CompensatorConfig
from plc_anna.contract.tagmap import load_tag_map
from plc_anna.device.base import default_sinks
from plc_anna.device.network import Network, load_network
from plc_anna.device.params import load_device_params
from plc_anna.engine.host import EngineHost, open_host
from plc_anna.engine.scan import OPERATIONS, NetworkSpec, StateRefused
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
from plc_anna.server.network_config import NetworkEntry
from plc_anna.server.security import configure_server_security, loopback_rig_access
from plc_anna.server.served import Publishing, ServedNetwork
from plc_anna.server.store import StateStore
from plc_anna.server.writes import WriteGuard, WriteRefused, double_array_check, double_check

logger = logging.getLogger(__name__)

#: A publishing pass may take at most this share of the publishing interval before the interval grows.
PUBLISH_SHARE = 0.5
#: The state store's counter that holds the end of the commit counters reserved (Runtime.resume_counters),
#: suffixed ``:<network>`` on a server of several networks.
COMMIT_COUNTER = "commit_counter"


class PlcAnnaServer:
    """The OPC UA server of one or several analog networks and their compensators.

    Parameters
    ----------
    config
        The validated server configuration; a test rig on loopback also offers the None policy to
        anonymous viewers (:func:`~plc_anna.server.security.loopback_rig_access`), :attr:`config` says so.
    compensator_config
        The compensators' settings (default :class:`CompensatorConfig`).
    networks
        Networks to run instead of the files the configuration names, by network name (benchmarks, tests).
    blas_threads
        Threads BLAS may use in the scan engine (None: BLAS's own default; benchmarks compare).
    """

    def __init__(self, config: ServerConfig, compensator_config: CompensatorConfig | None = None,
                 networks: Mapping[str, Network] | None = None, *, blas_threads: int | None = 1) -> None:
        self.config = config = loopback_rig_access(config)
        self.blas_threads = blas_threads
        self.compensator_config = compensator_config or CompensatorConfig()
        self._given = dict(networks or {})
        unknown = sorted(set(self._given) - {entry.name for entry in config.served_networks})
        if unknown:
            raise ValueError(f"networks {unknown} are not in the configuration "
                             f"({', '.join(entry.name for entry in config.served_networks)})")
        self.server: GuardedServer | None = None
        self.diagnostics: ServerDiagnostics | None = None
        self.edge_node: Any = None
        self.host: EngineHost | None = None
        self.store: StateStore | None = None
        self.idx: int | None = None
        self._networks: dict[str, ServedNetwork] = {}
        self._publishing: Publishing | None = None
        self._publisher: asyncio.Task | None = None
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plc-anna-store")

    @property
    def networks(self) -> Mapping[str, ServedNetwork]:
        """Every network the server serves, by name, in the configuration's order."""
        return self._networks

    @property
    def publish_interval_s(self) -> float:
        """How often the address space is updated now: ``publish_ms``, or longer while publishing is slow."""
        return math.nan if self._publishing is None else self._publishing.interval_s

    # ---------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> PlcAnnaServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Restore, start scanning, start serving. ValueError for a store or network that does not fit."""
        config = self.config
        entries = config.served_networks
        single = not config.networks
        networks = {entry.name: self._given.get(entry.name) or load_network(entry.network) for entry in entries}
        specs = {entry.name: self._spec(entry, networks[entry.name], single) for entry in entries}
        config.config_dir.mkdir(parents=True, exist_ok=True)
        self.store = StateStore(config.state_store, retention_s=config.history_retention_days * 86400.0)
        # The engine's process sends reports twice per publishing interval: publishing never waits long
        # for a scan, and scans it would publish over are neither pickled nor sent.
        self.host = open_host(config.scan_isolation, config.scan_priority, self.blas_threads,
                              send_interval_s=config.publish_ms / 2e3)
        try:
            saved = {entry.name: self.store.load_state_entry("" if single else entry.name) for entry in entries}
            try:
                first = await self.host.start(list(specs.values()), {name: s.state for name, s in saved.items() if s is not None})
            except StateRefused as exc:
                raise ValueError(f"{self.store.path} holds a saved state this server cannot take ({exc}); it is "
                                 "left untouched: point state_store at another file to start afresh") from None
            await self._start_server(entries, specs, single)
            for name, entry in saved.items():
                if entry is not None:
                    self._networks[name].restored_scan = entry.scan
                    logger.info("%s: restored the state of scan %d from %s", name, entry.scan, self.store.path)
            self._publishing.interval_s = config.publish_ms / 1e3
            for name, report in first.items():
                await self._networks[name].publish(report, self._publishing)
            await self.host.run()
            if config.sparkplug is not None:
                from plc_anna.sparkplug import start_edge_node

                self.edge_node = await start_edge_node(self)
        except BaseException:
            await self.host.stop()
            self.host = None
            if self.diagnostics is not None:
                await self.diagnostics.stop()
            if self.server is not None:
                await self.server.stop()
                self.server = None
            self._store_thread.shutdown(wait=True)
            self.store.close()
            raise
        self._publisher = asyncio.get_running_loop().create_task(self._publish_loop(), name="plc-anna publishing")
        logger.info("serving %s on %s (%s isolation)", ", ".join(self._networks), config.endpoint,
                    config.scan_isolation)

    async def stop(self) -> None:
        """Stop the Sparkplug edge node, publishing and scanning, save every network's final state, stop serving,
        close the store."""
        if self.edge_node is not None:
            await self.edge_node.stop()
            self.edge_node = None
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
            self._publisher = None
        if self.host is not None:
            final = await self.host.stop()
            self.host = None
            loop = asyncio.get_running_loop()
            for name, (state, scan) in final.items():
                served = self._networks.get(name)
                if served is not None and self.store is not None:
                    await loop.run_in_executor(self._store_thread, self.store.save_state, state, scan, served.store_key)
        if self.diagnostics is not None:
            await self.diagnostics.stop()
            self.diagnostics = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
        self._store_thread.shutdown(wait=True)
        if self.store is not None:
            self.store.close()

    async def serve_forever(self) -> None:
        """Serve until SIGINT or SIGTERM (Ctrl-C, a service manager's stop) or cancellation, then return.

        Returning lets the caller's ``async with`` stop the scan and save the state. RuntimeError if the
        scan engine ended on its own (its process died): the server must not serve values that no longer move.
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
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.host.ended.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
        if self.host.failure is not None:
            raise RuntimeError(self.host.failure)

    # ---------------------------------------------------------------- building
    def _spec(self, entry: NetworkEntry, network: Network, single: bool) -> NetworkSpec:
        tag_map = load_tag_map(entry.tag_map) if entry.tag_map else None
        device = load_device_params(entry.device) if entry.device_backend == "simulated" else None
        return NetworkSpec(name=entry.name, network=network, backend=entry.device_backend, device=device,
                           seed=entry.seed, tag_map=tag_map, scan_ms=entry.scan_ms,
                           samples_per_scan=entry.samples_per_scan, age_rate=entry.age_rate,
                           compensator=self.compensator_config, counter_store=self.config.state_store,
                           counter_name=COMMIT_COUNTER if single else f"{COMMIT_COUNTER}:{entry.name}")

    async def _start_server(self, entries: tuple[NetworkEntry, ...], specs: dict[str, NetworkSpec],
                            single: bool) -> None:
        config = self.config
        security = config.security
        server = GuardedServer(EndpointLimits(security.max_connections, security.max_sessions,
                                              security.hello_timeout_s))
        await server.init()
        server.set_endpoint(config.endpoint)
        server.set_server_name("plc-anna " + ", ".join(spec.network.name for spec in specs.values()))
        ruleset = await configure_server_security(server, config)
        await publish_identity(server, Capabilities(max_sessions=security.max_sessions,
                                                    max_message_size=server.limits.max_message_size,
                                                    min_sample_rate_ms=float(min(e.scan_ms for e in entries))))
        self.diagnostics = ServerDiagnostics(server, server.stats, {
            "certificates": lambda: server.iserver.certificate_validator.refusals,
            "logins": lambda: server.iserver.user_manager.refusals, "requests": lambda: ruleset.refusals})
        self.idx = await load_model(server)
        self.server = server
        guard = WriteGuard(server)
        event_type = await type_node(server, "DriftEventType")
        # asyncua delivers an event only to subscriptions on the node that emits it: emit from the Server
        # object, where SCADA clients subscribe, and name the layer or compensator as the source.
        drift_events = await server.get_event_generator(event_type, ua.ObjectIds.Server)
        self._publishing = Publishing(server, self.store, self._store_thread, config.history_period_s, drift_events)
        conditions = await ConditionServer.install(server, ruleset)
        historized: dict = {}
        for entry in entries:
            served = await self._serve_network(entry, specs[entry.name], single, ruleset, guard, conditions)
            self._networks[entry.name] = served
            historized.update(served.historized())
        await enable_history(server, self.store, historized)
        await server.start()
        await self.diagnostics.start()

    async def _serve_network(self, entry: NetworkEntry, spec: NetworkSpec, single: bool, ruleset: Any,
                             guard: WriteGuard, conditions: ConditionServer) -> ServedNetwork:
        """One network's objects, methods and guarded writes (its network and tag map as the engine has them)."""
        server, config, ramp = self.server, self.config, self.compensator_config.ramp
        network, tag_map = spec.network, spec.tag_map
        simulated = entry.device_backend == "simulated"
        device_name = (f"simulated {Path(str(entry.device)).name}" if simulated
                       else f"observed through {tag_map.plc.endpoint}")
        nameplate = {"Manufacturer": "plc-anna (simulated device)" if simulated else "unknown",
                     "Model": network.name, "SerialNumber": f"sim-seed-{entry.seed}", "HardwareRevision": device_name,
                     "SoftwareRevision": plc_anna.__version__, "DeviceRevision": "1", "ProductCode": network.name}
        # As the engine's device has them: a PLC-observed network is corrected by the PLC alone.
        sinks = default_sinks(len(network.layers)) if simulated else ("plc",) * len(network.layers)
        space = await ua_nodes.build_address_space(server, self.idx, network, sinks, nameplate, ramp.gain_range,
                                                   ramp.offset_range, config.test_rig,
                                                   name=None if single else entry.name)
        link = ControllerService(tag_map) if tag_map is not None else None
        alarms = await NetworkAlarms.create(conditions, space, self.compensator_config.maintenance_horizon_s)
        if link is not None:
            link.on_link_event = alarms.link_event
        served = ServedNetwork(entry.name, "" if single else entry.name, space, self.host, alarms, link)
        for name, handler in _method_handlers(served, config.test_rig).items():
            node = space.methods[name]
            server.link_method(node, handler)
            ruleset.allow_call(node, "call_test_rig" if name in ua_nodes.TEST_RIG_METHODS else "call_operation")
        offset_low, offset_high = ua_nodes.offset_eu_range(ramp.offset_range)
        for layer in space.layers:
            n = network.layers[layer.index].n_out
            for name, (low, high) in (("Gain", ramp.gain_range), ("Offset", (offset_low, offset_high))):
                node = layer.members[name]
                await node.set_writable()
                ruleset.allow_write(node)
                guard.register(node.nodeid, double_array_check(n, low, high, f"{space.prefix}Layer{layer.index}.{name}"),
                               _correction_writer(served, layer.index, name))
        period = space.diagnostics["ScanPeriod"]
        await period.set_writable()
        ruleset.allow_write(period)
        guard.register(period.nodeid, double_check(5.0, 10000.0, "ScanPeriod (ms)"), _period_writer(served))
        if link is None:
            await space.link_members["Protocol"].write_value("none")
            await space.link_members["Endpoint"].write_value("")
            await space.link_members["Connected"].write_value(False)
            await space.link_members["LastError"].write_value("no controller link configured")
        else:
            await link.start(server, space)
        return served

    # ---------------------------------------------------------------- publishing
    async def _publish_loop(self) -> None:
        loop = asyncio.get_running_loop()
        publishing = self._publishing
        configured = self.config.publish_ms / 1e3
        while True:
            started = loop.time()
            for name, report in self.host.take().items():
                try:
                    await self._networks[name].publish(report, publishing)
                except Exception:  # a node or an event that cannot be written must not stop publishing
                    logger.exception("could not publish the scan of %s", name)
            spent = loop.time() - started
            publishing.interval_s = max(configured, spent / PUBLISH_SHARE)
            await asyncio.sleep(max(0.0, started + publishing.interval_s - loop.time()))


# -------------------------------------------------------------------- methods and writes
def _method_handlers(served: ServedNetwork, test_rig: bool) -> dict[str, Any]:
    """The OPC UA methods of a network's Compensator: the operations, and the test rig's when enabled."""
    def operation(name: str):
        async def handler(parent: ua.NodeId) -> list:
            await served.command(name)
            return []
        return handler

    async def checked(name: str, *args: Any) -> list | ua.StatusCode:
        if any(a is None for a in args):
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        try:
            await served.command(name, *args)
        except ValueError as exc:
            logger.warning("%s: refused %s%r: %s", served.name, name, args, exc)
            return ua.StatusCode(ua.StatusCodes.BadOutOfRange)
        return []

    async def set_age(parent: ua.NodeId, age: ua.Variant) -> list | ua.StatusCode:
        return await checked("set_age", _scalar(age))

    async def set_temperature(parent: ua.NodeId, temperature: ua.Variant) -> list | ua.StatusCode:
        return await checked("set_temperature", _scalar(temperature))

    async def inject_fault(parent: ua.NodeId, layer: ua.Variant, gain: ua.Variant,
                           offset: ua.Variant) -> list | ua.StatusCode:
        return await checked("inject_fault", _scalar(layer, int), _array(gain), _array(offset))

    handlers = {"".join(part.capitalize() for part in name.split("_")): operation(name) for name in OPERATIONS}
    if test_rig:
        handlers.update(SetAge=set_age, SetTemperature=set_temperature, InjectFault=inject_fault)
    return handlers


def _correction_writer(served: ServedNetwork, layer: int, name: str):
    async def apply(values: np.ndarray) -> None:
        await served.command("set_gain" if name == "Gain" else "set_offset", layer, values)
    return apply


def _period_writer(served: ServedNetwork):
    async def apply(period_ms: float) -> None:
        try:
            served.host.set_period(served.name, period_ms / 1000.0)
        except ValueError as exc:
            raise WriteRefused(ua.StatusCodes.BadOutOfRange, str(exc)) from None
    return apply


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
