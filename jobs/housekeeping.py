"""The periodic sweep: find work that lost its nudge, and expire held checkouts."""

from __future__ import annotations

from dataclasses import dataclass

from connector.storage import events, inbox
from connector.storage.db import Sessions, transaction


@dataclass(frozen=True)
class SweepResult:
    shops_to_process: list[str]
    shops_to_deliver: list[str]
    checkouts_expired: int


def find_work(sessions: Sessions, hold_hours: int) -> SweepResult:
    """Expire anonymous checkouts held too long; list the shops with work waiting."""
    with transaction(sessions) as session:
        expired = events.expire_held_checkouts(session, hold_hours)
        return SweepResult(
            shops_to_process=inbox.shops_with_received_deliveries(session),
            shops_to_deliver=events.shops_with_due_events(session),
            checkouts_expired=expired,
        )
