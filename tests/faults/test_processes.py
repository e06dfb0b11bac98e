"""Processes killed with SIGKILL: a worker while Customer.io holds its answer (the lease
expires, another worker sends; Customer.io dedupes on the event id), and the web process
while a webhook is in flight (stored or not, Shopify's retry makes exactly one event)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from flask.testing import FlaskClient

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from tests.faults.harness import (
    Observer,
    Processes,
    Webhook,
    free_port,
    order_webhooks,
    placed_id,
    post,
    post_http,
    pump_in_process,
    settle,
    wait_for,
)
from tests.faults.proxy import Proxy

pytestmark = pytest.mark.slow


def test_worker_killed_mid_send_another_worker_delivers_once(
    client: FlaskClient,
    shop: str,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    fake_customerio.set_delay(3.0)  # Customer.io takes its time to answer
    doomed = processes.worker()  # leases last 3 s (DELIVERY_LEASE_SECONDS)
    assert {post(client, w) for w in order_webhooks(5, "kill-worker")} == {(200, "accepted")}
    assert wait_for(lambda: fake_customerio.in_flight > 0, 20), processes.logs()
    processes.kill(doomed)  # SIGKILL mid-send: the batch's outcome is unknown to us
    killed = time.monotonic()
    fake_customerio.set_delay(0)
    processes.worker()
    outcome = settle(
        "worker SIGKILLed mid-send",
        fake_customerio,
        observer,
        {placed_id(i) for i in range(5)},
        webhooks=5,
        posts=5,
        recovered_from=killed,
        allow_duplicates=True,  # the killed worker's request still reached Customer.io
        notes="lease expired, a second worker resent the batch; Customer.io dedupes on event id",
    )
    assert outcome.duplicated <= 5
    assert len(fake_customerio.events_named("order_placed")) == 5  # one per id at Customer.io


def send_partially(port: int, webhook: Webhook) -> socket.socket:
    """Headers and half the body: the request is in flight, the web process waits for more."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"POST /webhooks/shopify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += f"Content-Length: {len(webhook.body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in webhook.headers.items()) + "\r\n"
    sock.sendall(head.encode() + webhook.body[: len(webhook.body) // 2])
    return sock


def test_web_killed_before_storing_the_retry_is_accepted(
    shop: str,
    rt: Runtime,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    port = free_port()
    web = processes.web(port)
    [webhook] = order_webhooks(1, "kill-web-early")
    in_flight = send_partially(port, webhook)
    time.sleep(0.3)
    processes.kill(web)
    killed = time.monotonic()
    assert in_flight.recv(100) == b""  # Shopify sees the connection close: no answer
    in_flight.close()
    assert observer.inbox_rows(webhook.headers["X-Shopify-Event-Id"]) == 0

    processes.web(port)  # restarted by its supervisor
    assert post_http(f"http://127.0.0.1:{port}", webhook) == (200, "accepted")
    settle(
        "web SIGKILLed mid-request, before storing",
        fake_customerio,
        observer,
        {placed_id(0)},
        webhooks=1,
        posts=2,
        recovered_from=killed,
        pump=pump_in_process(rt),
        notes="nothing stored; Shopify's retry accepted",
    )


def test_web_killed_after_storing_the_retry_is_a_duplicate(
    needs_postgres: None,
    shop: str,
    rt: Runtime,
    db_proxy: Proxy,
    fake_customerio: FakeCustomerIO,
    observer: Observer,
    processes: Processes,
) -> None:
    port = free_port()
    web = processes.web(port)
    earlier, webhook = order_webhooks(2, "kill-web-late")
    # The web process's database connection is open (a connection's handshake would wait too).
    assert post_http(f"http://127.0.0.1:{port}", earlier) == (200, "accepted")
    event_id = webhook.headers["X-Shopify-Event-Id"]
    db_proxy.hold_replies()  # PostgreSQL commits the INSERT; its answer waits in the proxy
    answers: list[tuple[int, str]] = []
    shopify = threading.Thread(
        target=lambda: answers.append(post_http(f"http://127.0.0.1:{port}", webhook))
    )
    shopify.start()
    assert wait_for(lambda: observer.inbox_rows(event_id) == 1, 10)
    processes.kill(web)  # stored, but killed before answering
    killed = time.monotonic()
    shopify.join(10)
    db_proxy.hold_replies(False)
    assert answers and answers[0][0] == 0, answers  # Shopify saw no answer: it will retry

    processes.web(port)
    assert post_http(f"http://127.0.0.1:{port}", webhook) == (200, "duplicate")
    settle(
        "web SIGKILLed mid-request, after storing",
        fake_customerio,
        observer,
        {placed_id(0), placed_id(1)},
        webhooks=2,
        posts=3,
        recovered_from=killed,
        pump=pump_in_process(rt),
        notes="stored before the kill; Shopify's retry answered 200 duplicate",
    )
    assert observer.inbox_rows(event_id) == 1
