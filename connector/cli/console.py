"""Console powers on the command line: `connector staff …` and `connector events …`."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector import runtime as runtime_module
from connector.config import ConfigError
from connector.console.staff import StaffError, add_staff
from connector.runtime import Runtime
from connector.statuses import EventStatus
from connector.storage.console import event_timeline
from connector.storage.db import transaction
from connector.storage.models import Event

STATUSES = tuple(status.value for status in EventStatus)


def parse_when(value: str) -> datetime:
    """An ISO time; without an offset it is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO time: {value}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _runtime() -> Runtime:
    try:
        return runtime_module.current()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def staff() -> None:
    """Support console accounts."""


@staff.command("add")
@click.argument("email")
@click.password_option(help="the password (prompted for when not given)")
def staff_add(email: str, password: str) -> None:
    """Create EMAIL's console account, or set a new password on it."""
    try:
        with transaction(_runtime().sessions) as session:
            user = add_staff(session, email, password)
            saved = user.email
    except StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"staff account {saved} saved")


@click.group()
def events() -> None:
    """Look at events (what the console shows)."""


@events.command("list")
@click.option("--shop", default=None)
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--since", default=None, help="ISO time: events that happened at or after")
@click.option("--limit", default=50, show_default=True)
def events_list(shop: str | None, status: str | None, since: str | None, limit: int) -> None:
    """The latest events, oldest first: id, shop, name, reference, status, reason."""
    query = select(Event).order_by(Event.occurred_at.desc()).limit(limit)
    if shop:
        query = query.where(Event.shop_domain == shop)
    if status:
        query = query.where(Event.status == status)
    if since:
        query = query.where(Event.occurred_at >= parse_when(since))
    with _runtime().sessions() as session:
        rows = list(reversed(session.scalars(query).all()))
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
    names = {key, "#" + key.lstrip("#")} if key.lstrip("#").isdigit() else {key}
    query = select(Event.id).where(or_(Event.id == key.upper(), Event.reference.in_(names)))
    if shop:
        query = query.where(Event.shop_domain == shop)
    with _runtime().sessions() as session:
        ids = session.scalars(query.limit(10)).all()
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
