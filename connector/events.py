"""Canonical retention events and their stable ids. Pure: no Flask, Redis or database."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from ulid import ULID

from connector.identity import person_key


class EventName(StrEnum):
    """The canonical events the track spec (spec.yaml) defines."""

    ORDER_PLACED = "order_placed"
    CHECKOUT_STARTED = "checkout_started"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_REFUNDED = "order_refunded"
    ORDER_FULFILLED = "order_fulfilled"
    # Not a tracked event: a customer record changed, so only the profile is identified.
    PROFILE_UPDATED = "profile_updated"


# Stored and delivered like the others, but sent as an identify alone: nothing is tracked,
# so the track spec has nothing to check.
IDENTIFY_ONLY = frozenset({EventName.PROFILE_UPDATED})


@lru_cache(maxsize=4096)
def stable_event_id(shop_domain: str, event_name: str, natural_key: str) -> str:
    """Derive the event's id from what it is about, never from when we saw it.

    Customer.io dedupes on a ULID event id and ignores the ULID's time part, so the
    128 bits are a SHA-256 prefix of (shop, event name, natural key): mapping the same
    order again always yields the same id. Remembered for the last few thousand: a batch
    asks for each of its ids several times (look-ups, the event, its checkout).
    """
    digest = hashlib.sha256(f"{shop_domain}\x1f{event_name}\x1f{natural_key}".encode()).digest()
    return str(ULID.from_bytes(digest[:16]))


@dataclass(frozen=True)
class Person:
    """Who an event belongs to: the Shopify customer id first, the email second."""

    customer_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    accepts_marketing: bool | None = None
    phone: str | None = None
    created_at: int | None = None  # when the customer account was created (Unix seconds)
    # Marketing consent as this payload tells it: Shopify's state ("subscribed",
    # "not_subscribed", "unsubscribed", "pending", ...) and as of when (Unix seconds).
    email_consent: str | None = None
    email_consent_at: int | None = None
    sms_consent: str | None = None
    sms_consent_at: int | None = None

    @property
    def id(self) -> str | None:
        """The Customer.io identifier: customer id, else email, else None (unidentifiable)."""
        return person_key(self.customer_id, self.email)


@dataclass(frozen=True)
class CanonicalEvent:
    """One retention event as the track spec defines it, ready to validate and deliver."""

    name: str
    shop_domain: str
    natural_key: str  # order id or checkout token
    occurred_at: datetime  # when the shopper acted, timezone-aware
    person: Person
    properties: dict[str, Any] = field(default_factory=dict)
    is_test: bool = False
    order_count_hint: int | None = None  # the payload's customer order count, when it has one

    @property
    def id(self) -> str:
        return stable_event_id(self.shop_domain, self.name, self.natural_key)

    def with_properties(self, **extra: Any) -> CanonicalEvent:
        return replace(self, properties={**self.properties, **extra})
