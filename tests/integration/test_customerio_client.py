"""TrackClient against FakeCustomerIO over real loopback sockets."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
import requests
import urllib3
from ulid import ULID

from connector import customerio
from connector.customerio import (
    REGION_HOSTS,
    SendResult,
    TrackClient,
    batch_size_ok,
    event_op,
    identifiers_for,
    identify_op,
    parse_retry_after,
    shared_pool,
    track_base_url,
)
from connector.customerio import _result as result_from_response
from connector.dev.fake_customerio import FakeCustomerIO

SITE_ID, API_KEY = "site-1", "key-1"
EMAIL = "ana@example.com"
TS = 1_732_790_400


@pytest.fixture
def fake_customerio() -> Iterator[FakeCustomerIO]:
    with FakeCustomerIO({SITE_ID: API_KEY}) as server:
        yield server


@pytest.fixture
def pool() -> Iterator[urllib3.PoolManager]:
    with urllib3.PoolManager(retries=False) as pools:
        yield pools


@pytest.fixture
def client(fake_customerio: FakeCustomerIO, pool: urllib3.PoolManager) -> TrackClient:
    return TrackClient(site_id=SITE_ID, api_key=API_KEY, base_url=fake_customerio.url, pool=pool)


def order_ops(event_id: str | None = None, person: str = "8812") -> list[dict]:
    ids = identifiers_for(person)
    return [
        identify_op(ids, {"email": EMAIL, "first_name": "Ana"}, TS),
        event_op(ids, "order_placed", event_id or str(ULID()), TS, {"revenue": 84.5}),
    ]


def assert_no_email(result: SendResult) -> None:
    assert "@" not in repr(result)
    assert "example.com" not in repr(result)


def test_op_builders_match_the_v2_shape() -> None:
    ids = identifiers_for(EMAIL)
    assert ids == {"email": EMAIL}
    assert identifiers_for("8812") == {"id": "8812"}
    assert identify_op(ids, {"first_name": "Ana"}, TS) == {
        "type": "person",
        "action": "identify",
        "identifiers": {"email": EMAIL},
        "timestamp": TS,
        "attributes": {"first_name": "Ana"},
    }
    op = event_op(ids, "order_placed", "01JDQ7Z3N8X4M2K9T6R5V0W1YB", TS, {"total": 1})
    assert op["id"] == "01JDQ7Z3N8X4M2K9T6R5V0W1YB" and op["timestamp"] == TS
    assert op["attributes"] == {"total": 1} and op["name"] == "order_placed"


def test_track_base_url_prefers_the_override() -> None:
    assert track_base_url("eu", None) == REGION_HOSTS["eu"]
    assert track_base_url("US", None) == "https://track.customer.io"
    assert track_base_url("eu", "http://127.0.0.1:8025/") == "http://127.0.0.1:8025"
    with pytest.raises(ValueError):
        track_base_url("mars", None)


def test_batch_size_limits() -> None:
    assert batch_size_ok(order_ops())
    big = {"blob": "x" * 33_000}
    assert not batch_size_ok([event_op({"id": "1"}, "e", str(ULID()), TS, big)])
    many = [event_op({"id": "1"}, "e", str(ULID()), TS, {"blob": "x" * 20_000})] * 30
    assert not batch_size_ok(many)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("3", 3.0), ("0.5", 0.5), ("garbage", None), ("-4", 0.0)],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 7, usegmt=True), now=now) == pytest.approx(7.0)
    assert parse_retry_after(formatdate(now - 7, usegmt=True), now=now) == 0.0


def test_delivered_batch(client: TrackClient, fake_customerio: FakeCustomerIO) -> None:
    event_id = str(ULID())
    result = client.send_batch(order_ops(event_id))
    assert (result.outcome, result.status_code, result.failed_ops) == ("delivered", 200, {})
    assert result.ok and result.latency_ms > 0
    assert fake_customerio.people["8812"] == {"email": EMAIL, "first_name": "Ana"}
    [event] = fake_customerio.events_named("order_placed")
    assert event["id"] == event_id and event["identifiers"] == {"id": "8812"}
    assert event["attributes"] == {"revenue": 84.5} and event["timestamp"] == TS
    [request] = fake_customerio.requests
    assert (request["method"], request["path"], request["site_id"]) == (
        "POST",
        "/api/v2/batch",
        SITE_ID,
    )
    assert request["status"] == 200 and len(request["ops"]) == 2


def test_repeated_event_id_is_counted_once(
    client: TrackClient, fake_customerio: FakeCustomerIO
) -> None:
    event_id = str(ULID())
    assert client.send_batch(order_ops(event_id)).outcome == "delivered"
    assert client.send_batch(order_ops(event_id)).outcome == "delivered"
    assert len(fake_customerio.events) == 1
    assert fake_customerio.duplicate_events == 1
    assert len(fake_customerio.identifies) == 2


def test_wrong_key_is_rejected_credentials(
    fake_customerio: FakeCustomerIO, pool: urllib3.PoolManager
) -> None:
    client = TrackClient(site_id=SITE_ID, api_key="nope", base_url=fake_customerio.url, pool=pool)
    result = client.send_batch(order_ops(person=EMAIL))
    assert (result.outcome, result.status_code) == ("rejected_credentials", 401)
    assert result.reason.startswith("401 Unauthorized")
    assert "Unauthorized request" in result.excerpt
    assert_no_email(result)
    assert fake_customerio.events == [] and fake_customerio.people == {}


def test_429_retry_after_is_parsed(client: TrackClient, fake_customerio: FakeCustomerIO) -> None:
    fake_customerio.rate_limit_for(5, retry_after=3)
    result = client.send_batch(order_ops(person=EMAIL))
    assert (result.outcome, result.status_code, result.retry_after) == ("retry", 429, 3.0)
    assert result.reason.startswith("429 Too Many Requests")
    assert_no_email(result)


def test_500_is_retry(client: TrackClient, fake_customerio: FakeCustomerIO) -> None:
    fake_customerio.fail_next(1, status=503)
    result = client.send_batch(order_ops(person=EMAIL))
    assert (result.outcome, result.status_code) == ("retry", 503)
    assert_no_email(result)
    assert client.send_batch(order_ops()).outcome == "delivered"
    assert [r["status"] for r in fake_customerio.requests] == [503, 200]


def test_slow_server_times_out(fake_customerio: FakeCustomerIO, pool: urllib3.PoolManager) -> None:
    client = TrackClient(
        site_id=SITE_ID, api_key=API_KEY, base_url=fake_customerio.url, timeout=0.2, pool=pool
    )
    fake_customerio.set_delay(0.6)
    result = client.send_batch(order_ops(person=EMAIL))
    assert (result.status_code, result.outcome, result.reason) == (None, "retry", "timeout")
    assert 150 < result.latency_ms < 600
    assert_no_email(result)


def test_dropped_connection_is_retry(client: TrackClient, fake_customerio: FakeCustomerIO) -> None:
    fake_customerio.drop_next(1)
    result = client.send_batch(order_ops(person=EMAIL))
    assert (result.status_code, result.outcome, result.reason) == (
        None,
        "retry",
        "connection error",
    )
    assert_no_email(result)
    assert (
        fake_customerio.requests[0]["status"] is None
        and len(fake_customerio.requests[0]["ops"]) == 2
    )
    assert client.send_batch(order_ops()).outcome == "delivered"


def test_connection_refused_is_retry(pool: urllib3.PoolManager) -> None:
    with FakeCustomerIO({SITE_ID: API_KEY}) as server:
        url = server.url
    client = TrackClient(site_id=SITE_ID, api_key=API_KEY, base_url=url, pool=pool)
    result = client.send_batch(order_ops())
    assert (result.status_code, result.outcome, result.reason) == (
        None,
        "retry",
        "connection error",
    )


def test_one_invalid_op_makes_a_partial(
    client: TrackClient, fake_customerio: FakeCustomerIO
) -> None:
    ops = order_ops(person=EMAIL)
    bad = event_op(identifiers_for(EMAIL), "order_placed", "not-a-ulid", TS, {})
    ops.insert(1, bad)
    result = client.send_batch(ops)
    assert (result.outcome, result.status_code) == ("partial", 207)
    assert list(result.failed_ops) == [1]
    assert "id" in result.failed_ops[1] and "ULID" in result.failed_ops[1]
    assert len(fake_customerio.events) == 1 and EMAIL in fake_customerio.people
    assert_no_email(result)


def test_all_invalid_ops_are_a_400_with_indexes(client: TrackClient) -> None:
    bad = event_op({"id": "1"}, "order_placed", str(ULID()), TS, {})
    del bad["name"]
    result = client.send_batch([bad, {**bad, "identifiers": {"id": "1", "email": EMAIL}}])
    assert (result.outcome, result.status_code) == ("rejected", 400)
    assert sorted(result.failed_ops) == [0, 1]
    assert "[email]" in result.failed_ops[1]  # the server echoed the email; we redact it
    assert "[email]" in result.excerpt
    assert_no_email(result)


def test_long_bodies_are_cut_and_emails_redacted() -> None:
    body = json.dumps({"meta": {"errors": [f"bad email {EMAIL} " + "x" * 400]}})
    result = result_from_response(400, {}, body, 1.0)
    assert result.outcome == "rejected" and len(result.excerpt) <= 300
    assert "[email]" in result.excerpt and "[email]" in result.reason
    assert_no_email(result)


def test_check_credentials(client: TrackClient, fake_customerio: FakeCustomerIO) -> None:
    ok = client.check_credentials()
    assert (ok.outcome, ok.status_code) == ("delivered", 200)
    assert json.loads(ok.excerpt)["data_center"] == "us"
    fake_customerio.set_credentials(SITE_ID, "rotated")
    denied = client.check_credentials()
    assert (denied.outcome, denied.status_code) == ("rejected_credentials", 401)
    assert fake_customerio.requests[-1]["path"] == "/api/v1/accounts/region"


def test_repr_hides_the_api_key(client: TrackClient) -> None:
    assert API_KEY not in repr(client) and SITE_ID in repr(client)


def test_shared_pool_is_one_per_process() -> None:
    pool = shared_pool("https://track.customer.io")
    assert shared_pool("https://track-eu.customer.io") is pool  # one set of pools, per host
    assert pool.connection_pool_kw["maxsize"] == customerio.POOL_MAXSIZE
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must build its own
        os.write(write, b"1" if shared_pool("https://track.customer.io") is not pool else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.close(write)


def test_shared_pool_is_used_by_default(fake_customerio: FakeCustomerIO) -> None:
    client = TrackClient(site_id=SITE_ID, api_key=API_KEY, base_url=fake_customerio.url)
    assert client.pool is shared_pool(fake_customerio.url)
    assert client.send_batch(order_ops()).outcome == "delivered"


def test_requests_go_through_the_proxy_the_environment_names(
    fake_customerio: FakeCustomerIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As with `requests`: HTTP_PROXY is used, unless NO_PROXY exempts the host. The fake
    stands in for the proxy: it gets the request in the absolute form a proxy gets."""
    monkeypatch.setenv("http_proxy", fake_customerio.url)
    monkeypatch.setenv("no_proxy", "exempt.example")
    customerio._environment_proxies.cache_clear()
    customerio._proxy_for.cache_clear()
    try:
        assert customerio._proxy_for("http://exempt.example") is None
        client = TrackClient(site_id=SITE_ID, api_key=API_KEY, base_url="http://track.example")
        assert isinstance(client.pool, urllib3.ProxyManager)
        client.send_batch(order_ops())
    finally:
        customerio._environment_proxies.cache_clear()
        customerio._proxy_for.cache_clear()
    assert fake_customerio.requests[-1]["path"] == "http://track.example/api/v2/batch"


# -- the fake Customer.io on its own --------------------------------------------------------


def post(fake_customerio: FakeCustomerIO, path: str, data: bytes) -> requests.Response:
    return requests.post(fake_customerio.url + path, data=data, auth=(SITE_ID, API_KEY), timeout=5)


@pytest.mark.parametrize(
    "body", [b"{not json", b"[]", b'{"batch": {}}', b'{"batch": [' + b"1," * 260_000 + b"1]}"]
)
def test_fake_rejects_malformed_batches(fake_customerio: FakeCustomerIO, body: bytes) -> None:
    response = post(fake_customerio, "/api/v2/batch", body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"] == "invalid"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "object"}, "type"),
        ({"action": "merge"}, "action"),
        ({"identifiers": {}}, "identifiers"),
        ({"identifiers": {"id": "1", "email": EMAIL}}, "identifiers"),
        ({"identifiers": {"phone": "+15555550100"}}, "identifiers"),
        ({"name": ""}, "name"),
        ({"id": "01JDQ7Z3N8X4M2K9T6R5V0W1YI"}, "id"),  # I is not Crockford
        ({"id": "81JDQ7Z3N8X4M2K9T6R5V0W1YB"}, "id"),  # overflows 128 bits
        ({"timestamp": "1732790400"}, "timestamp"),
        ({"timestamp": 1.5}, "timestamp"),
        ({"attributes": []}, "attributes"),
    ],
)
def test_fake_validates_event_ops(
    fake_customerio: FakeCustomerIO, change: dict, field: str
) -> None:
    good = event_op({"id": "1"}, "order_placed", str(ULID()), TS, {})
    body = json.dumps({"batch": [good, {**good, **change}]}).encode()
    response = post(fake_customerio, "/api/v2/batch", body)
    assert response.status_code == 207
    [error] = response.json()["errors"]
    assert error["batch_index"] == 1 and error["field"].startswith(field)


def test_fake_entity_endpoint(fake_customerio: FakeCustomerIO) -> None:
    op = event_op({"id": "7"}, "checkout_started", str(ULID()), TS, {})
    assert post(fake_customerio, "/api/v2/entity", json.dumps(op).encode()).status_code == 200
    assert post(fake_customerio, "/api/v2/entity", json.dumps(op).encode()).status_code == 200
    assert len(fake_customerio.events_named("checkout_started")) == 1
    response = post(fake_customerio, "/api/v2/entity", json.dumps({**op, "id": "x"}).encode())
    assert response.status_code == 400 and "batch_index" not in response.json()["errors"][0]


def test_fake_keeps_connections_alive(
    fake_customerio: FakeCustomerIO, pool: urllib3.PoolManager
) -> None:
    client = TrackClient(site_id=SITE_ID, api_key=API_KEY, base_url=fake_customerio.url, pool=pool)
    for _ in range(3):
        assert client.send_batch(order_ops()).outcome == "delivered"
    assert len(fake_customerio._server.open_connections) == 1  # type: ignore[union-attr]


def test_in_flight_counts_held_requests(
    client: TrackClient, fake_customerio: FakeCustomerIO
) -> None:
    fake_customerio.set_delay(0.3)
    sender = threading.Thread(target=client.send_batch, args=(order_ops(),))
    sender.start()
    deadline = time.monotonic() + 2
    while fake_customerio.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_customerio.in_flight == 1 and fake_customerio.requests == []
    sender.join()
    assert fake_customerio.in_flight == 0 and len(fake_customerio.requests) == 1


def test_wait_for_events_and_reset(client: TrackClient, fake_customerio: FakeCustomerIO) -> None:
    assert not fake_customerio.wait_for_events(1, timeout=0.05)
    client.send_batch(order_ops())
    assert fake_customerio.wait_for_events(1, timeout=1)
    fake_customerio.reset()
    assert (fake_customerio.events, fake_customerio.requests, fake_customerio.people) == (
        [],
        [],
        {},
    )


def test_verbose_prints_a_summary(
    capsys: pytest.CaptureFixture[str], pool: urllib3.PoolManager
) -> None:
    with FakeCustomerIO({SITE_ID: API_KEY}, verbose=True) as server:
        client = TrackClient(site_id=SITE_ID, api_key=API_KEY, base_url=server.url, pool=pool)
        event_id = str(ULID())
        ops = order_ops(event_id)
        ops[1]["attributes"]["currency"] = "EUR"
        client.send_batch(ops)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"customer.io  identify id=8812 email={EMAIL} first_name=Ana",
        f"customer.io  track order_placed id={event_id} person=8812 revenue=84.5 EUR",
    ]


def test_fake_attaches_an_email_only_person_to_the_id_identified_with_that_email(
    client: TrackClient, fake_customerio: FakeCustomerIO
) -> None:
    by_email, by_id, other = identifiers_for("a@example.com"), {"id": "43"}, {"id": "42"}
    ops = [
        event_op(by_email, "checkout_started", str(ULID()), TS, {}),
        identify_op(other, {"email": "b@example.com"}, TS),
        identify_op(by_id, {"email": "A@example.com"}, TS),
        event_op(by_id, "order_placed", str(ULID()), TS, {}),
    ]
    assert client.send_batch(ops).outcome == "delivered"
    shopper = fake_customerio.profile_of(email="a@example.com")
    assert shopper is not None and shopper.id == "43"
    assert shopper.events == ["checkout_started", "order_placed"]
    stranger = fake_customerio.profile_of(id="42")
    assert stranger is not None and stranger is not shopper and stranger.events == []
    assert len(fake_customerio.profiles) == 2
