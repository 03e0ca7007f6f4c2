"""The benchmark's own networks: other sizes and tasks, on data scikit-learn ships, compensated too."""

import numpy as np
import pytest

from plc_anna.bench.compensation import compensation_benchmark
from plc_anna.bench.networks import BENCH_NETWORKS, load_bench_network
from plc_anna.device.network import digital_forward, task_metric


@pytest.mark.parametrize("name", BENCH_NETWORKS)
def test_each_network_is_trained_and_useful(name):
    network = load_bench_network(name)
    assert network.name == name and network.X is not None and len(network.X) > 40
    metric = task_metric(network, digital_forward(network, network.X), network.y)
    if network.task == "classification":
        assert metric > 0.9                                    # accuracy on the held-out half
    else:
        assert metric < 0.8 * float(np.std(network.y))         # RMSE well below the targets' spread
    assert float(np.abs(network.X).max()) < 20                 # standardized inputs: one DAC scale fits them all


def test_a_network_nobody_here_designed_for_is_compensated():
    report = compensation_benchmark(nets=["wine"], devices=["pcm"], ages_s=[86400.0], seeds=1, samples=8192,
                                    scenarios=["nominal"])
    row = report["runs"][0]["ages"][0]
    errors = {name: scores["output_error"] for name, scores in row["methods"].items()}
    assert errors["oracle"] <= errors["plc_anna"] < errors["gdc_column"] < errors["none"]
    assert row["recovered_fraction"] > 0.9 and row["oracle_ratio"] < 1.2
