"""The webhook door never answers 5xx for bad input: every case is a 4xx with a reason, and
nothing is stored. Only storage that is really down gets a 503 (test_ingest.py).

Run on SQLite and on PostgreSQL: SQLite stores an over-long value that PostgreSQL refuses.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connector import lengths
from connector.app import create_app
from connector.dev.http_server import LoopbackServer
from connector.runtime import Runtime
from connector.storage.models import WebhookDelivery
from tests.support import ROOT, SHOP, make_order, signed_headers, subprocess_env
from webhooks.payload import MAX_DEPTH
from webhooks.topics import KNOWN_TOPICS

ORDER = json.dumps(make_order(1001)).encode()


def inbox(rt: Runtime) -> list[WebhookDelivery]:
    with rt.sessions() as session:
        return list(session.scalars(select(WebhookDelivery)).all())


def post(
    client: FlaskClient, body: bytes, topic: str = "orders/create", **changes: str
) -> tuple[int, dict[str, str]]:
    """POST `body` signed with the shop's secret, headers changed as given (after signing)."""
    headers = signed_headers(body, topic, "door-1")
    headers.update({name.replace("_", "-"): value for name, value in changes.items()})
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    return response.status_code, response.get_json()


def assert_refused(answer: tuple[int, dict[str, str]], status: int, reason: str, rt: Runtime):
    code, json_body = answer
    assert (code, reason in json_body["error"]) == (status, True), json_body
    assert inbox(rt) == []


def test_the_endpoint_answers_before_flask_and_the_rest_reaches_flask(
    client: FlaskClient, rt: Runtime
) -> None:
    """The webhook path is answered by webhooks/endpoint.py, not by a Flask view: no
    session cookie, plain JSON; a method other than POST is 405 naming POST; other paths
    are still Flask's."""
    code, answer = post(client, ORDER)
    assert (code, answer) == (200, {"status": "accepted"})
    response = client.post(
        "/webhooks/shopify", data=ORDER, headers=signed_headers(ORDER, "orders/create", "door-1")
    )
    assert response.get_json() == {"status": "duplicate"}
    assert response.headers["Content-Type"] == "application/json"
    assert "Set-Cookie" not in response.headers
    refused = client.get("/webhooks/shopify")
    assert (refused.status_code, refused.headers["Allow"]) == (405, "POST")
    assert refused.get_json() == {"error": "method not allowed"}
    assert len(inbox(rt)) == 1
    assert client.get("/webhooks/shopify/elsewhere").status_code == 404  # Flask's answer
    assert client.get("/healthz").status_code in (200, 503)  # a Flask view


def test_a_body_shorter_than_its_content_length_is_400(client: FlaskClient, rt: Runtime) -> None:
    """The client went away mid-body (werkzeug raises ClientDisconnected): bad input, a 4xx,
    not an error of ours."""
    answers = []
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/webhooks/shopify",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(ORDER[:100]),
        "CONTENT_LENGTH": str(len(ORDER)),
        **{
            f"HTTP_{k.upper().replace('-', '_')}": v
            for k, v in signed_headers(ORDER, "orders/create", "cut").items()
        },
    }
    body = b"".join(client.application(environ, lambda status, _headers: answers.append(status)))
    assert answers == ["400 Bad Request"], body
    assert inbox(rt) == []


def test_webhook_answers_carry_hsts_on_an_https_app_url(rt: Runtime) -> None:
    secure = Runtime(replace(rt.settings, app_url="https://connector.example.com"))
    try:
        for app_runtime, expected in ((secure, "max-age=31536000"), (rt, None)):
            client = create_app(app_runtime).test_client()
            response = client.get("/webhooks/shopify")
            assert response.headers.get("Strict-Transport-Security") == expected
    finally:
        secure.engine.dispose()


class BrokenInbox:
    """An inbox with a bug in it: not the storage being down, which is a 503."""

    def record(self, _values: object) -> bool:
        raise KeyError("a bug")


def test_an_unexpected_error_is_a_500_that_is_logged_and_counted(
    client: FlaskClient, rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    rt.inbox = BrokenInbox()  # type: ignore[assignment]
    code, answer = post(client, ORDER)
    assert (code, answer) == (500, {"error": "internal error"})
    assert "webhook failed" in caplog.text and "KeyError" in caplog.text
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'answer="error",status="500",topic="orders/create"' in metrics


def test_a_non_ascii_signature_is_401(client: FlaskClient, rt: Runtime) -> None:
    answer = post(client, ORDER, X_Shopify_Hmac_Sha256="é" * 44)
    assert_refused(answer, 401, "X-Shopify-Hmac-Sha256 is not base64", rt)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, f"nested deeper than {MAX_DEPTH}"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, f"nested deeper than {MAX_DEPTH}"),
        (b'{"id": 1, "a":' * MAX_DEPTH + b"{}" + b"}" * MAX_DEPTH, "nested deeper than"),
        (b'{"id": ' + b"9" * 5000 + b"}", "body is not JSON"),
        ('{"id": 1}'.encode("utf-16"), "body is not UTF-8"),
        (b"\xef\xbb\xbf" + ORDER, "body starts with a byte order mark"),
        (ORDER.replace(b'"total_price": "', b'"total_price": NaN, "x": "'), "NaN is not"),
        (b'{"id": Infinity}', "Infinity is not a number"),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "over-max-depth",
        "5000-digits",
        "utf-16",
        "bom",
        "nan",
        "inf",
    ],
)
def test_a_signed_body_the_worker_could_not_read_is_400(
    client: FlaskClient, rt: Runtime, body: bytes, reason: str
) -> None:
    assert_refused(post(client, body), 400, reason, rt)


@pytest.mark.parametrize(
    ("header", "limit"),
    [
        ("X-Shopify-Event-Id", lengths.SHOPIFY_EVENT_ID),
        ("X-Shopify-Webhook-Id", lengths.WEBHOOK_ID),
        ("X-Shopify-API-Version", lengths.API_VERSION),
        ("X-Shopify-Topic", lengths.TOPIC),
    ],
)
def test_a_header_longer_than_its_column_is_400_not_503(
    client: FlaskClient, rt: Runtime, header: str, limit: int
) -> None:
    answer = post(client, ORDER, **{header: "9" * (limit + 1)})
    assert_refused(answer, 400, f"{header} is longer than {limit} characters", rt)


def test_a_shop_domain_longer_than_its_column_is_400(client: FlaskClient, rt: Runtime) -> None:
    shop = "s" * 300 + ".myshopify.com"
    answer = post(client, ORDER, X_Shopify_Shop_Domain=shop)
    assert_refused(answer, 400, "X-Shopify-Shop-Domain is longer than 255 characters", rt)


def test_values_as_long_as_their_columns_are_stored(client: FlaskClient, rt: Runtime) -> None:
    shop = "s" * (lengths.SHOP_DOMAIN - len(".myshopify.com")) + ".myshopify.com"
    body = json.dumps(make_order(1002, id="9" * lengths.RESOURCE_KEY)).encode()
    code, answer = post(
        client,
        body,
        X_Shopify_Shop_Domain=shop,
        X_Shopify_Event_Id="e" * lengths.SHOPIFY_EVENT_ID,
        X_Shopify_Webhook_Id="w" * lengths.WEBHOOK_ID,
        X_Shopify_API_Version="v" * lengths.API_VERSION,
    )
    assert (code, answer) == (200, {"status": "accepted"})
    (row,) = inbox(rt)
    assert (row.shop_domain, row.resource_key) == (shop, "9" * lengths.RESOURCE_KEY)
    assert len(row.shopify_event_id) == lengths.SHOPIFY_EVENT_ID
    assert row.webhook_id == "w" * lengths.WEBHOOK_ID and row.api_version == "v" * 16


@pytest.mark.parametrize("value", ["door\x00event", "door\x7f"])
def test_a_header_with_control_characters_is_400(
    client: FlaskClient, rt: Runtime, value: str
) -> None:
    answer = post(client, ORDER, X_Shopify_Event_Id=value)
    assert_refused(answer, 400, "X-Shopify-Event-Id has unprintable characters", rt)


def test_a_triggered_at_past_year_9999_is_left_out(client: FlaskClient, rt: Runtime) -> None:
    code, answer = post(client, ORDER, X_Shopify_Triggered_At="9999-12-31T23:59:59-05:00")
    assert (code, answer) == (200, {"status": "accepted"})
    (row,) = inbox(rt)
    assert row.triggered_at is None and row.shopify_event_id == "door-1"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("orders/create", make_order(1003, id="1" * 200), "id is longer than 128 characters"),
        ("orders/create", make_order(1003, id=10**200), "id is longer than 128 characters"),
        ("checkouts/create", {"token": "t" * 129}, "token is longer than 128 characters"),
        ("refunds/create", {"id": 9, "order_id": "7\u0000"}, "order_id has unprintable"),
    ],
)
def test_a_resource_key_that_cannot_be_stored_is_400(
    client: FlaskClient, rt: Runtime, topic: str, payload: dict[str, object], reason: str
) -> None:
    body = json.dumps(payload).encode()
    assert_refused(post(client, body, topic=topic), 400, reason, rt)


@pytest.mark.parametrize("key", [{"nested": 1}, [1, 2], True])
def test_a_resource_key_that_is_no_scalar_is_stored_as_none(
    client: FlaskClient, rt: Runtime, key: object
) -> None:
    body = json.dumps(make_order(1004, id=key)).encode()
    assert post(client, body) == (200, {"status": "accepted"})
    (row,) = inbox(rt)
    assert row.resource_key is None and json.loads(row.body)["id"] == key


def test_a_utf8_body_is_stored_as_the_text_that_was_signed(
    client: FlaskClient, rt: Runtime
) -> None:
    text = json.dumps(make_order(1005, note="Grüße ☃"), ensure_ascii=False)
    body = text.replace("☃", "☃ \\ud800").encode()  # an escaped lone surrogate is JSON
    assert post(client, body) == (200, {"status": "accepted"})
    (row,) = inbox(rt)
    assert row.body.encode() == body and row.shop_domain == SHOP
    assert json.loads(row.body)["note"] == "Grüße ☃ \ud800"


# -- chunked bodies, over a real socket to real servers -----------------------------------

LIMIT = 2048  # the servers' WEBHOOK_MAX_BODY_BYTES


def padded(size: int) -> bytes:
    """A JSON order of exactly `size` bytes."""
    bare = json.dumps({"id": 1006, "pad": ""}).encode()
    return json.dumps({"id": 1006, "pad": "x" * (size - len(bare))}).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def werkzeug_server(rt: Runtime) -> Iterator[int]:
    """werkzeug's server, as in `make run` and the fakes: it dechunks and sets
    `wsgi.input_terminated`."""
    settings = replace(rt.settings, max_body_bytes=LIMIT)
    server = LoopbackServer(create_app(Runtime(settings)))
    try:
        yield server.start()
    finally:
        server.stop()


@contextmanager
def gunicorn_server(rt: Runtime) -> Iterator[int]:
    """gunicorn as the Procfile runs it (it sets `wsgi.input_terminated` on every request)."""
    port = free_port()
    env = {**subprocess_env(rt.settings), "WEBHOOK_MAX_BODY_BYTES": str(LIMIT)}
    command = ["gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        [sys.executable, "-m", *command, "connector.app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


SERVERS = {"werkzeug": werkzeug_server, "gunicorn": gunicorn_server}


def post_chunked(port: int, body: bytes) -> tuple[int, dict[str, str]]:
    """POST `body`, signed, in 500-byte chunks (Transfer-Encoding: chunked, no length).

    A server may answer 413 and close before the last chunk is sent: the send then breaks
    off (a broken pipe, a reset) and the answer is read all the same, as Shopify would.
    """
    headers = signed_headers(body, "orders/create", f"chunked-{len(body)}")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST /webhooks/shopify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        try:
            connection.sendall(request)
            for start in range(0, len(body), 500):
                chunk = body[start : start + 500]
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            connection.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before reading it all
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        return answer.status, json.loads(answer.read())


@pytest.mark.slow
@pytest.mark.parametrize("server", SERVERS)
def test_a_chunked_body_over_the_limit_is_413(rt: Runtime, server: str) -> None:
    with SERVERS[server](rt) as port:
        # werkzeug stops reading a chunked body at the limit without an error: before, the
        # door saw it cut short and answered 401 (the signature no longer matched).
        assert post_chunked(port, padded(LIMIT + 1)) == (413, {"error": "body too large"})
        assert post_chunked(port, padded(3 * LIMIT)) == (413, {"error": "body too large"})
        assert inbox(rt) == []
        assert post_chunked(port, padded(LIMIT)) == (200, {"status": "accepted"})
        assert post_chunked(port, padded(LIMIT - 1)) == (200, {"status": "accepted"})
    assert sorted(len(row.body) for row in inbox(rt)) == [LIMIT - 1, LIMIT]


# -- any input: never a 5xx ------------------------------------------------------------------

# A WSGI server hands header values over as latin-1 text (no CR or LF: they end a header).
HEADER_TEXT = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=300)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=200),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)
BODIES = st.one_of(
    st.just(ORDER),
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["id", "token", "order_id", "customer", "x"]), JSON_VALUES)
    .map(json.dumps)
    .map(str.encode),
    st.builds(
        lambda text, prefix: prefix + text.encode("utf-8", "surrogatepass"),
        st.text(max_size=50),
        st.sampled_from([b"", b"\xef\xbb\xbf", b'{"id": ', b"[" * 2000]),
    ),
)


FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HEADER_NAMES = st.sampled_from(
    [
        "X-Shopify-Topic",
        "X-Shopify-Shop-Domain",
        "X-Shopify-Event-Id",
        "X-Shopify-Webhook-Id",
        "X-Shopify-API-Version",
        "X-Shopify-Triggered-At",
        "X-Shopify-Hmac-Sha256",
    ]
)


def assert_answered(client: FlaskClient, rt: Runtime, body: bytes, headers: dict[str, str]):
    """A 200, a 400 or a 401 with a reason; what is accepted, the worker can read."""
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code in (200, 400, 401), response.get_data()
    answer = response.get_json()
    if response.status_code != 200:
        assert answer["error"]
    elif answer["status"] == "accepted":
        row = max(inbox(rt), key=lambda row: row.id)
        assert json.loads(row.body) == json.loads(body)


@FUZZ
@given(
    changes=st.dictionaries(HEADER_NAMES, HEADER_TEXT, min_size=1, max_size=3),
    topic=st.sampled_from(sorted(KNOWN_TOPICS)),
)
def test_no_headers_get_a_5xx(
    client: FlaskClient, rt: Runtime, changes: dict[str, str], topic: str
) -> None:
    headers = {**signed_headers(ORDER, topic, "fuzz-headers"), **changes}
    assert_answered(client, rt, ORDER, headers)


@FUZZ
@given(body=BODIES, topic=st.sampled_from(sorted(KNOWN_TOPICS)), event=st.uuids())
def test_no_signed_body_gets_a_5xx(
    client: FlaskClient, rt: Runtime, body: bytes, topic: str, event: object
) -> None:
    assert_answered(client, rt, body, signed_headers(body, topic, str(event)))
