"""Run the RQ worker, and the periodic sweep on RQ's cron scheduler beside it."""

from __future__ import annotations

import logging
import multiprocessing

from redis import Redis
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler

from connector.keys import check_secret_key
from connector.runtime import Runtime
from jobs.tasks import reconcile_all, sweep


def run_worker(rt: Runtime, *, burst: bool = False, with_sweep: bool = True) -> bool:
    """Run a SimpleWorker: no fork per job, so the HTTP connection pool lives across jobs.

    Raises ConfigError, before taking any job, when CONNECTOR_SECRET_KEY does not decrypt
    the stored credentials.
    """
    check_secret_key(rt)
    settings = rt.settings
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    cron = None
    if with_sweep and not burst:
        cron = multiprocessing.get_context("spawn").Process(
            target=run_sweep_scheduler,
            args=(
                settings.redis_url,
                settings.queue_name,
                settings.sweep_interval_seconds,
                settings.log_level,
                settings.reconcile_interval_seconds,
            ),
            daemon=True,
        )
        cron.start()
    try:
        queue = Queue(settings.queue_name, connection=rt.redis)
        worker = SimpleWorker([queue], connection=rt.redis)
        return worker.work(burst=burst, with_scheduler=not burst, logging_level=settings.log_level)
    finally:
        if cron is not None:
            cron.terminate()
            cron.join(5)


def run_sweep_scheduler(
    redis_url: str, queue_name: str, interval: int, log_level: str, reconcile_interval: int = 900
) -> None:
    """Enqueue `jobs.tasks.sweep` every `interval` seconds and `jobs.tasks.reconcile_all`
    every `reconcile_interval` (several schedulers are harmless: a shop's reconciliation is
    queued once at a time)."""
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
    scheduler.start()
