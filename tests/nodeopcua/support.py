"""node-opcua, an independent OPC UA implementation (JavaScript), for the interoperability tests.

The session fixture :func:`node_opcua` installs the node-opcua release pinned in
``package.json`` into a cache directory the first time it is needed
(``$PLC_ANNA_NODE_CACHE``, else ``$XDG_CACHE_HOME/plc-anna``, else
``~/.cache/plc-anna``; about 70 MB and 20 s), and runs this folder's scripts
with it. The tests skip only when ``node`` or ``npm`` is not on this machine; an
install that fails is an error. Each script prints its result as one line
``RESULT <json>`` on stdout (node-opcua writes its own warnings there too).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "package.json"


def cache_root() -> Path:
    if os.environ.get("PLC_ANNA_NODE_CACHE"):
        return Path(os.environ["PLC_ANNA_NODE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plc-anna"


def _version() -> str:
    return json.loads(PACKAGE.read_text())["dependencies"]["node-opcua"]


@dataclass(frozen=True)
class NodeOpcua:
    """An installed node-opcua: run this folder's scripts with it."""

    modules: Path

    def run(self, script: str, *args: str, timeout: float = 120) -> dict:
        """Run ``tests/nodeopcua/<script>`` with ``args``; its RESULT as a dict (AssertionError on failure)."""
        proc = subprocess.run(["node", str(HERE / script), *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=self._env())
        return _result(script, proc.returncode, proc.stdout, proc.stderr)

    async def arun(self, script: str, *args: str, timeout: float = 120) -> dict:
        """:meth:`run` for a test whose server runs on the same event loop (it must keep serving meanwhile)."""
        import asyncio

        proc = await asyncio.create_subprocess_exec("node", str(HERE / script), *map(str, args), env=self._env(),
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            raise
        return _result(script, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    def _env(self) -> dict[str, str]:
        return {**os.environ, "NODE_PATH": str(self.modules)}


def _result(script: str, code: int, stdout: str, stderr: str) -> dict:
    results = [line[len("RESULT "):] for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert code == 0 and results, f"node {script} exited {code}\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
    return json.loads(results[-1])


def install(root: Path | None = None) -> NodeOpcua:
    """The pinned node-opcua under ``root`` (default :func:`cache_root`), installed with npm when missing.

    Installs into a temporary directory beside the target and renames it into
    place under a file lock, so concurrent test runs never see half an install.
    """
    root = root or cache_root()
    target = root / f"node-opcua-{_version()}"
    modules = target / "node_modules"
    if (modules / "node-opcua" / "package.json").is_file():
        return NodeOpcua(modules)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".node-opcua.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (modules / "node-opcua" / "package.json").is_file():
            staging = Path(tempfile.mkdtemp(prefix=".install-", dir=root))
            try:
                shutil.copy(PACKAGE, staging / "package.json")
                proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--omit=dev"], cwd=staging,
                                      capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    raise RuntimeError(f"npm install of node-opcua {_version()} failed in {staging}:\n"
                                       f"{proc.stderr[-3000:]}")
                with contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(target)
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return NodeOpcua(modules)


@pytest.fixture(scope="session")
def node_opcua() -> NodeOpcua:
    """node-opcua installed and ready; skips only when node or npm is not installed on this machine."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: the node-opcua interoperability tests need Node.js")
    return install()
