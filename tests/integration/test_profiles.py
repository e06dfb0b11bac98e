"""Profile and consent changes without an order: customers/create and customers/update
become profile_updated, stored like every event and sent as an identify alone."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from connector.dev.fake_customerio import FakeCustomerIO
from connector.events import EventName
from connector.runtime import Runtime
from connector.spec import load_spec
from connector.statuses import EventStatus
from connector.storage.models import Event
from tests.support import make_order, post_webhook, run_jobs, sample
from webhooks.spec_check import check_payload
from webhooks.topics import SUBSCRIBED_TOPICS, Topic

CUSTOMER = "7234567890123"  # the customer of orders_create_2026-07.json


def customer_update(**fields: Any) -> dict[str, Any]:
    payload = sample("customers_update_2026-07.json")
    payload.update(fields)
    return payload


def identifies_of(fake: FakeCustomerIO, person: str) -> list[dict[str, Any]]:
    return [i["attributes"] for i in fake.identifies if i["identifiers"] == {"id": person}]


def profile_events(rt: Runtime) -> list[Event]:
    with rt.sessions() as session:
        query = select(Event).where(Event.name == EventName.PROFILE_UPDATED)
        return list(session.scalars(query).all())


def test_a_customer_update_is_an_identify_alone_with_consent_phone_and_created_at(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "customers/update", customer_update(), "cu-1")
    run_jobs(rt)

    assert fake_customerio.events == []  # nothing tracked
    [identify] = fake_customerio.identifies
    assert identify["identifiers"] == {"id": CUSTOMER}
    assert identify["timestamp"] == 1784553125  # the record's updated_at
    attributes = identify["attributes"]
    assert attributes["email"] == "maya.chen@example.com"
    assert attributes["phone"] == "+15035550187"
    assert attributes["created_at"] == 1762123212  # 2025-11-02T18:40:12-04:00
    assert attributes["email_marketing_consent"] == "unsubscribed"
    assert attributes["accepts_marketing"] is False
    assert attributes["unsubscribed"] is True
    assert attributes["sms_marketing_consent"] == "subscribed"
    assert attributes["accepts_sms_marketing"] is True
    # The connector knows none of her orders: no count, rather than a 0.
    assert "orders_count" not in attributes and "total_spent" not in attributes
    [stored] = profile_events(rt)
    assert stored.status == EventStatus.DELIVERED
    assert stored.sent_identify is not None and stored.sent_track is None


def test_a_customer_update_carries_the_order_count_the_connector_knows(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "orders/create", make_order(4101, when="2026-07-14T14:21:37Z"), "o-1")
    run_jobs(rt)
    post_webhook(client, "customers/update", customer_update(), "cu-2")
    run_jobs(rt)

    *_, after = identifies_of(fake_customerio, CUSTOMER)
    assert after["orders_count"] == 1
    assert after["total_spent"] == fake_customerio.events[0]["attributes"]["revenue"]
    assert after["email_marketing_consent"] == "unsubscribed"


def test_an_older_order_processed_after_an_unsubscribe_does_not_resubscribe(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "customers/update", customer_update(), "cu-3")
    run_jobs(rt)
    # Placed (and ticked "email me") before she unsubscribed, but processed after.
    old = make_order(
        4102,
        when="2026-07-19T10:00:00Z",
        buyer_accepts_marketing=True,
        customer={"email_marketing_consent": {"state": "subscribed"}},
    )
    post_webhook(client, "orders/create", old, "o-2")
    run_jobs(rt)

    *_, latest = identifies_of(fake_customerio, CUSTOMER)
    assert latest["email_marketing_consent"] == "unsubscribed"
    assert latest["accepts_marketing"] is False
    assert latest["orders_count"] == 1


def test_a_newer_resubscribe_wins_over_the_stored_unsubscribe(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "customers/update", customer_update(), "cu-4")
    run_jobs(rt)
    again = customer_update(
        updated_at="2026-07-25T09:00:00-04:00",
        email_marketing_consent={
            "state": "subscribed",
            "opt_in_level": "single_opt_in",
            "consent_updated_at": "2026-07-25T08:59:00-04:00",
        },
    )
    post_webhook(client, "customers/update", again, "cu-5")
    run_jobs(rt)

    first, second = identifies_of(fake_customerio, CUSTOMER)
    assert first["email_marketing_consent"] == "unsubscribed"
    assert second["email_marketing_consent"] == "subscribed"
    assert "unsubscribed" not in second  # never sent as false
    assert len(profile_events(rt)) == 2


def test_the_same_change_redelivered_is_one_profile_update(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "customers/update", customer_update(), "cu-6")
    run_jobs(rt)
    # Shopify sends the same record again under another event id.
    post_webhook(client, "customers/update", customer_update(), "cu-6-again")
    run_jobs(rt)

    assert len(profile_events(rt)) == 1
    assert len(fake_customerio.identifies) == 1


def test_a_new_customers_email_links_their_later_guest_checkout(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    checkout = sample("checkouts_update_with_email.json")
    created = customer_update(id=5150, email=checkout["email"], phone=None)
    post_webhook(client, "customers/create", created, "cc-1")
    post_webhook(client, "checkouts/update", checkout, "ck-1")
    run_jobs(rt)

    [started] = fake_customerio.events_named("checkout_started")
    assert started["identifiers"] == {"id": "5150"}


def test_customer_topics_are_subscribed_and_spec_check_says_identify_only() -> None:
    assert {Topic.CUSTOMERS_CREATE, Topic.CUSTOMERS_UPDATE} <= set(SUBSCRIBED_TOPICS)
    checked, violations = check_payload(load_spec(), customer_update(), "customers/update")
    assert violations == []
    assert [event["name"] for event in checked] == ["profile_updated"]
    assert checked[0]["person_id"] == CUSTOMER


def test_a_customer_with_a_phone_and_no_email_is_sent_by_id_with_the_phone(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    phone_only = make_order(
        4103,
        when="2026-07-14T14:21:37Z",
        email=None,
        contact_email=None,
        phone="+15035550111",
        customer={"id": 5160, "email": None, "phone": "+15035550111"},
    )
    post_webhook(client, "orders/create", phone_only, "o-3")
    run_jobs(rt)

    [placed] = fake_customerio.events_named("order_placed")
    assert placed["identifiers"] == {"id": "5160"}
    [identify] = identifies_of(fake_customerio, "5160")
    assert identify["phone"] == "+15035550111"
    assert "email" not in identify


def test_a_phone_only_guest_without_a_customer_is_not_sent(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    guest = make_order(
        4104, when="2026-07-14T14:21:37Z", email=None, contact_email=None, phone="+15035550112"
    )
    guest.pop("customer")
    post_webhook(client, "orders/create", guest, "o-4")
    run_jobs(rt)

    assert fake_customerio.events == [] and fake_customerio.identifies == []
    with rt.sessions() as session:
        [stored] = session.scalars(select(Event).where(Event.natural_key == "4104")).all()
        assert stored.status == EventStatus.UNIDENTIFIABLE
