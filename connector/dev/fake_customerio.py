"""FakeCustomerIO: a real HTTP server on loopback that behaves like Customer.io's Track API.

Used by the tests and by the README demo (`python -m connector.dev.fake_customerio --port 8025`). It
checks Basic auth, validates v2 operations the way the connector relies on (identifiers, ULID
event ids, integer timestamps, size limits), dedupes events on their id, records everything
it answered, and can be told to fail, rate-limit, answer slowly or drop connections.

Besides the raw record (`people`, keyed by the identifier as sent), it keeps `profiles` the
way a workspace with both id and email as identifiers does: an email-only person who is
later identified by an id with that email becomes that id's person (Customer.io: "identifying
a new id with an email that already exists updates that existing person"), so a test can
tell whether two events landed on one profile or on two.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from connector.dev.http_server import LoopbackServer, drop_connection

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MAX_BATCH_BYTES = 500_000
MAX_OP_BYTES = 32_000
MAX_READ_BYTES = 10_000_000  # beyond this the body is not even read: answer 400 and close
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$", re.IGNORECASE)
IDENTIFIER_KEYS = ("id", "email")
REGION_BODY = {"url": "https://track.customer.io", "data_center": "us", "environment_id": 1}
UNAUTHORIZED_BODY = {"meta": {"errors": ["Unauthorized request"]}}


@dataclass
class Profile:
    """One person as the workspace holds them: identifiers, attributes and their events."""

    id: str | None = None
    email: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)  # event names, in arrival order


class FakeCustomerIO:
    """A loopback stand-in for the Track API that records what it received."""

    def __init__(
        self,
        credentials: dict[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.verbose = verbose
        self._credentials = dict(credentials)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = LoopbackServer(self._wsgi, host=host, port=port)
        self._fail: list[int] = []  # statuses for the next requests
        self._drop = 0
        self._rate_limited_until = 0.0
        self._rate_limited_sites: dict[str, float] = {}  # site id -> until (epoch)
        self._retry_after: float = 1
        self._delay = 0.0
        self._in_flight = 0
        self.max_in_flight = 0
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeCustomerIO:
        """Bind and serve from a daemon thread; return self."""
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        self._server.stop()

    def __enter__(self) -> FakeCustomerIO:
        return self if self._server.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to give a TrackClient, e.g. http://127.0.0.1:54321."""
        return f"http://{self.host}:{self.port}"

    # -- state -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything received and every pending fault."""
        with self._lock:
            self.requests: list[dict[str, Any]] = []
            self.events: list[dict[str, Any]] = []
            self.identifies: list[dict[str, Any]] = []
            self.people: dict[str, dict[str, Any]] = {}
            self.profiles: list[Profile] = []
            self.duplicate_events = 0
            self._event_ids: set[str] = set()
            self._fail = []
            self._drop = 0
            self._rate_limited_until = 0.0
            self._rate_limited_sites = {}
            self._delay = 0.0
            self.max_in_flight = 0

    @property
    def in_flight(self) -> int:
        """Requests received (body read) but not answered yet, e.g. held by `set_delay`."""
        with self._lock:
            return self._in_flight

    def set_credentials(self, site_id: str, api_key: str) -> None:
        """Accept `api_key` for `site_id` from now on (replacing its previous key)."""
        with self._lock:
            self._credentials[site_id] = api_key

    def events_named(self, name: str) -> list[dict[str, Any]]:
        """Return the unique events called `name`, in arrival order."""
        with self._lock:
            return [e for e in self.events if e["name"] == name]

    def profile_of(self, *, id: str | None = None, email: str | None = None) -> Profile | None:
        """The profile holding this id or email, or None."""
        with self._lock:
            return self._find_profile(id, email.lower() if email else None)

    def _find_profile(self, person_id: str | None, email: str | None) -> Profile | None:
        for profile in self.profiles:
            if (person_id and profile.id == person_id) or (email and profile.email == email):
                return profile
        return None

    def _resolve(self, kind: str, value: str, email: str | None) -> Profile:
        """The profile an op addresses (lock held), created or attached as Customer.io does."""
        person_id = value if kind == "id" else None
        email = (value if kind == "email" else email or "").lower() or None
        profile = self._find_profile(person_id, None) if person_id else None
        if profile is None and email:
            by_email = self._find_profile(None, email)
            if by_email is not None and (person_id is None or by_email.id is None):
                profile = by_email
                profile.id = profile.id or person_id  # the email-only person gets the id
        if profile is None:
            taken = email is not None and self._find_profile(None, email) is not None
            profile = Profile(id=person_id, email=None if taken else email)
            self.profiles.append(profile)
        if email and profile.email is None and self._find_profile(None, email) is None:
            profile.email = email
        return profile

    def wait_for_events(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least `n` unique events arrived; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.events) >= n, timeout=timeout)

    # -- fault injection -------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next `n` requests with `status`."""
        with self._lock:
            self._fail.extend([status] * n)

    def rate_limit_for(
        self, seconds: float, retry_after: float = 1, site_id: str | None = None
    ) -> None:
        """Answer 429 with a Retry-After header for the next `seconds` of wall-clock time
        (to one workspace's requests only, when `site_id` is given: limits are per
        workspace)."""
        with self._lock:
            if site_id is None:
                self._rate_limited_until = time.time() + seconds
            else:
                self._rate_limited_sites[site_id] = time.time() + seconds
            self._retry_after = retry_after

    def set_delay(self, seconds: float) -> None:
        """Wait `seconds` before answering each request (0 to stop)."""
        with self._lock:
            self._delay = seconds

    def drop_next(self, n: int) -> None:
        """Close the connection without answering for the next `n` requests."""
        with self._lock:
            self._drop += n

    # -- request handling (called from server threads) -------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_READ_BYTES:  # answer without reading it, then close
            reply = _Reply(400, {"meta": {"errors": ["bad Content-Length"]}})
            reply.headers["Connection"] = "close"
        else:
            body = request.get_data() if length else b""
            auth = request.headers.get("Authorization")
            path = environ["RAW_URI"]  # as sent, query included (werkzeug's server sets it)
            reply = self._handle(request.method, path, auth, body)
        if reply.status is None:
            raise drop_connection(environ)
        response = Response(reply.body, reply.status, reply.headers, mimetype="application/json")
        return response(environ, start_response)

    def _handle(self, method: str, path: str, auth: str | None, body: bytes) -> _Reply:
        arrived, arrived_monotonic = time.time(), time.monotonic()
        with self._lock:
            delay = self._delay
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        if delay:
            time.sleep(delay)
        site_id = _basic_user(auth)
        with self._lock:
            self._in_flight -= 1
            reply = self._fault(site_id)
            if reply is None:
                reply = self._route(method, path, auth, body)
            self.requests.append(
                {
                    "time": arrived,  # when the body was read, before any set_delay
                    "monotonic": arrived_monotonic,
                    "method": method,
                    "path": path,
                    "site_id": site_id,
                    "authorization": auth,  # raw header: lets tests check the Basic auth
                    "status": reply.status,  # None: connection dropped
                    "ops": reply.ops or _ops_of(path, body),
                }
            )
            self._changed.notify_all()
        for line in reply.log:
            print(line, flush=True)
        return reply

    def _fault(self, site_id: str | None) -> _Reply | None:
        if self._drop:
            self._drop -= 1
            return _Reply(None)
        if self._fail:
            status = self._fail.pop(0)
            return _Reply(status, {"meta": {"errors": [f"injected {status}"]}})
        limited_until = max(
            self._rate_limited_until, self._rate_limited_sites.get(site_id or "", 0)
        )
        if time.time() < limited_until:
            body = {"meta": {"errors": ["Too many requests"]}}
            return _Reply(429, body, headers={"Retry-After": _header_number(self._retry_after)})
        return None

    def _route(self, method: str, path: str, auth: str | None, body: bytes) -> _Reply:
        path = path.split("?", 1)[0]
        routes: dict[tuple[str, str], Callable[[bytes], _Reply]] = {
            ("POST", "/api/v2/batch"): self._batch,
            ("POST", "/api/v2/entity"): self._entity,
            ("GET", "/api/v1/accounts/region"): lambda _body: _Reply(200, REGION_BODY),
        }
        handler = routes.get((method, path))
        if handler is None:
            return _Reply(404, {"meta": {"errors": ["Not found"]}})
        if not self._authorized(auth):
            reply = _Reply(401, UNAUTHORIZED_BODY)
            reply.log = ["customer.io  401 unauthorized request"] if self.verbose else []
            return reply
        return handler(body)

    def _authorized(self, auth: str | None) -> bool:
        pair = _basic_pair(auth)
        return pair is not None and self._credentials.get(pair[0]) == pair[1]

    def _batch(self, body: bytes) -> _Reply:
        if len(body) > MAX_BATCH_BYTES:
            return _bad_request("batch", f"request body over {MAX_BATCH_BYTES} bytes")
        parsed = _json(body)
        if not isinstance(parsed, dict) or not isinstance(parsed.get("batch"), list):
            return _bad_request("batch", 'body must be a JSON object {"batch": [...]}')
        ops: list[Any] = parsed["batch"]
        errors, log = [], []
        for index, op in enumerate(ops):
            problem = _validate(op)
            if problem is None:
                log.append(self._apply(op))
            else:
                errors.append({"batch_index": index, **problem})
                log.append(f"customer.io  rejected op {index}: {problem['message']}")
        status = 200 if not errors else (207 if len(errors) < len(ops) else 400)
        reply = _Reply(status, {"errors": errors} if errors else {}, ops=ops)
        reply.log = log if self.verbose else []
        return reply

    def _entity(self, body: bytes) -> _Reply:
        if len(body) > MAX_OP_BYTES:
            return _bad_request("", f"request body over {MAX_OP_BYTES} bytes")
        op = _json(body)
        problem = _validate(op)
        if problem is not None:
            return _Reply(400, {"errors": [problem]}, ops=[op])
        line = self._apply(op)
        reply = _Reply(200, {}, ops=[op])
        reply.log = [line] if self.verbose else []
        return reply

    def _apply(self, op: dict[str, Any]) -> str:
        """Record a valid op (lock held); return its one-line summary."""
        identifiers = op["identifiers"]
        kind, value = next(iter(identifiers.items()))
        person = str(value).lower() if kind == "email" else str(value)
        attributes = dict(op.get("attributes") or {})
        if op["action"] == "identify":
            self.identifies.append(
                {
                    "identifiers": identifiers,
                    "attributes": attributes,
                    "timestamp": op.get("timestamp"),
                }
            )
            self.people.setdefault(person, {}).update(attributes)
            email = attributes.get("email")
            profile = self._resolve(kind, str(value), email if isinstance(email, str) else None)
            profile.attributes.update(attributes)
            shown = " ".join(
                f"{k}={v}"
                for k, v in attributes.items()
                if _scalar(v) and not (k == kind and str(v) == str(value))  # said already
            )
            return f"customer.io  identify {kind}={value} {shown}".rstrip()
        event_id = op["id"].upper()
        if event_id in self._event_ids:
            self.duplicate_events += 1
            return f"customer.io  duplicate {op['name']} id={event_id} ignored"
        self._event_ids.add(event_id)
        self.events.append(
            {
                "identifiers": identifiers,
                "name": op["name"],
                "id": event_id,
                "timestamp": op["timestamp"],
                "attributes": attributes,
            }
        )
        self.people.setdefault(person, {})
        self._resolve(kind, str(value), None).events.append(op["name"])
        return f"customer.io  track {op['name']} id={event_id} person={value}{_amount(attributes)}"


class _Reply:
    """What to answer: status None means drop the connection."""

    def __init__(
        self,
        status: int | None,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        ops: list[Any] | None = None,
    ) -> None:
        self.status = status
        self.body = b"" if body is None else json.dumps(body).encode()
        self.headers = headers or {}
        self.ops = ops or []
        self.log: list[str] = []


def _validate(op: Any) -> dict[str, str] | None:
    """Return a v2 error dict (reason, field, message) for an invalid op, else None."""
    if not isinstance(op, dict):
        return _error("invalid", "", "operation must be an object")
    if len(json.dumps(op).encode()) > MAX_OP_BYTES:
        return _error("too_large", "", f"operation over {MAX_OP_BYTES} bytes")
    if op.get("type") != "person":
        return _error("invalid", "type", "type must be person")
    if op.get("action") not in ("identify", "event"):
        return _error("invalid", "action", "action must be identify or event here")
    identifiers = op.get("identifiers")
    if not isinstance(identifiers, dict) or len(identifiers) != 1:
        # Like the real API, echo the offending value (the client must redact it).
        shown = json.dumps(identifiers)[:200]
        return _error("invalid", "identifiers", f"exactly one identifier is required: {shown}")
    kind, value = next(iter(identifiers.items()))
    if kind not in IDENTIFIER_KEYS:
        return _error("invalid", "identifiers", f"unsupported identifier {kind}")
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        return _error("invalid", f"identifiers.{kind}", "identifier must be a non-empty value")
    if kind == "email" and "@" not in str(value):
        return _error("invalid", "identifiers.email", "not an email address")
    if "attributes" in op and not isinstance(op["attributes"], dict):
        return _error("invalid", "attributes", "attributes must be an object")
    timestamp = op.get("timestamp")
    if "timestamp" in op and (isinstance(timestamp, bool) or not isinstance(timestamp, int)):
        return _error("invalid", "timestamp", "timestamp must be integer Unix seconds")
    if op["action"] == "event":
        name = op.get("name")
        if not isinstance(name, str) or not name.strip() or len(name.encode()) > 100:
            return _error("required", "name", "event name is required (100 bytes at most)")
        if not isinstance(op.get("id"), str) or not ULID_RE.match(op["id"]):
            return _error("invalid", "id", "event id must be a ULID")
        if timestamp is None:
            return _error("required", "timestamp", "timestamp is required")
    return None


def _ops_of(path: str, body: bytes) -> list[Any]:
    """Best-effort list of the ops a request carried (for requests answered by a fault)."""
    parsed = _json(body) if body else None
    if path.startswith("/api/v2/batch") and isinstance(parsed, dict):
        batch = parsed.get("batch")
        return batch if isinstance(batch, list) else []
    return [parsed] if path.startswith("/api/v2/entity") and parsed is not None else []


def _error(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "field": field, "message": message}


def _bad_request(field: str, message: str) -> _Reply:
    return _Reply(400, {"errors": [_error("invalid", field, message)]})


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _basic_pair(auth: str | None) -> tuple[str, str] | None:
    if not auth or not auth.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _basic_user(auth: str | None) -> str | None:
    pair = _basic_pair(auth)
    return pair[0] if pair else None


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and len(str(value)) <= 60


def _amount(attributes: dict[str, Any]) -> str:
    for key in ("revenue", "total", "value"):
        if _scalar(attributes.get(key)):
            currency = attributes.get("currency")
            return f" {key}={attributes[key]}" + (f" {currency}" if currency else "")
    return ""


def _header_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a verbose FakeCustomerIO in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description="A local stand-in for Customer.io's Track API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--site-id", default="demo")
    parser.add_argument("--api-key", default="demo-key")
    args = parser.parse_args(argv)
    fake = FakeCustomerIO(
        {args.site_id: args.api_key}, host=args.host, port=args.port, verbose=True
    ).start()
    print(f"FakeCustomerIO listening on {fake.url} (site id {args.site_id})", flush=True)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
