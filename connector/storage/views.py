"""Read models for people: what happened to events (CLI today, the console later)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connector.storage.models import Event


def event_rows(sessions: sessionmaker[Session], limit: int = 50) -> list[dict[str, Any]]:
    """The latest events, newest last, without personal data."""
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
