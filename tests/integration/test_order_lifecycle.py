"""After the order: cancellations, refunds and fulfilments, each once, on the order's person,
and profile attributes net of them."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.storage.models import WebhookDelivery
from tests.support import post_webhook, run_jobs, sample

ORDER = sample("orders_create_2026-07.json")
CUSTOMER_ID = str(ORDER["customer"]["id"])
CANCELLED = sample("orders_cancelled_2026-07.json")
REFUND = sample("refunds_create_2026-07.json")
FULFILLMENT = sample("fulfillments_create_2026-07.json")


def tracked(fake: FakeCustomerIO, name: str) -> list[dict[str, Any]]:
    return fake.events_named(name)


def last_identify(fake: FakeCustomerIO) -> dict[str, Any]:
    return dict(fake.identifies[-1]["attributes"])


def test_a_cancellation_is_sent_once_on_the_orders_person_and_uncounts_the_order(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "orders/create", ORDER, "lc-1")
    run_jobs(rt)
    assert last_identify(fake_customerio)["orders_count"] == 1
    post_webhook(client, "orders/cancelled", CANCELLED, "lc-2")
    post_webhook(client, "orders/cancelled", CANCELLED, "lc-3")  # a second delivery
    run_jobs(rt)

    [cancelled] = tracked(fake_customerio, "order_cancelled")
    assert cancelled["identifiers"] == {"id": CUSTOMER_ID}
    assert cancelled["attributes"]["cancel_reason"] == "customer"
    assert cancelled["attributes"]["revenue"] == 104.15
    assert cancelled["timestamp"] == 1784121164  # cancelled_at 2026-07-15T09:12:44-04:00
    identify = last_identify(fake_customerio)
    assert (identify["orders_count"], identify["total_spent"]) == (0, 0.0)
    profile = fake_customerio.profile_of(id=CUSTOMER_ID)
    assert profile is not None and profile.events == ["order_placed", "order_cancelled"]


def test_a_cancellation_arriving_before_its_order_is_sent_and_remembered(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "orders/cancelled", CANCELLED, "cb-1")
    run_jobs(rt)
    post_webhook(client, "orders/create", ORDER, "cb-2")
    run_jobs(rt)

    assert len(tracked(fake_customerio, "order_cancelled")) == 1
    assert len(tracked(fake_customerio, "order_placed")) == 1
    assert last_identify(fake_customerio)["orders_count"] == 0  # the order is cancelled


def test_a_refund_is_sent_once_with_the_net_revenue_and_spend_drops(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "orders/create", ORDER, "rf-1")
    run_jobs(rt)
    assert last_identify(fake_customerio)["total_spent"] == 104.15
    post_webhook(client, "refunds/create", REFUND, "rf-2")
    post_webhook(client, "refunds/create", REFUND, "rf-3")  # redelivered under a new id
    run_jobs(rt)

    [refunded] = tracked(fake_customerio, "order_refunded")
    assert refunded["identifiers"] == {"id": CUSTOMER_ID}
    attributes = refunded["attributes"]
    assert (attributes["refund_id"], attributes["order_id"]) == ("929361462", str(ORDER["id"]))
    assert (attributes["refunded_amount"], attributes["net_revenue"]) == (17.54, 86.61)
    assert [item["quantity"] for item in attributes["items"]] == [1]
    identify = last_identify(fake_customerio)
    assert (identify["orders_count"], identify["total_spent"]) == (1, 86.61)


def test_a_fulfilment_is_sent_with_its_tracking_on_the_orders_person(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "orders/create", ORDER, "ff-1")
    post_webhook(client, "fulfillments/create", FULFILLMENT, "ff-2")
    run_jobs(rt)

    [fulfilled] = tracked(fake_customerio, "order_fulfilled")
    assert fulfilled["identifiers"] == {"id": CUSTOMER_ID}
    attributes = fulfilled["attributes"]
    assert (attributes["tracking_company"], attributes["tracking_number"]) == ("UPS", "1Z2345")
    assert attributes["tracking_url"].startswith("https://www.ups.com/")
    assert attributes["fulfillment_id"] == "255858046" and attributes["item_count"] == 3


def test_refunds_and_fulfilments_of_orders_the_connector_never_placed_are_not_sent(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "refunds/create", REFUND, "un-1")
    post_webhook(client, "fulfillments/create", FULFILLMENT, "un-2")
    run_jobs(rt)

    assert fake_customerio.events == []
    with rt.sessions() as session:
        reasons = set(session.scalars(select(WebhookDelivery.state_reason)))
    assert reasons == {"recorded, not sent: the connector did not place this order"}


def test_a_shopper_the_ledger_does_not_know_gets_no_zero_order_count(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "checkouts/update", sample("checkouts_update_with_email.json"), "z-1")
    run_jobs(rt)
    identify = last_identify(fake_customerio)
    assert "orders_count" not in identify and "total_spent" not in identify

    post_webhook(client, "orders/create", ORDER, "z-2")
    run_jobs(rt)
    identify = last_identify(fake_customerio)
    assert identify["orders_count"] == 1
    assert identify["created_at"] == 1762123212  # the customer's created_at, Unix seconds


def test_failed_lifecycle_events_replay_unchanged_on_the_orders_person(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    from connector.storage.models import Event
    from jobs.replay import ReplayRequest, run_replay

    post_webhook(client, "orders/create", ORDER, "rp-1")
    post_webhook(client, "refunds/create", REFUND, "rp-2")
    post_webhook(client, "fulfillments/create", FULFILLMENT, "rp-3")
    post_webhook(client, "orders/cancelled", CANCELLED, "rp-4")
    run_jobs(rt)
    with rt.sessions() as session:
        changes = session.scalars(select(Event).where(Event.name != "order_placed")).all()
        before = {e.id: (e.person_id, dict(e.properties)) for e in changes}
    with rt.sessions.begin() as session:
        for event in session.scalars(select(Event).where(Event.id.in_(before))):
            event.status, event.reason = "failed", "gave up after 11 attempts: 503"

    result = run_replay(rt, ReplayRequest(event_ids=tuple(before)), actor="test")

    assert result.requeued == 3 and result.quarantined == 0
    with rt.sessions() as session:
        after = {
            e.id: (e.person_id, dict(e.properties))
            for e in session.scalars(select(Event).where(Event.id.in_(before)))
        }
    assert after == before  # same person, same net_revenue, same items
