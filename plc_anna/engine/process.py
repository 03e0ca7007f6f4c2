"""The engine's process: ``python -m plc_anna.engine.process FD``, started by :class:`~plc_anna.engine.host.ProcessHost`.

``FD`` is its end of a socket pair. The first message is ``("start", specs,
states, priority, blas_threads, log_level, send_interval_s)``; the process answers ``("ready",
first_reports)`` or ``("failed", error)``, starts scanning on ``("run",)``
(answered ``("running", None)``) and then runs until ``("stop",)``,
answered by ``("stopped", final_states)``, or until the socket closes (the
server is gone: the scans stop, nothing is saved by them). Between, it takes
``("command", key, network, name, args)`` (answered ``("result", key,
error)``), ``("period", network, seconds)`` and ``("traces",)`` (answered
``("traces", {network: CycleTrace})``, after ``("trace", cycles)`` started
them), and sends ``("reports", [...])``: the
newest report of each network, from a sender thread, so a server that reads
slowly delays no scan (the reports merge meanwhile). The sender sends reports at
most every ``send_interval_s`` (the server publishes no more often): a scan
every 10 ms is then pickled and sent ten times a second, not a hundred;
answers go at once.

The process ignores SIGINT and runs in a session of its own: Ctrl-C goes to
the server, which stops the engine and saves the final states.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection

from plc_anna.engine.engine import Engine
from plc_anna.engine.mailbox import ReportBox
from plc_anna.engine.task import set_thread_priority


class _Sender:
    """Sends answers at once and the newest reports at most every ``interval_s``; the only thread that writes
    to the socket."""

    def __init__(self, conn: Connection, priority: int, interval_s: float = 0.0) -> None:
        self.conn, self.priority, self.interval_s = conn, priority, interval_s
        self._wake = threading.Condition()
        self._answers: deque[tuple] = deque()
        self.box = ReportBox(notify=self._notify)
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="plc-anna-engine-sender", daemon=True)
        self._thread.start()

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify()

    def answer(self, message: tuple) -> None:
        with self._wake:
            self._answers.append(message)
            self._wake.notify()

    def close(self) -> None:
        """Send what is left, then end the thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(30)

    def _run(self) -> None:
        # The sender hands the scans' reports on: it runs at their priority, so that it is not the
        # thread the scans wait for (they share this process's interpreter lock).
        set_thread_priority(self.priority)
        next_send = 0.0
        while True:
            with self._wake:
                while not (self._answers or self._closing or (self.box and time.monotonic() >= next_send)):
                    self._wake.wait(max(0.0, next_send - time.monotonic()) if self.box else None)
                answers = list(self._answers)
                self._answers.clear()
                closing = self._closing
            try:
                if closing or time.monotonic() >= next_send:
                    reports = self.box.take()
                    if reports:
                        self.conn.send(("reports", list(reports.values())))
                        next_send = time.monotonic() + self.interval_s
                for message in answers:
                    self.conn.send(message)
            except OSError:
                return  # the server is gone
            if closing and not self.box and not self._answers:
                return


def main(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        _, specs, states, priority, blas_threads, level, send_interval_s = conn.recv()
    except (EOFError, OSError):
        return
    logging.basicConfig(level=level, format="%(asctime)s plc-anna engine %(levelname)s %(name)s: %(message)s")
    sender = _Sender(conn, priority, send_interval_s)
    engine = Engine(specs, sender.box.put, priority=priority, blas_threads=blas_threads)
    try:
        first = engine.start(states)
    except ValueError as exc:
        sender.answer(("failed", exc))
        sender.close()
        return
    sender.answer(("ready", first))
    final = None
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "command":
                _, key, network, name, args = message
                try:
                    future = engine.command(network, name, args)
                except ValueError as exc:
                    sender.answer(("result", key, exc))
                    continue
                future.add_done_callback(lambda f, key=key: sender.answer(("result", key, _error(f))))
            elif kind == "trace":
                engine.trace(message[1])
            elif kind == "traces":
                sender.answer(("traces", engine.traces()))
            elif kind == "run":
                engine.run()
                sender.answer(("running", None))
            elif kind == "period":
                try:
                    engine.set_period(message[1], message[2])
                except ValueError:
                    logging.getLogger(__name__).exception("refused a scan period")
            elif kind == "stop":
                break
    finally:
        final = engine.stop()
        sender.answer(("stopped", final))
        sender.close()


def _error(future) -> BaseException | None:
    """A command's exception, as the server gets it: ValueError as it is, anything else as a RuntimeError."""
    exc = future.exception()
    if exc is None or isinstance(exc, ValueError):
        return exc
    return RuntimeError(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main(int(sys.argv[1]))
