"""One person per shopper: the ledger and Customer.io know a customer by id and by email.

A guest order or checkout with the email of a known customer goes to that customer's id,
and a customer who first bought as a guest is not "first" again on their account.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from tests.support import make_order, post_webhook, run_jobs, sample


def guest_order(order_id: int, email: str, when: str) -> dict[str, Any]:
    """An order without a customer record (Shopify's older guest checkouts, some apps)."""
    order = make_order(order_id, when=when, email=email, rename_shopper=True)
    order.pop("customer")
    return order


def account_order(order_id: int, customer_id: int, email: str, when: str) -> dict[str, Any]:
    return make_order(
        order_id,
        when=when,
        email=email,
        customer={"id": customer_id, "email": email.lower(), "orders_count": None},
        rename_shopper=True,
    )


def placed(fake: FakeCustomerIO) -> dict[str, tuple[dict[str, str], bool]]:
    return {
        str(e["attributes"]["order_id"]): (e["identifiers"], e["attributes"]["is_first_order"])
        for e in fake.events_named("order_placed")
    }


def test_a_guest_order_with_a_customers_email_goes_to_that_customer_and_is_not_first(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(
        client,
        "orders/create",
        account_order(801, 501, "ana@example.com", "2026-07-01T10:00:00Z"),
        "p-1",
    )
    run_jobs(rt)
    post_webhook(
        client, "orders/create", guest_order(802, "Ana@Example.com", "2026-07-02T10:00:00Z"), "p-2"
    )
    run_jobs(rt)

    assert placed(fake_customerio) == {
        "801": ({"id": "501"}, True),
        "802": ({"id": "501"}, False),
    }
    assert fake_customerio.people["501"]["orders_count"] == 2
    profile = fake_customerio.profile_of(id="501")
    assert profile is not None and profile.events == ["order_placed", "order_placed"]
    assert len(fake_customerio.profiles) == 1


def test_a_customer_who_first_bought_as_a_guest_is_not_first_on_their_account(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(
        client, "orders/create", guest_order(811, "ben@example.com", "2026-07-01T10:00:00Z"), "g-1"
    )
    run_jobs(rt)
    post_webhook(
        client,
        "orders/create",
        account_order(812, 502, "ben@example.com", "2026-07-02T10:00:00Z"),
        "g-2",
    )
    run_jobs(rt)

    flags = placed(fake_customerio)
    assert flags["811"] == ({"email": "ben@example.com"}, True)
    assert flags["812"] == ({"id": "502"}, False)
    assert fake_customerio.people["502"]["orders_count"] == 2  # the guest order moved over
    profile = fake_customerio.profile_of(email="ben@example.com")
    assert profile is not None and profile.id == "502" and len(profile.events) == 2


def test_both_in_one_batch_decide_the_same_way(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(
        client, "orders/create", guest_order(821, "cy@example.com", "2026-07-01T10:00:00Z"), "b-1"
    )
    post_webhook(
        client,
        "orders/create",
        account_order(822, 503, "cy@example.com", "2026-07-02T10:00:00Z"),
        "b-2",
    )
    run_jobs(rt)

    flags = placed(fake_customerio)
    assert flags["821"] == ({"id": "503"}, True)  # the account is known in the same batch
    assert flags["822"] == ({"id": "503"}, False)


def test_a_guest_checkout_of_a_known_customer_goes_to_the_customer(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    checkout = sample("checkouts_update_with_email.json")
    email = checkout["email"]
    post_webhook(
        client, "orders/create", account_order(831, 504, email, "2026-07-01T10:00:00Z"), "c-1"
    )
    run_jobs(rt)
    post_webhook(client, "checkouts/update", checkout, "c-2")
    run_jobs(rt)

    [started] = fake_customerio.events_named("checkout_started")
    assert started["identifiers"] == {"id": "504"}
