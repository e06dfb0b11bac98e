"""Order history: the ledger seeded from the Admin API, unknown customers, and backfill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.cli import main
from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.shopify.admin import client_for
from connector.shopify.errors import ShopifyUnavailableError
from connector.storage.models import Event, Shop, WebhookDelivery
from jobs.history import import_history
from jobs.tasks import JobFailedError, process_inbox
from tests.fakes.shopify import FakeShopify
from tests.fakes.shopify_install import install
from tests.support import add_shop, make_order, post_webhook, run_jobs

pytestmark = pytest.mark.shopify

SHOP = "acme-store.myshopify.com"
START = datetime(2025, 1, 1, tzinfo=UTC)


def order(order_id: int, customer_id: int, when: str) -> dict[str, Any]:
    return make_order(order_id, when=when, customer={"id": customer_id})


def first_order_flags(fake_customerio: FakeCustomerIO) -> dict[str, bool]:
    return {
        e["attributes"]["order_id"]: e["attributes"]["is_first_order"]
        for e in fake_customerio.events_named("order_placed")
    }


def three_hundred_orders(fake: FakeShopify) -> None:
    """150 returning customers (ids 1-150) with two orders each."""
    for n in range(300):
        customer = n % 150 + 1
        fake.add_order(SHOP, 10_000 + n, START + timedelta(hours=n), customer_id=customer)


def test_returning_customers_are_known_from_300_historical_orders(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    three_hundred_orders(fake_shopify)
    install(client, SHOP)
    add_shop(rt, SHOP)
    run_jobs(rt)  # the history import the install queued
    assert len(fake_shopify.calls("Orders")) == 3  # 100 per page
    with rt.sessions() as session:
        shop = session.get(Shop, SHOP)
        assert shop is not None and shop.history_imported_at and shop.history_cursor is None

    post_webhook(client, "orders/create", order(20_001, 42, "2026-07-14T10:00:00Z"), "n-1", SHOP)
    post_webhook(client, "orders/create", order(20_002, 777, "2026-07-14T11:00:00Z"), "n-2", SHOP)
    run_jobs(rt)

    assert first_order_flags(fake_customerio) == {"20001": False, "20002": True}
    people = fake_customerio.people
    assert people["42"]["orders_count"] == 3  # two historical orders and this one


def test_test_orders_in_the_history_make_nobody_a_returning_customer(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    fake_shopify.add_order(SHOP, 600, START, customer_id=43, test=True)  # the merchant's trial
    fake_shopify.add_order(SHOP, 601, START, customer_id=44)
    install(client, SHOP)
    add_shop(rt, SHOP)
    run_jobs(rt)

    post_webhook(client, "orders/create", order(20_010, 43, "2026-07-14T10:00:00Z"), "t-1", SHOP)
    post_webhook(client, "orders/create", order(20_011, 44, "2026-07-14T11:00:00Z"), "t-2", SHOP)
    run_jobs(rt)

    assert first_order_flags(fake_customerio) == {"20010": True, "20011": False}


def test_a_customer_the_ledger_lacks_is_looked_up_in_shopify(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    install(client, SHOP)
    add_shop(rt, SHOP)
    run_jobs(rt)  # empty history
    fake_shopify.add_order(SHOP, 555, START, customer_id=900)  # e.g. older than the import saw
    fake_shopify.add_order(SHOP, 20_003, START + timedelta(days=500), customer_id=900)

    post_webhook(client, "orders/create", order(20_003, 900, "2026-07-14T10:00:00Z"), "n-3", SHOP)
    run_jobs(rt)

    assert first_order_flags(fake_customerio) == {"20003": False}
    (lookup,) = fake_shopify.calls("CustomerOrderCount")
    assert lookup["variables"]["id"] == "gid://shopify/Customer/900"


def test_two_orders_of_a_new_customer_in_one_batch_make_the_earlier_one_first(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    install(client, SHOP)
    add_shop(rt, SHOP)
    run_jobs(rt)  # empty history
    # Shopify already counts both when the connector asks (numberOfOrders = 2).
    fake_shopify.add_order(SHOP, 20_021, START + timedelta(days=500), customer_id=910)
    fake_shopify.add_order(SHOP, 20_022, START + timedelta(days=501), customer_id=910)

    post_webhook(client, "orders/create", order(20_022, 910, "2026-07-14T11:00:00Z"), "b-2", SHOP)
    post_webhook(client, "orders/paid", order(20_022, 910, "2026-07-14T11:00:00Z"), "b-3", SHOP)
    post_webhook(client, "orders/create", order(20_021, 910, "2026-07-14T10:00:00Z"), "b-1", SHOP)
    run_jobs(rt)

    assert first_order_flags(fake_customerio) == {"20021": True, "20022": False}


def test_unreachable_shopify_retries_the_job_instead_of_guessing(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    install(client, SHOP)
    add_shop(rt, SHOP)
    run_jobs(rt)
    fake_shopify.add_order(SHOP, 555, START, customer_id=900)
    fake_shopify.throttle_next(100, "429")
    post_webhook(client, "orders/create", order(20_004, 900, "2026-07-14T10:00:00Z"), "n-4", SHOP)

    with pytest.raises(JobFailedError, match="ShopifyUnavailableError"):
        process_inbox(SHOP)  # the job is retried; the webhook is not set aside
    with rt.sessions() as session:
        row = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.resource_key == "20004")
        ).one()
        assert row.state == "received"
        assert session.scalars(select(Event)).all() == []

    fake_shopify._throttle_next.clear()  # Shopify is back
    process_inbox(SHOP)
    run_jobs(rt)
    # Shopify counts one order for them; like the payload's hint, one is not "returning".
    assert first_order_flags(fake_customerio) == {"20004": True}


def test_an_interrupted_import_resumes_where_it_stopped(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    three_hundred_orders(fake_shopify)
    install(client, SHOP)
    admin = client_for(rt.sessions, rt.secrets, rt.settings, SHOP)
    admin.sleep = lambda _s: None
    calls = {"n": 0}
    original = admin.graphql

    def failing_after_one_page(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ShopifyUnavailableError("connection reset")
        return original(*args, **kwargs)

    admin.graphql = failing_after_one_page  # type: ignore[method-assign]
    with pytest.raises(ShopifyUnavailableError):
        import_history(rt, SHOP, client=admin)
    with rt.sessions() as session:
        shop = session.get(Shop, SHOP)
        assert shop is not None and shop.history_cursor == "100"

    assert import_history(rt, SHOP) == 200
    assert fake_shopify.calls("Orders")[-2]["variables"]["after"] == "100"


def test_backfill_twice_sends_each_historical_order_once_and_nothing_recent(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    now = datetime.now(UTC)
    old = [now - timedelta(days=d) for d in (40, 30, 20)]
    for n, when in enumerate(old):
        fake_shopify.add_order(SHOP, 30_000 + n, when, customer_id=70, email="b@example.com")
    fake_shopify.add_order(SHOP, 30_009, now - timedelta(hours=5), customer_id=71)
    install(client, SHOP)
    add_shop(rt, SHOP)
    run_jobs(rt)
    since = (now - timedelta(days=90)).date().isoformat()

    for _ in range(2):
        result = CliRunner().invoke(main, ["history", "backfill", "--shop", SHOP, "--since", since])
        assert result.exit_code == 0, result.output
        run_jobs(rt)

    events = fake_customerio.events_named("order_placed")
    assert sorted(e["attributes"]["order_id"] for e in events) == ["30000", "30001", "30002"]
    assert fake_customerio.duplicate_events == 0
    assert {e["attributes"]["event_source"] for e in events} == {"backfill"}
    by_id = {e["attributes"]["order_id"]: e for e in events}
    assert by_id["30000"]["timestamp"] == int(old[0].timestamp())
    assert [by_id[i]["attributes"]["is_first_order"] for i in ("30000", "30001", "30002")] == [
        True,
        False,
        False,
    ]
    assert "0 event(s) queued, 3 already known" in result.output


def test_history_import_command(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    fake_shopify.add_order(SHOP, 1, START, customer_id=5)
    install(client, SHOP)
    result = CliRunner().invoke(main, ["history", "import", "--shop", SHOP])
    assert result.exit_code == 0, result.output
    assert "1 historical order(s) recorded" in result.output
