"""Retention: old delivered events, closed checkouts, their attempts and processed webhooks
go; what support and replay need stays; no order is ever placed twice because of it."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connector.cli.prune import report_lines
from connector.dev.fake_customerio import FakeCustomerIO
from connector.events import EventName, stable_event_id
from connector.runtime import Runtime
from connector.statuses import EventStatus, InboxState
from connector.storage.console import event_timeline, search_events
from connector.storage.db import transaction
from connector.storage.health import feed_health, shops_health
from connector.storage.models import (
    CustomerLedger,
    CustomerOrder,
    DeliveryAttempt,
    Event,
    RedactedCustomer,
    WebhookDelivery,
)
from connector.timeutil import utcnow
from jobs import retention, worker
from jobs.processing import PLACED_AND_PRUNED
from jobs.retention import RetentionPolicy, event_days, prune
from jobs.tasks import prune_storage
from tests.fakes.shopify import FakeShopify
from tests.fakes.shopify_install import install
from tests.support import SHOP, add_shop, invoke_cli, make_order, post_webhook, run_jobs

DEFAULT = RetentionPolicy(event_days=90, webhook_days=30)
_ids = itertools.count(1)


# -- seeding: rows as the pipeline leaves them, at a chosen age ------------------------------


def add_event(
    rt: Runtime,
    *,
    status: str,
    age_days: float,
    name: str = EventName.ORDER_PLACED,
    attempts: int = 1,
    webhook_state: str | None = InboxState.PROCESSED,
    webhook_names_event: bool = True,
    shop: str = SHOP,
) -> tuple[str, int | None]:
    """One event `age_days` old with `attempts` attempts and the webhook it came from
    (which names it, unless told otherwise); returns (event id, webhook id). Call oldest
    first: webhook ids grow with their age."""
    n = next(_ids)
    when = utcnow() - timedelta(days=age_days)
    key = str(9_000_000 + n)
    event_id = stable_event_id(shop, name, key)
    with transaction(rt.sessions) as session:
        webhook_id = None
        if webhook_state is not None:
            named = event_id if webhook_names_event else None
            webhook = webhook_row(shop, f"seed-{n}", when, webhook_state, named)
            session.add(webhook)
            session.flush()
            webhook_id = webhook.id
        session.add(
            Event(
                id=event_id,
                shop_domain=shop,
                name=name,
                natural_key=key,
                reference=f"#{key}",
                person_id="42",
                customer_id="42",
                email="shopper@example.com",
                person={"id": "42", "customer_id": "42", "email": "shopper@example.com"},
                occurred_at=when,
                properties={"order_id": key, "order_name": f"#{key}"},
                status=status,
                reason=None if status == EventStatus.DELIVERED else "a reason",
                source_delivery_id=webhook_id,
                attempts=attempts,
                created_at=when,
                updated_at=when,
                delivered_at=when if status == EventStatus.DELIVERED else None,
            )
        )
        session.flush()
        for _ in range(attempts):
            session.add(DeliveryAttempt(event_id=event_id, attempted_at=when, outcome="delivered"))
        if name == EventName.ORDER_PLACED:
            session.add(
                CustomerOrder(shop_domain=shop, order_id=key, person_key="42", ordered_at=when)
            )
    return event_id, webhook_id


def webhook_row(
    shop: str, shopify_event_id: str, when: datetime, state: str, event_id: str | None = None
) -> WebhookDelivery:
    return WebhookDelivery(
        shop_domain=shop,
        topic="orders/create",
        shopify_event_id=shopify_event_id,
        received_at=when,
        body="{}",
        state=state,
        processed_at=None if state == InboxState.RECEIVED else when,
        event_id=event_id,
    )


def add_webhook(rt: Runtime, *, state: str, age_days: float, event_id: str | None = None) -> int:
    with transaction(rt.sessions) as session:
        row = webhook_row(SHOP, f"hook-{next(_ids)}", utcnow() - timedelta(days=age_days), state)
        row.event_id = event_id
        session.add(row)
        session.flush()
        return row.id


def age_everything(rt: Runtime, days: float) -> None:
    """Move every stored time back by `days`, as if the pipeline had run that long ago."""
    columns = {
        Event: ("created_at", "updated_at", "occurred_at", "delivered_at", "queued_at"),
        WebhookDelivery: ("received_at", "processed_at", "triggered_at"),
        DeliveryAttempt: ("attempted_at",),
    }
    with transaction(rt.sessions) as session:
        for model, names in columns.items():
            for row in session.scalars(select(model)):
                for name in names:
                    if getattr(row, name) is not None:
                        setattr(row, name, getattr(row, name) - timedelta(days=days))


def count(rt: Runtime, model: Any, *where: Any) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def event_ids(rt: Runtime) -> set[str]:
    with rt.sessions() as session:
        return set(session.scalars(select(Event.id)))


def webhook_ids(rt: Runtime) -> set[int]:
    with rt.sessions() as session:
        return set(session.scalars(select(WebhookDelivery.id)))


def table_counts(rt: Runtime) -> dict[str, int]:
    return {
        "events": count(rt, Event),
        "attempts": count(rt, DeliveryAttempt),
        "webhooks": count(rt, WebhookDelivery),
        "marked": count(rt, CustomerOrder, CustomerOrder.event_pruned_at.is_not(None)),
    }


# -- what goes, what stays -------------------------------------------------------------------


def test_old_delivered_events_go_with_their_attempts_and_recent_ones_stay(
    rt: Runtime, shop: str
) -> None:
    old, _ = add_event(rt, status=EventStatus.DELIVERED, age_days=120, attempts=3)
    edge, _ = add_event(rt, status=EventStatus.DELIVERED, age_days=89)
    recent, _ = add_event(rt, status=EventStatus.DELIVERED, age_days=2, attempts=2)

    report = prune(rt.sessions, DEFAULT)

    assert event_ids(rt) == {edge, recent}
    assert count(rt, DeliveryAttempt, DeliveryAttempt.event_id == old) == 0
    assert count(rt, DeliveryAttempt) == 3
    assert (report.events, report.attempts, report.orders_marked) == (1, 3, 1)
    assert report.finished


def test_failed_quarantined_pending_waiting_and_unidentifiable_stay_whatever_their_age(
    rt: Runtime, shop: str
) -> None:
    kept_statuses = [
        EventStatus.FAILED,
        EventStatus.QUARANTINED,
        EventStatus.PENDING,
        EventStatus.WAITING_FOR_IDENTITY,
        EventStatus.UNIDENTIFIABLE,
    ]
    kept = {status: add_event(rt, status=status, age_days=400) for status in kept_statuses}
    # A webhook that fed a kept event stays even when it does not name it.
    kept["unnamed"] = add_event(
        rt, status=EventStatus.FAILED, age_days=400, webhook_names_event=False
    )
    closed, closed_hook = add_event(
        rt, status=EventStatus.CLOSED, age_days=400, name=EventName.CHECKOUT_STARTED, attempts=0
    )
    delivered, delivered_hook = add_event(rt, status=EventStatus.DELIVERED, age_days=400)

    report = prune(rt.sessions, DEFAULT)

    assert event_ids(rt) == {event_id for event_id, _ in kept.values()}
    assert count(rt, DeliveryAttempt) == len(kept)  # theirs, one each
    # Their webhooks stay with them (a replay maps them again from it); the others go.
    assert webhook_ids(rt) == {hook for _, hook in kept.values()}
    assert closed not in event_ids(rt) and delivered not in event_ids(rt)
    assert closed_hook not in webhook_ids(rt) and delivered_hook not in webhook_ids(rt)
    assert (report.events, report.webhooks) == (2, 2)


def test_webhooks_go_when_processed_or_ignored_and_old_but_failed_and_waiting_ones_stay(
    rt: Runtime, shop: str
) -> None:
    failed_event, _ = add_event(rt, status=EventStatus.FAILED, age_days=300)
    old_processed = add_webhook(rt, state=InboxState.PROCESSED, age_days=60)
    old_ignored = add_webhook(rt, state=InboxState.IGNORED, age_days=60)
    old_failed = add_webhook(rt, state=InboxState.FAILED, age_days=60)
    old_received = add_webhook(rt, state=InboxState.RECEIVED, age_days=60)
    # A redelivery that names the failed event: support sees it on the event's timeline.
    names_failed = add_webhook(rt, state=InboxState.PROCESSED, age_days=60, event_id=failed_event)
    recent = add_webhook(rt, state=InboxState.PROCESSED, age_days=29)
    before = webhook_ids(rt)

    report = prune(rt.sessions, DEFAULT)

    assert before - webhook_ids(rt) == {old_processed, old_ignored}
    assert {old_failed, old_received, names_failed, recent} <= webhook_ids(rt)
    assert report.webhooks == 2


def test_a_kept_delivered_event_loses_its_old_webhook_and_its_timeline_still_shows(
    rt: Runtime, shop: str
) -> None:
    event_id, hook = add_event(rt, status=EventStatus.DELIVERED, age_days=45)
    with rt.sessions() as session:
        updated_before = session.get(Event, event_id).updated_at  # type: ignore[union-attr]

    report = prune(rt.sessions, DEFAULT)

    assert hook not in webhook_ids(rt) and event_id in event_ids(rt)
    assert (report.webhooks, report.events_unlinked) == (1, 1)
    with rt.sessions() as session:
        event = session.get(Event, event_id)
        assert event is not None and event.source_delivery_id is None
        assert event.updated_at == updated_before
        timeline = event_timeline(session, event_id)
    assert timeline is not None
    assert [step.title for step in timeline.steps][:1] == ["Mapped to a canonical event"]


def test_webhooks_kept_longer_than_their_pruned_events_are_harmless(rt: Runtime, shop: str) -> None:
    event_id, hook = add_event(rt, status=EventStatus.DELIVERED, age_days=120)

    prune(rt.sessions, RetentionPolicy(event_days=90, webhook_days=0))

    assert event_id not in event_ids(rt) and hook in webhook_ids(rt)
    with rt.sessions() as session:
        order_id = str(session.get(WebhookDelivery, hook).event_id)  # type: ignore[union-attr]
        assert event_timeline(session, event_id) is None
        assert search_events(session, order_id) == []


def test_zero_keeps_everything_forever(rt: Runtime, shop: str) -> None:
    add_event(rt, status=EventStatus.DELIVERED, age_days=4000)
    before = table_counts(rt)

    report = prune(rt.sessions, RetentionPolicy(event_days=0, webhook_days=0))

    assert table_counts(rt) == before
    assert report.event_cutoff is None and report.webhook_cutoff is None and report.rows == 0


def test_the_ledger_and_privacy_tombstones_stay(rt: Runtime, shop: str) -> None:
    add_event(rt, status=EventStatus.DELIVERED, age_days=120)
    with transaction(rt.sessions) as session:
        session.add(
            CustomerLedger(
                shop_domain=SHOP,
                person_key="42",
                first_order_id="1",
                first_order_at=utcnow() - timedelta(days=500),
            )
        )
        session.add(RedactedCustomer(shop_domain=SHOP, key_hash="h" * 64))

    prune(rt.sessions, DEFAULT)

    assert count(rt, Event) == 0
    assert count(rt, CustomerLedger) == 1 and count(rt, RedactedCustomer) == 1
    assert count(rt, CustomerOrder) == 1
    assert count(rt, CustomerOrder, CustomerOrder.event_pruned_at.is_not(None)) == 1


# -- one order_placed per order, ever ----------------------------------------------------------


def placed(fake: FakeCustomerIO, order_id: str) -> int:
    return sum(e["attributes"]["order_id"] == order_id for e in fake.events_named("order_placed"))


def test_a_late_orders_updated_for_a_pruned_order_does_not_place_it_again(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    order = make_order(7_300_001, when=utcnow().isoformat())
    post_webhook(client, "orders/create", order, "create-1")
    run_jobs(rt)
    assert placed(fake_customerio, "7300001") == 1
    age_everything(rt, 100)  # ... and a hundred days go by
    order["created_at"] = order["processed_at"] = (utcnow() - timedelta(days=100)).isoformat()

    # The window the settings give the tests (10 years) keeps every event.
    assert RetentionPolicy.from_settings(rt.settings).event_days == 3651
    assert prune(rt.sessions, RetentionPolicy.from_settings(rt.settings)).events == 0
    rt.settings = replace(rt.settings, new_order_window_hours=72)  # the default
    report = prune(rt.sessions, RetentionPolicy.from_settings(rt.settings))
    assert report.events == 1 and count(rt, Event) == 0

    post_webhook(client, "orders/updated", order, "update-1")
    run_jobs(rt)
    assert count(rt, Event) == 0
    assert "created before the new-order window" in latest_reason(rt)

    # The window made longer after the prune: the ledger still knows the order was placed.
    rt.settings = replace(rt.settings, new_order_window_hours=24 * 365)
    post_webhook(client, "orders/paid", order, "paid-1")
    post_webhook(client, "orders/updated", order, "update-2")
    run_jobs(rt)
    assert count(rt, Event) == 0
    assert latest_reason(rt) == PLACED_AND_PRUNED
    assert placed(fake_customerio, "7300001") == 1
    assert fake_customerio.duplicate_events == 0


def latest_reason(rt: Runtime) -> str:
    with rt.sessions() as session:
        query = select(WebhookDelivery.state_reason).order_by(WebhookDelivery.id.desc())
        return str(session.scalars(query.limit(1)).first())


@pytest.mark.shopify
def test_a_backfill_after_a_prune_sends_no_order_again(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    shop = "acme-store.myshopify.com"
    now = utcnow()
    fake_shopify.add_order(shop, 31_000, now - timedelta(days=20), customer_id=70)
    install(client, shop)
    add_shop(rt, shop)
    run_jobs(rt)
    since = (now - timedelta(days=60)).date().isoformat()
    first = invoke_cli(rt, "history", "backfill", "--shop", shop, "--since", since)
    assert "1 event(s) queued" in first.stdout
    run_jobs(rt)
    assert placed(fake_customerio, "31000") == 1
    age_everything(rt, 100)
    rt.settings = replace(rt.settings, new_order_window_hours=72)
    assert prune(rt.sessions, RetentionPolicy.from_settings(rt.settings)).events == 1

    again = invoke_cli(rt, "history", "backfill", "--shop", shop, "--since", since)

    assert "0 event(s) queued, 1 already known" in again.stdout
    run_jobs(rt)
    assert placed(fake_customerio, "31000") == 1 and count(rt, Event) == 0


# -- chunks, time budget, dry run ------------------------------------------------------------


def test_chunks_commit_one_by_one_and_a_spent_budget_leaves_the_rest_for_the_next_run(
    rt: Runtime, shop: str
) -> None:
    for _ in range(12):
        add_event(rt, status=EventStatus.DELIVERED, age_days=120, attempts=2)
    recent, _ = add_event(rt, status=EventStatus.DELIVERED, age_days=1)
    policy = RetentionPolicy(event_days=90, webhook_days=30, chunk_rows=5)

    # A clock that says the budget is spent after two chunks.
    ticks = iter([0.0, 0.0, 0.0, 100.0, 100.0, 100.0])
    first = prune(rt.sessions, policy, time_budget=50.0, clock=lambda: next(ticks, 100.0))
    assert (first.events, first.attempts, first.chunks, first.finished) == (10, 20, 2, False)
    assert count(rt, Event) == 3 and count(rt, WebhookDelivery) == 13  # webhooks: not yet

    second = prune(rt.sessions, policy)
    assert (second.events, second.webhooks, second.finished) == (2, 12, True)
    assert second.chunks == 1 + 3  # events: 2; webhooks: 5 + 5 + 2
    assert event_ids(rt) == {recent} and count(rt, WebhookDelivery) == 1


def test_a_large_prune_vacuums_what_it_changed_on_postgresql(
    rt: Runtime, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until a vacuum, the console's index-only counts read the table again after a large
    delete; a run that caught up after deleting many rows vacuums at once (PostgreSQL)."""
    monkeypatch.setattr(retention, "VACUUM_AFTER_ROWS", 3)
    policy = RetentionPolicy(event_days=90, webhook_days=30)
    for _ in range(2):
        add_event(rt, status=EventStatus.DELIVERED, age_days=120)
    few = prune(rt.sessions, policy)
    assert (few.events, few.webhooks, few.vacuumed) == (2, 2, ())
    for _ in range(3):
        add_event(rt, status=EventStatus.DELIVERED, age_days=120)
    dry = prune(rt.sessions, policy, dry_run=True)
    assert (dry.events, dry.vacuumed) == (3, ())
    many = prune(rt.sessions, policy)
    assert (many.events, many.webhooks) == (3, 3)
    if rt.engine.dialect.name != "postgresql":
        assert many.vacuumed == ()  # SQLite keeps no visibility map
        return
    assert many.vacuumed == ("events", "webhook_deliveries")
    assert many.summary()["vacuumed"] == ["events", "webhook_deliveries"]
    with rt.engine.connect() as connection:
        vacuumed = connection.exec_driver_sql(
            "SELECT last_vacuum FROM pg_stat_user_tables WHERE relid = 'events'::regclass"
        ).scalar_one()
    assert vacuumed is not None
    lines = report_lines(many, policy, 90)
    assert lines[-1].startswith("then vacuumed events, webhook_deliveries in ")


def test_a_dry_run_changes_nothing_and_counts_what_a_run_deletes(rt: Runtime, shop: str) -> None:
    for status in (EventStatus.DELIVERED, EventStatus.FAILED, EventStatus.DELIVERED):
        add_event(rt, status=status, age_days=200, attempts=2)
    add_event(
        rt, status=EventStatus.CLOSED, age_days=150, name=EventName.CHECKOUT_STARTED, attempts=0
    )
    add_webhook(rt, state=InboxState.IGNORED, age_days=40)
    add_event(rt, status=EventStatus.DELIVERED, age_days=3)
    before = table_counts(rt)
    policy = RetentionPolicy(event_days=90, webhook_days=30, chunk_rows=2)

    dry = prune(rt.sessions, policy, dry_run=True)
    assert table_counts(rt) == before

    real = prune(rt.sessions, policy)
    counted = (dry.events, dry.attempts, dry.webhooks, dry.orders_marked)
    assert counted == (real.events, real.attempts, real.webhooks, real.orders_marked)
    assert counted == (3, 4, 4, 2)
    assert table_counts(rt) == {
        "events": before["events"] - 3,
        "attempts": before["attempts"] - 4,
        "webhooks": before["webhooks"] - 4,
        "marked": 2,
    }


def test_prune_command_prints_each_table(rt: Runtime, shop: str) -> None:
    add_event(rt, status=EventStatus.DELIVERED, age_days=120, attempts=2)
    add_event(rt, status=EventStatus.DELIVERED, age_days=2)
    rt.settings = replace(rt.settings, new_order_window_hours=72)

    dry = invoke_cli(rt, "prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "(90 days)" in dry.stdout and "(30 days)" in dry.stdout
    lines = {line.split()[0]: line for line in dry.stdout.splitlines() if line.startswith("  ")}
    assert lines["events"].split()[1:3] == ["1", "would"]
    assert lines["delivery_attempts"].split()[1] == "2"
    assert lines["webhook_deliveries"].split()[1] == "1"
    assert count(rt, Event) == 2

    done = invoke_cli(rt, "prune", "--chunk-size", "1")
    assert "4 rows deleted" in done.stdout and count(rt, Event) == 1


def test_the_worker_job_prunes_once_at_a_time(rt: Runtime, shop: str) -> None:
    add_event(rt, status=EventStatus.DELIVERED, age_days=120)
    rt.settings = replace(rt.settings, new_order_window_hours=72)
    lock = rt.redis.lock("connector:lock:retention", timeout=30)
    assert lock.acquire(blocking=False)
    assert prune_storage() == {"skipped": True}
    lock.release()

    summary = prune_storage()

    assert summary["events"] == 1 and summary["finished"] is True and count(rt, Event) == 0


# -- the console's and feed health's figures ----------------------------------------------------


def test_default_retention_leaves_the_console_and_feed_health_figures_as_they_were(
    rt: Runtime, shop: str
) -> None:
    statuses = [EventStatus.DELIVERED] * 4 + [EventStatus.FAILED, EventStatus.PENDING]
    for age in (200, 120, 95, 40, 8, 6.9, 3, 0.5):  # oldest first
        for status in statuses:
            add_event(rt, status=status, age_days=age)
    rt.settings = replace(rt.settings, new_order_window_hours=72)

    def figures() -> tuple[Any, ...]:
        with rt.sessions() as session:
            return (shops_health(session), feed_health(session, SHOP))

    before = figures()
    settings = replace(rt.settings, event_retention_days=8)  # the shortest allowed
    report = prune(rt.sessions, RetentionPolicy.from_settings(settings))

    assert report.events == 5 * 4 and figures() == before


def test_events_outlive_the_new_order_window_by_a_day_at_least() -> None:
    assert event_days(90, 72) == 90
    assert event_days(10, 24 * 30) == 31
    assert event_days(8, 1) == 8
    assert event_days(0, 24 * 365) == 0  # kept forever anyway


def test_the_worker_cron_queues_retention_every_interval_and_not_at_zero(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    registered: list[tuple[str, int]] = []

    class RecordingScheduler:
        def __init__(self, **_: object) -> None:
            pass

        def register(self, job: Any, *, interval: int, **_: object) -> None:
            registered.append((job.__name__, interval))

        def start(self) -> None:
            pass

    monkeypatch.setattr(worker, "CronScheduler", RecordingScheduler)
    worker.run_sweep_scheduler(redis_url, "q", 10, "INFO", 900, "text", 3600)
    assert ("prune_storage", 3600) in registered
    registered.clear()
    worker.run_sweep_scheduler(redis_url, "q", 10, "INFO", 900, "text", 0)
    assert [name for name, _ in registered] == ["sweep", "reconcile_all"]
