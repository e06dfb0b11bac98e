"""The support console against real storage, Redis and the Customer.io stand-in."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, replace
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connector.app import create_app
from connector.dev.fake_customerio import FakeCustomerIO
from connector.events import EventName, stable_event_id
from connector.runtime import Runtime
from connector.statuses import EventStatus, ShopStatus
from connector.storage import problems
from connector.storage.db import transaction
from connector.storage.health import percentile, shops_health
from connector.storage.models import Event, ReplayAudit, WebhookDelivery
from connector.timeutil import utcnow
from tests.feed_events import seed_week
from tests.support import (
    SHOP,
    add_shop,
    add_staff_account,
    console_csrf,
    console_login,
    console_order,
    failed_order_event,
    make_order,
    max_requests_per_second,
    post_webhook,
    run_jobs,
    sample,
)
from webhooks.mapping import map_order


@pytest.fixture
def staff(rt: Runtime) -> str:
    return add_staff_account(rt)


@pytest.fixture
def console(client: FlaskClient, staff: str) -> FlaskClient:
    """A test client logged in as staff."""
    assert console_login(client).status_code == 302
    return client


def replay(client: FlaskClient, **form: object) -> str:
    """Preview, then confirm; return the preview page's text."""
    data = {**form, "csrf_token": console_csrf(client)}
    preview = client.post("/console/replay/preview", data=data)
    assert preview.status_code == 200
    confirmed = client.post("/console/replay", data=data)
    assert confirmed.status_code == 302 and confirmed.location.endswith("/console/audit")
    return preview.get_data(as_text=True)


def console_urls(app: Flask) -> list[tuple[str, str]]:
    """Every console route but the login page, with placeholder arguments filled in."""
    placeholders = {
        "domain": SHOP,
        "event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "kind": "failed",
        "state": "failed",
    }
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint == "console.login":
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", placeholders[name])
        urls += [(method, path) for method in sorted(rule.methods & {"GET", "POST"})]
    return urls


def test_every_console_route_refuses_anonymous_and_merchant_sessions(
    client: FlaskClient, rt: Runtime
) -> None:
    urls = console_urls(client.application)
    assert len(urls) >= 10
    for merchant in (False, True):
        if merchant:
            with client.session_transaction() as session:
                session["merchant_shop"] = SHOP
        token = console_csrf(client)
        for method, path in urls:
            response = client.open(path, method=method, data={"csrf_token": token})
            assert response.status_code == 302, (method, path)
            assert "/console/login" in response.location, (method, path)


def test_login_sets_a_staff_session_and_logout_ends_it(client: FlaskClient, staff: str) -> None:
    with client.session_transaction() as session:
        session["merchant_shop"] = SHOP
    response = console_login(client)
    assert response.status_code == 302 and response.location.endswith("/console/")
    with client.session_transaction() as session:
        assert "merchant_shop" not in session and session["staff_id"]
    assert client.get("/console/").status_code == 200
    assert client.post("/console/logout", data={"csrf_token": console_csrf(client)}).status_code
    assert client.get("/console/").status_code == 302


def test_wrong_password_is_refused(client: FlaskClient, staff: str) -> None:
    assert console_login(client, password="not the password").status_code == 401
    assert client.get("/console/").status_code == 302


def test_post_without_csrf_token_is_400(console: FlaskClient, client: FlaskClient) -> None:
    assert console.post("/console/replay/preview", data={"event_id": "X"}).status_code == 400
    assert console.post("/console/search", data={"q": "#1042"}).status_code == 400
    fresh = client.application.test_client()
    data = {"email": "support@example.com", "password": "correct horse battery"}
    assert fresh.post("/console/login", data=data).status_code == 400


def test_login_attempts_are_rate_limited_per_email_and_address(
    client: FlaskClient, staff: str
) -> None:
    for _ in range(5):
        assert console_login(client, password="guess").status_code == 401
    assert console_login(client).status_code == 429  # even the right password, for now
    assert console_login(client, email="other@example.com").status_code == 401
    other_address = client.application.test_client()
    token = console_csrf(other_address)
    response = other_address.post(
        "/console/login",
        data={"email": staff, "password": "correct horse battery", "csrf_token": token},
        environ_overrides={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    "query", ["#1042", "1042", "JANE0@example.com", "77000", "token-0", "9100000", "event-id"]
)
def test_search_finds_an_order(
    console: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO, query: str
) -> None:
    for index in range(3):
        post_webhook(console, "orders/create", console_order(index), f"s-{index}")
    run_jobs(rt)
    event_id = stable_event_id(SHOP, EventName.ORDER_PLACED, "9100000")
    query = event_id.lower() if query == "event-id" else query
    page = console.post("/console/search", data={"q": query, "csrf_token": console_csrf(console)})
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert event_id in text
    assert stable_event_id(SHOP, EventName.ORDER_PLACED, "9100001") not in text


def test_a_checkout_token_finds_the_checkout_and_its_order(
    console: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    checkout = sample("checkouts_create_2026-07.json")
    placed = {**console_order(0), "checkout_token": checkout["token"]}
    post_webhook(console, "checkouts/create", checkout, "c-1")
    post_webhook(console, "orders/create", placed, "c-2")
    run_jobs(rt)
    token = console_csrf(console)
    text = console.post("/console/search", data={"q": checkout["token"], "csrf_token": token})
    page = text.get_data(as_text=True)
    assert stable_event_id(SHOP, EventName.CHECKOUT_STARTED, checkout["token"]) in page
    assert stable_event_id(SHOP, EventName.ORDER_PLACED, "9100000") in page


def test_search_by_shop_lists_its_events(console: FlaskClient, rt: Runtime, shop: str) -> None:
    post_webhook(console, "orders/create", console_order(0), "s-0")
    run_jobs(rt)
    page = console.get(f"/console/search?shop={SHOP}").get_data(as_text=True)
    assert stable_event_id(SHOP, EventName.ORDER_PLACED, "9100000") in page


def test_timeline_shows_webhook_attempts_and_the_bodies_sent(
    console: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(console, "orders/create", console_order(0), "t-0")
    run_jobs(rt)
    event_id = stable_event_id(SHOP, EventName.ORDER_PLACED, "9100000")
    page = console.get(f"/console/events/{event_id}").get_data(as_text=True)
    for expected in ("Webhook received", "orders/create", "t-0", "Mapped to a canonical event"):
        assert expected in page
    assert "Delivery attempt" in page and "delivered" in page
    identify, track = [r for r in fake_customerio.requests if r["path"] == "/api/v2/batch"][0][
        "ops"
    ]
    assert f"&#34;id&#34;: &#34;{event_id}&#34;" in page  # the track body, pretty-printed
    assert "&#34;action&#34;: &#34;identify&#34;" in page
    assert track["id"] == event_id and identify["action"] == "identify"


def test_shop_overview_shows_lag_percentiles(
    console: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    now = utcnow()
    with transaction(rt.sessions) as session:
        for index, lag in enumerate((10, 20, 30, 40, 600)):
            session.add(
                Event(
                    id=stable_event_id(SHOP, EventName.ORDER_PLACED, f"lag-{index}"),
                    shop_domain=SHOP,
                    name=EventName.ORDER_PLACED,
                    natural_key=f"lag-{index}",
                    occurred_at=now - timedelta(hours=1, seconds=lag),
                    delivered_at=now - timedelta(hours=1),
                    status=EventStatus.DELIVERED,
                )
            )
    page = console.get(f"/console/shops/{SHOP}").get_data(as_text=True)
    assert "<b>30.0 s</b><span>p50 lag" in page
    assert "<b>10.0 min</b><span>p95 lag (5 deliveries)" in page
    assert "<b>100.0%</b><span>delivery success rate" in page


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 95) == 95.0


OTHER_SHOP = "another-shop.myshopify.com"  # seed_week's shop without a row: only an event
QUIET_SHOP = "quiet-shop.myshopify.com"


def overview_rows(page: str) -> dict[str, list[str]]:
    """The overview's table of shops: per shop, the text of its cells after the name."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows: dict[str, list[str]] = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        name, *rest = [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]
        rows[name] = rest
    return rows


def test_overview_counts_each_shops_last_7_days_by_status(
    console: FlaskClient, rt: Runtime, shop: str
) -> None:
    now = utcnow()
    seed_week(rt, SHOP, now)  # 10 events in the week and one older; one of OTHER_SHOP
    add_shop(rt, QUIET_SHOP, status=ShopStatus.UNINSTALLED)  # a shop without events
    edges = [("edge-in", EventStatus.PENDING, -1), ("edge-out", EventStatus.FAILED, 1)]
    with transaction(rt.sessions) as session:
        for key, status, minutes in edges:  # a minute inside and outside the 7 days
            session.add(
                Event(
                    id=stable_event_id(SHOP, EventName.ORDER_PLACED, key),
                    shop_domain=SHOP,
                    name=EventName.ORDER_PLACED,
                    natural_key=key,
                    occurred_at=now - timedelta(days=7, minutes=minutes),
                    status=status,
                )
            )
    with rt.sessions() as session:
        health = shops_health(session)
    week = {"delivered": 4, "failed": 3, "pending": 2, "quarantined": 1, "unidentifiable": 1}
    assert [(h.domain, h.shop_status, h.counts) for h in health] == [
        (OTHER_SHOP, "unknown", {"delivered": 1}),
        (QUIET_SHOP, "uninstalled", {}),
        (SHOP, "active", week),
    ]
    # shop, status, events, delivered, failed, pending, success rate, reconciled
    assert overview_rows(console.get("/console/").get_data(as_text=True)) == {
        OTHER_SHOP: ["unknown", "1", "1", "0", "0", "100.0%", "—"],
        QUIET_SHOP: ["uninstalled", "0", "0", "0", "0", "—", "—"],
        SHOP: ["active", "11", "4", "3", "2", "57.1%", "—"],
    }


def test_lists_count_failed_by_reason_and_waiting_shops(
    console: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    add_shop(rt, SHOP, api_key="wrong-key")
    post_webhook(console, "orders/create", console_order(0), "l-0")
    run_jobs(rt)
    post_webhook(
        console, "orders/create", console_order(1), "l-1"
    )  # waits: the shop's key was rejected
    run_jobs(rt)
    failed = console.get("/console/lists/failed").get_data(as_text=True)
    assert "401" in failed and '<span class="badge">1</span>' in failed
    waiting = console.get("/console/lists/waiting").get_data(as_text=True)
    assert "credentials rejected" in waiting and "#1043" in waiting
    for kind in ("quarantined", "unidentifiable"):
        assert console.get(f"/console/lists/{kind}").status_code == 200
    overview = console.get("/console/").get_data(as_text=True)
    assert SHOP in overview and "credentials_rejected" in overview
    shop_page = console.get(f"/console/shops/{SHOP}").get_data(as_text=True)
    assert "Events per day" in shop_page and "401" in shop_page


def test_quarantined_list_shows_each_violation_and_what_it_counted(
    console: FlaskClient, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(problems, "VIOLATION_LISTS", 1)
    with transaction(rt.sessions) as session:
        for n, violations in enumerate([["a.b: missing"], ["a.b: missing"], ["c: not in"]]):
            session.add(
                Event(
                    id=f"01QUARANTINED{n:013d}",
                    shop_domain=SHOP,
                    name="order_placed",
                    natural_key=str(n),
                    occurred_at=utcnow(),
                    status=EventStatus.QUARANTINED,
                    reason="breaks the track spec",
                    violations=violations,
                )
            )
    page = console.get("/console/lists/quarantined").get_data(as_text=True)
    assert '<span class="badge">3</span>' in page
    assert '<td>a.b: missing</td><td class="num">2</td>' in page
    assert "Violations counted over 2 of the 3 events" in page
    assert "Replay all quarantined" in page and "01QUARANTINED0000000000002" in page


def test_a_failed_event_replayed_from_the_console_is_delivered_once(
    console: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    event_id = failed_order_event(console, rt)
    preview = replay(console, event_id=event_id)
    assert "<b>1</b> event will be" in preview and SHOP in preview
    run_jobs(rt)
    assert [e["id"] for e in fake_customerio.events_named("order_placed")] == [event_id]

    batches = len(fake_customerio.requests)
    preview = replay(console, event_id=event_id)
    assert "Nothing to replay" in preview and "1 delivered event(s) will be left alone" in preview
    run_jobs(rt)
    assert (
        len(fake_customerio.requests) == batches
        and len(fake_customerio.events_named("order_placed")) == 1
    )
    with rt.sessions() as session:
        audits = session.scalars(select(ReplayAudit).order_by(ReplayAudit.id)).all()
    assert [(a.actor, a.requeued, a.skipped) for a in audits] == [
        ("staff:support@example.com", 1, 0),
        ("staff:support@example.com", 0, 1),
    ]
    assert audits[0].event_ids == [event_id]
    page = console.get("/console/audit").get_data(as_text=True)
    assert "staff:support@example.com" in page and event_id in page
    timeline = console.get(f"/console/events/{event_id}").get_data(as_text=True)
    assert "Replayed" in timeline and "rejected_credentials" in timeline


def seed_failed_orders(rt: Runtime, count: int) -> list[str]:
    """`count` failed order_placed events and their webhooks, written straight to the database."""
    payload = sample("orders_create_2026-07.json")
    now = utcnow()
    ids = []
    with transaction(rt.sessions) as session:
        for index in range(count):
            body = make_order(5_000_000 + index, name=f"#B{index}", base=payload)
            event = map_order(body, shop_domain=SHOP).with_properties(is_first_order=False)
            webhook = WebhookDelivery(
                shop_domain=SHOP,
                topic="orders/create",
                shopify_event_id=f"bulk-{index}",
                body=json.dumps(body),
                state="processed",
                resource_key=str(body["id"]),
                event_id=event.id,
            )
            session.add(webhook)
            session.flush()
            session.add(
                Event(
                    id=event.id,
                    shop_domain=SHOP,
                    name=EventName.ORDER_PLACED,
                    natural_key=event.natural_key,
                    reference=f"#B{index}",
                    person_id=event.person.id,
                    customer_id=event.person.customer_id,
                    email=event.person.email,
                    person=asdict(event.person),
                    occurred_at=now - timedelta(minutes=count - index),
                    properties=event.properties,
                    status=EventStatus.FAILED,
                    reason="gave up after 11 attempts: 503",
                    source_delivery_id=webhook.id,
                    attempts=11,
                )
            )
            ids.append(event.id)
    return ids


def test_bulk_replay_of_1000_failed_events_delivers_each_once_within_the_rate(
    console: FlaskClient, rt: Runtime, shop: str, fake_customerio: FakeCustomerIO
) -> None:
    rate = 8.0
    rt.settings = replace(rt.settings, delivery_rate_per_second=rate, delivery_batch_size=50)
    ids = seed_failed_orders(rt, 1000)
    since = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    preview = replay(console, shop=SHOP, since=since, status="failed")
    assert "<b>1000</b> events will be" in preview
    run_jobs(rt)

    delivered = fake_customerio.events_named("order_placed")
    assert sorted(e["id"] for e in delivered) == sorted(ids)
    assert fake_customerio.duplicate_events == 0
    batch_times = [r["time"] for r in fake_customerio.requests if r["path"] == "/api/v2/batch"]
    assert len(batch_times) == 20 and max_requests_per_second(batch_times) <= rate
    with rt.sessions() as session:
        [audit] = session.scalars(select(ReplayAudit)).all()
        counts = dict(
            session.execute(select(Event.status, func.count()).group_by(Event.status))
            .tuples()
            .all()
        )
    assert counts == {"delivered": 1000}
    assert (audit.considered, audit.requeued, audit.shops) == (1000, 1000, [SHOP])
    assert audit.filters["shop"] == SHOP and audit.filters["statuses"] == ["failed"]
    assert len(audit.event_ids) == 1000


def test_personal_data_never_reaches_the_logs(
    console: FlaskClient, rt: Runtime, shop: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    post_webhook(console, "orders/create", console_order(0), "p-0")
    run_jobs(rt)
    console.post("/console/search", data={"q": "jane0@example.com", "csrf_token": "wrong"})
    console.post(
        "/console/search", data={"q": "jane0@example.com", "csrf_token": console_csrf(console)}
    )
    event_id = stable_event_id(SHOP, EventName.ORDER_PLACED, "9100000")
    page = console.get(f"/console/events/{event_id}").get_data(as_text=True)
    assert "jane0@example.com" in page  # staff see it ...
    assert not re.search(r"jane0@example\.com|77000", caplog.text)  # ... logs never do


def test_pages_are_not_cached(console: FlaskClient) -> None:
    assert console.get("/console/").headers["Cache-Control"] == "no-store"


def test_unknown_event_and_list_are_404(console: FlaskClient) -> None:
    assert console.get("/console/events/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404
    assert console.get("/console/lists/everything").status_code == 404


def test_a_fresh_app_serves_the_stylesheet(rt: Runtime) -> None:
    response = create_app(rt).test_client().get("/static/console.css")
    assert response.status_code == 200 and b".timeline" in response.data
    response.close()
