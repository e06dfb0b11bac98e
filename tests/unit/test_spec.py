"""The track spec: loading spec.yaml, validating events against it, checking raw payloads."""

import json
from pathlib import Path
from typing import Any

import pytest

from connector.spec import SpecError, TrackSpec, load_spec, validate
from webhooks.canonical import events_for
from webhooks.spec_check import check_payload

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
EVENT_HEADER = "items_schema_version: 1\nevents:\n  e:\n    properties:\n"


@pytest.fixture(scope="module")
def spec() -> TrackSpec:
    return load_spec()


def valid_order() -> dict[str, Any]:
    return {
        "order_id": "6123456789012",
        "order_number": 1042,
        "order_name": "#1042",
        "revenue": 104.15,
        "subtotal": 90,  # an integer is a number
        "discount": 10.0,
        "tax": 7.2,
        "shipping": 6.95,
        "discount_codes": ["WELCOME10"],
        "currency": "USD",
        "items": [{"name": "Merino Crew Socks", "quantity": 2, "price": 18.0, "line_total": 32.4}],
        "item_count": 2,
        "items_schema_version": 1,
        "is_first_order": False,
        "channel": "web",
        "event_source": "webhook",
        "shipping_country": "US",
        "landing_site": None,  # None on an optional property counts as absent
    }


def test_the_repo_spec_loads(spec):
    assert spec.event_names == (
        "order_placed",
        "checkout_started",
        "order_cancelled",
        "order_refunded",
        "order_fulfilled",
    )
    assert spec.items_schema_version == 2
    assert spec.checkout_hold_hours == 72
    assert "is_first_order" in spec.required("order_placed")
    assert "shop_currency" not in spec.required("order_placed")
    assert spec.item_schema["name"]["required"] is True


def test_load_spec_takes_a_path(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        "items_schema_version: 2\n"
        "events:\n"
        "  ping:\n"
        "    properties:\n"
        "      n: {type: integer, required: true}\n"
    )
    spec = load_spec(str(path))
    assert spec.event_names == ("ping",)
    assert spec.items_schema_version == 2
    assert validate(spec, "ping", {"n": 1}) == []


@pytest.mark.parametrize(
    "text",
    [
        "not: [valid",
        "- a list\n",
        "items_schema_version: 1\n",
        f"{EVENT_HEADER}      p: {{type: money, required: true}}\n",
        f"{EVENT_HEADER}      p: {{type: string}}\n",
        f"{EVENT_HEADER}      p: {{type: array, items: thing, required: true}}\n",
        f"{EVENT_HEADER}      p: {{type: string, format: phone, required: true}}\n",
    ],
)
def test_malformed_spec_is_rejected(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError):
        load_spec(path)


def test_missing_spec_file_is_rejected(tmp_path):
    with pytest.raises(SpecError):
        load_spec(tmp_path / "nope.yaml")


def test_a_valid_order_has_no_violations(spec):
    assert validate(spec, "order_placed", valid_order()) == []


@pytest.mark.parametrize(
    ("change", "violation"),
    [
        ({"currency": None}, "order_placed.currency: missing"),
        ({"is_first_order": None}, "order_placed.is_first_order: missing"),
        ({"revenue": "104.15"}, "order_placed.revenue: expected number, got string"),
        ({"revenue": True}, "order_placed.revenue: expected number, got boolean"),
        ({"order_number": True}, "order_placed.order_number: expected integer, got boolean"),
        ({"order_number": 1042.0}, "order_placed.order_number: expected integer, got number"),
        ({"order_id": 6123456789012}, "order_placed.order_id: expected string, got integer"),
        ({"is_first_order": "yes"}, "order_placed.is_first_order: expected boolean, got string"),
        ({"currency": "EURO"}, "order_placed.currency: 'EURO' is not an ISO-4217 code"),
        (
            {"shipping_country": "XX"},
            "order_placed.shipping_country: 'XX' is not an ISO-3166 alpha-2 code",
        ),
        ({"foo": 1}, "order_placed.foo: not in the spec"),
        (
            {"channel": "x"},
            "order_placed.channel: 'x' is not one of web, pos, ios, android, draft, other",
        ),
        (
            {"items": [{"name": "Socks", "quantity": 2, "price": "18.00", "line_total": 36.0}]},
            "order_placed.items[0].price: expected number, got string",
        ),
        (
            {"items": [{"name": "Socks", "quantity": 2, "price": 18.0}]},
            "order_placed.items[0].line_total: missing",
        ),
        (
            {"items": [{"name": "S", "quantity": 1, "price": 1, "line_total": 1, "colour": "red"}]},
            "order_placed.items[0].colour: not in the spec",
        ),
        ({"items": ["socks"]}, "order_placed.items[0]: expected object, got string"),
        ({"discount_codes": [10]}, "order_placed.discount_codes[0]: expected string, got integer"),
        ({"items": {"name": "Socks"}}, "order_placed.items: expected array, got object"),
    ],
)
def test_validator_failure_modes(spec, change, violation):
    properties = {**valid_order(), **change}
    assert validate(spec, "order_placed", properties) == [violation]


def test_missing_required_property_is_reported_even_when_the_key_is_absent(spec):
    properties = valid_order()
    del properties["currency"]
    assert validate(spec, "order_placed", properties) == ["order_placed.currency: missing"]


def test_every_violation_is_reported(spec):
    properties = {**valid_order(), "currency": None, "revenue": "1", "foo": 1}
    assert len(validate(spec, "order_placed", properties)) == 3


def test_bad_recovery_url_is_a_violation(spec):
    sample = json.loads((SAMPLES / "checkouts_create_anonymous.json").read_text())
    sample["abandoned_checkout_url"] = "/checkouts/recover"
    _, violations = check_payload(spec, sample, "checkouts/create")
    assert violations == [
        "checkout_started.recovery_url: '/checkouts/recover' is not an http(s) URL"
    ]


def test_unknown_event_is_a_violation(spec):
    assert validate(spec, "order_teleported", {}) == ["order_teleported: not in the spec"]


def test_check_payload_maps_and_validates_an_order(spec):
    payload = json.loads((SAMPLES / "orders_create_2026-07.json").read_text())
    [event], violations = check_payload(spec, payload, "orders/create")
    assert violations == []
    assert set(event) == {"id", "name", "timestamp", "person_id", "properties"}
    assert event["name"] == "order_placed"
    assert event["timestamp"] == 1784038895  # 2026-07-14T10:21:35-04:00
    assert event["person_id"] == "7234567890123"
    assert event["properties"]["is_first_order"] is False
    json.dumps(event)  # JSON-able


def test_check_payload_maps_a_checkout(spec):
    payload = json.loads((SAMPLES / "checkouts_create_anonymous.json").read_text())
    [event], violations = check_payload(spec, payload, "checkouts/update", "a.myshopify.com")
    assert violations == []
    assert event["person_id"] is None
    assert "is_first_order" not in event["properties"]


def test_check_payload_reports_mapping_errors_as_one_violation(spec):
    assert check_payload(spec, {"email": "a@example.com"}, "orders/paid") == (
        [],
        ["orders/paid: order has no id"],
    )
    assert check_payload(spec, {"id": 1}, "checkouts/create") == (
        [],
        ["checkouts/create: checkout has no token"],
    )


def test_check_payload_rejects_topics_the_connector_does_not_handle(spec):
    events, violations = check_payload(spec, {"id": 1}, "carts/create")
    assert events == []
    assert violations == ["carts/create: the connector does not handle the topic carts/create"]


def test_check_payload_says_products_update_yields_no_event(spec):
    """As in the pipeline: products/update only refreshes the cached product details."""
    payload = json.loads((SAMPLES / "products_update_2026-07.json").read_text())
    assert check_payload(spec, payload, "products/update") == ([], [])


@pytest.mark.parametrize("topic", ["app/uninstalled", "customers/redact"])
def test_check_payload_says_a_handled_topic_yields_no_event(spec, topic):
    """As in the pipeline: uninstall and privacy requests are handled but send no event."""
    payload = json.loads((SAMPLES / "orders_create_2026-07.json").read_text())
    assert check_payload(spec, payload, topic) == ([], [])


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("orders/create", ["order_placed"]),
        ("orders/paid", ["order_placed"]),
        ("orders/updated", ["order_placed"]),
        ("orders/cancelled", ["order_cancelled"]),  # once order_placed, in spec check
    ],
)
def test_events_for_is_the_pipelines_dispatch(topic, expected):
    payload = json.loads((SAMPLES / "orders_create_2026-07.json").read_text())
    assert [e.name for e in events_for(topic, payload, "a.myshopify.com")] == expected
