"""Age a simulated network and measure it: the library behind ``plc-anna simulate``.

No compensation happens here: this is what drift does to an uncorrected
network, the ``none`` baseline every later number is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plc_anna.device.network import Network, digital_forward, load_network, task_metric
from plc_anna.device.params import DeviceParams, load_device_params
from plc_anna.device.simulated import SimulatedNetwork
from plc_anna.units import format_age


def _metric(network: Network, value: float) -> dict[str, Any]:
    unit = network.output_unit if network.task == "regression" else ""
    return {"name": network.metric_name, "value": value, "unit": unit}


def simulate_ageing(network: Network | str | Path, device: DeviceParams | str | Path, ages_s: Sequence[float],
                    seed: int = 0) -> dict[str, Any]:
    """Program ``network`` once with ``seed`` and measure it at each age.

    Returns a JSON-ready dict: the digital metric, and per age the task
    metric on the held-out data (``null`` when the file has none) and per
    layer the median conductance ratio G(age)/G(programmed).

    Examples
    --------
    >>> report = simulate_ageing("digits", "ideal", [3600.0], seed=0)
    >>> report["ages"][0]["metric"]["value"] == report["digital_metric"]["value"]
    True
    """
    ages_s = [float(a) for a in ages_s]
    if not ages_s:
        raise ValueError("give at least one age")
    net = network if isinstance(network, Network) else load_network(network)
    params = device if isinstance(device, DeviceParams) else load_device_params(device)
    sim = SimulatedNetwork(net, params, seed=seed)
    has_data = net.X is not None
    report: dict[str, Any] = {
        "net": net.name,
        "task": net.task,
        "device": str(device) if not isinstance(device, DeviceParams) else "custom",
        "device_params": params.to_dict(),
        "seed": seed,
        "samples": int(net.X.shape[0]) if has_data else 0,
        "digital_metric": _metric(net, task_metric(net, digital_forward(net, net.X), net.y)) if has_data else None,
        "ages": [],
    }
    for age in ages_s:
        sim.set_age(age)
        metric = _metric(net, task_metric(net, sim.infer(net.X), net.y)) if has_data else None
        report["ages"].append({
            "age_s": age,
            "age": format_age(age),
            "temperature_k": sim.temperature_k,
            "metric": metric,
            "layers": [{"layer": i, "conductance_ratio_median": sim.conductance_ratio_median(i)}
                       for i in range(len(net.layers))],
        })
    return report
