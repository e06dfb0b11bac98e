"""/healthz, /readyz and /metrics on the real app, database and Redis."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from connector import metrics
from connector.app import create_app
from connector.config import Settings
from connector.runtime import Runtime
from connector.storage.db import upgrade
from connector.storage.probes import head_revisions
from tests.support import (
    ORDER_SAMPLE,
    free_port,
    make_settings,
    post_webhook,
    run_jobs,
    sample,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: FlaskClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_healthz_answers_without_touching_database_or_redis(tmp_path) -> None:
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path}/never-migrated.db",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        instance_dir=tmp_path,
    )
    response = create_app(Runtime(settings)).test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_ready_with_database_migrated_and_redis_up(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
    }


def test_readyz_names_a_missing_migration(client: FlaskClient, rt: Runtime) -> None:
    from alembic.script import ScriptDirectory

    from connector.storage.db import alembic_config

    (head,) = head_revisions()
    previous = ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(head)
    moved = text("UPDATE alembic_version SET version_num = :v")
    with rt.engine.begin() as conn:
        conn.execute(moved, {"v": previous.down_revision})
    try:
        response = client.get("/readyz")
    finally:  # the PostgreSQL schema is shared by the run's tests
        with rt.engine.begin() as conn:
            conn.execute(moved, {"v": head})
    assert response.status_code == 503
    assert response.json["failed"] == ["migrations"]
    assert response.json["checks"]["migrations"].startswith(f"at {previous.down_revision}, ")
    assert "connector db upgrade" in response.json["checks"]["migrations"]


def test_readyz_names_redis_when_it_cannot_be_reached(settings: Settings, tmp_path) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    rt = Runtime(make_settings(database_url=settings.database_url, redis_url=closed))
    upgrade(rt.engine)
    response = create_app(rt).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failed"] == ["redis"]
    assert response.json["checks"]["redis"].startswith("unreachable (")
    assert response.json["checks"]["database"] == "ok"
    rt.engine.dispose()


def test_readyz_names_a_database_never_migrated(redis_url: str, tmp_path) -> None:
    rt = Runtime(make_settings(database_url=f"sqlite:///{tmp_path}/empty.db", redis_url=redis_url))
    response = create_app(rt).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failed"] == ["migrations"]
    assert response.json["checks"]["migrations"].startswith("at none, head is ")


def test_metrics_count_webhooks_deliveries_and_stored_work(
    client: FlaskClient, rt: Runtime, shop: str
) -> None:
    before = scrape(client)
    order = sample(ORDER_SAMPLE)
    assert post_webhook(client, "orders/create", order, "evt-m1").json["status"] == "accepted"
    assert post_webhook(client, "orders/create", order, "evt-m1").json["status"] == "duplicate"
    bad = client.post("/webhooks/shopify", data=b"{}", headers={"X-Shopify-Topic": "no/such-topic"})
    assert bad.status_code == 401
    waiting = scrape(client)
    assert value(waiting, "connector_queue_depth", stage="process") == 1
    run_jobs(rt)
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    received = "connector_webhooks_received_total"
    assert grew(received, topic="orders/create", status="200", answer="accepted") == 1
    assert grew(received, topic="orders/create", status="200", answer="duplicate") == 1
    assert grew(received, topic="other", status="401", answer="refused") == 1
    assert grew("connector_customerio_requests_total", outcome="delivered", status="200") == 1
    assert grew("connector_mapping_lag_seconds_count") == 1
    assert grew("connector_delivery_lag_seconds_count") == 1
    assert grew("connector_end_to_end_lag_seconds_count", event="order_placed") == 1
    assert grew("connector_ratelimit_wait_seconds_count") == 1
    # Read from the database and Redis at scrape time: absolute, not deltas.
    assert value(after, "connector_events", status="delivered") == 1
    assert value(after, "connector_events", status="failed") == 0
    assert value(after, "connector_queue_depth", stage="process") == 0
    assert value(after, "connector_queue_depth", stage="deliver") == 0
    assert value(after, "connector_rq_jobs", state="queued") == 0
    assert value(after, "connector_scrape_error", source="database") == 0


def test_metrics_tell_when_redis_cannot_be_read(settings: Settings) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    rt = Runtime(make_settings(database_url=settings.database_url, redis_url=closed))
    upgrade(rt.engine)
    samples = scrape(create_app(rt).test_client())
    assert value(samples, "connector_scrape_error", source="redis") == 1
    assert value(samples, "connector_scrape_error", source="database") == 0
    assert value(samples, "connector_events", status="pending") == 0
    rt.engine.dispose()


def test_metrics_token_is_required_when_set(settings: Settings) -> None:
    from dataclasses import replace

    rt = Runtime(replace(settings, metrics_token="scrape-me"))
    upgrade(rt.engine)
    client = create_app(rt).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert "connector_events" in str(scrape(client, Authorization="Bearer scrape-me"))
    rt.engine.dispose()


def test_a_worker_serves_its_own_metrics_on_its_port() -> None:
    port = free_port()
    server = metrics.serve_worker_metrics(port, "worker-token", host="127.0.0.1")
    try:
        metrics.RATELIMIT_TIMEOUTS.inc()
        url = f"http://127.0.0.1:{port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": "Bearer worker-token"})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read().decode()
        assert "connector_ratelimit_timeouts_total" in body
        assert "connector_events" not in body  # stored work is the web's to report
    finally:
        server.shutdown()
        server.server_close()
