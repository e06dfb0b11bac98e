"""`connector history import|backfill`: the shop's order history through the Admin API."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from connector import runtime as runtime_module
from connector.config import ConfigError
from connector.runtime import Runtime
from connector.shop_domain import SHOP_DOMAIN
from connector.shopify.admin import ShopifyError


def _runtime() -> Runtime:
    try:
        return runtime_module.current()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _shop(value: str) -> str:
    shop = value.strip().lower()
    if not SHOP_DOMAIN.match(shop):
        raise click.BadParameter("must be a *.myshopify.com domain", param_hint="--shop")
    return shop


@click.group()
def history() -> None:
    """Order history: seed the first-order ledger, backfill past orders."""


@history.command("import")
@click.option("--shop", required=True, help="the *.myshopify.com domain")
def history_import(shop: str) -> None:
    """Read SHOP's order history to seed the first-order ledger (resumes if interrupted)."""
    from jobs.history import import_history

    try:
        count = import_history(_runtime(), _shop(shop))
    except ShopifyError as exc:
        raise click.ClickException(f"Shopify: {exc.reason}") from exc
    click.echo(f"{shop}: {count} historical order(s) recorded")


@history.command("backfill")
@click.option("--shop", required=True, help="the *.myshopify.com domain")
@click.option("--since", required=True, help="ISO date: orders created at or after")
@click.option(
    "--skip-recent-hours",
    default=72,
    show_default=True,
    help="leave orders this recent to the live webhooks (post-purchase journeys)",
)
def history_backfill(shop: str, since: str, skip_recent_hours: int) -> None:
    """Send SHOP's past orders as order_placed events (event_source: backfill), once each."""
    from jobs import queue
    from jobs.history import backfill

    rt = _runtime()
    start = datetime.fromisoformat(since.replace("Z", "+00:00"))
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    try:
        result = backfill(rt, _shop(shop), start, skip_recent_hours=skip_recent_hours)
    except ShopifyError as exc:
        raise click.ClickException(f"Shopify: {exc.reason}") from exc
    if result.created and rt.settings.redis_url:
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER, shop)
    click.echo(
        f"{shop}: {result.created} event(s) queued, {result.already_sent} already known, "
        f"{result.skipped} skipped"
    )
