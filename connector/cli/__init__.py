"""The `connector` command line: one module per command group."""

from __future__ import annotations

import click

from connector.cli import (
    db,
    events,
    history,
    keys,
    prune,
    reconcile,
    replay,
    run,
    shopify_config,
    shops,
    spec,
    staff,
    webhook,
    webhooks,
)


@click.group()
def main() -> None:
    """Shopify -> Customer.io purchase-feed connector."""


main.add_command(db.db)
main.add_command(shops.shops)
main.add_command(spec.spec)
main.add_command(replay.replay)
main.add_command(events.events)
main.add_command(webhooks.webhooks)
main.add_command(webhook.webhook)
main.add_command(staff.staff)
main.add_command(keys.keys)
main.add_command(history.history)
main.add_command(reconcile.reconcile)
main.add_command(prune.prune_command)
main.add_command(run.sweep)
main.add_command(run.worker)
main.add_command(run.serve)
main.add_command(shopify_config.shopify)
