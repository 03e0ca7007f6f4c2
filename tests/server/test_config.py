"""The server configuration file: the documented example, defaults, every error class, overrides, passwords."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plc_anna.server.config import (
    KEY_DOCS,
    SECURE_POLICIES,
    SecurityConfig,
    ServerConfig,
    UserEntry,
    config_from_dict,
    key_table_markdown,
    load_server_config,
)
from plc_anna.sparkplug.config import SPARKPLUG_KEY_DOCS
from plc_anna.server.passwords import (
    hash_password,
    parse_password_hash,
    verify_password,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "server-config.md"
#: One valid hash, made once (scrypt costs about 50 ms).
HASH = hash_password("s3cret passphrase")


def write(tmp_path: Path, text: str, name: str = "server.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def documented_example(index: int = 0) -> str:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) == 2  # a single network, and several
    return blocks[index]


def test_the_documented_example_loads(tmp_path, monkeypatch):
    monkeypatch.chdir("/")  # nothing may depend on the working directory
    path = write(tmp_path, documented_example())
    config = load_server_config(path)
    assert config.source == path
    assert config.endpoint == "opc.tcp://127.0.0.1:4840/plc-anna"
    assert (config.host, config.port) == ("127.0.0.1", 4840)
    assert (config.scan_ms, config.network, config.device, config.seed) == (20, "thermocouple", "pcm", 7)
    assert config.history_retention_days == 14.0 and isinstance(config.history_retention_days, float)
    assert config.test_rig is False
    assert config.config_dir == tmp_path
    assert config.state_store == tmp_path / "state.sqlite"
    security = config.security
    assert security.policies == ("Basic256Sha256_SignAndEncrypt", "Aes256_Sha256_RsaPss_SignAndEncrypt")
    assert security.allow_anonymous is True and security.anonymous_role == "viewer"
    assert security.trust_dir == tmp_path / "trusted"
    assert [(u.name, u.role) for u in security.users] == [
        ("operator1", "operator"), ("engineer1", "engineer"), ("shiftlead", "viewer")]


def test_the_documented_example_of_several_networks_loads(tmp_path):
    from plc_anna.contract.tagmap import tag_map_to_toml
    from plc_anna.device.simulated import SimulatedNetwork
    from plc_anna.simulated_plc.program import SimulatedPlc

    plc = SimulatedPlc(SimulatedNetwork("thermocouple", "pcm", seed=0))
    write(tmp_path, tag_map_to_toml(plc.tag_map("opcua", "opc.tcp://127.0.0.1:4841")), name="kiln-plc.toml")
    config = load_server_config(write(tmp_path, documented_example(1)))
    kiln, sorter = config.served_networks
    assert (kiln.name, kiln.device_backend, kiln.tag_map, kiln.scan_ms) == \
        ("kiln", "plc", str(tmp_path / "kiln-plc.toml"), 20)
    assert (sorter.name, sorter.network, sorter.scan_ms, sorter.seed) == ("sorter", "digits", 50, 3)
    assert config.publish_ms == 200 and config.host == "0.0.0.0"


def test_an_empty_file_gives_the_defaults(tmp_path):
    config = load_server_config(write(tmp_path, ""))
    assert config == ServerConfig(config_dir=tmp_path)
    assert config.endpoint == "opc.tcp://127.0.0.1:4840/plc-anna"
    assert (config.scan_ms, config.test_rig, config.network, config.device, config.seed) == (10, False, "digits",
                                                                                           "pcm", 0)
    assert config.history_retention_days == 30.0
    assert config.security.policies == SECURE_POLICIES and "None" not in config.security.policies
    assert config.security.allow_anonymous is False and config.security.users == ()
    assert config.security.allow_insecure_login is False


def test_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    (tmp_path / "nets").mkdir()
    from plc_anna.device.network import resolve_network_path

    shutil.copy(resolve_network_path("digits"), tmp_path / "nets" / "mine.npz")
    write(tmp_path, 'preset = "ideal"\n', name="dev.toml")
    config = load_server_config(write(tmp_path, f"""
config_dir = "srv"
state_store = "db/state.sqlite"
network = "nets/mine.npz"
device = "dev.toml"
[security]
trust_dir = "{tmp_path / 'elsewhere'}"
"""))
    assert config.config_dir == tmp_path / "srv"
    assert config.state_store == tmp_path / "srv" / "db" / "state.sqlite"
    assert config.security.trust_dir == tmp_path / "elsewhere"
    assert config.network == str(tmp_path / "nets" / "mine.npz")
    assert config.device == str(tmp_path / "dev.toml")


USER = f'[[security.users]]\nname = "ann"\npassword_hash = "{HASH}"\nrole = "operator"\n'


@pytest.mark.parametrize("text,message", [
    # unknown keys
    ("scan_time = 10", "unknown server key(s) 'scan_time'"),
    ("[security]\npolicy = []", "unknown server key(s) 'security.policy'"),
    (USER + 'email = "a@b"', "unknown server key(s) 'security.users[0].email'"),
    # wrong types
    ('scan_ms = "10"', "'scan_ms' must be an integer"),
    ("scan_ms = 10.5", "'scan_ms' must be an integer"),
    ("test_rig = 1", "'test_rig' must be true or false"),
    ("seed = true", "'seed' must be an integer"),
    ("history_retention_days = \"30\"", "'history_retention_days' must be a finite number"),
    ("endpoint = 4840", "'endpoint' must be a non-empty string"),
    ("security = 3", "'security' must be a table"),
    ('[security]\npolicies = "None"', "'security.policies' must be a non-empty list"),
    ('[security]\nallow_anonymous = "yes"', "'security.allow_anonymous' must be true or false"),
    ("[security]\nusers = 3", "'security.users' must be a list"),
    ('[[security.users]]\nname = 5\npassword_hash = "x"\nrole = "viewer"', "'security.users[0].name' must be"),
    # impossible values
    ("scan_ms = 2", "'scan_ms' must be >= 5"),
    ("scan_ms = 20000", "'scan_ms' must be <= 10000"),
    ("seed = -1", "'seed' must be >= 0"),
    ("history_retention_days = 0", "'history_retention_days' must be > 0"),
    ("history_retention_days = nan", "'history_retention_days' must be a finite number"),
    ('endpoint = "http://127.0.0.1:4840"', "'endpoint' must start with opc.tcp://"),
    ('endpoint = "opc.tcp://127.0.0.1/plc-anna"', "'endpoint' must read opc.tcp://HOST:PORT"),
    ('endpoint = "opc.tcp://127.0.0.1:99999"', "port 1..65535"),
    ('[security]\npolicies = ["Basic128Rsa15_Sign"]', "unknown policy 'Basic128Rsa15_Sign'"),
    ('[security]\npolicies = ["None", "None"]', "lists a policy twice"),
    ("[security]\npolicies = []", "'security.policies' must be a non-empty list"),
    ('[security]\nanonymous_role = "operator"', "'security.anonymous_role' must be one of viewer"),
    ("[security]\nallow_insecure_login = true", "needs \"None\" in security.policies"),
    ('network = "mnist"', "'network' must be a shipped network (digits, thermocouple)"),
    ('network = "missing.npz"', "or an existing .npz file, got"),
    ('device = "rram"', "'device' must be a device preset (pcm, hermes, ideal)"),
    # users: plain text refused, duplicates, roles
    ('[[security.users]]\nname = "ann"\npassword = "hunter2"\nrole = "viewer"',
     "'security.users[0].password': plain-text passwords are refused"),
    ('[[security.users]]\nname = "ann"\npassword_hash = "hunter2"\nrole = "viewer"',
     "'security.users[0].password_hash' is not a hash made by `plc-anna hash-password`"),
    ('[[security.users]]\nname = "ann"\nrole = "viewer"', "'security.users[0]' lacks password_hash"),
    (USER + USER, "'security.users[1].name': user 'ann' is defined twice"),
    (USER.replace('"operator"', '"admin"'), "'security.users[0].role' must be one of viewer, operator, engineer"),
    (USER.replace('"ann"', '"ann smith"'), "'security.users[0].name' must be a non-empty string without spaces"),
    ("this is = not toml =", "invalid TOML"),
])
def test_errors_name_the_key_and_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_server_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_a_bad_device_file_is_named(tmp_path):
    device = write(tmp_path, "dac_bits = 99\n", name="dev.toml")
    path = write(tmp_path, 'device = "dev.toml"')
    with pytest.raises(ValueError) as info:
        load_server_config(path)
    assert str(path) in str(info.value) and str(device) in str(info.value)
    assert "'dac_bits' must be <= 24" in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="nope.toml does not exist"):
        load_server_config(tmp_path / "nope.toml")


def test_config_dir_is_required_without_a_file(tmp_path):
    with pytest.raises(ValueError, match="'config_dir' is required without a configuration file"):
        config_from_dict({"scan_ms": 20})
    config = config_from_dict({"config_dir": str(tmp_path), "scan_ms": 20})
    assert config.config_dir == tmp_path and config.scan_ms == 20 and config.source is None


def test_command_line_overrides(tmp_path):
    path = write(tmp_path, documented_example())
    config = load_server_config(path)
    flags = config.replace(endpoint="opc.tcp://0.0.0.0:4841/plc-anna", scan_ms=50, test_rig=True)
    assert (flags.endpoint, flags.host, flags.port) == ("opc.tcp://0.0.0.0:4841/plc-anna", "0.0.0.0", 4841)
    assert (flags.scan_ms, flags.test_rig) == (50, True)
    assert flags.security == config.security and flags.network == config.network and flags.source == path
    assert (config.scan_ms, config.test_rig) == (20, False)  # the original is unchanged (frozen)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.scan_ms = 5  # type: ignore[misc]
    with pytest.raises(ValueError) as info:
        config.replace(scan_ms=1)
    assert "'scan_ms' must be >= 5" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ValueError, match="'endpoint' must start with opc.tcp://"):
        config.replace(endpoint="tcp://127.0.0.1:4840")
    with pytest.raises(ValueError, match="unknown server key.*'scan_mz'"):
        config.replace(scan_mz=20)
    demo = config.replace(security={"policies": ["None"], "allow_insecure_login": True})
    assert demo.security.policies == ("None",) and demo.security.users == config.security.users
    assert demo.security.allow_anonymous is True


def test_configuration_in_code_validates_too(tmp_path):
    user = UserEntry("ann", HASH, "engineer")
    config = ServerConfig(config_dir=tmp_path, security=SecurityConfig(users=(user,), policies=["None"]))
    assert config.security.policies == ("None",) and config.security.users == (user,)
    with pytest.raises(ValueError, match="'security.users\\[\\]\\.role' must be one of"):
        UserEntry("ann", HASH, "root")
    with pytest.raises(ValueError, match="plain-text passwords are refused"):
        UserEntry("ann", "hunter2", "viewer")
    with pytest.raises(ValueError, match="'scan_ms' must be >= 5"):
        ServerConfig(config_dir=tmp_path, scan_ms=0)
    with pytest.raises(ValueError, match="'config_dir'.* is not a directory"):
        ServerConfig(config_dir=write(tmp_path, "", name="a-file"))


def test_password_hash_round_trip():
    assert verify_password("s3cret passphrase", HASH)
    assert not verify_password("s3cret passphrasE", HASH)
    assert not verify_password("", HASH)
    n, r, p, salt, digest = parse_password_hash(HASH)
    assert (n, r, p, len(salt), len(digest)) == (2 ** 14, 8, 1, 16, 32)
    again = hash_password("s3cret passphrase")
    assert again != HASH and verify_password("s3cret passphrase", again)  # a fresh salt each time
    cheap = hash_password("grüße, 温度", n=2 ** 4, r=1, p=1)
    assert verify_password("grüße, 温度", cheap) and not verify_password("grüsse, 温度", cheap)


@pytest.mark.parametrize("stored", ["hunter2", "", "scrypt$16384$8$1$abc", "bcrypt$16384$8$1$AAAA$AAAA",
                                    "scrypt$1000$8$1$" + "A" * 24 + "$" + "A" * 44,
                                    "scrypt$16384$8$1$!!!$" + "A" * 44])
def test_a_malformed_hash_is_an_error_not_a_wrong_password(stored):
    with pytest.raises(ValueError):
        verify_password("anything", stored)


def test_an_empty_password_cannot_be_hashed():
    with pytest.raises(ValueError, match="non-empty"):
        hash_password("")


def test_every_key_is_documented():
    fields = ({f.name for f in dataclasses.fields(ServerConfig)} - {"source"} | {"networks[].name"}
              | {f"security.{f.name}" for f in dataclasses.fields(SecurityConfig)}
              | {f"security.users[].{f.name}" for f in dataclasses.fields(UserEntry)}
              | {f"sparkplug.{name}" for name in SPARKPLUG_KEY_DOCS})
    assert set(KEY_DOCS) == fields
    for name, meta in KEY_DOCS.items():
        assert meta["doc"].strip() and meta["default"].strip() and meta["allowed"].strip(), name


def test_every_key_is_in_the_user_docs():
    text = DOCS.read_text()
    for name, meta in KEY_DOCS.items():
        assert f"| `{name}` |" in text, name
        assert meta["doc"] in text, name
    assert key_table_markdown() in text  # the table is rendered from KEY_DOCS, defaults and all


def test_the_config_module_stays_light():
    code = ("import sys, plc_anna.server.config; "
            "print(','.join(m for m in ('asyncua', 'cryptography', 'click', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
