"""Shopify misbehaving: every webhook delivered ten times at once, and an order's updates and
cancellation arriving before its orders/create."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from flask.testing import FlaskClient

from connector.app import create_app
from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from tests.faults.harness import (
    Observer,
    Webhook,
    cancelled_id,
    in_threads,
    order,
    order_webhooks,
    placed_id,
    post,
    pump_in_process,
    settle,
)

pytestmark = pytest.mark.slow


def test_redelivery_storm_each_webhook_ten_times_concurrently(
    rt: Runtime, shop: str, fake_customerio: FakeCustomerIO, observer: Observer
) -> None:
    webhooks = order_webhooks(20, "storm")
    app = create_app(rt)
    calls = [lambda w=w: post(app.test_client(), w) for w in webhooks for _ in range(10)]
    started = time.monotonic()
    answers = in_threads(calls, threads=10)
    answered = time.monotonic()
    assert Counter(answers) == {(200, "accepted"): 20, (200, "duplicate"): 180}
    for webhook in webhooks:
        assert observer.inbox_rows(webhook.headers["X-Shopify-Event-Id"]) == 1
    settle(
        "redelivery storm: 20 webhooks x 10, 10 threads",
        fake_customerio,
        observer,
        {placed_id(i) for i in range(20)},
        webhooks=20,
        posts=200,
        recovered_from=answered,
        pump=pump_in_process(rt),
        notes=f"200 posts answered in {answered - started:.1f} s: 20 accepted, 180 duplicate",
    )


def cancelled(index: int) -> dict[str, object]:
    payload = order(index)
    return {**payload, "cancelled_at": payload["created_at"], "cancel_reason": "customer"}


def test_updates_and_cancellation_before_the_order_arrive_out_of_order(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO, observer: Observer
) -> None:
    """Orders 0-4: updated, cancelled, then create; orders 5-9: cancelled, create, updated.
    Each of the first two waves is processed (and sent) before the next one arrives."""
    early, late = range(5), range(5, 10)
    waves = [
        [Webhook.of("orders/updated", order(i), f"upd-{i}") for i in early]
        + [Webhook.of("orders/cancelled", cancelled(i), f"can-{i}") for i in late],
        [Webhook.of("orders/cancelled", cancelled(i), f"can-{i}") for i in early]
        + [Webhook.of("orders/create", order(i), f"cre-{i}") for i in late],
        [Webhook.of("orders/create", order(i), f"cre-{i}") for i in early]
        + [Webhook.of("orders/updated", order(i), f"upd-{i}") for i in late],
    ]
    pump = pump_in_process(rt)
    started = time.monotonic()
    for wave in waves:
        assert {post(client, w) for w in wave} == {(200, "accepted")}
        pump()
    expected = {placed_id(i) for i in range(10)} | {cancelled_id(i) for i in range(10)}
    settle(
        "out of order: orders/updated and orders/cancelled before orders/create",
        fake_customerio,
        observer,
        expected,
        webhooks=30,
        posts=30,
        recovered_from=started,
        pump=pump,
        notes="one order_placed and one order_cancelled per order, whatever came first "
        "(time from the first webhook)",
    )
    placed = fake_customerio.events_named("order_placed")
    assert len(placed) == 10 and len(fake_customerio.events_named("order_cancelled")) == 10
