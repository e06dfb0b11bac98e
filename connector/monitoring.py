"""/healthz, /readyz and /metrics: what an orchestrator and Prometheus ask the web process.

None of them needs a session. /metrics may be guarded by METRICS_TOKEN (a bearer token);
without it, keep /metrics off the public internet (README, "Monitoring").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from rq import Queue

from connector import metrics
from connector.runtime import Runtime
from connector.storage import probes

log = logging.getLogger(__name__)
blueprint = Blueprint("monitoring", __name__)


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is alive and serving (no I/O: a slow database must not get it killed)."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 when the database answers and is migrated to head and Redis answers; else 503
    with the checks that failed, each with a short reason."""
    rt: Runtime = current_app.extensions["connector"]
    checks = {"database": "ok", "migrations": "ok", "redis": "ok"}
    try:
        current = probes.database_revisions(rt.engine)
        head = probes.head_revisions()
        if current != head:
            at = ", ".join(sorted(current)) or "none"
            checks["migrations"] = (
                f"at {at}, head is {', '.join(sorted(head))}: run `connector db upgrade`"
            )
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said by class
        checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["migrations"] = "unknown (database unreachable)"
    try:
        rt.redis.ping()
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"unreachable ({type(exc).__name__})"
    failed = sorted(name for name, state in checks.items() if state != "ok")
    if failed:
        log.warning("not ready: %s", ", ".join(failed))
        return jsonify(status="not ready", failed=failed, checks=checks), 503
    return jsonify(status="ready", checks=checks)


@blueprint.get("/metrics")
def scrape() -> ResponseReturnValue:
    """Prometheus text format: every process's counters and histograms, and stored work."""
    rt: Runtime = current_app.extensions["connector"]
    if not metrics.token_ok(request.headers.get("Authorization"), rt.settings.metrics_token):
        return jsonify(error="metrics need the bearer token (METRICS_TOKEN)"), 401
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encode(metrics.scrape_registry(StoredWork(rt)))
    return Response(body, content_type=content_type)


class StoredWork:
    """Gauges read at scrape time: events per status, each stage's backlog, RQ's queue.

    A store or Redis that cannot be read leaves its gauges out of the scrape (and sets
    `connector_scrape_error` to 1) rather than failing the scrape."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily(
            "connector_scrape_error",
            "1 when the scrape could not read a source (database, redis)",
            labels=["source"],
        )
        try:
            yield from self._database()
            errors.add_metric(["database"], 0)
        except Exception as exc:  # noqa: BLE001
            log.warning("metrics: database not read (%s)", type(exc).__name__)
            errors.add_metric(["database"], 1)
        try:
            yield from self._redis()
            errors.add_metric(["redis"], 0)
        except Exception as exc:  # noqa: BLE001
            log.warning("metrics: redis not read (%s)", type(exc).__name__)
            errors.add_metric(["redis"], 1)
        yield errors

    def _database(self) -> Iterator[Metric]:
        with self.rt.sessions() as session:
            by_status = probes.events_by_status(session)
            received = probes.received_webhooks(session)
            due = probes.due_events(session)
        events = GaugeMetricFamily("connector_events", "Stored events by status", labels=["status"])
        for status, count in sorted(by_status.items()):
            events.add_metric([status], count)
        depth = GaugeMetricFamily(
            "connector_queue_depth",
            "Work waiting per stage: webhooks not mapped yet (process), events due (deliver)",
            labels=["stage"],
        )
        depth.add_metric(["process"], received)
        depth.add_metric(["deliver"], due)
        yield from (events, depth)

    def _redis(self) -> Iterator[Metric]:
        queue = Queue(self.rt.settings.queue_name, connection=self.rt.redis)
        jobs = GaugeMetricFamily(
            "connector_rq_jobs", "RQ jobs waiting (queued) and kept as failed", labels=["state"]
        )
        jobs.add_metric(["queued"], queue.count)
        jobs.add_metric(["failed"], queue.failed_job_registry.get_job_count(cleanup=False))
        yield jobs
