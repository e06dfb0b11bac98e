"""Read models for people: search, an event's timeline, latest events, webhooks set aside.

The console, `connector events` and the demo's summary read events through here; the
problem lists are in connector/storage/problems.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, cast, func, or_, select

from connector.statuses import DeliveryOutcome, EventStatus, InboxState
from connector.storage.db import Session, Sessions
from connector.storage.models import (
    DeliveryAttempt,
    Event,
    ReplayAudit,
    WebhookDelivery,
    checkout_token,
)

ROW_LIMIT = 200
SEARCH_LIMIT = 100


def search_events(session: Session, text: str, shop: str | None = None) -> list[Event]:
    """Events matching an order name or number, email, customer id, token, event id or shop.

    A checkout token finds the checkout and the order placed from it. Each kind of match is
    its own indexed look-up (one OR across them all makes PostgreSQL scan the table).
    """
    term, shop = text.strip(), (shop or "").strip().lower() or None
    if not term and not shop:
        return []
    lookups = _lookups(session, term) if term else [select(Event.id)]
    ids: set[str] = set()
    for lookup in lookups:
        if shop:
            lookup = lookup.where(Event.shop_domain == shop)
        ids.update(session.scalars(lookup.order_by(Event.occurred_at.desc()).limit(SEARCH_LIMIT)))
    query = select(Event).where(Event.id.in_(ids)).order_by(Event.occurred_at.desc())
    return list(session.scalars(query.limit(SEARCH_LIMIT)).all())


def _order_names(term: str) -> set[str]:
    """An order name as typed, plus `#1042` for a bare number."""
    return {term, "#" + term.lstrip("#")} if term.lstrip("#").isdigit() else {term}


def _lookups(session: Session, term: str) -> list[Select[str]]:
    names = _order_names(term)
    from_webhooks = select(WebhookDelivery.event_id).where(
        WebhookDelivery.resource_key == term, WebhookDelivery.event_id.is_not(None)
    )
    conditions = [
        Event.id == term.upper(),
        Event.reference.in_(sorted(names)),
        Event.natural_key == term,
        Event.customer_id == term,
        Event.email == term.lower(),
        Event.person_id == term,
        Event.shop_domain == term.lower(),
        Event.id.in_(list(session.scalars(from_webhooks.limit(SEARCH_LIMIT)))),
        checkout_token() == term,
    ]
    return [select(Event.id).where(condition) for condition in conditions]


def latest_events(
    session: Session,
    *,
    shop: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[Event]:
    """The latest events that happened at or after `since`, oldest first."""
    query = select(Event).order_by(Event.occurred_at.desc()).limit(limit)
    if shop:
        query = query.where(Event.shop_domain == shop)
    if status:
        query = query.where(Event.status == status)
    if since:
        query = query.where(Event.occurred_at >= since)
    return list(reversed(session.scalars(query).all()))


def find_event_ids(session: Session, key: str, shop: str | None = None) -> list[str]:
    """Up to ten events with this id or order name/number (#1042 or 1042)."""
    query = select(Event.id).where(
        or_(Event.id == key.upper(), Event.reference.in_(_order_names(key)))
    )
    if shop:
        query = query.where(Event.shop_domain == shop)
    return list(session.scalars(query.limit(10)).all())


def event_rows(sessions: Sessions, limit: int = 50) -> list[dict[str, Any]]:
    """The latest events created, newest last, without personal data."""
    with sessions() as session:
        events = session.scalars(select(Event).order_by(Event.created_at.desc()).limit(limit)).all()
        return [
            {
                "id": e.id,
                "name": e.name,
                "shop": e.shop_domain,
                "reference": e.reference,
                "status": e.status,
                "reason": e.reason,
                "attempts": e.attempts,
            }
            for e in reversed(events)
        ]


@dataclass(frozen=True)
class Step:
    """One line of the timeline."""

    title: str
    when: datetime | None
    tone: str  # ok, info, warn, bad
    facts: dict[str, Any] = field(default_factory=dict)
    body: str | None = None  # pretty-printed JSON or a list of violations


@dataclass(frozen=True)
class Timeline:
    event: Event
    steps: list[Step]
    sent_identify: str | None
    sent_track: str | None


def pretty(value: Any) -> str | None:
    return None if value is None else json.dumps(value, indent=2, sort_keys=True, default=str)


def event_timeline(session: Session, event_id: str) -> Timeline | None:
    """Webhooks received -> mapped -> queued -> each attempt -> where the event stands now."""
    event = session.get(Event, event_id)
    if event is None:
        return None
    deliveries = session.scalars(
        select(WebhookDelivery)
        .where(
            or_(
                WebhookDelivery.event_id == event.id, WebhookDelivery.id == event.source_delivery_id
            )
        )
        .order_by(WebhookDelivery.received_at, WebhookDelivery.id)
    ).all()
    attempts = session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.event_id == event.id)
        .order_by(DeliveryAttempt.attempted_at, DeliveryAttempt.id)
    ).all()
    steps = [_received(row) for row in deliveries]
    steps.append(_mapped(event, deliveries))
    if event.queued_at:
        steps.append(Step("Queued for delivery", event.queued_at, "info"))
    steps.extend(_attempt(attempt) for attempt in attempts)
    steps.extend(_replayed(audit) for audit in _audits_of(session, event.id))
    steps.sort(key=lambda step: step.when.timestamp() if step.when else 0.0)
    steps.append(_final(event))
    return Timeline(event, steps, pretty(event.sent_identify), pretty(event.sent_track))


def _received(row: WebhookDelivery) -> Step:
    tones: dict[str, str] = {InboxState.FAILED: "bad", InboxState.IGNORED: "warn"}
    tone = tones.get(row.state, "ok")
    facts = {
        "topic": row.topic,
        "Shopify event id": row.shopify_event_id,
        "triggered at": row.triggered_at,
        "state": row.state,
        "reason": row.state_reason,
    }
    return Step("Webhook received", row.received_at, tone, facts)


def _mapped(event: Event, deliveries: Any) -> Step:
    source = next((row for row in deliveries if row.id == event.source_delivery_id), None)
    when = (source.processed_at if source else None) or event.created_at
    if event.violations:
        return Step("Mapped: breaks the track spec", when, "bad", body="\n".join(event.violations))
    facts = {"event": event.name, "event id": event.id, "person": event.person_id or "none"}
    return Step("Mapped to a canonical event", when, "ok", facts, pretty(event.properties))


def _attempt(attempt: DeliveryAttempt) -> Step:
    tones: dict[str, str] = {DeliveryOutcome.DELIVERED: "ok", DeliveryOutcome.RETRY: "warn"}
    tone = tones.get(attempt.outcome, "bad")
    facts = {
        "outcome": attempt.outcome,
        "HTTP status": attempt.status_code,
        "latency": f"{attempt.latency_ms:.0f} ms" if attempt.latency_ms is not None else None,
        "batch size": attempt.batch_size,
        "reason": attempt.reason,
    }
    return Step("Delivery attempt", attempt.attempted_at, tone, facts, attempt.excerpt)


def _audits_of(session: Session, event_id: str) -> list[ReplayAudit]:
    query = select(ReplayAudit).where(cast(ReplayAudit.event_ids, String).contains(event_id))
    return list(session.scalars(query.order_by(ReplayAudit.id.desc()).limit(20)).all())


def _replayed(audit: ReplayAudit) -> Step:
    return Step("Replayed", audit.created_at, "info", {"by": audit.actor, "audit": f"#{audit.id}"})


def _final(event: Event) -> Step:
    tones: dict[str, str] = {
        EventStatus.DELIVERED: "ok",
        EventStatus.PENDING: "info",
        EventStatus.WAITING_FOR_IDENTITY: "info",
        EventStatus.CLOSED: "ok",  # closed on purpose: the shopper bought
    }
    tone = tones.get(event.status, "bad")
    facts = {"status": event.status, "attempts": event.attempts, "reason": event.reason}
    return Step(f"Now: {event.status.replace('_', ' ')}", event.delivered_at, tone, facts)


# -- webhooks set aside --------------------------------------------------------------------

WEBHOOK_STATES = (InboxState.FAILED, InboxState.RECEIVED)  # set aside, or still waiting


@dataclass(frozen=True)
class WebhookList:
    """Stored webhooks in one state: the total, the counts per reason, the latest rows."""

    state: str
    total: int
    groups: list[tuple[str, int]]
    webhooks: list[WebhookDelivery]


def webhook_list(
    session: Session, state: str, shop: str | None = None, limit: int = ROW_LIMIT
) -> WebhookList:
    """Webhooks that gave no event: set aside (failed, with why) or still waiting."""
    where = WebhookDelivery.state == state
    if shop:
        where = where & (WebhookDelivery.shop_domain == shop)
    total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(where)) or 0
    reasons = session.execute(
        select(WebhookDelivery.state_reason, func.count())
        .where(where)
        .group_by(WebhookDelivery.state_reason)
        .order_by(func.count().desc())
        .limit(50)
    )
    rows = session.scalars(
        select(WebhookDelivery).where(where).order_by(WebhookDelivery.id.desc()).limit(limit)
    )
    return WebhookList(
        state,
        total,
        [(reason or "(no reason)", int(count)) for reason, count in reasons],
        list(rows),
    )


def webhooks_set_aside(session: Session, shop: str | None = None) -> int:
    """How many stored webhooks (of `shop`, or of all shops) failed to map or process
    (replayable once fixed)."""
    where = WebhookDelivery.state == InboxState.FAILED
    if shop:
        where = where & (WebhookDelivery.shop_domain == shop)
    return session.scalar(select(func.count()).select_from(WebhookDelivery).where(where)) or 0
