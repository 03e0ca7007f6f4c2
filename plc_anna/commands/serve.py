"""``plc-anna serve``: the OPC UA server of one or several networks, their compensators and PLC links, until stopped."""

from __future__ import annotations

import click
from rich.console import Console

from plc_anna.commands.common import LISTEN_ERRNOS, EndpointUnavailable, quiet


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="Server configuration (TOML); see docs/server-config.md.")
@click.option("--config-dir", type=click.Path(file_okay=False),
              help="Directory of the server's own files when no --config is given [default: ./plc-anna-server].")
@click.option("--endpoint", help="URL to listen on, e.g. opc.tcp://127.0.0.1:4840/plc-anna.")
@click.option("--scan-ms", type=click.IntRange(5, 10000), help="Scan period in milliseconds.")
@click.option("--test-rig", is_flag=True, default=None, help="Offer the test-rig methods (engineers only).")
@click.option("--network", help="Network the device runs: a shipped name or a .npz file.")
@click.option("--tag-map", type=click.Path(exists=True, dir_okay=False),
              help="Write the corrections to the PLC of this tag map (docs/tag-map.md).")
@click.option("--device-backend", type=click.Choice(["simulated", "plc"]),
              help="simulated, or plc: a physical network observed through the tag map's PLC.")
def serve(config_path, config_dir, endpoint, scan_ms, test_rig, network, tag_map, device_backend) -> None:
    """Run the OPC UA server: the networks, their compensators and their history, until Ctrl-C.

    With a tag map the corrections go to the PLC every scan (docs/plc-link.md); with
    --device-backend plc the network's inputs and raw outputs come from the PLC as well. A
    configuration with [[networks]] serves several networks (docs/server-config.md); --network,
    --tag-map and --device-backend are for a configuration of one.
    """
    import asyncio

    from plc_anna.server.app import PlcAnnaServer
    from plc_anna.server.certificates import OWN_DIR
    from plc_anna.server.config import ServerConfig, load_server_config

    overrides = {k: v for k, v in (("endpoint", endpoint), ("scan_ms", scan_ms), ("test_rig", test_rig),
                                   ("network", network), ("tag_map", tag_map),
                                   ("device_backend", device_backend)) if v}
    try:
        if config_path:
            config = load_server_config(config_path)
            if config_dir:
                overrides["config_dir"] = config_dir
        else:
            config = ServerConfig(config_dir=config_dir or "plc-anna-server")
        config = config.replace(**overrides)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console(quiet=quiet())
    served = PlcAnnaServer(config)
    config = served.config  # a test rig on loopback offers None to anonymous viewers
    security = config.security
    if not security.users and not security.allow_anonymous:
        console.print("[yellow]no users and no anonymous access are configured: nobody can log in. "
                      "Add \\[\\[security.users]] (see plc-anna hash-password) to the configuration.[/]")

    async def run() -> None:
        async with served as server:
            console.print(f"serving on {config.endpoint} ({', '.join(security.policies)}), state in "
                          f"{config.state_store}; scans in a {config.scan_isolation}")
            for entry in config.served_networks:
                network = server.networks[entry.name]
                line = (f"  {entry.name}: {entry.network}, scan {entry.scan_ms} ms"
                        + (f", restored from scan {network.restored_scan}" if network.restored_scan else ""))
                if network.link is not None:
                    plc = network.link.tag_map.plc
                    line += (f"; PLC link {plc.protocol} {plc.endpoint}"
                             + (" (the network is observed through it)" if entry.device_backend == "plc" else ""))
                console.print(line)
            console.print(f"ApplicationUri {server.server.get_application_uri()}; certificate in "
                          f"{config.config_dir / OWN_DIR}, trusted clients in {security.trust_dir}, refused ones "
                          f"kept in {security.rejected_dir}")
            await server.serve_forever()

    try:
        asyncio.run(run())
    except OSError as exc:
        if exc.errno in LISTEN_ERRNOS:
            raise EndpointUnavailable(config.endpoint, exc) from None
        raise click.ClickException(str(exc)) from None
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    console.print("stopped; state saved")
