"""One poisonous webhook never stalls a shop: it is set aside with its reason, and the
shop's next order is delivered in the same drain.

Each case stores a signed body straight into the inbox, as the door of this or an
earlier version might have accepted it, then posts a good order through the door.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.statuses import EventStatus, InboxState
from connector.storage import events
from connector.storage.db import transaction
from connector.storage.models import Event, WebhookDelivery
from jobs.tasks import PROCESS_LOCK_WAIT_SECONDS, deliverer, process_inbox
from tests.support import (
    SHOP,
    add_staff_account,
    console_login,
    invoke_cli,
    make_order,
    post_webhook,
    run_jobs,
    sample,
)
from webhooks.mapping import map_order

GOOD_ORDER_ID = 777001
NOW = "2026-11-28T10:00:00-05:00"


def order_text(**fields: Any) -> str:
    return json.dumps(make_order(5550001, when=NOW, **fields))


def with_raw(text: str, placeholder: str, raw: str) -> str:
    """Swap a JSON string placeholder for raw JSON text json.dumps cannot write."""
    return text.replace(json.dumps(placeholder), raw)


def poisoned_line_item(**fields: Any) -> str:
    payload = make_order(5550001, when=NOW)
    payload["line_items"][0].update(fields)
    return json.dumps(payload)


POISONS: dict[str, tuple[str, str]] = {
    "utf8 bom": ("orders/create", "\ufeff" + order_text()),
    "infinite quantity": (
        "orders/create",
        with_raw(poisoned_line_item(quantity="@inf@"), "@inf@", "1e999"),
    ),
    "huge total price": ("orders/create", order_text(total_price="1e30")),
    "year one with an offset": (
        "orders/create",
        json.dumps(
            make_order(5550001, when="0001-01-01T00:00:00+05:00")
            | {"created_at": "0001-01-01T00:00:00+05:00"}
        ),
    ),
    "lone surrogate in a title": (
        "orders/create",
        with_raw(poisoned_line_item(title="@s@"), "@s@", '"Mug \\ud83d"'),
    ),
    "nul in a title": (
        "orders/create",
        with_raw(poisoned_line_item(title="@z@"), "@z@", '"Mug \\u0000 blue"'),
    ),
    "line items not a list": ("orders/create", order_text(line_items="mug")),
    "customer not an object": (
        "orders/create",
        json.dumps(make_order(5550001, when=NOW) | {"customer": ["x"]}),
    ),
    "order id an object": ("orders/create", json.dumps(make_order(1, when=NOW) | {"id": {}})),
    "checkout with a bad price": (
        "checkouts/create",
        json.dumps(sample("checkouts_create_2026-07.json") | {"total_price": {"a": 1}}),
    ),
    "redact with a number of orders": (
        "customers/redact",
        json.dumps(
            {
                "shop_domain": SHOP,
                "customer": {"id": 1, "email": "nobody@example.com"},
                "orders_to_redact": 5,
            }
        ),
    ),
    "not json at all": ("orders/create", '{"id": 1, '),
    # PostgreSQL refuses it (longer than the column): set aside; SQLite stores and sends it.
    "an email of 5000 characters": ("orders/create", order_text(email="x" * 5000 + "@e.com")),
}


CLEANED = {"lone surrogate in a title": "Mug \ufffd", "nul in a title": "Mug  blue"}
# Odd, but an order all the same: sent without the field that makes no sense.
HARMLESS = {
    "customer not an object",
    "huge total price",
    "line items not a list",
    "an email of 5000 characters",
}


def store(rt: Runtime, topic: str, body: str, event_id: str) -> None:
    assert rt.inbox.record(
        {
            "shop_domain": SHOP,
            "topic": topic,
            "shopify_event_id": event_id,
            "state": InboxState.RECEIVED,
            "body": body,
        },
    )


def good_order_delivered(fake_customerio: FakeCustomerIO) -> bool:
    return any(
        op.get("name") == "order_placed" and op["attributes"]["order_id"] == str(GOOD_ORDER_ID)
        for request in fake_customerio.requests
        for op in request.get("ops", [])
    )


@pytest.mark.parametrize("case", sorted(POISONS))
def test_a_poisonous_webhook_is_set_aside_and_the_next_order_is_delivered(
    case: str,
    client: FlaskClient,
    rt: Runtime,
    shop: str,
    fake_customerio: FakeCustomerIO,
) -> None:
    topic, body = POISONS[case]
    store(rt, topic, body, "poison-1")
    good = make_order(GOOD_ORDER_ID, when=NOW, email="good@example.com")
    assert post_webhook(client, "orders/create", good, "good-1").status_code == 200

    run_jobs(rt)

    assert good_order_delivered(fake_customerio), case
    with rt.sessions() as session:
        rows = session.scalars(select(WebhookDelivery)).all()
        stuck = [row for row in rows if row.state == InboxState.RECEIVED]
        assert not stuck, f"{case}: inbox rows left waiting"
        waiting = session.scalars(select(Event).where(Event.status == EventStatus.PENDING)).all()
        assert not waiting, f"{case}: events left pending"
        poison = next(row for row in rows if row.shopify_event_id == "poison-1")
        if case in CLEANED:  # delivered, with the unsafe character cleaned
            assert poison.state == InboxState.PROCESSED, poison.state_reason
            made = session.get(Event, poison.event_id)
            assert made is not None and made.status == EventStatus.DELIVERED
            assert made.properties["items"][0]["name"] == CLEANED[case]
        elif case == "an email of 5000 characters" and rt.engine.dialect.name == "postgresql":
            assert poison.state == InboxState.FAILED
            assert "the database refused a value (DataError)" in poison.state_reason
        elif case not in HARMLESS:
            assert poison.state == InboxState.FAILED, case
            assert poison.state_reason.startswith(("cannot map: ", "cannot process: "))
    assert FailedJobRegistry(queue=Queue(rt.settings.queue_name, connection=rt.redis)).count == 0


def stored_event(rt: Runtime, order_id: int, **properties: Any) -> str:
    """An order_placed written straight to the database, as an older version may have."""
    event = map_order(make_order(order_id, when=NOW), shop_domain=SHOP)
    event = event.with_properties(is_first_order=True, **properties)
    with transaction(rt.sessions) as session:
        events.add_validated(session, event, [])
    return event.id


def test_an_event_json_cannot_carry_fails_alone_and_its_batch_is_delivered(
    rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's jsonb refuses these values when they are stored")
    good = [stored_event(rt, 880001), stored_event(rt, 880003)]
    unsendable = [
        stored_event(rt, 880002, note="Mug \ud83d"),
        stored_event(rt, 880004, note="\udc00 Mug"),
    ]
    deliverer(rt).drain(SHOP)

    with rt.sessions() as session:
        for event_id in good:
            assert session.get(Event, event_id).status == EventStatus.DELIVERED
        for event_id in unsendable:
            stored = session.get(Event, event_id)
            assert stored.status == EventStatus.FAILED
            assert "cannot be sent" in stored.reason and stored.lease_owner is None
    sent = {op.get("id") for request in fake_customerio.requests for op in request["ops"]}
    assert set(good) <= sent and not set(unsendable) & sent


def test_an_event_whose_sends_keep_dying_fails_after_the_retry_schedule(
    rt: Runtime, shop: str
) -> None:
    """A worker killed mid-send leaves a lease; each one that runs out counts as an
    attempt, so an event that kills every worker stops being retried."""
    event_id = stored_event(rt, 880010)
    max_attempts = len(rt.settings.retry_schedule) + 1
    for _ in range(max_attempts):
        with transaction(rt.sessions) as session:  # claim and die: the lease runs out at once
            claimed = events.claim_due_events(session, SHOP, 10, -1, max_attempts)
            assert [event.id for event in claimed] == [event_id]
            assert claimed[0].lease_owner is not None  # the new lease, also once abandoned
    with transaction(rt.sessions) as session:
        assert events.claim_due_events(session, SHOP, 10, -1, max_attempts) == []
        stored = session.get(Event, event_id)
        assert stored.status == EventStatus.FAILED
        assert stored.attempts == max_attempts
        assert "the worker stopped while sending it" in stored.reason


def test_a_mapping_lock_left_by_a_killed_worker_stalls_the_shop_only_briefly(
    client: FlaskClient, rt: Runtime, shop: str
) -> None:
    """A worker killed while mapping leaves its lock; it expires, so the next job maps."""
    rt.redis.set(f"connector:lock:process:{SHOP}", "dead-worker", px=1500)
    good = make_order(GOOD_ORDER_ID, when=NOW, email="good@example.com")
    assert post_webhook(client, "orders/create", good, "good-1").status_code == 200
    started = time.monotonic()
    assert process_inbox(SHOP) == 1
    assert 1.0 < time.monotonic() - started < PROCESS_LOCK_WAIT_SECONDS


def test_a_webhook_set_aside_is_visible_to_support_and_replayable(
    client: FlaskClient, rt: Runtime, shop: str
) -> None:
    topic, body = POISONS["redact with a number of orders"]
    store(rt, topic, body, "poison-1")
    process_inbox(SHOP)

    listed = invoke_cli(rt, "webhooks", "list")
    assert listed.returncode == 0
    assert "customers/redact" in listed.stdout and "(TypeError)" in listed.stdout
    assert "1 of 1 webhook(s) failed" in listed.stdout

    add_staff_account(rt)
    assert console_login(client).status_code == 302
    overview = client.get("/console/").get_data(as_text=True)
    assert "webhooks set aside" in overview
    page = client.get("/console/webhooks/failed").get_data(as_text=True)
    assert "a field has an unexpected type (TypeError)" in page and "customers/redact" in page

    replayed = invoke_cli(rt, "replay", "--failed", "--yes")
    assert replayed.returncode == 0, replayed.stdout
    with rt.sessions() as session:
        row = session.scalars(select(WebhookDelivery)).one()
        assert row.state == InboxState.RECEIVED  # back in the inbox, to be mapped again
    process_inbox(SHOP)
    with rt.sessions() as session:  # still broken: set aside again, not retried forever
        assert session.scalars(select(WebhookDelivery)).one().state == InboxState.FAILED
