"""Which canonical events a webhook yields: the one dispatch the pipeline and
`connector spec check` share. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.events import CanonicalEvent
from webhooks.mapping import MappingError, map_checkout, map_order
from webhooks.topics import CHECKOUT_TOPICS, KNOWN_TOPICS, ORDER_PLACING_TOPICS


class UnhandledTopicError(MappingError):
    """Raised for a topic the connector does not subscribe to or handle."""


def events_for(topic: str, payload: Mapping[str, Any], shop_domain: str) -> list[CanonicalEvent]:
    """The canonical events a webhook of `topic` maps to, before any per-shop decision.

    orders/create, orders/paid and orders/updated map to order_placed (whether it is placed
    is decided against the shop's settings and what is stored); checkouts/* to
    checkout_started; the other handled topics (cancellations, uninstall, privacy) yield
    no event. Raises MappingError for a payload the mapping rejects, UnhandledTopicError
    for a topic the connector does not handle.
    """
    if topic in ORDER_PLACING_TOPICS:
        return [map_order(payload, shop_domain=shop_domain)]
    if topic in CHECKOUT_TOPICS:
        return [map_checkout(payload, shop_domain=shop_domain)]
    if topic in KNOWN_TOPICS:
        return []
    raise UnhandledTopicError(f"the connector does not handle the topic {topic}")
