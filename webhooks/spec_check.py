"""Check a raw Shopify payload against the track spec (`connector spec check`). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.events import IDENTIFY_ONLY, EventName
from connector.spec import TrackSpec, validate
from webhooks.canonical import events_for
from webhooks.mapping import MappingError


def check_payload(
    spec: TrackSpec,
    payload: Mapping[str, Any],
    topic: str,
    shop_domain: str = "example.myshopify.com",
) -> tuple[list[dict[str, Any]], list[str]]:
    """Map a payload exactly as the pipeline does and validate each event it yields:
    (events as JSON-able dicts, violations).

    A topic that yields no event (orders/cancelled, app/uninstalled, ...) gives ([], []);
    a payload the mapping rejects, or a topic the connector does not handle, gives
    ([], ["<topic>: <reason>"]). The command line cannot know the shop's order ledger, so
    is_first_order is filled in as False on order_placed.
    """
    try:
        events = events_for(topic, payload, shop_domain)
    except MappingError as exc:
        return [], [f"{topic}: {exc.reason}"]
    checked, violations = [], []
    for event in events:
        if event.name == EventName.ORDER_PLACED:
            event = event.with_properties(is_first_order=False)
        checked.append(
            {
                "id": event.id,
                "name": event.name,
                "timestamp": int(event.occurred_at.timestamp()),
                "person_id": event.person.id,
                "properties": event.properties,
            }
        )
        if event.name not in IDENTIFY_ONLY:  # nothing tracked: nothing for the spec to check
            violations.extend(validate(spec, event.name, event.properties))
    return checked, violations
