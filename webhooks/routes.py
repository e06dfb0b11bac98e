"""POST /webhooks/shopify: raw body -> verify -> store in the inbox -> nudge -> fast 2xx."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from connector.metrics import WEBHOOKS_RECEIVED
from connector.runtime import Runtime
from connector.statuses import InboxState
from connector.storage.db import StorageUnavailableError
from jobs import queue
from jobs.queue import DebouncedKicker
from webhooks.payload import parse_body, resource_key
from webhooks.topics import KNOWN_TOPICS
from webhooks.verify import WebhookError, read_headers, verify_signature

log = logging.getLogger(__name__)
blueprint = Blueprint("webhooks", __name__)
WEBHOOK_PATH = "/webhooks/shopify"


@blueprint.after_request
def count(response: Response) -> Response:
    """Count every answer by topic, status and what it said (a memory write, no I/O)."""
    topic = request.headers.get("X-Shopify-Topic")
    answer = g.get("webhook_answer") or ("refused" if response.status_code < 500 else "error")
    WEBHOOKS_RECEIVED.labels(
        topic=topic if topic in KNOWN_TOPICS else "other",  # unverified: no free-form labels
        status=str(response.status_code),
        answer=answer,
    ).inc()
    return response


@blueprint.errorhandler(WebhookError)
def refuse(error: WebhookError) -> ResponseReturnValue:
    log.info("webhook refused: %s (%s)", error.status, error.reason)
    return jsonify(error=error.reason), error.status


@blueprint.post(WEBHOOK_PATH)
def receive() -> ResponseReturnValue:
    """Accept a Shopify webhook once it is verified and durably stored; 503 if not stored.

    Bad input of any kind is a 4xx with a reason, and nothing is stored; 503 only when the
    storage is down (Shopify retries a 5xx).
    """
    rt: Runtime = current_app.extensions["connector"]
    body = _read_body(rt.settings.max_body_bytes)
    verify_signature(
        body, request.headers.get("X-Shopify-Hmac-Sha256"), rt.settings.shopify_api_secrets
    )
    headers = read_headers(request.headers)
    signed = parse_body(body)
    if headers.topic not in KNOWN_TOPICS:
        log.info(
            "webhook topic %s from %s acknowledged and ignored", headers.topic, headers.shop_domain
        )
        g.webhook_answer = "ignored"
        return jsonify(status="ignored", reason="topic not handled"), 200
    try:
        created = rt.inbox.record(  # one statement, one round trip
            {
                "shop_domain": headers.shop_domain,
                "topic": headers.topic,
                "shopify_event_id": headers.event_id,
                "webhook_id": headers.webhook_id,
                "api_version": headers.api_version,
                "triggered_at": headers.triggered_at,
                "body": signed.text,
                "state": InboxState.RECEIVED,
                "resource_key": resource_key(headers.topic, signed.payload),
            },
        )
    except StorageUnavailableError as exc:
        log.error("webhook not stored (%s): answering 503 so Shopify retries", exc)
        g.webhook_answer = "unavailable"
        return jsonify(error="storage unavailable"), 503
    g.webhook_answer = "accepted" if created else "duplicate"
    if not created:
        return _answer(_DUPLICATE)
    kicker: DebouncedKicker = current_app.extensions["kicker"]
    kicker.kick(rt.redis, rt.settings.queue_name, queue.PROCESS)
    return _answer(_ACCEPTED)


# The two answers Shopify gets by the thousand, encoded once (jsonify costs a few per cent
# of the door's CPU).
_ACCEPTED = b'{"status":"accepted"}\n'
_DUPLICATE = b'{"status":"duplicate"}\n'


def _answer(body: bytes) -> Response:
    return current_app.response_class(body, status=200, mimetype="application/json")


def _read_body(limit: int) -> bytes:
    """The raw body; RequestEntityTooLarge (413) past `limit` bytes.

    werkzeug refuses a Content-Length over the limit before reading. A chunked body has no
    Content-Length; the server (gunicorn, werkzeug's) marks its stream as terminated
    (`wsgi.input_terminated`) and werkzeug reads it through a LimitedStream that stops at
    the limit *without* an error: the door would see the body cut short, and answer 401 (or
    400) for a body that is too large. One more byte from the server's stream tells.
    """
    body = request.get_data(cache=False)
    if len(body) >= limit and request.content_length is None and request.input_stream.read(1):
        raise RequestEntityTooLarge()
    return body
