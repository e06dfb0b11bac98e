"""Reconciliation's bookkeeping: the per-shop watermark and results, and which orders the
connector never saw."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select

from connector.events import EventName
from connector.statuses import InboxState, ShopStatus
from connector.storage.db import Session
from connector.storage.models import Event, Shop, ShopReconciliation, WebhookDelivery
from webhooks.topics import ORDER_PLACING_TOPICS


def get_state(session: Session, shop_domain: str) -> ShopReconciliation | None:
    return session.get(ShopReconciliation, shop_domain)


def states(session: Session) -> dict[str, ShopReconciliation]:
    """Every shop's reconciliation state, by shop (the console's overview)."""
    rows = session.scalars(select(ShopReconciliation)).all()
    return {row.shop_domain: row for row in rows}


def _state(session: Session, shop_domain: str) -> ShopReconciliation:
    """The shop's state row, created (all counts 0) when it has none yet."""
    state = session.get(ShopReconciliation, shop_domain)
    if state is None:
        state = ShopReconciliation(
            shop_domain=shop_domain,
            last_orders_seen=0,
            last_orders_recovered=0,
            last_subscriptions_recreated=0,
            orders_recovered_total=0,
            subscriptions_recreated_total=0,
        )
        session.add(state)
    return state


def start_run(session: Session, shop_domain: str, now: datetime) -> ShopReconciliation:
    """The shop's state, created on its first run, marked as started now."""
    state = _state(session, shop_domain)
    state.last_started_at = now
    return state


def advance_watermark(session: Session, shop_domain: str, watermark: datetime) -> None:
    """Move the watermark forward (never back: a slower overlapping run cannot undo it)."""
    state = session.get(ShopReconciliation, shop_domain)
    if state is not None and (state.watermark is None or state.watermark < watermark):
        state.watermark = watermark


def finish_run(
    session: Session,
    shop_domain: str,
    now: datetime,
    *,
    orders_seen: int,
    orders_recovered: int,
    subscriptions_recreated: int,
    error: str | None,
) -> None:
    """Record what a run did (also a failed one: what it got done before failing)."""
    state = session.get(ShopReconciliation, shop_domain)
    if state is None:
        return
    state.last_finished_at = now
    state.last_error = error
    state.last_orders_seen = orders_seen
    state.last_orders_recovered = orders_recovered
    state.last_subscriptions_recreated = subscriptions_recreated
    state.orders_recovered_total += orders_recovered
    state.subscriptions_recreated_total += subscriptions_recreated


def unseen_orders(session: Session, shop_domain: str, order_ids: Collection[str]) -> set[str]:
    """The orders among `order_ids` that have no order_placed event and no order webhook
    waiting in the inbox: those whose webhooks never came (or never placed them)."""
    if not order_ids:
        return set()
    placed = select(Event.natural_key).where(
        Event.shop_domain == shop_domain,
        Event.name == EventName.ORDER_PLACED,
        Event.natural_key.in_(order_ids),
    )
    waiting = select(WebhookDelivery.resource_key).where(
        WebhookDelivery.shop_domain == shop_domain,
        WebhookDelivery.topic.in_(ORDER_PLACING_TOPICS),
        WebhookDelivery.state == InboxState.RECEIVED,
        WebhookDelivery.resource_key.in_(order_ids),
    )
    seen = set(session.scalars(placed)) | {key for key in session.scalars(waiting) if key}
    return set(order_ids) - seen


def shops_to_reconcile(session: Session) -> list[str]:
    """Installed shops: an Admin API token, and not uninstalled."""
    query = (
        select(Shop.domain)
        .where(Shop.shopify_access_token_encrypted.is_not(None))
        .where(Shop.status != ShopStatus.UNINSTALLED)
        .order_by(Shop.domain)
    )
    return list(session.scalars(query))


def record_subscription_check(session: Session, shop_domain: str, report: str) -> None:
    """An install's subscription check that found something missing: shown with the shop's
    reconciliation state (the support console) until the next run reports its own."""
    state = _state(session, shop_domain)
    state.last_error = f"at install: {report}"
