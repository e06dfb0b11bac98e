"""`connector webhooks list`: stored webhooks that gave no event, and why."""

from __future__ import annotations

import click

from connector.cli.params import current_runtime
from connector.statuses import InboxState
from connector.storage.console import WEBHOOK_STATES, webhook_list


@click.group()
def webhooks() -> None:
    """Look at stored webhooks (those set aside, or still waiting)."""


@webhooks.command("list")
@click.option(
    "--state",
    type=click.Choice([str(state) for state in WEBHOOK_STATES]),
    default=InboxState.FAILED.value,
    show_default=True,
    help="failed: set aside with a reason; received: waiting to be mapped",
)
@click.option("--shop", default=None)
@click.option("--limit", default=50, show_default=True)
def webhooks_list(state: str, shop: str | None, limit: int) -> None:
    """The latest webhooks in STATE: id, received, shop, topic, order or checkout, reason.

    Failed ones are mapped again by `connector replay --failed` once the cause is fixed.
    """
    with current_runtime().sessions() as session:
        listing = webhook_list(session, state, shop=shop, limit=limit)
    for row in listing.webhooks:
        when = row.received_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(
            f"{row.id}  {when}  {row.shop_domain}  {row.topic}  {row.resource_key or '-'}  "
            f"{row.state_reason or ''}".rstrip()
        )
    click.echo(f"{len(listing.webhooks)} of {listing.total} webhook(s) {state}")
