"""The periodic sweep: find work that lost its nudge, expire held checkouts, and purge the
webhooks of shops that never installed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from connector.storage import events, inbox
from connector.storage.db import Sessions, transaction
from connector.timeutil import utcnow


@dataclass(frozen=True)
class SweepResult:
    shops_to_process: list[str]
    delivery_due: bool
    checkouts_expired: int
    unknown_shop_webhooks_purged: int = 0


def find_work(sessions: Sessions, hold_hours: int, unknown_shop_grace_hours: int) -> SweepResult:
    """Expire anonymous checkouts held too long; purge the webhooks of shops that never
    installed once their grace period is over (and mark why the others wait); list the
    shops with work waiting."""
    with transaction(sessions) as session:
        expired = events.expire_held_checkouts(session, hold_hours)
        purged = inbox.purge_unknown_shops(
            session, utcnow() - timedelta(hours=unknown_shop_grace_hours)
        )
        inbox.hold_unknown_shops(session)  # say why the rest wait
        return SweepResult(
            shops_to_process=inbox.shops_with_received_deliveries(session),
            delivery_due=events.has_due_events(session),
            checkouts_expired=expired,
            unknown_shop_webhooks_purged=purged,
        )
