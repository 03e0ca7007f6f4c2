"""``plc-anna bench endpoint``: the server's endpoint under a garbage storm and fuzzed OPC UA binary frames.

The server runs as ``plc-anna serve --test-rig`` in a process of its own
(:func:`plc_anna.testing.serve_process`), so its memory and descriptors are
its own; the clients here are raw sockets and one asyncua client.

- **Storm**: ``connections`` connections (at most ``concurrency`` open at
  once) each send garbage: random bytes, an HTTP request, a TLS ClientHello,
  or a truncated Hello. Each one's outcome: the Error message the server
  answered, whether and how soon it closed the connection
  (``close_s``: from the last byte sent to the end of the stream).
- **Fuzz**: ``messages`` payloads from :func:`~plc_anna.bench.fuzz.fuzz_payloads` (seeded):
  random bytes, valid Hellos with mutated fields, truncated Hellos, and a
  valid Hello followed by a mutated OpenSecureChannel or by a valid channel
  and a mutated request (``fuzz_channel``, which opens the channel first).
  Each connection is closed by the client once the server answered or after
  ``wait_s``: a fuzzed frame may be valid, and a valid channel stays open.
- **Probes**: before and after each, a normal client (anonymous, None)
  connects and reads ``ControllerLink.Heartbeat``, which the scan increments:
  ``read_s`` is the connect-and-read time, and the heartbeat must advance.
  The server's resident memory (VmRSS) and open descriptors are read from
  ``/proc`` at the start, after a warm-up (the baseline) and after the fuzz,
  once the server closed everything (polled for up to 10 s). The warm-up is
  ``warmup`` fuzzed payloads and a tenth as many garbage connections at the
  same concurrency, then a wait until the server's memory has settled
  (:func:`settle_memory`). What it takes is reported (``warmup_rss_growth``),
  not hidden: a fresh server grows by about 6 MB in its first minute with no
  client at all, and the first few thousand fuzzed connections raise the RSS
  by some 20 MB once (the allocator keeps the peak working set of 50
  connections at a time; tracemalloc sees the Python heap flat, 0.4 MiB after
  9000 connections), after which it levels off. The target is on the growth
  from the baseline: what keeps growing, connection after connection, is a
  leak (docs/benchmarks.md#endpoint).

The JSON's ``targets`` block checks the issue's targets, each on what this
run measured: a storm of at least 500 connections with every one closed
within 1 s and a normal read within 1 s of its end, the scan advancing; at
least 10 000 fuzzed messages with the server alive, its RSS within 5 % of the
baseline and its descriptors back to the baseline. A target this run was too
small to check reads ``null``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plc_anna.bench.cycle import machine, percentiles_ms
from plc_anna.bench.fuzz import client_channel, fuzz_payloads, garbage_payloads, open_channel_request

#: The issue's targets.
STORM_CONNECTIONS, FUZZ_MESSAGES = 500, 10_000
CLOSE_WITHIN_S, READ_WITHIN_S, RSS_GROWTH = 1.0, 1.0, 0.05



@dataclass(frozen=True)
class Outcome:
    """What one connection got: the frame types the server sent, the Error's status, closed by the server?"""

    kind: str
    answers: tuple[str, ...]
    error: str | None
    closed: bool
    close_s: float | None
    """From the payload sent to the server's close; None if it did not close within the wait."""


# ---------------------------------------------------------------- one connection

def _frames(data: bytes) -> tuple[tuple[str, ...], str | None]:
    """The message types in ``data`` and the status of an Error message among them (asyncua's decoder)."""
    from asyncua import ua
    from asyncua.common.utils import Buffer
    from asyncua.ua.ua_binary import header_from_binary, struct_from_binary

    kinds, error, buf = [], None, Buffer(data)
    while len(buf) >= 8:
        header = header_from_binary(buf)
        if len(buf) < header.body_size:
            break
        body = buf.copy(header.body_size)
        buf.skip(header.body_size)
        kinds.append(header.MessageType.decode("latin-1"))
        if header.MessageType == ua.MessageType.Error:
            error = struct_from_binary(ua.ErrorMessage, body).Error.name
    return tuple(kinds), error


async def _read_until(reader: asyncio.StreamReader, wait_s: float, stop: Callable[[bytes], bool]) -> tuple[bytes, bool]:
    """Read until the stream ends (closed: True), ``stop(data)`` holds, or ``wait_s`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    data = b""
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return data, False
        try:
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
        except TimeoutError:
            return data, False
        except ConnectionError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
        if stop(data):
            return data, False


async def _send_on_channel(reader, writer, url: str, body: bytes, wait_s: float) -> bool:
    """Open a None channel the way asyncua's client does, then send ``body`` as a request on it.

    False if the server did not open the channel (it should always).
    """
    from asyncua import ua
    from asyncua.common.utils import Buffer
    from asyncua.ua.ua_binary import header_from_binary, struct_from_binary

    from plc_anna.server.endpoint import hello_frame

    channel = client_channel()
    writer.write(hello_frame(url) + open_channel_request(channel))
    await writer.drain()
    data, closed = await _read_until(reader, wait_s, lambda d: {"OPN", "ERR"} & set(_frames(d)[0]) != set())
    if closed or "OPN" not in _frames(data)[0]:
        return False
    buf = Buffer(data[data.index(b"OPNF"):])
    message = channel.receive_from_header_and_body(header_from_binary(buf), buf)
    response = struct_from_binary(ua.OpenSecureChannelResponse, message.body())
    channel.set_channel(response.Parameters, ua.SecurityTokenRequestType.Issue, b"")
    writer.write(channel.message_to_binary(body, message_type=ua.MessageType.SecureMessage, request_id=2))
    await writer.drain()
    return True


async def exchange(port: int, url: str, kind: str, payload: bytes, wait_s: float) -> Outcome:
    """One connection: send ``payload`` (a request on a fresh channel for kind ``request``), read the answer."""
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return Outcome(kind, (), f"connect: {exc.strerror or exc}", True, 0.0)
    # A fuzzed frame may be valid: stop reading at the first answer that is not an Error (after the
    # Hello's ACK when the payload carries more than a Hello); after an Error, wait for the close.
    answers_wanted = 2 if kind == "open_channel" else 1
    start = loop.time()
    try:
        if kind == "request":
            if not await _send_on_channel(reader, writer, url, payload, wait_s):
                return Outcome(kind, (), "no channel", False, None)
        else:
            writer.write(payload)
            await writer.drain()
        start = loop.time()
        data, closed = await _read_until(reader, wait_s, lambda d: len(_frames(d)[0]) >= answers_wanted
                                         and b"ERRF" not in d)
    except (ConnectionError, OSError):
        data, closed = b"", True
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    answers, error = _frames(data)
    return Outcome(kind, answers, error, closed, loop.time() - start if closed else None)


async def run_connections(port: int, url: str, payloads: list[tuple[str, bytes]], concurrency: int,
                          wait_s: float) -> list[Outcome]:
    """Send every payload on a connection of its own, at most ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(kind: str, payload: bytes) -> Outcome:
        async with gate:
            return await exchange(port, url, kind, payload, wait_s)

    return list(await asyncio.gather(*(one(kind, payload) for kind, payload in payloads)))


# ---------------------------------------------------------------- the server, seen from outside

async def normal_read(endpoint: str, timeout: float = 10.0) -> tuple[float, int]:
    """An anonymous client connects and reads ``ControllerLink.Heartbeat``: (seconds taken, the heartbeat)."""
    from asyncua import Client, ua

    from plc_anna.server.model import NAMESPACE_URI

    start = time.perf_counter()
    async with Client(endpoint, timeout=timeout) as client:
        idx = await client.get_namespace_index(NAMESPACE_URI)
        beat = await client.get_node(ua.NodeId("ControllerLink.Heartbeat", idx)).read_value()
    return time.perf_counter() - start, int(beat)


def process_usage(pid: int) -> dict[str, int]:
    """Resident memory (bytes) and open file descriptors of a process, from ``/proc``."""
    rss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return {"rss_bytes": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


async def settled_usage(pid: int, fds: int, wait_s: float = 10.0) -> dict[str, int]:
    """:func:`process_usage` once the descriptors are back to ``fds`` (or after ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    usage = process_usage(pid)
    while usage["fds"] > fds and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        usage = process_usage(pid)
    return usage


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """Counts by kind and answer, and the close times, of a run of connections."""
    closes = [o.close_s for o in outcomes if o.close_s is not None]
    errored = [o for o in outcomes if o.error is not None]
    return {
        "connections": len(outcomes),
        "by_kind": dict(Counter(o.kind for o in outcomes)),
        "errors": dict(Counter(o.error for o in errored)),
        "answered_with_error": len(errored),
        "acknowledged_only": sum(1 for o in outcomes if o.answers == ("ACK",) and not o.closed),
        "unanswered": sum(1 for o in outcomes if not o.answers),
        "closed_by_server": sum(1 for o in outcomes if o.closed),
        "left_open": sum(1 for o in outcomes if not o.closed),
        "close_ms": percentiles_ms(closes),
    }


# ---------------------------------------------------------------- the run

async def settle_memory(pid: int, max_s: float, window_s: float = 20.0, tolerance_bytes: int = 512 * 1024) -> float:
    """Wait until the process's RSS has moved less than ``tolerance_bytes`` over ``window_s`` (at most
    ``max_s``); the seconds waited. A fresh server fills its caches (the history's SQLite pages, the
    compensator's windows) for about a minute: a baseline taken before then counts that as growth."""
    start = time.monotonic()
    samples = [(start, process_usage(pid)["rss_bytes"])]
    while time.monotonic() - start < max_s:
        await asyncio.sleep(2.0)
        now = time.monotonic()
        samples.append((now, process_usage(pid)["rss_bytes"]))
        window = [rss for t, rss in samples if t >= now - window_s]
        if now - start >= window_s and max(window) - min(window) < tolerance_bytes:
            break
    return time.monotonic() - start


async def measure(endpoint: str, pid: int, connections: int, messages: int, seed: int, concurrency: int,
                  wait_s: float, progress: Callable[[str], None] | None = None, settle_s: float = 120.0,
                  warmup: int = 5000) -> dict[str, Any]:
    """The storm, then the fuzz, against a running server; the report without ``targets``."""
    say = progress or (lambda message: None)
    port = int(endpoint.split(":")[2].split("/")[0])
    url = endpoint
    _, first_beat = await normal_read(endpoint)
    start = process_usage(pid)
    say(f"warm-up: {warmup} fuzzed payloads, {warmup // 10} garbage connections")
    await run_connections(port, url, fuzz_payloads(url, warmup, seed + 1) + garbage_payloads(
        url, warmup // 10, seed + 1), concurrency, wait_s)
    if settle_s > 0:
        say(f"waiting for the server's memory to settle (at most {settle_s:g} s)")
        await settle_memory(pid, settle_s)
    _, beat_before = await normal_read(endpoint)
    baseline = await settled_usage(pid, 0, wait_s=1.0)
    say(f"baseline: RSS {baseline['rss_bytes'] / 2**20:.1f} MiB, {baseline['fds']} descriptors")

    storm = await run_connections(port, url, garbage_payloads(url, connections, seed), concurrency, wait_s)
    read_s, beat_after_storm = await normal_read(endpoint)
    await asyncio.sleep(0.5)
    _, beat_later = await normal_read(endpoint)
    storm_report = summarize(storm)
    storm_report.update(read_after_s=read_s, heartbeat=[beat_before, beat_after_storm, beat_later],
                        all_closed_by_server=storm_report["left_open"] == 0,
                        max_close_s=max((o.close_s for o in storm if o.close_s is not None), default=None))
    say(f"storm: {connections} connections, {storm_report['closed_by_server']} closed by the server, "
        f"slowest close {storm_report['close_ms']['max']:.0f} ms; a normal read {1e3 * read_s:.0f} ms after")

    fuzz = await run_connections(port, url, fuzz_payloads(url, messages, seed), concurrency, wait_s)
    fuzz_read_s, beat_after_fuzz = await normal_read(endpoint)
    after = await settled_usage(pid, baseline["fds"])
    fuzz_report = summarize(fuzz)
    fuzz_report.update(read_after_s=fuzz_read_s, heartbeat=[beat_later, beat_after_fuzz],
                       usage_at_start=start, usage_before=baseline, usage_after=after,
                       warmup_rss_growth=baseline["rss_bytes"] / start["rss_bytes"] - 1.0,
                       rss_growth=after["rss_bytes"] / baseline["rss_bytes"] - 1.0)
    say(f"fuzz: {messages} messages; RSS {baseline['rss_bytes'] / 2**20:.1f} -> {after['rss_bytes'] / 2**20:.1f} MiB, "
        f"descriptors {baseline['fds']} -> {after['fds']}")
    return {"first_heartbeat": first_beat, "storm": storm_report, "fuzz": fuzz_report}


def check_targets(report: dict[str, Any]) -> dict[str, bool | None]:
    """Each target of the issue: met (True), missed (False), or not measured by a run this small (None)."""
    storm, fuzz = report["storm"], report["fuzz"]
    storm_size = storm["connections"] >= STORM_CONNECTIONS
    fuzz_size = fuzz["connections"] >= FUZZ_MESSAGES
    beats = storm["heartbeat"]
    return {
        "storm_every_connection_closed_within_1_s": (storm["all_closed_by_server"] and storm["max_close_s"] is not None
                                                     and storm["max_close_s"] <= CLOSE_WITHIN_S) if storm_size else None,
        "storm_normal_read_within_1_s": storm["read_after_s"] <= READ_WITHIN_S if storm_size else None,
        "storm_scan_advancing": (beats[0] != beats[1] != beats[2]) if storm_size else None,
        "fuzz_server_alive_and_scanning": (fuzz["heartbeat"][0] != fuzz["heartbeat"][1]) if fuzz_size else None,
        "fuzz_rss_within_5_percent": fuzz["rss_growth"] <= RSS_GROWTH if fuzz_size else None,
        "fuzz_descriptors_back_to_baseline": (fuzz["usage_after"]["fds"] <= fuzz["usage_before"]["fds"]
                                              if fuzz_size else None),
    }


def run_endpoint_bench(connections: int = STORM_CONNECTIONS, messages: int = FUZZ_MESSAGES, seed: int = 0,
                       concurrency: int = 50, wait_s: float = 2.0, directory: str | Path | None = None,
                       progress: Callable[[str], None] | None = None, settle_s: float = 120.0,
                       warmup: int = 5000) -> dict[str, Any]:
    """Start ``plc-anna serve --test-rig`` in its own process, measure, stop it; the report ``--json`` writes.

    ``settle_s``: wait at most this long for the server's memory to settle before the baseline (0: not
    at all; a short run in a test then counts the server's start-up in the RSS growth).
    """
    from plc_anna.testing import serve_process

    if connections < 1 or messages < 1 or concurrency < 1 or wait_s <= 0:
        raise ValueError("connections, messages and concurrency must be >= 1 and wait_s > 0")
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="plc-anna-bench-endpoint-"))
        server = stack.enter_context(serve_process(directory))
        report = asyncio.run(measure(server.endpoint, server.pid, connections, messages, seed, concurrency, wait_s,
                                     progress, settle_s, warmup))
        report["server_exit_code"] = server.process.poll()  # None: still running, as it should be
    report.update(settings={"connections": connections, "messages": messages, "seed": seed,
                            "concurrency": concurrency, "wait_s": wait_s, "settle_s": settle_s, "warmup": warmup},
                  machine=machine(), wall_time_s=time.perf_counter() - start)
    report["targets"] = check_targets(report)
    return report


__all__ = ["Outcome", "check_targets", "exchange", "normal_read", "process_usage", "run_connections",
           "run_endpoint_bench", "summarize"]
