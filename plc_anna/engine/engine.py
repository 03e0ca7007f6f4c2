"""The engine: every network's scan on its own real-time task, their PLC links on one loop, reports out.

:class:`Engine` knows nothing of OPC UA. It builds each network
(:class:`~plc_anna.engine.scan.NetworkScan`), restores its saved state, starts
the PLC links and the scans, and hands every report to ``emit``. A host
(:mod:`plc_anna.engine.host`) runs it in a process of its own or on threads of
the server's process; the calls below are the same in both.

BLAS runs on ``blas_threads`` threads while the engine runs (threadpoolctl):
on a machine with few cores, BLAS's own threads compete with the scans and the
server for the cores (docs/server.md#the-scan-engine has the numbers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from plc_anna.engine.link import LinkLoop
from plc_anna.engine.scan import NetworkScan, NetworkSpec, ScanReport, StateRefused

logger = logging.getLogger(__name__)


class Engine:
    """The scans of ``specs`` (see the module docstring).

    Parameters
    ----------
    specs
        The networks; names unique.
    emit
        Called with every :class:`ScanReport` from the scans' threads; must not block.
    priority
        Real-time priority of the scans' and the links' threads (0: normal scheduling).
    blas_threads
        Threads BLAS may use while the engine runs; None leaves BLAS as it is.
    """

    def __init__(self, specs: Sequence[NetworkSpec], emit: Callable[[ScanReport], None], *, priority: int = 0,
                 blas_threads: int | None = 1) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"the engine needs networks with unique names, got {names}")
        self.specs = list(specs)
        self.emit = emit
        self.priority = priority
        self.blas_threads = blas_threads
        self.scans: dict[str, NetworkScan] = {}
        self._links: LinkLoop | None = None
        self._blas_limit = None

    def start(self, states: dict[str, dict] | None = None) -> dict[str, ScanReport]:
        """Build every network and restore its state from ``states`` (by name); the first reports.

        Nothing scans yet: :meth:`run` starts the links and the scans (once the server can publish).

        Raises
        ------
        ValueError
            Naming the network, if one cannot be built; :class:`~plc_anna.engine.scan.StateRefused` if its
            saved state does not fit it. Nothing has started then.
        """
        states = states or {}
        scans = {}
        for spec in self.specs:
            try:
                scan = NetworkScan(spec, self.emit, self.priority)
                if states.get(spec.name) is not None:
                    scan.restore(states[spec.name])
                scan.resume_counters()
            except ValueError as exc:
                for built in scans.values():
                    built.jobs.close(wait=False)
                kind = StateRefused if isinstance(exc, StateRefused) else ValueError
                raise kind(f"network {spec.name!r}: {exc}") from None
            scans[spec.name] = scan
        self.scans = scans
        return {name: scan.report() for name, scan in scans.items()}

    def run(self) -> None:
        """Start the PLC links and the scans."""
        self._limit_blas()
        if any(scan.link is not None for scan in self.scans.values()):
            self._links = LinkLoop(self.priority)
            self._links.start()
        for scan in self.scans.values():
            scan.start(self._links)

    def command(self, network: str, name: str, args: tuple = ()) -> Future:
        """Run a command of :data:`~plc_anna.engine.scan.COMMANDS` on ``network`` between its scans."""
        return self._scan(network).command(name, args)

    def set_period(self, network: str, period_s: float) -> None:
        """Change ``network``'s scan period (ValueError outside the allowed range)."""
        self._scan(network).set_period(period_s)

    def trace(self, cycles: int) -> None:
        """Keep the timings of every network's next ``cycles`` cycles (a benchmark's window)."""
        for scan in self.scans.values():
            scan.start_trace(cycles)

    def traces(self) -> dict:
        """Each network's :class:`~plc_anna.engine.scan.CycleTrace` since :meth:`trace`."""
        return {name: scan.trace for name, scan in self.scans.items()}

    def stop(self) -> dict[str, tuple[dict, int]]:
        """Stop every scan and link (started or not); each network's final state and scan, by name."""
        final = {name: scan.stop() for name, scan in self.scans.items()}
        if self._links is not None:
            self._links.stop()
            self._links = None
        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
            self._blas_limit = None
        return final

    def _scan(self, network: str) -> NetworkScan:
        try:
            return self.scans[network]
        except KeyError:
            raise ValueError(f"no network {network!r}; the engine runs {', '.join(self.scans)}") from None

    def _limit_blas(self) -> None:
        if self.blas_threads is None:
            return
        from threadpoolctl import threadpool_limits

        self._blas_limit = threadpool_limits(limits=self.blas_threads, user_api="blas")
