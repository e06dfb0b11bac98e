"""A checkout whose purchase is known is never sent as checkout_started after it.

A cart-recovery journey triggered by a checkout_started that reaches Customer.io after the
purchase never sees the order that would suppress it, and tells a buyer they forgot their
cart. So a purchase (an order placed from the checkout, or the checkout's completed_at)
closes a checkout_started that has not been sent; one already sent stays sent.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from connector.dev.fake_customerio import FakeCustomerIO
from connector.events import EventName, stable_event_id
from connector.runtime import Runtime
from connector.storage.events import get_event
from tests.support import SHOP, make_order, post_webhook, run_jobs, sample

ANONYMOUS = sample("checkouts_create_anonymous.json")
WITH_EMAIL = sample("checkouts_update_with_email.json")
CHECKOUT_ID = stable_event_id(SHOP, EventName.CHECKOUT_STARTED, ANONYMOUS["token"])


def order_from_checkout() -> dict[str, Any]:
    return make_order(
        6_700_001,
        when="2026-07-16T21:30:00-04:00",
        email=WITH_EMAIL["email"],
        checkout_token=ANONYMOUS["token"],
        customer={"id": 8_800_002, "email": WITH_EMAIL["email"].lower()},
        rename_shopper=True,
    )


def checkout_state(rt: Runtime) -> tuple[str, str | None]:
    with rt.sessions() as session:
        checkout = get_event(session, CHECKOUT_ID)
        assert checkout is not None
        return checkout.status, checkout.reason


def sent(fake: FakeCustomerIO) -> list[str]:
    return [event["name"] for event in fake.events]


def test_a_held_checkout_bought_before_its_email_arrives_is_closed_not_sent(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "checkouts/create", ANONYMOUS, "cl-1")
    run_jobs(rt)
    post_webhook(client, "orders/create", order_from_checkout(), "cl-2")
    run_jobs(rt)
    completed = {**WITH_EMAIL, "completed_at": "2026-07-16T21:30:05-04:00"}
    post_webhook(client, "checkouts/update", completed, "cl-3")
    run_jobs(rt)

    assert sent(fake_customerio) == ["order_placed"]
    assert checkout_state(rt) == ("closed", "purchased: order #6700001 was placed from it")


def test_a_checkout_completed_while_held_is_closed(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "checkouts/create", ANONYMOUS, "cc-1")
    run_jobs(rt)
    completed = {**WITH_EMAIL, "completed_at": "2026-07-16T21:30:05-04:00"}
    post_webhook(client, "checkouts/update", completed, "cc-2")
    run_jobs(rt)

    assert sent(fake_customerio) == []
    assert checkout_state(rt) == ("closed", "purchased: the checkout was completed")


def test_an_order_closes_its_checkout_that_was_waiting_to_be_sent(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "checkouts/update", WITH_EMAIL, "cp-1")  # identified: pending
    post_webhook(client, "orders/create", order_from_checkout(), "cp-2")
    run_jobs(rt)  # one batch: the checkout is mapped first (it is older), then the order

    assert sent(fake_customerio) == ["order_placed"]
    assert checkout_state(rt)[0] == "closed"


def test_an_order_arriving_first_closes_the_checkout_identified_later(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "orders/create", order_from_checkout(), "co-1")
    run_jobs(rt)
    post_webhook(client, "checkouts/update", WITH_EMAIL, "co-2")  # no completed_at
    run_jobs(rt)

    assert sent(fake_customerio) == ["order_placed"]
    assert checkout_state(rt) == ("closed", "purchased: order #6700001 was placed from it")


def test_a_checkout_already_sent_stays_sent(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "checkouts/update", WITH_EMAIL, "cs-1")
    run_jobs(rt)
    post_webhook(client, "orders/create", order_from_checkout(), "cs-2")
    completed = {**WITH_EMAIL, "completed_at": "2026-07-16T21:30:05-04:00"}
    post_webhook(client, "checkouts/update", completed, "cs-3")
    run_jobs(rt)

    assert sent(fake_customerio) == ["checkout_started", "order_placed"]
    assert checkout_state(rt)[0] == "delivered"
    profile = fake_customerio.profile_of(email=WITH_EMAIL["email"])
    assert profile is not None and profile.events == ["checkout_started", "order_placed"]
