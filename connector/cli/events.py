"""`connector events list|show`: what the console shows, on the command line."""

from __future__ import annotations

from datetime import datetime

import click

from connector.cli.params import EVENT_STATUS, UTC_TIME, current_runtime
from connector.storage.console import event_timeline, find_event_ids, latest_events
from connector.storage.db import Session


@click.group()
def events() -> None:
    """Look at events (what the console shows)."""


@events.command("list")
@click.option("--shop", default=None)
@click.option("--status", type=EVENT_STATUS, default=None)
@click.option("--since", type=UTC_TIME, default=None, help="ISO time: events at or after")
@click.option("--limit", default=50, show_default=True)
def events_list(shop: str | None, status: str | None, since: datetime | None, limit: int) -> None:
    """The latest events, oldest first: id, shop, name, reference, status, reason."""
    with current_runtime().sessions() as session:
        rows = latest_events(session, shop=shop, status=status, since=since, limit=limit)
    for e in rows:
        when = e.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(
            f"{e.id}  {when}  {e.shop_domain}  {e.name}  {e.reference or e.natural_key}  "
            f"{e.status}{'  ' + e.reason if e.reason else ''}"
        )
    click.echo(f"{len(rows)} event(s)")


@events.command("show")
@click.argument("key")
@click.option("--shop", default=None, help="narrow an order name to one shop")
def events_show(key: str, shop: str | None) -> None:
    """The timeline of an event, by EVENT_ID or order name/number (#1042 or 1042)."""
    with current_runtime().sessions() as session:
        ids = find_event_ids(session, key, shop)
        if not ids:
            raise click.ClickException(f"no event matches {key}")
        for event_id in ids:
            _echo_timeline(session, event_id)


def _echo_timeline(session: Session, event_id: str) -> None:
    timeline = event_timeline(session, event_id)
    assert timeline is not None
    e = timeline.event
    click.echo(f"{e.id} {e.name} {e.reference or e.natural_key} @ {e.shop_domain}: {e.status}")
    for step in timeline.steps:
        when = step.when.strftime("%Y-%m-%dT%H:%M:%SZ") if step.when else "-"
        facts = ", ".join(f"{k}={v}" for k, v in step.facts.items() if v is not None)
        click.echo(f"  {when}  {step.title}{': ' + facts if facts else ''}")
        if step.body and step.title.startswith("Mapped: breaks"):
            click.echo("    " + step.body.replace("\n", "\n    "))
    for label, body in (("identify", timeline.sent_identify), ("track", timeline.sent_track)):
        if body:
            click.echo(f"  sent {label}:\n    " + body.replace("\n", "\n    "))
