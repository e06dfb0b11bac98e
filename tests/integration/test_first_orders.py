"""`is_first_order` when the ledger cannot simply take the first order that comes: a shop
whose history nobody told the connector, and an earlier order mapped after a later one.

(Guest-then-account and account-then-guest are in test_one_person.py; two new orders in one
batch while Shopify already counts both in test_history.py.)
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.storage.models import CustomerLedger, Event
from jobs.tasks import process_inbox
from tests.support import (
    API_KEY,
    SHOP,
    SITE_ID,
    add_shop,
    invoke_cli,
    make_order,
    post_webhook,
    run_jobs,
)


def order(order_id: int, when: str, customer_id: int, account_created: str) -> dict[str, Any]:
    """An order of the 2026 API (no customer.orders_count) by `customer_id`."""
    return make_order(
        order_id,
        when=when,
        customer={"id": customer_id, "orders_count": None, "created_at": account_created},
    )


def sent_flags(fake: FakeCustomerIO) -> dict[str, bool]:
    return {
        str(e["attributes"]["order_id"]): e["attributes"]["is_first_order"]
        for e in fake.events_named("order_placed")
    }


def stored_flags(rt: Runtime) -> dict[str, bool]:
    with rt.sessions() as session:
        found = session.scalars(select(Event).where(Event.name == "order_placed")).all()
        return {e.natural_key: e.properties["is_first_order"] for e in found}


def test_without_a_token_or_history_a_returning_customers_order_is_not_first(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    # Added with `connector shops add`: no Admin API token, history never imported.
    add_shop(rt, SHOP, history_imported_at=None)
    # The account is eight months old: Shopify knows orders the connector does not.
    returning = order(951, "2026-07-14T10:00:00Z", 601, "2025-11-02T18:40:12Z")
    post_webhook(client, "orders/create", returning, "r-1")
    run_jobs(rt)

    assert sent_flags(fake_customerio) == {"951": False}
    with rt.sessions() as session:
        held = session.get(CustomerLedger, (SHOP, "601"))
        assert held is not None and held.first_order_id == "(before the connector)"


def test_without_a_token_or_history_an_account_created_with_its_order_is_first(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    add_shop(rt, SHOP, history_imported_at=None)
    # The account was created at checkout, two minutes before the order.
    new = order(952, "2026-07-14T10:00:00Z", 602, "2026-07-14T09:58:00Z")
    again = order(953, "2026-07-15T10:00:00Z", 602, "2026-07-14T09:58:00Z")
    post_webhook(client, "orders/create", new, "n-1")
    run_jobs(rt)
    post_webhook(client, "orders/create", again, "n-2")
    run_jobs(rt)

    assert sent_flags(fake_customerio) == {"952": True, "953": False}


def test_with_imported_history_an_unknown_customer_is_first(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    add_shop(rt, SHOP)  # history imported: a customer the ledger lacks never ordered before
    unknown = order(954, "2026-07-14T10:00:00Z", 603, "2025-11-02T18:40:12Z")
    post_webhook(client, "orders/create", unknown, "h")
    run_jobs(rt)

    assert sent_flags(fake_customerio) == {"954": True}


def test_an_earlier_order_mapped_later_becomes_first_while_the_later_one_is_unsent(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    later = order(962, "2026-07-14T12:00:00Z", 611, "2026-07-14T09:00:00Z")
    earlier = order(961, "2026-07-14T10:00:00Z", 611, "2026-07-14T09:00:00Z")
    post_webhook(client, "orders/create", later, "l-1")
    process_inbox(SHOP)  # one batch: the later order is mapped, first, not sent yet
    assert stored_flags(rt) == {"962": True}
    post_webhook(client, "orders/create", earlier, "e-1")
    process_inbox(SHOP)  # another batch: the earlier one takes over
    run_jobs(rt)

    assert stored_flags(rt) == {"961": True, "962": False}
    assert sent_flags(fake_customerio) == {"961": True, "962": False}
    with rt.sessions() as session:
        held = session.get(CustomerLedger, (SHOP, "611"))
        assert held is not None and held.first_order_id == "961"


def test_an_earlier_order_mapped_after_the_later_one_was_sent_is_not_first(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    later = order(972, "2026-07-14T12:00:00Z", 621, "2026-07-14T09:00:00Z")
    earlier = order(971, "2026-07-14T10:00:00Z", 621, "2026-07-14T09:00:00Z")
    post_webhook(client, "orders/create", later, "l-2")
    run_jobs(rt)  # the later order reached Customer.io as the first
    post_webhook(client, "orders/create", earlier, "e-2")
    run_jobs(rt)

    # Customer.io keeps the first version of an event: one first order per person.
    assert sent_flags(fake_customerio) == {"972": True, "971": False}
    assert stored_flags(rt) == {"972": True, "971": False}


def test_an_earlier_order_does_not_take_over_from_a_later_one_being_retried(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    later = order(982, "2026-07-14T12:00:00Z", 631, "2026-07-14T09:00:00Z")
    earlier = order(981, "2026-07-14T10:00:00Z", 631, "2026-07-14T09:00:00Z")
    fake_customerio.drop_next(1)  # the outcome is unknown: it may have landed
    post_webhook(client, "orders/create", later, "l-3")
    run_jobs(rt)
    assert stored_flags(rt) == {"982": True}
    post_webhook(client, "orders/create", earlier, "e-3")
    process_inbox(SHOP)

    assert stored_flags(rt) == {"982": True, "981": False}


def test_shops_add_new_store_declares_the_history_known(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    def add(shop: str, *flags: str) -> None:
        args = ("shops", "add", shop, "--site-id", SITE_ID, "--api-key", API_KEY, *flags)
        assert invoke_cli(rt, *args).returncode == 0

    add(SHOP, "--new-store")
    add("other-shop.myshopify.com")
    long_ago = "2025-11-02T18:40:12Z"  # the accounts are older than their orders
    for shop, order_id in ((SHOP, 991), ("other-shop.myshopify.com", 992)):
        post_webhook(
            client,
            "orders/create",
            order(order_id, "2026-07-14T10:00:00Z", 641, long_ago),
            f"s-{order_id}",
            shop=shop,
        )
    run_jobs(rt)

    assert sent_flags(fake_customerio) == {"991": True, "992": False}
