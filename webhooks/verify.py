"""Verify Shopify webhook deliveries. Pure: raw body and headers in, a verdict out."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from connector import lengths
from connector.shop_domain import is_shop_domain
from connector.timeutil import parse_utc


class WebhookError(Exception):
    """A delivery we refuse; `status` is the HTTP answer and `reason` says why."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureError(WebhookError):
    """Raised when the HMAC header is missing or matches none of the app's secrets."""

    status = 401


class MalformedDeliveryError(WebhookError):
    """Raised when a signed delivery lacks required headers or is not a JSON object."""

    status = 400


def sign(body: bytes, secret: str) -> str:
    """Shopify's signature: base64 of HMAC-SHA256(secret, raw body)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(body: bytes, signature: str | None, secrets: Iterable[str]) -> None:
    """Accept the body if it is signed with any configured secret (rotation); else raise.

    Every secret is compared, in constant time, so timing tells nothing about which matched.
    """
    if not signature:
        raise SignatureError("missing X-Shopify-Hmac-Sha256")
    if not signature.isascii():  # compare_digest raises TypeError on non-ASCII text
        raise SignatureError("X-Shopify-Hmac-Sha256 is not base64")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sign(body, secret), signature.strip())
    if not matched:
        raise SignatureError("signature does not match")


class HeaderItems(Protocol):
    """A dict of headers or werkzeug's `Headers`: anything whose items are name/value pairs."""

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass(frozen=True)
class DeliveryHeaders:
    topic: str
    shop_domain: str
    event_id: str
    webhook_id: str | None
    api_version: str | None
    triggered_at: datetime | None


def read_headers(headers: HeaderItems) -> DeliveryHeaders:
    """Read Shopify's delivery headers (case-insensitively); raise on missing or bad ones.

    Every value that is stored must fit its column (`connector.lengths`) and be printable
    text (no control characters: PostgreSQL refuses NUL), else the delivery is refused here
    with a 400 rather than by the database with a 503 that Shopify would retry forever.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    topic = _header(lowered, "X-Shopify-Topic", lengths.TOPIC)
    shop = _header(lowered, "X-Shopify-Shop-Domain", lengths.SHOP_DOMAIN)
    if not topic:
        raise MalformedDeliveryError("missing X-Shopify-Topic")
    if not shop:
        raise MalformedDeliveryError("missing X-Shopify-Shop-Domain")
    shop = shop.lower()
    if not is_shop_domain(shop):
        raise MalformedDeliveryError("X-Shopify-Shop-Domain is not a *.myshopify.com domain")
    webhook_id = _header(lowered, "X-Shopify-Webhook-Id", lengths.WEBHOOK_ID)
    event_id = _header(lowered, "X-Shopify-Event-Id", lengths.SHOPIFY_EVENT_ID) or webhook_id
    if not event_id:
        raise MalformedDeliveryError("missing X-Shopify-Event-Id")
    return DeliveryHeaders(
        topic=topic,
        shop_domain=shop,
        event_id=event_id,
        webhook_id=webhook_id,
        api_version=_header(lowered, "X-Shopify-API-Version", lengths.API_VERSION),
        triggered_at=_parse_time(lowered.get("x-shopify-triggered-at")),
    )


def _header(lowered: dict[str, str], name: str, max_length: int) -> str | None:
    """The header's value, trimmed, None when absent or empty; raise when it can't be stored."""
    value = lowered.get(name.lower(), "").strip()
    if not value:
        return None
    if len(value) > max_length:
        raise MalformedDeliveryError(f"{name} is longer than {max_length} characters")
    if not value.isprintable():
        raise MalformedDeliveryError(f"{name} has unprintable characters")
    return value


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_utc(value)
    except ValueError:
        return None
