"""Reconciliation of missed webhooks: ask the Admin API what changed, feed the orders the
connector never saw through the normal pipeline, and re-create deleted subscriptions (or,
with WEBHOOK_SUBSCRIPTIONS=app, report the missing ones: connector/shopify/subscriptions.py).

Shopify gives up on a webhook after 8 tries over about 4 hours, and deletes subscriptions
that keep failing. So each installed shop is asked, every RECONCILE_INTERVAL_SECONDS, for
its orders updated since a stored watermark, least recently updated first, a page at a
time (AdminClient waits out throttling; a run that still fails keeps the watermark of the
pages it finished, so the next run resumes there).

An order with no order_placed event and no order webhook waiting in the inbox gets an
inbox row of its own: topic orders/create, event id "reconciliation:<order id>" (a repeat
run is a no-op), the order in the webhook's REST shape, marked as reconciliation's
(webhooks/graphql_orders.py). Processing then maps and places it like a webhook, with
event_source "reconciliation": the same stable event id, so a webhook arriving late
afterwards is "order already placed"; the install date and the new-order window apply.

Abandoned checkouts are not reconciled: a lost checkouts/* webhook loses that
checkout_started.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.runtime import Runtime
from connector.shopify.admin import AdminClient, client_for
from connector.shopify.errors import ShopifyError
from connector.shopify.subscriptions import sync_webhooks
from connector.statuses import InboxState, ShopStatus
from connector.storage import inbox, reconciliation
from connector.storage.db import Session, transaction
from connector.storage.models import Shop
from connector.storage.shops import get_shop
from connector.timeutil import parse_utc, utcnow
from jobs import queue
from jobs.orders import places_order
from webhooks.graphql_orders import RECONCILIATION, order_payload
from webhooks.topics import Topic

log = logging.getLogger(__name__)

# An order younger than this may still have its webhook on the way: left to the next run.
GRACE = timedelta(minutes=5)
# Asked again below the watermark: Shopify's search index can lag behind an update.
OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True)
class ReconcileResult:
    """What one run did for one shop; `skipped` or `error` say why it did less."""

    shop_domain: str
    orders_seen: int = 0
    orders_recovered: int = 0
    subscriptions_recreated: int = 0
    watermark: datetime | None = None
    skipped: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class _Window:
    """Which orders a run may feed: created after `placed_after` (the install and the
    new-order window, as processing enforces) and before `fresh_after` (see GRACE)."""

    placed_after: datetime
    fresh_after: datetime
    order_topic: str
    include_test_orders: bool

    def feeds(self, payload: dict[str, Any]) -> bool:
        try:
            created = parse_utc(str(payload.get("created_at")))
        except ValueError:
            return False
        if not self.placed_after <= created < self.fresh_after:
            return False
        if payload.get("test") and not self.include_test_orders:
            return False
        return places_order(Topic.ORDERS_CREATE, payload, self.order_topic)


def reconcile_shop(
    rt: Runtime,
    shop_domain: str,
    *,
    client: AdminClient | None = None,
    now: datetime | None = None,
    grace: timedelta = GRACE,
) -> ReconcileResult:
    """One reconciliation run for one shop; records its outcome, failed or not."""
    started = now or utcnow()
    with transaction(rt.sessions) as session:
        shop = get_shop(session, shop_domain)
        if shop is None or shop.status == ShopStatus.UNINSTALLED:
            return ReconcileResult(shop_domain, skipped="not installed")
        if not shop.shopify_access_token_encrypted:
            return ReconcileResult(shop_domain, skipped="no Admin API token")
        window = _window(rt, shop, started, grace)
        state = reconciliation.start_run(session, shop_domain, started)
        watermark = state.watermark or window.placed_after
    seen = recovered = recreated = 0
    errors: list[str] = []
    orders_done = False
    try:
        client = client or client_for(rt.sessions, rt.secrets, rt.settings, shop_domain)
    except ShopifyError as exc:
        errors.append(exc.reason)
    if client is not None:
        try:  # a failure here must not keep the orders from being looked at
            subscriptions = sync_webhooks(client, rt.settings, shop_domain)
            recreated = subscriptions.created
            if subscriptions.report():  # "app" mode: declared ones missing; nothing created
                errors.append(str(subscriptions.report()))
        except ShopifyError as exc:
            errors.append(f"subscriptions: {exc.reason}")
        try:
            for nodes, _cursor in client.orders_updated_pages(_search(watermark, window)):
                with transaction(rt.sessions) as session:
                    recovered += _feed_page(session, rt, shop_domain, nodes, window)
                seen += len(nodes)
            orders_done = True
        except ShopifyError as exc:
            errors.append(f"orders: {exc.reason}")
    error = "; ".join(errors) or None
    with transaction(rt.sessions) as session:
        if orders_done:  # every order updated before fresh_after was looked at
            reconciliation.advance_watermark(session, shop_domain, window.fresh_after)
        reconciliation.finish_run(
            session,
            shop_domain,
            utcnow(),
            orders_seen=seen,
            orders_recovered=recovered,
            subscriptions_recreated=recreated,
            error=error,
        )
        finished = reconciliation.get_state(session, shop_domain)
        stored_watermark = finished.watermark if finished is not None else None
    if recovered and rt.settings.redis_url:
        queue.kick(rt.redis, rt.settings.queue_name, queue.PROCESS)
    log.info(
        "reconciled shop=%s seen=%d recovered=%d subscriptions_recreated=%d error=%s",
        shop_domain,
        seen,
        recovered,
        recreated,
        error,
    )
    return ReconcileResult(shop_domain, seen, recovered, recreated, stored_watermark, error=error)


def _window(rt: Runtime, shop: Shop, started: datetime, grace: timedelta) -> _Window:
    placed_after = started - timedelta(hours=rt.settings.new_order_window_hours)
    if shop.installed_at is not None:
        placed_after = max(placed_after, shop.installed_at)
    return _Window(
        placed_after=placed_after,
        fresh_after=started - grace,
        order_topic=shop.order_topic,
        include_test_orders=shop.include_test_orders,
    )


def _feed_page(
    session: Session, rt: Runtime, shop_domain: str, nodes: Iterable[Any], window: _Window
) -> int:
    """Store an inbox row for each order of the page the connector never saw; move the
    watermark to the page's last update. Returns how many rows were stored."""
    candidates: dict[str, dict[str, Any]] = {}
    last_update: datetime | None = None
    for node in nodes:
        if not isinstance(node, dict):
            continue
        payload = order_payload(node, source=RECONCILIATION)
        updated = _time(payload.get("updated_at"))
        if updated is not None and (last_update is None or updated > last_update):
            last_update = updated
        if payload.get("id") not in (None, "") and window.feeds(payload):
            candidates[str(payload["id"])] = payload
    stored = 0
    for order_id in sorted(reconciliation.unseen_orders(session, shop_domain, candidates)):
        payload = candidates[order_id]
        stored += inbox.add_delivery(
            session,
            {
                "shop_domain": shop_domain,
                "topic": Topic.ORDERS_CREATE.value,
                "shopify_event_id": f"{RECONCILIATION}:{order_id}",
                "api_version": rt.settings.shopify_api_version,
                "triggered_at": _time(payload.get("updated_at")),
                "body": json.dumps(payload),
                "state": InboxState.RECEIVED.value,
                "resource_key": order_id,
            },
        )
    if last_update is not None:
        reconciliation.advance_watermark(session, shop_domain, min(last_update, window.fresh_after))
    return stored


def _search(watermark: datetime, window: _Window) -> str:
    """Orders updated since the watermark (less OVERLAP) that may still be placed."""
    since = _iso(watermark - OVERLAP)
    return f"updated_at:>='{since}' created_at:>='{_iso(window.placed_after)}'"


def _time(value: Any) -> datetime | None:
    try:
        return parse_utc(str(value)) if value else None
    except ValueError:
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
