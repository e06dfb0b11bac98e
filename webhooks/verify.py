"""Verify Shopify webhook deliveries. Pure: raw body and headers in, a verdict out."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

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
    """Read Shopify's delivery headers (case-insensitively); raise on missing or bad ones."""
    lowered = {key.lower(): value for key, value in headers.items()}
    topic = lowered.get("x-shopify-topic", "").strip()
    shop = lowered.get("x-shopify-shop-domain", "").strip().lower()
    if not topic:
        raise MalformedDeliveryError("missing X-Shopify-Topic")
    if not shop:
        raise MalformedDeliveryError("missing X-Shopify-Shop-Domain")
    if not is_shop_domain(shop):
        raise MalformedDeliveryError("X-Shopify-Shop-Domain is not a *.myshopify.com domain")
    webhook_id = lowered.get("x-shopify-webhook-id") or None
    event_id = lowered.get("x-shopify-event-id") or webhook_id
    if not event_id:
        raise MalformedDeliveryError("missing X-Shopify-Event-Id")
    return DeliveryHeaders(
        topic=topic,
        shop_domain=shop,
        event_id=event_id,
        webhook_id=webhook_id,
        api_version=lowered.get("x-shopify-api-version") or None,
        triggered_at=_parse_time(lowered.get("x-shopify-triggered-at")),
    )


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_utc(value)
    except ValueError:
        return None
