"""A thin client for Customer.io's Track API v2 batch endpoint.

We do not use the official `customerio` package: its exceptions carry no status code, their
messages embed the request payload (PII), and it retries on its own with near-zero backoff.
This client never retries and never raises for HTTP or network failures: it returns a
`SendResult` and leaves retry timing to the caller (the RQ job and the rate limiter).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from connector import jsontext
from connector.statuses import DeliveryOutcome

REGION_HOSTS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}

MAX_BATCH_BYTES = 500_000  # documented as 500 KB per /batch request; kept on the safe side
MAX_OP_BYTES = 32_000  # documented as 32 KB per operation
EXCERPT_CHARS = 300
CONNECT_TIMEOUT = 5.0

# Over-matches on purpose (also URL-encoded "%40"): a redacted non-email costs nothing.
_EMAIL_RE = re.compile(r"[\w.+%'-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")

_session: requests.Session | None = None
_session_pid: int | None = None
_session_lock = threading.Lock()


def track_base_url(region: str, override: str | None) -> str:
    """Return the Track API base URL: the override if set, else the region's host."""
    if override:
        return override.rstrip("/")
    try:
        return REGION_HOSTS[region.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown Customer.io region {region!r} (expected us or eu)") from None


def identifiers_for(person_id: str) -> dict[str, str]:
    """Return v2 identifiers: `email` when the value looks like an email, else `id`."""
    return {"email": person_id} if "@" in person_id else {"id": person_id}


def identify_op(
    identifiers: dict[str, str], attributes: dict[str, Any], timestamp: int
) -> dict[str, Any]:
    """Build a v2 `identify` operation; `timestamp` orders updates that arrive out of order."""
    return {
        "type": "person",
        "action": "identify",
        "identifiers": dict(identifiers),
        "timestamp": int(timestamp),
        "attributes": dict(attributes),
    }


def event_op(
    identifiers: dict[str, str],
    name: str,
    event_id: str,
    timestamp: int,
    attributes: dict[str, Any],
) -> dict[str, Any]:
    """Build a v2 `event` operation; `event_id` (a ULID) is Customer.io's dedupe key."""
    return {
        "type": "person",
        "action": "event",
        "identifiers": dict(identifiers),
        "name": name,
        "id": event_id,
        "timestamp": int(timestamp),
        "attributes": dict(attributes),
    }


def encode_batch(operations: list[dict[str, Any]]) -> bytes:
    """Serialize a batch request body; raises ValueError/TypeError for non-JSON values."""
    return encode_fitting(operations)[0]


def encode_fitting(operations: list[dict[str, Any]]) -> tuple[bytes, bool]:
    """The batch request body, and whether it fits Customer.io's limits (the whole request
    and each operation); raises ValueError/TypeError for non-JSON values.

    Each operation is encoded once and the body joined from them (the bytes json.dumps
    gives for {"batch": operations}), so a drain encodes its requests once, not three times.
    """
    encoded = [jsontext.dumps_strict(op) for op in operations]
    body = b'{"batch":[' + b",".join(encoded) + b"]}"
    fits = len(body) < MAX_BATCH_BYTES and all(len(op) < MAX_OP_BYTES for op in encoded)
    return body, fits


def batch_size_ok(operations: list[dict[str, Any]]) -> bool:
    """Tell whether a batch fits Customer.io's limits (whole request and each operation)."""
    return encode_fitting(operations)[1]


def redact(text: str) -> str:
    """Replace anything that looks like an email address with "[email]"."""
    return _EMAIL_RE.sub("[email]", text)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Parse a Retry-After header (seconds or HTTP-date) into seconds from now, or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class SendResult:
    """What one Track API call came to; never holds the request payload."""

    status_code: int | None  # None: timeout or connection error
    latency_ms: float
    outcome: DeliveryOutcome
    failed_ops: dict[int, str] = field(default_factory=dict)  # batch_index -> short reason
    retry_after: float | None = None
    reason: str = ""
    excerpt: str = ""  # redacted response body, at most EXCERPT_CHARS

    @property
    def ok(self) -> bool:
        """True when every operation was accepted."""
        return self.outcome == DeliveryOutcome.DELIVERED


def shared_session() -> requests.Session:
    """Return this process's pooled Session (a forked child builds its own)."""
    global _session, _session_pid
    pid = os.getpid()
    with _session_lock:
        if _session is None or _session_pid != pid:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=20, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _session, _session_pid = session, pid
        return _session


class TrackClient:
    """Send v2 batches to one workspace; returns a SendResult, never raises for HTTP/network."""

    def __init__(
        self,
        *,
        site_id: str,
        api_key: str,
        base_url: str,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.site_id = site_id
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session

    def __repr__(self) -> str:
        return f"TrackClient(site_id={self.site_id!r}, base_url={self.base_url!r}, api_key='***')"

    @property
    def session(self) -> requests.Session:
        """The injected Session, else the process-wide pooled one."""
        return self._session if self._session is not None else shared_session()

    def send_batch(self, operations: list[dict[str, Any]], body: bytes | None = None) -> SendResult:
        """POST the operations to /api/v2/batch once; raises only for non-JSON operations.
        `body`: the operations already encoded (`encode_fitting`)."""
        body = body if body is not None else encode_batch(operations)
        return self._call("POST", "/api/v2/batch", body)

    def check_credentials(self) -> SendResult:
        """GET /api/v1/accounts/region: "delivered" when the site id and key are accepted."""
        return self._call("GET", "/api/v1/accounts/region", None)

    def _call(self, method: str, path: str, body: bytes | None) -> SendResult:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                data=body,
                headers=headers,
                auth=(self.site_id, self._api_key),
                timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout),
                allow_redirects=False,
            )
            text = response.text  # reads the whole body inside the timeout handling
        except requests.Timeout:
            return SendResult(None, _elapsed_ms(started), DeliveryOutcome.RETRY, reason="timeout")
        except requests.ConnectionError:
            return SendResult(
                None, _elapsed_ms(started), DeliveryOutcome.RETRY, reason="connection error"
            )
        except requests.RequestException as exc:  # e.g. a truncated chunked body
            reason = f"request error ({type(exc).__name__})"
            return SendResult(None, _elapsed_ms(started), DeliveryOutcome.RETRY, reason=reason)
        return _result(response, text, _elapsed_ms(started))


def _result(response: requests.Response, text: str, latency_ms: float) -> SendResult:
    status = response.status_code
    payload = _json_or_none(text)
    failed = _failed_ops(payload)
    messages = _error_messages(payload)
    label = f"{status} {_phrase(status)}"
    if status == 207:
        outcome = DeliveryOutcome.PARTIAL
        label = f"{label}: {len(failed)} operation(s) rejected"
    elif 200 <= status < 300:
        outcome = DeliveryOutcome.DELIVERED
    elif status == 429 or status >= 500:
        outcome = DeliveryOutcome.RETRY
    elif status in (401, 403):
        outcome = DeliveryOutcome.REJECTED_CREDENTIALS
    else:
        outcome = DeliveryOutcome.REJECTED
        if 300 <= status < 400:
            messages = messages or f"redirected to {response.headers.get('Location', '?')}"
    if messages and outcome != DeliveryOutcome.PARTIAL:
        label = f"{label}: {messages}"
    return SendResult(
        status_code=status,
        latency_ms=latency_ms,
        outcome=outcome,
        failed_ops=failed,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        reason=_short(redact(label), 200),
        excerpt=_short(redact(text), EXCERPT_CHARS),
    )


def _failed_ops(payload: Any) -> dict[int, str]:
    failed: dict[int, str] = {}
    if not isinstance(payload, dict) or not isinstance(payload.get("errors"), list):
        return failed
    for error in payload["errors"]:
        if not isinstance(error, dict) or not isinstance(error.get("batch_index"), int):
            continue
        parts = [str(error.get(k)) for k in ("reason", "field", "message") if error.get(k)]
        failed[error["batch_index"]] = _short(redact(": ".join(parts) or "rejected"), 120)
    return failed


def _error_messages(payload: Any) -> str:
    """Pull v1 (`meta.errors`/`meta.error`) or v2 (`errors[].message`) text out of a body."""
    if not isinstance(payload, dict):
        return ""
    found: list[str] = []
    meta = payload.get("meta")
    if isinstance(meta, dict):
        errors = meta.get("errors", meta.get("error"))
        found.extend(str(e) for e in (errors if isinstance(errors, list) else [errors]) if e)
    errors = payload.get("errors")
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict) and "batch_index" not in error:
                found.append(str(error.get("message") or error.get("reason") or ""))
    return "; ".join(m for m in found if m)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
