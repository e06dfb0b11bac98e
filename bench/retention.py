"""Benchmark retention: seed a year of events, prune them, time the console before and after.

    .venv/bin/python bench/retention.py [--events 1000000] [--days 365] [--runs 5]
                                        [--chunk-size 5000] [--body-bytes 1024]
                                        [--keep-schema] [--seed-only]

In a throwaway PostgreSQL schema (`bench_retention_<random>` in the `test` database, created
and dropped here), seeds `--events` order_placed events spread evenly over `--days` (oldest
first, so webhook ids grow with their received_at, as in production), with bench/console.py's
rows, statuses and shops, plus what a live shop adds around them:

- webhooks: the one each event came from, and 0-4 more naming it (orders/updated,
  orders/paid, fulfilments: "order already placed"), 2 per event on average; bodies of
  `--body-bytes` (Shopify's are 3-10 KB; see the docs for what that changes);
- delivery attempts: one per delivered event, two for 5 % of them (a retry, then
  delivered), eleven per event failed after its retries, one per event refused at once.

Rows go in with COPY. Then: VACUUM ANALYZE (as autovacuum leaves a live database); rows
per table; the console's pages (the ones
bench/console.py times, with search targets among the events kept); the prune of
jobs/retention.py with the default settings (events 90 days, webhooks 30), in chunks, no
time budget: wall time and rows/s (and the vacuum of the tables it changed most, which a
run this large ends with); rows per table after; the pages again, right after the prune and
after a VACUUM ANALYZE of every table (what autovacuum does next). Target: every page < 300 ms.

`--keep-schema` leaves the schema in place (its name is printed; drop it yourself with
`DROP SCHEMA ... CASCADE`), so queries can be studied with EXPLAIN without seeding again;
`--seed-only` stops after the seed and its VACUUM ANALYZE (and keeps the schema).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from connector.console.staff import add_staff  # noqa: E402
from connector.dev.isolation import (  # noqa: E402
    claimed_redis_database,
    new_schema_name,
    schema_url,
)
from connector.events import EventName, stable_event_id  # noqa: E402
from connector.runtime import Runtime  # noqa: E402
from connector.storage.db import transaction  # noqa: E402
from connector.storage.models import Base, Shop  # noqa: E402
from connector.timeutil import utcnow  # noqa: E402
from jobs.retention import RetentionPolicy, prune  # noqa: E402
from webhooks.mapping import map_order  # noqa: E402

import console  # noqa: E402  (bench/console.py: its rows, login and page timings)

TARGET_MS = 300.0
BATCH = 20_000
TABLES = ("webhook_deliveries", "events", "delivery_attempts", "customer_orders")  # FK order
EXTRA_WEBHOOKS = [0, 1, 1, 2, 2, 2, 3, 3, 4, 2]  # per event, 2 on average
EXTRA_TOPICS = ["orders/updated", "orders/paid", "fulfillments/create", "orders/updated"]


def seed(rt: Runtime, count: int, days: float, body_bytes: int) -> dict[str, str]:
    """COPY `count` events, their webhooks and attempts; return console search targets."""
    sample = json.loads((console.ROOT / "samples" / "orders_create_2026-07.json").read_text())
    base = map_order(sample, shop_domain=console.SHOPS[0]).with_properties(is_first_order=False)
    statuses = [s for s in console.STATUSES for _ in range(s[1])]
    rng = random.Random(11)
    body = json.dumps({"bench": "x" * max(0, body_bytes - 13)})
    with transaction(rt.sessions) as session:
        for n, domain in enumerate(console.SHOPS):
            status = "credentials_rejected" if n == 4 else "active"
            session.add(Shop(domain=domain, status=status, cio_site_id="s", cio_region="us"))
        add_staff(session, console.EMAIL, console.PASSWORD)
    start, step = utcnow() - timedelta(days=days), timedelta(days=days) / count
    webhook_id = 0
    raw = rt.engine.raw_connection()
    try:
        connection: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
        # Bulk load: no foreign key trigger per row (the rows are consistent by construction),
        # and the plain indexes built once at the end instead of row by row.
        connection.execute("SET session_replication_role = replica")
        indexes = [index for table in TABLES for index in Base.metadata.tables[table].indexes]
        for index in indexes:
            connection.execute(f'DROP INDEX "{index.name}"')
        connection.commit()
        for first in range(0, count, BATCH):
            rows: dict[str, list[dict[str, object]]] = {table: [] for table in TABLES}
            for i in range(first, min(first + BATCH, count)):
                shop = console.SHOPS[i % len(console.SHOPS)]
                status, _, reason = rng.choice(statuses)
                occurred = start + step * i + timedelta(seconds=rng.uniform(0, 1))
                delivered = occurred + timedelta(seconds=rng.lognormvariate(1.5, 1.0))
                event_id = stable_event_id(shop, EventName.ORDER_PLACED, str(10_000_000 + i))
                webhook_id += 1
                source_id = webhook_id
                source = console._webhook(i, shop, event_id, occurred)
                rows["webhook_deliveries"].append({**source, "id": source_id, "body": body})
                for extra in range(rng.choice(EXTRA_WEBHOOKS)):
                    webhook_id += 1
                    later = occurred + timedelta(minutes=5 * (extra + 1))
                    rows["webhook_deliveries"].append(
                        {
                            **console._webhook(i, shop, event_id, later),
                            "id": webhook_id,
                            "topic": EXTRA_TOPICS[extra],
                            "shopify_event_id": f"bench-{i}-{extra}",
                            "body": body,
                            "state_reason": "order already placed",
                        }
                    )
                event = console._event(i, shop, event_id, base, status, reason, occurred, delivered)
                event["source_delivery_id"] = source_id
                rows["events"].append(event)
                rows["delivery_attempts"].extend(_attempts(rng, event_id, status, delivered))
                if status != "unidentifiable":  # place_order counted it in the ledger
                    rows["customer_orders"].append(_ledger_row(event, occurred))
            _copy(connection, rows)
            print(f"  seeded {min(first + BATCH, count):,} events", end="\r", flush=True)
        connection.execute(
            "SELECT setval(pg_get_serial_sequence('webhook_deliveries', 'id'), %s)", [webhook_id]
        )
        connection.execute("SET session_replication_role = DEFAULT")
        connection.commit()
    finally:
        raw.close()
    print()
    with rt.engine.begin() as conn:
        for index in indexes:
            index.create(conn)
    kept = count - max(1, count // 50)  # an event of the last week: kept by the prune
    return {
        "order": f"#{kept}",
        "email": f"shopper{kept}@example.com",
        "customer": str(500_000 + kept),
        "token": f"checkout-{kept}",
        "event": stable_event_id(
            console.SHOPS[kept % len(console.SHOPS)], EventName.ORDER_PLACED, str(10_000_000 + kept)
        ),
        "shop": console.SHOPS[0],
    }


def _attempts(
    rng: random.Random, event_id: str, status: str, delivered: Any
) -> list[dict[str, object]]:
    if status == "delivered":
        tries = 2 if rng.random() < 0.05 else 1
        attempts = [console._attempt(event_id, "failed", delivered) for _ in range(tries - 1)]
        return attempts + [console._attempt(event_id, "delivered", delivered)]
    if status == "failed":
        return [console._attempt(event_id, status, delivered) for _ in range(11)]
    return []


def _ledger_row(event: dict[str, object], occurred: Any) -> dict[str, object]:
    return {
        "shop_domain": event["shop_domain"],
        "order_id": event["natural_key"],
        "person_key": event["person_id"],
        "ordered_at": occurred,
        "total": 104.15,
        "cancelled": False,
        "refunded": 0.0,
    }


def _copy(connection: psycopg.Connection[Any], rows: dict[str, list[dict[str, object]]]) -> None:
    """COPY each table's rows as text (JSON values serialized), in one transaction."""
    with connection.cursor() as cursor:
        for table, values in rows.items():
            if not values:
                continue
            columns = [c.name for c in Base.metadata.tables[table].columns if c.name in values[0]]
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write("".join(_line([row.get(c) for c in columns]) for row in values))
    connection.commit()


def _line(values: list[object]) -> str:
    """One row in COPY's text format: tab-separated, \\N for NULL, specials escaped."""
    return "\t".join(_field(value) for value in values) + "\n"


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, dict | list):
        value = json.dumps(value)  # escapes tabs and newlines itself
    elif isinstance(value, bool):
        return "t" if value else "f"
    text = str(value)
    return text.translate(_ESCAPES) if "\\" in text or "\n" in text or "\t" in text else text


def counts(rt: Runtime) -> dict[str, int]:
    with rt.engine.connect() as connection:
        return {
            table: int(connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())
            for table in TABLES
        }


def sizes_mb(rt: Runtime) -> float:
    """The four tables with their indexes and TOAST, in MB."""
    with rt.engine.connect() as connection:
        total = sum(
            int(
                connection.exec_driver_sql(
                    f"SELECT pg_total_relation_size('{table}'::regclass)"
                ).scalar_one()
            )
            for table in TABLES
        )
    return total / 1e6


def maintenance(rt: Runtime, statement: str) -> float:
    started = time.perf_counter()
    with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in Base.metadata.sorted_tables:
            connection.exec_driver_sql(f'{statement} "{table.name}"')
    return time.perf_counter() - started


def page_summary(timings: dict[str, list[float]]) -> tuple[str, float]:
    worst = max(timings, key=lambda name: max(timings[name]))
    return worst, max(timings[worst])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument("--keep-schema", action="store_true", help="do not drop the schema")
    parser.add_argument("--seed-only", action="store_true", help="seed, then stop (keeps it)")
    args = parser.parse_args()
    keep = args.keep_schema or args.seed_only
    try:
        admin = psycopg.connect(console.PG_URL, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError:
        sys.exit("PostgreSQL is not reachable on 127.0.0.1:5432 (database test)")
    schema = new_schema_name("bench_retention")
    with claimed_redis_database(console.REDIS_SERVER) as redis_url, admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            run(schema_url(console.PG_URL, schema), redis_url, args)
        finally:
            if keep:
                print(f'\nschema kept: {schema} (DROP SCHEMA "{schema}" CASCADE when done)')
            else:
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(database_url: str, redis_url: str, args: argparse.Namespace) -> None:
    rt = console.migrated_runtime(database_url, redis_url)
    started = time.perf_counter()
    targets = seed(rt, args.events, args.days, args.body_bytes)
    seeded = time.perf_counter() - started
    analyzed = maintenance(rt, "VACUUM ANALYZE")  # as autovacuum leaves a live database
    before, size_before = counts(rt), sizes_mb(rt)
    print(f"seeded {args.events:,} events over {args.days:.0f} days in {seeded:.0f} s")
    print(
        f"  (VACUUM ANALYZE {analyzed:.0f} s); rows before: {_rows(before)}; {size_before:,.0f} MB"
    )
    if args.seed_only:
        rt.engine.dispose()
        return

    pages_before = console.time_pages(rt, targets, args.runs)
    console.report("console before the prune", pages_before)

    policy = RetentionPolicy.from_settings(rt.settings, chunk_rows=args.chunk_size)
    report = prune(rt.sessions, policy)
    after = counts(rt)
    deleted = sum(before.values()) - sum(after.values())
    print(
        f"\nprune (events {policy.event_days} days, webhooks {policy.webhook_days} days, "
        f"chunks of {policy.chunk_rows:,}): {report.rows:,} rows deleted "
        f"({report.events:,} events, {report.attempts:,} attempts, {report.webhooks:,} "
        f"webhooks; {report.orders_marked:,} ledger orders marked, {report.events_unlinked:,} "
        f"events unlinked) in {report.seconds:.1f} s = {report.rows / report.seconds:,.0f} rows/s, "
        f"{report.chunks} chunks"
    )
    if report.vacuumed:
        tables, seconds = ", ".join(report.vacuumed), report.vacuum_seconds
        print(f"  then the prune vacuumed {tables} in {seconds:.1f} s")
    assert deleted == report.rows, (deleted, report.rows)
    print(f"  rows after: {_rows(after)}; {sizes_mb(rt):,.0f} MB before VACUUM of every table")

    pages_after = console.time_pages(rt, targets, args.runs)
    console.report("console right after the prune", pages_after)
    vacuumed = maintenance(rt, "VACUUM ANALYZE")
    print(f"\nVACUUM ANALYZE {vacuumed:.0f} s; {sizes_mb(rt):,.0f} MB (space reused, not returned)")
    pages_vacuumed = console.time_pages(rt, targets, args.runs)
    console.report("console after VACUUM ANALYZE", pages_vacuumed)

    again = prune(rt.sessions, policy)
    print(f"\na second prune right after: {again.rows} rows in {again.seconds:.2f} s")
    print("\nSummary")
    for label, timings in (
        ("before the prune", pages_before),
        ("right after the prune", pages_after),
        ("after VACUUM ANALYZE", pages_vacuumed),
    ):
        worst, ms = page_summary(timings)
        verdict = "PASS" if ms < TARGET_MS else "FAIL"
        print(f"  console {label:<22} slowest page {worst!r} max {ms:.0f} ms  < 300 ms  {verdict}")
    rt.engine.dispose()


def _rows(values: dict[str, int]) -> str:
    return ", ".join(f"{table} {count:,}" for table, count in values.items())


if __name__ == "__main__":
    main()
