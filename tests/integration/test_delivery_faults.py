"""Delivery under faults: rate limits, bad credentials, killed workers, a flushed Redis."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connector.config import Settings
from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.storage.models import DeliveryAttempt, Event, Shop
from jobs.tasks import sweep
from tests.support import (
    ROOT,
    SHOP,
    add_shop,
    make_order,
    max_requests_per_second,
    post_webhook,
    run_cli,
    run_jobs,
    sample,
    subprocess_env,
)


def post_orders(client: FlaskClient, count: int, prefix: str = "o", start: int = 0) -> None:
    for index in range(start, start + count):
        order = make_order(
            7_000_000 + index,
            name=f"#{5000 + index}",
            customer={"id": 80_000 + index},
            email=f"shopper{index}@example.com",
        )
        assert post_webhook(client, "orders/create", order, f"{prefix}-{index}").status_code == 200


def statuses(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as session:
        rows = session.execute(select(Event.status, func.count()).group_by(Event.status)).all()
    return {status: count for status, count in rows}


def drive_until(rt: Runtime, done: Callable[[], bool], timeout: float = 40.0) -> None:
    """Run sweeps and burst workers until `done()` or the timeout (retries are scheduled)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done in time: {statuses(rt)}"
        sweep()
        run_jobs(rt)
        time.sleep(0.2)


def test_429_storm_delivers_everything_once_within_the_rate(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    rt.settings = replace(rt.settings, delivery_rate_per_second=8.0, delivery_batch_size=3)
    post_orders(client, 30)
    fake_customerio.rate_limit_for(3.0, retry_after=1)
    drive_until(rt, lambda: statuses(rt).get("delivered") == 30)

    assert len({e["id"] for e in fake_customerio.events_named("order_placed")}) == 30
    assert fake_customerio.duplicate_events == 0
    assert any(r["status"] == 429 for r in fake_customerio.requests)
    batch_times = [r["time"] for r in fake_customerio.requests if r["path"] == "/api/v2/batch"]
    assert max_requests_per_second(batch_times) <= 8
    with rt.sessions() as session:
        delivered_attempts = session.scalar(
            select(func.count()).where(DeliveryAttempt.outcome == "delivered")
        )
        retried = session.scalar(select(func.count()).where(DeliveryAttempt.status_code == 429))
    assert delivered_attempts == 30 and retried and retried > 0


def test_bad_credentials_fail_at_once_then_replay_after_the_key_is_fixed(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    add_shop(rt, SHOP, api_key="wrong-key")
    post_orders(client, 1, prefix="first")
    run_jobs(rt)
    with rt.sessions() as session:
        [event] = session.scalars(select(Event)).all()
        shop = session.get(Shop, SHOP)
        attempts = session.scalars(select(DeliveryAttempt)).all()
    assert event.status == "failed" and "401" in (event.reason or "")
    assert shop is not None and shop.status == "credentials_rejected"
    assert [(a.outcome, a.status_code) for a in attempts] == [("rejected_credentials", 401)]

    post_orders(client, 1, prefix="second", start=1)  # waits instead of burning retries
    run_jobs(rt)
    assert statuses(rt) == {"failed": 1, "pending": 1}

    fixed = run_cli(
        rt.settings, "shops", "add", SHOP, "--site-id", "site-1", "--api-key", "track-key-1"
    )
    assert fixed.returncode == 0, fixed.stderr
    replayed = run_cli(rt.settings, "replay", event.id, "--yes")
    assert replayed.returncode == 0, replayed.stderr
    assert "failed -> pending" in replayed.stdout
    run_jobs(rt)
    assert statuses(rt) == {"delivered": 2}
    assert len(fake_customerio.events_named("order_placed")) == 2


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "connector", "worker"],
        cwd=ROOT,
        env=subprocess_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_worker_killed_mid_send_still_delivers_once(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    rt.settings = replace(rt.settings, lease_seconds=3)
    fake_customerio.set_delay(5.0)
    worker = start_worker(rt.settings)
    try:
        post_orders(client, 1)
        assert wait_for(lambda: fake_customerio.in_flight > 0, 20), "the send never started"
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(5)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    fake_customerio.set_delay(0)
    replacement = start_worker(rt.settings)
    try:
        assert wait_for(lambda: statuses(rt) == {"delivered": 1}, 30), statuses(rt)
    finally:
        os.killpg(replacement.pid, signal.SIGTERM)
        replacement.wait(10)
    assert len(fake_customerio.events_named("order_placed")) == 1
    with rt.sessions() as session:
        outcomes = session.scalars(
            select(DeliveryAttempt.outcome).order_by(DeliveryAttempt.attempted_at)
        ).all()
    assert outcomes == ["abandoned", "delivered"]  # the killed send counts as an attempt


def test_redis_flushed_before_delivery_loses_nothing(
    client: FlaskClient,
    rt: Runtime,
    shop: str,
    fake_customerio: FakeCustomerIO,
    redis_conn: redis.Redis,
) -> None:
    post_orders(client, 5)
    redis_conn.flushdb()  # the queued jobs and nudges are gone; the inbox is not
    run_jobs(rt)
    assert fake_customerio.events == []
    drive_until(rt, lambda: statuses(rt).get("delivered") == 5, timeout=20)
    assert len(fake_customerio.events_named("order_placed")) == 5
    assert fake_customerio.duplicate_events == 0


def test_a_batch_over_the_size_limit_is_sent_event_by_event(
    client: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    base = sample("orders_create_2026-07.json")
    item = base["line_items"][0]
    for index in range(30):  # ~20 KB of event data each: one batch of 30 is over 500 KB
        order = copy.deepcopy(base)
        order["id"] = 9_100_000 + index
        order["customer"]["id"] = 91_000 + index
        order["line_items"] = [
            {**item, "id": n, "title": f"{item['title']} {n:03d}" * 4} for n in range(60)
        ]
        post_webhook(client, "orders/create", order, f"big-{index}")
    run_jobs(rt)
    assert statuses(rt) == {"delivered": 30}
    batches = [r for r in fake_customerio.requests if r["path"] == "/api/v2/batch"]
    assert [len(r["ops"]) for r in batches] == [2] * 30  # no request over the limit was tried
    assert all(r["status"] == 200 for r in batches)
