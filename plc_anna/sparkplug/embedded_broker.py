"""Run amqtt, the embedded pure-Python MQTT broker, in this process.

``python -m plc_anna.sparkplug.embedded_broker SETTINGS.json``:

:class:`plc_anna.sparkplug.broker.LocalBroker` starts it when no Mosquitto
binary is installed. The settings file holds the port, optional users (their
passwords are hashed here into amqtt's password file) and optional TLS files.
SIGTERM shuts the broker down cleanly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path


def broker_config(settings: dict) -> dict:
    """amqtt's configuration for ``settings`` (port, users, tls, directory)."""
    listener = {"type": "tcp", "bind": f"127.0.0.1:{settings['port']}", "max_connections": 0}
    tls = settings.get("tls")
    if tls:
        listener.update(ssl=True, cafile=tls["ca"], certfile=tls["cert"], keyfile=tls["key"])
    plugins: dict = {}
    users = settings.get("users") or {}
    if users:
        from pwdlib import PasswordHash
        from pwdlib.hashers.argon2 import Argon2Hasher

        hasher = PasswordHash((Argon2Hasher(),))
        password_file = Path(settings["directory"]) / "amqtt.passwd"
        password_file.write_text("".join(f"{user}:{hasher.hash(password)}\n" for user, password in users.items()))
        password_file.chmod(0o600)
        plugins["amqtt.plugins.authentication.FileAuthPlugin"] = {"password_file": str(password_file)}
    else:
        plugins["amqtt.plugins.authentication.AnonymousAuthPlugin"] = {"allow_anonymous": True}
    return {"listeners": {"default": listener}, "plugins": plugins}


async def _serve(settings: dict) -> None:
    from amqtt.broker import Broker

    broker = Broker(broker_config(settings))
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m plc_anna.sparkplug.embedded_broker SETTINGS.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(_serve(json.loads(Path(argv[0]).read_text())))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
