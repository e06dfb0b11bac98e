"""Admin API Order nodes -> the webhook shape -> order_placed, as reconciliation stores them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.spec import load_spec, validate
from webhooks.canonical import events_for
from webhooks.graphql_orders import (
    RECONCILIATION,
    SOURCE_FIELD,
    event_source_of,
    legacy_id,
    order_payload,
)
from webhooks.mapping import map_order

ROOT = Path(__file__).resolve().parents[2]
SHOP = "example.myshopify.com"


def money(shop: str, presentment: str | None = None) -> dict[str, Any]:
    return {
        "shopMoney": {"amount": shop, "currencyCode": "USD"},
        "presentmentMoney": {
            "amount": presentment or shop,
            "currencyCode": "EUR" if presentment else "USD",
        },
    }


def node(**overrides: Any) -> dict[str, Any]:
    """An Order node as the ReconcileOrders query returns it: 2 mugs at 20 (EUR 18.50), a 5
    discount on the line, shipping 4.90, tax 3, in a USD shop, paid in EUR."""
    found: dict[str, Any] = {
        "id": "gid://shopify/Order/6123456789012",
        "legacyResourceId": "6123456789012",
        "name": "#1042",
        "createdAt": "2026-07-14T10:20:00Z",
        "processedAt": "2026-07-14T10:21:00Z",
        "updatedAt": "2026-07-14T11:00:00Z",
        "cancelledAt": None,
        "email": "Maya.Chen@Example.com",
        "phone": None,
        "test": False,
        "currencyCode": "USD",
        "presentmentCurrencyCode": "EUR",
        "displayFinancialStatus": "PARTIALLY_REFUNDED",
        "sourceName": "web",
        "checkoutToken": "0cc1f0e5a4b8",
        "discountCodes": ["SUMMER"],
        "customer": {
            "legacyResourceId": "7234567890123",
            "email": "maya.chen@example.com",
            "firstName": "Maya",
            "lastName": "Chen",
            "phone": "+14155550100",
            "createdAt": "2026-07-14T10:19:00Z",
        },
        "shippingAddress": {"countryCodeV2": "CA"},
        "totalPriceSet": money("42.90", "39.60"),
        "subtotalPriceSet": money("35.00", "32.40"),
        "totalDiscountsSet": money("5.00", "4.60"),
        "totalTaxSet": money("3.00", "2.80"),
        "totalShippingPriceSet": money("4.90", "4.40"),
        "lineItems": {
            "nodes": [
                {
                    "id": "gid://shopify/LineItem/111",
                    "title": "Mug",
                    "variantTitle": "Blue",
                    "vendor": "Acme",
                    "quantity": 2,
                    "sku": "MUG-1",
                    "product": {"legacyResourceId": "9001"},
                    "variant": {"legacyResourceId": "9002"},
                    "originalUnitPriceSet": money("20.00", "18.50"),
                    "totalDiscountSet": money("5.00", "4.60"),
                }
            ]
        },
    }
    found.update(overrides)
    return found


def test_an_order_node_becomes_the_webhook_shape() -> None:
    payload = order_payload(node(), source=RECONCILIATION)

    assert payload["id"] == 6123456789012 and payload["order_number"] == 1042
    assert payload["financial_status"] == "partially_refunded"
    assert payload["checkout_token"] == "0cc1f0e5a4b8"
    assert payload["customer"] == {
        "id": 7234567890123,
        "email": "maya.chen@example.com",
        "first_name": "Maya",
        "last_name": "Chen",
        "phone": "+14155550100",
        "created_at": "2026-07-14T10:19:00Z",
    }
    assert payload["total_price"] == "42.90"
    assert payload["total_price_set"]["presentment_money"] == {
        "amount": "39.60",
        "currency_code": "EUR",
    }
    (line,) = payload["line_items"]
    assert (line["id"], line["product_id"], line["variant_id"]) == (111, 9001, 9002)
    assert line["price"] == "20.00" and line["total_discount"] == "5.00"
    assert payload["discount_codes"] == [{"code": "SUMMER"}]
    assert payload[SOURCE_FIELD] == RECONCILIATION
    assert "cancelled_at" not in payload and "phone" not in payload  # nulls left out


def test_the_recovered_order_maps_like_a_webhook_in_the_shoppers_currency() -> None:
    [event] = events_for("orders/create", order_payload(node(), source=RECONCILIATION), SHOP)
    props = event.properties

    assert event.natural_key == "6123456789012"
    assert event.person.customer_id == "7234567890123"
    assert event.person.email == "maya.chen@example.com"
    assert event.occurred_at.isoformat() == "2026-07-14T10:21:00+00:00"  # processed_at
    assert props["event_source"] == "reconciliation"
    assert (props["currency"], props["revenue"], props["shop_revenue"]) == ("EUR", 39.6, 42.9)
    assert (props["shipping"], props["tax"], props["discount"]) == (4.4, 2.8, 4.6)
    assert props["items"][0]["line_total"] == pytest.approx(32.4)  # 2 x 18.50 - 4.60
    assert props["shipping_country"] == "CA" and props["order_name"] == "#1042"
    assert props["checkout_token"] == "0cc1f0e5a4b8"
    placed = event.with_properties(is_first_order=True)  # decided by jobs/orders.py
    assert validate(load_spec(ROOT / "spec.yaml"), placed.name, placed.properties) == []


def test_a_webhook_body_maps_with_event_source_webhook() -> None:
    payload = order_payload(node())

    assert event_source_of(payload) == "webhook"
    assert events_for("orders/create", payload, SHOP)[0].properties["event_source"] == "webhook"
    mapped = map_order(payload, shop_domain=SHOP, event_source=RECONCILIATION)
    assert mapped.properties["event_source"] == "reconciliation"


def test_a_sparse_node_still_maps() -> None:
    """A guest order of the shop's currency, no address, no discount set on its line."""
    sparse = node(
        legacyResourceId=None,
        customer=None,
        presentmentCurrencyCode=None,
        shippingAddress=None,
        totalShippingPriceSet=None,
        totalPriceSet=money("10.00"),
        subtotalPriceSet=money("10.00"),
        lineItems={"nodes": [{"title": "Card", "quantity": 1}]},
    )

    [event] = events_for("orders/create", order_payload(sparse, source=RECONCILIATION), SHOP)

    assert event.natural_key == "6123456789012"  # from the gid
    assert event.person.customer_id is None
    assert event.person.email == "maya.chen@example.com"
    assert (event.properties["currency"], event.properties["revenue"]) == ("USD", 10.0)
    assert event.properties["shipping"] == 0.0
    assert event.properties["items"][0]["price"] == 0.0


def test_legacy_ids() -> None:
    assert legacy_id({"legacyResourceId": 5}) == "5"
    assert legacy_id({"id": "gid://shopify/Order/77"}) == "77"
    assert legacy_id({"id": "gid://shopify/LineItem/8?x=1"}) == "8"
    assert legacy_id({"id": "not-a-gid"}) is None
    assert legacy_id({}) is None
