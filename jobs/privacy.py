"""Shopify's privacy webhooks, run by the processing worker (never in the request).

- customers/data_request: what the connector holds about the customer is stored as a
  PrivacyExport, which the merchant downloads from the settings page.
- customers/redact: the customer's personal data is erased from every stored webhook that
  names them (by id, by any email field, by order or checkout, whether or not it produced
  an event), from events, attempts, the ledger and exports; ids and counts needed for
  dedupe stay. Tombstones (HMAC-SHA256 keyed from CONNECTOR_SECRET_KEY, so a dictionary of
  emails cannot tell who was redacted) make later webhooks about them arrive erased.
- shop/redact: everything stored for the shop is deleted.

Each is refused (inbox row failed, nothing read or erased) when the payload names another
shop than the one whose signed webhook headers it came with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from connector import runtime
from connector.crypto import tombstone, tombstone_key
from connector.events import EventName
from connector.identity import normalize_email
from connector.statuses import EventStatus, InboxState
from connector.storage import privacy as storage
from connector.storage.db import Session, checkpoint_after_commit
from connector.storage.models import Event, WebhookDelivery
from connector.timeutil import utcnow
from webhooks.topics import (
    CHECKOUT_TOPICS,
    CUSTOMER_TOPICS,
    ORDER_LIFECYCLE_TOPICS,
    ORDER_PLACING_TOPICS,
)

REDACTED_REASON = "customer redacted: not sent"
STAND_IN = "redacted:"  # a redacted shopper's person key in the ledger and on events
PERSONAL_PROPERTIES = (
    "shipping_country",
    "landing_site",
    "referring_site",
    "recovery_url",
    "tracking_number",
    "tracking_url",
    "note",
)
# Inbox rows whose resource key is an order id (refunds and fulfilments: the order's).
ORDER_TOPICS = ORDER_PLACING_TOPICS | ORDER_LIFECYCLE_TOPICS
ADDRESSES = ("billing_address", "shipping_address", "default_address")
MAX_ROUNDS = 4  # what is found names more (an order its checkout and refunds): to a fixpoint


def _key() -> bytes:
    """This process's tombstone key, from CONNECTOR_SECRET_KEY."""
    return tombstone_key(runtime.current().settings.secret_key)


def _lookup_keys() -> list[bytes]:
    """The tombstone keys of CONNECTOR_SECRET_KEY and of CONNECTOR_SECRET_KEY_PREVIOUS."""
    settings = runtime.current().settings
    return [tombstone_key(k) for k in (settings.secret_key, *settings.previous_secret_keys)]


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


def _emails(payload: dict[str, Any]) -> set[str]:
    """Every email a webhook body carries: its own, the customer's, the addresses'."""
    customer = _customer(payload)
    holders: list[Any] = [payload, customer, customer.get("default_address")]
    holders += [payload.get(a) for a in ADDRESSES]
    emails = {
        normalize_email(holder.get(name))
        for holder in holders
        if isinstance(holder, dict)
        for name in ("email", "contact_email")
    }
    return {e for e in emails if e}


def _orders(payload: dict[str, Any], field_name: str) -> list[str]:
    return [str(order_id) for order_id in payload.get(field_name) or []]


def shop_mismatch(row: WebhookDelivery, payload: dict[str, Any]) -> str | None:
    """Why a privacy request must be refused: its payload names another shop than the
    X-Shopify-Shop-Domain it was stored under (None when they agree)."""
    named = payload.get("shop_domain")
    if isinstance(named, str) and named.strip().lower() == row.shop_domain.lower():
        return None
    shown = repr(named)[:80] if named is not None else "no shop"
    return f"refused: the payload names {shown}, the webhook came for {row.shop_domain}"


# -- finding everything stored about a customer --------------------------------------------


@dataclass
class Found:
    """What a privacy request found, grown round by round from the keys it names."""

    keys: set[str]  # person keys: customer ids and lower-cased emails
    phones: set[str]
    orders: set[str]
    tokens: set[str] = field(default_factory=set)  # checkout tokens
    deliveries: dict[int, WebhookDelivery] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)

    def size(self) -> int:
        return sum(map(len, (self.keys, self.orders, self.tokens, self.deliveries, self.events)))

    def mentions(self) -> list[str]:
        """Strings whose presence in a stored body names the customer, as JSON writes
        them: "a@b.c", "+1555...", "123", and a bare number after a colon."""
        mentions = [json.dumps(value) for value in self.keys | self.phones]
        for number in (k for k in self.keys if k.isdigit()):
            mentions += [f"{sep}{number}{end}" for sep in (": ", ":") for end in (",", "}")]
        return mentions

    def learn_from_delivery(self, row: WebhookDelivery) -> None:
        body = _json(row.body)
        if row.topic in ORDER_TOPICS and row.resource_key:
            self.orders.add(row.resource_key)
        if row.topic in CHECKOUT_TOPICS and row.resource_key:
            self.tokens.add(row.resource_key)
        if body.get("checkout_token") not in (None, ""):
            self.tokens.add(str(body["checkout_token"]))

    def learn_from_event(self, event: Event) -> None:
        for key in (event.person_id, event.customer_id, event.email):
            if key and not key.startswith(STAND_IN):
                self.keys.add(key)
        properties = event.properties or {}
        if properties.get("order_id") not in (None, ""):
            self.orders.add(str(properties["order_id"]))
        if properties.get("checkout_token") not in (None, ""):
            self.tokens.add(str(properties["checkout_token"]))
        if event.name == EventName.CHECKOUT_STARTED:
            self.tokens.add(event.natural_key)


def find_customer(session: Session, row: WebhookDelivery, payload: dict[str, Any]) -> Found:
    """Every stored webhook and event about the customer a privacy request names."""
    orders = _orders(payload, "orders_to_redact") + _orders(payload, "orders_requested")
    phone = _customer(payload).get("phone")
    found = Found(
        keys=set(_customer_keys(payload)),
        phones={phone} if isinstance(phone, str) and phone.strip() else set(),
        orders=set(orders),
    )
    for _ in range(MAX_ROUNDS):
        before = found.size()
        source_ids = {e.source_delivery_id for e in found.events.values()}
        ids = {i for i in source_ids if i is not None}
        customer_ids = {k for k in found.keys if k.isdigit()}
        for delivery in storage.deliveries_of_customer(
            session,
            row.shop_domain,
            mentions=found.mentions(),
            resources=[
                (ORDER_TOPICS, found.orders),
                (CHECKOUT_TOPICS, found.tokens),
                (CUSTOMER_TOPICS, customer_ids),
            ],
            ids=ids,
            exclude=row.id,
        ):
            found.deliveries[delivery.id] = delivery
            found.learn_from_delivery(delivery)
        for event in storage.events_of_customer(
            session,
            row.shop_domain,
            found.keys,
            found.orders | found.tokens,
            set(found.deliveries),
        ):
            found.events[event.id] = event
            found.learn_from_event(event)
        if found.size() == before:
            break
    return found


# -- the three privacy webhooks ------------------------------------------------------------


def export_customer(session: Session, row: WebhookDelivery, payload: dict[str, Any]) -> str:
    shop = row.shop_domain
    keys = _customer_keys(payload)
    orders = _orders(payload, "orders_requested")
    found = find_customer(session, row, payload)
    events = sorted(found.events.values(), key=lambda e: (e.occurred_at, e.id))
    deliveries = sorted(found.deliveries.values(), key=lambda d: d.id)
    ledger = storage.orders_of_customer(session, shop, sorted(found.keys))
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
    shop, key = row.shop_domain, _key()
    found = find_customer(session, row, payload)
    for delivery in found.deliveries.values():
        erase_delivery(delivery)
    for event in found.events.values():
        _erase_event(event, key)
    storage.clear_attempt_excerpts(session, sorted(found.events))
    for person in found.keys:
        storage.replace_person_key(
            session, shop, person, STAND_IN + tombstone(key, shop, person)[:40]
        )
    tombstones = found.keys | {f"order:{o}" for o in found.orders}
    tombstones |= {f"checkout:{t}" for t in found.tokens}
    for value in sorted(tombstones):
        storage.add_tombstone(session, shop, tombstone(key, shop, value))
    customer_ids = [k for k in found.keys if k.isdigit()]
    emails = [json.dumps(k) for k in found.keys if not k.isdigit()]
    storage.delete_exports_of(session, shop, customer_ids, emails)
    row.body = json.dumps(
        {
            "shop_domain": shop,
            "customer": {"redacted": True},
            "orders_to_redact": _orders(payload, "orders_to_redact"),
        }
    )
    checkpoint_after_commit(session)  # SQLite: no erased value left in the -wal file
    return (
        f"customer redacted: {len(found.events)} event(s), "
        f"{len(found.deliveries)} webhook(s) erased"
    )


def _erase_event(event: Event, key: bytes) -> None:
    if event.person_id and not event.person_id.startswith(STAND_IN):
        event.person_id = STAND_IN + tombstone(key, event.shop_domain, event.person_id)[:40]
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
    """Replace a stored webhook's body by its ids only; rows not done with are not mapped
    (nor replayed: a failed one would be)."""
    body = _json(delivery.body)
    kept = {k: body[k] for k in ("id", "token", "name", "order_number") if k in body}
    delivery.body = json.dumps({**kept, "redacted": True})
    if delivery.state in (InboxState.RECEIVED, InboxState.FAILED):
        delivery.state, delivery.processed_at = InboxState.IGNORED, utcnow()
        delivery.state_reason = REDACTED_REASON


def has_redactions(session: Session, shop_domain: str) -> bool:
    """Whether any customer of the shop was redacted (most shops: no, so no per-row check)."""
    return storage.has_tombstones(session, shop_domain)


def _arrival_keys(row: WebhookDelivery, payload: dict[str, Any]) -> set[str]:
    """What a new webhook may be about: customer id, every email, its order or checkout."""
    customer = payload if row.topic in CUSTOMER_TOPICS else _customer(payload)
    keys = {str(customer.get("id") or "").strip()} | _emails(payload)
    if row.resource_key and row.topic in ORDER_TOPICS:
        keys.add(f"order:{row.resource_key}")
    if row.resource_key and row.topic in CHECKOUT_TOPICS:
        keys.add(f"checkout:{row.resource_key}")
    return {k for k in keys if k}


def erase_if_redacted(session: Session, row: WebhookDelivery, payload: dict[str, Any]) -> bool:
    """Erase a newly received webhook about a redacted customer; True if it was."""
    keys = _lookup_keys()  # during a key rotation, tombstones written under the old key count
    hashes = [
        tombstone(key, row.shop_domain, k)
        for key in keys
        for k in sorted(_arrival_keys(row, payload))
    ]
    if not hashes or not storage.any_tombstone(session, row.shop_domain, hashes):
        return False
    erase_delivery(row)
    checkpoint_after_commit(session)
    return True


def redact_shop(session: Session, row: WebhookDelivery, _payload: dict[str, Any]) -> str:
    storage.erase_shop(session, row.shop_domain, keep_delivery_id=row.id)
    checkpoint_after_commit(session)
    return "shop data erased"


def _json(body: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
