"""`connector db upgrade`: apply the migrations."""

from __future__ import annotations

import click

from connector.cli.params import current_runtime
from connector.storage.db import upgrade


@click.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations."""
    rt = current_runtime()
    upgrade(rt.engine, rt.settings.secret_key)  # 0009 re-keys stored tombstones with it
    click.echo("database is up to date")
