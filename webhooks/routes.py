"""POST /webhooks/shopify: raw body -> verify -> store in the inbox -> nudge -> fast 2xx."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from connector.runtime import Runtime
from connector.statuses import InboxState
from connector.storage.db import StorageUnavailableError
from connector.storage.inbox import record_delivery
from jobs import queue
from jobs.queue import DebouncedKicker
from webhooks.topics import CHECKOUT_TOPICS, KNOWN_TOPICS, PRIVACY_TOPICS, Topic
from webhooks.verify import MalformedDeliveryError, WebhookError, read_headers, verify_signature

log = logging.getLogger(__name__)
blueprint = Blueprint("webhooks", __name__)


@blueprint.errorhandler(WebhookError)
def refuse(error: WebhookError) -> ResponseReturnValue:
    log.info("webhook refused: %s (%s)", error.status, error.reason)
    return jsonify(error=error.reason), error.status


@blueprint.post("/webhooks/shopify")
def receive() -> ResponseReturnValue:
    """Accept a Shopify webhook once it is verified and durably stored; 503 if not stored."""
    rt: Runtime = current_app.extensions["connector"]
    body = request.get_data(cache=False)  # raw bytes; over MAX_CONTENT_LENGTH raises 413
    verify_signature(
        body, request.headers.get("X-Shopify-Hmac-Sha256"), rt.settings.shopify_api_secrets
    )
    headers = read_headers(request.headers)
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedDeliveryError("body is not JSON") from exc
    if not isinstance(payload, dict):
        raise MalformedDeliveryError("body is not a JSON object")
    if headers.topic not in KNOWN_TOPICS:
        log.info(
            "webhook topic %s from %s acknowledged and ignored", headers.topic, headers.shop_domain
        )
        return jsonify(status="ignored", reason="topic not handled"), 200
    resource_key = _resource_key(headers.topic, payload)
    try:
        created = record_delivery(  # one statement, one round trip
            rt.autocommit_engine,
            {
                "shop_domain": headers.shop_domain,
                "topic": headers.topic,
                "shopify_event_id": headers.event_id,
                "webhook_id": headers.webhook_id,
                "api_version": headers.api_version,
                "triggered_at": headers.triggered_at,
                "body": body.decode("utf-8"),
                "state": InboxState.RECEIVED,
                "resource_key": str(resource_key) if resource_key is not None else None,
            },
        )
    except StorageUnavailableError as exc:
        log.error("webhook not stored (%s): answering 503 so Shopify retries", exc)
        return jsonify(error="storage unavailable"), 503
    if not created:
        return jsonify(status="duplicate"), 200
    kicker: DebouncedKicker = current_app.extensions["kicker"]
    kicker.kick(rt.redis, rt.settings.queue_name, queue.PROCESS, headers.shop_domain)
    return jsonify(status="accepted"), 200


def _resource_key(topic: str, payload: dict[str, Any]) -> Any:
    """What the delivery is about: the order id, the checkout token, or for privacy
    requests (which have neither) the customer's id, else the shop's."""
    if topic in CHECKOUT_TOPICS:
        return payload.get("token")
    if topic in (Topic.REFUNDS_CREATE, Topic.FULFILLMENTS_CREATE):
        return payload.get("order_id")  # found in the console by the order it changed
    if topic in PRIVACY_TOPICS:
        customer = payload.get("customer")
        return (customer.get("id") if isinstance(customer, dict) else None) or payload.get(
            "shop_id"
        )
    return payload.get("id")
