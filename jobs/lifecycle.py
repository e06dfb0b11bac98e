"""Uninstall, and the dispatch of the lifecycle webhooks the processing worker runs alone.

app/uninstalled deactivates the shop and erases its tokens; pending events wait, marked
"shop uninstalled", and the delivery drain skips the shop until it is reinstalled. The three
privacy topics are handled in jobs/privacy.py, once their payload names the shop they came for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from connector.statuses import InboxState
from connector.storage import shops
from connector.storage.db import Session
from connector.storage.models import WebhookDelivery
from connector.timeutil import utcnow
from jobs.privacy import export_customer, redact_customer, redact_shop, shop_mismatch
from webhooks.topics import PRIVACY_TOPICS, Topic

log = logging.getLogger(__name__)

UNINSTALLED_REASON = "waiting: shop uninstalled"

Handler = Callable[[Session, WebhookDelivery, dict[str, Any]], str]


def mark_uninstalled(session: Session, row: WebhookDelivery, _payload: dict[str, Any]) -> str:
    if shops.mark_uninstalled(session, row.shop_domain) is None:
        return "recorded: unknown shop"
    shops.mark_pending_events(session, row.shop_domain, UNINSTALLED_REASON)
    return "shop uninstalled: tokens erased, pending events wait"


def resume_after_reinstall(session: Session, shop_domain: str) -> None:
    """Clear the "shop uninstalled" mark from events that waited (called on re-install)."""
    shops.clear_event_reason(session, shop_domain, UNINSTALLED_REASON)


_HANDLERS: dict[str, Handler] = {
    Topic.APP_UNINSTALLED: mark_uninstalled,
    Topic.CUSTOMERS_DATA_REQUEST: export_customer,
    Topic.CUSTOMERS_REDACT: redact_customer,
    Topic.SHOP_REDACT: redact_shop,
}


def handle_lifecycle(session: Session, row: WebhookDelivery) -> None:
    """Apply one uninstall or privacy delivery and mark it processed."""
    payload = json.loads(row.body)
    refused = shop_mismatch(row, payload) if row.topic in PRIVACY_TOPICS else None
    if refused is not None:  # a payload for another shop must not read or erase this one's
        row.state, row.state_reason, row.processed_at = InboxState.FAILED, refused, utcnow()
        log.warning("lifecycle %s refused shop=%s delivery=%s", row.topic, row.shop_domain, row.id)
        return
    reason = _HANDLERS[row.topic](session, row, payload)
    row.state, row.state_reason, row.processed_at = InboxState.PROCESSED, reason, utcnow()
    log.info("lifecycle %s done shop=%s delivery=%s", row.topic, row.shop_domain, row.id)
