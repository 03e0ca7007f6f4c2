"""The [sparkplug] table: defaults, paths, and every bad key named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plc_anna.server.config import KEY_DOCS, ServerConfig, load_server_config
from plc_anna.sparkplug.config import SPARKPLUG_KEY_DOCS, SparkplugConfig, sparkplug_config

BASE = {"broker": "mqtt://broker.plant:1883", "group_id": "plant", "edge_node_id": "line1"}


def test_defaults_and_relative_paths(tmp_path):
    config = sparkplug_config(BASE, tmp_path)
    assert config == SparkplugConfig(broker=BASE["broker"], group_id="plant", edge_node_id="line1",
                                     store=tmp_path / "sparkplug.sqlite")
    assert config.publish_ms == 1000 and config.commands == () and config.password() is None
    assert sparkplug_config(None, tmp_path) is None


def test_a_server_file_with_the_table(tmp_path, monkeypatch):
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "server.toml").write_text(
        '[sparkplug]\nbroker = "mqtts://broker.plant"\ngroup_id = "plant"\nedge_node_id = "line1"\n'
        'tls_ca = "ca.pem"\nusername = "line1"\npassword_env = "LINE1_MQTT"\ncommands = ["Calibrate", "Commit"]\n'
        'publish_ms = 500\nstore = "spool/line1.sqlite"\n')
    config = load_server_config(tmp_path / "server.toml").sparkplug
    assert config.tls and config.tls_ca == tmp_path / "ca.pem" and config.commands == ("Calibrate", "Commit")
    assert config.store == tmp_path / "spool" / "line1.sqlite" and config.publish_ms == 500
    monkeypatch.delenv("LINE1_MQTT", raising=False)
    with pytest.raises(ValueError, match="LINE1_MQTT.*not set"):
        config.password()
    monkeypatch.setenv("LINE1_MQTT", "pw")
    assert config.password() == "pw"
    assert ServerConfig(config_dir=tmp_path).sparkplug is None


@pytest.mark.parametrize("keys, message", [
    ({"broker": "tcp://x:1883"}, "sparkplug.broker"),
    ({"broker": "mqtt://x:99999"}, "sparkplug.broker"),
    ({"group_id": "a/b"}, "sparkplug.group_id"),
    ({"edge_node_id": "a+"}, "sparkplug.edge_node_id"),
    ({"edge_node_id": ""}, "sparkplug.edge_node_id"),
    ({"publish_ms": 5}, "sparkplug.publish_ms"),
    ({"publish_ms": True}, "sparkplug.publish_ms"),
    ({"commands": ["Calibrate", "Erase"]}, "unknown command 'Erase'"),
    ({"commands": "Calibrate"}, "sparkplug.commands"),
    ({"tls_ca": "ca.pem"}, "needs an mqtts:// broker"),
    ({"password_env": "not a name"}, "sparkplug.password_env"),
    ({"password": "plain"}, "unknown server key"),
    ({"store_max_mb": 0}, "sparkplug.store_max_mb"),
    ({"primary_host_id": "#"}, "sparkplug.primary_host_id"),
])
def test_bad_keys_are_named(tmp_path, keys, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        ServerConfig(config_dir=tmp_path, sparkplug={**BASE, **keys})


def test_a_missing_key_and_half_a_client_certificate(tmp_path):
    with pytest.raises(ValueError, match="lacks sparkplug.edge_node_id"):
        sparkplug_config({"broker": "mqtt://x", "group_id": "g"}, tmp_path)
    (tmp_path / "c.pem").write_text("x")
    with pytest.raises(ValueError, match="go together"):
        sparkplug_config({**BASE, "broker": "mqtts://x", "tls_cert": "c.pem"}, tmp_path)
    with pytest.raises(ValueError, match="is not a file"):
        sparkplug_config({**BASE, "broker": "mqtts://x", "tls_ca": "missing.pem"}, tmp_path)


def test_the_documented_table_loads(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parents[2] / "docs" / "server-config.md").read_text()
    (block,) = re.findall(r"```toml sparkplug\n(.*?)```", text, flags=re.DOTALL)
    (tmp_path / "mqtt-ca.pem").write_text("x")
    (tmp_path / "server.toml").write_text(block)
    monkeypatch.setenv("PLC_ANNA_MQTT_PASSWORD", "pw")
    config = load_server_config(tmp_path / "server.toml").sparkplug
    assert (config.group_id, config.edge_node_id, config.primary_host_id) == ("press-shop", "line7", "scada")
    assert config.commands == ("Calibrate", "Commit") and config.password() == "pw"


def test_every_key_is_documented_with_the_server_keys():
    assert all(f"sparkplug.{name}" in KEY_DOCS for name in SPARKPLUG_KEY_DOCS)


def test_the_broker_kind_says_what_to_install(monkeypatch):
    from plc_anna.sparkplug import broker

    monkeypatch.setenv("PLC_ANNA_BROKER", "hivemq")
    with pytest.raises(ValueError, match="PLC_ANNA_BROKER must be one of mosquitto, amqtt"):
        broker.usable_kind()
    monkeypatch.setattr(broker, "amqtt_available", lambda: False)
    with pytest.raises(ValueError, match=r"pip install 'plc-anna\[broker\]'"):
        broker.usable_kind("amqtt")
