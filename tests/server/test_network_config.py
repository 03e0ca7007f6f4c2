"""The [[networks]] table: several networks in one configuration; a bad entry names the network and the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plc_anna.device.network import network_from_arrays, save_network
from plc_anna.server.config import ServerConfig, config_from_dict, load_server_config
from plc_anna.server.network_config import NetworkEntry, entries_from_list, single_network_name

TWO_NETWORKS = """
endpoint = "opc.tcp://127.0.0.1:4840/plc-anna"

[[networks]]
name = "line1"
network = "thermocouple"
scan_ms = 20
seed = 3

[[networks]]
name = "line2-chip"
network = "nets/mine.npz"
device = "hermes"
samples_per_scan = 16
age_rate = 0
"""


def _mine(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    W, X = rng.normal(size=(4, 6)), rng.uniform(-1, 1, size=(50, 6))
    path = tmp_path / "nets" / "mine.npz"
    path.parent.mkdir()
    save_network(network_from_arrays("mine", "regression", [W], [np.zeros(4)], ["linear"], X=X, y=X @ W.T), path)
    return path


def test_two_networks_load_with_their_own_keys(tmp_path, monkeypatch):
    mine = _mine(tmp_path)
    monkeypatch.chdir("/")
    path = tmp_path / "server.toml"
    path.write_text(TWO_NETWORKS)
    config = load_server_config(path)
    line1, chip = config.served_networks
    assert config.networks == (line1, chip)
    assert (line1.name, line1.network, line1.scan_ms, line1.seed, line1.device) == ("line1", "thermocouple", 20, 3, "pcm")
    assert (chip.name, chip.network, chip.device, chip.samples_per_scan, chip.age_rate) == \
        ("line2-chip", str(mine), "hermes", 16, 0.0)
    assert chip.scan_ms == 10  # each key's default, per network
    faster = config.replace(scan_ms=5)
    assert [n.scan_ms for n in faster.served_networks] == [5, 5] and [n.scan_ms for n in config.networks] == [20, 10]


def test_a_single_network_configuration_serves_one_network_named_after_its_file(tmp_path):
    config = ServerConfig(config_dir=tmp_path, network="thermocouple", scan_ms=20, seed=4)
    (only,) = config.served_networks
    assert (only.name, only.network, only.scan_ms, only.seed) == ("thermocouple", "thermocouple", 20, 4)
    assert config.networks == ()
    assert single_network_name("/x/my net.npz") == "network" and single_network_name("/x/chip_7.npz") == "chip_7"


@pytest.mark.parametrize("entry,message", [
    ({"name": "line2", "scan_ms": 20000}, r"network 'line2' \(\[\[networks\]\] entry 2\): server key 'scan_ms' must be <= 10000"),
    ({"name": "line2", "seed": -1}, r"network 'line2' .*'seed' must be >= 0"),
    ({"name": "line2", "network": "nope.npz"}, r"network 'line2' .*'network' must be a shipped network"),
    ({"name": "line2", "device": "unobtainium"}, r"network 'line2' .*'device' must be a device preset"),
    ({"name": "line2", "device_backend": "plc"}, r"network 'line2' .*'device_backend' = \"plc\" needs a 'tag_map'"),
    ({"name": "line2", "scan_mz": 20}, r"network 'line2' .*unknown server key\(s\) 'scan_mz'"),
    ({"name": "line 2"}, r"network 'line 2' .*server key 'name' must be a letter"),
    ({"name": "line1"}, r"network 'line1' \(\[\[networks\]\] entries 1 and 2\): server key 'name' must be unique"),
    ({"scan_ms": 20}, r"\[\[networks\]\] entry 2: server key 'name' is required"),
])
def test_a_bad_entry_names_the_network_and_the_key(tmp_path, entry, message):
    networks = [{"name": "line1"}, entry]
    with pytest.raises(ValueError, match=message):
        config_from_dict({"networks": networks}, base_dir=tmp_path)


def test_network_keys_at_the_top_level_are_refused_with_networks(tmp_path):
    with pytest.raises(ValueError, match=r"'seed', 'scan_ms'|'scan_ms', 'seed'"):
        config_from_dict({"seed": 1, "scan_ms": 20, "networks": [{"name": "line1"}]}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="'network' describe a single network"):
        ServerConfig(config_dir=tmp_path, network="thermocouple", networks=[{"name": "line1"}])
    config = ServerConfig(config_dir=tmp_path, networks=[{"name": "line1"}])
    with pytest.raises(ValueError, match="'device' describe a single network"):
        config.replace(device="hermes")
    with pytest.raises(ValueError, match="non-empty list"):
        entries_from_list([])


def test_an_entry_built_in_code_is_checked(tmp_path):
    assert NetworkEntry(name="a", scan_ms=50).scan_ms == 50
    with pytest.raises(ValueError, match="'scan_ms' must be >= 5"):
        NetworkEntry(name="a", scan_ms=1)
    with pytest.raises(TypeError):
        NetworkEntry(scan_ms=50)  # the name is required
