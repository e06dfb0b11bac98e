"""A shop's week of events in every state, written straight to the database: the feed-health
tests (integration and browser) read the same figures back."""

from __future__ import annotations

from datetime import datetime, timedelta

from connector.events import EventName, stable_event_id
from connector.runtime import Runtime
from connector.statuses import EventStatus, InboxState
from connector.storage.db import transaction
from connector.storage.models import Event, WebhookDelivery

# (status, hours before now the shopper acted, seconds to delivery, failure reason)
WEEK: list[tuple[str, float, float | None, str | None]] = [
    (EventStatus.DELIVERED, 2, 10, None),
    (EventStatus.DELIVERED, 3, 20, None),
    (EventStatus.DELIVERED, 4, 600, None),  # the p95 of the day: 10 min
    (EventStatus.DELIVERED, 72, 30, None),
    (EventStatus.FAILED, 5, None, "400 Bad Request: invalid timestamp"),
    (EventStatus.FAILED, 80, None, "gave up after 11 attempts: timeout"),
    (EventStatus.FAILED, 90, None, "gave up after 11 attempts: connection error"),
    (EventStatus.QUARANTINED, 6, None, "breaks the track spec"),
    (EventStatus.UNIDENTIFIABLE, 100, None, "no customer id and no email: not sent"),
    (EventStatus.PENDING, 1, None, "retrying: 503 Service Unavailable"),
    (EventStatus.DELIVERED, 24 * 10, 5, None),  # older than the week: not counted
]
# What the page shows for WEEK: (24 hours, 7 days) per figure.
FIGURES = {
    "delivered": ("3", "4"),
    "failed": ("1", "3"),
    "waiting": ("1", "1"),
    "unidentifiable": ("0", "1"),
    "quarantined": ("1", "1"),
    "lag-p95": ("10 min", "10 min"),
}


def seed_week(rt: Runtime, shop: str, now: datetime) -> None:
    """WEEK's events for `shop` (the pending one stored an hour ago), one for another shop,
    an order webhook received two hours ago and one webhook set aside."""
    with transaction(rt.sessions) as session:
        rows = [*WEEK, (EventStatus.DELIVERED, 1, 1, None)]
        for index, (status, hours, lag, reason) in enumerate(rows):
            domain = shop if index < len(WEEK) else "another-shop.myshopify.com"
            occurred = now - timedelta(hours=hours)
            session.add(
                Event(
                    id=stable_event_id(domain, EventName.ORDER_PLACED, f"feed-{index}"),
                    shop_domain=domain,
                    name=EventName.ORDER_PLACED,
                    natural_key=f"feed-{index}",
                    reference=f"#{2000 + index}",
                    occurred_at=occurred,
                    created_at=occurred,
                    delivered_at=occurred + timedelta(seconds=lag) if lag is not None else None,
                    status=status,
                    reason=reason,
                )
            )
        for event_id, topic, state, hours in (
            ("feed-order", "orders/create", InboxState.PROCESSED, 2),
            ("feed-odd", "orders/updated", InboxState.FAILED, 30),
        ):
            session.add(
                WebhookDelivery(
                    shop_domain=shop,
                    topic=topic,
                    shopify_event_id=event_id,
                    body="{}",
                    state=state,
                    state_reason=(
                        "a field has an unexpected type (TypeError)"
                        if state == InboxState.FAILED
                        else None
                    ),
                    received_at=now - timedelta(hours=hours),
                )
            )
