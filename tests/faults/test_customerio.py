"""Customer.io down for a long stretch (time compressed by RETRY_SCHEDULE), longer than the
whole schedule (support replays), a 429 storm with Retry-After, and a rejected API key
corrected by support."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from tests.faults.harness import (
    Observer,
    Processes,
    order_webhooks,
    placed_id,
    post,
    settle,
    wait_for,
)
from tests.faults.proxy import Proxy, upstream_of
from tests.support import SHOP, SITE_ID, invoke_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def cio_proxy(fake_customerio: FakeCustomerIO) -> Iterator[Proxy]:
    """A cuttable link to the fake Customer.io: cut, it refuses connections."""
    with Proxy(upstream_of(fake_customerio.url)) as proxy:
        yield proxy


def statuses_of(fake: FakeCustomerIO) -> list[int | None]:
    return [request["status"] for request in fake.requests]


def test_customerio_down_for_a_long_stretch_then_back(
    client: FlaskClient,
    shop: str,
    cio_proxy: Proxy,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    # About a day of retries compressed into 11 s; the outage outlasts the first five.
    processes.worker(
        CUSTOMERIO_TRACK_URL=f"http://127.0.0.1:{cio_proxy.port}", RETRY_SCHEDULE="1,1,1,2,2,4"
    )
    cio_proxy.cut()
    webhooks = order_webhooks(20, "cio-down")
    assert {post(client, w) for w in webhooks} == {(200, "accepted")}
    time.sleep(4)
    assert observer.statuses() == {"pending": 20}  # retrying, none given up
    fake_customerio.fail_next(2, 503)  # and it comes back shaky
    cio_proxy.restore()
    restored = time.monotonic()
    settle(
        "Customer.io unreachable 4 s (retry schedule 1,1,1,2,2,4 s)",
        fake_customerio,
        observer,
        {placed_id(i) for i in range(20)},
        webhooks=20,
        posts=20,
        recovered_from=restored,
        notes="connection refused, then two 503s; events retried on schedule, none failed",
    )


def test_customerio_down_longer_than_the_retry_schedule_then_replayed(
    client: FlaskClient,
    shop: str,
    rt: Runtime,
    cio_proxy: Proxy,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    processes.worker(
        CUSTOMERIO_TRACK_URL=f"http://127.0.0.1:{cio_proxy.port}", RETRY_SCHEDULE="1,1"
    )
    cio_proxy.cut()
    webhooks = order_webhooks(10, "cio-gone")
    assert {post(client, w) for w in webhooks} == {(200, "accepted")}
    assert wait_for(lambda: observer.statuses() == {"failed": 10}, 20), observer.statuses()
    cio_proxy.restore()
    restored = time.monotonic()
    replayed = invoke_cli(rt, "replay", "--failed", "--yes")  # what support does
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.count("failed -> pending") == 10, replayed.stdout
    settle(
        "Customer.io down longer than the retry schedule",
        fake_customerio,
        observer,
        {placed_id(i) for i in range(10)},
        webhooks=10,
        posts=10,
        recovered_from=restored,
        notes="10 failed after 3 attempts; `connector replay --failed` sent each once",
    )


def test_429_storm_with_retry_after_delivers_everything_once(
    client: FlaskClient,
    shop: str,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    processes.worker(DELIVERY_BATCH_SIZE="5", DELIVERY_RATE_PER_SECOND="10")
    fake_customerio.rate_limit_for(3.0, retry_after=1)
    started = time.monotonic()
    webhooks = order_webhooks(40, "storm429")
    assert {post(client, w) for w in webhooks} == {(200, "accepted")}
    settle(
        "429 storm, 3 s, Retry-After: 1",
        fake_customerio,
        observer,
        {placed_id(i) for i in range(40)},
        webhooks=40,
        posts=40,
        recovered_from=started + 3.0,
        describe=lambda: f"{statuses_of(fake_customerio).count(429)} requests answered 429",
    )
    assert 429 in statuses_of(fake_customerio)
    first_ok = min(r["time"] for r in fake_customerio.requests if r["status"] == 200)
    last_429 = max(r["time"] for r in fake_customerio.requests if r["status"] == 429)
    assert first_ok > last_429  # the workspace paused; nothing slipped through mid-storm


def test_rejected_api_key_then_corrected_credentials(
    client: FlaskClient,
    shop: str,
    rt: Runtime,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    fake_customerio.set_credentials(SITE_ID, "rotated-key")  # the merchant rotated the key
    processes.worker()
    first, later = order_webhooks(5, "key"), order_webhooks(5, "key", start=5)
    assert {post(client, w) for w in first} == {(200, "accepted")}
    assert wait_for(lambda: observer.statuses() == {"failed": 5}, 20), observer.statuses()
    assert {post(client, w) for w in later} == {(200, "accepted")}
    assert wait_for(lambda: observer.statuses() == {"failed": 5, "pending": 5}, 20)
    time.sleep(1)  # the shop is marked credentials_rejected: its events wait, no retry burns
    assert statuses_of(fake_customerio) == [401]

    fixed = invoke_cli(rt, "shops", "add", SHOP, "--site-id", SITE_ID, "--api-key", "rotated-key")
    assert fixed.returncode == 0, fixed.stderr
    restored = time.monotonic()
    replayed = invoke_cli(rt, "replay", "--failed", "--yes")
    assert replayed.returncode == 0, replayed.stderr
    settle(
        "401, then the key corrected and failed events replayed",
        fake_customerio,
        observer,
        {placed_id(i) for i in range(10)},
        webhooks=10,
        posts=10,
        recovered_from=restored,
        notes="1 request answered 401; 5 waiting events resumed by the sweep, 5 failed replayed",
    )
