"""POST /webhooks/shopify: raw body -> verify -> store in the inbox -> nudge -> fast 2xx.

A plain WSGI app in front of Flask. Shopify's webhooks are the connector's traffic by the
thousand, and Flask's request context, routing, session, hooks and response objects cost
more CPU than storing the webhook does (docs/benchmarks.md). Every other path goes on to
the Flask app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wsgi import get_content_length, get_input_stream

from connector import jsontext
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
WEBHOOK_PATH = "/webhooks/shopify"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    said: str  # the metric's "answer" label: accepted, duplicate, ignored, refused, ...
    headers: tuple[tuple[str, str], ...] = ()


# The two answers Shopify gets by the thousand, encoded once.
ACCEPTED = Answer(200, b'{"status":"accepted"}\n', "accepted")
DUPLICATE = Answer(200, b'{"status":"duplicate"}\n', "duplicate")
IGNORED = Answer(200, b'{"status":"ignored","reason":"topic not handled"}\n', "ignored")
UNAVAILABLE = Answer(503, b'{"error":"storage unavailable"}\n', "unavailable")
TOO_LARGE = Answer(413, b'{"error":"body too large"}\n', "refused")
NOT_POST = Answer(405, b'{"error":"method not allowed"}\n', "refused", (("Allow", "POST"),))
FAILED = Answer(500, b'{"error":"internal error"}\n', "error")


class WebhookEndpoint:
    """Answers POST /webhooks/shopify itself; hands every other request to `app`.

    `extensions` is the Flask app's: the debounced kicker is read from it on each webhook
    (tests replace it). `always_headers` go on every answer (HSTS on an https APP_URL).
    """

    def __init__(
        self,
        app: WSGIApp,
        runtime: Runtime,
        extensions: Mapping[str, Any],
        always_headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.extensions = extensions
        self.always_headers = list(always_headers)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != WEBHOOK_PATH:
            return self.app(environ, start_response)
        answer = self.answer(environ)
        topic = environ.get("HTTP_X_SHOPIFY_TOPIC")
        WEBHOOKS_RECEIVED.labels(
            topic=topic if topic in KNOWN_TOPICS else "other",  # unverified: no free-form labels
            status=str(answer.status),
            answer=answer.said,
        ).inc()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(answer.body))),
            *answer.headers,
            *self.always_headers,
        ]
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", headers)
        return [answer.body]

    def answer(self, environ: dict[str, Any]) -> Answer:
        """Bad input of any kind is a 4xx with a reason, and nothing is stored; 503 only when
        the storage is down (Shopify retries a 5xx)."""
        if environ.get("REQUEST_METHOD") != "POST":
            return NOT_POST
        try:
            return self.receive(environ)
        except WebhookError as error:
            log.info("webhook refused: %s (%s)", error.status, error.reason)
            return Answer(error.status, _error_body(error.reason), "refused")
        except RequestEntityTooLarge:
            return TOO_LARGE
        except HTTPException as error:  # werkzeug's: a body cut short by the client (400)
            log.info("webhook refused: %s (%s)", error.code, error.name)
            return Answer(error.code or 400, _error_body(error.name.lower()), "refused")
        except StorageUnavailableError as exc:
            log.error("webhook not stored (%s): answering 503 so Shopify retries", exc)
            return UNAVAILABLE
        except Exception:
            log.exception("webhook failed")
            return FAILED

    def receive(self, environ: dict[str, Any]) -> Answer:
        """Accept a Shopify webhook once it is verified and durably stored."""
        rt = self.runtime
        body = read_body(environ, rt.settings.max_body_bytes)
        verify_signature(
            body, environ.get("HTTP_X_SHOPIFY_HMAC_SHA256"), rt.settings.shopify_api_secrets
        )
        headers = read_headers(shopify_headers(environ))
        signed = parse_body(body)
        if headers.topic not in KNOWN_TOPICS:
            log.info(
                "webhook topic %s from %s acknowledged and ignored",
                headers.topic,
                headers.shop_domain,
            )
            return IGNORED
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
        if not created:
            return DUPLICATE
        kicker: DebouncedKicker = self.extensions["kicker"]
        kicker.kick(rt.redis, rt.settings.queue_name, queue.PROCESS)
        return ACCEPTED


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The raw body; RequestEntityTooLarge (413) past `limit` bytes.

    werkzeug refuses a Content-Length over the limit before reading. A chunked body has no
    Content-Length; the server (gunicorn, werkzeug's) marks its stream as terminated
    (`wsgi.input_terminated`) and werkzeug reads it through a LimitedStream that stops at
    the limit *without* an error: the door would see the body cut short, and answer 401 (or
    400) for a body that is too large. One more byte from the server's stream tells.
    """
    body = get_input_stream(environ, max_content_length=limit).read()
    if len(body) >= limit and get_content_length(environ) is None and environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return body


def shopify_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """Shopify's X-Shopify-* request headers, named as sent (lower case)."""
    return {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_X_SHOPIFY_")
    }


def _error_body(reason: str) -> bytes:
    return jsontext.dumps_strict({"error": reason}) + b"\n"
