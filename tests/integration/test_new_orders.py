"""Only new purchases are placed: old orders updated or paid today are not bought today.

orders/updated and orders/paid arrive for orders of any age (a refund on a 2025 order, a
tag change). An order created before the shop installed the app, or before the new-order
window, must not reach Customer.io as an order_placed today; it belongs to
`connector history backfill`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.storage.models import WebhookDelivery
from connector.timeutil import utcnow
from tests.support import SHOP, add_shop, make_order, post_webhook, run_jobs

INSTALLED_AT = datetime(2026, 7, 15, tzinfo=UTC)


def placed_orders(fake: FakeCustomerIO) -> list[str]:
    return sorted(str(e["attributes"]["order_id"]) for e in fake.events_named("order_placed"))


def inbox_reasons(rt: Runtime) -> list[str | None]:
    with rt.sessions() as session:
        query = select(WebhookDelivery.state_reason).order_by(WebhookDelivery.id)
        return list(session.scalars(query))


@pytest.mark.parametrize("topic", ["orders/updated", "orders/paid", "orders/create"])
def test_orders_created_before_the_install_are_not_placed(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO, topic: str
) -> None:
    add_shop(rt, SHOP, installed_at=INSTALLED_AT)
    before = (INSTALLED_AT - timedelta(seconds=1)).isoformat()
    after = (INSTALLED_AT + timedelta(seconds=1)).isoformat()
    post_webhook(client, topic, make_order(7_100_001, when=before), "old-1")
    post_webhook(client, topic, make_order(7_100_002, when=after), "new-1")
    run_jobs(rt)

    assert placed_orders(fake_customerio) == ["7100002"]
    old_reason, new_reason = inbox_reasons(rt)
    assert old_reason is not None and "created before the app was installed" in old_reason
    assert "connector history backfill" in old_reason
    assert new_reason is None


def test_orders_older_than_the_window_are_not_placed(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    rt.settings = replace(rt.settings, new_order_window_hours=72)
    now = utcnow()
    too_old = (now - timedelta(hours=72, minutes=5)).isoformat()
    recent = (now - timedelta(hours=71, minutes=55)).isoformat()
    post_webhook(client, "orders/updated", make_order(7_200_001, when=too_old), "w-1")
    post_webhook(client, "orders/updated", make_order(7_200_002, when=recent), "w-2")
    run_jobs(rt)

    assert placed_orders(fake_customerio) == ["7200002"]
    assert "created before the new-order window" in str(inbox_reasons(rt)[0])
