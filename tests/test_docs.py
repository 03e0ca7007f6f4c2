"""Every Python example in the README and docs runs, so the docs never rot."""

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(path, i, block) for path in DOCS
          for i, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S))]


@pytest.mark.parametrize("path,index,code", BLOCKS, ids=[f"{p.name}#{i}" for p, i, _ in BLOCKS])
def test_python_example_runs(path, index, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, f"{path.name}#{index}", "exec"), {"__name__": "__doc_example__"})


def test_there_are_examples():
    assert len(BLOCKS) >= 4


def test_the_commissioning_server_configuration_is_complete(tmp_path, monkeypatch):
    """docs/commissioning.md's example configuration loads as written, beside a generated tag map."""
    from plc_anna.contract.tagmap import tag_map_to_toml
    from plc_anna.device.network import load_network
    from plc_anna.plccode import generate
    from plc_anna.server.config import load_server_config

    text = (ROOT / "docs" / "commissioning.md").read_text()
    block = re.search(r"^## The server configuration\n.*?```toml\n(.*?)```", text, flags=re.S | re.M).group(1)
    (tmp_path / "plc.toml").write_text(tag_map_to_toml(generate(load_network("thermocouple"), "codesys").tag_map))
    (tmp_path / "server.toml").write_text(block)
    monkeypatch.chdir(tmp_path)
    config = load_server_config(tmp_path / "server.toml")
    assert config.device_backend == "plc" and Path(config.tag_map).resolve() == tmp_path / "plc.toml"
    assert config.state_store == tmp_path / "state.sqlite"


def test_the_systemd_unit_runs_a_plc_anna_command_line(tmp_path):
    """The unit in docs/server.md: a valid INI whose ExecStart is plc-anna's own command line."""
    import configparser
    import shlex

    from cli import main

    text = (ROOT / "docs" / "server.md").read_text()
    unit = next(block for block in re.findall(r"```ini\n(.*?)```", text, flags=re.S) if "[Service]" in block)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(unit)
    assert set(parser.sections()) == {"Unit", "Service", "Install"}
    argv = shlex.split(parser["Service"]["ExecStart"])
    assert argv[0].endswith("/plc-anna") and parser["Service"]["KillSignal"] == "SIGTERM"
    assert argv[-2:] == ["--config", "/srv/plc-anna/server.toml"]
    (tmp_path / "server.toml").write_text("")  # --config must name an existing file
    argv[-1] = str(tmp_path / "server.toml")
    at = argv.index("serve")
    ctx = main.make_context("plc-anna", argv[1:at + 1])  # the group's options parse ...
    main.commands["serve"].make_context("serve", argv[at + 1:], parent=ctx)  # ... and so do serve's
