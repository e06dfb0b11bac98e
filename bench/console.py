"""Benchmark the support console with 100,000 stored events: is every page under 300 ms?

    .venv/bin/python bench/console.py [--events 100000] [--runs 7] [--skip-postgres]

Seeds a temp SQLite database and, when PostgreSQL is reachable, a throwaway schema
(`bench_console_<random>` in the `test` database, created and dropped here) with events,
their webhooks and attempts spread over 30 days and five shops; logs in with a Flask test
client and times each console page (server time: routing, queries and rendering). A Redis
database claimed for this run holds the login limiter, so tests can run beside it.
Prints p50 and max milliseconds per page.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from redis import Redis
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.app import create_app  # noqa: E402
from connector.config import Settings  # noqa: E402
from connector.console.staff import add_staff  # noqa: E402
from connector.dev.isolation import (  # noqa: E402
    claimed_redis_database,
    new_schema_name,
    schema_url,
)
from connector.events import CanonicalEvent, EventName, Person, stable_event_id  # noqa: E402
from connector.runtime import Runtime  # noqa: E402
from connector.storage.db import transaction, upgrade  # noqa: E402
from connector.storage.models import (  # noqa: E402
    Base,
    DeliveryAttempt,
    Event,
    ReplayAudit,
    Shop,
    WebhookDelivery,
    violations_digest,
)
from connector.timeutil import utcnow  # noqa: E402
from webhooks.mapping import map_order  # noqa: E402

from console_probe import console_pages  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_SERVER = "redis://127.0.0.1:6379/0"  # the run claims a free database index on it
SHOPS = [f"bench-{n}.myshopify.com" for n in range(5)]
STATUSES = [  # (status, weight, reason)
    ("delivered", 90, None),
    ("failed", 4, "gave up after 11 attempts: 503 Service Unavailable"),
    ("failed", 1, "400 Bad Request: invalid attribute"),
    ("quarantined", 2, "breaks the track spec"),
    ("unidentifiable", 1, "no customer id and no email: not sent"),
    ("pending", 1, None),
    ("waiting_for_identity", 1, "anonymous checkout: held"),
]
EMAIL, PASSWORD = "bench@example.com", "bench console password"


def seed(rt: Runtime, count: int) -> dict[str, str]:
    """Insert `count` events (+ one webhook and one attempt each); return search targets."""
    sample = json.loads((ROOT / "samples" / "orders_create_2026-07.json").read_text())
    base = map_order(sample, shop_domain=SHOPS[0]).with_properties(is_first_order=False)
    rng = random.Random(7)
    now = utcnow()
    statuses = [s for s in STATUSES for _ in range(s[1])]
    with transaction(rt.sessions) as session:
        for n, domain in enumerate(SHOPS):
            status = "credentials_rejected" if n == 4 else "active"
            session.add(Shop(domain=domain, status=status, cio_site_id="s", cio_region="us"))
        add_staff(session, EMAIL, PASSWORD)
    targets: dict[str, str] = {}
    for start in range(0, count, 5000):
        events, webhooks, attempts = [], [], []
        for i in range(start, min(start + 5000, count)):
            shop = SHOPS[i % len(SHOPS)]
            status, _, reason = rng.choice(statuses)
            occurred = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
            event_id = stable_event_id(shop, EventName.ORDER_PLACED, str(10_000_000 + i))
            delivered = occurred + timedelta(seconds=rng.lognormvariate(1.5, 1.0))
            webhooks.append(_webhook(i, shop, event_id, occurred))
            events.append(_event(i, shop, event_id, base, status, reason, occurred, delivered))
            attempts.append(_attempt(event_id, status, delivered))
        with transaction(rt.sessions) as session:
            session.execute(insert(WebhookDelivery), webhooks)
            session.execute(insert(Event), events)
            session.execute(insert(DeliveryAttempt), attempts)
        print(f"  seeded {min(start + 5000, count):,} events", end="\r", flush=True)
    print()
    middle = count // 2
    targets.update(
        order=f"#{middle}",
        email=f"shopper{middle}@example.com",
        customer=str(500_000 + middle),
        token=f"checkout-{middle}",
        event=stable_event_id(
            SHOPS[middle % len(SHOPS)], EventName.ORDER_PLACED, str(10_000_000 + middle)
        ),
        shop=SHOPS[0],
    )
    return targets


def _webhook(i: int, shop: str, event_id: str, occurred: datetime) -> dict[str, object]:
    return {
        "id": i + 1,
        "shop_domain": shop,
        "topic": "orders/create",
        "shopify_event_id": f"bench-{i}",
        "triggered_at": occurred,
        "received_at": occurred,
        "body": "{}",
        "state": "processed",
        "processed_at": occurred,
        "resource_key": str(10_000_000 + i),
        "event_id": event_id,
    }


def _event(
    i: int,
    shop: str,
    event_id: str,
    base: CanonicalEvent,
    status: str,
    reason: str | None,
    occurred: datetime,
    delivered: datetime,
) -> dict[str, object]:
    order_id, customer_id, email = str(10_000_000 + i), str(500_000 + i), f"shopper{i}@example.com"
    properties = {**base.properties, "order_id": order_id, "order_name": f"#{i}"}
    properties["checkout_token"] = f"checkout-{i}"
    person = {**_as_dict(base.person), "customer_id": customer_id, "email": email}
    violations = ["items[0].price: must be a number"] if status == "quarantined" else None
    return {
        "id": event_id, "shop_domain": shop, "name": "order_placed", "natural_key": order_id,
        "reference": f"#{i}", "person_id": customer_id, "customer_id": customer_id,
        "email": email, "person": person, "occurred_at": occurred,
        "properties": properties, "status": status, "reason": reason,
        "violations": violations, "violations_key": violations_digest(violations),
        "source_delivery_id": i + 1, "attempts": 1, "created_at": occurred, "updated_at": occurred,
        "queued_at": occurred, "delivered_at": delivered if status == "delivered" else None,
    }  # fmt: skip


@functools.cache
def _as_dict(person: Person) -> dict[str, object]:
    """The base event's person as a dict, once (asdict per event was a third of seeding)."""
    return asdict(person)


def _attempt(event_id: str, status: str, when: datetime) -> dict[str, object]:
    ok = status == "delivered"
    return {
        "event_id": event_id, "attempted_at": when, "outcome": "delivered" if ok else "retry",
        "status_code": 200 if ok else 503, "latency_ms": 40.0, "reason": None, "batch_size": 50,
    }  # fmt: skip


def time_pages(rt: Runtime, targets: dict[str, str], runs: int) -> dict[str, list[float]]:
    """Milliseconds per request for each page, `runs` times after one warm-up."""
    client = create_app(rt).test_client()
    client.get("/console/login")
    with client.session_transaction() as session:
        token = session["_csrf_token"]
    response = client.post(
        "/console/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.status_code
    client.get("/console/")  # renders a form, so the new session has its CSRF token
    with client.session_transaction() as session:
        token = session["_csrf_token"]
    pages = console_pages(targets)
    timings: dict[str, list[float]] = {}
    for name, (method, path, form) in pages.items():
        data = {**form, "csrf_token": token} if form else None
        samples = []
        for run in range(runs + 1):
            started = time.perf_counter()
            response = client.open(path, method=method, data=data)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (name, response.status_code)
            if name == "search: event":
                assert targets["event"] in response.get_data(as_text=True)
            if run:
                samples.append(elapsed)
        timings[name] = samples
    return timings


def report(label: str, timings: dict[str, list[float]]) -> None:
    print(f"\n{label}")
    print(f"  {'page':<22} {'p50 ms':>8} {'max ms':>8}")
    for name, samples in timings.items():
        flag = "" if max(samples) < 300 else "  <-- over 300 ms"
        print(f"  {name:<22} {statistics.median(samples):8.1f} {max(samples):8.1f}{flag}")


def migrated_runtime(database_url: str, redis_url: str) -> Runtime:
    """A runtime on `database_url`, its schema migrated to head (for seeding directly)."""
    settings = Settings(
        shopify_api_key="bench",
        shopify_api_secrets=("bench-secret",),
        secret_key="bench-console-secret",
        database_url=database_url,
        redis_url=redis_url,
        log_level="WARNING",
    )
    rt = Runtime(settings)
    upgrade(rt.engine)
    return rt


def bench(label: str, database_url: str, redis_url: str, count: int, runs: int) -> None:
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    rt = migrated_runtime(database_url, redis_url)
    started = time.perf_counter()
    targets = seed(rt, count)
    with transaction(rt.sessions) as session:
        session.add(ReplayAudit(actor="bench", event_ids=[targets["event"]], shops=[SHOPS[0]]))
    if database_url.startswith("postgresql"):
        with rt.engine.begin() as connection:
            for table in Base.metadata.sorted_tables:  # this schema's tables, not the database's
                connection.exec_driver_sql(f'ANALYZE "{table.name}"')
    print(f"  {label}: seeded {count:,} events in {time.perf_counter() - started:.0f} s")
    report(f"{label}, {count:,} events, {runs} runs per page", time_pages(rt, targets, runs))
    rt.engine.dispose()
    redis.flushdb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with claimed_redis_database(REDIS_SERVER) as redis_url:
        with tempfile.TemporaryDirectory() as tmp:
            bench("SQLite", f"sqlite:///{tmp}/console.db", redis_url, args.events, args.runs)
        if not args.skip_postgres:
            bench_postgres(redis_url, args.events, args.runs)


def bench_postgres(redis_url: str, count: int, runs: int) -> None:
    """Run `bench` in a throwaway schema of the PostgreSQL database, if it answers."""
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError:
        print("\nPostgreSQL not reachable: skipped")
        return
    schema = new_schema_name("bench_console")
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            bench("PostgreSQL", schema_url(PG_URL, schema), redis_url, count, runs)
        finally:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
