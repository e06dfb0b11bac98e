"""Ingest -> map -> deliver, end to end in one process with real Redis and a real fake API."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime

from flask.testing import FlaskClient
from sqlalchemy import select

from connector.dev.fake_customerio import FakeCustomerIO
from connector.events import stable_event_id
from connector.runtime import Runtime
from connector.storage.models import Event, WebhookDelivery
from jobs.tasks import process_inbox
from tests.support import (
    API_KEY,
    SHOP,
    SITE_ID,
    add_shop,
    make_order,
    post_webhook,
    run_jobs,
    sample,
)


def events(rt: Runtime) -> list[Event]:
    with rt.sessions() as session:
        return list(session.scalars(select(Event).order_by(Event.occurred_at)).all())


def the_order(payload: dict, order_id: int, when: str, customer_id: int | None = None) -> dict:
    customer = {"id": customer_id} if customer_id is not None else None
    return make_order(
        order_id, name=f"#{order_id % 100000}", when=when, customer=customer, base=payload
    )


def test_golden_path_identify_then_track(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    payload = sample("orders_create_2026-07.json")
    assert post_webhook(client, "orders/create", payload, "g-1").status_code == 200
    run_jobs(rt)

    batch_requests = [r for r in fake_customerio.requests if r["path"] == "/api/v2/batch"]
    assert len(batch_requests) == 1
    request = batch_requests[0]
    assert request["site_id"] == SITE_ID
    assert (
        request["authorization"]
        == "Basic " + base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
    )
    identify, track = request["ops"]
    customer_id = str(payload["customer"]["id"])
    assert identify["action"] == "identify" and identify["identifiers"] == {"id": customer_id}
    assert identify["attributes"]["email"] == payload["email"].lower()
    assert identify["attributes"]["orders_count"] == 1
    assert track["action"] == "event" and track["name"] == "order_placed"
    assert track["identifiers"] == {"id": customer_id}
    assert track["id"] == stable_event_id(SHOP, "order_placed", str(payload["id"]))
    shopper_time = datetime.fromisoformat(payload["processed_at"]).astimezone(UTC)
    assert track["timestamp"] == int(shopper_time.timestamp())
    properties = track["attributes"]
    assert properties["order_id"] == str(payload["id"])
    assert properties["is_first_order"] is True
    assert isinstance(properties["revenue"], float)
    assert properties["currency"] == "USD"
    [stored] = events(rt)
    assert stored.status == "delivered" and stored.attempts == 1
    assert stored.sent_track == track


def test_redeliveries_and_other_order_topics_give_one_order_placed(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    payload = sample("orders_create_2026-07.json")
    for _ in range(5):
        post_webhook(client, "orders/create", payload, "same-id")
    updated = {**payload, "financial_status": "paid", "updated_at": "2026-07-14T11:00:00-04:00"}
    post_webhook(client, "orders/paid", updated, "paid-1")
    post_webhook(client, "orders/updated", updated, "updated-1")
    post_webhook(client, "orders/updated", updated, "updated-2")
    run_jobs(rt)
    stored = events(rt)
    assert [e.name for e in stored] == ["order_placed"]
    assert len(fake_customerio.events_named("order_placed")) == 1
    assert fake_customerio.duplicate_events == 0
    with rt.sessions() as session:
        rows = session.scalars(select(WebhookDelivery)).all()
    assert len(rows) == 4 and all(row.event_id == stored[0].id for row in rows)


def test_later_order_processed_first_is_not_the_first_order(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    base = sample("orders_create_2026-07.json")
    earlier = the_order(base, 9001, "2026-07-14T10:00:00-04:00", customer_id=777)
    later = the_order(base, 9002, "2026-07-14T10:05:00-04:00", customer_id=777)
    post_webhook(client, "orders/create", later, "later")  # arrives first
    post_webhook(client, "orders/create", earlier, "earlier")
    # Two workers pick the shop's inbox up at the same moment.
    threads = [threading.Thread(target=process_inbox, args=(SHOP,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run_jobs(rt)
    firsts = {e.natural_key: e.properties["is_first_order"] for e in events(rt)}
    assert firsts == {"9001": True, "9002": False}
    sent = {
        e["attributes"]["order_id"]: e["attributes"]["is_first_order"]
        for e in fake_customerio.events_named("order_placed")
    }
    assert sent == firsts


def test_payload_order_count_decides_on_old_api_versions(
    client: FlaskClient, rt: Runtime, shop: str
) -> None:
    payload = sample("orders_create_2024-01.json")  # customer.orders_count == 3
    post_webhook(client, "orders/create", payload, "old-1")
    run_jobs(rt)
    [stored] = events(rt)
    assert stored.properties["is_first_order"] is False


def test_guest_with_email_only_is_identified_by_email(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    payload = sample("orders_create_guest_email_only.json")
    post_webhook(client, "orders/create", payload, "guest-1")
    run_jobs(rt)
    [track] = fake_customerio.events_named("order_placed")
    assert track["identifiers"] == {"email": payload["email"].strip().lower()}


def test_pos_order_without_customer_or_email_is_unidentifiable_and_not_sent(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "orders/create", sample("orders_create_pos_anonymous.json"), "pos-1")
    run_jobs(rt)
    [stored] = events(rt)
    assert stored.status == "unidentifiable"
    assert "no customer id and no email" in (stored.reason or "")
    assert fake_customerio.events == []


def test_anonymous_checkout_reaches_the_person_once_identified(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    anonymous = sample("checkouts_create_anonymous.json")
    post_webhook(client, "checkouts/create", anonymous, "chk-1")
    run_jobs(rt)
    [held] = events(rt)
    assert held.status == "waiting_for_identity" and fake_customerio.events == []

    with_email = sample("checkouts_update_with_email.json")
    assert with_email["token"] == anonymous["token"]
    post_webhook(client, "checkouts/update", with_email, "chk-2")
    post_webhook(client, "checkouts/update", with_email, "chk-3")
    run_jobs(rt)
    [track] = fake_customerio.events_named("checkout_started")
    assert track["identifiers"] == {"email": with_email["email"].lower()}
    assert track["id"] == held.id
    created = datetime.fromisoformat(anonymous["created_at"]).astimezone(UTC)
    assert track["timestamp"] == int(created.timestamp())
    assert track["attributes"]["recovery_url"] == anonymous["abandoned_checkout_url"]
    assert [e.status for e in events(rt)] == ["delivered"]


def test_multi_currency_order_keeps_both_currencies_as_numbers(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    payload = sample("orders_create_multicurrency.json")
    post_webhook(client, "orders/create", payload, "fx-1")
    run_jobs(rt)
    [track] = fake_customerio.events_named("order_placed")
    properties = track["attributes"]
    assert properties["currency"] == payload["presentment_currency"]
    assert properties["shop_currency"] == payload["currency"]
    presentment = payload["total_price_set"]["presentment_money"]["amount"]
    shop_money = payload["total_price_set"]["shop_money"]["amount"]
    assert properties["revenue"] == float(presentment)
    assert properties["shop_revenue"] == float(shop_money)
    assert all(isinstance(item["price"], float) for item in properties["items"])


def test_spec_violation_is_kept_with_its_reason_and_not_sent(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    payload = sample("orders_create_2026-07.json")
    for field in ("currency", "presentment_currency"):
        payload.pop(field, None)
    for key in list(payload):
        if key.endswith("_set"):
            payload.pop(key)
    post_webhook(client, "orders/create", payload, "bad-1")
    run_jobs(rt)
    [stored] = events(rt)
    assert stored.status == "quarantined"
    assert "order_placed.currency: missing" in (stored.violations or [])
    assert fake_customerio.events == []


def test_test_orders_are_excluded_unless_the_shop_includes_them(
    client: FlaskClient, rt: Runtime, shop: str
) -> None:
    payload = {**sample("orders_create_2026-07.json"), "test": True}
    post_webhook(client, "orders/create", payload, "test-1")
    run_jobs(rt)
    assert events(rt) == []
    add_shop(rt, SHOP, include_test_orders=True)
    post_webhook(client, "orders/create", payload, "test-2")
    run_jobs(rt)
    assert len(events(rt)) == 1


def test_shop_that_places_orders_on_paid_waits_for_payment(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    add_shop(rt, SHOP, order_topic="orders/paid")
    payload = {**sample("orders_create_2026-07.json"), "financial_status": "pending"}
    post_webhook(client, "orders/create", payload, "p-1")
    run_jobs(rt)
    assert events(rt) == []
    post_webhook(client, "orders/paid", {**payload, "financial_status": "paid"}, "p-2")
    run_jobs(rt)
    assert [e.status for e in events(rt)] == ["delivered"]
    assert len(fake_customerio.events_named("order_placed")) == 1
