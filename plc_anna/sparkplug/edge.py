"""The Sparkplug B edge node of a plc-anna server (Sparkplug 3.0): births, deaths, data, commands, store-and-forward.

::

    async with EdgeNode(config, lambda: server_networks(server)):
        ...                                  # the server runs; the node publishes on its own tasks

Two tasks, neither in the scan's path. The *session* connects (the NDEATH
carrying this connection's ``bdSeq`` registered as the MQTT Will), subscribes
to its NCMD and DCMD topics (and the primary host's STATE), publishes NBIRTH
(``seq`` 0, ``bdSeq``, ``Node Control/Rebirth``) and one DBIRTH per network
with every metric and its alias, replays the store, then answers commands:
``Node Control/Rebirth`` re-publishes the births; a DCMD runs an allowed
command through :meth:`~plc_anna.sparkplug.source.NetworkSource.command` and
refuses (and logs) anything else. The *sampler* wakes every ``publish_ms``,
reads each network's newest snapshot and publishes a DDATA with the metrics
that changed (report by exception); a network that appears gets a DBIRTH, one
that goes away a DDEATH. Sequence numbers run 0..255 and wrap, shared by
every message of the node after NBIRTH.

While the broker is unreachable, or the primary host is offline, the sampler
writes what changed to the store (:mod:`plc_anna.sparkplug.forward`)
instead; after the next births the store is replayed as DDATA whose metrics
carry ``is_historical``. Data sent in the last ``1.5 keepalive + 2 publish``
seconds before a lost connection is stored again as well (QoS 0 may have lost
it with the connection), so a host may receive a point twice, never zero
times; the fleet host's historian keeps one of each (metric, timestamp).

Every failure to connect (unreachable broker, refused login, TLS) is logged
once, in one line, and retried with a back-off up to 2 s (a broker back from
an outage sees every node within that); a malformed command payload is logged
and ignored. The server goes on either way.

The module is longer than most in the package for a reason: the session,
the births, the sampler, the replay and the commands share one sequence
counter, one lock and the devices' birth state, and Sparkplug's ordering rules
(NBIRTH before DBIRTH before DDATA, seq across all of them) are easiest to
check in one place. The store's bookkeeping lives in
:mod:`plc_anna.sparkplug.forward`, the metric model in
:mod:`plc_anna.sparkplug.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from pysparkplug import DataType, DBirth, DCmd, DData, DDeath, Metric, NBirth, NCmd, NDeath

import plc_anna
from plc_anna.deadlines import next_deadline
from plc_anna.sparkplug import metrics as m
from plc_anna.sparkplug.config import SparkplugConfig
from plc_anna.sparkplug.mqtt import BrokerSettings, connect_error
from plc_anna.sparkplug.source import COMMAND_NAMES, NetworkSource
from plc_anna.sparkplug.forward import Forwarder

logger = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
#: The longest wait between two connection attempts.
MAX_BACKOFF_S = 2.0
_REPLAY_BATCH = 64


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class EdgeStats:
    """What the edge node did since it started."""

    connections: int = 0
    births: int = 0
    published: int = 0
    """DDATA messages published live."""
    stored: int = 0
    """DDATA payloads written to the store while offline (or re-stored after a lost connection)."""
    replayed: int = 0
    """Stored payloads published again as historical DDATA."""
    commands_run: int = 0
    commands_refused: int = 0
    malformed: int = 0
    last_error: str = ""


@dataclass
class _Device:
    """A network as this node published it: alias block, metrics, last values sent, birth."""

    index: int
    specs: list[m.MetricSpec] = field(default_factory=list)
    by_name: dict[str, m.MetricSpec] = field(default_factory=dict)
    shape: tuple = ()
    last: dict[str, Any] = field(default_factory=dict)
    birth: DBirth | None = None
    born: bool = False
    last_ms: int = 0
    """Timestamp of the last snapshot taken: each one gets a later millisecond (a historian keys on it)."""

    def stamp(self) -> int:
        """Now in ms since 1970, later than any earlier stamp of this device."""
        self.last_ms = max(now_ms(), self.last_ms + 1)
        return self.last_ms


class _PrimaryOffline(Exception):
    """The primary host went offline: end the session and connect afresh."""


class EdgeNode:
    """A Sparkplug B edge node publishing the networks ``networks()`` returns.

    Parameters
    ----------
    config
        The ``[sparkplug]`` table.
    networks
        Called each publishing period: the served networks by device id.
    password
        The broker password; default: read from ``config.password_env``.
    """

    def __init__(self, config: SparkplugConfig, networks: Callable[[], Mapping[str, NetworkSource]],
                 password: str | None = None) -> None:
        self.config = config
        self._networks = networks
        self.settings = BrokerSettings(config.broker, config.username,
                                       password if password is not None else config.password(),
                                       config.tls_ca, config.tls_cert, config.tls_key, config.keepalive_s)
        self.stats = EdgeStats()
        self.bd_seq: int | None = None
        self._seq = 0
        self._client: aiomqtt.Client | None = None
        self._live = False
        self._devices: dict[str, _Device] = {}
        self._node_birth: NBirth | None = None
        self._lock = asyncio.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plc-anna-sparkplug")
        loss_window_s = 1.5 * config.keepalive_s + 2 * config.publish_ms / 1000
        self.forward = Forwarder(config.store, int(config.store_max_mb * 1e6), loss_window_s, self._worker)
        self._tasks: list[asyncio.Task] = []
        self._replay_task: asyncio.Task | None = None
        self._state_timestamp = -1
        g, n = config.group_id, config.edge_node_id
        self.topics = {kind: f"{NAMESPACE}/{g}/{kind}/{n}" for kind in ("NBIRTH", "NDEATH", "NCMD", "NDATA")}

    # ---------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> EdgeNode:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def online(self) -> bool:
        """Births are out on a live connection: data goes to the broker, not to the store."""
        return self._live

    async def start(self) -> None:
        """Open the store and start the session and sampler tasks (returns at once; connecting goes on)."""
        await self.forward.open()
        self._tasks = [asyncio.create_task(self._session(), name="sparkplug-session"),
                       asyncio.create_task(self._sampler(), name="sparkplug-sampler")]

    async def stop(self) -> None:
        """Publish DDEATHs and the NDEATH when connected, disconnect, close the store."""
        sampler = self._tasks[1] if len(self._tasks) > 1 else None
        if sampler is not None:
            await _cancel(sampler)
        if self._replay_task is not None:
            await _cancel(self._replay_task)
        if self._live and self._client is not None:
            try:
                await asyncio.wait_for(self._publish_deaths(), 5.0)
            except (aiomqtt.MqttError, OSError, asyncio.TimeoutError):
                pass  # the session's end below stores again what may have been in flight
            else:
                await self.forward.confirm_all()
                self._live = False
        if self._tasks:
            await _cancel(self._tasks[0])
        self._tasks = []
        await self.forward.close()
        await asyncio.get_running_loop().run_in_executor(None, self._worker.shutdown, True)

    # ---------------------------------------------------------------- the session
    async def _session(self) -> None:
        backoff = 0.5
        config = self.config
        while True:
            bd_seq = await self.forward.next_bd_seq()
            death = NDeath(timestamp=now_ms(), bd_seq_metric=Metric(timestamp=now_ms(), name=m.BD_SEQ,
                                                                     datatype=DataType.INT64, value=bd_seq))
            will = aiomqtt.Will(self.topics["NDEATH"], death.encode(), qos=1, retain=False)
            connected = False
            try:
                identifier = f"plc-anna-{config.group_id}-{config.edge_node_id}"
                async with self.settings.client(identifier, will=will) as client:
                    connected = True
                    self._client, self.bd_seq = client, bd_seq
                    self.stats.connections += 1
                    if self.stats.last_error:
                        logger.info("connected to the MQTT broker %s", config.broker)
                    self.stats.last_error = ""
                    await client.subscribe(self.topics["NCMD"], qos=1)
                    await client.subscribe(f"{NAMESPACE}/{config.group_id}/DCMD/{config.edge_node_id}/+", qos=1)
                    if config.primary_host_id:
                        await client.subscribe(f"{NAMESPACE}/STATE/{config.primary_host_id}", qos=1)
                    else:
                        await self._go_live()
                    async for message in client.messages:
                        await self._on_message(message)
            except _PrimaryOffline:
                backoff = 0.0
            except (aiomqtt.MqttError, OSError, ValueError) as exc:
                text = connect_error(exc, config.broker)
                if text != self.stats.last_error:
                    logger.warning("Sparkplug edge node %s: %s; retrying, data goes to the store meanwhile",
                                   config.edge_node_id, text)
                self.stats.last_error = text
            finally:
                await self._went_offline()
            if connected:
                backoff = min(backoff, 0.5)
            await asyncio.sleep(backoff)
            backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF_S)

    async def _go_live(self) -> None:
        await self._birth()
        self._live = True
        if self._replay_task is None or self._replay_task.done():
            self._replay_task = asyncio.create_task(self._replay(), name="sparkplug-replay")

    async def _went_offline(self) -> None:
        was_live, self._live, self._client = self._live, False, None
        if self._replay_task is not None:
            await _cancel(self._replay_task)
            self._replay_task = None
        for device in self._devices.values():
            device.born = False
        in_flight = self.forward.in_flight()
        if was_live:  # what went out just before the connection was lost may not have arrived: store it again
            await self._store(in_flight)

    async def _birth(self) -> None:
        """NBIRTH (seq 0) and a DBIRTH for every network that has a snapshot."""
        networks = self._networks()
        async with self._lock:
            timestamp = now_ms()
            self._seq = 0
            specs = m.node_specs()
            values = {m.BD_SEQ: self.bd_seq, m.REBIRTH: False,
                      "Properties/Software": f"plc-anna {plc_anna.__version__}", "Properties/Networks": len(networks)}
            birth = NBirth(timestamp=timestamp, seq=self._next_seq(),
                           metrics=tuple(m.metric(spec, values[spec.name], timestamp) for spec in specs))
            self._node_birth = birth
            await self._client.publish(self.topics["NBIRTH"], birth.encode(), qos=0)
        self.stats.births += 1
        for name, source in networks.items():
            snapshot = source.latest
            if snapshot is not None:
                await self._device_birth(name, self._device(name), snapshot, source)

    def _prepare(self, device: _Device, snapshot) -> None:
        """Name the device's metrics for the snapshot's layers (again when their shape changed)."""
        if not device.specs or device.shape != _shape(snapshot):
            device.specs = m.device_specs(snapshot, device.index, self.config.commands)
            device.by_name = {spec.name: spec for spec in device.specs}
            device.shape = _shape(snapshot)
            device.born = False

    async def _device_birth(self, name: str, device: _Device, snapshot, source: NetworkSource) -> None:
        values = m.device_values(snapshot, source.stats, source.link)
        self._prepare(device, snapshot)
        commands = {spec.name: False for spec in device.specs if spec.name.startswith("Compensator/")}
        timestamp = device.stamp()
        async with self._lock:
            client = self._client
            if client is None:  # the connection went while this waited for the lock
                device.last = values
                await self._store([(name, timestamp, values)])
                return
            birth = DBirth(timestamp=timestamp, seq=self._next_seq(),
                           metrics=tuple(m.metric(spec, {**values, **commands}[spec.name], timestamp)
                                         for spec in device.specs))
            try:
                await client.publish(self._device_topic("DBIRTH", name), birth.encode(), qos=0)
            except aiomqtt.MqttError:
                device.last = values
                await self._store([(name, timestamp, values)])  # the snapshot this birth carried is not lost
                raise
        device.birth, device.last, device.born = birth, values, True
        self.forward.sent(name, timestamp, values)
        if client is not self._client:  # the connection went away meanwhile: store what it carried
            await self._store([(name, timestamp, values)])

    async def _publish_deaths(self) -> None:
        async with self._lock:
            for name, device in self._devices.items():
                if device.born:
                    await self._client.publish(self._device_topic("DDEATH", name),
                                               DDeath(timestamp=now_ms(), seq=self._next_seq()).encode(), qos=0)
                    device.born = False
            death = NDeath(timestamp=now_ms(), bd_seq_metric=Metric(timestamp=now_ms(), name=m.BD_SEQ,
                                                                     datatype=DataType.INT64, value=self.bd_seq))
            await self._client.publish(self.topics["NDEATH"], death.encode(), qos=1)

    # ---------------------------------------------------------------- the sampler
    async def _sampler(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.config.publish_ms / 1000.0
        deadline = loop.time()
        while True:
            try:
                await self._sample()
            except Exception:  # one bad period must not stop publishing
                logger.exception("Sparkplug edge node %s: a publishing period failed", self.config.edge_node_id)
            deadline, _ = next_deadline(deadline, loop.time(), period)
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    async def _sample(self) -> None:
        networks = self._networks()
        offline: list[tuple[str, int, dict[str, Any]]] = []
        for name, source in networks.items():
            snapshot = source.latest
            if snapshot is None:
                continue
            device = self._device(name)
            self._prepare(device, snapshot)
            live = self._live
            if live and not device.born:
                try:
                    await self._device_birth(name, device, snapshot, source)
                except aiomqtt.MqttError:
                    pass  # stored; the session notices the lost connection
                continue
            values = m.device_values(snapshot, source.stats, source.link)
            changes = {k: v for k, v in values.items() if k not in device.last or m.changed(device.last[k], v)}
            if not changes:
                continue
            device.last.update(changes)
            timestamp = device.stamp()
            if live and device.born and await self._publish_data(name, device, changes, timestamp):
                continue
            offline.append((name, timestamp, changes))
        for name, device in self._devices.items():
            if device.born and name not in networks:
                async with self._lock:
                    if self._live and self._client is not None:
                        with contextlib.suppress(aiomqtt.MqttError):
                            await self._client.publish(self._device_topic("DDEATH", name), DDeath(
                                timestamp=now_ms(), seq=self._next_seq()).encode(), qos=0)
                device.born = False
        await self._store(offline)
        if self._live:
            await self.forward.confirm()

    async def _publish_data(self, name: str, device: _Device, changes: dict[str, Any], timestamp: int) -> bool:
        """Publish a DDATA of ``changes``; False when the connection is gone (the caller stores them)."""
        specs = device.by_name
        metrics = tuple(m.metric(specs[k], v, timestamp, with_name=False) for k, v in changes.items() if k in specs)
        async with self._lock:
            client = self._client
            if client is None or not self._live:
                return False
            data = DData(timestamp=timestamp, seq=self._next_seq(), metrics=metrics)
            try:
                await client.publish(self._device_topic("DDATA", name), data.encode(), qos=0)
            except aiomqtt.MqttError:
                return False
        if client is not self._client:  # lost while it went out (and after the recent data was stored again)
            return False
        self.stats.published += 1
        self.forward.sent(name, timestamp, changes)
        return True

    async def _store(self, rows: list[tuple[str, int, dict[str, Any]]]) -> None:
        if not rows:
            return
        encoded = []
        for name, timestamp, changes in rows:
            device = self._devices[name]
            metrics = tuple(m.metric(device.by_name[k], v, timestamp, historical=True)
                            for k, v in changes.items() if k in device.by_name)
            if metrics:
                encoded.append((name, timestamp, DData(timestamp=timestamp, seq=0, metrics=metrics)))
        await self.forward.store([(n, t, d.encode(include_dtypes=True)) for n, t, d in encoded])
        self.stats.stored += len(encoded)

    async def _replay(self) -> None:
        """Publish the store as historical DDATA, oldest first (rows leave it once confirmed)."""
        client, after = self._client, 0
        while self._live and self._client is client:
            rows = await self.forward.batch(after, _REPLAY_BATCH)
            if not rows:
                return
            gone: list[int] = []
            sent = 0
            for row_id, name, _, payload in rows:
                device = self._devices.get(name)
                if device is None or not device.born:
                    if name in self._networks():
                        break  # its DBIRTH is still to come: go on after it, in order
                    logger.warning("Sparkplug edge node: stored data of network %s, which is no longer served, "
                                   "is dropped", name)
                    gone.append(row_id)
                    after = row_id
                    continue
                data = DData.decode(payload)
                async with self._lock:
                    if not self._live or self._client is not client:
                        return
                    replay = dataclasses.replace(data, seq=self._next_seq())
                    try:
                        await client.publish(self._device_topic("DDATA", name), replay.encode(include_dtypes=True),
                                             qos=0)
                    except aiomqtt.MqttError:
                        return
                after = row_id
                sent += 1
                self.stats.replayed += 1
                self.forward.replayed(row_id)
            await self.forward.forget(gone)
            if not sent:
                await asyncio.sleep(self.config.publish_ms / 1000)

    # ---------------------------------------------------------------- commands
    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        parts = topic.split("/")
        payload = bytes(message.payload or b"")
        if len(parts) == 3 and parts[1] == "STATE":
            await self._on_state(payload, topic)
        elif len(parts) == 4 and parts[2] == "NCMD":
            await self._on_node_command(payload, topic)
        elif len(parts) == 5 and parts[2] == "DCMD":
            await self._on_device_command(parts[4], payload, topic)

    async def _on_state(self, payload: bytes, topic: str) -> None:
        try:
            state = json.loads(payload)
            online, timestamp = state["online"], int(state.get("timestamp", 0))
            if not isinstance(online, bool):
                raise ValueError("online is not a boolean")
        except (ValueError, TypeError, KeyError) as exc:
            self.stats.malformed += 1
            logger.warning("ignored a malformed STATE message on %s: %s", topic, exc)
            return
        if timestamp < self._state_timestamp:
            return  # an older message than one already seen
        self._state_timestamp = timestamp
        if online and not self._live:
            logger.info("primary host %s is online: publishing births", self.config.primary_host_id)
            await self._go_live()
        elif not online and self._live:
            logger.warning("primary host %s went offline: data goes to the store until it is back",
                           self.config.primary_host_id)
            self._live = False  # from now on the sampler stores; in-flight data is stored again below
            with contextlib.suppress(aiomqtt.MqttError, asyncio.TimeoutError):
                # The host's Will often comes from a broker that is shutting down: do not wait on it.
                await asyncio.wait_for(self._publish_deaths(), 1.0)
            await self._store(self.forward.in_flight())
            raise _PrimaryOffline()

    async def _on_node_command(self, payload: bytes, topic: str) -> None:
        try:
            command = NCmd.decode(payload, birth=self._node_birth)
            names = [(metric.name, metric.value) for metric in command.metrics]
        except Exception as exc:  # anything that is not a Sparkplug payload this node understands
            self.stats.malformed += 1
            logger.warning("ignored a malformed NCMD on %s: %s", topic, exc or type(exc).__name__)
            return
        for name, value in names:
            if name == m.REBIRTH and value is True:
                if self._live:
                    logger.info("rebirth requested on %s", topic)
                    await self._birth()
            else:
                self.stats.commands_refused += 1
                logger.warning("refused the node command %r = %r on %s: only %r is accepted", name, value, topic,
                               m.REBIRTH)

    async def _on_device_command(self, name: str, payload: bytes, topic: str) -> None:
        device = self._devices.get(name)
        source = self._networks().get(name)
        if device is None or not device.born or source is None:
            self.stats.commands_refused += 1
            logger.warning("refused a DCMD on %s: no network %r is born on this node", topic, name)
            return
        try:
            command = DCmd.decode(payload, birth=device.birth)
            requested = [(metric.name, metric.value) for metric in command.metrics]
        except Exception as exc:  # a garbled payload, an unknown alias: refuse it whole
            self.stats.malformed += 1
            logger.warning("ignored a malformed DCMD on %s: %s", topic, exc or type(exc).__name__)
            return
        for metric_name, value in requested:
            command_name = metric_name.removeprefix("Compensator/") if metric_name else ""
            if not (metric_name.startswith("Compensator/") and command_name in self.config.commands
                    and value is True):
                self.stats.commands_refused += 1
                logger.warning("refused the device command %r = %r for %s: the allowed commands are %s",
                               metric_name, value, name, list(self.config.commands) or "none (sparkplug.commands)")
                continue
            try:
                await source.command(COMMAND_NAMES[command_name])
            except ValueError as exc:
                logger.warning("the device command %s for %s failed: %s", command_name, name, exc)
                continue
            self.stats.commands_run += 1
            logger.info("ran the device command %s for %s (from %s)", command_name, name, topic)

    # ---------------------------------------------------------------- helpers
    def _device(self, name: str) -> _Device:
        device = self._devices.get(name)
        if device is None:
            device = self._devices[name] = _Device(index=len(self._devices))
        return device

    def _device_topic(self, kind: str, device: str) -> str:
        return f"{NAMESPACE}/{self.config.group_id}/{kind}/{self.config.edge_node_id}/{device}"

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) % 256
        return seq


def _shape(snapshot) -> tuple:
    return tuple(len(layer.gain) for layer in snapshot.layers)


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
