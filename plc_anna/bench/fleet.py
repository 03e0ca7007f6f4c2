"""``plc-anna bench fleet``: edge nodes, a real broker on loopback and the fleet host, end to end.

``nodes`` edge nodes, each serving ``networks`` synthetic networks of two
layers of ``columns`` columns (:class:`~plc_anna.sparkplug.synthetic.SyntheticNetwork`:
the edge node's side is driven by synthetic snapshots, not by compensators,
so the measurement is of the Sparkplug path alone), run in ``processes``
processes of their own (:mod:`plc_anna.bench.fleet_nodes`); the broker
(Mosquitto, else amqtt) is a process of its own; the fleet host with its
SQLite historian runs in this process. Every network's snapshot changes every
publishing period, so every DDATA carries every metric but the constant ones.
What each number measures:

- ``metrics_per_s``: live metric values the host received per second in the
  steady phase (``seconds`` long).
- ``latency_ms``: end to end, receipt at the host minus the DDATA payload's
  timestamp (taken by the edge node when it read the snapshot, before
  encoding), p50 and p99 over every live DDATA of the steady phase; same
  machine, same clock.
- ``bare_mqtt_latency_ms``: the baseline, measured in the same run before the
  nodes start: a plain MQTT client publishes as many payloads of the same size
  as the steady phase's DDATA (``nodes x networks`` every publishing period,
  in one burst) through the same broker to a plain subscriber in this
  process, each carrying its send time; p50 and p99 of receipt minus send.
  The difference to ``latency_ms`` is what Sparkplug encoding and decoding,
  report by exception, the node processes and the host's bookkeeping add.
- ``seq_gaps``: sequence-number gaps the host saw in the steady phase.
- ``lost``: scans (each network's ``Scan/Count``, one per snapshot read) that
  never reached the historian, over the whole run, counted after the
  networks are held at their last scan and the nodes have published it.
- ``broker_restart``: the broker is stopped (SIGTERM) and started again
  after ``down_s``; ``rebirth_s`` is the time from the broker listening again
  to the host holding a new NBIRTH of every node (the host is the nodes'
  primary host, so this includes the host's own reconnection and STATE); ``replayed`` the scans that
  arrived as historical (store-and-forward); ``lost`` the scans of the outage
  that never arrived.
- ``node_kill``: one node process is killed (SIGKILL); ``offline_detected_s``
  is the time until the host shows all its nodes offline (NDEATH from their
  Wills), next to ``limit_s`` = 1.5 keepalive.

Timings move with machine load (``machine``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import aiomqtt

from plc_anna.bench.cycle import machine
from plc_anna.fleet.host import FleetHost
from plc_anna.fleet.store import FleetStore
from plc_anna.sparkplug.broker import LocalBroker
from plc_anna.sparkplug.mqtt import BrokerSettings

GROUP = "bench"
#: The fleet host is the nodes' primary host: their births and replays wait for its STATE.
HOST_ID = "bench-host"
#: The issue's targets, checked on a run of exactly this size and publishing period.
TARGET_SIZE = {"nodes": 32, "networks": 4, "columns": 256, "publish_ms": 1000}
LATENCY_P99_MS = 100.0
REBIRTH_S = 5.0


class NodeProcesses:
    """Node processes of :mod:`plc_anna.bench.fleet_nodes` (start, wait ready, freeze, stop, kill)."""

    def __init__(self, directory: Path, broker_url: str, node_ids: list[str], processes: int, networks: int,
                 columns: int, publish_ms: int, keepalive_s: int, commands: tuple[str, ...] = (),
                 seed: int = 0) -> None:
        self.groups = [node_ids[k::processes] for k in range(processes) if node_ids[k::processes]]
        self.procs: list[subprocess.Popen] = []
        for k, nodes in enumerate(self.groups):
            settings = {"broker": broker_url, "group": GROUP, "nodes": nodes, "networks": networks, "columns": columns,
                        "publish_ms": publish_ms, "keepalive_s": keepalive_s, "directory": str(directory / f"p{k}"),
                        "commands": list(commands), "seed": seed, "primary_host_id": HOST_ID}
            path = directory / f"nodes{k}.json"
            path.write_text(json.dumps(settings))
            self.procs.append(subprocess.Popen([sys.executable, "-m", "plc_anna.bench.fleet_nodes", str(path)],
                                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                               start_new_session=True))

    async def ready(self, timeout_s: float = 120.0) -> None:
        for proc in self.procs:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout_s)
            if line.strip() != "ready":
                raise RuntimeError(f"a node process did not come up (exit code {proc.poll()})")

    async def freeze(self) -> dict[str, int]:
        finals: dict[str, int] = {}
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)
        for proc in self.procs:
            if proc.poll() is None:
                finals.update(json.loads(await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)))
        return finals

    def kill(self, index: int) -> list[str]:
        self.procs[index].kill()
        return self.groups[index]

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(asyncio.to_thread(proc.wait), 20)
            except asyncio.TimeoutError:
                proc.kill()
            proc.stdout.close()


async def _until(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.01) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(step_s)
    return predicate()


def ddata_size(columns: int) -> int:
    """Bytes of a DDATA of a synthetic network whose every changing metric changed (two layers of ``columns``)."""
    from pysparkplug import DData

    from plc_anna.sparkplug import metrics as m
    from plc_anna.sparkplug.synthetic import SyntheticNetwork

    net = SyntheticNetwork("net", 2, columns)
    before = m.device_values(net.latest, None, None)
    after = m.device_values(net.advance(), None, None)
    specs = {spec.name: spec for spec in m.device_specs(net.latest, 0, ())}
    changes = [m.metric(specs[k], v, 0, with_name=False) for k, v in after.items() if m.changed(before[k], v)]
    return len(DData(timestamp=0, seq=0, metrics=tuple(changes)).encode())


async def bare_mqtt_latency(broker: LocalBroker, per_period: int, size: int, period_s: float,
                            seconds: float) -> dict[str, float | None]:
    """The baseline of the module docstring: plain MQTT bursts through ``broker``, p50/p99 latency in ms."""
    received: list[float] = []
    padding = bytes(max(0, size - 8))
    async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber, \
            aiomqtt.Client("127.0.0.1", broker.port) as publisher:
        await subscriber.subscribe("bench/bare/#", qos=0)

        async def listen() -> None:
            async for message in subscriber.messages:
                sent, = struct.unpack_from("<d", message.payload)
                received.append(1e3 * (time.time() - sent))

        listener = asyncio.create_task(listen())
        loop = asyncio.get_running_loop()
        deadline, end = loop.time(), loop.time() + seconds
        while deadline < end:
            for k in range(per_period):
                await publisher.publish(f"bench/bare/{k}", struct.pack("<d", time.time()) + padding, qos=0)
            deadline += period_s
            await asyncio.sleep(max(0.0, deadline - loop.time()))
        await asyncio.sleep(0.5)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    if not received:
        return {"p50": None, "p99": None}
    return {"p50": float(np.percentile(received, 50)), "p99": float(np.percentile(received, 99))}


async def fleet_run(nodes: int, networks: int, columns: int, seconds: float, publish_ms: int = 1000,
                    keepalive_s: int = 5, processes: int = 2, down_s: float = 2.0, broker_kind: str | None = None,
                    seed: int = 0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One run (see the module docstring); its JSON row."""
    say = progress or (lambda text: None)
    node_ids = [f"node{k:02d}" for k in range(nodes)]
    with tempfile.TemporaryDirectory(prefix="plc-anna-bench-fleet-") as tmp:
        directory = Path(tmp)
        async with LocalBroker(directory / "broker", kind=broker_kind) as broker:
            store = FleetStore(directory / "fleet.sqlite")
            host = FleetHost(BrokerSettings(broker.url, keepalive_s=keepalive_s), group=GROUP, host_id=HOST_ID,
                             store=store)
            await host.start()
            await _until(lambda: host.connected, 10)
            size = ddata_size(columns)
            say(f"baseline: plain MQTT, {nodes * networks} payloads of {size} bytes every {publish_ms} ms")
            bare = await bare_mqtt_latency(broker, nodes * networks, size, publish_ms / 1000, min(seconds, 10.0))
            fleet = NodeProcesses(directory, broker.url, node_ids, min(processes, nodes), networks, columns,
                                  publish_ms, keepalive_s, seed=seed)
            try:
                await fleet.ready()
                everyone = lambda: len(host.nodes) == nodes and all(  # noqa: E731
                    n.online and len(n.devices) == networks and all(d.online for d in n.devices.values())
                    for n in host.nodes.values())
                if not await _until(everyone, 60):
                    raise RuntimeError("the host did not see every node and network online within 60 s")
                say(f"{nodes} nodes x {networks} networks online on {broker.kind}; measuring {seconds:g} s")
                await asyncio.sleep(2 * publish_ms / 1000)
                gaps0, values0 = host.seq_gaps, host.live_values
                host.latencies_ms.clear()
                t0 = time.monotonic()
                await asyncio.sleep(seconds)
                elapsed = time.monotonic() - t0
                latencies = np.asarray(host.latencies_ms, dtype=float)
                steady = {"metrics_per_s": (host.live_values - values0) / elapsed,
                          "latency_ms": {"p50": float(np.percentile(latencies, 50)) if latencies.size else None,
                                         "p99": float(np.percentile(latencies, 99)) if latencies.size else None},
                          "ddata": int(latencies.size), "seq_gaps": host.seq_gaps - gaps0}
                say("restarting the broker")
                births = {key: node.last_birth_ms for key, node in host.nodes.items()}
                last_live = {key: _newest_scan(host, key) for key in births}
                await broker.stop()
                await asyncio.sleep(down_s)
                await broker.start()
                t_up = time.monotonic()
                reborn = await _until(lambda: all(
                    n.online and n.last_birth_ms != births.get(key) for key, n in host.nodes.items()), 60)
                rebirth_s = time.monotonic() - t_up if reborn else None
                await asyncio.sleep(3 * publish_ms / 1000 + 2.0)
                first_live = {key: _newest_scan(host, key) for key in births}
                finals = await fleet.freeze()
                await asyncio.sleep(2 * publish_ms / 1000 + 1.0)
                await host._flush()  # noqa: SLF001 - the bench reads the historian now
                lost, outage_lost, replayed = _count(store, finals, last_live, first_live)
                say("killing one node process (SIGKILL)")
                killed = fleet.kill(0)
                t_kill = time.monotonic()
                gone = await _until(lambda: all(not host.nodes[(GROUP, n)].online for n in killed),
                                    3 * keepalive_s + 10)
                offline_s = time.monotonic() - t_kill if gone else None
            finally:
                await fleet.stop()
                await host.stop()
                store.close()
            return {"nodes": nodes, "networks": networks, "columns": columns, "layers": 2, "publish_ms": publish_ms,
                    "processes": len(fleet.procs), "broker": broker.kind, "seconds": round(elapsed, 3),
                    **steady, "ddata_bytes": size, "bare_mqtt_latency_ms": bare, "scans": sum(finals.values()),
                    "lost": lost,
                    "broker_restart": {"down_s": down_s, "rebirth_s": rebirth_s, "replayed": replayed,
                                       "lost": outage_lost},
                    "node_kill": {"nodes_killed": len(killed), "keepalive_s": keepalive_s,
                                  "offline_detected_s": offline_s, "limit_s": 1.5 * keepalive_s},
                    "host": {"messages": host.messages, "malformed": host.malformed,
                             "rebirths_requested": host.rebirths_requested, "historized": host.historized}}


def _newest_scan(host: FleetHost, key: tuple[str, str]) -> dict[str, int]:
    node = host.nodes[key]
    return {name: int(device.values.get("Scan/Count", 0)) for name, device in node.devices.items()}


def _count(store: FleetStore, finals: dict[str, int], before: dict, after: dict) -> tuple[int, int, int]:
    """Lost scans over the run, lost scans of the outage, and scans that arrived as historical."""
    received: dict[str, set[int]] = {}
    historical = 0
    for sample in store.samples(name="Scan/Count"):
        received.setdefault(f"{sample.node}/{sample.device}", set()).add(int(sample.value))
        historical += sample.historical
    lost = outage_lost = 0
    for key, final in finals.items():
        got = received.get(key, set())
        missing = set(range(1, final + 1)) - got
        lost += len(missing)
        node, device = key.split("/")
        low = before.get((GROUP, node), {}).get(device, 0)
        high = after.get((GROUP, node), {}).get(device, final)
        outage_lost += sum(1 for scan in missing if low < scan <= high)
    return lost, outage_lost, historical


def check_targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of the issue, met or not on the run of :data:`TARGET_SIZE` (None when there is no such run)."""
    run = next((r for r in runs if all(r[k] == v for k, v in TARGET_SIZE.items())), None)
    size = "32 nodes x 4 networks x 256 columns at 1 s publishing"
    checks = [
        ("0 lost", lambda r: r["lost"] == 0),
        ("0 seq gaps", lambda r: r["seq_gaps"] == 0),
        (f"end-to-end latency p99 <= {LATENCY_P99_MS:g} ms",
         lambda r: r["latency_ms"]["p99"] is not None and r["latency_ms"]["p99"] <= LATENCY_P99_MS),
        (f"after a broker restart every node reborn within {REBIRTH_S:g} s",
         lambda r: r["broker_restart"]["rebirth_s"] is not None and r["broker_restart"]["rebirth_s"] <= REBIRTH_S),
        ("the replay after a broker restart loses nothing", lambda r: r["broker_restart"]["lost"] == 0),
        ("a killed node (SIGKILL) shown offline within 1.5x the keepalive",
         lambda r: r["node_kill"]["offline_detected_s"] is not None
         and r["node_kill"]["offline_detected_s"] <= r["node_kill"]["limit_s"]),
    ]
    out = []
    for text, check in checks:
        target = f"{size}: {text}"
        if run is None:
            out.append({"target": target, "met": None, "why": "no run of that size and publishing period"})
        else:
            out.append({"target": target, "met": bool(check(run))})
    return out


def run_fleet_bench(sizes: list[tuple[int, int, int]], seconds: float, publish_ms: int = 1000, keepalive_s: int = 5,
                    processes: int = 2, broker_kind: str | None = None, seed: int = 0,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every ``(nodes, networks, columns)`` run in turn: ``{"runs", "targets", "machine"}``."""
    runs = [asyncio.run(fleet_run(n, k, c, seconds, publish_ms=publish_ms, keepalive_s=keepalive_s,
                                  processes=processes, broker_kind=broker_kind, seed=seed, progress=progress))
            for n, k, c in sizes]
    return {"runs": runs, "targets": check_targets(runs), "machine": machine()}
