"""`connector reconcile`: look for missed webhooks now (the worker does it periodically)."""

from __future__ import annotations

import click

from connector.cli.params import SHOP_DOMAIN, current_runtime
from connector.storage import reconciliation as state
from jobs.reconciliation import reconcile_shop


@click.command()
@click.option("--shop", type=SHOP_DOMAIN, help="only this *.myshopify.com shop")
def reconcile(shop: str | None) -> None:
    """Ask the Admin API for orders the webhooks missed, and re-create lost subscriptions."""
    rt = current_runtime()
    if shop is None:
        with rt.sessions() as session:
            shops = state.shops_to_reconcile(session)
    else:
        shops = [shop]
    failed = False
    for domain in shops:
        result = reconcile_shop(rt, domain)
        if result.skipped:
            click.echo(f"{domain}: skipped ({result.skipped})")
            failed = failed or shop is not None
            continue
        line = (
            f"{domain}: {result.orders_seen} order(s) looked at, "
            f"{result.orders_recovered} recovered, "
            f"{result.subscriptions_recreated} subscription(s) re-created"
        )
        if result.error:
            line += f"; stopped: {result.error}"
            failed = True
        click.echo(line)
    if not shops:
        click.echo("no installed shops")
    if failed:
        raise SystemExit(1)
