"""Webhook verification: the HMAC recipe and every way a delivery is refused."""

from __future__ import annotations

import pytest

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
