"""Uninstall and Shopify's privacy webhooks, run by the processing worker (never in the request).

- app/uninstalled: the shop is deactivated and its tokens erased; pending events wait,
  marked "shop uninstalled", and the delivery drain skips the shop until it is reinstalled.
- customers/data_request: what the connector holds about the customer is stored as a
  PrivacyExport, which the merchant downloads from the settings page.
- customers/redact: the customer's personal data is erased from inbox payloads, events,
  attempts, the ledger and exports; ids and counts needed for dedupe stay. A tombstone
  (hashed keys) makes later webhooks about them arrive already erased.
- shop/redact: everything stored for the shop is deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from connector.statuses import EventStatus, InboxState, ShopStatus
from connector.storage.models import (
    CustomerLedger,
    CustomerOrder,
    DeliveryAttempt,
    Event,
    PrivacyExport,
    RedactedCustomer,
    Shop,
    WebhookDelivery,
)
from connector.timeutil import utcnow
from webhooks.topics import Topic

log = logging.getLogger(__name__)

UNINSTALLED_REASON = "waiting: shop uninstalled"
REDACTED_REASON = "customer redacted: not sent"
PERSONAL_PROPERTIES = ("shipping_country", "landing_site", "referring_site", "recovery_url")


def key_hash(shop_domain: str, value: str) -> str:
    """A one-way stand-in for a customer key (id or email) inside one shop."""
    return hashlib.sha256(f"{shop_domain}\x1f{value}".encode()).hexdigest()


def handle_lifecycle(session: Session, row: WebhookDelivery) -> None:
    """Apply one uninstall or privacy delivery and mark it processed."""
    payload = json.loads(row.body)
    handlers = {
        Topic.APP_UNINSTALLED: mark_uninstalled,
        Topic.CUSTOMERS_DATA_REQUEST: export_customer,
        Topic.CUSTOMERS_REDACT: redact_customer,
        Topic.SHOP_REDACT: redact_shop,
    }
    reason = handlers[row.topic](session, row, payload)
    row.state, row.state_reason, row.processed_at = InboxState.PROCESSED, reason, utcnow()
    log.info("lifecycle %s done shop=%s delivery=%s", row.topic, row.shop_domain, row.id)


def mark_uninstalled(session: Session, row: WebhookDelivery, _payload: dict[str, Any]) -> str:
    shop = session.get(Shop, row.shop_domain)
    if shop is None:
        return "recorded: unknown shop"
    shop.status, shop.status_reason = ShopStatus.UNINSTALLED, "app uninstalled"
    shop.uninstalled_at = utcnow()
    shop.shopify_access_token_encrypted = shop.shopify_refresh_token_encrypted = None
    shop.shopify_access_expires_at = shop.shopify_refresh_expires_at = None
    session.execute(
        update(Event)
        .where(Event.shop_domain == row.shop_domain, Event.status == EventStatus.PENDING)
        .values(reason=UNINSTALLED_REASON)
    )
    return "shop uninstalled: tokens erased, pending events wait"


def resume_after_reinstall(session: Session, shop_domain: str) -> None:
    """Clear the "shop uninstalled" mark from events that waited (called on re-install)."""
    session.execute(
        update(Event)
        .where(Event.shop_domain == shop_domain, Event.reason == UNINSTALLED_REASON)
        .values(reason=None)
    )


def _customer_keys(payload: dict[str, Any]) -> list[str]:
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    keys = [str(customer["id"])] if customer.get("id") not in (None, "") else []
    email = customer.get("email")
    if isinstance(email, str) and email.strip():
        keys.append(email.strip().lower())
    return keys


def _orders(payload: dict[str, Any], field: str) -> list[str]:
    return [str(order_id) for order_id in payload.get(field) or []]


def _events_of(session: Session, shop: str, keys: list[str], orders: list[str]) -> list[Event]:
    if not keys and not orders:
        return []
    return list(
        session.scalars(
            select(Event).where(
                Event.shop_domain == shop,
                or_(
                    Event.person_id.in_(keys),
                    Event.customer_id.in_(keys),
                    Event.email.in_(keys),
                    Event.natural_key.in_(orders),
                ),
            )
        ).all()
    )


def _deliveries_of(
    session: Session, shop: str, keys: list[str], events: Iterable[Event], exclude: int
) -> list[WebhookDelivery]:
    """Inbox rows that carry the customer: their events' sources, or bodies naming them."""
    events = list(events)
    source_ids = {e.source_delivery_id for e in events if e.source_delivery_id}
    resources = {e.natural_key for e in events}
    needles = [json.dumps(k) for k in keys]  # "123" or "a@b.c", as JSON writes them
    for number in (k for k in keys if k.isdigit()):
        needles += [f"{sep}{number}{end}" for sep in (": ", ":") for end in (",", "}")]
    mentions = [WebhookDelivery.body.contains(n, autoescape=True) for n in needles]
    query = select(WebhookDelivery).where(
        WebhookDelivery.shop_domain == shop,
        WebhookDelivery.id != exclude,
        or_(
            WebhookDelivery.id.in_(source_ids),
            WebhookDelivery.resource_key.in_(resources),
            *mentions,
        ),
    )
    return list(session.scalars(query).all())


def export_customer(session: Session, row: WebhookDelivery, payload: dict[str, Any]) -> str:
    keys = _customer_keys(payload)
    orders = _orders(payload, "orders_requested")
    events = _events_of(session, row.shop_domain, keys, orders)
    deliveries = _deliveries_of(session, row.shop_domain, keys, events, row.id)
    ledger = session.scalars(
        select(CustomerOrder).where(
            CustomerOrder.shop_domain == row.shop_domain, CustomerOrder.person_key.in_(keys)
        )
    ).all()
    content = {
        "shop": row.shop_domain,
        "customer": payload.get("customer"),
        "orders_requested": orders,
        "events": [
            {
                "id": e.id,
                "name": e.name,
                "occurred_at": e.occurred_at.isoformat(),
                "status": e.status,
                "person": e.person,
                "properties": e.properties,
                "sent_to_customerio": e.sent_identify is not None,
            }
            for e in events
        ],
        "webhooks_received": [
            {"topic": d.topic, "received_at": d.received_at.isoformat(), "body": _json(d.body)}
            for d in deliveries
        ],
        "orders_known": [
            {"order_id": o.order_id, "ordered_at": o.ordered_at.isoformat()} for o in ledger
        ],
    }
    request = payload.get("data_request") if isinstance(payload.get("data_request"), dict) else {}
    customer_id = keys[0] if keys and keys[0].isdigit() else None
    session.add(
        PrivacyExport(
            shop_domain=row.shop_domain,
            data_request_id=str(request.get("id")) if request.get("id") is not None else None,
            customer_id=customer_id,
            content=content,
        )
    )
    return f"data request: {len(events)} event(s), {len(deliveries)} webhook(s) exported"


def redact_customer(session: Session, row: WebhookDelivery, payload: dict[str, Any]) -> str:
    shop = row.shop_domain
    keys = _customer_keys(payload)
    orders = _orders(payload, "orders_to_redact")
    events = _events_of(session, shop, keys, orders)
    person_keys = set(keys) | {e.person_id for e in events if e.person_id}
    for delivery in _deliveries_of(session, shop, sorted(person_keys), events, row.id):
        erase_delivery(delivery)
    for event in events:
        _erase_event(event, shop)
    event_ids = [e.id for e in events]
    if event_ids:
        session.execute(
            update(DeliveryAttempt)
            .where(DeliveryAttempt.event_id.in_(event_ids))
            .values(excerpt=None)
        )
    for key in person_keys:
        stand_in = "redacted:" + key_hash(shop, key)[:40]
        for table in (CustomerLedger, CustomerOrder):
            session.execute(
                update(table)
                .where(table.shop_domain == shop, table.person_key == key)
                .values(person_key=stand_in)
            )
        _tombstone(session, shop, key)
    if keys and keys[0].isdigit():
        session.execute(
            delete(PrivacyExport).where(
                PrivacyExport.shop_domain == shop, PrivacyExport.customer_id == keys[0]
            )
        )
    row.body = json.dumps(
        {"shop_domain": shop, "customer": {"redacted": True}, "orders_to_redact": orders}
    )
    return f"customer redacted: {len(events)} event(s)"


def _tombstone(session: Session, shop: str, key: str) -> None:
    hashed = key_hash(shop, key)
    if session.get(RedactedCustomer, (shop, hashed)) is None:
        session.add(RedactedCustomer(shop_domain=shop, key_hash=hashed))
        session.flush()


def _erase_event(event: Event, shop: str) -> None:
    if event.person_id:
        event.person_id = "redacted:" + key_hash(shop, event.person_id)[:40]
    event.person = {}
    event.email = None
    event.customer_id = None
    event.sent_identify = None
    event.sent_track = None
    event.properties = {
        k: v for k, v in (event.properties or {}).items() if k not in PERSONAL_PROPERTIES
    }
    if event.status != EventStatus.DELIVERED:
        event.status, event.reason = EventStatus.UNIDENTIFIABLE, REDACTED_REASON


def erase_delivery(delivery: WebhookDelivery) -> None:
    """Replace a stored webhook's body by its ids only; unprocessed rows are not mapped."""
    body = _json(delivery.body)
    kept = {k: body[k] for k in ("id", "token", "name", "order_number") if k in body}
    delivery.body = json.dumps({**kept, "redacted": True})
    if delivery.state == InboxState.RECEIVED:
        delivery.state, delivery.processed_at = InboxState.IGNORED, utcnow()
        delivery.state_reason = REDACTED_REASON


def has_redactions(session: Session, shop_domain: str) -> bool:
    """Whether any customer of the shop was redacted (most shops: no, so no per-row check)."""
    query = select(RedactedCustomer.key_hash).where(RedactedCustomer.shop_domain == shop_domain)
    return session.scalars(query.limit(1)).first() is not None


def erase_if_redacted(session: Session, row: WebhookDelivery, payload: dict[str, Any]) -> bool:
    """Erase a newly received webhook about a redacted customer; True if it was."""
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    keys = [str(customer.get("id") or ""), *(str(payload.get(f) or "") for f in ("email",))]
    keys.append(str(customer.get("email") or ""))
    hashes = [key_hash(row.shop_domain, k.strip().lower()) for k in keys if k.strip()]
    if not hashes:
        return False
    found = session.scalars(
        select(RedactedCustomer.key_hash).where(
            RedactedCustomer.shop_domain == row.shop_domain,
            RedactedCustomer.key_hash.in_(hashes),
        )
    ).first()
    if found is None:
        return False
    erase_delivery(row)
    return True


def redact_shop(session: Session, row: WebhookDelivery, _payload: dict[str, Any]) -> str:
    shop = row.shop_domain
    event_ids = select(Event.id).where(Event.shop_domain == shop)
    session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.event_id.in_(event_ids)))
    session.execute(delete(Event).where(Event.shop_domain == shop))
    for table in (CustomerLedger, CustomerOrder, PrivacyExport, RedactedCustomer):
        session.execute(delete(table).where(table.shop_domain == shop))
    session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.shop_domain == shop, WebhookDelivery.id != row.id)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(Shop).where(Shop.domain == shop))
    return "shop data erased"


def _json(body: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
