"""Signed ~10 KB orders/create bodies, built from the repo's sample order."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from webhooks.verify import sign

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "orders_create_2026-07.json"
TARGET_BYTES = 10 * 1024
SHOP = "bench-shop.myshopify.com"
SECRET = "bench-shopify-secret"
TOPIC = "orders/create"


def base_order(target_bytes: int = TARGET_BYTES) -> dict[str, Any]:
    """The sample order, padded with copies of its line items until about `target_bytes`."""
    order = json.loads(SAMPLE.read_text())
    now = datetime.now(UTC).isoformat(timespec="seconds")  # a new order, as live traffic is
    order["created_at"] = order["processed_at"] = order["updated_at"] = now
    originals = order["line_items"]
    extra = 0
    while len(_dump(order)) < target_bytes:
        item = copy.deepcopy(originals[extra % len(originals)])
        extra += 1
        item["id"] = int(item["id"]) + 1000 * extra
        item["admin_graphql_api_id"] = f"gid://shopify/LineItem/{item['id']}"
        item["sku"] = f"{item.get('sku') or 'PAD'}-{extra}"
        order["line_items"].append(item)
    return order


def order_variant(base: dict[str, Any], index: int, tag: int) -> dict[str, Any]:
    """A distinct order (id, name, number, customer, email) derived from `base`."""
    order = dict(base)
    order_number = tag * 1_000_000 + index
    order["id"] = order_id(index, tag)
    order["order_number"] = order_number
    order["number"] = order_number
    order["name"] = f"#B{order_number}"
    order["admin_graphql_api_id"] = f"gid://shopify/Order/{order['id']}"
    email = f"bench-{tag}-{index}@example.com"
    order["email"] = order["contact_email"] = email
    customer = dict(order.get("customer") or {})
    customer["id"] = 9_000_000_000_000 + order_number
    customer["email"] = email
    customer["admin_graphql_api_id"] = f"gid://shopify/Customer/{customer['id']}"
    order["customer"] = customer
    return order


def order_id(index: int, tag: int) -> int:
    """The Shopify order id of `order_variant(base, index, tag)`."""
    return 7_000_000_000_000 + tag * 1_000_000 + index


def body_of(order: dict[str, Any]) -> bytes:
    return _dump(order).encode()


def headers_for(body: bytes, event_id: str | None = None, shop: str = SHOP) -> dict[str, str]:
    """Shopify's delivery headers for `shop`; the HMAC covers only the body."""
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": TOPIC,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": sign(body, SECRET),
        "X-Shopify-API-Version": "2026-07",
        "X-Shopify-Triggered-At": "2026-07-14T10:21:40Z",
    }
    if event_id is not None:
        headers["X-Shopify-Event-Id"] = event_id
        headers["X-Shopify-Webhook-Id"] = f"wh-{event_id}"
    return headers


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))
