"""A storm of signed, mutated webhooks of every handled topic through the real app and
workers: no 5xx, no stalled shop, no event that breaks the spec unnoticed.

FUZZ_WEBHOOKS sets how many (default 400, so the suite stays fast); `make fuzz` sends
10,000 and prints the figures quoted in docs/reliability.md. FUZZ_SEED picks the storm.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

from flask.testing import FlaskClient
from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.spec import validate
from connector.statuses import EventStatus, InboxState
from connector.storage.models import Event, WebhookDelivery
from connector.timeutil import utcnow
from tests.fuzz.mutate import DESTRUCTIVE_TOPICS, TOPIC_SAMPLES, mutant
from tests.support import SHOP, add_shop, make_order, post_webhook, run_jobs

COUNT = int(os.environ.get("FUZZ_WEBHOOKS", "400"))
SEED = int(os.environ.get("FUZZ_SEED", "20261128"))
SACRIFICE = "fuzz-sacrifice.myshopify.com"  # takes the uninstall and redaction mutants
GOOD_ORDER_ID = 999_000_001


def test_a_storm_of_mutated_webhooks_never_gets_a_5xx_nor_stalls_a_shop(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    add_shop(rt, SACRIFICE)
    rng = random.Random(SEED)
    now = utcnow().isoformat()
    topics = list(TOPIC_SAMPLES)
    answers: Counter[int] = Counter()
    server_errors = []
    started = time.perf_counter()
    for index in range(COUNT):
        destructive = rng.random() < 0.02
        topic = rng.choice(DESTRUCTIVE_TOPICS) if destructive else rng.choice(topics)
        domain = SACRIFICE if destructive else SHOP
        made = mutant(topic, rng, now, domain)
        status = post_webhook(client, topic, made.body, f"fuzz-{SEED}-{index}", domain).status_code
        answers[status] += 1
        if status >= 500:
            server_errors.append((index, topic, made.what))
        if index % 500 == 499:
            run_jobs(rt)  # workers drain while the storm goes on, as in production
    posted = time.perf_counter() - started

    good = make_order(GOOD_ORDER_ID, when=now, email="after.the.storm@example.com")
    good["customer"] = {**good["customer"], "id": 8_888_888_888, "email": good["email"]}
    assert post_webhook(client, "orders/create", good, "after-the-storm").status_code == 200
    run_jobs(rt)
    drained = time.perf_counter() - started - posted

    assert server_errors == [], server_errors[:5]
    assert any(
        op.get("name") == "order_placed" and op["attributes"]["order_id"] == str(GOOD_ORDER_ID)
        for request in fake_customerio.requests
        for op in request.get("ops", [])
    ), "the shop stalled: its order after the storm was not delivered"
    with rt.sessions() as session:
        states = Counter(session.scalars(select(WebhookDelivery.state)).all())
        waiting = session.execute(
            select(WebhookDelivery.shop_domain, WebhookDelivery.state_reason).where(
                WebhookDelivery.state == InboxState.RECEIVED
            )
        ).all()
        # Only the sacrifice's, once a mutated shop/redact erased it: they wait for a
        # re-install, as any unknown shop's do.
        assert all(shop == SACRIFICE and "not installed" in reason for shop, reason in waiting)
        stored = session.scalars(select(Event)).all()
        statuses = Counter(event.status for event in stored)
        assert statuses[EventStatus.PENDING] == 0, statuses
        for event in stored:
            if event.status == EventStatus.QUARANTINED:
                assert event.violations, event.id
            elif event.status == EventStatus.DELIVERED and event.name in rt.spec.event_names:
                assert validate(rt.spec, event.name, event.properties) == [], event.id
    queue = Queue(rt.settings.queue_name, connection=rt.redis)
    assert FailedJobRegistry(queue=queue).count == 0
    print(
        f"\nfuzz: {COUNT} mutated webhooks (seed {SEED}), answers {dict(sorted(answers.items()))}, "
        f"inbox {dict(states)}, events {dict(statuses)}, "
        f"posted in {posted:.1f} s, drained in {drained:.1f} s, 5xx: {len(server_errors)}"
    )
