"""RQ job functions: module-level, taking ids and strings, opening their own sessions.

Each is wrapped by `without_personal_data`: RQ keeps a failed job's traceback in Redis
(and the worker logs it), and an exception's message can quote a shopper's email or
name. What RQ sees instead names the exception's class and where it was raised.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import LockError, RedisError

from connector import runtime
from connector.shopify.errors import ShopifyUnavailableError
from connector.storage import inbox
from connector.storage import reconciliation as reconciliation_state
from connector.storage.db import is_unavailable, transaction
from jobs import history, products, queue, reconciliation, retention
from jobs.delivery import Deliverer, DeliveryPolicy
from jobs.housekeeping import find_work
from jobs.processing import BATCH_SIZE, poison_reason, process_batch
from jobs.ratelimit import RateLimiter

log = logging.getLogger(__name__)

PROCESS_LOCK_SECONDS = 60
PROCESS_LOCK_WAIT_SECONDS = 5

P = ParamSpec("P")
R = TypeVar("R")


class JobFailedError(Exception):
    """A job's failure as RQ stores and logs it: the class and place, never the message."""


def without_personal_data(job: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(job)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return job(*args, **kwargs)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            failure = (
                f"{job.__name__} raised {type(exc).__name__} at "
                f"{where.filename.rsplit('/', 1)[-1]}:{where.lineno} (message withheld: "
                "it may quote shopper data)"
            )
            log.error("job failed: %s", failure)
            raise JobFailedError(failure) from None

    return run


@without_personal_data
def process_inbox(shop_domain: str) -> int:
    """Map every received webhook of a shop into events, then nudge delivery."""
    rt = runtime.current()
    queue.clear_kick(rt.redis, queue.PROCESS, shop_domain)
    handled = 0
    lookup = history.order_count_lookup(rt)  # asks Shopify about customers the ledger lacks
    window = timedelta(hours=rt.settings.new_order_window_hours)
    product_fetch = products.product_fetch(rt)  # product details for the emails
    deadline = time.monotonic() + queue.DRAIN_SECONDS
    options: dict[str, Any] = {
        "order_count": lookup,
        "new_order_window": window,
        "product_fetch": product_fetch,
    }
    # One mapper per shop at a time, so first orders are decided in the shopper's order.
    # The lock is short and renewed per batch: a worker killed while holding it stalls the
    # shop for at most PROCESS_LOCK_SECONDS, and a job that finds it taken waits only
    # briefly (the holder drains what arrived; the sweep re-kicks anything left).
    lock = rt.redis.lock(
        f"connector:lock:process:{shop_domain}",
        timeout=PROCESS_LOCK_SECONDS,
        blocking_timeout=PROCESS_LOCK_WAIT_SECONDS,
    )
    if not lock.acquire():
        log.info("shop %s is being mapped by another worker; leaving it to that one", shop_domain)
        return 0
    try:
        while True:
            count = _process_next_batch(rt, shop_domain, options)
            if not count:
                break
            handled += count
            lock.reacquire()
            queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER, shop_domain)
            if time.monotonic() > deadline:  # give the worker to others; continue later
                queue.kick(rt.redis, rt.settings.queue_name, queue.PROCESS, shop_domain, force=True)
                break
    finally:
        try:
            lock.release()
        except LockError:  # it expired while a batch ran long: nothing to give back
            log.warning("mapping lock of shop %s expired before its release", shop_domain)
    return handled


def _process_next_batch(rt: runtime.Runtime, shop_domain: str, options: dict[str, Any]) -> int:
    """Process the shop's next batch in one transaction; if anything in it raises, process
    the same rows one per transaction, so only the row that raises is set aside (failed,
    with the exception's class), and the others go on. A database that is down is not a
    row's fault: that raises, and the job is tried again later."""
    try:
        with transaction(rt.sessions) as session:
            return process_batch(session, rt.spec, shop_domain, **options)
    except Exception as exc:
        if _is_transient(exc):
            raise
        log.warning(
            "a batch of shop %s raised %s: processing its webhooks one by one",
            shop_domain,
            type(exc).__name__,
        )
    with transaction(rt.sessions) as session:
        ids = inbox.received_delivery_ids(session, shop_domain, BATCH_SIZE)
    for delivery_id in ids:
        try:
            with transaction(rt.sessions) as session:
                process_batch(session, rt.spec, shop_domain, only=[delivery_id], **options)
        except Exception as exc:
            if _is_transient(exc):
                raise
            log.warning(
                "webhook %s of shop %s set aside: %s", delivery_id, shop_domain, type(exc).__name__
            )
            with transaction(rt.sessions) as session:
                inbox.fail_delivery(session, delivery_id, poison_reason(exc))
    return len(ids)


def _is_transient(exc: BaseException) -> bool:
    """An outage (database, Redis, Shopify) the job waits out, not one webhook's fault."""
    return is_unavailable(exc) or isinstance(exc, ShopifyUnavailableError | RedisError)


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


@without_personal_data
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


@without_personal_data
def sweep() -> dict[str, int]:
    """Re-nudge whatever is pending without a live job; expire held checkouts."""
    rt = runtime.current()
    work = find_work(
        rt.sessions, rt.settings.checkout_hold_hours, rt.settings.unknown_shop_grace_hours
    )
    for shop in work.shops_to_process:
        queue.kick(rt.redis, rt.settings.queue_name, queue.PROCESS, shop, force=True)
    for shop in work.shops_to_deliver:
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER, shop, force=True)
    return {
        "shops_to_process": len(work.shops_to_process),
        "shops_to_deliver": len(work.shops_to_deliver),
        "checkouts_expired": work.checkouts_expired,
        "unknown_shop_webhooks_purged": work.unknown_shop_webhooks_purged,
    }


@without_personal_data
def import_history(shop_domain: str) -> int:
    """Seed the first-order ledger from the shop's order history (queued on install)."""
    return history.import_history(runtime.current(), shop_domain)


@without_personal_data
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


@without_personal_data
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


RETENTION_LOCK_SECONDS = 330  # the job's timeout (300 s) and a margin


@without_personal_data
def prune_storage() -> dict[str, object]:
    """Delete delivered events, closed checkouts and processed webhooks past their retention
    (RQ cron, every RETENTION_INTERVAL_SECONDS; jobs/retention.py). One run at a time: a
    run that finds another under way leaves it the work."""
    rt = runtime.current()
    lock = rt.redis.lock("connector:lock:retention", timeout=RETENTION_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        log.info("retention is running elsewhere; leaving it the work")
        return {"skipped": True}
    try:
        report = retention.prune(
            rt.sessions,
            retention.RetentionPolicy.from_settings(rt.settings),
            time_budget=retention.TIME_BUDGET_SECONDS,
        )
    finally:
        try:
            lock.release()
        except LockError:  # it expired during a long run: nothing to give back
            log.warning("the retention lock expired before its release")
    return report.summary()
