"""The periodic sweep: find work that lost its nudge, and expire held checkouts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from connector.statuses import EventStatus
from connector.storage import store
from connector.storage.db import transaction
from connector.storage.models import Event
from connector.timeutil import utcnow


@dataclass(frozen=True)
class SweepResult:
    shops_to_process: list[str]
    shops_to_deliver: list[str]
    checkouts_expired: int


def expire_held_checkouts(session: Session, hold_hours: int) -> int:
    """Anonymous checkouts never identified within the hold become unidentifiable."""
    cutoff = utcnow() - timedelta(hours=hold_hours)
    result = session.execute(
        update(Event)
        .where(Event.status == EventStatus.WAITING_FOR_IDENTITY, Event.occurred_at < cutoff)
        .values(
            status=EventStatus.UNIDENTIFIABLE,
            reason=f"checkout never identified within {hold_hours} h: not sent",
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def find_work(sessions: sessionmaker[Session], hold_hours: int) -> SweepResult:
    with transaction(sessions) as session:
        expired = expire_held_checkouts(session, hold_hours)
        return SweepResult(
            shops_to_process=store.shops_with_received_deliveries(session),
            shops_to_deliver=store.shops_with_due_events(session),
            checkouts_expired=expired,
        )
