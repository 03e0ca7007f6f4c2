"""``plc-anna hash-password``: the scrypt hash of a password for the server's configuration file."""

from __future__ import annotations

import click


@click.command("hash-password")
@click.password_option("--password", help="The password (prompted twice, hidden, when not given).")
def hash_password(password: str) -> None:
    """Print the scrypt hash of a password for a user of the server's configuration file."""
    from plc_anna.server.passwords import hash_password as make_hash

    if not password:
        raise click.BadParameter("the password is empty", param_hint="--password")
    click.echo(make_hash(password))
