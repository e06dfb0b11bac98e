"""RQ job functions: module-level, taking ids and strings, opening their own sessions."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from connector import runtime
from connector.storage import reconciliation as reconciliation_state
from connector.storage.db import transaction
from jobs import history, products, queue, reconciliation
from jobs.delivery import Deliverer, DeliveryPolicy
from jobs.housekeeping import find_work
from jobs.processing import process_batch
from jobs.ratelimit import RateLimiter

log = logging.getLogger(__name__)


def process_inbox(shop_domain: str) -> int:
    """Map every received webhook of a shop into events, then nudge delivery."""
    rt = runtime.current()
    queue.clear_kick(rt.redis, queue.PROCESS, shop_domain)
    handled = 0
    lookup = history.order_count_lookup(rt)  # asks Shopify about customers the ledger lacks
    window = timedelta(hours=rt.settings.new_order_window_hours)
    product_fetch = products.product_fetch(rt)  # product details for the emails
    deadline = time.monotonic() + queue.DRAIN_SECONDS
    # One mapper per shop at a time, so first orders are decided in the shopper's order.
    with rt.redis.lock(f"connector:lock:process:{shop_domain}", timeout=300, blocking_timeout=120):
        while True:
            with transaction(rt.sessions) as session:
                count = process_batch(
                    session,
                    rt.spec,
                    shop_domain,
                    order_count=lookup,
                    new_order_window=window,
                    product_fetch=product_fetch,
                )
            if not count:
                break
            handled += count
            queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER, shop_domain)
            if time.monotonic() > deadline:  # give the worker to others; continue later
                queue.kick(rt.redis, rt.settings.queue_name, queue.PROCESS, shop_domain, force=True)
                break
    return handled


def deliverer(rt: runtime.Runtime) -> Deliverer:
    settings = rt.settings
    return Deliverer(
        sessions=rt.sessions,
        secrets=rt.secrets,
        limiter=RateLimiter(rt.redis, settings.delivery_rate_per_second),
        policy=DeliveryPolicy(
            batch_size=settings.delivery_batch_size,
            lease_seconds=settings.lease_seconds,
            retry_schedule=settings.retry_schedule,
            track_url_override=settings.customerio_track_url,
            http_timeout=settings.http_timeout_seconds,
        ),
    )


def deliver_pending(shop_domain: str) -> int:
    """Deliver a shop's due events to its Customer.io workspace."""
    rt = runtime.current()
    queue.clear_kick(rt.redis, queue.DELIVER, shop_domain)
    delivered, unfinished = deliverer(rt).drain(
        shop_domain, deadline=time.monotonic() + queue.DRAIN_SECONDS
    )
    if unfinished:  # give the worker to others; continue later
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER, shop_domain, force=True)
    return delivered


def sweep() -> dict[str, int]:
    """Re-nudge whatever is pending without a live job; expire held checkouts."""
    rt = runtime.current()
    work = find_work(rt.sessions, rt.settings.checkout_hold_hours)
    for shop in work.shops_to_process:
        queue.kick(rt.redis, rt.settings.queue_name, queue.PROCESS, shop, force=True)
    for shop in work.shops_to_deliver:
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER, shop, force=True)
    return {
        "shops_to_process": len(work.shops_to_process),
        "shops_to_deliver": len(work.shops_to_deliver),
        "checkouts_expired": work.checkouts_expired,
    }


def import_history(shop_domain: str) -> int:
    """Seed the first-order ledger from the shop's order history (queued on install)."""
    return history.import_history(runtime.current(), shop_domain)


def reconcile_all() -> dict[str, int]:
    """Queue one reconciliation run per installed shop (RQ cron, every
    RECONCILE_INTERVAL_SECONDS); a shop whose last run is still queued or running is left."""
    rt = runtime.current()
    with rt.sessions() as session:
        shops = reconciliation_state.shops_to_reconcile(session)
    queued = sum(
        queue.enqueue_reconciliation(rt.redis, rt.settings.queue_name, shop) for shop in shops
    )
    return {"shops": len(shops), "queued": queued}


def reconcile_shop(shop_domain: str) -> dict[str, object]:
    """One shop's reconciliation run (queued by reconcile_all)."""
    rt = runtime.current()
    try:
        result = reconciliation.reconcile_shop(rt, shop_domain)
    finally:
        queue.end_reconciliation(rt.redis, shop_domain)
    return {
        "recovered": result.orders_recovered,
        "subscriptions_recreated": result.subscriptions_recreated,
        "error": result.error or result.skipped,
    }
