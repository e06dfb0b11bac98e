"""Replay: failed and quarantined events go out again with the same id and stored payload."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.spec import TrackSpec
from connector.statuses import EventStatus, InboxState
from connector.storage.models import Event, WebhookDelivery
from jobs.processing import remap_event

REPLAYABLE = (EventStatus.FAILED, EventStatus.QUARANTINED)


@dataclass(frozen=True)
class ReplayOutcome:
    event_id: str
    shop_domain: str
    before: str
    after: str
    detail: str


def find_replayable(
    session: Session,
    *,
    shop: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    statuses: Sequence[str] = (EventStatus.FAILED,),
) -> list[Event]:
    query = select(Event).where(Event.status.in_(statuses)).order_by(Event.occurred_at)
    if shop:
        query = query.where(Event.shop_domain == shop)
    if since:
        query = query.where(Event.occurred_at >= since)
    if until:
        query = query.where(Event.occurred_at < until)
    return list(session.scalars(query).all())


def replay_events(
    session: Session, spec: TrackSpec, events: Sequence[Event], dry_run: bool = False
) -> list[ReplayOutcome]:
    """Re-map each event from its stored webhook, then queue it again under the same id.

    Delivered events are left alone, so a second replay can never send an order twice.
    """
    outcomes = []
    for event in events:
        before = event.status
        if before not in REPLAYABLE:
            outcomes.append(
                ReplayOutcome(
                    event.id, event.shop_domain, before, before, f"not replayable ({before})"
                )
            )
            continue
        if dry_run:
            outcomes.append(
                ReplayOutcome(event.id, event.shop_domain, before, before, "would replay")
            )
            continue
        violations = remap_event(session, spec, event)
        if violations:
            event.status, event.violations = EventStatus.QUARANTINED, violations
            event.reason = "breaks the track spec"
            detail = "still breaks the spec: " + "; ".join(violations)
        else:
            event.status, event.violations, event.reason = EventStatus.PENDING, None, "replayed"
            event.next_attempt_at = None
            event.lease_owner = event.lease_until = None
            detail = "queued again with the same id"
        outcomes.append(ReplayOutcome(event.id, event.shop_domain, before, event.status, detail))
    return outcomes


def retry_failed_deliveries(session: Session, shop: str | None = None) -> list[str]:
    """Webhooks that could not be mapped go back to the inbox (after a mapping fix)."""
    query = select(WebhookDelivery).where(WebhookDelivery.state == InboxState.FAILED)
    if shop:
        query = query.where(WebhookDelivery.shop_domain == shop)
    rows = session.scalars(query).all()
    for row in rows:
        row.state, row.state_reason, row.processed_at = InboxState.RECEIVED, None, None
    return sorted({row.shop_domain for row in rows})
