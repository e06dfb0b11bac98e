"""Many shops: work reaches the workers per stage, not per shop; sends to different
workspaces overlap; one shop's backlog, rate limit or lock never holds up another shop."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from rq import Queue, SimpleWorker
from sqlalchemy import func, insert, select

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.statuses import EventStatus, InboxState
from connector.storage import events
from connector.storage.db import transaction
from connector.storage.models import Event, WebhookDelivery
from connector.timeutil import utcnow
from jobs import queue
from jobs.processing import process_batch
from jobs.ratelimit import RateLimiter
from jobs.tasks import deliverer, process_inbox
from tests.support import API_KEY, add_shop, make_order, post_webhook
from webhooks.mapping import map_order

NOW = utcnow()


def shop_name(number: int) -> str:
    return f"shop-{number:04d}.myshopify.com"


def site_of(number: int) -> str:
    return f"site-{number:04d}"


def add_shops(rt: Runtime, fake: FakeCustomerIO, count: int) -> list[str]:
    """`count` installed shops, each with its own Customer.io workspace."""
    shops = []
    for number in range(count):
        add_shop(rt, shop_name(number), cio_site_id=site_of(number))
        fake.set_credentials(site_of(number), API_KEY)
        shops.append(shop_name(number))
    return shops


def store_order(rt: Runtime, shop: str, order_id: int) -> str:
    event = map_order(make_order(order_id, when=NOW.isoformat()), shop_domain=shop)
    with transaction(rt.sessions) as session:
        events.add_validated(session, event, [])
    return event.id


def store_backlog(rt: Runtime, shop: str, count: int) -> None:
    """`count` due order_placed events of one shop, older than anything else, in bulk."""
    template_id = store_order(rt, shop, 1)
    with transaction(rt.sessions) as session:
        template = session.get(Event, template_id)
        columns = {c.key: getattr(template, c.key) for c in Event.__table__.columns}
        rows: list[dict[str, Any]] = []
        for number in range(2, count + 1):
            rows.append(
                {
                    **columns,
                    "id": f"01J{number:023d}",  # a ULID, as Customer.io wants
                    "natural_key": str(number),
                    "occurred_at": NOW - timedelta(days=1, seconds=number),
                }
            )
        session.execute(insert(Event), rows)


def delivered_sites(fake: FakeCustomerIO) -> dict[str, int]:
    sites: dict[str, int] = {}
    for request in fake.requests:
        if request["path"].startswith("/api/v2/batch") and request["status"] == 200:
            sites[request["site_id"]] = sites.get(request["site_id"], 0) + 1
    return sites


def test_a_burst_over_many_shops_is_drained_by_a_few_jobs(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    shops = add_shops(rt, fake_customerio, 30)
    jobs = Queue(rt.settings.queue_name, connection=rt.redis)
    for number, shop in enumerate(shops):
        order = make_order(7_000_000 + number)
        assert post_webhook(client, "orders/create", order, f"m-{number}", shop).status_code == 200
    assert jobs.count == 1  # one mapping drain for all thirty shops, not one per shop

    worker = SimpleWorker([jobs], connection=rt.redis)
    worker.work(burst=True)

    assert worker.successful_job_count <= 3  # map, deliver (and at most one more kick)
    assert worker.failed_job_count == 0
    assert len(fake_customerio.events_named("order_placed")) == 30
    assert fake_customerio.duplicate_events == 0
    # Each shop's order went to its own workspace, in one request each.
    assert delivered_sites(fake_customerio) == {site_of(n): 1 for n in range(30)}


def test_sends_to_different_workspaces_overlap(
    rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    shops = add_shops(rt, fake_customerio, 8)
    for number, shop in enumerate(shops):
        store_order(rt, shop, 100 + number)
    fake_customerio.set_delay(0.3)

    started = time.monotonic()
    delivered, unfinished = deliverer(rt).drain()
    elapsed = time.monotonic() - started

    assert (delivered, unfinished) == (8, False)
    assert fake_customerio.max_in_flight == 8  # all eight workspaces at once
    assert elapsed < 8 * 0.3 / 2  # one after the other would take 2.4 s


def test_a_shop_with_a_large_backlog_does_not_delay_another_shops_new_order(
    rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    busy, quiet = add_shops(rt, fake_customerio, 2)
    store_backlog(rt, busy, 50_000)
    new_order = store_order(rt, quiet, 999)
    fake_customerio.set_delay(0.02)

    started = time.monotonic()
    deliverer(rt).drain(deadline=time.monotonic() + 2.0)

    with rt.sessions() as session:
        quiet_event = session.get(Event, new_order)
        assert quiet_event.status == EventStatus.DELIVERED
        busy_delivered = session.scalar(
            select(func.count()).where(
                Event.shop_domain == busy, Event.status == EventStatus.DELIVERED
            )
        )
    arrived = next(
        request["monotonic"]
        for request in fake_customerio.requests
        if request["site_id"] == site_of(1)
    )
    assert arrived - started < 1.0
    assert busy_delivered > 50  # the busy shop kept going meanwhile


def test_a_rate_limited_workspace_pauses_alone(
    rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    limited, fine = add_shops(rt, fake_customerio, 2)
    fake_customerio.rate_limit_for(60, retry_after=30, site_id=site_of(0))
    held = store_order(rt, limited, 1)
    sent = [store_order(rt, fine, 2), store_order(rt, fine, 3)]

    deliverer(rt).drain()
    store_order(rt, limited, 4)  # arrives during the pause: not even tried
    sent.append(store_order(rt, fine, 5))
    deliverer(rt).drain()

    with rt.sessions() as session:
        for event_id in sent:
            assert session.get(Event, event_id).status == EventStatus.DELIVERED
        waiting = session.get(Event, held)
        assert waiting.status == EventStatus.PENDING and waiting.attempts == 1
        assert waiting.next_attempt_at >= utcnow() + timedelta(seconds=25)
    limiter = RateLimiter(rt.redis, rt.settings.delivery_rate_per_second)
    assert limiter.paused_for(site_of(0)) > 25 and limiter.paused_for(site_of(1)) == 0
    assert delivered_sites(fake_customerio) == {site_of(1): 2}
    assert sum(1 for r in fake_customerio.requests if r["site_id"] == site_of(0)) == 1


def test_two_workers_draining_many_shops_send_each_event_once(
    rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    shops = add_shops(rt, fake_customerio, 20)
    for number in range(400):
        store_order(rt, shops[number % 20], 10_000 + number)
    fake_customerio.set_delay(0.01)

    threads = [threading.Thread(target=deliverer(rt).drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(fake_customerio.events_named("order_placed")) == 400
    assert fake_customerio.duplicate_events == 0
    with rt.sessions() as session:
        statuses = session.scalars(select(Event.status)).all()
    assert set(statuses) == {EventStatus.DELIVERED}


def test_a_shop_being_mapped_elsewhere_does_not_hold_up_the_others(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    held, free = add_shops(rt, fake_customerio, 2)
    rt.redis.set(f"connector:lock:process:{held}", "another-worker", px=1500)
    post_webhook(client, "orders/create", make_order(8_000_001), "h-1", held)
    post_webhook(client, "orders/create", make_order(8_000_002), "f-1", free)

    assert process_inbox() == 1  # the free shop; caught up, it gives its worker back
    assert rt.redis.exists(queue.flag_key(queue.DELIVER))  # delivery was nudged
    assert rt.redis.exists(queue.flag_key(queue.PROCESS))  # a job maps the held shop
    assert process_inbox() == 1  # that job waits out the stale lock

    with rt.sessions() as session:
        rows = session.scalars(select(WebhookDelivery)).all()
        assert {row.state for row in rows} == {InboxState.PROCESSED}
        made = {e.shop_domain: e.created_at for e in session.scalars(select(Event)).all()}
    assert made[free] < made[held]


def test_a_mapping_job_ends_once_caught_up_while_webhooks_keep_arriving(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    """A mapping job that maps on until its deadline while webhooks trickle in holds a
    worker a delivery job waits for (two such jobs made events wait 2 s for delivery)."""
    [shop] = add_shops(rt, fake_customerio, 1)
    post_webhook(client, "orders/create", make_order(9_500_000), "t-0", shop)
    arriving = threading.Event()
    arriving.set()

    def arrive() -> None:  # a webhook stored every 2 ms, as the door stores them
        number = 0
        while arriving.is_set():
            number += 1
            order = make_order(9_500_000 + number)
            values = {"shop_domain": shop, "topic": "orders/create", "body": json.dumps(order)}
            rt.inbox.record({**values, "shopify_event_id": f"t-{number}"})
            time.sleep(0.002)

    thread = threading.Thread(target=arrive)
    thread.start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        mapped = process_inbox()
        elapsed = time.monotonic() - started
    finally:
        arriving.clear()
        thread.join()

    assert mapped >= 1
    assert elapsed < queue.DRAIN_SECONDS / 2  # not until its deadline: caught up, it ended


def test_after_a_mapping_job_has_caught_up_the_next_webhook_queues_its_own(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    [shop] = add_shops(rt, fake_customerio, 1)
    jobs = Queue(rt.settings.queue_name, connection=rt.redis)
    for number in range(3):
        post_webhook(client, "orders/create", make_order(9_300_000 + number), f"c-{number}", shop)
    assert [job.func_name for job in jobs.get_jobs()] == ["jobs.tasks.process_inbox"]
    jobs.empty()  # this test runs that job itself

    assert process_inbox() == 3
    assert [job.func_name for job in jobs.get_jobs()] == ["jobs.tasks.deliver_pending"]

    post_webhook(client, "orders/create", make_order(9_300_003), "c-3", shop)
    assert [job.func_name for job in jobs.get_jobs()] == [
        "jobs.tasks.deliver_pending",
        "jobs.tasks.process_inbox",
    ]
    SimpleWorker([jobs], connection=rt.redis).work(burst=True)
    assert len(fake_customerio.events_named("order_placed")) == 4
    assert fake_customerio.duplicate_events == 0


def test_a_batch_says_whether_a_shop_has_more_webhooks_waiting(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    busy, quiet = add_shops(rt, fake_customerio, 2)
    for number in range(3):
        post_webhook(client, "orders/create", make_order(9_400_000 + number), f"b-{number}", busy)
    post_webhook(client, "orders/create", make_order(9_400_100), "q-0", quiet)
    redact = {"shop_domain": quiet, "customer": {"id": 9}, "orders_to_redact": []}
    post_webhook(client, "customers/redact", redact, "q-1", quiet)
    post_webhook(client, "orders/create", make_order(9_400_101), "q-2", quiet)

    with transaction(rt.sessions) as session:
        assert process_batch(session, rt.spec, [busy], limit=2) == (2, True)  # a full share
    with transaction(rt.sessions) as session:
        assert process_batch(session, rt.spec, [busy], limit=2) == (1, False)
    with transaction(rt.sessions) as session:  # the redact goes alone, after the order
        assert process_batch(session, rt.spec, [quiet], limit=10) == (1, True)
    with transaction(rt.sessions) as session:
        assert process_batch(session, rt.spec, [quiet], limit=10) == (1, True)
    with transaction(rt.sessions) as session:
        assert process_batch(session, rt.spec, [quiet], limit=10) == (1, False)


def test_a_delivery_job_that_has_caught_up_gives_its_worker_to_waiting_webhooks(
    rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    """Asked only after a round that left nothing due: a backlog is delivered first."""
    busy, quiet = add_shops(rt, fake_customerio, 2)
    per_round = rt.settings.delivery_batch_size * 4  # DeliveryPolicy.batches_per_shop
    store_backlog(rt, busy, per_round + 5)
    store_order(rt, quiet, 77)
    asked: list[int] = []

    def hand_back() -> bool:
        with rt.sessions() as session:
            asked.append(session.scalar(select(func.count()).where(Event.status == "pending")))
        return True

    delivered, unfinished = deliverer(rt).drain(hand_back=hand_back)

    assert (delivered, unfinished) == (per_round + 6, True)  # True: a drain job follows
    assert asked == [0]  # not after the first round, which took a full share of the backlog
    assert deliverer(rt).drain(hand_back=lambda: True) == (0, False)


def test_a_webhook_that_breaks_mapping_holds_up_no_other_shop_mapped_with_it(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    """Shops are mapped together in one transaction; when one raises, each is mapped
    alone, and only the webhook that raises is set aside."""
    shops = add_shops(rt, fake_customerio, 3)
    poison = {"shop_domain": shops[1], "customer": {"id": 1}, "orders_to_redact": 7}
    post_webhook(client, "customers/redact", poison, "poison-1", shops[1])
    for number, shop in enumerate(shops):
        post_webhook(client, "orders/create", make_order(9_100_000 + number), f"g-{number}", shop)

    assert process_inbox() == 4

    with rt.sessions() as session:
        rows = {row.shopify_event_id: row for row in session.scalars(select(WebhookDelivery))}
        placed = session.scalars(select(Event.shop_domain)).all()
    assert rows["poison-1"].state == InboxState.FAILED
    assert "(TypeError)" in rows["poison-1"].state_reason
    assert {rows[f"g-{n}"].state for n in range(3)} == {InboxState.PROCESSED}
    assert sorted(placed) == shops  # every shop's order, the poisoned shop's included


def test_one_shops_requests_go_at_once_a_persons_events_in_one(
    rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    [shop] = add_shops(rt, fake_customerio, 1)
    size = rt.settings.delivery_batch_size
    first = store_order(rt, shop, 1)
    with transaction(rt.sessions) as session:
        template = session.get(Event, first)
        columns = {c.key: getattr(template, c.key) for c in Event.__table__.columns}
        rows = [
            {
                **columns,
                "id": f"01J{number:023d}",
                "natural_key": str(number),
                "person_id": f"person-{number % (2 * size)}",  # two events per person
                "occurred_at": NOW - timedelta(seconds=number),
            }
            for number in range(2, 4 * size + 1)
        ]
        session.execute(insert(Event), rows)
    fake_customerio.set_delay(0.3)

    delivered, _ = deliverer(rt).drain()

    assert delivered == 4 * size
    assert fake_customerio.max_in_flight >= 3  # not one request after the other
    per_request = [
        {op["identifiers"]["id"] for op in r["ops"] if op.get("type") == "person"}
        for r in fake_customerio.requests
        if r["path"].startswith("/api/v2/batch")
    ]
    everyone = [person for people in per_request for person in people]
    assert len(set(everyone)) == 2 * size + 1  # and the first order's customer
    assert len(everyone) == len(set(everyone))  # each person's events in one request


def test_shops_mapped_together_learn_nothing_from_each_other(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    """One transaction reads the customers, ledger rows and events of a group of shops at
    once: what one shop knows (an email's customer, a first order) stays in that shop."""
    linked, guest = add_shops(rt, fake_customerio, 2)
    email = "shared@example.com"
    when = NOW.isoformat()
    customer = {"id": 501, "email": email}
    by_customer = make_order(9_000_001, when=when, email=email, customer=customer)
    as_guest = make_order(9_000_002, when=when, email=email, customer=None)
    as_guest["customer"] = None
    post_webhook(client, "orders/create", by_customer, "g-1", linked)
    post_webhook(client, "orders/create", as_guest, "g-2", guest)

    assert process_inbox() == 2

    with rt.sessions() as session:
        placed = {
            e.shop_domain: e
            for e in session.scalars(select(Event).where(Event.name == "order_placed"))
        }
    assert placed[linked].person_id == "501"
    assert placed[guest].person_id == email  # not the other shop's customer 501
    assert placed[linked].properties["is_first_order"] is True
    assert placed[guest].properties["is_first_order"] is True
