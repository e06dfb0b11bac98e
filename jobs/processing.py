"""Turn inbox rows into canonical events: one order_placed per order, one
checkout_started per checkout, first orders decided once."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.events import CanonicalEvent, EventName, stable_event_id
from connector.spec import TrackSpec, validate
from connector.statuses import EventStatus, InboxState
from connector.storage import store
from connector.storage.models import CustomerLedger, CustomerOrder, Event, Shop, WebhookDelivery
from connector.timeutil import utcnow
from jobs import privacy
from webhooks.mapping import MappingError, map_checkout, map_order
from webhooks.topics import CHECKOUT_TOPICS, LIFECYCLE_TOPICS, ORDER_PLACING_TOPICS, Topic

log = logging.getLogger(__name__)

# (shop, customer id) -> Shopify's order count for the customer, None when unknown.
OrderCountLookup = Callable[[str, str], int | None]

PAID_STATES = {"paid", "partially_paid", "partially_refunded", "refunded"}
PRIOR_ORDER = "(before the connector)"


def process_batch(
    session: Session,
    spec: TrackSpec,
    shop_domain: str,
    limit: int = 200,
    order_count: OrderCountLookup | None = None,
) -> int:
    """Process up to `limit` received inbox rows of one shop; return how many were handled.

    Orders are handled in the order the shopper placed them, so when several orders of a
    new customer wait together, the earliest one becomes the first order.
    """
    rows = store.received_deliveries(session, shop_domain, limit)
    lifecycle = [row for row in rows if row.topic in LIFECYCLE_TOPICS]
    if lifecycle:  # uninstall and privacy requests: alone, after what arrived before them
        earlier = [row for row in rows if row.id < lifecycle[0].id]
        if not earlier:
            privacy.handle_lifecycle(session, lifecycle[0])
            return 1
        rows = earlier
    shop = session.get(Shop, shop_domain)
    parsed = [(row, json.loads(row.body)) for row in rows]
    parsed.sort(key=lambda item: (_placed_at(item[1]), item[0].id))
    check_redacted = privacy.has_redactions(session, shop_domain)
    _prefetch_events(session, shop_domain, parsed)
    # New events are written in one flush at commit instead of one per row (see _find_event).
    with session.no_autoflush:
        for row, payload in parsed:
            if check_redacted and privacy.erase_if_redacted(session, row, payload):
                continue
            try:
                _handle(session, spec, shop, row, payload, order_count)
            except MappingError as exc:
                _finish(row, InboxState.FAILED, f"cannot map: {exc.reason}")
    return len(rows)


def _prefetch_events(
    session: Session, shop_domain: str, parsed: list[tuple[WebhookDelivery, Any]]
) -> None:
    """Load the batch's existing events in one query; remember which ids have none yet."""
    ids = set()
    for row, payload in parsed:
        key_field = "id" if row.topic in ORDER_PLACING_TOPICS else "token"
        name = (
            EventName.ORDER_PLACED
            if row.topic in ORDER_PLACING_TOPICS
            else EventName.CHECKOUT_STARTED
        )
        if isinstance(payload, dict) and payload.get(key_field) not in (None, ""):
            ids.add(stable_event_id(shop_domain, name, str(payload[key_field])))
    found = session.scalars(select(Event).where(Event.id.in_(ids))).all() if ids else []
    session.info[_ABSENT_EVENTS] = ids - {event.id for event in found}


_ABSENT_EVENTS = "events known not to exist yet"


def _find_event(session: Session, event_id: str) -> Event | None:
    """The stored event, or one this batch created and has not flushed yet."""
    for pending in session.new:
        if isinstance(pending, Event) and pending.id == event_id:
            return pending
    if event_id in session.info.get(_ABSENT_EVENTS, ()):
        return None
    return session.get(Event, event_id)  # loaded by _prefetch_events: no query


def _placed_at(payload: dict[str, Any]) -> str:
    value = payload.get("processed_at") or payload.get("created_at") or ""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC).isoformat()
    except ValueError:
        return str(value)


def _finish(
    row: WebhookDelivery, state: str, reason: str | None, event_id: str | None = None
) -> None:
    row.state = state
    row.state_reason = reason
    row.processed_at = utcnow()
    if event_id:
        row.event_id = event_id


def _handle(
    session: Session,
    spec: TrackSpec,
    shop: Shop | None,
    row: WebhookDelivery,
    payload: dict,
    order_count: OrderCountLookup | None = None,
) -> None:
    if row.topic in ORDER_PLACING_TOPICS:
        _handle_order(session, spec, shop, row, payload, order_count)
    elif row.topic == Topic.ORDERS_CANCELLED:
        _finish(row, InboxState.PROCESSED, "recorded: order cancelled")
    elif row.topic in CHECKOUT_TOPICS:
        _handle_checkout(session, spec, row, payload)
    else:
        _finish(row, InboxState.IGNORED, f"topic {row.topic} is not mapped")


def places_order(topic: str, payload: dict[str, Any], order_topic: str) -> bool:
    """Whether this delivery may place the order under the shop's setting.

    With `orders/create` any order webhook places it (an `orders/updated` that beats a lost
    or late `orders/create` included); with `orders/paid` only a paid order does.
    """
    if order_topic != "orders/paid":
        return True
    return topic == "orders/paid" or payload.get("financial_status") in PAID_STATES


def _handle_order(
    session: Session,
    spec: TrackSpec,
    shop: Shop | None,
    row: WebhookDelivery,
    payload: dict,
    order_count: OrderCountLookup | None = None,
) -> None:
    order_topic = shop.order_topic if shop else "orders/create"
    if payload.get("test") and not (shop and shop.include_test_orders):
        _finish(row, InboxState.IGNORED, "test order (excluded by the shop's settings)")
        return
    if not places_order(row.topic, payload, order_topic):
        _finish(row, InboxState.PROCESSED, f"recorded: the shop places orders on {order_topic}")
        return
    event = map_order(payload, shop_domain=row.shop_domain)
    existing = _find_event(session, event.id)
    if existing is not None:
        _finish(row, InboxState.PROCESSED, "order already placed", existing.id)
        return
    person_key = event.person.id
    if person_key is None:
        _store_event(
            session, event, row, EventStatus.UNIDENTIFIABLE, "no customer id and no email: not sent"
        )
        return
    first = decide_first_order(session, event, person_key, order_count)
    insert = store.insert_ignore
    insert(
        session,
        CustomerOrder.__table__,
        {  # type: ignore[arg-type]
            "shop_domain": row.shop_domain,
            "order_id": event.natural_key,
            "person_key": person_key,
            "ordered_at": event.occurred_at,
        },
    )
    event = event.with_properties(is_first_order=first)
    _store_validated(session, spec, event, row)


def decide_first_order(
    session: Session,
    event: CanonicalEvent,
    person_key: str,
    order_count: OrderCountLookup | None = None,
) -> bool:
    """True only for the person's first order; decided once, atomically, in the database.

    The payload's order count decides where the API version still sends one; for a
    customer the ledger does not know, `order_count` (Shopify's Admin API, injected by the
    worker) stands in for it and raises when Shopify cannot be reached, so the job is
    retried. Otherwise the ledger row for (shop, person) does: the first order to claim it
    wins, and the database's primary key makes two concurrent claims impossible.
    """
    key = (event.shop_domain, person_key)
    ledger = session.get(CustomerLedger, key, with_for_update=True)
    if ledger is None:
        hint = event.order_count_hint
        if hint is None and order_count is not None and event.person.customer_id:
            hint = order_count(event.shop_domain, event.person.customer_id)
        first_id = PRIOR_ORDER if hint is not None and hint > 1 else event.natural_key
        claimed = store.insert_ignore(
            session,
            CustomerLedger.__table__,  # type: ignore[arg-type]
            {
                "shop_domain": event.shop_domain,
                "person_key": person_key,
                "first_order_id": first_id,
                "first_order_at": event.occurred_at,
                "decided_at": utcnow(),
            },
        )
        if claimed:
            return first_id == event.natural_key
        ledger = session.get(CustomerLedger, key)  # a concurrent order claimed it first
        assert ledger is not None
    return ledger.first_order_id == event.natural_key


def _handle_checkout(
    session: Session, spec: TrackSpec, row: WebhookDelivery, payload: dict
) -> None:
    event = map_checkout(payload, shop_domain=row.shop_domain)
    existing = _find_event(session, event.id)
    if existing is None:
        if event.person.id is None:
            _store_event(
                session,
                event,
                row,
                EventStatus.WAITING_FOR_IDENTITY,
                "anonymous checkout: held until an email or customer appears",
            )
        else:
            _store_validated(session, spec, event, row)
        return
    if existing.status == EventStatus.WAITING_FOR_IDENTITY and event.person.id is not None:
        # The same checkout gained an email: the one checkout_started goes to that person,
        # with the checkout's original timestamp.
        violations = validate(spec, EventName.CHECKOUT_STARTED, event.properties)
        _apply(existing, event)
        _set_validation_status(existing, violations)
        _finish(row, InboxState.PROCESSED, "checkout identified", existing.id)
        return
    _finish(row, InboxState.PROCESSED, "checkout already started", existing.id)


def _store_validated(
    session: Session, spec: TrackSpec, event: CanonicalEvent, row: WebhookDelivery
) -> None:
    violations = validate(spec, event.name, event.properties)
    stored = _store_event(session, event, row, EventStatus.PENDING, None)
    _set_validation_status(stored, violations)


def _set_validation_status(stored: Event, violations: list[str]) -> None:
    if violations:
        stored.status = EventStatus.QUARANTINED
        stored.reason = "breaks the track spec"
        stored.violations = violations
    else:
        stored.status = EventStatus.PENDING
        stored.reason = None
        stored.violations = None
        stored.next_attempt_at = None
        stored.queued_at = utcnow()


def _store_event(
    session: Session, event: CanonicalEvent, row: WebhookDelivery, status: str, reason: str | None
) -> Event:
    stored = Event(
        id=event.id,
        shop_domain=event.shop_domain,
        name=event.name,
        natural_key=event.natural_key,
        status=status,
        reason=reason,
        source_delivery_id=row.id,
        attempts=0,
    )
    _apply(stored, event)
    session.add(stored)
    _finish(row, InboxState.PROCESSED, None, event.id)
    return stored


def _apply(stored: Event, event: CanonicalEvent) -> None:
    """Copy what the mapping produced onto the stored row (who, when, what)."""
    stored.person = asdict(event.person)
    stored.person_id = event.person.id
    stored.customer_id = event.person.customer_id
    stored.email = event.person.email
    stored.occurred_at = event.occurred_at
    stored.properties = event.properties
    stored.reference = (
        event.properties.get("order_name")
        if event.name == EventName.ORDER_PLACED
        else event.natural_key
    )


def remap_event(session: Session, spec: TrackSpec, stored: Event) -> list[str]:
    """Map the event again from its stored webhook (after a mapping or spec fix).

    The id, the first-order decision and the ledger stay as they were; returns violations.
    """
    row = (
        session.get(WebhookDelivery, stored.source_delivery_id)
        if stored.source_delivery_id is not None
        else None
    )
    if row is None:
        return validate(spec, stored.name, stored.properties)
    payload = json.loads(row.body)
    source = stored.properties.get("event_source", "webhook")
    if stored.name == EventName.ORDER_PLACED:
        event = map_order(payload, shop_domain=stored.shop_domain, event_source=source)
        event = event.with_properties(is_first_order=stored.properties.get("is_first_order", False))
    else:
        event = map_checkout(payload, shop_domain=stored.shop_domain, event_source=source)
    _apply(stored, event)
    return validate(spec, stored.name, stored.properties)


def order_stats(
    session: Session, shop_domain: str, person_keys: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The connector's own order count and first/last order dates, per person, in one query."""
    rows = session.execute(
        select(
            CustomerOrder.person_key,
            func.count(),
            func.min(CustomerOrder.ordered_at),
            func.max(CustomerOrder.ordered_at),
        )
        .where(
            CustomerOrder.shop_domain == shop_domain,
            CustomerOrder.person_key.in_(set(person_keys)),
        )
        .group_by(CustomerOrder.person_key)
    ).all()
    return {
        key: {"orders_count": count, "first_order_at": first, "last_order_at": last}
        for key, count, first, last in rows
    }
