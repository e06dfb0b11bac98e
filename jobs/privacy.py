"""Shopify's privacy webhooks, run by the processing worker (never in the request).

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
from typing import Any

from connector.identity import normalize_email
from connector.statuses import EventStatus, InboxState
from connector.storage import privacy as storage
from connector.storage.db import Session
from connector.storage.models import Event, WebhookDelivery
from connector.timeutil import utcnow
from webhooks.topics import CUSTOMER_TOPICS

REDACTED_REASON = "customer redacted: not sent"
PERSONAL_PROPERTIES = (
    "shipping_country",
    "landing_site",
    "referring_site",
    "recovery_url",
    "tracking_number",
    "tracking_url",
    "note",
)


def key_hash(shop_domain: str, value: str) -> str:
    """A one-way stand-in for a customer key (id or email) inside one shop."""
    return hashlib.sha256(f"{shop_domain}\x1f{value}".encode()).hexdigest()


def _customer(payload: dict[str, Any]) -> dict[str, Any]:
    customer = payload.get("customer")
    return customer if isinstance(customer, dict) else {}


def _customer_keys(payload: dict[str, Any]) -> list[str]:
    """The customer's id (first, when there is one) and email: every key they are known by."""
    customer = _customer(payload)
    keys = [str(customer["id"])] if customer.get("id") not in (None, "") else []
    email = normalize_email(customer.get("email"))
    if email:
        keys.append(email)
    return keys


def _orders(payload: dict[str, Any], field: str) -> list[str]:
    return [str(order_id) for order_id in payload.get(field) or []]


def export_customer(session: Session, row: WebhookDelivery, payload: dict[str, Any]) -> str:
    shop = row.shop_domain
    keys = _customer_keys(payload)
    orders = _orders(payload, "orders_requested")
    events = storage.events_of_customer(session, shop, keys, orders)
    deliveries = storage.deliveries_of_customer(session, shop, keys, events, row.id)
    ledger = storage.orders_of_customer(session, shop, keys)
    content = {
        "shop": shop,
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
    request = payload.get("data_request")
    request_id = request.get("id") if isinstance(request, dict) else None
    storage.add_export(
        session,
        shop,
        data_request_id=str(request_id) if request_id is not None else None,
        customer_id=keys[0] if keys and keys[0].isdigit() else None,
        content=content,
    )
    return f"data request: {len(events)} event(s), {len(deliveries)} webhook(s) exported"


def redact_customer(session: Session, row: WebhookDelivery, payload: dict[str, Any]) -> str:
    shop = row.shop_domain
    keys = _customer_keys(payload)
    orders = _orders(payload, "orders_to_redact")
    events = storage.events_of_customer(session, shop, keys, orders)
    person_keys = set(keys) | {e.person_id for e in events if e.person_id}
    for delivery in storage.deliveries_of_customer(
        session, shop, sorted(person_keys), events, row.id
    ):
        erase_delivery(delivery)
    for event in events:
        _erase_event(event, shop)
    storage.clear_attempt_excerpts(session, [e.id for e in events])
    for key in person_keys:
        storage.replace_person_key(session, shop, key, "redacted:" + key_hash(shop, key)[:40])
        storage.add_tombstone(session, shop, key_hash(shop, key))
    if keys and keys[0].isdigit():
        storage.delete_exports_of(session, shop, customer_id=keys[0])
    row.body = json.dumps(
        {"shop_domain": shop, "customer": {"redacted": True}, "orders_to_redact": orders}
    )
    return f"customer redacted: {len(events)} event(s)"


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
    return storage.has_tombstones(session, shop_domain)


def erase_if_redacted(session: Session, row: WebhookDelivery, payload: dict[str, Any]) -> bool:
    """Erase a newly received webhook about a redacted customer; True if it was."""
    customer = payload if row.topic in CUSTOMER_TOPICS else _customer(payload)
    keys = [
        str(customer.get("id") or "").strip(),
        normalize_email(payload.get("email")),
        normalize_email(customer.get("email")),
    ]
    hashes = [key_hash(row.shop_domain, k) for k in keys if k]
    if not hashes or not storage.any_tombstone(session, row.shop_domain, hashes):
        return False
    erase_delivery(row)
    return True


def redact_shop(session: Session, row: WebhookDelivery, _payload: dict[str, Any]) -> str:
    storage.erase_shop(session, row.shop_domain, keep_delivery_id=row.id)
    return "shop data erased"


def _json(body: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
