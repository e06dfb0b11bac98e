"""Placing an order: the first-order decision, the ledger, and the stored, validated event.

The webhook path (jobs/processing.py) and the history backfill (jobs/history.py) both
place orders through `place_order`, so an order is placed the same way whatever brought it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from connector.events import CanonicalEvent, EventName, stable_event_id
from connector.spec import TrackSpec, validate
from connector.storage import events, ledger
from connector.storage.db import Session
from connector.storage.models import Event
from webhooks.topics import Topic

# (shop, customer id) -> Shopify's order count for the customer, None when unknown.
OrderCountLookup = Callable[[str, str], int | None]

PAID_STATES = {"paid", "partially_paid", "partially_refunded", "refunded"}


def places_order(topic: str, payload: dict[str, Any], order_topic: str) -> bool:
    """Whether this delivery may place the order under the shop's setting.

    With `orders/create` any order webhook places it (an `orders/updated` that beats a lost
    or late `orders/create` included); with `orders/paid` only a paid order does.
    """
    if order_topic != Topic.ORDERS_PAID:
        return True
    return topic == Topic.ORDERS_PAID or payload.get("financial_status") in PAID_STATES


def place_order(
    session: Session,
    spec: TrackSpec,
    event: CanonicalEvent,
    *,
    source_delivery_id: int | None = None,
    order_count: OrderCountLookup | None = None,
    later_orders: int = 0,
    history_known: bool = True,
) -> Event:
    """Store a mapped, identified order_placed: decide `is_first_order`, count the order
    for its customer, and add the event validated against the spec (pending or quarantined).

    `later_orders`: orders of the same customer placed after this one that Shopify already
    counts (they wait in the same batch), taken off Shopify's live order count.
    `history_known`: whether the ledger holds the shop's order history (the history
    import ran); see `decide_first_order`.

    Raises ValueError for an order without a person (the caller decides what that means).
    """
    person_key = event.person.id
    if person_key is None:
        raise ValueError("an order without a customer id or email cannot be placed")
    first = decide_first_order(session, event, person_key, order_count, later_orders, history_known)
    revenue = event.properties.get("revenue")
    total = float(revenue) if isinstance(revenue, int | float) else None
    ledger.record_order(
        session, event.shop_domain, event.natural_key, person_key, event.occurred_at, total
    )
    cancellation_id = stable_event_id(
        event.shop_domain, EventName.ORDER_CANCELLED, event.natural_key
    )
    if events.find_event(session, cancellation_id) is not None:  # it arrived first
        ledger.mark_cancelled(session, event.shop_domain, event.natural_key)
    event = event.with_properties(is_first_order=first)
    violations = validate(spec, event.name, event.properties)
    return events.add_validated(session, event, violations, source_delivery_id)


def decide_first_order(
    session: Session,
    event: CanonicalEvent,
    person_key: str,
    order_count: OrderCountLookup | None = None,
    later_orders: int = 0,
    history_known: bool = True,
) -> bool:
    """True only for the person's first order; decided once, atomically, in the database.

    The payload's order count decides where the API version still sends one; for a
    customer the ledger does not know, `order_count` (Shopify's Admin API, injected by the
    worker) stands in for it and raises when Shopify cannot be reached, so the job is
    retried. Otherwise the ledger row for (shop, person) does: the first order to claim it
    wins. When nothing tells the person's history (no count, no Admin API token, the
    history import never ran), the order is not claimed as first unless the customer's
    account was created with it: a false "first" sends a welcome journey to a returning
    customer, a missed one only skips it.

    An order earlier than the one the ledger holds as first (mapped later, in another
    batch) takes the claim over while that later order's event has not been tried yet;
    the later one is then corrected to not first. Once it may have reached Customer.io it
    keeps the claim: Customer.io gets one first order per person, never two.
    """
    held = ledger.first_order(session, event.shop_domain, person_key)
    if held is None:
        hint = event.order_count_hint  # a snapshot taken when the order was placed
        if hint is None and order_count is not None and event.person.customer_id:
            live = order_count(event.shop_domain, event.person.customer_id)
            hint = live - later_orders if live is not None else None
        if hint is None and not history_known and not account_created_with(event):
            hint = UNKNOWN_HISTORY
        candidate = ledger.PRIOR_ORDER if hint is not None and hint > 1 else event.natural_key
        first_id = ledger.claim_first_order(
            session, event.shop_domain, person_key, candidate, event.occurred_at
        )
        return first_id == event.natural_key
    first_id, first_at = held
    if first_id in (event.natural_key, ledger.PRIOR_ORDER) or event.occurred_at >= first_at:
        return first_id == event.natural_key
    later = stable_event_id(event.shop_domain, EventName.ORDER_PLACED, first_id)
    if not events.withdraw_first_order(session, later):
        return False
    ledger.move_first_order(
        session, event.shop_domain, person_key, event.natural_key, event.occurred_at
    )
    return True


# Stands for "the customer may have ordered before": not claimed as first.
UNKNOWN_HISTORY = 2

# A customer account created this long before its order came with it (Shopify creates the
# account at checkout, seconds to minutes before the order is processed).
ACCOUNT_WITH_ORDER = timedelta(hours=1)


def account_created_with(event: CanonicalEvent) -> bool:
    """Whether the order's customer account was created with it (so no earlier order)."""
    created = event.person.created_at
    if event.person.customer_id is None or created is None:
        return False
    return event.occurred_at.timestamp() - created <= ACCOUNT_WITH_ORDER.total_seconds()
