"""Which canonical events a webhook yields: the one dispatch the pipeline and
`connector spec check` share. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.events import CanonicalEvent, Person
from webhooks.graphql_orders import event_source_of
from webhooks.mapping import (
    MappingError,
    PlacedOrder,
    ProductInfo,
    map_cancellation,
    map_checkout,
    map_customer,
    map_fulfillment,
    map_order,
    map_refund,
)
from webhooks.topics import (
    CHECKOUT_TOPICS,
    CUSTOMER_TOPICS,
    KNOWN_TOPICS,
    ORDER_PLACING_TOPICS,
    Topic,
)

# A refund or fulfilment of an order the caller knows nothing about (`spec check`).
UNKNOWN_ORDER = PlacedOrder(person=Person(), order_name=None, currency=None, revenue=None)


class UnhandledTopicError(MappingError):
    """Raised for a topic the connector does not subscribe to or handle."""


def events_for(
    topic: str,
    payload: Mapping[str, Any],
    shop_domain: str,
    placed_order: PlacedOrder | None = None,
    products: Mapping[str, ProductInfo] | None = None,
) -> list[CanonicalEvent]:
    """The canonical events a webhook of `topic` maps to, before any per-shop decision.

    orders/create, orders/paid and orders/updated map to order_placed (whether it is placed
    is decided against the shop's settings and what is stored; an order body stored by
    reconciliation maps with event_source "reconciliation"); checkouts/* to
    checkout_started; orders/cancelled to order_cancelled; refunds/create and
    fulfillments/create to order_refunded and order_fulfilled on the person of
    `placed_order` (the stored order they belong to); customers/create and
    customers/update to profile_updated (identify only); uninstall and privacy topics yield
    no event. Raises MappingError for a payload the mapping rejects, UnhandledTopicError
    for a topic the connector does not handle.
    """
    order = placed_order or UNKNOWN_ORDER
    if topic in ORDER_PLACING_TOPICS:
        source = event_source_of(payload)  # "reconciliation" for an order it recovered
        return [map_order(payload, shop_domain=shop_domain, event_source=source, products=products)]
    if topic in CHECKOUT_TOPICS:
        return [map_checkout(payload, shop_domain=shop_domain, products=products)]
    if topic == Topic.ORDERS_CANCELLED:
        return [map_cancellation(payload, shop_domain=shop_domain, products=products)]
    if topic == Topic.REFUNDS_CREATE:
        return [map_refund(payload, shop_domain=shop_domain, order=order, products=products)]
    if topic == Topic.FULFILLMENTS_CREATE:
        return [map_fulfillment(payload, shop_domain=shop_domain, order=order, products=products)]
    if topic in CUSTOMER_TOPICS:
        return [map_customer(payload, shop_domain=shop_domain)]
    if topic in KNOWN_TOPICS:
        return []
    raise UnhandledTopicError(f"the connector does not handle the topic {topic}")
