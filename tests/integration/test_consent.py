"""Marketing consent reaches Customer.io, and the newest consent wins.

Orders arrive out of order and are replayed; an older order must never flip a newer
consent back (an unsubscribed shopper re-subscribed by an old order is a compliance bug).
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from tests.support import make_order, post_webhook, run_jobs

CUSTOMER = 601


def order(order_id: int, when: str, consent: str | None, consent_at: str, **fields: Any) -> dict:
    customer: dict[str, Any] = {"id": CUSTOMER, "orders_count": None}
    if consent is not None:
        customer["email_marketing_consent"] = {
            "state": consent,
            "opt_in_level": "single_opt_in",
            "consent_updated_at": consent_at,
        }
    return make_order(order_id, when=when, customer=customer, **fields)


def identify(fake: FakeCustomerIO) -> dict[str, Any]:
    return dict(fake.identifies[-1]["attributes"])


def test_the_newest_consent_wins_whatever_order_the_webhooks_come_in(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    first = order(901, "2026-07-10T10:00:00Z", "subscribed", "2026-07-10T10:00:00Z")
    post_webhook(client, "orders/create", first, "cs-1")
    run_jobs(rt)
    sent = identify(fake_customerio)
    assert (sent["email_marketing_consent"], sent["accepts_marketing"]) == ("subscribed", True)
    assert "unsubscribed" not in sent

    opted_out = order(902, "2026-07-12T10:00:00Z", "unsubscribed", "2026-07-11T09:00:00Z")
    post_webhook(client, "orders/create", opted_out, "cs-2")
    run_jobs(rt)
    sent = identify(fake_customerio)
    assert (sent["email_marketing_consent"], sent["accepts_marketing"]) == ("unsubscribed", False)
    assert sent["unsubscribed"] is True

    late = order(903, "2026-07-09T10:00:00Z", "subscribed", "2026-07-09T10:00:00Z")
    post_webhook(client, "orders/create", late, "cs-3")  # an older order, processed last
    run_jobs(rt)
    sent = identify(fake_customerio)
    assert (sent["email_marketing_consent"], sent["unsubscribed"]) == ("unsubscribed", True)


def test_an_unticked_box_does_not_unsubscribe_and_sms_consent_is_sent(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    ticked = order(
        911,
        "2026-07-10T10:00:00Z",
        None,
        "",
        buyer_accepts_marketing=True,
        buyer_accepts_sms_marketing=True,
    )
    post_webhook(client, "orders/create", ticked, "bx-1")
    run_jobs(rt)
    unticked = order(912, "2026-07-11T10:00:00Z", None, "", buyer_accepts_marketing=False)
    post_webhook(client, "orders/create", unticked, "bx-2")
    run_jobs(rt)

    sent = identify(fake_customerio)
    assert (sent["accepts_marketing"], sent["email_marketing_consent"]) == (True, "subscribed")
    assert (sent["accepts_sms_marketing"], sent["sms_marketing_consent"]) == (True, "subscribed")
