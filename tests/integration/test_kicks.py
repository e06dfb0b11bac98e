"""Nudges: debounced kicks lose no webhook, and the sweep gets past a stale flag."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import select

from connector.runtime import Runtime
from connector.storage.models import WebhookDelivery
from jobs import queue
from jobs.tasks import process_inbox, sweep
from tests.support import SHOP, make_order, post_webhook, run_jobs

# The clock is the test's; the kicker's own payer thread sleeps a real window, so an hour
# keeps it out of the way while the tests pay owed kicks themselves.
WINDOW = 3600.0


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def debounced_kicker(clock: FakeClock) -> queue.DebouncedKicker:
    return queue.DebouncedKicker(WINDOW, clock=clock)


def inbox_states(rt: Runtime) -> list[str]:
    with rt.sessions() as session:
        return list(session.scalars(select(WebhookDelivery.state).order_by(WebhookDelivery.id)))


def order(number: int) -> dict:
    return make_order(4_000_000 + number)


def test_a_kick_skipped_within_the_window_is_made_when_it_ends(
    client: FlaskClient, rt: Runtime, shop: str, redis_conn: redis.Redis
) -> None:
    clock = FakeClock()
    kicker = client.application.extensions["kicker"] = debounced_kicker(clock)
    jobs = Queue(rt.settings.queue_name, connection=redis_conn)
    flag = queue.flag_key(queue.PROCESS)
    post_webhook(client, "orders/create", order(1), "k-1")  # kicks: a drain job is queued
    assert jobs.count == 1
    process_inbox(SHOP)  # that job runs (clearing the flag) before the next webhook lands
    jobs.empty()

    clock.now += WINDOW / 2
    post_webhook(client, "orders/create", order(2), "k-2")  # within the window: owed
    assert not redis_conn.exists(flag) and jobs.count == 0
    clock.now += WINDOW / 2
    assert kicker.pay_owed_kicks(clock()) == 1
    assert redis_conn.exists(flag) and jobs.count == 1  # paid when the window ended
    run_jobs(rt)
    assert inbox_states(rt) == ["processed", "processed"]


def test_kicks_outside_the_window_queue_a_new_job(
    client: FlaskClient, rt: Runtime, shop: str, redis_conn: redis.Redis
) -> None:
    clock = FakeClock()
    client.application.extensions["kicker"] = debounced_kicker(clock)
    jobs = Queue(rt.settings.queue_name, connection=redis_conn)
    post_webhook(client, "orders/create", order(1), "w-1")
    queue.clear_kick(redis_conn, queue.PROCESS)  # as a starting drain would
    post_webhook(client, "orders/create", order(2), "w-2")
    assert jobs.count == 1
    clock.now += WINDOW * 1.1
    post_webhook(client, "orders/create", order(3), "w-3")
    assert jobs.count == 2


def test_the_sweep_gets_past_a_stale_flag(
    client: FlaskClient, rt: Runtime, shop: str, redis_conn: redis.Redis
) -> None:
    post_webhook(client, "orders/create", order(1), "s-1")
    Queue(rt.settings.queue_name, connection=redis_conn).empty()  # the job is lost...
    assert redis_conn.exists(queue.flag_key(queue.PROCESS))  # ...its flag is not
    assert sweep()["shops_to_process"] == 1
    run_jobs(rt)
    assert inbox_states(rt) == ["processed"]
