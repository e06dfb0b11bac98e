"""`connector history import|backfill`: the shop's order history through the Admin API."""

from __future__ import annotations

from datetime import datetime

import click

from connector.cli.params import SHOP_DOMAIN, UTC_TIME, current_runtime
from connector.shopify.errors import ShopifyError
from jobs import queue
from jobs.history import backfill, import_history


@click.group()
def history() -> None:
    """Order history: seed the first-order ledger, backfill past orders."""


@history.command("import")
@click.option("--shop", type=SHOP_DOMAIN, required=True, help="the *.myshopify.com domain")
def history_import(shop: str) -> None:
    """Read SHOP's order history to seed the first-order ledger (resumes if interrupted)."""
    try:
        count = import_history(current_runtime(), shop)
    except ShopifyError as exc:
        raise click.ClickException(f"Shopify: {exc.reason}") from exc
    click.echo(f"{shop}: {count} historical order(s) recorded")


@history.command("backfill")
@click.option("--shop", type=SHOP_DOMAIN, required=True, help="the *.myshopify.com domain")
@click.option("--since", type=UTC_TIME, required=True, help="ISO date: orders created at or after")
@click.option(
    "--skip-recent-hours",
    default=72,
    show_default=True,
    help="leave orders this recent to the live webhooks (post-purchase journeys)",
)
def history_backfill(shop: str, since: datetime, skip_recent_hours: int) -> None:
    """Send SHOP's past orders as order_placed events (event_source: backfill), once each."""
    rt = current_runtime()
    try:
        result = backfill(rt, shop, since, skip_recent_hours=skip_recent_hours)
    except ShopifyError as exc:
        raise click.ClickException(f"Shopify: {exc.reason}") from exc
    if result.created and rt.settings.redis_url:
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER)
    click.echo(
        f"{shop}: {result.created} event(s) queued, {result.already_sent} already known, "
        f"{result.skipped} skipped"
    )
