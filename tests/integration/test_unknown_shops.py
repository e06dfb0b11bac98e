"""Webhooks signed for a shop that never installed: kept for a grace period without being
mapped (an install may be under way), mapped once it installs, purged after the grace."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select, update

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.storage.db import transaction
from connector.storage.models import Event, WebhookDelivery
from connector.timeutil import utcnow
from jobs.tasks import sweep
from tests.support import SHOP, add_shop, make_order, post_webhook, run_jobs

STRANGER = "never-installed.myshopify.com"
NOW = "2026-11-28T10:00:00-05:00"


def inbox(rt: Runtime) -> list[WebhookDelivery]:
    with rt.sessions() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_a_strangers_webhooks_wait_unmapped_and_go_out_once_it_installs(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    order = make_order(661001, when=NOW)
    assert post_webhook(client, "orders/create", order, "s-1", shop=STRANGER).status_code == 200
    run_jobs(rt)
    sweep()
    run_jobs(rt)

    [row] = inbox(rt)
    assert row.state == "received" and "has not installed" in (row.state_reason or "")
    with rt.sessions() as session:
        assert session.scalars(select(Event)).all() == []  # nothing mapped, nothing sent
    assert fake_customerio.requests == []

    add_shop(rt, STRANGER)
    assert sweep()["shops_to_process"] == 1
    run_jobs(rt)
    [row] = inbox(rt)
    assert row.state == "processed" and row.state_reason is None
    assert len(fake_customerio.events_named("order_placed")) == 1


def test_a_strangers_webhooks_are_purged_after_the_grace_period(
    client: FlaskClient, rt: Runtime, shop: str
) -> None:
    grace = rt.settings.unknown_shop_grace_hours
    for index, domain in enumerate((STRANGER, STRANGER, SHOP)):
        order = make_order(662000 + index, when=NOW)
        assert post_webhook(client, "orders/create", order, f"p-{index}", domain).status_code == 200
    with transaction(rt.sessions) as session:  # two of them arrived before the grace period
        old = utcnow() - timedelta(hours=grace, minutes=1)
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.shopify_event_id.in_(["p-0", "p-2"]))
            .values(received_at=old)
        )

    assert sweep()["unknown_shop_webhooks_purged"] == 1
    assert [(row.shop_domain, row.shopify_event_id) for row in inbox(rt)] == [
        (STRANGER, "p-1"),  # still within its grace period
        (SHOP, "p-2"),  # an installed shop's webhook is never purged
    ]
