"""Helpers the tests share: settings, signed webhook posts, burst workers, the CLI."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from flask.testing import FlaskClient
from rq import Queue, SimpleWorker

from connector import runtime
from connector.cli import main
from connector.config import Settings
from connector.runtime import Runtime
from connector.storage.db import transaction
from connector.storage.models import Shop
from connector.timeutil import utcnow
from webhooks.verify import sign

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHOP = "test-shop.myshopify.com"
SITE_ID, API_KEY = "site-1", "track-key-1"
SECRET = "test-shopify-secret"
# Debian's chromium, headless, quiet on a machine without a network (browser tests).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "shopify_api_key": "test-api-key",
        "shopify_api_secrets": (SECRET, "previous-shopify-secret"),
        "secret_key": "test-connector-secret",
        "delivery_rate_per_second": 50.0,
        "retry_schedule": (1, 1, 1, 1, 1),
        "lease_seconds": 30,
        "http_timeout_seconds": 2.0,
        "queue_name": "connector-test",
        "kick_debounce_seconds": 0.0,  # tests run jobs in bursts; test_kicks.py covers it
        # The sample payloads are orders of July 2026; test_new_orders.py covers the window.
        "new_order_window_hours": 24 * 365 * 10,
    }
    values.update(overrides)
    return Settings(**values)


def add_shop(rt: Runtime, domain: str, api_key: str = API_KEY, **fields: Any) -> None:
    """A configured shop; its order history counts as imported (a new store, so each
    customer's first order is first) unless `history_imported_at=None` is given."""
    fields.setdefault("history_imported_at", utcnow())
    with transaction(rt.sessions) as session:
        row = session.get(Shop, domain) or Shop(domain=domain)
        row.cio_site_id = SITE_ID
        row.cio_api_key_encrypted = rt.secrets.encrypt(api_key)
        row.cio_region = "us"
        row.status = "active"
        for key, value in fields.items():
            setattr(row, key, value)
        session.add(row)


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


ORDER_SAMPLE = "orders_create_2026-07.json"


def make_order(
    order_id: int,
    *,
    name: str | None = None,
    when: str | None = None,
    customer: dict[str, Any] | None = None,
    rename_shopper: bool = False,
    base: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The tests' one order builder: a copy of the 2026-07 orders/create sample (or `base`)
    as order `order_id`, named `name` (default "#<order_id>", whose digits are its number),
    placed at `when`, with `customer` fields and top-level `fields` (email, test, ...)
    overriding the sample's. `rename_shopper` turns the sample's Maya Chen into someone else
    wherever the name appears (addresses included)."""
    payload = copy.deepcopy(base if base is not None else sample(ORDER_SAMPLE))
    if rename_shopper:
        payload = json.loads(json.dumps(payload).replace("Maya", "Zed").replace("Chen", "Other"))
    name = name or f"#{order_id}"
    digits = name.lstrip("#")
    payload.update(
        id=order_id, name=name, order_number=int(digits) if digits.isdigit() else order_id
    )
    if when is not None:
        payload["created_at"] = payload["processed_at"] = when
    if customer:
        payload["customer"] = {**payload["customer"], **customer}
    payload.update(fields)
    return payload


def signed_headers(
    body: bytes, topic: str, event_id: str, shop: str = SHOP, secret: str = SECRET
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Webhook-Id": f"webhook-{event_id}",
        "X-Shopify-API-Version": "2026-07",
        "X-Shopify-Triggered-At": "2026-07-14T10:21:40Z",
    }


def post_webhook(
    client: FlaskClient,
    topic: str,
    payload: dict[str, Any] | bytes,
    event_id: str,
    shop: str = SHOP,
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(
        "/webhooks/shopify", data=body, headers=signed_headers(body, topic, event_id, shop)
    )


def run_jobs(rt: Runtime) -> None:
    """Run every queued job in this process, as a burst worker would."""
    queue = Queue(rt.settings.queue_name, connection=rt.redis)
    SimpleWorker([queue], connection=rt.redis).work(burst=True)


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for a `connector` subprocess using the same settings as the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DATABASE_"))}
    env.update(
        {
            "SHOPIFY_API_KEY": settings.shopify_api_key,
            "SHOPIFY_API_SECRET": settings.shopify_api_secrets[0],
            "CONNECTOR_SECRET_KEY": settings.secret_key,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url or "",
            "CONNECTOR_INSTANCE_DIR": str(settings.instance_dir),
            "CUSTOMERIO_TRACK_URL": settings.customerio_track_url or "",
            "DELIVERY_RATE_PER_SECOND": str(settings.delivery_rate_per_second),
            "DELIVERY_BATCH_SIZE": str(settings.delivery_batch_size),
            "RETRY_SCHEDULE": ",".join(str(s) for s in settings.retry_schedule),
            "DELIVERY_LEASE_SECONDS": str(settings.lease_seconds),
            "HTTP_TIMEOUT_SECONDS": str(settings.http_timeout_seconds),
            "SWEEP_INTERVAL_SECONDS": "1",
            "CONNECTOR_QUEUE": settings.queue_name,
            "KICK_DEBOUNCE_SECONDS": str(settings.kick_debounce_seconds),
            "NEW_ORDER_WINDOW_HOURS": str(settings.new_order_window_hours),
        }
    )
    return env


def free_port() -> int:
    """A TCP port nothing listens on right now (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cli(
    settings: Settings, *args: str, answer: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m connector ARGS` in a subprocess (end to end), `answer` on its stdin."""
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        cwd=ROOT,
        env=subprocess_env(settings),
        input=answer,
        capture_output=True,
        text=True,
        timeout=60,
    )


def invoke_cli(
    rt: Runtime | None, *args: str, answer: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`connector ARGS` in this process, on `rt`; the result reads like run_cli's."""
    if rt is not None:
        runtime.install(rt)
    result = CliRunner().invoke(main, list(args), input=answer)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(
        ["connector", *args], result.exit_code, result.stdout, result.stderr
    )


# -- support console -------------------------------------------------------------------------

STAFF_EMAIL, STAFF_PASSWORD = "support@example.com", "correct horse battery"


def add_staff_account(rt: Runtime, email: str = STAFF_EMAIL, password: str = STAFF_PASSWORD) -> str:
    """A console account for the support staff tests."""
    from connector.console.staff import add_staff

    with transaction(rt.sessions) as session:
        add_staff(session, email, password)
    return email


def console_csrf(client: FlaskClient) -> str:
    """The session's CSRF token (created by rendering any console form)."""
    client.get("/console/login")
    with client.session_transaction() as session:
        return str(session["_csrf_token"])


def console_login(
    client: FlaskClient, email: str = STAFF_EMAIL, password: str = STAFF_PASSWORD
) -> Any:
    data = {"email": email, "password": password, "csrf_token": console_csrf(client)}
    return client.post("/console/login", data=data)


def console_order(index: int = 0) -> dict[str, Any]:
    """A sample order: #1042 + index, customer 77000 + index, checkout token-<index>."""
    return make_order(
        9_100_000 + index,
        name=f"#{1042 + index}",
        customer={"id": 77_000 + index},
        email=f"jane{index}@example.com",
        checkout_token=f"token-{index}",
    )


def failed_order_event(client: FlaskClient, rt: Runtime, index: int = 0) -> str:
    """An order whose delivery failed on a wrong API key; the key is fixed afterwards."""
    from connector.events import EventName, stable_event_id
    from connector.storage.models import Event

    add_shop(rt, SHOP, api_key="wrong-key")
    response = post_webhook(client, "orders/create", console_order(index), f"evt-{index}")
    assert response.status_code == 200
    run_jobs(rt)
    add_shop(rt, SHOP)  # the right key again, and the shop active again
    event_id = stable_event_id(SHOP, EventName.ORDER_PLACED, str(9_100_000 + index))
    with rt.sessions() as session:
        event = session.get(Event, event_id)
        assert event is not None and event.status == "failed", event and event.status
    return event_id


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where a browser test saves a screenshot: the directory in CONNECTOR_SCREENSHOTS (set by
    `make screenshots` to docs/), else the test's own tmp_path, so `make test` never
    rewrites tracked files."""
    directory = Path(os.environ.get("CONNECTOR_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


def max_requests_per_second(times: list[float], jitter: float = 0.1) -> int:
    """The most requests that arrived at a fake within any window of one second less `jitter`.

    The limiter spaces the requests it lets go; their arrival times at the fake also carry
    network and scheduling delay (tens of ms on a loaded 2-core machine), which can put the
    9th of 9 evenly spaced requests just inside a one-second window. A limiter that
    bursts still shows up: its requests arrive far closer together than `jitter`.
    """
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0 - jitter:
            start += 1
        best = max(best, end - start + 1)
    return best
