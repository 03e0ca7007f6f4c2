"""A network source whose snapshots the caller makes: for the fleet benchmark and the edge node's tests.

It stands where a served network stands (:class:`~plc_anna.sparkplug.source.NetworkSource`)
without a compensator behind it: :meth:`SyntheticNetwork.advance` makes the
next snapshot, every gain, offset and distance moved by a seeded random walk
and the scan count up by one. With ``ticking=True`` every read of
:attr:`SyntheticNetwork.latest` advances first (until :attr:`held`), so every
snapshot the edge node reads is a new scan it must deliver: the fleet
benchmark counts what arrives against :attr:`SyntheticNetwork.scan`.
"""

from __future__ import annotations

import numpy as np

from plc_anna.drift.states import DriftState
from plc_anna.server.runtime import LayerSnapshot, Snapshot
from plc_anna.sparkplug.source import COMMAND_NAMES


class SyntheticNetwork:
    """``layers`` layers of ``columns`` columns with seeded values; commands are recorded, not run."""

    def __init__(self, name: str, layers: int = 2, columns: int = 256, seed: int = 0, ticking: bool = False) -> None:
        self.name = name
        self.ticking = ticking
        self.held = False
        self.layers = layers
        self.columns = columns
        self.stats = None
        self.link = None
        self.commands: list[str] = []
        self._rng = np.random.default_rng(seed)
        self._gain = np.ones((layers, columns))
        self._offset = np.zeros((layers, columns))
        self._scan = 0
        self._latest: Snapshot | None = None
        self.advance()
        self._unread = True

    @property
    def scan(self) -> int:
        """The scan count of the newest snapshot."""
        return self._scan

    @property
    def latest(self) -> Snapshot:
        if self.ticking and not self.held:
            if self._unread:  # the first read gets scan 1
                self._unread = False
            else:
                self.advance()
        return self._latest

    @latest.setter
    def latest(self, snapshot: Snapshot) -> None:
        self._latest = snapshot

    def advance(self) -> Snapshot:
        """The next scan: new values everywhere, the scan count up by one."""
        self._gain += self._rng.normal(0.0, 1e-4, self._gain.shape)
        self._offset += self._rng.normal(0.0, 1e-4, self._offset.shape)
        self._scan += 1
        layers = tuple(LayerSnapshot(
            index=k, state=DriftState.NOMINAL, gain=self._gain[k].copy(), offset=self._offset[k].copy(),
            column_distance=np.zeros(self.columns), layer_distance=float(self._rng.uniform(0.0, 0.1)),
            statistic=0.0, threshold=5.0, transport_cost=np.zeros(self.columns), sample_count=self._scan,
            gain_trend=np.zeros(0), remaining_life_s=None, state_reason="", coverage=1.0)
            for k in range(self.layers))
        self._latest = Snapshot(scan=self._scan, age_s=60.0 + self._scan, temperature_k=300.0, layers=layers,
                               events=(), commit_counter=0, heartbeat=self._scan, read_s=0.0, compute_s=0.0)
        return self._latest

    async def command(self, name: str) -> None:
        if name not in COMMAND_NAMES.values():
            raise ValueError(f"unknown command {name!r}")
        self.commands.append(name)
