"""app/uninstalled and the privacy webhooks, end to end: signed post -> worker -> database."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.statuses import EventStatus
from connector.storage.models import (
    CustomerLedger,
    CustomerOrder,
    DeliveryAttempt,
    Event,
    PrivacyExport,
    Shop,
    ShopperConsent,
    ShopperEmail,
    WebhookDelivery,
)
from tests.fakes.shopify import FakeShopify
from tests.fakes.shopify_install import install
from tests.support import API_KEY, SITE_ID, add_shop, make_order, post_webhook, run_jobs, sample

pytestmark = pytest.mark.shopify

SHOP = "acme-store.myshopify.com"


def order(order_id: int, customer_id: int, email: str, when: str) -> dict[str, Any]:
    return make_order(
        order_id,
        when=when,
        email=email,
        customer={"id": customer_id, "email": email},
        rename_shopper=email != "a@example.com",  # the sample's shopper is Maya Chen
    )


def installed(client: FlaskClient, rt: Runtime) -> None:
    install(client, SHOP)
    add_shop(rt, SHOP)  # Customer.io settings, as the settings page saves them
    run_jobs(rt)  # the history import queued by the install (empty history)


def test_uninstall_stops_sending_and_reinstall_resumes(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO, fake_shopify: FakeShopify
) -> None:
    installed(client, rt)
    post_webhook(
        client,
        "orders/create",
        order(1001, 501, "a@example.com", "2026-07-01T10:00:00Z"),
        "e-1",
        SHOP,
    )
    run_jobs(rt)
    assert len(fake_customerio.events_named("order_placed")) == 1

    assert (
        post_webhook(client, "app/uninstalled", {"id": 1, "domain": SHOP}, "u-1", SHOP).status_code
        == 200
    )
    run_jobs(rt)
    with rt.sessions() as session:
        shop = session.get(Shop, SHOP)
        assert shop is not None and shop.status == "uninstalled"
        assert shop.shopify_access_token_encrypted is None
        assert shop.shopify_refresh_token_encrypted is None
    post_webhook(
        client,
        "orders/create",
        order(1002, 502, "b@example.com", "2026-07-02T10:00:00Z"),
        "e-2",
        SHOP,
    )
    run_jobs(rt)
    assert len(fake_customerio.events_named("order_placed")) == 1  # nothing more is sent
    with rt.sessions() as session:
        waiting = session.scalars(select(Event).where(Event.natural_key == "1002")).one()
        assert waiting.status == EventStatus.PENDING

    install(client, SHOP)
    run_jobs(rt)
    assert len(fake_customerio.events_named("order_placed")) == 2
    with rt.sessions() as session:
        shop = session.get(Shop, SHOP)
        assert shop is not None and shop.status == "active" and shop.cio_site_id == SITE_ID


def test_pending_events_are_marked_while_the_shop_is_uninstalled(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    installed(client, rt)
    fake_customerio.set_credentials(
        SITE_ID, "rotated"
    )  # deliveries fail with 401 and stay pending?
    fake_customerio.set_credentials(SITE_ID, API_KEY)
    fake_customerio.fail_next(5, 503)
    post_webhook(
        client,
        "orders/create",
        order(1003, 503, "c@example.com", "2026-07-03T10:00:00Z"),
        "e-3",
        SHOP,
    )
    run_jobs(rt)
    post_webhook(client, "app/uninstalled", {"id": 1, "domain": SHOP}, "u-2", SHOP)
    run_jobs(rt)
    with rt.sessions() as session:
        event = session.scalars(select(Event).where(Event.natural_key == "1003")).one()
        assert event.status == EventStatus.PENDING and event.reason == "waiting: shop uninstalled"
    install(client, SHOP)
    with rt.sessions() as session:
        event = session.scalars(select(Event).where(Event.natural_key == "1003")).one()
        assert event.reason != "waiting: shop uninstalled"


def privacy_body(customer_id: int, email: str, **extra: Any) -> dict[str, Any]:
    return {
        "shop_id": 954889,
        "shop_domain": SHOP,
        "customer": {"id": customer_id, "email": email, "phone": "+15555550123"},
        **extra,
    }


def test_privacy_webhooks_are_answered_at_once_and_done_on_a_worker(
    client: FlaskClient, rt: Runtime
) -> None:
    installed(client, rt)
    body = privacy_body(501, "a@example.com", orders_requested=[1001], data_request={"id": 9})
    answer = post_webhook(client, "customers/data_request", body, "p-1", SHOP)
    assert answer.status_code == 200 and answer.get_json()["status"] == "accepted"
    with rt.sessions() as session:
        assert session.scalars(select(PrivacyExport)).all() == []
        row = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.topic == "customers/data_request")
        ).one()
        assert row.resource_key == "501" and row.state == "received"
    run_jobs(rt)
    with rt.sessions() as session:
        assert len(session.scalars(select(PrivacyExport)).all()) == 1


def test_data_request_is_stored_for_the_merchant_and_listed(
    client: FlaskClient, rt: Runtime
) -> None:
    installed(client, rt)
    post_webhook(
        client,
        "orders/create",
        order(1001, 501, "a@example.com", "2026-07-01T10:00:00Z"),
        "e-1",
        SHOP,
    )
    post_webhook(
        client,
        "orders/create",
        order(1009, 509, "z@example.com", "2026-07-01T11:00:00Z"),
        "e-9",
        SHOP,
    )
    body = privacy_body(501, "a@example.com", orders_requested=[1001], data_request={"id": 9})
    post_webhook(client, "customers/data_request", body, "p-1", SHOP)
    run_jobs(rt)

    page = client.get("/settings").get_data(as_text=True)
    link = re.search(r'href="(/settings/privacy/\d+)"', page)
    assert link, page
    download = client.get(link.group(1))
    assert download.status_code == 200
    content = json.loads(download.get_data(as_text=True))
    assert [e["properties"]["order_id"] for e in content["events"]] == ["1001"]
    assert content["events"][0]["person"]["email"] == "a@example.com"
    assert "z@example.com" not in download.get_data(as_text=True)
    assert [o["order_id"] for o in content["orders_known"]] == ["1001"]

    stranger = client.application.test_client()
    assert stranger.get(link.group(1)).status_code == 401


PERSONAL = ("a@example.com", "Maya", "Chen", "+15555550123")


def personal_data_left(rt: Runtime, needles: tuple[str, ...] = PERSONAL) -> list[str]:
    """Every stored text value in the connector's tables that still holds a needle."""
    found = []
    with rt.engine.connect() as conn:
        for table in (
            "webhook_deliveries",
            "events",
            "delivery_attempts",
            "customer_ledger",
            "customer_orders",
            "privacy_exports",
            "shopper_emails",
            "shopper_consents",
        ):
            for row in conn.execute(text(f"SELECT * FROM {table}")):  # noqa: S608 - fixed names
                blob = json.dumps([str(v) for v in row]).lower()
                found += [f"{table}: {n}" for n in needles if n.lower() in blob]
    return found


def test_redact_erases_the_customer_everywhere_and_redeliveries_do_not_bring_it_back(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    installed(client, rt)
    first = order(1001, 501, "a@example.com", "2026-07-01T10:00:00Z")
    post_webhook(client, "orders/create", first, "e-1", SHOP)
    post_webhook(client, "orders/updated", first, "e-1u", SHOP)
    post_webhook(
        client,
        "orders/create",
        order(1002, 501, "a@example.com", "2026-07-05T10:00:00Z"),
        "e-2",
        SHOP,
    )
    other = order(1009, 509, "z@example.com", "2026-07-01T11:00:00Z")
    post_webhook(client, "orders/create", other, "e-9", SHOP)
    post_webhook(
        client,
        "customers/data_request",
        privacy_body(501, "a@example.com", data_request={"id": 1}),
        "p-0",
        SHOP,
    )
    run_jobs(rt)
    assert len(fake_customerio.events_named("order_placed")) == 3
    assert personal_data_left(rt)  # it was there

    body = privacy_body(501, "a@example.com", orders_to_redact=[1001, 1002])
    post_webhook(client, "customers/redact", body, "p-1", SHOP)
    run_jobs(rt)

    assert personal_data_left(rt) == []
    with rt.sessions() as session:
        events = {e.natural_key: e for e in session.scalars(select(Event)).all()}
        assert set(events) == {"1001", "1002", "1009"}  # ids kept for dedupe
        assert events["1001"].person == {} and events["1001"].status == EventStatus.DELIVERED
        assert events["1009"].email == "z@example.com"  # another customer is untouched
        assert session.get(CustomerLedger, (SHOP, "509")) is not None
        assert session.get(CustomerLedger, (SHOP, "501")) is None
        keys = session.scalars(select(CustomerOrder.person_key)).all()
        assert sorted(k.startswith("redacted:") for k in keys) == [False, True, True]
        assert all(
            a.excerpt is None
            for a in session.scalars(select(DeliveryAttempt)).all()
            if a.event_id in (events["1001"].id, events["1002"].id)
        )

    # Shopify redelivers the old webhooks, with their old and with new event ids.
    assert (
        post_webhook(client, "orders/create", first, "e-1", SHOP).get_json()["status"]
        == "duplicate"
    )
    post_webhook(client, "orders/updated", first, "e-1-again", SHOP)
    post_webhook(
        client,
        "checkouts/update",
        {
            **sample("checkouts_update_with_email.json"),
            "email": "a@example.com",
            "customer": {"id": 501, "email": "a@example.com"},
        },
        "c-1",
        SHOP,
    )
    run_jobs(rt)
    assert personal_data_left(rt) == []
    assert len(fake_customerio.events_named("order_placed")) == 3
    assert fake_customerio.events_named("checkout_started") == []


def test_shop_redact_erases_the_shops_data_only(client: FlaskClient, rt: Runtime) -> None:
    installed(client, rt)
    add_shop(rt, "other-store.myshopify.com")
    post_webhook(
        client,
        "orders/create",
        order(1001, 501, "a@example.com", "2026-07-01T10:00:00Z"),
        "e-1",
        SHOP,
    )
    post_webhook(
        client,
        "orders/create",
        order(2001, 601, "o@example.com", "2026-07-01T10:00:00Z"),
        "e-1",
        "other-store.myshopify.com",
    )
    run_jobs(rt)

    post_webhook(client, "shop/redact", {"shop_id": 954889, "shop_domain": SHOP}, "s-1", SHOP)
    run_jobs(rt)

    with rt.sessions() as session:
        assert session.get(Shop, SHOP) is None
        for model in (Event, CustomerLedger, CustomerOrder):
            shops = set(session.scalars(select(model.shop_domain)).all())
            assert shops == {"other-store.myshopify.com"}
        left = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.shop_domain == SHOP)
        ).all()
        assert [row.topic for row in left] == ["shop/redact"]


def test_redact_forgets_the_customers_profile_consent_and_email_link(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    installed(client, rt)
    profile = {
        **sample("customers_update_2026-07.json"),
        "id": 501,
        "email": "a@example.com",
        "phone": "+15555550123",
    }
    post_webhook(client, "customers/update", profile, "cu-1", SHOP)
    post_webhook(
        client,
        "orders/create",
        order(1001, 501, "a@example.com", "2026-07-01T10:00:00Z"),
        "e-1",
        SHOP,
    )
    run_jobs(rt)
    with rt.sessions() as session:
        assert session.get(ShopperConsent, (SHOP, "501", "email")) is not None
    assert personal_data_left(rt)

    post_webhook(client, "customers/redact", privacy_body(501, "a@example.com"), "p-1", SHOP)
    run_jobs(rt)

    assert personal_data_left(rt) == []
    with rt.sessions() as session:
        assert session.scalars(select(ShopperConsent)).all() == []
        assert session.scalars(select(ShopperEmail)).all() == []
    # A later change of the record (with a new email) is about a redacted customer too.
    sent = len(fake_customerio.identifies)
    changed = {**profile, "email": "new@example.com", "updated_at": "2026-07-21T10:00:00Z"}
    post_webhook(client, "customers/update", changed, "cu-2", SHOP)
    run_jobs(rt)
    assert len(fake_customerio.identifies) == sent
    assert personal_data_left(rt, ("new@example.com",)) == []
