"""The merchant's feed health on /settings: figures from the database, advice in plain words."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import jwt
import pytest
from flask.testing import FlaskClient

from connector.dev.fake_customerio import FakeCustomerIO
from connector.install.merchant import SESSION_KEY
from connector.runtime import Runtime
from connector.storage.db import transaction
from connector.storage.health import feed_health
from connector.storage.models import Shop
from connector.timeutil import utcnow
from tests.feed_events import FIGURES, seed_week
from tests.support import (
    API_KEY,
    SECRET,
    SHOP,
    SITE_ID,
    add_shop,
    console_order,
    post_webhook,
    run_jobs,
)


def signed_in(client: FlaskClient, shop: str = SHOP) -> FlaskClient:
    with client.session_transaction() as session:
        session[SESSION_KEY] = shop
    return client


def figure(page: str, metric: str, hours: int) -> str:
    found = re.search(rf'id="{metric}-{hours}h">([^<]*)<', page)
    assert found, f"{metric}-{hours}h not on the page"
    return found.group(1)


def test_feed_health_counts_a_shops_day_and_week(rt: Runtime, shop: str) -> None:
    now = utcnow()
    seed_week(rt, SHOP, now)
    with rt.sessions() as session:
        health = feed_health(session, SHOP, now)
    day, week = health.windows
    assert (day.delivered, day.failed, day.waiting, day.quarantined) == (3, 1, 1, 1)
    assert (week.delivered, week.failed, week.unidentifiable) == (4, 3, 1)
    assert day.lag_p95 == pytest.approx(600, abs=1) and week.lag_p95 == pytest.approx(600, abs=1)
    assert health.last_delivered_at is not None
    assert abs(health.last_delivered_at - (now - timedelta(hours=2, seconds=-10))) < timedelta(
        seconds=1
    )
    assert health.last_order_received_at is not None
    assert now - health.last_order_received_at < timedelta(hours=2, seconds=1)
    assert health.oldest_waiting_at is not None
    assert health.webhooks_set_aside == 1
    assert dict(health.failures) == {
        "400 Bad Request: invalid timestamp": 1,
        "gave up after 11 attempts: timeout": 1,
        "gave up after 11 attempts: connection error": 1,
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_settings_page_shows_the_figures_the_reasons_and_what_to_do(
    client: FlaskClient, rt: Runtime, shop: str
) -> None:
    seed_week(rt, SHOP, utcnow())
    page = signed_in(client).get("/settings").get_data(as_text=True)
    for metric, (day, week) in FIGURES.items():
        assert (figure(page, metric, 24), figure(page, metric, 168)) == (day, week), metric
    assert re.search(r'id="set-aside">1<', page)
    reasons = re.search(r'<ul id="failure-reasons">(.*?)</ul>', page, re.S)
    assert reasons
    assert re.findall(r"<li>([^<]*)</li>", reasons.group(1)) == [
        "Customer.io could not be reached for a day: 2",
        "Customer.io refused the event as invalid: 1",
    ]
    advice = re.findall(r'class="advice">([^<]*)', page)
    assert advice == [
        "3 events could not be delivered in the last 7 days (mostly: Customer.io could not be "
        "reached for a day). Contact support to have them sent again once the cause is fixed.",
        "1 event breaks the track spec and was not sent: contact support.",
        "1 webhook(s) from Shopify could not be read and were set aside: contact support.",
        "1 event waiting to be sent, the oldest for over 60 minutes: Customer.io is retried "
        "automatically; contact support if this lasts.",
        "1 event had no customer and no email (such as in-person sales) and could not be sent "
        "to anyone. Nothing to do.",
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rejected_api_key_shows_the_banner_to_update_it(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    add_shop(rt, SHOP, api_key="wrong-key")
    placed = (utcnow() - timedelta(minutes=5)).isoformat()
    order = {**console_order(0), "created_at": placed, "processed_at": placed}
    assert post_webhook(client, "orders/create", order, "feed-1").status_code == 200
    run_jobs(rt)  # Customer.io answers 401: the event fails, the shop's key is rejected

    page = signed_in(client).get("/settings").get_data(as_text=True)
    assert '<s-banner tone="critical" class="advice">Customer.io rejected the API key: ' in page
    assert '<a href="#settings">Go to the settings</a>' in page
    assert (figure(page, "failed", 24), figure(page, "delivered", 24)) == ("1", "0")
    assert "<li>Customer.io rejected the site id or API key: 1</li>" in page
    assert "No order received" not in page


def session_token(shop: str) -> str:
    now = int(time.time())
    claims = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": "test-api-key",
        "sub": "42",
        "exp": now + 60,
        "nbf": now - 5,
        "iat": now - 5,
        "jti": "jti-feed",
        "sid": "sid-feed",
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


# The suite's test secret is shorter than the 32 bytes PyJWT recommends.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_session_token_saves_without_a_cookie_and_a_cookie_alone_needs_csrf(
    client: FlaskClient, rt: Runtime
) -> None:
    add_shop(  # installed: it holds an offline token, so no token exchange is needed
        rt,
        SHOP,
        status="credentials_rejected",
        cio_site_id=None,
        shopify_access_token_encrypted=rt.secrets.encrypt("shpat_installed"),
    )
    form = {"site_id": SITE_ID, "api_key": API_KEY, "region": "eu", "order_topic": "orders/paid"}
    # A cookie session without the CSRF token: refused.
    refused = signed_in(client.application.test_client()).post("/settings", data=form)
    assert refused.status_code == 400

    bearer = {"Authorization": "Bearer " + session_token(SHOP)}
    saved = client.post("/settings", data={**form, "action": "save"}, headers=bearer)
    assert saved.status_code == 302
    with transaction(rt.sessions) as session:
        row = session.get(Shop, SHOP)
        assert row is not None
        assert (row.cio_site_id, row.cio_region, row.status) == (SITE_ID, "eu", "active")
    page = client.get("/settings?saved=1", headers=bearer).get_data(as_text=True)
    assert "Settings saved." in page and "rejected the API key" not in page
