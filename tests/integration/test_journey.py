"""The cart-recovery journey as a retention marketer relies on it: one shopper, one profile.

A recovery journey triggers on checkout_started and is suppressed by order_placed on the
same person. The fake Customer.io resolves identifiers the way a workspace with id and
email identifiers does (an email-only person identified later by an id with that email
becomes that id's person), so these tests fail if the two events land on two profiles.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from tests.support import make_order, post_webhook, run_jobs, sample

CUSTOMER_ID = 8_800_001


def purchase_of(checkout: dict[str, Any]) -> dict[str, Any]:
    """The order the shopper of `checkout` placed from it, with a new customer account."""
    email = checkout["email"]
    return make_order(
        6_600_001,
        when="2026-07-16T21:30:00-04:00",
        email=email,
        checkout_token=checkout["token"],
        customer={"id": CUSTOMER_ID, "email": email.lower(), "orders_count": 1},
        rename_shopper=True,
    )


def test_anonymous_checkout_then_email_then_order_land_on_one_profile(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "checkouts/create", sample("checkouts_create_anonymous.json"), "j-1")
    run_jobs(rt)
    assert fake_customerio.events == []  # held: no email yet

    with_email = sample("checkouts_update_with_email.json")
    post_webhook(client, "checkouts/update", with_email, "j-2")
    run_jobs(rt)
    assert [e["name"] for e in fake_customerio.events] == ["checkout_started"]

    post_webhook(client, "orders/create", purchase_of(with_email), "j-3")
    run_jobs(rt)
    profile = fake_customerio.profile_of(email=with_email["email"])
    assert profile is not None
    assert profile.id == str(CUSTOMER_ID)  # the email-only person got the customer id
    assert profile.events == ["checkout_started", "order_placed"]
    assert len(fake_customerio.profiles) == 1
