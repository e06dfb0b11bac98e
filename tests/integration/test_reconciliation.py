"""Reconciliation of missed webhooks against the fake Shopify: dropped orders are delivered
once, with event_source "reconciliation"; nothing else is sent twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import select

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.storage.models import ShopReconciliation, WebhookDelivery
from connector.timeutil import utcnow
from jobs import tasks
from jobs.queue import reconcile_job_id
from jobs.reconciliation import GRACE, OVERLAP, reconcile_shop
from tests.fakes.shopify import FakeShopify
from tests.fakes.shopify_install import APP_URL, install
from tests.support import (
    add_shop,
    add_staff_account,
    console_login,
    invoke_cli,
    make_order,
    post_webhook,
    run_jobs,
)

pytestmark = pytest.mark.shopify

SHOP = "recon-store.myshopify.com"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def installed(client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify) -> str:
    """The app installed on SHOP (dated 2026-01-01), its empty history imported."""
    install(client, SHOP)
    add_shop(rt, SHOP)
    run_jobs(rt)
    return SHOP


def add_orders(fake: FakeShopify, first_id: int, count: int, start: datetime) -> list[int]:
    """`count` orders a minute apart from `start`, each of its own customer."""
    ids = []
    for n in range(count):
        order_id = first_id + n
        fake.add_order(
            SHOP,
            order_id,
            start + timedelta(minutes=n),
            customer_id=order_id + 1_000_000,
            email=f"shopper{order_id}@example.com",
        )
        ids.append(order_id)
    return ids


def live_webhook(client: FlaskClient, order_id: int, when: datetime, topic: str = "orders/create"):
    """The order's webhook as Shopify sends it (it did reach the connector)."""
    payload = make_order(
        order_id,
        when=_iso(when),
        customer={"id": order_id + 1_000_000},
        email=f"shopper{order_id}@example.com",
    )
    response = post_webhook(client, topic, payload, f"live-{topic}-{order_id}", SHOP)
    assert response.status_code == 200
    return response


def placed(fake_customerio: FakeCustomerIO) -> dict[str, list[dict[str, Any]]]:
    """order id -> the order_placed events Customer.io received for it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for event in fake_customerio.events_named("order_placed"):
        found.setdefault(event["attributes"]["order_id"], []).append(event)
    return found


def test_dropped_webhooks_are_delivered_once_by_reconciliation(
    client: FlaskClient,
    rt: Runtime,
    installed: str,
    fake_shopify: FakeShopify,
    fake_customerio: FakeCustomerIO,
) -> None:
    start = utcnow() - timedelta(hours=3)
    ids = add_orders(fake_shopify, 40_000, 6, start)
    arrived = ids[0::2]  # the webhooks of 40001, 40003 and 40005 were dropped
    for order_id in arrived:
        live_webhook(client, order_id, start + timedelta(minutes=order_id - ids[0]))
    run_jobs(rt)
    assert sorted(placed(fake_customerio)) == [str(i) for i in arrived]

    result = reconcile_shop(rt, SHOP)
    assert (result.orders_seen, result.orders_recovered, result.error) == (6, 3, None)
    run_jobs(rt)

    events = placed(fake_customerio)
    assert sorted(events) == [str(i) for i in ids]
    assert all(len(sent) == 1 for sent in events.values())
    assert fake_customerio.duplicate_events == 0
    sources = {order_id: sent[0]["attributes"]["event_source"] for order_id, sent in events.items()}
    assert sources == {str(i): "webhook" if i in arrived else "reconciliation" for i in ids}
    recovered = events["40001"][0]
    assert recovered["attributes"]["revenue"] == 25.0
    assert recovered["attributes"]["currency"] == "USD"
    assert recovered["attributes"]["items"][0]["sku"] == "MUG-1"
    assert recovered["timestamp"] == int((start + timedelta(minutes=1)).timestamp())
    assert fake_customerio.people["1040001"]["email"] == "shopper40001@example.com"
    with rt.sessions() as session:
        rows = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.shopify_event_id.like("reconciliation:%"))
        ).all()
        assert sorted(row.resource_key for row in rows) == ["40001", "40003", "40005"]
        assert {(row.topic, row.state) for row in rows} == {("orders/create", "processed")}


def test_a_late_webhook_and_a_second_run_send_nothing_more(
    client: FlaskClient,
    rt: Runtime,
    installed: str,
    fake_shopify: FakeShopify,
    fake_customerio: FakeCustomerIO,
) -> None:
    start = utcnow() - timedelta(hours=2)
    add_orders(fake_shopify, 41_000, 2, start)
    assert reconcile_shop(rt, SHOP).orders_recovered == 2
    run_jobs(rt)
    assert len(fake_customerio.events_named("order_placed")) == 2

    # Shopify's retries finally get through, and the order is updated (paid, tagged).
    live_webhook(client, 41_000, start)
    live_webhook(client, 41_001, start + timedelta(minutes=1), topic="orders/paid")
    fake_shopify.update_order(SHOP, 41_000, utcnow())
    run_jobs(rt)
    second = reconcile_shop(rt, SHOP)
    run_jobs(rt)

    assert (second.orders_seen, second.orders_recovered) == (1, 0)
    events = placed(fake_customerio)
    assert sorted(events) == ["41000", "41001"]
    assert all(len(sent) == 1 for sent in events.values())
    assert fake_customerio.duplicate_events == 0
    with rt.sessions() as session:
        late = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.shopify_event_id.like("live-%"))
        ).all()
        assert {row.state_reason for row in late} == {"order already placed"}


def test_orders_whose_webhooks_are_still_waiting_are_left_to_them(
    client: FlaskClient, rt: Runtime, installed: str, fake_shopify: FakeShopify
) -> None:
    start = utcnow() - timedelta(hours=1)
    add_orders(fake_shopify, 42_000, 1, start)
    live_webhook(client, 42_000, start)  # stored, not processed yet

    assert reconcile_shop(rt, SHOP).orders_recovered == 0


def test_only_new_orders_after_the_install_are_recovered(
    rt: Runtime, installed: str, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    now = utcnow()
    # Older than the install (2026-01-01), updated now: a refund on last year's order.
    fake_shopify.add_order(
        SHOP, 43_000, datetime(2025, 11, 1, tzinfo=UTC), customer_id=1, updated_at=now
    )
    fake_shopify.add_order(SHOP, 43_001, now - timedelta(hours=1), customer_id=2, test=True)
    fake_shopify.add_order(SHOP, 43_002, now - GRACE / 2, customer_id=3)  # webhook on its way
    fake_shopify.add_order(SHOP, 43_003, now - timedelta(hours=1), customer_id=4)

    result = reconcile_shop(rt, SHOP, now=now)
    run_jobs(rt)

    assert result.orders_recovered == 1
    assert sorted(placed(fake_customerio)) == ["43003"]
    # The fresh order is looked at again next time: the watermark stays before it.
    assert result.watermark == now - GRACE
    later = reconcile_shop(rt, SHOP, now=now + timedelta(minutes=15))
    run_jobs(rt)
    assert later.orders_recovered == 1
    assert sorted(placed(fake_customerio)) == ["43002", "43003"]


def test_the_watermark_advances_and_bounds_the_next_query(
    rt: Runtime, installed: str, fake_shopify: FakeShopify
) -> None:
    now = utcnow()
    add_orders(fake_shopify, 44_000, 3, now - timedelta(hours=2))
    first = reconcile_shop(rt, SHOP, now=now)
    second = reconcile_shop(rt, SHOP, now=now + timedelta(minutes=15))

    assert first.watermark == now - GRACE
    assert second.watermark == now + timedelta(minutes=15) - GRACE
    assert (first.orders_seen, second.orders_seen) == (3, 0)
    query = fake_shopify.calls("ReconcileOrders")[-1]["variables"]["query"]
    assert f"updated_at:>='{_iso(now - GRACE - OVERLAP)}'" in query
    with rt.sessions() as session:
        state = session.get(ShopReconciliation, SHOP)
        assert state is not None and state.watermark == second.watermark
        assert state.orders_recovered_total == 3 and state.last_orders_recovered == 0
        assert state.last_finished_at is not None and state.last_error is None


def test_a_deleted_subscription_is_re_created(
    rt: Runtime, installed: str, fake_shopify: FakeShopify
) -> None:
    assert fake_shopify.delete_subscriptions(SHOP, "ORDERS_CREATE") == 1

    first = reconcile_shop(rt, SHOP)
    second = reconcile_shop(rt, SHOP)

    assert (first.subscriptions_recreated, second.subscriptions_recreated) == (1, 0)
    created = [s for s in fake_shopify.subscriptions(SHOP) if s["topic"] == "ORDERS_CREATE"]
    assert [s["uri"] for s in created] == [f"{APP_URL}/webhooks/shopify"]
    with rt.sessions() as session:
        state = session.get(ShopReconciliation, SHOP)
        assert state is not None and state.subscriptions_recreated_total == 1


def test_orders_are_recovered_when_the_subscriptions_cannot_be_checked(
    rt: Runtime, installed: str, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    add_orders(fake_shopify, 45_500, 2, utcnow() - timedelta(hours=1))
    fake_shopify.throttle_next(6, "429", operation="WebhookSubscriptions")

    result = reconcile_shop(rt, SHOP)
    run_jobs(rt)

    assert result.error == "subscriptions: WebhookSubscriptions: still throttled after retries"
    assert result.orders_recovered == 2
    assert len(fake_customerio.events_named("order_placed")) == 2
    with rt.sessions() as session:
        state = session.get(ShopReconciliation, SHOP)
        assert state is not None and state.last_error == result.error
        assert state.watermark == result.watermark and result.watermark is not None


def test_throttled_answers_are_waited_out(
    rt: Runtime, installed: str, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    add_orders(fake_shopify, 45_000, 3, utcnow() - timedelta(hours=1))
    fake_shopify.throttle_next(2, operation="ReconcileOrders")
    fake_shopify.throttle_next(1, "429", operation="ReconcileOrders")

    result = reconcile_shop(rt, SHOP)
    run_jobs(rt)

    assert (result.orders_recovered, result.error) == (3, None)
    statuses = [call["status"] for call in fake_shopify.calls("ReconcileOrders")]
    assert statuses == ["THROTTLED", "THROTTLED", 429, 200]
    assert len(fake_customerio.events_named("order_placed")) == 3


def test_a_run_throttled_beyond_its_retries_resumes_after_the_pages_it_finished(
    rt: Runtime, installed: str, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    start = utcnow() - timedelta(hours=3)
    ids = add_orders(fake_shopify, 46_000, 25, start)  # three pages of 10
    fake_shopify.throttle_next(8, operation="ReconcileOrders", after=1)  # page 2: 6 refused

    failed = reconcile_shop(rt, SHOP)
    assert failed.error == "orders: ReconcileOrders: still throttled after retries"
    assert (failed.orders_seen, failed.orders_recovered) == (10, 10)
    assert failed.watermark == start + timedelta(minutes=9)  # the first page's last update

    resumed = reconcile_shop(rt, SHOP)  # 2 more throttled answers, then through
    run_jobs(rt)
    assert (resumed.orders_recovered, resumed.error) == (15, None)
    events = placed(fake_customerio)
    assert sorted(events) == [str(i) for i in ids]
    assert fake_customerio.duplicate_events == 0
    with rt.sessions() as session:
        state = session.get(ShopReconciliation, SHOP)
        assert state is not None and state.orders_recovered_total == 25


def test_an_uninstalled_shop_is_not_reconciled(
    client: FlaskClient, rt: Runtime, installed: str, fake_shopify: FakeShopify
) -> None:
    post_webhook(client, "app/uninstalled", {"id": 1, "domain": SHOP}, "bye", SHOP)
    run_jobs(rt)
    calls = len(fake_shopify.requests)

    assert reconcile_shop(rt, SHOP).skipped == "not installed"
    assert len(fake_shopify.requests) == calls


def test_shop_redact_forgets_the_reconciliation_state(
    client: FlaskClient, rt: Runtime, installed: str, fake_shopify: FakeShopify
) -> None:
    reconcile_shop(rt, SHOP)
    post_webhook(client, "shop/redact", {"shop_id": 1, "shop_domain": SHOP}, "redact", SHOP)
    run_jobs(rt)

    with rt.sessions() as session:
        assert session.get(ShopReconciliation, SHOP) is None


def test_the_cron_queues_one_run_per_shop_at_a_time(
    rt: Runtime, installed: str, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    add_orders(fake_shopify, 47_000, 2, utcnow() - timedelta(hours=1))

    assert tasks.reconcile_all() == {"shops": 1, "queued": 1}
    assert tasks.reconcile_all() == {"shops": 1, "queued": 0}  # still waiting: not twice
    queue = Queue(rt.settings.queue_name, connection=rt.redis)
    assert queue.job_ids == [reconcile_job_id(SHOP)]
    run_jobs(rt)  # the run, then the processing and delivery it nudged

    assert len(fake_customerio.events_named("order_placed")) == 2
    assert tasks.reconcile_all() == {"shops": 1, "queued": 1}  # the run ended: next one


def test_reconcile_command(rt: Runtime, installed: str, fake_shopify: FakeShopify) -> None:
    add_orders(fake_shopify, 48_000, 2, utcnow() - timedelta(hours=1))
    fake_shopify.delete_subscriptions(SHOP, "CHECKOUTS_UPDATE")

    result = invoke_cli(rt, "reconcile", "--shop", SHOP)

    assert result.returncode == 0, result.stderr
    assert (
        f"{SHOP}: 2 order(s) looked at, 2 recovered, 1 subscription(s) re-created" in result.stdout
    )
    everyone = invoke_cli(rt, "reconcile")
    assert f"{SHOP}: 0 order(s) looked at, 0 recovered" in everyone.stdout


def test_the_console_shows_the_last_run(
    client: FlaskClient, rt: Runtime, installed: str, fake_shopify: FakeShopify
) -> None:
    add_orders(fake_shopify, 49_000, 2, utcnow() - timedelta(hours=1))
    fake_shopify.delete_subscriptions(SHOP, "ORDERS_PAID")
    reconcile_shop(rt, SHOP)
    add_staff_account(rt)
    console_login(client)

    page = client.get(f"/console/shops/{SHOP}").get_data(as_text=True)
    overview = client.get("/console/").get_data(as_text=True)

    assert "Reconciliation" in page
    assert "2 orders recovered" in page and "1 subscription re-created" in page
    assert "2 recovered" in overview
