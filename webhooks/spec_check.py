"""Check a raw Shopify payload against the track spec (`connector spec check`). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.events import EventName
from connector.spec import TrackSpec, validate
from webhooks.mapping import MappingError, map_checkout, map_order


def check_payload(
    spec: TrackSpec,
    payload: Mapping[str, Any],
    topic: str,
    shop_domain: str = "example.myshopify.com",
) -> tuple[dict[str, Any] | None, list[str]]:
    """Map a Shopify payload for a topic and validate it: (event as JSON-able dict, violations).

    orders/* topics map to order_placed, checkouts/* to checkout_started; any other topic,
    and any payload the mapping rejects, gives (None, ["<topic>: <reason>"]).
    The command line cannot know the shop's order ledger, so is_first_order is filled in
    as False when the mapping did not set it.
    """
    if topic.startswith("orders/"):
        mapper = map_order
    elif topic.startswith("checkouts/"):
        mapper = map_checkout
    else:
        return None, [f"{topic}: topic does not produce an event in the spec"]
    try:
        event = mapper(payload, shop_domain=shop_domain)
    except MappingError as exc:
        return None, [f"{topic}: {exc.reason}"]
    if event.name == EventName.ORDER_PLACED and "is_first_order" not in event.properties:
        event = event.with_properties(is_first_order=False)
    as_dict = {
        "id": event.id,
        "name": event.name,
        "timestamp": int(event.occurred_at.timestamp()),
        "person_id": event.person.id,
        "properties": event.properties,
    }
    return as_dict, validate(spec, event.name, event.properties)
