"""The webhook endpoint: verify, store durably, answer fast; bad input gets a clear error."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connector.app import create_app
from connector.runtime import Runtime
from connector.storage.models import WebhookDelivery
from tests.support import SHOP, make_settings, post_webhook, sample, signed_headers


def inbox_count(rt: Runtime) -> int:
    with rt.sessions() as session:
        return session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0


def test_signed_payload_is_stored_before_the_200(client: FlaskClient, rt: Runtime) -> None:
    response = post_webhook(client, "orders/create", sample("orders_create_2026-07.json"), "e-1")
    assert response.status_code == 200
    assert response.get_json() == {"status": "accepted"}
    with rt.sessions() as session:
        row = session.scalars(select(WebhookDelivery)).one()
    assert (row.shop_domain, row.topic, row.shopify_event_id) == (SHOP, "orders/create", "e-1")
    assert row.webhook_id == "webhook-e-1" and row.api_version == "2026-07"
    assert row.triggered_at is not None and row.state == "received"
    assert json.loads(row.body)["id"] == sample("orders_create_2026-07.json")["id"]


def test_previous_secret_is_accepted_during_rotation(client: FlaskClient, rt: Runtime) -> None:
    body = json.dumps(sample("orders_create_2026-07.json")).encode()
    headers = signed_headers(body, "orders/create", "e-rot")
    headers["X-Shopify-Hmac-Sha256"] = signed_headers(
        body, "orders/create", "e-rot", secret="previous-shopify-secret"
    )["X-Shopify-Hmac-Sha256"]
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200


@pytest.mark.parametrize("tamper", ["body", "signature", "missing"])
def test_tampered_delivery_is_401_and_stores_nothing(
    client: FlaskClient, rt: Runtime, tamper: str
) -> None:
    body = json.dumps(sample("orders_create_2026-07.json")).encode()
    headers = signed_headers(body, "orders/create", "e-2")
    if tamper == "body":
        index = body.index(b"total_price") + 1
        body = body[:index] + bytes([body[index] ^ 1]) + body[index + 1 :]
    elif tamper == "signature":
        signature = headers["X-Shopify-Hmac-Sha256"]
        headers["X-Shopify-Hmac-Sha256"] = ("A" if signature[0] != "A" else "B") + signature[1:]
    else:
        del headers["X-Shopify-Hmac-Sha256"]
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 401
    assert inbox_count(rt) == 0


@pytest.mark.parametrize(
    ("body", "header_changes", "reason"),
    [
        (b"{not json", {}, "body is not JSON"),
        (b"[1, 2]", {}, "body is not a JSON object"),
        (b"{}", {"X-Shopify-Topic": ""}, "missing X-Shopify-Topic"),
        (b"{}", {"X-Shopify-Shop-Domain": "evil.example.com"}, "not a *.myshopify.com domain"),
    ],
)
def test_malformed_signed_delivery_is_400(
    client: FlaskClient, rt: Runtime, body: bytes, header_changes: dict[str, str], reason: str
) -> None:
    headers = signed_headers(body, "orders/create", "e-3")
    headers.update(header_changes)
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 400
    assert reason in response.get_json()["error"]
    assert inbox_count(rt) == 0


def test_oversized_body_is_413(rt: Runtime) -> None:
    small = create_app(
        Runtime(
            make_settings(
                database_url=rt.settings.database_url,
                redis_url=rt.settings.redis_url,
                max_body_bytes=2048,
            )
        )
    ).test_client()
    body = json.dumps({"id": 1, "padding": "x" * 4096}).encode()
    response = small.post(
        "/webhooks/shopify", data=body, headers=signed_headers(body, "orders/create", "e-4")
    )
    assert response.status_code == 413
    assert inbox_count(rt) == 0


def test_unknown_topic_is_acknowledged_and_not_stored(client: FlaskClient, rt: Runtime) -> None:
    response = post_webhook(client, "products/create", {"id": 5}, "e-5")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ignored"
    assert inbox_count(rt) == 0


def test_redelivery_of_the_same_event_is_stored_once(client: FlaskClient, rt: Runtime) -> None:
    payload = sample("orders_create_2026-07.json")
    answers = [
        post_webhook(client, "orders/create", payload, "same-event").get_json()["status"]
        for _ in range(5)
    ]
    assert answers == ["accepted"] + ["duplicate"] * 4
    # Another topic fired by the same action may share the event id: a separate delivery.
    assert post_webhook(client, "orders/paid", payload, "same-event").status_code == 200
    assert inbox_count(rt) == 2


def test_storage_down_is_503(rt: Runtime) -> None:
    broken = Runtime(
        make_settings(
            database_url="postgresql://nobody@127.0.0.1:1/none",
            redis_url=rt.settings.redis_url,
        )
    )
    client = create_app(broken).test_client()
    response = post_webhook(client, "orders/create", sample("orders_create_2026-07.json"), "e-6")
    assert response.status_code == 503
    assert response.get_json() == {"error": "storage unavailable"}
