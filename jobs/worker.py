"""Run the RQ worker, and the periodic sweep on RQ's cron scheduler beside it."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler

from connector import metrics
from connector.keys import check_secret_key
from connector.logs import configure_logging
from connector.runtime import Runtime
from jobs.tasks import prune_storage, reconcile_all, sweep

log = logging.getLogger(__name__)

# Redis unreachable: an outage, a restart, a failover. The database keeps the work; the
# processes wait for Redis instead of exiting (the sweep then finds whatever lost its nudge).
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
MAX_PAUSE_SECONDS = 30.0


def run_worker(rt: Runtime, *, burst: bool = False, with_sweep: bool = True) -> bool:
    """Run a SimpleWorker: no fork per job, so the HTTP connection pool lives across jobs.

    Raises ConfigError, before taking any job, when CONNECTOR_SECRET_KEY does not decrypt
    the stored credentials.
    """
    check_secret_key(rt)
    settings = rt.settings
    configure_logging(settings.log_level, settings.log_format)
    if settings.worker_metrics_port is not None:
        metrics.serve_worker_metrics(settings.worker_metrics_port, settings.metrics_token)
    cron = None
    if with_sweep and not burst:
        cron = multiprocessing.get_context("spawn").Process(
            target=run_sweep_scheduler_until_stopped,
            args=(
                settings.redis_url,
                settings.queue_name,
                settings.sweep_interval_seconds,
                settings.log_level,
                settings.reconcile_interval_seconds,
                settings.log_format,
                settings.retention_interval_seconds,
            ),
            daemon=True,
        )
        cron.start()
    # What is loaded by now (modules, settings, the engine) lives as long as the process:
    # out of the garbage collector's way with it. Mapping makes a thousand dicts and lists
    # per 10 KB order, so collections run often, and the full ones walked this start-up
    # heap each time: 8-10 % of the mapping's CPU (docs/benchmarks.md).
    gc.freeze()
    try:
        return work_until_stopped(rt, burst=burst)
    finally:
        if cron is not None:
            cron.terminate()
            cron.join(5)


def run_sweep_scheduler(
    redis_url: str,
    queue_name: str,
    interval: int,
    log_level: str,
    reconcile_interval: int = 900,
    log_format: str = "text",
    retention_interval: int = 3600,
) -> None:
    """Enqueue `jobs.tasks.sweep` every `interval` seconds, `jobs.tasks.reconcile_all`
    every `reconcile_interval` and `jobs.tasks.prune_storage` every `retention_interval`
    (several schedulers are harmless: a shop's reconciliation is queued once at a time,
    and one retention run at a time does the work)."""
    configure_logging(log_level, log_format)
    scheduler = CronScheduler(connection=Redis.from_url(redis_url), logging_level=log_level)
    scheduler.register(
        sweep, queue_name=queue_name, interval=interval, result_ttl=0, job_timeout=300
    )
    if reconcile_interval > 0:
        scheduler.register(
            reconcile_all,
            queue_name=queue_name,
            interval=reconcile_interval,
            result_ttl=0,
            job_timeout=300,
        )
    if retention_interval > 0:
        scheduler.register(
            prune_storage,
            queue_name=queue_name,
            interval=retention_interval,
            result_ttl=0,
            job_timeout=300,
        )
    scheduler.start()


def work_until_stopped(rt: Runtime, *, burst: bool = False) -> bool:
    """Run RQ workers one after the other until a stop request (SIGTERM, SIGINT) or, with
    `burst`, an empty queue; return whether any job was done.

    RQ's worker quits when Redis cannot be reached outside its wait for a job (it checks for
    suspension, sends heartbeats, registers itself): a Redis restart or a short outage would
    end the process. Here a new worker starts after a pause (1 s, doubling to 30 s).
    """
    settings = rt.settings
    worked, pause = False, 1.0
    while True:
        worker: _Worker | None = None
        started = time.monotonic()
        try:
            queue = Queue(settings.queue_name, connection=rt.redis)
            worker = _Worker([queue], connection=rt.redis)  # names itself in Redis
            done = worker.work(
                burst=burst, with_scheduler=not burst, logging_level=settings.log_level
            )
            worked = worked or done
            if burst or worker.stop_asked:
                return worked
            reason = "quit without a stop request"
        except REDIS_DOWN as exc:
            if burst:
                raise
            if worker is not None:
                with suppress(Exception):  # its pubsub thread would keep reconnecting
                    worker.unsubscribe()
            reason = f"lost Redis ({type(exc).__name__})"
        if time.monotonic() - started > 60:
            pause = 1.0
        log.warning("the RQ worker %s; starting a new one in %.0f s", reason, pause)
        if not _pause(pause):
            return worked
        pause = min(pause * 2, MAX_PAUSE_SECONDS)


class _Worker(SimpleWorker):
    """RQ's SimpleWorker, remembering whether it was asked to stop (SIGTERM, SIGINT): it
    returns from `work` alike when stopped and when it quit on an error."""

    stop_asked = False

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stop_asked = True
        super().request_stop(signum, frame)


def run_sweep_scheduler_until_stopped(*args: object) -> None:
    """`run_sweep_scheduler`, started again after Redis comes back: RQ's CronScheduler
    exits on the first Redis error, and without it nothing re-nudges lost work."""
    _keep_running(run_sweep_scheduler, *args)


def _keep_running(target: Callable[..., None], *args: object) -> None:
    pause = 1.0
    while True:
        try:
            target(*args)
            return  # stopped on request
        except REDIS_DOWN as exc:
            log.warning("the sweep scheduler lost Redis (%s); again in %.0f s", exc, pause)
        if not _pause(pause):
            return
        pause = min(pause * 2, MAX_PAUSE_SECONDS)


def _pause(seconds: float) -> bool:
    """Sleep `seconds`; False if SIGTERM or SIGINT arrived meanwhile (then stop)."""
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        stop.wait(seconds)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return not stop.is_set()
