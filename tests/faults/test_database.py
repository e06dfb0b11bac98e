"""PostgreSQL down: at ingest (503, nothing stored, Shopify's retry accepted) and while the
workers run (they resume when it returns)."""

from __future__ import annotations

import time

import pytest
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

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("needs_postgres")]


def test_postgres_down_at_ingest_answers_503_and_the_retry_is_accepted(
    client: FlaskClient,
    shop: str,
    db_proxy: Proxy,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    processes.worker()
    webhooks = order_webhooks(6, "pg-ingest")
    before, during = webhooks[:2], webhooks[2:]
    assert [post(client, w) for w in before] == [(200, "accepted")] * 2

    db_proxy.cut()
    answers = [post(client, w) for w in during]
    assert answers == [(503, "storage unavailable")] * len(during)
    for webhook in during:  # no partial row: Shopify's retry must not be taken for a duplicate
        assert observer.inbox_rows(webhook.headers["X-Shopify-Event-Id"]) == 0

    db_proxy.restore()
    restored = time.monotonic()
    retries = [post(client, w) for w in during]  # Shopify resends the same headers and body
    assert retries == [(200, "accepted")] * len(during)
    settle(
        "PostgreSQL down at ingest",
        fake_customerio,
        observer,
        {placed_id(i) for i in range(6)},
        webhooks=6,
        posts=len(before) + 2 * len(during),
        recovered_from=restored,
        notes=f"{len(during)} answered 503 while down; each first retry accepted",
    )


def test_postgres_down_while_workers_run_resumes_when_it_returns(
    client: FlaskClient,
    shop: str,
    db_proxy: Proxy,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    for _ in range(2):
        processes.worker(DELIVERY_BATCH_SIZE="2", DELIVERY_RATE_PER_SECOND="10")
    webhooks = order_webhooks(30, "pg-work")
    assert {post(client, w) for w in webhooks} == {(200, "accepted")}
    assert wait_for(lambda: len(track_counts(fake_customerio)) >= 4, 20), processes.logs()

    db_proxy.cut()  # mid-run: batches being claimed, sent and recorded
    time.sleep(2)
    at_cut = len(track_counts(fake_customerio))
    db_proxy.restore()
    restored = time.monotonic()
    assert at_cut < 30, "everything was delivered before the fault: nothing was tested"
    assert len(processes.alive()) == 2, processes.logs()
    settle(
        "PostgreSQL down 2 s while 2 workers run",
        fake_customerio,
        observer,
        {placed_id(i) for i in range(30)},
        webhooks=30,
        posts=30,
        recovered_from=restored,
        allow_duplicates=True,  # a batch sent just before the cut could not be recorded
        notes=f"{at_cut} of 30 delivered when the link came back",
    )
