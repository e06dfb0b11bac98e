"""A thin client for Customer.io's Track API v2 batch endpoint.

We do not use the official `customerio` package: its exceptions carry no status code, their
messages embed the request payload (PII), and it retries on its own with near-zero backoff.
This client never retries and never raises for HTTP or network failures: it returns a
`SendResult` and leaves retry timing to the caller (the RQ job and the rate limiter).

It speaks through urllib3's connection pools directly: with many shops a worker makes a
request per event or two, and `requests` spent about 0.35 ms of CPU more per request
(preparing it, reading proxy settings from the environment) than the request itself.
Proxy settings (HTTPS_PROXY, NO_PROXY, ...) are read once per process.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from functools import cache
from http import HTTPStatus
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as UrllibTimeoutError

from connector import jsontext
from connector.statuses import DeliveryOutcome

REGION_HOSTS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}

MAX_BATCH_BYTES = 500_000  # documented as 500 KB per /batch request; kept on the safe side
MAX_OP_BYTES = 32_000  # documented as 32 KB per operation
EXCERPT_CHARS = 300
CONNECT_TIMEOUT = 5.0

# Over-matches on purpose (also URL-encoded "%40"): a redacted non-email costs nothing.
_EMAIL_RE = re.compile(r"[\w.+%'-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")

_pools: dict[str | None, urllib3.PoolManager] = {}  # proxy URL (None: direct) -> its pools
_pools_pid: int | None = None
_pools_lock = threading.Lock()
POOL_MAXSIZE = 20  # connections kept per host (a worker sends to one host from 16 threads)


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


def shared_pool(url: str) -> urllib3.PoolManager:
    """This process's connection pools for `url`: direct, or through the proxy the
    environment names for it (a forked child builds its own)."""
    global _pools_pid
    proxy = _proxy_for(url)
    with _pools_lock:
        if _pools_pid != os.getpid():
            _pools.clear()
            _pools_pid = os.getpid()
        pool = _pools.get(proxy)
        if pool is None:
            options: dict[str, Any] = {"maxsize": POOL_MAXSIZE, "retries": False}
            pool = (
                urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
            )
            _pools[proxy] = pool
        return pool


@cache
def _environment_proxies() -> dict[str, str]:
    return urllib.request.getproxies()


@cache
def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for this URL's scheme, unless NO_PROXY exempts its
    host (what `requests` does)."""
    parts = urllib.parse.urlsplit(url)
    proxy = _environment_proxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class TrackClient:
    """Send v2 batches to one workspace; returns a SendResult, never raises for HTTP/network."""

    def __init__(
        self,
        *,
        site_id: str,
        api_key: str,
        base_url: str,
        timeout: float = 10.0,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        self.site_id = site_id
        self._auth = urllib3.make_headers(basic_auth=f"{site_id}:{api_key}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._pool = pool

    def __repr__(self) -> str:
        return f"TrackClient(site_id={self.site_id!r}, base_url={self.base_url!r}, api_key='***')"

    @property
    def pool(self) -> urllib3.PoolManager:
        """The injected pools, else the process's shared ones."""
        return self._pool if self._pool is not None else shared_pool(self.base_url)

    def send_batch(self, operations: list[dict[str, Any]], body: bytes | None = None) -> SendResult:
        """POST the operations to /api/v2/batch once; raises only for non-JSON operations.
        `body`: the operations already encoded (`encode_fitting`)."""
        body = body if body is not None else encode_batch(operations)
        return self._call("POST", "/api/v2/batch", body)

    def check_credentials(self) -> SendResult:
        """GET /api/v1/accounts/region: "delivered" when the site id and key are accepted."""
        return self._call("GET", "/api/v1/accounts/region", None)

    def _call(self, method: str, path: str, body: bytes | None) -> SendResult:
        headers = {"Accept": "application/json", **self._auth}
        if body is not None:
            headers["Content-Type"] = "application/json"
        timeout = urllib3.Timeout(connect=min(CONNECT_TIMEOUT, self.timeout), read=self.timeout)
        started = time.perf_counter()
        try:
            response = self.pool.request(
                method,
                self.base_url + path,
                body=body,
                headers=headers,
                timeout=timeout,
                redirect=False,
                retries=False,
            )  # the whole body is read here, inside the timeout handling
        except NewConnectionError:  # refused, or no route: before the timeouts below
            return _no_answer(started, "connection error")
        except UrllibTimeoutError:
            return _no_answer(started, "timeout")
        except ProtocolError:  # the connection dropped mid-request
            return _no_answer(started, "connection error")
        except HTTPError as exc:  # e.g. a truncated chunked body
            return _no_answer(started, f"request error ({type(exc).__name__})")
        text = response.data.decode("utf-8", "replace")
        return _result(response.status, response.headers, text, _elapsed_ms(started))


def _no_answer(started: float, reason: str) -> SendResult:
    return SendResult(None, _elapsed_ms(started), DeliveryOutcome.RETRY, reason=reason)


def _result(status: int, headers: Mapping[str, str], text: str, latency_ms: float) -> SendResult:
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
            messages = messages or f"redirected to {headers.get('Location', '?')}"
    if messages and outcome != DeliveryOutcome.PARTIAL:
        label = f"{label}: {messages}"
    return SendResult(
        status_code=status,
        latency_ms=latency_ms,
        outcome=outcome,
        failed_ops=failed,
        retry_after=parse_retry_after(headers.get("Retry-After")),
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
