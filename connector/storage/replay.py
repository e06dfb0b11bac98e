"""Replay's queries: the events a replay names, failed inbox rows, and the audit trail."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from connector.statuses import EventStatus, InboxState
from connector.storage.db import Session
from connector.storage.models import Event, ReplayAudit, WebhookDelivery


def find_replayable(
    session: Session,
    *,
    shop: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    statuses: Sequence[str] = (EventStatus.FAILED,),
) -> list[Event]:
    """Events in `statuses` for the shop, that happened in [since, until), oldest first."""
    query = select(Event).where(Event.status.in_(statuses)).order_by(Event.occurred_at)
    if shop:
        query = query.where(Event.shop_domain == shop)
    if since:
        query = query.where(Event.occurred_at >= since)
    if until:
        query = query.where(Event.occurred_at < until)
    return list(session.scalars(query).all())


def events_by_id(session: Session, event_ids: Iterable[str]) -> list[Event]:
    """The events with these ids (unknown ids are simply absent)."""
    return list(session.scalars(select(Event).where(Event.id.in_(list(event_ids)))).all())


def count_failed_webhooks(session: Session, shop: str | None = None) -> int:
    """How many webhooks could not be mapped (a replay by filter returns them to the inbox)."""
    query = select(func.count()).select_from(WebhookDelivery)
    query = query.where(WebhookDelivery.state == InboxState.FAILED)
    if shop:
        query = query.where(WebhookDelivery.shop_domain == shop)
    return session.scalar(query) or 0


def return_failed_webhooks(session: Session, shop: str | None = None) -> list[str]:
    """Put webhooks that could not be mapped back in the inbox; returns their shops."""
    query = select(WebhookDelivery).where(WebhookDelivery.state == InboxState.FAILED)
    if shop:
        query = query.where(WebhookDelivery.shop_domain == shop)
    rows = session.scalars(query).all()
    for row in rows:
        row.state, row.state_reason, row.processed_at = InboxState.RECEIVED, None, None
    return sorted({row.shop_domain for row in rows})


def record_replay(
    session: Session,
    *,
    actor: str,
    filters: dict[str, Any],
    event_ids: list[str],
    shops: list[str],
    considered: int,
    requeued: int,
    quarantined: int,
    skipped: int,
    missing: int,
) -> int:
    """Write one ReplayAudit row; returns its id."""
    audit = ReplayAudit(
        actor=actor,
        filters=filters,
        event_ids=event_ids,
        shops=shops,
        considered=considered,
        requeued=requeued,
        quarantined=quarantined,
        skipped=skipped,
        missing=missing,
    )
    session.add(audit)
    session.flush()
    return audit.id


def recent_audits(session: Session, limit: int = 100) -> list[ReplayAudit]:
    """The latest replays, newest first."""
    query = select(ReplayAudit).order_by(ReplayAudit.created_at.desc(), ReplayAudit.id.desc())
    return list(session.scalars(query.limit(limit)).all())
