"""Turn inbox rows into canonical events: one order_placed per order, one
checkout_started per checkout, first orders decided once (jobs/orders.py)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from connector import metrics
from connector.config import MIN_RETENTION_DAYS
from connector.events import IDENTIFY_ONLY, CanonicalEvent, EventName, Person, stable_event_id
from connector.identity import person_key
from connector.spec import TrackSpec, validate
from connector.statuses import EventStatus, InboxState
from connector.storage import events, inbox, ledger
from connector.storage.db import Session
from connector.storage.models import Event, Shop, WebhookDelivery
from connector.storage.products import forget_products
from connector.storage.retention import order_event_pruned
from connector.storage.shoppers import record_consents
from connector.storage.shops import get_shop
from connector.timeutil import parse_utc, utcnow
from jobs.lifecycle import handle_lifecycle
from jobs.orders import OrderCountLookup, place_order, places_order
from jobs.privacy import erase_if_redacted, has_redactions
from jobs.products import ProductFetch, product_ids, products_for
from jobs.shoppers import as_known_customer, known_customers
from webhooks.canonical import events_for
from webhooks.mapping import (
    MappingError,
    PlacedOrder,
    ProductInfo,
    map_checkout,
    map_customer,
    map_order,
    shopper_of,
)
from webhooks.payload import UnreadablePayloadError, read_payload
from webhooks.topics import (
    CHECKOUT_TOPICS,
    CUSTOMER_TOPICS,
    LIFECYCLE_TOPICS,
    ORDER_LIFECYCLE_TOPICS,
    ORDER_PLACING_TOPICS,
    Topic,
)

log = logging.getLogger(__name__)

DEFAULT_NEW_ORDER_WINDOW = timedelta(hours=72)

# A checkout_started in these states has not gone to Customer.io: a purchase closes it.
ORDER_CHANGE_EVENTS = (
    EventName.ORDER_CANCELLED,
    EventName.ORDER_REFUNDED,
    EventName.ORDER_FULFILLED,
)
UNSENT_CHECKOUT = (EventStatus.WAITING_FOR_IDENTITY, EventStatus.PENDING)


BATCH_SIZE = 200


class Handled(NamedTuple):
    """What one batch did: the inbox rows it handled, and whether a shop may have more
    waiting (it gave its whole share, or an uninstall or privacy webhook cut it short)."""

    rows: int
    more_waiting: bool


_PLAIN_WORDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (UnicodeError, "a text value cannot be stored or sent"),
    (OverflowError, "a number or date is out of range"),
    (RecursionError, "the body is nested too deeply"),
    (ArithmeticError, "an amount cannot be computed"),
    ((TypeError, KeyError, AttributeError, IndexError), "a field has an unexpected type"),
    (ValueError, "a field has an unexpected value"),
)


def poison_reason(exc: BaseException) -> str:
    """What support sees for a webhook whose processing raised: plain words and the error's
    class. Never the error's message, which may quote the shopper's data."""
    words = next(
        (text for kinds, text in _PLAIN_WORDS if isinstance(exc, kinds)),
        "the database refused a value"
        if type(exc).__module__.startswith(("sqlalchemy", "psycopg", "sqlite3"))
        else "an unexpected error",
    )
    return f"cannot process: {words} ({type(exc).__name__}); replay it once fixed"


def process_batch(
    session: Session,
    spec: TrackSpec,
    shops: Sequence[str],
    limit: int = BATCH_SIZE,
    order_count: OrderCountLookup | None = None,
    new_order_window: timedelta = DEFAULT_NEW_ORDER_WINDOW,
    product_fetch: ProductFetch | None = None,
    only: Sequence[int] | None = None,
) -> Handled:
    """Process up to `limit` received inbox rows of each of these shops (or just the rows
    `only` names); return how many were handled, and whether more may wait.

    What a batch looks up (its rows, the events and ledger rows they touch, known
    customers, cached products) is read for all the shops at once, and what it writes is
    flushed once, so many shops with a webhook or two each cost a few statements, not a
    few per shop. Each shop's orders are handled in the order the shopper placed them, so
    when several orders of a new customer wait together, the earliest one becomes the
    first order. Only orders created within `new_order_window` (and after the shop
    installed the app) are placed.
    """
    work: list[tuple[Shop, list[tuple[WebhookDelivery, Any]]]] = []
    installed = []
    for shop_domain in shops:
        shop = get_shop(session, shop_domain)
        if shop is None:  # never installed: nothing is mapped until it does (or grace ends)
            inbox.hold_for_install(session, shop_domain)
        else:
            installed.append(shop)
    received = inbox.received_deliveries(session, [s.domain for s in installed], limit, only)
    shares = Counter(row.shop_domain for row in received)
    more_waiting = only is None and any(count >= limit for count in shares.values())
    handled = 0
    mapped: list[WebhookDelivery] = []
    for shop in installed:
        rows = [row for row in received if row.shop_domain == shop.domain]
        lifecycle = [row for row in rows if row.topic in LIFECYCLE_TOPICS]
        if lifecycle:  # uninstall and privacy requests: alone, after what arrived before
            earlier = [row for row in rows if row.id < lifecycle[0].id]
            more_waiting = more_waiting or len(rows) > 1
            if not earlier:
                handle_lifecycle(session, lifecycle[0])
                handled += 1
                continue
            rows = earlier
        parsed = _readable(rows)
        parsed.sort(key=lambda item: (_placed_at(item[1]), item[0].id))
        if has_redactions(session, shop.domain):  # before the batch learns from them
            parsed = [(row, p) for row, p in parsed if not erase_if_redacted(session, row, p)]
        work.append((shop, parsed))
        handled += len(rows)
        mapped += rows
    if not work:
        return Handled(handled, more_waiting)
    events.prefetch_events(session, {i for s, parsed in work for i in _event_ids(s.domain, parsed)})
    known = known_customers(session, {s.domain: _webhooks(parsed) for s, parsed in work})
    products = products_for(
        session,
        {s.domain: product_ids(p for _, p in parsed) for s, parsed in work},
        product_fetch,
    )
    placed_after = utcnow() - new_order_window
    batches = {
        shop.domain: Batch(
            order_count=order_count,
            placed_after=placed_after,
            purchased=events.purchased_checkouts(session, shop.domain, _checkout_tokens(parsed)),
            known_customers=known[shop.domain],
            later_orders=_later_orders(parsed),
            products=products[shop.domain],
        )
        for shop, parsed in work
    }
    ledger.prefetch_first_orders(
        session,
        {
            (shop.domain, person)
            for shop, parsed in work
            for person in _order_people(parsed, batches[shop.domain])
        },
    )
    # New events are written in one flush at commit instead of one per row (see find_event).
    with session.no_autoflush:
        for shop, parsed in work:
            batch = batches[shop.domain]
            for row, payload in parsed:
                try:
                    _handle(session, spec, shop, row, payload, batch)
                except MappingError as exc:
                    inbox.finish_delivery(row, InboxState.FAILED, f"cannot map: {exc.reason}")
    record_consents(
        session,
        {
            (shop, person, channel): consent
            for shop, batch in batches.items()
            for (person, channel), consent in batch.consents.items()
        },
    )
    for shop, parsed in work:
        _log_mapped(shop.domain, [row for row, _ in parsed])
    metrics.observe_mapped((row.received_at for row in mapped), utcnow())
    return Handled(handled, more_waiting)


def _log_mapped(shop_domain: str, rows: list[WebhookDelivery]) -> None:
    log.info(
        "mapped %d webhooks of shop %s",
        len(rows),
        shop_domain,
        extra={
            "shop": shop_domain,
            "webhook_ids": [row.id for row in rows],
            "shopify_event_ids": [row.shopify_event_id for row in rows],
            "event_ids": sorted({row.event_id for row in rows if row.event_id}),
        },
    )


def _readable(rows: Sequence[WebhookDelivery]) -> list[tuple[WebhookDelivery, Any]]:
    """Each row with its payload; a row whose body cannot be read is failed with the reason."""
    parsed = []
    for row in rows:
        try:
            parsed.append((row, read_payload(row.body)))
        except UnreadablePayloadError as exc:
            inbox.finish_delivery(row, InboxState.FAILED, f"cannot map: {exc.reason}")
    return parsed


def _event_ids(shop_domain: str, parsed: list[tuple[WebhookDelivery, Any]]) -> set[str]:
    """The ids of the events the batch's rows are about: orders, checkouts, and the
    checkouts the orders were placed from (which an order closes)."""
    ids = set()
    for row, payload in parsed:
        if not isinstance(payload, dict):
            continue
        is_order = row.topic in ORDER_PLACING_TOPICS
        key_field = "id" if is_order else "token"
        name = EventName.ORDER_PLACED if is_order else EventName.CHECKOUT_STARTED
        if payload.get(key_field) not in (None, ""):
            ids.add(stable_event_id(shop_domain, name, str(payload[key_field])))
        if is_order:  # a cancellation that came first marks the order cancelled
            ids.add(stable_event_id(shop_domain, EventName.ORDER_CANCELLED, str(payload.get("id"))))
        if is_order and payload.get("checkout_token") not in (None, ""):
            token = str(payload["checkout_token"])
            ids.add(stable_event_id(shop_domain, EventName.CHECKOUT_STARTED, token))
    return ids


def _order_people(parsed: list[tuple[WebhookDelivery, Any]], batch: Batch) -> set[str]:
    """Whom the batch's orders may be placed for: their customer id or email, and the
    customer a guest email is known to belong to."""
    people = set()
    for row, payload in parsed:
        if row.topic not in ORDER_PLACING_TOPICS or not isinstance(payload, dict):
            continue
        customer_id, email = shopper_of(payload)
        people.add(person_key(customer_id, email))
        if email in batch.known_customers:
            people.add(batch.known_customers[email])
    return {person for person in people if person}


def _later_orders(parsed: list[tuple[WebhookDelivery, Any]]) -> dict[str, int]:
    """Order id -> how many other orders of its customer come after it in the batch.

    Shopify's live order count already includes orders that wait in this batch; the
    earliest of them must not be taken for a returning customer's order because of them.
    `parsed` is in the shopper's order; redeliveries of one order count once.
    """
    by_customer: dict[str, list[str]] = {}
    for row, payload in parsed:
        if row.topic not in ORDER_PLACING_TOPICS or not isinstance(payload, dict):
            continue
        customer_id, _ = shopper_of(payload)
        order_id = payload.get("id")
        if customer_id and order_id not in (None, ""):
            orders = by_customer.setdefault(customer_id, [])
            if str(order_id) not in orders:
                orders.append(str(order_id))
    return {
        order_id: len(orders) - position - 1
        for orders in by_customer.values()
        for position, order_id in enumerate(orders)
    }


def _webhooks(parsed: list[tuple[WebhookDelivery, Any]]) -> list[tuple[str, Any]]:
    return [(row.topic, payload) for row, payload in parsed]


def _checkout_tokens(parsed: list[tuple[WebhookDelivery, Any]]) -> set[str]:
    """The checkout tokens of the batch's checkout webhooks."""
    return {
        str(payload["token"])
        for row, payload in parsed
        if row.topic in CHECKOUT_TOPICS
        and isinstance(payload, dict)
        and payload.get("token") not in (None, "")
    }


def _placed_at(payload: dict[str, Any]) -> str:
    value = payload.get("processed_at") or payload.get("created_at") or ""
    try:
        return parse_utc(str(value)).isoformat()
    except ValueError:
        return str(value)


def _handle(
    session: Session,
    spec: TrackSpec,
    shop: Shop | None,
    row: WebhookDelivery,
    payload: dict[str, Any],
    batch: Batch,
) -> None:
    if row.topic in ORDER_PLACING_TOPICS:
        _handle_order(session, spec, shop, row, payload, batch)
    elif row.topic in ORDER_LIFECYCLE_TOPICS:
        _handle_order_change(session, spec, shop, row, payload, batch)
    elif row.topic in CHECKOUT_TOPICS:
        _handle_checkout(session, spec, row, payload, batch)
    elif row.topic in CUSTOMER_TOPICS:
        _handle_customer(session, row, payload, batch)
    elif row.topic == Topic.PRODUCTS_UPDATE:
        _forget_product(row, payload, session)
    else:
        inbox.finish_delivery(row, InboxState.IGNORED, f"topic {row.topic} is not mapped")


def _forget_product(row: WebhookDelivery, payload: dict[str, Any], session: Session) -> None:
    """products/update: the next order with this product asks the Admin API again."""
    if payload.get("id") not in (None, ""):
        forget_products(session, row.shop_domain, [str(payload["id"])])
    inbox.finish_delivery(row, InboxState.PROCESSED, "product details will be looked up again")


def _handle_order(
    session: Session,
    spec: TrackSpec,
    shop: Shop | None,
    row: WebhookDelivery,
    payload: dict[str, Any],
    batch: Batch,
) -> None:
    order_topic = shop.order_topic if shop else Topic.ORDERS_CREATE
    if payload.get("test") and not (shop and shop.include_test_orders):
        reason = "test order (excluded by the shop's settings)"
        inbox.finish_delivery(row, InboxState.IGNORED, reason)
        return
    if not places_order(row.topic, payload, order_topic):
        reason = f"recorded: the shop places orders on {order_topic}"
        inbox.finish_delivery(row, InboxState.PROCESSED, reason)
        return
    [event] = events_for(row.topic, payload, row.shop_domain, products=batch.products)
    event = as_known_customer(event, batch.known_customers)
    batch.note_consents(event)
    _close_checkout_of(session, event)
    existing = events.find_event(session, event.id)
    if existing is not None:
        inbox.finish_delivery(row, InboxState.PROCESSED, "order already placed", existing.id)
        return
    too_old = _placed_before_the_connector(payload, shop, batch.placed_after)
    if too_old is None and _placed_and_pruned(session, event):
        too_old = PLACED_AND_PRUNED
    if too_old is not None:
        inbox.finish_delivery(row, InboxState.PROCESSED, too_old)
        return
    if event.person.id is None:
        reason = "no customer id and no email: not sent"
        events.add_event(session, event, EventStatus.UNIDENTIFIABLE, reason, row.id)
    else:
        place_order(
            session,
            spec,
            event,
            source_delivery_id=row.id,
            order_count=batch.order_count,
            later_orders=batch.later_orders.get(event.natural_key, 0),
            history_known=shop is None or shop.history_imported_at is not None,
        )
    inbox.finish_delivery(row, InboxState.PROCESSED, None, event.id)


@dataclass(frozen=True)
class Batch:
    """What handling a batch's rows needs besides each payload."""

    order_count: OrderCountLookup | None  # Shopify's order counts, injected by the worker
    placed_after: datetime  # the oldest creation time a live order may have
    purchased: dict[str, str]  # checkout token -> order placed from it
    known_customers: dict[str, str]  # guest email -> the customer it belongs to
    later_orders: dict[str, int]  # order id -> the customer's orders after it in the batch
    products: dict[str, ProductInfo]  # product id -> Admin API details (may be missing)
    # (person key, channel) -> (consent state, as of): the batch's newest, stored at its end
    consents: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)

    def note_consents(self, event: CanonicalEvent) -> None:
        """Keep the newest consent per person and channel that the batch's events carry."""
        person = event.person
        if person.id is None:
            return
        for channel, state, at in (
            ("email", person.email_consent, person.email_consent_at),
            ("sms", person.sms_consent, person.sms_consent_at),
        ):
            if state is None or at is None:
                continue
            as_of = datetime.fromtimestamp(at, UTC)
            known = self.consents.get((person.id, channel))
            if known is None or known[1] < as_of:
                self.consents[(person.id, channel)] = (state, as_of)


BACKFILL_HINT = "use `connector history backfill` for it"


def _placed_before_the_connector(
    payload: dict[str, Any], shop: Shop | None, placed_after: datetime
) -> str | None:
    """Why an order webhook must not place the order, or None: only new purchases are placed.

    orders/updated and orders/paid arrive for orders of any age (a refund on a 2025 order, a
    tag change); an order created before the shop installed the app, or before the window,
    was not bought now, and belongs to the history backfill.
    """
    created = payload.get("created_at") or payload.get("processed_at")
    try:
        created_at = parse_utc(str(created))
    except ValueError:
        return None  # the mapping has already accepted the order's own timestamps
    if shop is not None and shop.installed_at is not None and created_at < shop.installed_at:
        return f"recorded, not placed: created before the app was installed ({BACKFILL_HINT})"
    if created_at < placed_after:
        return f"recorded, not placed: created before the new-order window ({BACKFILL_HINT})"
    return None


PLACED_AND_PRUNED = "order already placed (its order_placed was deleted by retention)"

# Retention deletes an order_placed only after holding it MIN_RETENTION_DAYS or more
# (jobs/retention.py); a day less allows for an order's time running ahead of the
# connector's clock. Younger orders, all of them in the default window, need no look-up.
PRUNABLE_ORDER_AGE = timedelta(days=MIN_RETENTION_DAYS - 1)


def _placed_and_pruned(session: Session, event: CanonicalEvent) -> bool:
    """Whether the order was placed once and its event since deleted by retention (a
    NEW_ORDER_WINDOW_HOURS made longer after the prune lets its webhooks through)."""
    if event.occurred_at > utcnow() - PRUNABLE_ORDER_AGE:
        return False
    return order_event_pruned(session, event.shop_domain, event.natural_key)


def _handle_order_change(
    session: Session,
    spec: TrackSpec,
    shop: Shop | None,
    row: WebhookDelivery,
    payload: dict[str, Any],
    batch: Batch,
) -> None:
    """A cancellation, refund or fulfilment: its own event, once, on the order's person.

    Refunds and fulfilments carry no customer, so they need the stored order_placed; a
    cancellation carries the whole order and may arrive before the order was mapped. An
    order the connector never placed (older than the connector) gets no lifecycle event.
    """
    is_cancellation = row.topic == Topic.ORDERS_CANCELLED
    order_id = payload.get("id") if is_cancellation else payload.get("order_id")
    placed = None
    if order_id not in (None, ""):
        order_event_id = stable_event_id(row.shop_domain, EventName.ORDER_PLACED, str(order_id))
        placed = events.find_event(session, order_event_id)
    if placed is None and not is_cancellation:
        reason = "recorded, not sent: the connector did not place this order"
        inbox.finish_delivery(row, InboxState.PROCESSED, reason)
        return
    if placed is None:
        too_old = _placed_before_the_connector(payload, shop, batch.placed_after)
        if too_old is not None:
            inbox.finish_delivery(row, InboxState.PROCESSED, too_old)
            return
    order = _placed_order(session, placed) if placed is not None else None
    [event] = events_for(row.topic, payload, row.shop_domain, order, batch.products)
    if order is not None:
        event = replace(event, person=order.person)  # the order's person, always
    event = as_known_customer(event, batch.known_customers)
    existing = events.find_event(session, event.id)
    if existing is not None:
        inbox.finish_delivery(row, InboxState.PROCESSED, f"{event.name} already recorded")
        return
    if event.person.id is None:
        reason = "no customer id and no email: not sent"
        events.add_event(session, event, EventStatus.UNIDENTIFIABLE, reason, row.id)
    else:
        events.add_validated(session, event, validate(spec, event.name, event.properties), row.id)
    if is_cancellation:
        ledger.mark_cancelled(session, row.shop_domain, str(order_id))
    elif row.topic == Topic.REFUNDS_CREATE:
        refunded = float(event.properties.get("refunded_amount") or 0.0)
        ledger.add_refund(session, row.shop_domain, str(order_id), refunded)
    inbox.finish_delivery(row, InboxState.PROCESSED, None, event.id)


def _stored_person(stored: Event) -> Person:
    """The Person a stored event was mapped for (fields of older versions left out)."""
    known = {f.name for f in fields(Person)}
    return Person(**{k: v for k, v in (stored.person or {}).items() if k in known})


def _placed_order(session: Session, placed: Event) -> PlacedOrder:
    """What a refund or fulfilment needs of the stored order_placed."""
    person = _stored_person(placed)
    recorded = ledger.get_order(session, placed.shop_domain, placed.natural_key)
    revenue = placed.properties.get("revenue")
    return PlacedOrder(
        person=person,
        order_name=placed.properties.get("order_name"),
        currency=placed.properties.get("currency"),
        revenue=float(revenue) if isinstance(revenue, int | float) else None,
        refunded_before=recorded.refunded if recorded is not None else 0.0,
    )


def _close_checkout_of(session: Session, order: CanonicalEvent) -> None:
    """An order ends its checkout: a checkout_started not sent yet is closed, never sent."""
    token = order.properties.get("checkout_token")
    if not token:
        return
    checkout_id = stable_event_id(order.shop_domain, EventName.CHECKOUT_STARTED, str(token))
    checkout = events.find_event(session, checkout_id)
    if checkout is not None and checkout.status in UNSENT_CHECKOUT:
        name = order.properties.get("order_name") or order.natural_key
        events.close_checkout(checkout, f"purchased: order {name} was placed from it")


def _purchase_known(payload: dict[str, Any], purchased: dict[str, str]) -> str | None:
    """Why a checkout is known to be bought already (completed, or an order placed from it)."""
    order = purchased.get(str(payload.get("token")))
    if order:
        return f"purchased: order {order} was placed from it"
    if payload.get("completed_at"):
        return "purchased: the checkout was completed"
    return None


def _handle_checkout(
    session: Session,
    spec: TrackSpec,
    row: WebhookDelivery,
    payload: dict[str, Any],
    batch: Batch,
) -> None:
    [event] = events_for(row.topic, payload, row.shop_domain, products=batch.products)
    event = as_known_customer(event, batch.known_customers)
    batch.note_consents(event)
    existing = events.find_event(session, event.id)
    purchase = _purchase_known(payload, batch.purchased)
    if purchase is not None and (existing is None or existing.status in UNSENT_CHECKOUT):
        # A recovery journey must never start for a shopper who already bought.
        if existing is None:
            existing = events.add_event(session, event, EventStatus.CLOSED, purchase, row.id)
        elif event.person.id is not None:
            events.apply_mapping(existing, event)
        events.close_checkout(existing, purchase)
        inbox.finish_delivery(row, InboxState.PROCESSED, purchase, existing.id)
        return
    if existing is None:
        if event.person.id is None:
            reason = "anonymous checkout: held until an email or customer appears"
            events.add_event(session, event, EventStatus.WAITING_FOR_IDENTITY, reason, row.id)
        else:
            violations = validate(spec, event.name, event.properties)
            events.add_validated(session, event, violations, row.id)
        inbox.finish_delivery(row, InboxState.PROCESSED, None, event.id)
        return
    if existing.status == EventStatus.WAITING_FOR_IDENTITY and event.person.id is not None:
        # The same checkout gained an email: the one checkout_started goes to that person,
        # with the checkout's original timestamp.
        events.apply_mapping(existing, event)
        events.set_validation_result(existing, validate(spec, event.name, event.properties))
        inbox.finish_delivery(row, InboxState.PROCESSED, "checkout identified", existing.id)
        return
    inbox.finish_delivery(row, InboxState.PROCESSED, "checkout already started", existing.id)


def _handle_customer(
    session: Session, row: WebhookDelivery, payload: dict[str, Any], batch: Batch
) -> None:
    """customers/create or customers/update: the customer's consent is kept (newest wins)
    and one profile_updated per change of the record is stored for delivery, which sends
    it as an identify alone, through the same path as every event."""
    [event] = events_for(row.topic, payload, row.shop_domain)
    batch.note_consents(event)
    existing = events.find_event(session, event.id)
    if existing is not None:
        inbox.finish_delivery(row, InboxState.PROCESSED, "profile update already recorded")
        return
    events.add_validated(session, event, [], row.id)  # identify only: no spec to break
    inbox.finish_delivery(row, InboxState.PROCESSED, None, event.id)


def remap_event(session: Session, spec: TrackSpec, stored: Event) -> list[str]:
    """Map the event again from its stored webhook (after a mapping or spec fix).

    The id, the first-order decision and the ledger stay as they were; returns violations.
    """
    row = (
        inbox.get_delivery(session, stored.source_delivery_id)
        if stored.source_delivery_id is not None
        else None
    )
    if row is None:
        return (
            [] if stored.name in IDENTIFY_ONLY else validate(spec, stored.name, stored.properties)
        )
    payload = read_payload(row.body)
    source = stored.properties.get("event_source", "webhook")
    if stored.name == EventName.ORDER_PLACED:
        event = map_order(payload, shop_domain=stored.shop_domain, event_source=source)
        event = event.with_properties(is_first_order=stored.properties.get("is_first_order", False))
    elif stored.name in ORDER_CHANGE_EVENTS:
        # A cancellation, refund or fulfilment stays on the order's person, and a refund
        # keeps the net_revenue computed when it happened (the ledger already counts it).
        person = _stored_person(stored)
        order = PlacedOrder(
            person=person,
            order_name=stored.properties.get("order_name"),
            currency=stored.properties.get("currency"),
            revenue=None,
        )
        [event] = events_for(row.topic, payload, stored.shop_domain, order)
        event = replace(event, person=person)
        if "net_revenue" in stored.properties:
            event = event.with_properties(net_revenue=stored.properties["net_revenue"])
    elif stored.name == EventName.PROFILE_UPDATED:
        events.apply_mapping(stored, map_customer(payload, shop_domain=stored.shop_domain))
        return []  # identify only: nothing tracked, nothing for the spec to check
    else:
        event = map_checkout(payload, shop_domain=stored.shop_domain, event_source=source)
    events.apply_mapping(stored, event)
    return validate(spec, stored.name, stored.properties)
