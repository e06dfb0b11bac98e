"""Redis down at ingest (webhooks still stored and answered 200; the sweep finds them when
Redis returns), and Redis restarted or flushed while the workers run."""

from __future__ import annotations

import signal
import time

import pytest
import redis
from flask.testing import FlaskClient

from connector.dev.fake_customerio import FakeCustomerIO
from tests.faults.harness import (
    Observer,
    Processes,
    order_webhooks,
    placed_id,
    post,
    settle,
    track_counts,
    wait_for,
)
from tests.faults.proxy import Proxy

pytestmark = pytest.mark.slow


def test_redis_down_at_ingest_stores_and_answers_then_the_sweep_delivers(
    client: FlaskClient,
    shop: str,
    redis_proxy: Proxy,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    worker = processes.worker()
    redis_proxy.cut()
    webhooks = order_webhooks(10, "redis-ingest")
    started = time.monotonic()
    answers = [post(client, w) for w in webhooks]
    slowest = (time.monotonic() - started) / len(webhooks)
    assert answers == [(200, "accepted")] * 10  # the database is the truth
    assert observer.statuses() == {}  # stored, not processed: no nudge reached the workers
    time.sleep(2)  # the worker and its sweep lose Redis for a while
    assert fake_customerio.requests == []

    redis_proxy.restore()
    restored = time.monotonic()
    assert len(processes.alive()) == 1, processes.logs()  # the worker waited for Redis
    settle(
        "Redis down at ingest (2 s)",
        fake_customerio,
        observer,
        {placed_id(i) for i in range(10)},
        webhooks=10,
        posts=10,
        recovered_from=restored,
        notes=f"answered 200 in {slowest * 1000:.0f} ms on average while down",
    )
    worker.send_signal(signal.SIGTERM)  # and it still stops when asked
    assert worker.wait(15) == 0, processes.logs()


@pytest.mark.parametrize("fault", ["restarted", "flushed"])
def test_redis_restarted_or_flushed_mid_run_loses_nothing(
    fault: str,
    client: FlaskClient,
    shop: str,
    redis_proxy: Proxy,
    redis_conn: redis.Redis,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    processes.worker(DELIVERY_BATCH_SIZE="2", DELIVERY_RATE_PER_SECOND="10")
    webhooks = order_webhooks(30, f"redis-{fault}")
    assert {post(client, w) for w in webhooks} == {(200, "accepted")}
    assert wait_for(lambda: len(track_counts(fake_customerio)) >= 4, 20), processes.logs()
    if fault == "restarted":  # links reset, and it comes back empty (no persistence)
        redis_proxy.cut()
        redis_conn.flushdb()
        time.sleep(1)
        redis_proxy.restore()
    else:  # queued jobs, kick flags, limiter state and RQ's registries all gone
        redis_conn.flushdb()
    recovered = time.monotonic()
    at_fault = len(track_counts(fake_customerio))
    assert at_fault < 30, "everything was delivered before the fault: nothing was tested"
    settle(
        f"Redis {fault} mid-run",
        fake_customerio,
        observer,
        {placed_id(i) for i in range(30)},
        webhooks=30,
        posts=30,
        recovered_from=recovered,
        notes=f"{at_fault} of 30 delivered at the fault",
    )
    assert processes.alive(), processes.logs()
