"""Webhook verification: the HMAC recipe and every way a delivery is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import lengths
from webhooks.verify import (
    MalformedDeliveryError,
    SignatureError,
    read_headers,
    sign,
    verify_signature,
)

BODY = b'{"id":820982911946154508,"email":"jon@example.com"}'


def test_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    # Known answer computed with openssl, not with this code:
    #   printf '%s' "$BODY" | openssl dgst -sha256 -hmac hush -binary | base64
    assert sign(BODY, "hush") == "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="


def test_any_configured_secret_verifies() -> None:
    verify_signature(BODY, sign(BODY, "old"), ["new", "old"])


@pytest.mark.parametrize(
    ("signature", "reason"),
    [(None, "missing"), ("", "missing"), ("bm90IGEgc2lnbmF0dXJl", "does not match")],
)
def test_bad_signatures_are_refused(signature: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason) as caught:
        verify_signature(BODY, signature, ["hush"])
    assert caught.value.status == 401


def test_one_changed_byte_is_refused() -> None:
    signature = sign(BODY, "hush")
    with pytest.raises(SignatureError):
        verify_signature(BODY.replace(b"jon", b"jim"), signature, ["hush"])


GOOD_HEADERS = {
    "X-Shopify-Topic": "orders/create",
    "X-Shopify-Shop-Domain": "Store-1.myshopify.com",
    "X-Shopify-Event-Id": "ev-1",
    "X-Shopify-Webhook-Id": "wh-1",
    "X-Shopify-API-Version": "2026-07",
    "X-Shopify-Triggered-At": "2026-07-14T14:21:40.123Z",
}


def test_headers_are_read_case_insensitively() -> None:
    headers = read_headers({key.lower(): value for key, value in GOOD_HEADERS.items()})
    assert headers.topic == "orders/create"
    assert headers.shop_domain == "store-1.myshopify.com"
    assert (headers.event_id, headers.webhook_id, headers.api_version) == (
        "ev-1",
        "wh-1",
        "2026-07",
    )
    assert headers.triggered_at is not None and headers.triggered_at.year == 2026


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("X-Shopify-Topic", "", "missing X-Shopify-Topic"),
        ("X-Shopify-Shop-Domain", "", "missing X-Shopify-Shop-Domain"),
        ("X-Shopify-Shop-Domain", "shop.example.com", "not a *.myshopify.com"),
        ("X-Shopify-Shop-Domain", "a.myshopify.com.evil.io", "not a *.myshopify.com"),
    ],
)
def test_missing_or_bad_headers_are_malformed(header: str, value: str, reason: str) -> None:
    with pytest.raises(MalformedDeliveryError, match=reason.replace("*", r"\*")):
        read_headers({**GOOD_HEADERS, header: value})


def test_event_id_falls_back_to_the_webhook_id() -> None:
    headers = dict(GOOD_HEADERS)
    del headers["X-Shopify-Event-Id"]
    assert read_headers(headers).event_id == "wh-1"


@pytest.mark.parametrize("signature", ["é", "ü" * 44, "\u2603", "\udcff"])
def test_a_non_ascii_signature_is_refused_not_compared(signature: str) -> None:
    # hmac.compare_digest raises TypeError on non-ASCII text: that was a 500.
    with pytest.raises(SignatureError, match="not base64") as caught:
        verify_signature(BODY, signature, ["hush"])
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("header", "limit"),
    [
        ("X-Shopify-Topic", lengths.TOPIC),
        ("X-Shopify-Event-Id", lengths.SHOPIFY_EVENT_ID),
        ("X-Shopify-Webhook-Id", lengths.WEBHOOK_ID),
        ("X-Shopify-API-Version", lengths.API_VERSION),
    ],
)
def test_a_header_longer_than_its_column_is_refused(header: str, limit: int) -> None:
    assert read_headers({**GOOD_HEADERS, header: "x" * limit})  # as long as it may be
    with pytest.raises(MalformedDeliveryError, match=f"{header} is longer than {limit}"):
        read_headers({**GOOD_HEADERS, header: "x" * (limit + 1)})


def test_a_shop_domain_longer_than_its_column_is_refused() -> None:
    longest = "s" * (lengths.SHOP_DOMAIN - len(".myshopify.com")) + ".myshopify.com"
    assert read_headers({**GOOD_HEADERS, "X-Shopify-Shop-Domain": longest}).shop_domain == longest
    with pytest.raises(MalformedDeliveryError, match="Shop-Domain is longer than 255"):
        read_headers({**GOOD_HEADERS, "X-Shopify-Shop-Domain": "s" + longest})


@pytest.mark.parametrize("value", ["ev\x00-1", "ev\x7f", "e\u0085v", "\ud800"])
def test_a_stored_header_with_unprintable_characters_is_refused(value: str) -> None:
    with pytest.raises(MalformedDeliveryError, match="X-Shopify-Event-Id has unprintable"):
        read_headers({**GOOD_HEADERS, "X-Shopify-Event-Id": value})


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "not a time", "\x00"]
)
def test_an_unreadable_triggered_at_is_left_out(value: str) -> None:
    headers = read_headers({**GOOD_HEADERS, "X-Shopify-Triggered-At": value})
    assert headers.triggered_at is None and headers.event_id == "ev-1"


HEADER_NAMES = st.sampled_from([*GOOD_HEADERS, "X-Shopify-Hmac-Sha256"])


@settings(max_examples=300)
@given(st.dictionaries(HEADER_NAMES, st.text(max_size=300), max_size=7))
def test_any_headers_are_read_or_refused_as_malformed(changes: dict[str, str]) -> None:
    try:
        headers = read_headers({**GOOD_HEADERS, **changes})
    except MalformedDeliveryError:
        return
    stored = [headers.topic, headers.shop_domain, headers.event_id, headers.webhook_id]
    assert all(value is None or value.isprintable() for value in [*stored, headers.api_version])
    assert len(headers.shop_domain) <= lengths.SHOP_DOMAIN
    assert len(headers.event_id) <= lengths.SHOPIFY_EVENT_ID


@settings(max_examples=300)
@given(st.text(max_size=100))
def test_any_signature_text_is_checked_or_refused_never_a_type_error(signature: str) -> None:
    with pytest.raises(SignatureError):
        verify_signature(BODY, signature, ["hush", "other"])
