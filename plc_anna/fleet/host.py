"""The fleet host: a Sparkplug B host application that follows every edge node of a group.

::

    settings = BrokerSettings("mqtt://127.0.0.1:1883")
    async with FleetHost(settings, group="plant", store=FleetStore("fleet.sqlite")) as host:
        await asyncio.sleep(10.0)             # the host follows the group meanwhile
        rows = host.rows()                   # one per network: what the table shows

On connection it publishes its STATE (``spBv1.0/STATE/<host_id>``, retained,
``{"online": true, "timestamp": ...}``; the Will says offline) and subscribes
to the group. It keeps every node (online, bdSeq, last birth, the sequence
number) and every device (online, last birth, each metric's newest value).
A message whose ``seq`` is not the previous one plus 1 (mod 256) is a gap:
counted, and the node is asked to rebirth (NCMD ``Node Control/Rebirth``),
as is a node or device that sends data without a birth the host has seen. An
NDEATH takes a node and its devices offline when its bdSeq is the one of the
node's last NBIRTH (an older one is a stale Will and ignored).

Every device metric (births, live and historical data) goes to the
historian in batches, on a thread of its own. A payload that does not decode
is counted and logged, one line, and the host goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import numpy as np
from pysparkplug import DataType, DBirth, DData, DDeath, Metric, NBirth, NCmd, NData, NDeath

from plc_anna.fleet.store import HistoryStore, Sample
from plc_anna.sparkplug.metrics import BD_SEQ, REBIRTH
from plc_anna.sparkplug.mqtt import BrokerSettings, connect_error

logger = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
#: A node is asked to rebirth at most this often.
REBIRTH_INTERVAL_S = 1.0
FLUSH_INTERVAL_S = 0.5
LATENCY_WINDOW = 200_000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class DeviceState:
    """One network of an edge node as the host knows it."""

    name: str
    online: bool = False
    last_birth_ms: int | None = None
    birth: DBirth | None = None
    values: dict[str, Any] = field(default_factory=dict)
    updated_ms: int | None = None


@dataclass
class NodeState:
    """One edge node as the host knows it."""

    group_id: str
    node: str
    online: bool = False
    bd_seq: int | None = None
    last_birth_ms: int | None = None
    seq: int | None = None
    seq_gaps: int = 0
    rebirths_requested: int = 0
    offline_since: float | None = None
    """``time.monotonic()`` when its NDEATH arrived (None while online)."""
    devices: dict[str, DeviceState] = field(default_factory=dict)
    birth: NBirth | None = None
    _last_rebirth_request: float = -float("inf")


class FleetHost:
    """A Sparkplug host application on ``settings``'s broker.

    Parameters
    ----------
    settings
        The broker and login.
    group
        The Sparkplug group to follow; None: every group.
    host_id
        This host's id (its STATE topic).
    store
        The historian, or None to keep only the newest values.
    on_change
        Called (no arguments) after a message changed what the host knows.
    """

    def __init__(self, settings: BrokerSettings, group: str | None = None, host_id: str = "plc-anna-fleet",
                 store: HistoryStore | None = None, on_change: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.group = group
        self.host_id = host_id
        self.store = store
        self.on_change = on_change
        self.nodes: dict[tuple[str, str], NodeState] = {}
        self.connected = False
        self.last_error = ""
        self.messages = 0
        self.malformed = 0
        self.historized = 0
        self.live_values = 0
        """Metric values received in live (not historical) DDATA."""
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        """End-to-end latency of live DDATA: receipt here minus the payload's timestamp."""
        self._pending: list[Sample] = []
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plc-anna-fleet-store")
        self._birth_ms = now_ms()

    # ---------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> FleetHost:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._session(), name="fleet-session")
        self._flusher = asyncio.create_task(self._flush_loop(), name="fleet-historian")

    async def stop(self) -> None:
        """Say offline (STATE), disconnect, write what is pending to the historian."""
        if self._client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError, asyncio.TimeoutError):
                await asyncio.wait_for(self._client.publish(self.state_topic, self._state(False), qos=1, retain=True),
                                       5.0)
        for task in (self._task, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._flush()
        await asyncio.get_running_loop().run_in_executor(None, self._worker.shutdown, True)

    @property
    def state_topic(self) -> str:
        return f"{NAMESPACE}/STATE/{self.host_id}"

    def _state(self, online: bool) -> bytes:
        return json.dumps({"online": online, "timestamp": self._birth_ms}).encode()

    # ---------------------------------------------------------------- the session
    async def _session(self) -> None:
        backoff = 0.5
        while True:
            self._birth_ms = now_ms()
            will = aiomqtt.Will(self.state_topic, self._state(False), qos=1, retain=True)
            try:
                async with self.settings.client(f"plc-anna-host-{self.host_id}", will=will) as client:
                    self._client, self.connected, backoff = client, True, 0.5
                    if self.last_error:
                        logger.info("fleet host connected to %s", self.settings.url)
                    self.last_error = ""
                    await client.subscribe(self.state_topic, qos=1)
                    await client.subscribe(f"{NAMESPACE}/{self.group or '+'}/#", qos=0)
                    await client.publish(self.state_topic, self._state(True), qos=1, retain=True)
                    async for message in client.messages:
                        self._on_message(str(message.topic), bytes(message.payload or b""))
            except (aiomqtt.MqttError, OSError) as exc:
                text = connect_error(exc, self.settings.url)
                if text != self.last_error:
                    logger.warning("fleet host: %s; retrying", text)
                self.last_error = text
            finally:
                self._client, self.connected = None, False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _on_message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != NAMESPACE or parts[1] == "STATE":
            return
        self.messages += 1
        group, kind, node_id = parts[1], parts[2], parts[3]
        device = parts[4] if len(parts) > 4 else None
        if kind in ("NCMD", "DCMD"):
            return
        try:
            changed = self._handle(group, kind, node_id, device, payload)
        except Exception as exc:  # a payload that is not Sparkplug B: one line, then go on
            self.malformed += 1
            if self.malformed <= 10 or self.malformed % 1000 == 0:
                logger.warning("fleet host: ignored a malformed %s on %s (%s; %d so far)", kind, topic,
                               str(exc) or type(exc).__name__, self.malformed)
            return
        if changed and self.on_change is not None:
            self.on_change()

    def _handle(self, group: str, kind: str, node_id: str, device_name: str | None, payload: bytes) -> bool:
        key = (group, node_id)
        node = self.nodes.get(key)
        received = now_ms()
        if kind == "NBIRTH":
            birth = NBirth.decode(payload)
            values = {metric.name: metric.value for metric in birth.metrics}
            if BD_SEQ not in values:
                raise ValueError("an NBIRTH without bdSeq")
            node = self.nodes.setdefault(key, NodeState(group, node_id))
            node.online, node.bd_seq, node.birth, node.seq = True, int(values[BD_SEQ]), birth, birth.seq
            node.last_birth_ms, node.offline_since = birth.timestamp, None
            for device in node.devices.values():
                device.online = False
            return True
        if kind == "NDEATH":
            death = NDeath.decode(payload)
            bd_seq = int(death.bd_seq_metric.value)
            if node is not None and node.bd_seq == bd_seq and node.online:
                node.online, node.offline_since = False, time.monotonic()
                for device in node.devices.values():
                    device.online = False
                return True
            return False
        if kind not in ("DBIRTH", "DDATA", "DDEATH", "NDATA"):
            raise ValueError(f"unknown message type {kind}")
        if node is None or not node.online:
            self._request_rebirth(group, node_id, node, f"{kind} from a node without a birth seen")
            return False
        if kind == "DBIRTH":
            message = DBirth.decode(payload)
        elif kind == "DDATA":
            device = node.devices.get(device_name or "")
            if device is None or device.birth is None:
                self._check_seq(node, _seq_of(payload))
                self._request_rebirth(group, node_id, node, f"DDATA of {device_name} without its DBIRTH")
                return False
            message = DData.decode(payload, birth=device.birth)
        elif kind == "DDEATH":
            message = DDeath.decode(payload)
        else:
            message = NData.decode(payload, birth=node.birth)
        self._check_seq(node, message.seq)
        if kind == "NDATA":
            return False
        device = node.devices.setdefault(device_name, DeviceState(device_name))
        if kind == "DDEATH":
            device.online = False
            return True
        if kind == "DBIRTH":
            device.online, device.birth, device.last_birth_ms = True, message, message.timestamp
        live = False
        samples = []
        for metric in message.metrics:
            stamp = metric.timestamp if metric.timestamp is not None else message.timestamp
            value = _plain(metric)
            samples.append(Sample(group, node_id, device_name, metric.name, stamp, value, metric.is_historical))
            if not metric.is_historical:
                device.values[metric.name] = value
                live = True
        if live:
            device.updated_ms = message.timestamp
            if kind == "DDATA":
                self.latencies_ms.append(received - message.timestamp)
                self.live_values += sum(not metric.is_historical for metric in message.metrics)
        if self.store is not None:
            self._pending.extend(samples)
        return live

    def _check_seq(self, node: NodeState, seq: int | None) -> None:
        if seq is None:
            return
        expected = None if node.seq is None else (node.seq + 1) % 256
        node.seq = seq
        if expected is not None and seq != expected:
            node.seq_gaps += 1
            self._request_rebirth(node.group_id, node.node, node, f"seq {seq} after {(expected - 1) % 256}")

    def _request_rebirth(self, group: str, node_id: str, node: NodeState | None, why: str) -> None:
        if node is None:
            node = self.nodes.setdefault((group, node_id), NodeState(group, node_id))
        now = time.monotonic()
        if now - node._last_rebirth_request < REBIRTH_INTERVAL_S or self._client is None:
            return
        node._last_rebirth_request = now
        node.rebirths_requested += 1
        logger.info("fleet host: asking %s/%s to rebirth (%s)", group, node_id, why)
        command = NCmd(timestamp=now_ms(), metrics=(Metric(timestamp=now_ms(), name=REBIRTH,
                                                           datatype=DataType.BOOLEAN, value=True),))
        client = self._client
        asyncio.get_running_loop().create_task(
            _publish_quietly(client, f"{NAMESPACE}/{group}/NCMD/{node_id}", command.encode()))

    # ---------------------------------------------------------------- the historian
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            await self._flush()

    async def _flush(self) -> None:
        if self.store is None or not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            self.historized += await asyncio.get_running_loop().run_in_executor(self._worker, self.store.append, batch)
        except Exception:  # a full disk must not stop the host; the log says what failed
            logger.exception("fleet host: could not write %d samples to the historian", len(batch))

    # ---------------------------------------------------------------- reading
    @property
    def seq_gaps(self) -> int:
        return sum(node.seq_gaps for node in self.nodes.values())

    @property
    def rebirths_requested(self) -> int:
        return sum(node.rebirths_requested for node in self.nodes.values())


def _seq_of(payload: bytes) -> int | None:
    try:
        return DDeath.decode(payload).seq
    except Exception:  # no seq to read
        return None


def _plain(metric: Metric) -> Any:
    value = metric.value
    if metric.is_null:
        return None
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


async def _publish_quietly(client: aiomqtt.Client, topic: str, payload: bytes) -> None:
    with contextlib.suppress(aiomqtt.MqttError):
        await client.publish(topic, payload, qos=0)
