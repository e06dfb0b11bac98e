"""`connector shopify config`: the app configuration file (shopify.app.toml) for these settings."""

from __future__ import annotations

from pathlib import Path

import click

from connector.config import ConfigError, Settings
from connector.shopify.app_config import render_app_config


@click.group()
def shopify() -> None:
    """The app as Shopify knows it."""


@shopify.command("config")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="write the file here instead of printing it",
)
def config(output: Path | None) -> None:
    """Render shopify.app.toml from the settings (deploy it with `shopify app deploy`)."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    text = render_app_config(settings)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)
