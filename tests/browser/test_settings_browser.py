"""The merchant page in a real headless Chromium, as Shopify's admin frames it.

Shopify's CDN scripts are served by the test (`tests/browser/cdn/`: App Bridge with a real
session token, Polaris's s-* elements defined minimally), so nothing leaves the machine. The
page shows the seeded week's feed health and saves through App Bridge's session token with
no cookie left; with the scripts blocked the plain form still saves. `make screenshots`
writes docs/settings-feed-health.png.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from werkzeug.serving import make_server

from connector.app import create_app
from connector.dev.fake_customerio import FakeCustomerIO
from connector.install.merchant import SESSION_KEY
from connector.runtime import Runtime
from connector.storage.models import Shop
from connector.timeutil import utcnow
from tests.feed_events import FIGURES, seed_week
from tests.support import API_KEY, CHROMIUM_ARGS, SECRET, SHOP, SITE_ID, add_shop, screenshot_path

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
CDN = Path(__file__).parent / "cdn"

pytestmark = [
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    # The suite's test secret is shorter than the 32 bytes PyJWT recommends.
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]


@pytest.fixture
def app(rt: Runtime) -> Flask:
    return create_app(rt)


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(5)


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def rejected_shop(rt: Runtime, fake_customerio: FakeCustomerIO) -> str:
    """An installed shop (it holds an offline token: no token exchange) whose Customer.io
    key was rejected, with a week of events in every state."""
    add_shop(
        rt,
        SHOP,
        api_key="wrong-key",
        status="credentials_rejected",
        shopify_access_token_encrypted=rt.secrets.encrypt("shpat_installed"),
    )
    seed_week(rt, SHOP, utcnow())
    return SHOP


def session_token(shop: str) -> str:
    """What App Bridge's `shopify.idToken()` gives: a JWT signed with the app's secret."""
    now = int(time.time())
    claims = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": "test-api-key",
        "sub": "42",
        "exp": now + 300,
        "nbf": now - 5,
        "iat": now - 5,
        "jti": "jti-browser",
        "sid": "sid-browser",
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def serve_cdn(context: Any, token: str | None) -> list[str]:
    """Answer cdn.shopify.com from tests/browser/cdn, or refuse it when `token` is None."""
    asked: list[str] = []
    stubs = {
        "/shopifycloud/app-bridge.js": (CDN / "app-bridge.js")
        .read_text()
        .replace("__ID_TOKEN__", token or ""),
        "/shopifycloud/polaris-1.js": (CDN / "polaris.js").read_text(),
    }

    def answer(route: Any) -> None:
        url = route.request.url
        asked.append(url)
        path = re.sub(r"^https://cdn\.shopify\.com", "", url)
        if token is None or path not in stubs:
            route.abort()
        else:
            route.fulfill(status=200, content_type="text/javascript", body=stubs[path])

    context.route("https://cdn.shopify.com/**", answer)
    return asked


def sign_in(context: Any, app: Flask, server: str) -> None:
    """The signed merchant session the install leaves in the browser."""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    cookie = serializer.dumps({SESSION_KEY: SHOP})
    context.add_cookies([{"name": "session", "value": cookie, "url": server}])


def expect_feed_figures(page: Any) -> None:
    for metric, (day, week) in FIGURES.items():
        assert page.locator(f"#{metric}-24h").text_content().strip() == day, metric
        assert page.locator(f"#{metric}-168h").text_content().strip() == week, metric
    assert page.locator("#set-aside").text_content() == "1"
    reasons = page.locator("#failure-reasons li").all_text_contents()
    assert reasons == [
        "Customer.io could not be reached for a day: 2",
        "Customer.io refused the event as invalid: 1",
    ]


def stored(rt: Runtime) -> Shop:
    with rt.sessions() as session:
        row = session.get(Shop, SHOP)
        assert row is not None
        return row


def test_embedded_page_shows_feed_health_and_saves_with_a_session_token(
    browser: Any, app: Flask, server: str, rt: Runtime, rejected_shop: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    token = session_token(SHOP)
    context = browser.new_context(base_url=server, viewport={"width": 1000, "height": 900})
    asked = serve_cdn(context, token)
    sign_in(context, app, server)
    page = context.new_page()
    page.goto("/settings")

    assert sorted(asked) == [
        "https://cdn.shopify.com/shopifycloud/app-bridge.js",
        "https://cdn.shopify.com/shopifycloud/polaris-1.js",
    ]
    expect(page.locator("html")).to_have_class(re.compile(r"\bpolaris\b"))
    expect(page.locator("#site_id")).to_be_hidden()  # the plain fields give way to Polaris's
    expect(page.locator("s-text-field[data-field=site_id] input")).to_be_visible()
    expect_feed_figures(page)
    rejected = page.locator("s-banner.advice[tone=critical]")
    expect(rejected).to_contain_text("Customer.io rejected the API key: update it here")
    page.screenshot(path=str(screenshot_path("settings-feed-health.png", tmp_path)), full_page=True)

    # From here on the page has no cookie: only App Bridge's session token names the shop.
    context.clear_cookies()
    posts: list[str | None] = []
    page.on(
        "request",
        lambda r: posts.append(r.headers.get("authorization")) if r.method == "POST" else None,
    )
    page.fill("s-text-field[data-field=site_id] input", SITE_ID)
    page.fill("s-password-field[data-field=api_key] input", API_KEY)
    page.select_option("s-select[data-field=region] select", "eu")
    page.click("s-button[data-action=test]")
    expect(page.locator("#message")).to_contain_text("Connected")
    assert stored(rt).status == "credentials_rejected"  # a test saves nothing

    page.fill("s-password-field[data-field=api_key] input", API_KEY)  # never sent back
    page.click("s-button[data-action=save]")
    expect(page.locator("#message")).to_contain_text("Settings saved.")
    expect(page).to_have_url(re.compile(r"/settings\?saved=1$"))
    expect(page.locator("s-banner.advice[tone=critical]")).to_have_count(0)
    assert page.evaluate("window.__toasts") == ["Settings saved"]
    assert posts == [f"Bearer {token}", f"Bearer {token}"]
    context.close()

    row = stored(rt)
    assert (row.cio_site_id, row.cio_region, row.status) == (SITE_ID, "eu", "active")
    assert rt.secrets.decrypt(row.cio_api_key_encrypted or "") == API_KEY


@pytest.mark.parametrize("javascript", [True, False], ids=["cdn-blocked", "no-javascript"])
def test_without_shopifys_scripts_the_plain_form_still_saves(
    browser: Any, app: Flask, server: str, rt: Runtime, rejected_shop: str, javascript: bool
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(
        base_url=server, viewport={"width": 1000, "height": 900}, java_script_enabled=javascript
    )
    asked = serve_cdn(context, None)
    sign_in(context, app, server)
    page = context.new_page()
    page.goto("/settings")

    assert len(asked) == (2 if javascript else 0)
    expect(page.locator("s-text-field[data-field=site_id]")).to_be_hidden()
    expect_feed_figures(page)
    expect(page.locator("s-banner.advice[tone=critical]")).to_contain_text(
        "Customer.io rejected the API key: update it here"
    )
    page.fill("#site_id", SITE_ID)
    page.fill("#api_key", API_KEY)
    page.select_option("#order_topic", "orders/paid")
    page.click("#save")
    page.wait_for_url(re.compile(r"/settings\?saved=1$"))
    expect(page.locator("#message")).to_contain_text("Settings saved.")
    context.close()

    row = stored(rt)
    assert (row.cio_site_id, row.order_topic, row.status) == (SITE_ID, "orders/paid", "active")
