"""Queues and nudges: the one place that knows how work reaches the RQ workers.

The database is the source of truth. A "kick" only tells the workers that a stage
(mapping or delivery) has work: at most one drain job per stage waits in the queue at a
time, guarded by a Redis flag the job clears when it starts. A drain serves every shop
(jobs/drains.py), so the number of jobs follows the work, not the number of shops with a
little of it. Anything a lost kick leaves behind (Redis flushed, a worker killed) is found
again by the periodic sweep.

The webhook endpoint kicks through a DebouncedKicker, which saves the Redis round trip
for bursts of webhooks (see its docstring for why that loses nothing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

log = logging.getLogger(__name__)

PROCESS = "process"
DELIVER = "deliver"
_JOB_FUNCTIONS = {PROCESS: "jobs.tasks.process_inbox", DELIVER: "jobs.tasks.deliver_pending"}
FLAG_TTL_SECONDS = 300
# A drain hands the worker back after about this long and queues its own continuation, so
# one stage cannot starve the other on the same worker.
DRAIN_SECONDS = 1.0
JOB_TIMEOUT_SECONDS = 600


def flag_key(stage: str) -> str:
    return f"connector:kick:{stage}"


def kick(redis: Redis, queue_name: str, stage: str, *, force: bool = False) -> bool:
    """Make sure a drain job for `stage` is queued; False if Redis is unreachable.

    `force` (the sweep) enqueues even when the flag says a job is waiting, so a stale flag
    can never stall the feed; an extra drain finds nothing to do. A drain handing its
    worker back does not force: when a job of its stage already waits, that one goes on,
    so an overload does not pile up drain jobs in the queue.
    """
    flag = flag_key(stage)
    try:
        if force or redis.set(flag, 1, nx=True, ex=FLAG_TTL_SECONDS):
            try:
                Queue(queue_name, connection=redis).enqueue(
                    _JOB_FUNCTIONS[stage],
                    job_timeout=JOB_TIMEOUT_SECONDS,
                    result_ttl=0,
                    failure_ttl=7 * 24 * 3600,
                    description=f"{stage} drain",
                )
            except RedisError:
                redis.delete(flag)
                raise
        return True
    except RedisError as exc:
        log.warning("kick %s failed (%s); the sweep will pick it up", stage, type(exc).__name__)
        return False


class DebouncedKicker:
    """Kicks from one web process, at most one per stage every `window` seconds.

    The first webhook of a burst kicks at once; later ones within the window are owed a
    kick, which a background thread pays (`pay_owed_kicks`) when the window ends. So every
    stored webhook is followed by a kick within about two windows, for one Redis round trip
    per window instead of one per webhook. (A process that dies owing a kick leaves it to
    the sweep.) `clock` is injectable so tests can move time without sleeping.
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._last_kick: dict[str, float] = {}
        self._owed: dict[str, tuple[Redis, str]] = {}
        self._thread: threading.Thread | None = None

    def kick(self, redis: Redis, queue_name: str, stage: str) -> bool:
        """Kick now, or owe the kick when this stage was kicked within the window."""
        key = stage
        now = self.clock()
        with self._lock:
            if self.window > 0 and now - self._last_kick.get(key, -1e9) < self.window:
                self._owed[key] = (redis, queue_name)
                self._start_thread()
                return True
            self._last_kick[key] = now
        return kick(redis, queue_name, stage)

    def pay_owed_kicks(self, now: float) -> int:
        """Make every owed kick, as of `now` on the clock; return how many were made."""
        with self._lock:
            owed, self._owed = self._owed, {}
            for key in owed:
                self._last_kick[key] = now
        for stage, (redis, queue_name) in owed.items():
            kick(redis, queue_name, stage)
        return len(owed)

    def _start_thread(self) -> None:
        # Started on first need, so it lives in the process that serves (after any fork).
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._pay_every_window, daemon=True)
            self._thread.start()

    def _pay_every_window(self) -> None:
        while True:
            time.sleep(self.window)
            self.pay_owed_kicks(self.clock())


def job_waiting(redis: Redis, stage: str) -> bool:
    """Whether a drain job of `stage` waits in the queue (its flag is set until it
    starts); False when Redis cannot tell."""
    try:
        return bool(redis.exists(flag_key(stage)))
    except RedisError:
        return False


def clear_kick(redis: Redis, stage: str) -> None:
    """Called by a drain job as it starts: later kicks queue a fresh job."""
    redis.delete(flag_key(stage))


RECONCILE_JOB = "jobs.tasks.reconcile_shop"
RECONCILE_TIMEOUT_SECONDS = 1800


def reconcile_job_id(shop_domain: str) -> str:
    """RQ job ids allow letters, digits, "_" and "-"; shop domains have no "_"."""
    return "reconcile-" + shop_domain.replace(".", "_")


def reconcile_flag_key(shop_domain: str) -> str:
    return f"connector:reconcile:{shop_domain}"


def enqueue_reconciliation(redis: Redis, queue_name: str, shop_domain: str) -> bool:
    """Queue one reconciliation run for the shop unless one is queued or running (its flag
    lives until the run ends, or the job timeout passes); True if queued."""
    flag = reconcile_flag_key(shop_domain)
    if not redis.set(flag, 1, nx=True, ex=RECONCILE_TIMEOUT_SECONDS + 60):
        return False
    try:
        Queue(queue_name, connection=redis).enqueue(
            RECONCILE_JOB,
            shop_domain,
            job_id=reconcile_job_id(shop_domain),
            job_timeout=RECONCILE_TIMEOUT_SECONDS,
            result_ttl=0,
            failure_ttl=24 * 3600,
            description=f"reconcile {shop_domain}",
        )
    except RedisError:
        redis.delete(flag)
        raise
    return True


def end_reconciliation(redis: Redis, shop_domain: str) -> None:
    """Called by the run as it ends: the next tick may queue the next run."""
    redis.delete(reconcile_flag_key(shop_domain))
