"""Every Prometheus metric the connector exports, defined once (prometheus_client).

Counters and histograms are kept by the process that does the work: gunicorn's web workers
(webhooks received) and `connector worker` (mapping, delivery, the rate limiter). Under
gunicorn several processes share the work, so each writes its values to files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client reads that variable itself, at import) and a
scrape of any web worker adds them all up (`scrape_registry`). A worker on the same machine
with the same directory is added in too; one on another machine serves its own on
WORKER_METRICS_PORT (`serve_worker_metrics`). Gauges about stored work (events per status,
queue depth) are read at scrape time by the web app (connector/monitoring.py).

Recording a value is a memory write (an mmap'ed file in multiprocess mode): no I/O on the
webhook's path.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector

if _shared_dir := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Each metric below opens its file there as it is defined; a worker started beside
    # gunicorn must not depend on gunicorn having created the directory first.
    os.makedirs(_shared_dir, exist_ok=True)

LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)

WEBHOOKS_RECEIVED = Counter(
    "connector_webhooks_received",
    'Webhook requests answered, by topic ("other" for unknown ones), HTTP status and answer',
    ["topic", "status", "answer"],
)
MAPPING_LAG = Histogram(
    "connector_mapping_lag_seconds",
    "From a webhook's arrival to its mapping into events",
    buckets=LAG_BUCKETS,
)
QUEUED_TO_DELIVERED = Histogram(
    "connector_delivery_lag_seconds",
    "From an event's mapping (or release from a hold) to its delivery to Customer.io",
    buckets=LAG_BUCKETS,
)
END_TO_END_LAG = Histogram(
    "connector_end_to_end_lag_seconds",
    "From the shopper's action to the event's delivery (history backfills left out)",
    ["event"],
    buckets=LAG_BUCKETS,
)
CUSTOMERIO_REQUESTS = Counter(
    "connector_customerio_requests",
    'Track API batch requests, by outcome and HTTP status ("none": no answer)',
    ["outcome", "status"],
)
RATELIMIT_WAIT = Histogram(
    "connector_ratelimit_wait_seconds",
    "Time a delivery waited for its workspace's rate limiter before a request",
    buckets=(0.0, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60),
)
RATELIMIT_TIMEOUTS = Counter(
    "connector_ratelimit_timeouts",
    "Deliveries that gave up waiting for the rate limiter (the events are retried)",
)


def observe_mapped(received_at: Iterable[datetime], now: datetime) -> None:
    """Record the received -> mapped lag of a batch's webhooks."""
    for moment in received_at:
        MAPPING_LAG.observe(max((now - moment).total_seconds(), 0.0))


def observe_delivered(
    name: str, occurred_at: datetime, queued_at: datetime, source: Any, now: datetime
) -> None:
    """Record the lags of one delivered event."""
    QUEUED_TO_DELIVERED.observe(max((now - queued_at).total_seconds(), 0.0))
    if source != "backfill":  # an order of last year is not late
        END_TO_END_LAG.labels(event=name).observe(max((now - occurred_at).total_seconds(), 0.0))


def multiprocess_dir() -> str | None:
    """The directory the process's values are kept in; None: in memory (one process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape_registry(*collectors: Any) -> CollectorRegistry:
    """What a scrape shows: every process's values (or this process's), plus `collectors`."""
    if multiprocess_dir() is None:
        registry = own_registry()
    else:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    for collector in collectors:
        registry.register(collector)
    return registry


def own_registry() -> CollectorRegistry:
    """This process's values only (in multiprocess mode too: each reads its own file)."""
    registry = CollectorRegistry()
    registry.register(_Everything())
    return registry


class _Everything:
    """The process's default registry, as one collector of another registry."""

    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()


def token_ok(authorization: str | None, token: str | None) -> bool:
    """Whether a request may read metrics: always without METRICS_TOKEN, else only with
    `Authorization: Bearer <token>` (compared in constant time)."""
    if not token:
        return True
    expected = f"Bearer {token}".encode()
    return hmac.compare_digest((authorization or "").encode(), expected)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """No access log for scrapes."""


def serve_worker_metrics(port: int, token: str | None, host: str = "0.0.0.0") -> WSGIServer:
    """Serve this process's own metrics at http://host:port/metrics from a daemon thread.

    Own values only: with a PROMETHEUS_MULTIPROC_DIR shared with the web, the web's
    /metrics already adds them in, so use one or the other (README, "Monitoring")."""
    metrics_app = make_wsgi_app(own_registry())

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not token_ok(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"metrics need the bearer token (METRICS_TOKEN)\n"]
        return metrics_app(environ, start_response)

    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server
