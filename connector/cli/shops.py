"""`connector shops add`: configure a shop's Customer.io workspace without the install flow."""

from __future__ import annotations

import click

from connector.cli.params import SHOP_DOMAIN, current_runtime
from connector.storage.db import transaction
from connector.storage.shops import (
    CustomerioSettings,
    mark_history_known,
    save_customerio_settings,
)
from jobs import queue
from webhooks.topics import ORDER_TOPIC_CHOICES


@click.group()
def shops() -> None:
    """Configure shops without the install flow."""


@shops.command("add")
@click.argument("shop", type=SHOP_DOMAIN)
@click.option("--site-id", required=True, help="Customer.io site id")
@click.option("--api-key", required=True, help="Customer.io Track API key (stored encrypted)")
@click.option("--region", type=click.Choice(["us", "eu"]), default="us", show_default=True)
@click.option(
    "--order-topic",
    type=click.Choice(ORDER_TOPIC_CHOICES),
    default=None,
    help="which webhook places an order [default: orders/create]",
)
@click.option("--include-test-orders/--exclude-test-orders", default=None)
@click.option(
    "--new-store",
    is_flag=True,
    help="the store has no orders from before the connector: a customer the connector has "
    "not seen is new, so their first order is first (otherwise, without an Admin API token "
    "to import the history, only a customer whose account came with the order is)",
)
def shops_add(
    shop: str,
    site_id: str,
    api_key: str,
    region: str,
    order_topic: str | None,
    include_test_orders: bool | None,
    new_store: bool,
) -> None:
    """Add or update SHOP's Customer.io workspace; re-activates a shop whose key was rejected."""
    rt = current_runtime()
    settings = CustomerioSettings(
        site_id=site_id,
        api_key_encrypted=rt.secrets.encrypt(api_key),
        region=region,
        order_topic=order_topic,
        include_test_orders=include_test_orders,
    )
    with transaction(rt.sessions) as session:
        save_customerio_settings(session, shop, settings)
        if new_store:
            mark_history_known(session, shop)
    if rt.settings.redis_url:
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER)
    click.echo(f"{shop}: Customer.io site {site_id} ({region}) saved")
