"""One person per shopper: a guest order or checkout with the email of a known customer
goes to that customer, so Customer.io gets one profile and the ledger one history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from connector.events import CanonicalEvent
from connector.storage import shoppers
from connector.storage.db import Session
from webhooks.mapping import shopper_of
from webhooks.topics import CHECKOUT_TOPICS, CUSTOMER_TOPICS, ORDER_PLACING_TOPICS, Topic

# Webhooks that name the shopper (refunds and fulfilments do not).
SHOPPER_TOPICS = ORDER_PLACING_TOPICS | CHECKOUT_TOPICS | CUSTOMER_TOPICS | {Topic.ORDERS_CANCELLED}


def known_customers(
    session: Session, webhooks: Mapping[str, Iterable[tuple[str, Any]]]
) -> dict[str, dict[str, str]]:
    """Learn email -> customer id from the batch's webhooks (shop -> (topic, payload)) that
    carry both, then return, per shop, the customer id of every guest email in the batch
    that a customer is known by (two or three statements for all the shops)."""
    linked: dict[str, dict[str, str]] = {}
    guests: set[tuple[str, str]] = set()
    for shop, shop_webhooks in webhooks.items():
        for topic, payload in shop_webhooks:
            if topic not in SHOPPER_TOPICS or not isinstance(payload, Mapping):
                continue
            # A customers/* payload is the customer record itself.
            customer_id, email = shopper_of(
                {"customer": payload} if topic in CUSTOMER_TOPICS else payload
            )
            if customer_id and email:
                linked.setdefault(shop, {}).setdefault(email, customer_id)
            elif email:
                guests.add((shop, email))
    shoppers.link_emails(session, linked)
    known: dict[str, dict[str, str]] = {shop: {} for shop in webhooks}
    for (shop, email), customer in shoppers.customers_for(session, guests).items():
        known[shop][email] = customer
    return known


def as_known_customer(event: CanonicalEvent, known: Mapping[str, str]) -> CanonicalEvent:
    """The event on its customer when it came as a guest with a customer's email."""
    person = event.person
    if person.customer_id is not None or person.email is None or person.email not in known:
        return event
    return replace(event, person=replace(person, customer_id=known[person.email]))
