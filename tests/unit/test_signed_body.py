"""Reading a signed body: what the door stores, the worker can parse; the rest is a 400."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import lengths
from webhooks.payload import MAX_DEPTH, parse_body, resource_key
from webhooks.verify import MalformedDeliveryError


def test_a_json_object_is_read_and_kept_as_the_text_it_was() -> None:
    body = '{"id": 1, "note": "café ☃", "total": "10.00"}'.encode()
    signed = parse_body(body)
    assert signed.text == body.decode()
    assert signed.payload == {"id": 1, "note": "café ☃", "total": "10.00"}


def nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"", "body is not JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b"null", "body is not a JSON object"),
        ('{"id": 1}'.encode("utf-16"), "body is not UTF-8"),
        ('{"id": 1}'.encode("utf-16-le"), "body is not JSON"),  # NULs are UTF-8
        (b'{"note": "caf\xe9"}', "body is not UTF-8"),  # latin-1
        (b'{"note": "\xed\xa0\x80"}', "body is not UTF-8"),  # an encoded surrogate
        (b'\xef\xbb\xbf{"id": 1}', "byte order mark"),
        (b'{"id": ' + b"9" * 5000 + b"}", "body is not JSON"),  # over int's digit limit
        (b'{"total": NaN}', "NaN is not a number"),
        (b'{"total": -Infinity}', "-Infinity is not a number"),
        (b'{"a": [' * 100_000 + b"1" + b"]}" * 100_000, f"deeper than {MAX_DEPTH}"),
        (nested(MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
        (b'{"a": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}", f"deeper than {MAX_DEPTH}"),
    ],
)
def test_a_body_the_worker_could_not_read_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedDeliveryError, match=reason) as caught:
        parse_body(body)
    assert caught.value.status == 400


def test_nesting_up_to_the_limit_is_read() -> None:
    assert parse_body(nested(MAX_DEPTH)).payload["a"]


def test_large_finite_numbers_and_escaped_surrogates_are_left_to_the_mapping() -> None:
    signed = parse_body(b'{"total": 1e400, "note": "\\ud800", "n": 0}')
    assert signed.payload["total"] == float("inf")
    assert json.loads(signed.text) == signed.payload


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.binary(),
        st.dictionaries(st.text(max_size=10), JSON, max_size=4).map(
            lambda d: json.dumps(d).encode()
        ),
        st.dictionaries(st.text(max_size=10), JSON, max_size=4).map(
            lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass")
        ),
        st.builds(
            lambda text, encoding: text.encode(
                encoding, "surrogatepass" if "utf" in encoding else "replace"
            ),
            st.text(),
            st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1", "utf-8-sig"]),
        ),
    )
)
def test_any_body_is_read_by_the_worker_or_refused_with_a_400(body: bytes) -> None:
    try:
        signed = parse_body(body)
    except MalformedDeliveryError as refused:
        assert refused.status == 400
        return
    assert isinstance(signed.payload, dict)
    assert json.loads(signed.text) == signed.payload  # what the worker does with the row


@pytest.mark.parametrize(
    ("topic", "payload", "key"),
    [
        ("orders/create", {"id": 820982911946154508}, "820982911946154508"),
        ("orders/create", {"id": "gid-1"}, "gid-1"),
        ("checkouts/update", {"token": "abc", "id": 5}, "abc"),
        ("refunds/create", {"id": 9, "order_id": 7}, "7"),
        ("customers/redact", {"customer": {"id": 3}, "shop_id": 1}, "3"),
        ("customers/redact", {"customer": {"id": None}, "shop_id": 1}, "1"),
        ("shop/redact", {"shop_id": 1}, "1"),
        # Not a string or a number: no key; the delivery is stored, the worker judges it.
        ("orders/create", {"id": {"nested": 1}}, None),
        ("orders/create", {"id": [1, 2]}, None),
        ("orders/create", {"id": True}, None),
        ("orders/create", {}, None),
        ("checkouts/create", {"token": ""}, None),
        ("customers/redact", {"customer": {"id": {"x": 1}}, "shop_id": 1}, "1"),
        ("customers/redact", {"customer": "someone", "shop_id": [1]}, None),
    ],
)
def test_resource_key_is_the_id_as_text_or_none(
    topic: str, payload: dict[str, Any], key: str | None
) -> None:
    assert resource_key(topic, payload) == key


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("orders/create", {"id": "x" * (lengths.RESOURCE_KEY + 1)}, "id is longer than 128"),
        ("orders/create", {"id": 10**lengths.RESOURCE_KEY}, "id is longer than 128"),
        ("checkouts/create", {"token": "t" * 500}, "token is longer than 128"),
        ("refunds/create", {"order_id": "1\x00"}, "order_id has unprintable characters"),
        ("orders/create", {"id": "\ud800"}, "id has unprintable characters"),
        ("customers/redact", {"customer": {"id": "c" * 200}}, "customer.id is longer"),
    ],
)
def test_a_key_that_cannot_be_stored_is_refused(
    topic: str, payload: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MalformedDeliveryError, match=reason):
        resource_key(topic, payload)


def test_a_key_as_long_as_its_column_is_kept() -> None:
    longest = "k" * lengths.RESOURCE_KEY
    assert resource_key("checkouts/create", {"token": longest}) == longest
