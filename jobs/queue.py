"""Queues and nudges: the one place that knows how work reaches the RQ workers.

The database is the source of truth. A "kick" only tells the workers that a shop has
work: at most one drain job per (stage, shop) waits in the queue at a time, guarded by
a Redis flag the job clears when it starts. Anything a lost kick leaves behind (Redis
flushed, a worker killed) is found again by the periodic sweep.
"""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

log = logging.getLogger(__name__)

PROCESS = "process"
DELIVER = "deliver"
_JOB_FUNCTIONS = {PROCESS: "jobs.tasks.process_inbox", DELIVER: "jobs.tasks.deliver_pending"}
FLAG_TTL_SECONDS = 300
JOB_TIMEOUT_SECONDS = 600


def flag_key(stage: str, shop_domain: str) -> str:
    return f"connector:kick:{stage}:{shop_domain}"


def kick(redis: Redis, queue_name: str, stage: str, shop_domain: str) -> bool:
    """Make sure a drain job for (stage, shop) is queued; False if Redis is unreachable."""
    try:
        if redis.set(flag_key(stage, shop_domain), 1, nx=True, ex=FLAG_TTL_SECONDS):
            Queue(queue_name, connection=redis).enqueue(
                _JOB_FUNCTIONS[stage],
                shop_domain,
                job_timeout=JOB_TIMEOUT_SECONDS,
                result_ttl=0,
                failure_ttl=7 * 24 * 3600,
                description=f"{stage} {shop_domain}",
            )
        return True
    except RedisError as exc:
        log.warning(
            "kick %s for %s failed (%s); the sweep will pick it up",
            stage,
            shop_domain,
            type(exc).__name__,
        )
        return False


def clear_kick(redis: Redis, stage: str, shop_domain: str) -> None:
    """Called by a drain job as it starts: later kicks queue a fresh job."""
    redis.delete(flag_key(stage, shop_domain))
