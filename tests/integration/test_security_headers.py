"""Transport and framing headers: Secure cookies and HSTS on https only; merchant pages framed
by the shop's admin only; the console framed by no one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from flask.testing import FlaskClient

from connector.app import create_app
from connector.runtime import Runtime
from tests.support import SHOP, add_shop, add_staff_account, console_csrf, console_login

ADMIN_ONLY = "frame-ancestors https://admin.shopify.com"
SHOP_ADMIN = f"frame-ancestors https://{SHOP} https://admin.shopify.com"


@pytest.fixture
def app_at(rt: Runtime) -> Iterator[Callable[[str], FlaskClient]]:
    """A client of an app whose APP_URL is the given one (same database and Redis)."""
    built: list[Runtime] = []

    def build(app_url: str) -> FlaskClient:
        built.append(Runtime(replace(rt.settings, app_url=app_url)))
        return create_app(built[-1]).test_client()

    yield build
    for runtime in built:
        runtime.engine.dispose()


def test_https_app_url_sets_secure_cookies_and_hsts(
    rt: Runtime, app_at: Callable[[str], FlaskClient]
) -> None:
    add_staff_account(rt)
    client = app_at("https://connector.example.com")
    login = console_login(client)
    assert login.status_code == 302
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith("session=") and "; Secure" in cookie and "HttpOnly" in cookie
    assert client.get("/console/").status_code == 200
    for path in ("/healthz", "/console/", "/settings"):
        assert client.get(path).headers["Strict-Transport-Security"] == "max-age=31536000"


def test_plain_http_app_url_sets_neither(rt: Runtime, app_at: Callable[[str], FlaskClient]) -> None:
    add_staff_account(rt)
    client = app_at("http://127.0.0.1:8000")
    login = console_login(client)
    assert login.status_code == 302
    assert "Secure" not in login.headers["Set-Cookie"]
    assert client.get("/console/").status_code == 200  # the cookie travels over http
    for path in ("/healthz", "/console/", "/settings"):
        assert "Strict-Transport-Security" not in client.get(path).headers


def test_merchant_pages_may_be_framed_by_the_shops_admin_only(
    client: FlaskClient, rt: Runtime
) -> None:
    add_shop(rt, SHOP)
    anonymous = client.get("/settings")
    assert anonymous.status_code == 401
    assert anonymous.headers["Content-Security-Policy"] == ADMIN_ONLY
    assert client.get("/auth/install?shop=nope").headers["Content-Security-Policy"] == ADMIN_ONLY

    with client.session_transaction() as session:
        session["merchant_shop"] = SHOP
    page = client.get("/settings")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == SHOP_ADMIN
    assert "X-Frame-Options" not in page.headers  # it would forbid the admin's frame too
    # A shop named in the query is not a verified one: refused, and framed by the admin only.
    other = client.get("/settings?shop=other-shop.myshopify.com")
    assert other.status_code == 401
    assert other.headers["Content-Security-Policy"] == ADMIN_ONLY


def test_the_console_and_its_login_deny_framing(client: FlaskClient, rt: Runtime) -> None:
    add_staff_account(rt)
    pages = [client.get("/console/login"), client.get("/console/")]  # the page, the redirect
    assert console_login(client).status_code == 302
    pages += [client.get("/console/"), client.get("/console/lists/failed")]
    pages.append(client.post("/console/logout", data={"csrf_token": console_csrf(client)}))
    for page in pages:
        assert page.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
        assert page.headers["X-Frame-Options"] == "DENY"
