"""`connector keys check|rotate`: CONNECTOR_SECRET_KEY against the stored credentials."""

from __future__ import annotations

import click

from connector.cli.params import current_runtime
from connector.config import ConfigError
from connector.keys import UndecryptableError, check_secret_key, rotate_keys


@click.group()
def keys() -> None:
    """The key that encrypts stored credentials (CONNECTOR_SECRET_KEY)."""


@keys.command("check")
def keys_check() -> None:
    """Fail unless the configured keys decrypt the stored credentials."""
    try:
        check_secret_key(current_runtime())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("the configured keys decrypt the stored credentials")


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret with CONNECTOR_SECRET_KEY (safe to run again)."""
    try:
        done = rotate_keys(current_runtime())
    except UndecryptableError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"re-encrypted {done.reencrypted} stored secrets with the current key; "
        f"{done.already_current} already used it ({done.shops} shops)"
    )
