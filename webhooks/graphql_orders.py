"""Admin API (GraphQL) Order nodes in the REST webhook shape the mapping reads. Pure.

Reconciliation feeds orders it finds through the Admin API into the inbox as if their
webhook had come, so they are mapped and placed exactly like live ones. A stored body
carries `SOURCE_FIELD` so the mapping knows where the order came from; Shopify never
sends a key starting with an underscore.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SOURCE_FIELD = "_connector_source"
RECONCILIATION = "reconciliation"

_MONEY_FIELDS = {
    "total_price": "totalPriceSet",
    "subtotal_price": "subtotalPriceSet",
    "total_discounts": "totalDiscountsSet",
    "total_tax": "totalTaxSet",
    "total_shipping_price": "totalShippingPriceSet",
}


def event_source_of(payload: Mapping[str, Any]) -> str:
    """The event_source of a stored order body: "reconciliation" when reconciliation made
    it, else "webhook"."""
    return RECONCILIATION if payload.get(SOURCE_FIELD) == RECONCILIATION else "webhook"


def legacy_id(node: Mapping[str, Any]) -> str | None:
    """The numeric id of a node: legacyResourceId, else the tail of its gid."""
    value = node.get("legacyResourceId")
    if value not in (None, ""):
        return str(value)
    gid = node.get("id")
    if isinstance(gid, str) and gid.startswith("gid://"):
        tail = gid.rsplit("/", 1)[-1].split("?", 1)[0]
        return tail or None
    return None


def order_payload(node: Mapping[str, Any], *, source: str | None = None) -> dict[str, Any]:
    """An Admin API Order node as an orders/* webhook body (REST field names and shapes).

    `source` (e.g. RECONCILIATION) is stored in SOURCE_FIELD. Fields the query did not ask
    for stay absent, as in an older API version's payload.
    """
    order_id = legacy_id(node)
    name = _text(node.get("name"))
    digits = (name or "").lstrip("#")
    payload: dict[str, Any] = {
        "id": int(order_id) if order_id and order_id.isdigit() else order_id,
        "admin_graphql_api_id": node.get("id"),
        "name": name,
        "order_number": int(digits) if digits.isdigit() else None,
        "created_at": node.get("createdAt"),
        "processed_at": node.get("processedAt") or node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "cancelled_at": node.get("cancelledAt"),
        "email": node.get("email"),
        "phone": node.get("phone"),
        "test": bool(node.get("test")),
        "currency": node.get("currencyCode"),
        "presentment_currency": node.get("presentmentCurrencyCode") or node.get("currencyCode"),
        "financial_status": _lower(node.get("displayFinancialStatus")),
        "source_name": node.get("sourceName"),
        "checkout_token": node.get("checkoutToken"),
        "cart_token": node.get("cartToken"),
        "discount_codes": [
            {"code": code} for code in node.get("discountCodes") or [] if isinstance(code, str)
        ],
        "customer": _customer(node.get("customer")),
        "line_items": [
            _line(line) for line in _nodes(node.get("lineItems")) if isinstance(line, Mapping)
        ],
    }
    for field, graphql_field in _MONEY_FIELDS.items():
        money = _money_set(node.get(graphql_field))
        if money is not None:
            payload[f"{field}_set"] = money
            payload[field] = money["shop_money"]["amount"]
    address = node.get("shippingAddress")
    if isinstance(address, Mapping):
        payload["shipping_address"] = {
            "country_code": address.get("countryCodeV2") or address.get("countryCode")
        }
    if source is not None:
        payload[SOURCE_FIELD] = source
    return {key: value for key, value in payload.items() if value is not None}


def _customer(customer: Any) -> dict[str, Any] | None:
    if not isinstance(customer, Mapping):
        return None
    customer_id = legacy_id(customer)
    if customer_id is None:
        return None
    found = {
        "id": int(customer_id) if customer_id.isdigit() else customer_id,
        "email": customer.get("email"),
        "first_name": customer.get("firstName"),
        "last_name": customer.get("lastName"),
        "phone": customer.get("phone"),
        "created_at": customer.get("createdAt"),
    }
    return {key: value for key, value in found.items() if value is not None}


def _line(line: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": _int_or_none(legacy_id(line)),
        "title": line.get("title") or line.get("name"),
        "variant_title": line.get("variantTitle"),
        "vendor": line.get("vendor"),
        "quantity": line.get("quantity"),
        "sku": line.get("sku"),
        "product_id": _int_or_none(legacy_id(line.get("product") or {})),
        "variant_id": _int_or_none(legacy_id(line.get("variant") or {})),
    }
    price = _money_set(line.get("originalUnitPriceSet"))
    if price is not None:
        found["price_set"], found["price"] = price, price["shop_money"]["amount"]
    discount = _money_set(line.get("totalDiscountSet"))
    if discount is not None:
        found["total_discount_set"] = discount
        found["total_discount"] = discount["shop_money"]["amount"]
    return {key: value for key, value in found.items() if value is not None}


def _money_set(bag: Any) -> dict[str, dict[str, Any]] | None:
    """A MoneyBag ({shopMoney, presentmentMoney}) as REST's *_set twin."""
    if not isinstance(bag, Mapping) or not isinstance(bag.get("shopMoney"), Mapping):
        return None
    shop = bag["shopMoney"]
    presentment = bag.get("presentmentMoney")
    presentment = presentment if isinstance(presentment, Mapping) else shop
    return {
        "shop_money": {"amount": shop.get("amount"), "currency_code": shop.get("currencyCode")},
        "presentment_money": {
            "amount": presentment.get("amount"),
            "currency_code": presentment.get("currencyCode"),
        },
    }


def _nodes(connection: Any) -> list[Any]:
    if isinstance(connection, Mapping) and isinstance(connection.get("nodes"), list):
        return list(connection["nodes"])
    return []


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _lower(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
