"""RQ job functions: module-level, taking ids and strings, opening their own sessions.

Each is wrapped by `without_personal_data`: RQ keeps a failed job's traceback in Redis
(and the worker logs it), and an exception's message can quote a shopper's email or
name. What RQ sees instead names the exception's class and where it was raised.
"""

from __future__ import annotations

import bisect
import functools
import logging
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from connector import runtime
from connector.shopify.errors import ShopifyUnavailableError
from connector.storage import inbox
from connector.storage import reconciliation as reconciliation_state
from connector.storage.db import is_unavailable, transaction
from connector.storage.privacy import prefetch_tombstones
from connector.storage.shops import get_shops
from jobs import history, products, queue, reconciliation, retention
from jobs.delivery import Deliverer, DeliveryPolicy
from jobs.housekeeping import find_work
from jobs.processing import BATCH_SIZE, Handled, poison_reason, process_batch
from jobs.ratelimit import RateLimiter

log = logging.getLogger(__name__)

PROCESS_LOCK_SECONDS = 60
PROCESS_LOCK_WAIT_SECONDS = 5
# The shop a drain served last: the next drain starts after it.
_PROCESS_CURSOR = "connector:cursor:process"
_DELIVER_CURSOR = "connector:cursor:deliver"

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
def process_inbox(shop_domain: str | None = None) -> int:
    """Map received webhooks into events, a batch per shop in turn, until it has caught
    up or about DRAIN_SECONDS have passed; nudge delivery after each round. `shop_domain`
    limits it to one shop.

    A job that maps until its deadline although it has caught up holds a worker that a
    delivery job may be waiting for: with two workers in such jobs, events waited up to
    2 s for their delivery (docs/benchmarks.md). So it ends once a round leaves no
    backlog, and the next webhooks are mapped by the job their kicks queue.

    Shops are mapped a group at a time in one transaction (one commit for many shops that
    each have a little work). One mapper per shop at a time (a short Redis lock), so first
    orders are decided in the shopper's order. A shop another worker is mapping is skipped;
    only when every shop with work is taken does the job wait for one, briefly (a worker
    killed while holding a lock stalls that shop for at most PROCESS_LOCK_SECONDS).

    A Shopify outage for one shop does not hold up the others: they are mapped, then the
    job fails naming the outage, and the sweep brings the shop back.
    """
    rt = runtime.current()
    queue.clear_kick(rt.redis, queue.PROCESS)
    drain = _MappingDrain(rt)
    deadline = time.monotonic() + queue.DRAIN_SECONDS
    handled = 0
    while True:
        shops = [shop_domain] if shop_domain else _shops_in_turn(rt)
        shops = [shop for shop in shops if shop not in drain.resting]
        mapped, full, taken = 0, False, []
        for start in range(0, len(shops), SHOPS_PER_TRANSACTION):
            done, busy = drain.map_group(shops[start : start + SHOPS_PER_TRANSACTION])
            mapped += done.rows
            full = full or done.more_waiting
            taken += busy
            if time.monotonic() > deadline:
                break
        if not mapped and taken:  # every shop with work is being mapped: wait for one
            mapped, full = drain.map_when_free(taken[0])
        handled += mapped
        if mapped:
            queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER)
        if not mapped:
            break
        out_of_time = time.monotonic() > deadline
        if full and not out_of_time:
            continue  # a backlog: map on
        # Caught up (what arrives next is kicked by its own webhook), or out of time: give
        # the worker to the delivery job just kicked, or to others. A job of this stage
        # goes on where this one stopped, or maps the shops it left to another worker.
        if out_of_time or taken:
            queue.kick(rt.redis, rt.settings.queue_name, queue.PROCESS)  # unless one waits
        break
    if drain.outage is not None:
        raise drain.outage
    return handled


SHOPS_PER_TRANSACTION = 20
# A shop's share of a group transaction is BATCH_SIZE / shops in the group, but at least:
MIN_PER_SHOP = 10


class _MappingDrain:
    """One mapping job's state: the look-ups it injects, and the shops it leaves alone
    because Shopify could not be reached for them."""

    def __init__(self, rt: runtime.Runtime) -> None:
        self.rt = rt
        self.tokens: dict[str, bool] = {}  # shop -> has an Admin API token (no look-up each)
        self.options = _mapping_options(rt, self.tokens)
        self.resting: set[str] = set()
        self.outage: ShopifyUnavailableError | None = None

    def map_group(self, shops: list[str]) -> tuple[Handled, list[str]]:
        """Map the next webhooks of each shop of the group whose lock is free, in one
        transaction (at most BATCH_SIZE in all, each shop its share); return (what was
        mapped, shops another worker holds). If the transaction raises, each shop is mapped
        in its own (and each webhook of a shop that raises in its own:
        `_process_next_batch`)."""
        locks, taken = {}, []
        for shop in shops:
            lock = _mapping_lock(self.rt, shop, wait=False)
            if lock.acquire():
                locks[shop] = lock
            else:
                taken.append(shop)
        if not locks:
            return Handled(0, False), taken
        try:
            return self._map_together(list(locks)), taken
        except Exception as exc:
            if _is_transient(exc) and not isinstance(exc, ShopifyUnavailableError):
                raise
            alone = [self._map_alone(shop) for shop in locks]
            return Handled(sum(d.rows for d in alone), any(d.more_waiting for d in alone)), taken
        finally:
            for shop, lock in locks.items():
                _release(lock, shop)

    def map_when_free(self, shop: str) -> Handled:
        """Wait (briefly) for the shop's lock, then map its next batch; none if still taken."""
        lock = _mapping_lock(self.rt, shop, wait=True)
        if not lock.acquire():
            return Handled(0, False)
        try:
            return self._map_alone(shop)
        finally:
            _release(lock, shop)

    def _map_together(self, shops: list[str]) -> Handled:
        with transaction(self.rt.sessions) as session:
            # What every shop's batch looks up, for the whole group at once; `loaded` keeps
            # the shops in the session, so each batch's get_shop is answered without a query.
            loaded = get_shops(session, shops)
            self.tokens.update({s.domain: bool(s.shopify_access_token_encrypted) for s in loaded})
            prefetch_tombstones(session, shops)
            per_shop = max(BATCH_SIZE // len(shops), MIN_PER_SHOP)
            done = process_batch(session, self.rt.spec, shops, per_shop, **self.options)
        self.rt.redis.set(_PROCESS_CURSOR, shops[-1])
        return done

    def _map_alone(self, shop: str) -> Handled:
        try:
            done = _process_next_batch(self.rt, shop, self.options)
        except ShopifyUnavailableError as exc:
            log.warning("shop %s waits: Shopify could not be reached", shop)
            self.resting.add(shop)
            self.outage = exc
            return Handled(0, False)
        self.rt.redis.set(_PROCESS_CURSOR, shop)
        return done


def _mapping_lock(rt: runtime.Runtime, shop_domain: str, *, wait: bool) -> Lock:
    return rt.redis.lock(
        f"connector:lock:process:{shop_domain}",
        timeout=PROCESS_LOCK_SECONDS,
        blocking=wait,
        blocking_timeout=PROCESS_LOCK_WAIT_SECONDS,
    )


def _release(lock: Lock, shop_domain: str) -> None:
    try:
        lock.release()
    except LockError:  # it expired while a batch ran long: nothing to give back
        log.warning("mapping lock of shop %s expired before its release", shop_domain)


def _shops_in_turn(rt: runtime.Runtime) -> list[str]:
    """The shops with webhooks to map, starting after the one mapped last, so a job that
    runs out of time leaves the next job to start where it stopped."""
    with rt.sessions() as session:
        shops = sorted(inbox.shops_with_received_deliveries(session))
    after = bisect.bisect_right(shops, _text(rt.redis.get(_PROCESS_CURSOR)))
    return shops[after:] + shops[:after]


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _mapping_options(rt: runtime.Runtime, tokens: dict[str, bool]) -> dict[str, Any]:
    return {
        # Shopify, for customers the ledger lacks
        "order_count": history.order_count_lookup(rt, tokens),
        "new_order_window": timedelta(hours=rt.settings.new_order_window_hours),
        "product_fetch": products.product_fetch(rt, tokens),  # product details for the emails
    }


def _process_next_batch(rt: runtime.Runtime, shop_domain: str, options: dict[str, Any]) -> Handled:
    """Process the shop's next batch in one transaction; if anything in it raises, process
    the same rows one per transaction, so only the row that raises is set aside (failed,
    with the exception's class), and the others go on. A database that is down is not a
    row's fault: that raises, and the job is tried again later."""
    try:
        with transaction(rt.sessions) as session:
            return process_batch(session, rt.spec, [shop_domain], **options)
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
                process_batch(session, rt.spec, [shop_domain], only=[delivery_id], **options)
        except Exception as exc:
            if _is_transient(exc):
                raise
            log.warning(
                "webhook %s of shop %s set aside: %s", delivery_id, shop_domain, type(exc).__name__
            )
            with transaction(rt.sessions) as session:
                inbox.fail_delivery(session, delivery_id, poison_reason(exc))
    return Handled(len(ids), len(ids) >= BATCH_SIZE)


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
            concurrency=settings.delivery_concurrency,
        ),
    )


@without_personal_data
def deliver_pending(shop_domain: str | None = None) -> int:
    """Deliver due events of every shop (or just `shop_domain`) to their Customer.io
    workspaces, for about DRAIN_SECONDS."""
    rt = runtime.current()
    queue.clear_kick(rt.redis, queue.DELIVER)
    drainer = deliverer(rt)
    drainer.next_after = _text(rt.redis.get(_DELIVER_CURSOR))
    delivered, unfinished = drainer.drain(
        shop_domain,
        deadline=time.monotonic() + queue.DRAIN_SECONDS,
        hand_back=lambda: queue.job_waiting(rt.redis, queue.PROCESS),  # webhooks wait
    )
    rt.redis.set(_DELIVER_CURSOR, drainer.next_after)
    if unfinished:  # give the worker to others; continue later (unless a drain waits)
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER)
    return delivered


@without_personal_data
def sweep() -> dict[str, int]:
    """Re-nudge whatever is pending without a live job; expire held checkouts."""
    rt = runtime.current()
    work = find_work(
        rt.sessions, rt.settings.checkout_hold_hours, rt.settings.unknown_shop_grace_hours
    )
    if work.shops_to_process:
        queue.kick(rt.redis, rt.settings.queue_name, queue.PROCESS, force=True)
    if work.delivery_due:
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER, force=True)
    return {
        "shops_to_process": len(work.shops_to_process),
        "delivery_due": int(work.delivery_due),
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
