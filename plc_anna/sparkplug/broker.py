"""A real MQTT broker on loopback for tests, benchmarks and ``plc-anna demo --fleet``.

Mosquitto when its binary is found (on ``PATH`` or in ``/usr/sbin``, where
Debian installs it), otherwise amqtt (``PLC_ANNA_BROKER=amqtt`` or
``mosquitto`` chooses), a pure-Python broker from PyPI
(``pip install 'plc-anna[broker]'``), run by this module in a process of its
own. Either way the broker is a separate process on a free port of
127.0.0.1, so a test can stop, restart or kill it::

    async with LocalBroker(directory) as broker:
        ...                                   # connect to broker.url
        await broker.restart(down_s=2.0)      # a broker outage of two seconds

Optional user names and passwords (the broker then refuses anonymous clients)
and a TLS listener (certificate files made by the caller) come from the
constructor. Production brokers are configured as docs/fleet.md describes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: The broker kinds :class:`LocalBroker` starts, in order of preference.
KINDS = ("mosquitto", "amqtt")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS listener: the CA that signed the broker's certificate, the certificate, its key."""

    ca: Path
    cert: Path
    key: Path


def find_mosquitto() -> str | None:
    """The mosquitto binary: on ``PATH``, else Debian's ``/usr/sbin/mosquitto``; None when neither exists."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def amqtt_available() -> bool:
    try:
        import amqtt  # noqa: F401 - is it installed?
    except ImportError:
        return False
    return True


def default_kind() -> str:
    """``$PLC_ANNA_BROKER`` if set, else ``mosquitto`` when its binary is there, else ``amqtt``.

    ValueError when neither is installed.
    """
    chosen = os.environ.get("PLC_ANNA_BROKER", "")
    if chosen:
        if chosen not in KINDS:
            raise ValueError(f"PLC_ANNA_BROKER must be one of {', '.join(KINDS)}, got {chosen!r}")
        return chosen
    if find_mosquitto():
        return "mosquitto"
    if amqtt_available():
        return "amqtt"
    raise ValueError("no MQTT broker here: install Mosquitto (apt-get install mosquitto) or the embedded "
                     "broker (pip install 'plc-anna[broker]')")


def usable_kind(kind: str | None = None) -> str:
    """``kind`` (default: :func:`default_kind`) if it can run here; ValueError saying what to install otherwise."""
    kind = kind or default_kind()
    if kind not in KINDS:
        raise ValueError(f"broker kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "amqtt" and not amqtt_available():
        raise ValueError("the embedded MQTT broker needs amqtt: pip install 'plc-anna[broker]' (or install "
                         "Mosquitto)")
    if kind == "mosquitto" and not find_mosquitto():
        raise ValueError("no mosquitto binary on PATH or in /usr/sbin: apt-get install mosquitto")
    return kind


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalBroker:
    """An MQTT broker process on 127.0.0.1 (see the module docstring).

    Parameters
    ----------
    directory
        Where its configuration, password file and log go.
    kind
        ``mosquitto``, ``amqtt`` or None for :func:`default_kind`.
    port
        Its TCP port; a free one if None. The port stays the same across :meth:`restart`.
    users
        User name to password; anonymous clients are refused when given.
    tls
        Serve TLS (``mqtts://``) with these files instead of plain MQTT.
    """

    def __init__(self, directory: str | Path, kind: str | None = None, port: int | None = None,
                 users: dict[str, str] | None = None, tls: TlsFiles | None = None) -> None:
        self.kind = usable_kind(kind)
        self.directory = Path(directory)
        self.port = port or _free_port()
        self.users = dict(users or {})
        self.tls = tls
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def __aenter__(self) -> LocalBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self, timeout_s: float = 15.0) -> None:
        """Start the broker and wait until it accepts connections; RuntimeError naming its log if it does not."""
        if self.running:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        command = self._mosquitto_command() if self.kind == "mosquitto" else self._amqtt_command()
        log = open(self.directory / f"{self.kind}.log", "ab")
        try:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the {self.kind} broker exited at start (code {self._process.returncode}); "
                                   f"see {self.directory / f'{self.kind}.log'}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    await self.kill()
                    raise RuntimeError(f"the {self.kind} broker did not listen on port {self.port} within "
                                       f"{timeout_s:g} s; see {self.directory / f'{self.kind}.log'}") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker as a service manager does (SIGTERM), SIGKILL if it does not end in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        if not await _wait_exit(process, timeout_s):
            process.kill()
            await _wait_exit(process, timeout_s)

    async def kill(self) -> None:
        """SIGKILL the broker (a crash): clients see their connections reset."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            await _wait_exit(process, 10.0)

    async def restart(self, down_s: float = 1.0) -> None:
        """Stop the broker, keep it down for ``down_s`` seconds, start it again on the same port."""
        await self.stop()
        await asyncio.sleep(down_s)
        await self.start()

    # ------------------------------------------------------------ configuration
    def _mosquitto_command(self) -> list[str]:
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice",
                 "max_queued_messages 100000", "message_size_limit 0"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # Started by root (CI), Mosquitto would switch to the mosquitto user, which cannot read the
            # password and key files in the caller's private directory: this broker serves loopback only.
            lines.append("user root")
        if self.users:
            password_file = self.directory / "mosquitto.passwd"
            password_file.write_text("")
            for user, password in self.users.items():
                subprocess.run([_mosquitto_passwd(), "-b", str(password_file), user, password], check=True,
                               capture_output=True)
            password_file.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            lines += [f"cafile {self.tls.ca}", f"certfile {self.tls.cert}", f"keyfile {self.tls.key}",
                      "tls_version tlsv1.2"]
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return [find_mosquitto() or "mosquitto", "-c", str(config)]

    def _amqtt_command(self) -> list[str]:
        settings = {"port": self.port, "users": self.users,
                    "tls": None if self.tls is None else {k: str(getattr(self.tls, k)) for k in ("ca", "cert", "key")},
                    "directory": str(self.directory)}
        config = self.directory / "amqtt.json"
        config.write_text(json.dumps(settings))
        return [sys.executable, "-m", "plc_anna.sparkplug.embedded_broker", str(config)]


def _mosquitto_passwd() -> str:
    binary = find_mosquitto()
    sibling = Path(binary).with_name("mosquitto_passwd") if binary else None
    return str(sibling) if sibling and sibling.exists() else (shutil.which("mosquitto_passwd") or "mosquitto_passwd")


async def _wait_exit(process: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while process.poll() is None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
