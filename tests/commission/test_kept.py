"""The dry run's kept calibration: taken back only for the same tag map, network and samples, and while fresh."""

from __future__ import annotations

import time

from plc_anna.commission.kept import REUSE_WITHIN_S, calibration_path, keep_calibration, kept_calibration
from plc_anna.compensator import CompensatorConfig
from plc_anna.contract.layout import PlcLayout
from plc_anna.contract.tagmap import tag_map_to_toml
from plc_anna.device.network import load_network
from plc_anna.device.plc_observed import PlcObservedNetwork
from plc_anna.server.runtime import Runtime

CONFIG = CompensatorConfig(calibration_samples=256)


def keep_one(tmp_path):
    network = load_network("thermocouple")
    tag_map = PlcLayout(tuple((layer.n_in, layer.n_out) for layer in network.layers), 64).tag_map(
        "opc.tcp://127.0.0.1:4841", network="thermocouple")
    path = tmp_path / "plc.toml"
    path.write_text(tag_map_to_toml(tag_map))
    runtime = Runtime(PlcObservedNetwork(network, tag_map), CONFIG)
    runtime.scan = 17
    kept = keep_calibration(runtime, {"samples": 256, "scans": 17}, calibration_path(path), tag_map_path=path,
                            network=network, config=CONFIG)
    return network, tag_map, path, kept


def test_taken_back_for_the_same_map_network_and_samples(tmp_path):
    network, tag_map, path, kept = keep_one(tmp_path)
    assert kept == tmp_path / "plc.calibration.sqlite"
    runtime, info, why = kept_calibration(kept, tag_map=tag_map, tag_map_path=path, network=network, config=CONFIG)
    assert runtime is not None and runtime.scan == 17 and info["samples"] == 256 and why.startswith("reusing")


def test_refused_with_the_reason(tmp_path):
    network, tag_map, path, kept = keep_one(tmp_path)
    cases = [
        (dict(config=CompensatorConfig(calibration_samples=512)), "it took 256 samples, not 512"),
        (dict(network=load_network("digits")), "it is of another network"),
        (dict(now_s=time.time() + REUSE_WITHIN_S + 60), "min old, more than 60 min"),
    ]
    for change, words in cases:
        args = dict(tag_map=tag_map, tag_map_path=path, network=network, config=CONFIG) | change
        runtime, info, why = kept_calibration(kept, **args)
        assert runtime is None and info is None and words in why, why
    path.write_text(path.read_text() + "\n# edited\n")
    assert "the tag map changed since" in kept_calibration(kept, tag_map=tag_map, tag_map_path=path, network=network,
                                                           config=CONFIG)[2]
    assert "no calibration kept" in kept_calibration(tmp_path / "none.sqlite", tag_map=tag_map, tag_map_path=path,
                                                     network=network, config=CONFIG)[2]
