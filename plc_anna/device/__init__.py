"""Device backends: where the analog network's outputs come from.

Backends are registered by name in :data:`BACKENDS` and imported lazily, so
choosing the simulator never imports a physical backend's dependencies. Every
backend subclasses :class:`~plc_anna.device.base.AnalogNetwork`.

Examples
--------
>>> net = open_network("simulated", network="digits", device="ideal", seed=0)
>>> net.infer(net.network.X[:2]).shape
(2, 10)
>>> open_network("nonsense")
Traceback (most recent call last):
...
ValueError: unknown device backend 'nonsense'; valid backends: simulated, plc
"""

from __future__ import annotations

from typing import Any

from plc_anna.device.base import AnalogNetwork, LayerTrace
from plc_anna.registry import load_class

#: name -> (module, class)
BACKENDS: dict[str, tuple[str, str]] = {
    "simulated": ("plc_anna.device.simulated", "SimulatedNetwork"),
    "plc": ("plc_anna.device.plc_observed", "PlcObservedNetwork"),
}


def backend_class(name: str) -> type[AnalogNetwork]:
    """Import and return the backend class registered as ``name``."""
    return load_class(BACKENDS, name, "device backend", "backends")


def open_network(backend: str = "simulated", **kwargs: Any) -> AnalogNetwork:
    """Instantiate the backend registered as ``backend`` with ``kwargs``."""
    return backend_class(backend)(**kwargs)


__all__ = ["AnalogNetwork", "BACKENDS", "LayerTrace", "backend_class", "open_network"]
