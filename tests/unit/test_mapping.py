"""Shopify payloads -> canonical events: every sample maps, validates and keeps its identity."""

import copy
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.events import EventName
from connector.spec import load_spec, validate
from webhooks.mapping import (
    ITEMS_SCHEMA_VERSION,
    MappingError,
    channel_for,
    map_checkout,
    map_order,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
SHOP = "example.myshopify.com"

ORDER_SAMPLES = [
    "orders_create_2026-07.json",
    "orders_create_2024-01.json",
    "orders_create_guest_email_only.json",
    "orders_create_pos_anonymous.json",
    "orders_create_multicurrency.json",
]
CHECKOUT_SAMPLES = [
    "checkouts_create_2026-07.json",
    "checkouts_create_anonymous.json",
    "checkouts_update_with_email.json",
    "checkouts_create_2024-01.json",
]
MONEY_KEYS = {
    "revenue", "subtotal", "discount", "tax", "shipping", "cart_value", "price", "line_total",
    "shop_revenue", "shop_subtotal", "shop_discount", "shop_tax", "shop_shipping",
    "shop_cart_value",
}  # fmt: skip


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture(scope="module")
def spec():
    return load_spec()


def money_values(value: Any, key: str | None = None):
    """Yield (key, value) for every money field, however deep."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from money_values(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from money_values(v, key)
    elif key in MONEY_KEYS:
        yield key, value


@pytest.mark.parametrize("name", ORDER_SAMPLES)
def test_order_samples_map_and_validate(spec, name):
    event = map_order(sample(name), shop_domain=SHOP)
    assert event.name == EventName.ORDER_PLACED
    assert "is_first_order" not in event.properties
    assert (
        validate(
            spec, EventName.ORDER_PLACED, event.with_properties(is_first_order=True).properties
        )
        == []
    )


@pytest.mark.parametrize("name", CHECKOUT_SAMPLES)
def test_checkout_samples_map_and_validate(spec, name):
    event = map_checkout(sample(name), shop_domain=SHOP)
    assert event.name == EventName.CHECKOUT_STARTED
    assert validate(spec, EventName.CHECKOUT_STARTED, event.properties) == []


@pytest.mark.parametrize("name", ORDER_SAMPLES + CHECKOUT_SAMPLES)
def test_money_is_never_a_string(name):
    mapper = map_order if name.startswith("orders") else map_checkout
    found = list(money_values(mapper(sample(name), shop_domain=SHOP).properties))
    assert found
    assert all(type(value) is float for _, value in found), found


def test_the_same_order_mapped_twice_has_the_same_event_id():
    first = map_order(sample("orders_create_2026-07.json"), shop_domain=SHOP)
    again = map_order(sample("orders_create_2026-07.json"), shop_domain=SHOP)
    other_shop = map_order(sample("orders_create_2026-07.json"), shop_domain="other.myshopify.com")
    assert first.id == again.id
    assert first.id != other_shop.id


def test_order_maps_the_logged_in_customer_and_amounts():
    event = map_order(sample("orders_create_2026-07.json"), shop_domain=SHOP)
    props = event.properties
    assert event.natural_key == "6123456789012"
    assert event.person.id == "7234567890123"
    assert event.person.email == "maya.chen@example.com"
    assert (event.person.first_name, event.person.accepts_marketing) == ("Maya", True)
    assert event.order_count_hint is None
    assert event.is_test is False
    assert props["order_id"] == "6123456789012"
    assert (props["order_number"], props["order_name"]) == (1042, "#1042")
    assert (props["revenue"], props["subtotal"], props["discount"]) == (104.15, 90.0, 10.0)
    assert (props["tax"], props["shipping"]) == (7.2, 6.95)
    assert props["discount_codes"] == ["WELCOME10"]
    assert props["currency"] == "USD" and "shop_currency" not in props
    assert props["item_count"] == 3
    assert props["items_schema_version"] == ITEMS_SCHEMA_VERSION
    assert props["channel"] == "web" and props["event_source"] == "webhook"
    assert props["shipping_country"] == "US"
    assert props["checkout_token"] == "8f2b7c1d4e9a40b6a1c3d5e7f9021a4b"
    socks = props["items"][0]
    assert socks == {
        "product_id": "8123456789001",
        "variant_id": "44123456789011",
        "sku": "SOCK-MER-CHR-M",
        "name": "Merino Crew Socks",
        "variant_name": "Charcoal / M",
        "vendor": "Juniper & Oak",
        "quantity": 2,
        "price": 18.0,
        "line_total": 32.4,
    }


def test_timestamps_come_from_the_payload_in_utc():
    order = map_order(sample("orders_create_2026-07.json"), shop_domain=SHOP)
    # processed_at (10:21:35-04:00) wins over created_at (10:21:37-04:00)
    assert order.occurred_at == datetime(2026, 7, 14, 14, 21, 35, tzinfo=UTC)
    assert order.occurred_at.utcoffset().total_seconds() == 0
    payload = sample("orders_create_2026-07.json")
    del payload["processed_at"]
    fallback = map_order(payload, shop_domain=SHOP)
    assert fallback.occurred_at == datetime(2026, 7, 14, 14, 21, 37, tzinfo=UTC)
    checkout = map_checkout(sample("checkouts_create_anonymous.json"), shop_domain=SHOP)
    assert checkout.occurred_at == datetime(2026, 7, 17, 1, 4, 11, tzinfo=UTC)


def test_old_api_version_keeps_the_order_count_hint():
    event = map_order(sample("orders_create_2024-01.json"), shop_domain=SHOP)
    assert event.order_count_hint == 3
    assert event.properties["channel"] == "ios"
    assert "referring_site" not in event.properties  # "" means unknown
    checkout = map_checkout(sample("checkouts_create_2024-01.json"), shop_domain=SHOP)
    assert checkout.order_count_hint == 2


def test_guest_with_email_only_is_identified_by_lower_cased_email():
    event = map_order(sample("orders_create_guest_email_only.json"), shop_domain=SHOP)
    assert event.person.customer_id is None
    assert event.person.id == "priya.nair@example.com"
    assert event.person.accepts_marketing is False
    assert event.properties["shipping_country"] == "GB"  # billing address fallback
    assert event.properties["shipping"] == 0.0


def test_pos_sale_without_customer_or_email_is_unidentifiable():
    event = map_order(sample("orders_create_pos_anonymous.json"), shop_domain=SHOP)
    assert event.person.id is None
    assert event.person.email is None
    assert event.properties["channel"] == "pos"
    assert "shipping_country" not in event.properties
    custom = event.properties["items"][1]
    assert custom == {"name": "Gift wrapping", "quantity": 1, "price": 4.0, "line_total": 4.0}


def test_multicurrency_order_reports_the_shoppers_currency_and_the_shops():
    props = map_order(sample("orders_create_multicurrency.json"), shop_domain=SHOP).properties
    assert props["currency"] == "EUR"
    assert (props["revenue"], props["subtotal"], props["discount"]) == (84.0, 75.0, 15.0)
    assert (props["tax"], props["shipping"]) == (13.41, 9.0)
    assert props["shop_currency"] == "USD"
    assert (props["shop_revenue"], props["shop_subtotal"]) == (90.72, 81.0)
    assert (props["shop_discount"], props["shop_tax"], props["shop_shipping"]) == (
        16.2,
        14.48,
        9.72,
    )
    assert [(i["price"], i["line_total"]) for i in props["items"]] == [(22.5, 37.5)] * 2
    assert props["shipping_country"] == "DE"


def test_presentment_currency_without_presentment_amounts_is_reported_in_shop_currency():
    payload = sample("orders_create_multicurrency.json")
    for key in [k for k in payload if k.endswith("_set")]:
        del payload[key]
    props = map_order(payload, shop_domain=SHOP).properties
    assert props["currency"] == "USD" and props["revenue"] == 90.72
    assert "shop_currency" not in props


def test_shipping_falls_back_to_shipping_lines_then_zero():
    payload = sample("orders_create_2026-07.json")
    del payload["total_shipping_price_set"]
    assert map_order(payload, shop_domain=SHOP).properties["shipping"] == 6.95
    del payload["shipping_lines"]
    assert map_order(payload, shop_domain=SHOP).properties["shipping"] == 0.0


@pytest.mark.parametrize("customer", [None, {}, "absent"])
def test_missing_or_empty_customer_falls_back_to_email(spec, customer):
    payload = sample("orders_create_2026-07.json")
    if customer == "absent":
        del payload["customer"]
    else:
        payload["customer"] = customer
    event = map_order(payload, shop_domain=SHOP)
    assert event.person.customer_id is None
    assert event.person.id == "maya.chen@example.com"
    assert event.order_count_hint is None
    assert (
        validate(
            spec, EventName.ORDER_PLACED, event.with_properties(is_first_order=True).properties
        )
        == []
    )


def test_marketing_consent_falls_back_to_the_customer_record():
    payload = sample("orders_create_2024-01.json")
    del payload["buyer_accepts_marketing"]
    assert map_order(payload, shop_domain=SHOP).person.accepts_marketing is True
    del payload["customer"]["email_marketing_consent"]
    payload["customer"]["accepts_marketing"] = False
    assert map_order(payload, shop_domain=SHOP).person.accepts_marketing is False


def test_anonymous_checkout_and_its_update_share_one_event_id():
    anonymous = map_checkout(sample("checkouts_create_anonymous.json"), shop_domain=SHOP)
    updated = map_checkout(sample("checkouts_update_with_email.json"), shop_domain=SHOP)
    assert anonymous.person.id is None
    assert updated.person.id == "sam.okafor@example.com"
    assert anonymous.id == updated.id
    assert anonymous.occurred_at == updated.occurred_at
    assert updated.properties["recovery_url"].startswith("https://")
    assert updated.properties["shipping_country"] == "US"


def test_checkout_keys_on_token_even_when_a_numeric_id_is_present():
    event = map_checkout(sample("checkouts_create_2024-01.json"), shop_domain=SHOP)
    props = event.properties
    assert event.natural_key == props["checkout_id"] == "e4da3b7fbbce2345d7772b0674a318d5"
    assert (props["cart_value"], props["currency"], props["channel"]) == (44.75, "CAD", "android")
    assert props["items"][0]["line_total"] == 44.0
    assert props["discount_codes"] == ["BIENVENUE"]
    assert event.person.id == "7234567891345"
    assert event.person.accepts_marketing is False


def test_checkout_maps_a_logged_in_customer():
    event = map_checkout(sample("checkouts_create_2026-07.json"), shop_domain=SHOP)
    assert event.person.id == "7234567891012"
    assert event.person.email == "jordan.reyes@example.com"
    assert event.properties["item_count"] == 2
    assert event.properties["cart_value"] == 112.0


@pytest.mark.parametrize(
    ("source_name", "channel"),
    [
        ("web", "web"),
        ("pos", "pos"),
        ("iphone", "ios"),
        ("android", "android"),
        ("shopify_draft_order", "draft"),
        ("580111", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_channel_for(source_name, channel):
    assert channel_for(source_name) == channel


def test_order_without_id_is_a_mapping_error():
    payload = sample("orders_create_2026-07.json")
    del payload["id"]
    with pytest.raises(MappingError) as excinfo:
        map_order(payload, shop_domain=SHOP)
    assert excinfo.value.reason == "order has no id"
    assert "example.com" not in str(excinfo.value)


def test_checkout_without_token_is_a_mapping_error():
    payload = sample("checkouts_create_2024-01.json")
    del payload["token"]
    with pytest.raises(MappingError, match="checkout has no token"):
        map_checkout(payload, shop_domain=SHOP)


def test_unparseable_timestamp_is_a_mapping_error():
    payload = sample("orders_create_2026-07.json")
    payload["processed_at"] = "yesterday at noon"
    with pytest.raises(MappingError) as excinfo:
        map_order(payload, shop_domain=SHOP)
    assert "yesterday" not in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_unreadable_money_is_a_mapping_error():
    payload = sample("orders_create_2026-07.json")
    payload["total_price_set"]["shop_money"]["amount"] = "12,50"
    with pytest.raises(MappingError) as excinfo:
        map_order(payload, shop_domain=SHOP)
    assert excinfo.value.reason == "total_price_set is not a decimal amount"


def test_mapping_does_not_modify_the_payload():
    payload = sample("orders_create_multicurrency.json")
    before = copy.deepcopy(payload)
    map_order(payload, shop_domain=SHOP, event_source="backfill")
    assert payload == before


def test_event_source_is_passed_through_and_checked():
    event = map_order(sample("orders_create_2026-07.json"), shop_domain=SHOP, event_source="replay")
    assert event.properties["event_source"] == "replay"
    with pytest.raises(ValueError):
        map_order(sample("orders_create_2026-07.json"), shop_domain=SHOP, event_source="manual")


def test_items_schema_version_matches_the_spec(spec):
    assert ITEMS_SCHEMA_VERSION == spec.items_schema_version


def test_pure_modules_import_no_web_or_queue_libraries():
    code = (
        "import webhooks.mapping, connector.spec, sys; "
        "assert not {'flask', 'redis', 'rq', 'sqlalchemy'} & set(sys.modules), "
        "{'flask', 'redis', 'rq', 'sqlalchemy'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
