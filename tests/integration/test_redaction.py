"""customers/redact leaves nothing of the customer behind, on SQLite and PostgreSQL: every
stored value of every table is read back, and on SQLite the database and WAL files' bytes."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from flask.testing import FlaskClient
from sqlalchemy import select, text

from connector.crypto import keyed, tombstone, tombstone_key, unkeyed_digest
from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.statuses import EventStatus, InboxState
from connector.storage.db import alembic_config, make_engine, upgrade
from connector.storage.models import Base, Event, PrivacyExport, WebhookDelivery
from tests.support import SHOP, make_order, post_webhook, run_jobs, sample

JANET_ID, OTHER_ID = 7_100_000_000_001, 7_100_000_000_009
JANET_EMAIL, PHONE = "janet.quillfeather@example.com", "+15555550199"
NEEDLES = (JANET_EMAIL, "quillfeather", PHONE)
OTHER_NEEDLES = ("zed.other@example.com", "zed")
ORDER_A, ORDER_C, ORDER_TEST, ORDER_BAD, ORDER_GUEST = (
    8_100_000_000_001,
    8_100_000_000_003,
    8_100_000_000_004,
    8_100_000_000_005,
    8_100_000_000_002,
)
ORDER_OTHER, ORDER_LATER = 8_100_000_000_009, 8_100_000_000_010


def as_shopper(payload: dict[str, Any], first: str, last: str) -> dict[str, Any]:
    """The sample's shoppers (Maya Chen, Sam Okafor) renamed, in every field and address."""
    text = json.dumps(payload)
    for old, new in (("Maya", first), ("Chen", last), ("Sam", first), ("Okafor", last)):
        text = text.replace(old, new).replace(old.lower(), new.lower())
    return json.loads(text)


def janet_order(order_id: int, **fields: Any) -> dict[str, Any]:
    customer = {"id": JANET_ID, "email": "Janet.Quillfeather@Example.com", "phone": PHONE}
    order = make_order(order_id, when="2026-07-01T10:00:00Z", customer=customer)
    return {**as_shopper(order, "Janet", "Quillfeather"), **fields}


def other_order() -> dict[str, Any]:
    customer = {"id": OTHER_ID, "email": "Zed.Other@example.com", "phone": "+15555550111"}
    order = make_order(ORDER_OTHER, when="2026-07-01T11:00:00Z", customer=customer)
    return as_shopper(order, "Zed", "Other")


def checkout(token: str, email: str, first: str, last: str) -> dict[str, Any]:
    body = as_shopper(sample("checkouts_update_with_email.json"), first, last)
    return {**body, "token": token, "email": email}


def stored_values_with(rt: Runtime, needles: tuple[str, ...]) -> list[str]:
    """Every stored value, in every table and column, that holds a needle (any case)."""
    found = []
    with rt.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                for column, value in zip(table.columns.keys(), row, strict=True):
                    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
                    found += [
                        f"{table.name}.{column}: {n}" for n in needles if n.lower() in text.lower()
                    ]
    return found


def sqlite_files_with(database_url: str, needles: tuple[str, ...]) -> list[str]:
    """The needles found in the SQLite database's files (the -wal file included), raw bytes."""
    if not database_url.startswith("sqlite"):
        return []
    path = Path(database_url.split("///", 1)[1])
    found = []
    for file in (path, Path(f"{path}-wal")):
        data = file.read_bytes().lower() if file.exists() else b""
        found += [f"{file.name}: {n}" for n in needles if n.lower().encode() in data]
    return found


def redact_body(**extra: Any) -> dict[str, Any]:
    return {
        "shop_id": 954889,
        "shop_domain": SHOP,
        "customer": {"id": JANET_ID, "email": "JANET.Quillfeather@example.com", "phone": PHONE},
        **extra,
    }


def store_janets_webhooks(client: FlaskClient) -> list[str]:
    """Janet's webhooks, in every shape that names her, then the other customer's; returns
    the Shopify event ids of Janet's."""
    mixed = janet_order(ORDER_A, email="JANET.QUILLFEATHER@example.com")
    guest = janet_order(ORDER_GUEST, customer=None, email=None)
    guest["contact_email"] = "Janet.Quillfeather@EXAMPLE.com"  # the only email it carries
    only_customer = janet_order(ORDER_C, email=None, contact_email=None)
    # Guests, never mapped: only the email, in its own capitals, names Janet in these two.
    test_order = janet_order(
        ORDER_TEST, customer=None, test=True, email="JaNeT.QuillFeather@example.com"
    )
    unmappable = janet_order(ORDER_BAD, customer=None, email="Janet.QUILLFEATHER@example.com")
    unmappable.update(created_at="not a time", processed_at="not a time")
    test_refund = {**sample("refunds_create_2026-07.json"), "id": 929361001, "order_id": ORDER_TEST}
    refund = {**sample("refunds_create_2026-07.json"), "order_id": ORDER_A}
    fulfilment = {**sample("fulfillments_create_2026-07.json"), "order_id": ORDER_A}
    webhooks = [
        ("orders/create", mixed),
        ("orders/create", guest),
        ("orders/create", only_customer),
        ("orders/create", test_order),
        ("orders/create", unmappable),
        (
            "checkouts/create",
            checkout("tok-janet", "Janet.Quillfeather@Example.COM", "Janet", "Quillfeather"),
        ),
        ("refunds/create", refund),
        ("fulfillments/create", fulfilment),
        ("refunds/create", test_refund),  # of an order never placed: no event, no email
        ("orders/create", other_order()),
        ("checkouts/create", checkout("tok-zed", "zed.other@example.com", "Zed", "Other")),
    ]
    for number, (topic, body) in enumerate(webhooks):
        assert post_webhook(client, topic, body, f"w-{number}").status_code == 200
    return [f"w-{number}" for number in range(len(webhooks) - 2)]


def test_redact_leaves_no_value_of_the_customer_in_any_table_or_file(
    client: FlaskClient,
    rt: Runtime,
    shop: str,
    database_url: str,
    fake_customerio: FakeCustomerIO,
) -> None:
    janets = store_janets_webhooks(client)
    post_webhook(client, "customers/data_request", redact_body(data_request={"id": 3}), "dr-1")
    run_jobs(rt)
    with rt.sessions() as session:
        rows = {r.shopify_event_id: r for r in session.scalars(select(WebhookDelivery)).all()}
        # The test order, the unmappable one and the refund of the test order: no event.
        assert [(rows[i].state, rows[i].event_id) for i in ("w-3", "w-4", "w-8")] == [
            (InboxState.IGNORED, None),
            (InboxState.FAILED, None),
            (InboxState.PROCESSED, None),
        ]
        assert len(session.scalars(select(PrivacyExport)).all()) == 1
    assert len(fake_customerio.events_named("order_placed")) == 4  # Janet's 3 and Zed's
    assert {e["name"] for e in fake_customerio.events} >= {"order_refunded", "order_fulfilled"}
    assert stored_values_with(rt, NEEDLES)  # it was all there
    assert sqlite_files_with(database_url, NEEDLES) or not database_url.startswith("sqlite")
    other_before = sorted(stored_values_with(rt, OTHER_NEEDLES))

    body = redact_body(orders_to_redact=[ORDER_A, ORDER_C])  # not the guest order
    assert post_webhook(client, "customers/redact", body, "r-1").status_code == 200
    run_jobs(rt)

    assert stored_values_with(rt, NEEDLES) == []
    assert sqlite_files_with(database_url, NEEDLES) == []
    assert sorted(stored_values_with(rt, OTHER_NEEDLES)) == other_before  # Zed untouched
    with rt.sessions() as session:
        redact = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.topic == "customers/redact")
        ).one()
        assert redact.state == InboxState.PROCESSED, redact.state_reason
        events = {(e.name, e.natural_key): e for e in session.scalars(select(Event)).all()}
        kept = events[("order_placed", str(ORDER_A))]
        assert kept.status == EventStatus.DELIVERED and kept.person == {}  # id kept, no one
        assert events[("order_placed", str(ORDER_OTHER))].email == "zed.other@example.com"
        assert session.scalars(select(PrivacyExport)).all() == []
        rows = session.scalars(select(WebhookDelivery)).all()
        erased = {r.shopify_event_id for r in rows if json.loads(r.body).get("redacted")}
        assert erased == {*janets, "dr-1"}  # with or without an event; not Zed's


def test_a_later_webhook_naming_the_customer_anywhere_is_erased_on_arrival(
    client: FlaskClient,
    rt: Runtime,
    shop: str,
    database_url: str,
    fake_customerio: FakeCustomerIO,
) -> None:
    store_janets_webhooks(client)
    run_jobs(rt)
    post_webhook(client, "customers/redact", redact_body(orders_to_redact=[ORDER_A]), "r-1")
    run_jobs(rt)
    sent = (len(fake_customerio.identifies), len(fake_customerio.events))

    later = janet_order(ORDER_LATER, customer=None, email=None)
    later["contact_email"] = "JANET.QUILLFEATHER@example.com"  # only here, in capitals
    later_refund = {**sample("refunds_create_2026-07.json"), "id": 929361999, "order_id": ORDER_A}
    post_webhook(client, "orders/create", later, "w-later")
    post_webhook(client, "refunds/create", later_refund, "w-later-refund")
    post_webhook(client, "orders/create", {**other_order(), "id": ORDER_OTHER + 100}, "w-z2")
    run_jobs(rt)

    assert stored_values_with(rt, NEEDLES) == []
    assert sqlite_files_with(database_url, NEEDLES) == []
    with rt.sessions() as session:
        rows = {r.shopify_event_id: r for r in session.scalars(select(WebhookDelivery)).all()}
        for event_id in ("w-later", "w-later-refund"):
            assert rows[event_id].state == InboxState.IGNORED
            assert rows[event_id].state_reason == "customer redacted: not sent"
        assert (
            session.scalars(select(Event).where(Event.natural_key == str(ORDER_LATER))).all() == []
        )
    assert len(fake_customerio.identifies) == sent[0] + 1  # Zed's new order only
    assert len(fake_customerio.events) == sent[1] + 1
    new = fake_customerio.identifies[sent[0] :] + fake_customerio.events[sent[1] :]
    assert "quillfeather" not in json.dumps(new).lower()


@pytest.mark.parametrize("topic", ["customers/redact", "customers/data_request", "shop/redact"])
def test_a_privacy_request_naming_another_shop_is_refused(
    client: FlaskClient, rt: Runtime, shop: str, topic: str
) -> None:
    store_janets_webhooks(client)
    run_jobs(rt)
    before = stored_values_with(rt, NEEDLES)
    body = redact_body(shop_domain="attacker-store.myshopify.com", orders_to_redact=[ORDER_A])
    post_webhook(client, topic, body, "r-x")
    run_jobs(rt)

    with rt.sessions() as session:
        row = session.scalars(select(WebhookDelivery).where(WebhookDelivery.topic == topic)).one()
        assert row.state == InboxState.FAILED
        assert row.state_reason == (
            "refused: the payload names 'attacker-store.myshopify.com',"
            f" the webhook came for {SHOP}"
        )
        assert session.scalars(select(PrivacyExport)).all() == []
        assert session.scalars(select(Event)).all()  # nothing erased
    after = Counter(stored_values_with(rt, NEEDLES))
    assert not Counter(before) - after  # nothing erased; the refused request's body is new
    assert {entry.split(":")[0] for entry in after - Counter(before)} == {"webhook_deliveries.body"}


def test_migration_0009_keys_the_old_tombstones_so_they_still_match(tmp_path: Path) -> None:
    """Unkeyed sha256 tombstones and stand-ins become keyed ones, exactly: a customer
    redacted before the upgrade is still recognised, and a dictionary no longer tells who."""
    url = f"sqlite:///{tmp_path}/old.db"
    engine = make_engine(url)
    config = alembic_config(url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0007_cached_products")
        old_stand_in = "redacted:" + unkeyed_digest(SHOP, str(JANET_ID))[:40]
        conn.execute(
            text("INSERT INTO redacted_customers VALUES (:shop, :hash, '2026-07-01 00:00:00')"),
            {"shop": SHOP, "hash": unkeyed_digest(SHOP, JANET_EMAIL)},
        )
        conn.execute(
            text(
                "INSERT INTO customer_orders (shop_domain, order_id, person_key, ordered_at,"
                " cancelled, refunded) VALUES (:shop, '1', :key, '2026-07-01 00:00:00', 0, 0)"
            ),
            {"shop": SHOP, "key": old_stand_in},
        )
    with pytest.raises(RuntimeError, match="CONNECTOR_SECRET_KEY"):
        upgrade(engine)  # never half-converted, never cleared
    upgrade(engine, "the-secret-key")
    key = tombstone_key("the-secret-key")
    with engine.connect() as conn:
        hashes = conn.execute(text("SELECT key_hash FROM redacted_customers")).scalars().all()
        stand_ins = conn.execute(text("SELECT person_key FROM customer_orders")).scalars().all()
    engine.dispose()
    assert hashes == [tombstone(key, SHOP, JANET_EMAIL)]
    assert stand_ins == ["redacted:" + keyed(key, old_stand_in.removeprefix("redacted:"))[:40]]
    assert tombstone(key, SHOP, JANET_EMAIL) != tombstone(tombstone_key("other"), SHOP, JANET_EMAIL)


def test_tombstones_written_under_the_previous_secret_key_still_match(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    store_janets_webhooks(client)
    run_jobs(rt)
    post_webhook(client, "customers/redact", redact_body(orders_to_redact=[ORDER_A]), "r-1")
    run_jobs(rt)
    old_key = rt.settings.secret_key
    rt.settings = replace(rt.settings, secret_key="a-new-key", previous_secret_keys=(old_key,))

    later = janet_order(ORDER_LATER, customer=None, email=None)
    later["contact_email"] = "janet.quillfeather@example.com"
    post_webhook(client, "orders/create", later, "w-later")
    run_jobs(rt)
    with rt.sessions() as session:
        row = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.shopify_event_id == "w-later")
        ).one()
        assert row.state == InboxState.IGNORED, row.state_reason
