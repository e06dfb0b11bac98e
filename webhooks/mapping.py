"""Shopify REST webhook payloads -> canonical events, one function per event type.

Pure: stdlib and connector.events only. Parses defensively across API versions (missing
keys, null or empty customer, absent *_set twins, custom line items without ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from connector.events import CanonicalEvent, EventName, Person
from connector.identity import normalize_email
from connector.timeutil import parse_utc
from webhooks.attribution import attribution

# Keep in sync with items_schema_version in spec.yaml (a unit test checks they agree).
ITEMS_SCHEMA_VERSION = 2  # 2: product_type and product_tags

EVENT_SOURCES = ("webhook", "backfill", "replay", "reconciliation")

_CHANNELS = {
    "web": "web",
    "pos": "pos",
    "iphone": "ios",
    "android": "android",
    "shopify_draft_order": "draft",
}

_CENT = Decimal("0.01")
_ZERO = Decimal("0")
_IMPLAUSIBLE_AMOUNT = Decimal("1e15")  # beyond any order; keeps cents exact in a float

PRESENTMENT = "presentment_money"
SHOP = "shop_money"


class MappingError(ValueError):
    """Raised when a payload lacks what the event needs: its stable id, a readable timestamp,
    readable money amounts.

    `reason` is short and machine-readable; neither it nor the message holds personal data.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def channel_for(source_name: str | None) -> str:
    """Map Shopify's source_name to the spec's channel (web, pos, ios, android, draft, other)."""
    if not isinstance(source_name, str):
        return "other"
    return _CHANNELS.get(source_name.strip().lower(), "other")


def map_order(
    payload: Mapping[str, Any],
    *,
    shop_domain: str,
    event_source: str = "webhook",
    products: Mapping[str, ProductInfo] | None = None,
) -> CanonicalEvent:
    """Map an orders/* payload to order_placed (without is_first_order: the caller adds it).

    Raises MappingError when the order has no id or its timestamps are missing/unparseable.
    """
    _check_source(event_source)
    order = _require_mapping(payload, "order")
    if _id(order.get("id")) is None:
        raise MappingError("order has no id")
    customer = _customer(order)
    shop_currency = _text(order.get("currency"))
    currency = _order_currency(order, shop_currency)
    # Plain order amounts are the shop's; the shopper's live in the *_set twins.
    shop = _Amounts(side=SHOP, plain=SHOP)
    shopper = _Amounts(side=PRESENTMENT, plain=SHOP) if currency != shop_currency else shop
    items = _items(order.get("line_items"), shopper, _Catalog(shop_domain, products))

    props: dict[str, Any] = {
        "order_id": str(order["id"]),
        "order_number": _integer(order.get("order_number")),
        "order_name": _text(order.get("name")),
        "revenue": shopper.number(order, "total_price"),
        "subtotal": shopper.number(order, "subtotal_price"),
        "discount": shopper.number_or_zero(order, "total_discounts"),
        "tax": shopper.number_or_zero(order, "total_tax"),
        "shipping": shopper.shipping(order),
        "discount_codes": _discount_codes(order.get("discount_codes")),
        "currency": currency,
        **_items_properties(items),
        "channel": channel_for(order.get("source_name")),
        "event_source": event_source,
        "financial_status": _text(order.get("financial_status")),
        "shipping_country": _country(order),
        "landing_site": _text(order.get("landing_site")),
        "checkout_token": _text(order.get("checkout_token")),
        **attribution(order.get("landing_site"), order.get("referring_site")),
    }
    if props["order_name"] is None and props["order_number"] is not None:
        props["order_name"] = f"#{props['order_number']}"
    if shop_currency and currency != shop_currency:
        props["shop_currency"] = shop_currency
        props["shop_revenue"] = shop.number(order, "total_price")
        props["shop_subtotal"] = shop.number(order, "subtotal_price")
        props["shop_discount"] = shop.number_or_zero(order, "total_discounts")
        props["shop_tax"] = shop.number_or_zero(order, "total_tax")
        props["shop_shipping"] = shop.shipping(order)

    return CanonicalEvent(
        name=EventName.ORDER_PLACED,
        shop_domain=shop_domain,
        natural_key=str(order["id"]),
        occurred_at=_timestamp(order, ("processed_at", "created_at"), "order"),
        person=_person(order, customer),
        properties=_compact(props),
        is_test=bool(order.get("test")),
        order_count_hint=_integer(customer.get("orders_count")),
    )


def map_checkout(
    payload: Mapping[str, Any],
    *,
    shop_domain: str,
    event_source: str = "webhook",
    products: Mapping[str, ProductInfo] | None = None,
) -> CanonicalEvent:
    """Map a checkouts/create|update payload to checkout_started, keyed on the checkout token.

    Raises MappingError when the checkout has no token or its created_at is missing/unparseable.
    """
    _check_source(event_source)
    checkout = _require_mapping(payload, "checkout")
    token = _text(checkout.get("token"))
    if token is None:
        raise MappingError("checkout has no token")
    customer = _customer(checkout)
    shop_currency = _text(checkout.get("currency"))
    currency = _text(checkout.get("presentment_currency")) or shop_currency
    # Plain checkout amounts are the shopper's; shop amounts exist only in *_set twins.
    shopper = _Amounts(side=PRESENTMENT, plain=PRESENTMENT)
    items = _items(checkout.get("line_items"), shopper, _Catalog(shop_domain, products))

    props: dict[str, Any] = {
        "checkout_id": token,
        "cart_value": shopper.number(checkout, "total_price"),
        "subtotal": shopper.number(checkout, "subtotal_price"),
        "currency": currency,
        **_items_properties(items),
        "recovery_url": _text(checkout.get("abandoned_checkout_url")),
        "channel": channel_for(checkout.get("source_name")),
        "event_source": event_source,
        "shipping_country": _country(checkout),
        "discount_codes": _discount_codes(checkout.get("discount_codes")),
        "landing_site": _text(checkout.get("landing_site")),
        **attribution(checkout.get("landing_site"), checkout.get("referring_site")),
    }
    if shop_currency and currency != shop_currency:
        props["shop_currency"] = shop_currency
        props["shop_cart_value"] = _Amounts(side=SHOP, plain=PRESENTMENT).number(
            checkout, "total_price"
        )

    return CanonicalEvent(
        name=EventName.CHECKOUT_STARTED,
        shop_domain=shop_domain,
        natural_key=token,
        occurred_at=_timestamp(checkout, ("created_at",), "checkout"),
        person=_person(checkout, customer),
        properties=_compact(props),
        is_test=bool(checkout.get("test")),
        order_count_hint=_integer(customer.get("orders_count")),
    )


# --- a customer record: the profile alone ------------------------------------------------


def map_customer(payload: Mapping[str, Any], *, shop_domain: str) -> CanonicalEvent:
    """Map a customers/create|update payload (the customer record) to profile_updated: an
    identify-only update of the person, as of the record's updated_at, keyed on the customer
    and that time (each change once).

    Raises MappingError when the customer has no id or no readable updated_at/created_at.
    """
    customer = _require_mapping(payload, "customer")
    if _id(customer.get("id")) is None:
        raise MappingError("customer has no id")
    customer_id, email = shopper_of({"customer": customer})
    updated_at = _timestamp(customer, ("updated_at", "created_at"), "customer")
    person = Person(
        customer_id=customer_id,
        email=email,
        first_name=_text(customer.get("first_name")),
        last_name=_text(customer.get("last_name")),
        accepts_marketing=_accepts_marketing(customer, customer),
        phone=_text(customer.get("phone")),
        created_at=_unix_seconds(customer.get("created_at")),
        **_consents(customer, customer),
    )
    return CanonicalEvent(
        name=EventName.PROFILE_UPDATED,
        shop_domain=shop_domain,
        natural_key=f"{customer_id}@{int(updated_at.timestamp())}",
        occurred_at=updated_at,
        person=person,
    )


# --- after the order: cancellation, refund, fulfilment -----------------------------------


@dataclass(frozen=True)
class PlacedOrder:
    """What the connector stored when it placed an order: who bought it, for how much.

    Refunds and fulfilments carry no customer, so their events go to this person (the
    order's), and a refund's net_revenue is computed from this revenue.
    """

    person: Person
    order_name: str | None
    currency: str | None
    revenue: float | None
    refunded_before: float = 0.0


def map_cancellation(
    payload: Mapping[str, Any],
    *,
    shop_domain: str,
    products: Mapping[str, ProductInfo] | None = None,
) -> CanonicalEvent:
    """Map an orders/cancelled payload (the whole order) to order_cancelled, keyed on the order.

    Raises MappingError when the order has no id or no cancelled_at/updated_at time.
    """
    order = _require_mapping(payload, "order")
    if _id(order.get("id")) is None:
        raise MappingError("order has no id")
    shop_currency = _text(order.get("currency"))
    currency = _order_currency(order, shop_currency)
    shopper = (
        _Amounts(side=PRESENTMENT, plain=SHOP)
        if currency != shop_currency
        else _Amounts(side=SHOP, plain=SHOP)
    )
    items = _items(order.get("line_items"), shopper, _Catalog(shop_domain, products))
    props: dict[str, Any] = {
        "order_id": str(order["id"]),
        "order_name": _text(order.get("name")),
        "cancel_reason": _text(order.get("cancel_reason")),
        "revenue": shopper.number(order, "total_price"),
        "subtotal": shopper.number(order, "subtotal_price"),
        "currency": currency,
        **_items_properties(items),
        "event_source": "webhook",
    }
    return CanonicalEvent(
        name=EventName.ORDER_CANCELLED,
        shop_domain=shop_domain,
        natural_key=str(order["id"]),
        occurred_at=_timestamp(order, ("cancelled_at", "updated_at"), "order"),
        person=_person(order, _customer(order)),
        properties=_compact(props),
    )


def map_refund(
    payload: Mapping[str, Any],
    *,
    shop_domain: str,
    order: PlacedOrder,
    products: Mapping[str, ProductInfo] | None = None,
) -> CanonicalEvent:
    """Map a refunds/create payload to order_refunded, keyed on the refund, on the order's
    person. The refunded amount is the sum of the successful refund transactions.

    Raises MappingError when the refund has no id, no order_id or no time.
    """
    refund = _require_mapping(payload, "refund")
    if _id(refund.get("id")) is None or _id(refund.get("order_id")) is None:
        raise MappingError("refund has no id or no order_id")
    amount, currency = _refunded(refund.get("transactions"), order.currency)
    money = _Amounts(side=PRESENTMENT, plain=PRESENTMENT)
    items = [
        _refunded_item(line, money, _Catalog(shop_domain, products))
        for line in refund.get("refund_line_items") or []
        if isinstance(line, Mapping) and isinstance(line.get("line_item"), Mapping)
    ]
    net = None
    if order.revenue is not None:
        net = _number(Decimal(str(order.revenue)) - Decimal(str(order.refunded_before)) - amount)
    props: dict[str, Any] = {
        "order_id": str(refund["order_id"]),
        "order_name": order.order_name,
        "refund_id": str(refund["id"]),
        "refunded_amount": _number(amount),
        "net_revenue": net,
        "currency": currency,
        "note": _text(refund.get("note")),
        **_items_properties(items),
        "event_source": "webhook",
    }
    return CanonicalEvent(
        name=EventName.ORDER_REFUNDED,
        shop_domain=shop_domain,
        natural_key=str(refund["id"]),
        occurred_at=_timestamp(refund, ("processed_at", "created_at"), "refund"),
        person=order.person,
        properties=_compact(props),
    )


def map_fulfillment(
    payload: Mapping[str, Any],
    *,
    shop_domain: str,
    order: PlacedOrder,
    products: Mapping[str, ProductInfo] | None = None,
) -> CanonicalEvent:
    """Map a fulfillments/create payload to order_fulfilled, keyed on the fulfilment, on the
    order's person, with the carrier's tracking details.

    Raises MappingError when the fulfilment has no id, no order_id or no created_at.
    """
    fulfillment = _require_mapping(payload, "fulfillment")
    if _id(fulfillment.get("id")) is None or _id(fulfillment.get("order_id")) is None:
        raise MappingError("fulfillment has no id or no order_id")
    money = _Amounts(side=PRESENTMENT, plain=PRESENTMENT)
    items = _items(fulfillment.get("line_items"), money, _Catalog(shop_domain, products))
    props: dict[str, Any] = {
        "order_id": str(fulfillment["order_id"]),
        "order_name": order.order_name or _text(fulfillment.get("name")),
        "fulfillment_id": str(fulfillment["id"]),
        "tracking_company": _text(fulfillment.get("tracking_company")),
        "tracking_number": _first_text(
            fulfillment.get("tracking_number"), fulfillment.get("tracking_numbers")
        ),
        "tracking_url": _url(
            _first_text(fulfillment.get("tracking_url"), fulfillment.get("tracking_urls"))
        ),
        **_items_properties(items),
        "event_source": "webhook",
    }
    return CanonicalEvent(
        name=EventName.ORDER_FULFILLED,
        shop_domain=shop_domain,
        natural_key=str(fulfillment["id"]),
        occurred_at=_timestamp(fulfillment, ("created_at", "updated_at"), "fulfillment"),
        person=order.person,
        properties=_compact(props),
    )


def _refunded(transactions: Any, fallback_currency: str | None) -> tuple[Decimal, str | None]:
    """The money given back: successful refund transactions, summed, and their currency."""
    total, currency = _ZERO, None
    for transaction in transactions if isinstance(transactions, list) else []:
        if not isinstance(transaction, Mapping) or transaction.get("kind") != "refund":
            continue
        if transaction.get("status") not in (None, "success"):
            continue
        total += _decimal(transaction.get("amount"), "transactions.amount") or _ZERO
        currency = currency or _text(transaction.get("currency"))
    return total, currency or fallback_currency


def _refunded_item(line: Mapping[str, Any], money: _Amounts, catalog: _Catalog) -> dict[str, Any]:
    """A refund line in the item schema: the refunded quantity and what it refunded."""
    quantity = _integer(line.get("quantity")) or 0
    item = _item({**line["line_item"], "quantity": quantity}, money, catalog)
    subtotal = money.get(line, "subtotal")
    if subtotal is not None:
        item["line_total"] = _number(subtotal)
    return item


def _first_text(value: Any, values: Any) -> str | None:
    """`value`, else the first of the list `values` (Shopify sends both shapes)."""
    if _text(value):
        return _text(value)
    if isinstance(values, list):
        return next(filter(None, map(_text, values)), None)
    return None


# --- people -------------------------------------------------------------------------------


def _customer(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    customer = payload.get("customer")
    return customer if isinstance(customer, Mapping) else {}


def shopper_of(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(customer id, email) of an order or checkout payload, as its Person will have them."""
    customer = _customer(payload)
    customer_id = customer.get("id")
    return (
        str(customer_id) if customer_id not in (None, "") else None,
        _email(payload.get("email"), payload.get("contact_email"), customer.get("email")),
    )


def _person(payload: Mapping[str, Any], customer: Mapping[str, Any]) -> Person:
    customer_id, email = shopper_of(payload)
    return Person(
        customer_id=customer_id,
        email=email,
        first_name=_text(customer.get("first_name")),
        last_name=_text(customer.get("last_name")),
        accepts_marketing=_accepts_marketing(payload, customer),
        phone=_text(customer.get("phone")) or _text(payload.get("phone")),
        created_at=_unix_seconds(customer.get("created_at")),
        **_consents(payload, customer),
    )


def _consents(payload: Mapping[str, Any], customer: Mapping[str, Any]) -> dict[str, Any]:
    """Email and SMS marketing consent, each with the time it holds from.

    The customer's consent objects are Shopify's record (with consent_updated_at). The
    checkout's buyer_accepts_* boxes only add consent when ticked, as of the payload's time:
    an unticked box does not unsubscribe a subscribed customer.
    """
    when = next(
        (
            seconds
            for field in ("processed_at", "updated_at", "created_at")
            if (seconds := _unix_seconds(payload.get(field))) is not None
        ),
        None,
    )
    found: dict[str, Any] = {}
    for channel, consent_field, box in (
        ("email", "email_marketing_consent", "buyer_accepts_marketing"),
        ("sms", "sms_marketing_consent", "buyer_accepts_sms_marketing"),
    ):
        consent = customer.get(consent_field)
        if isinstance(consent, Mapping) and _text(consent.get("state")):
            at = _unix_seconds(consent.get("consent_updated_at")) or when
            found[f"{channel}_consent"] = str(consent["state"]).strip().lower()
            found[f"{channel}_consent_at"] = at
        elif payload.get(box) is True:
            found[f"{channel}_consent"], found[f"{channel}_consent_at"] = "subscribed", when
    return found


def _unix_seconds(value: Any) -> int | None:
    """An ISO time as Unix seconds (Customer.io's created_at), or None when unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return int(parse_utc(value).timestamp())
    except ValueError:
        return None


def _email(*candidates: Any) -> str | None:
    """The first candidate that is an email address, normalized."""
    return next(filter(None, map(normalize_email, candidates)), None)


def _accepts_marketing(payload: Mapping[str, Any], customer: Mapping[str, Any]) -> bool | None:
    if isinstance(payload.get("buyer_accepts_marketing"), bool):
        return bool(payload["buyer_accepts_marketing"])
    consent = customer.get("email_marketing_consent")
    if isinstance(consent, Mapping) and consent.get("state"):
        return bool(consent["state"] == "subscribed")
    if isinstance(customer.get("accepts_marketing"), bool):
        return bool(customer["accepts_marketing"])
    return None


# --- money --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Amounts:
    """Reads amounts on one side (shopper's or shop's) of Shopify's *_set twins.

    `plain` names the side the plain fields are in (orders: shop, checkouts: shopper); a
    plain field is only a fallback for that side, so a missing twin never mislabels money.
    """

    side: str
    plain: str

    def get(self, payload: Mapping[str, Any], field: str) -> Decimal | None:
        amount = _set_amount(payload.get(f"{field}_set"), self.side, f"{field}_set")
        if amount is not None or self.side != self.plain:
            return amount
        return _decimal(payload.get(field), field)

    def number(self, payload: Mapping[str, Any], field: str) -> float | None:
        amount = self.get(payload, field)
        return _number(amount) if amount is not None else None

    def number_or_zero(self, payload: Mapping[str, Any], field: str) -> float:
        return _number(self.get(payload, field) or _ZERO)

    def shipping(self, payload: Mapping[str, Any]) -> float:
        """total_shipping_price_set, else the sum of shipping_lines, else 0."""
        amount = _set_amount(payload.get("total_shipping_price_set"), self.side)
        if amount is None:
            lines = payload.get("shipping_lines")
            lines = lines if isinstance(lines, list) else []
            prices = (self.get(line, "price") for line in lines if isinstance(line, Mapping))
            amount = sum((price for price in prices if price is not None), _ZERO)
        return _number(amount)

    def line_discount(self, line: Mapping[str, Any]) -> Decimal:
        """Discounts on one line: its discount_allocations when present, else total_discount."""
        allocations = line.get("discount_allocations")
        if isinstance(allocations, list) and allocations:
            amounts = (self.get(a, "amount") for a in allocations if isinstance(a, Mapping))
            return sum((amount for amount in amounts if amount is not None), _ZERO)
        return self.get(line, "total_discount") or _ZERO


def _order_currency(order: Mapping[str, Any], shop_currency: str | None) -> str | None:
    """The shopper's currency, unless the payload has no presentment amounts to go with it."""
    presentment = _text(order.get("presentment_currency"))
    if not presentment or presentment == shop_currency:
        return shop_currency or presentment
    if _set_amount(order.get("total_price_set"), PRESENTMENT) is None:
        return shop_currency  # only shop-currency amounts: report them as such
    return presentment


def _set_amount(money_set: Any, side: str, field: str = "amount") -> Decimal | None:
    if not isinstance(money_set, Mapping) or not isinstance(money_set.get(side), Mapping):
        return None
    return _decimal(money_set[side].get("amount"), field)


def _decimal(value: Any, field: str) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise MappingError(f"{field} is not a decimal amount") from exc
    if not amount.is_finite():
        raise MappingError(f"{field} is not a decimal amount")
    if abs(amount) >= _IMPLAUSIBLE_AMOUNT:
        raise MappingError(f"{field} is too large to be an amount of money")
    return amount


def _number(amount: Decimal) -> float:
    return float(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


# --- items --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductInfo:
    """What the Admin API tells about a product beyond the webhook's line (looked up and
    cached by the worker): for pictures and links in recovery emails, and branching."""

    product_url: str | None = None
    image_url: str | None = None
    product_type: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Catalog:
    shop_domain: str
    products: Mapping[str, ProductInfo] | None

    def get(self, product_id: str | None) -> ProductInfo:
        return (self.products or {}).get(product_id or "") or ProductInfo()


def _items_properties(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The item properties every event with items carries: the items, units, schema version."""
    return {
        "items": items,
        "item_count": sum(item["quantity"] for item in items),
        "items_schema_version": ITEMS_SCHEMA_VERSION,
    }


def _items(lines: Any, money: _Amounts, catalog: _Catalog) -> list[dict[str, Any]]:
    if not isinstance(lines, list):
        return []
    return [_item(line, money, catalog) for line in lines if isinstance(line, Mapping)]


def _item(line: Mapping[str, Any], money: _Amounts, catalog: _Catalog) -> dict[str, Any]:
    """One order or checkout line in the spec's item schema (None fields dropped)."""
    quantity = _integer(line.get("quantity")) or 0
    price = money.get(line, "price") or _ZERO
    line_price = money.get(line, "line_price")  # checkouts only: price x quantity
    gross = line_price if line_price is not None else price * quantity
    handle = _text(line.get("handle"))
    product_id = _id(line.get("product_id"))
    product = catalog.get(product_id)
    handle_url = f"https://{catalog.shop_domain}/products/{handle}" if handle else None
    item: dict[str, Any] = {
        "product_id": product_id,
        "variant_id": _id(line.get("variant_id")),
        "sku": _text(line.get("sku")),
        "name": _text(line.get("title")) or _text(line.get("name")) or "",
        "variant_name": _text(line.get("variant_title")),
        "vendor": _text(line.get("vendor")),
        "quantity": quantity,
        "price": _number(price),
        "line_total": _number(gross - money.line_discount(line)),
        "image_url": _url(line.get("image_url")) or product.image_url,
        "product_url": product.product_url or handle_url,
        "product_type": product.product_type,
        "product_tags": list(product.tags) or None,
    }
    return _compact(item)


# --- small parsers ------------------------------------------------------------------------


def _timestamp(payload: Mapping[str, Any], fields: Iterable[str], what: str) -> datetime:
    """The first present field as an aware UTC datetime; naive values are taken as UTC."""
    for field in fields:
        value = payload.get(field)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise MappingError(f"{what} {field} is not an ISO-8601 timestamp")
        try:
            return parse_utc(value)
        except ValueError as exc:
            raise MappingError(f"{what} {field} is not an ISO-8601 timestamp") from exc
    raise MappingError(f"{what} has no {' or '.join(fields)}")


def _require_mapping(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise MappingError(f"{what} payload is not a JSON object")
    return payload


def _check_source(event_source: str) -> None:
    if event_source not in EVENT_SOURCES:
        raise ValueError(f"event_source must be one of {', '.join(EVENT_SOURCES)}")


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _id(value: Any) -> str | None:
    """An id as text; only strings and integers are ids (an object or a list is none)."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a quantity of 1e999
        return None


def _url(value: Any) -> str | None:
    text = _text(value)
    return text if text and text.startswith(("http://", "https://")) else None


def _country(payload: Mapping[str, Any]) -> str | None:
    for key in ("shipping_address", "billing_address"):
        address = payload.get(key)
        if isinstance(address, Mapping) and _text(address.get("country_code")):
            return str(address["country_code"]).strip().upper()
    return None


def _discount_codes(codes: Any) -> list[str]:
    if not isinstance(codes, list):
        return []
    return [str(c["code"]) for c in codes if isinstance(c, Mapping) and _text(c.get("code"))]


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
