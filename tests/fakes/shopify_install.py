"""The install as a browser does it against a FakeShopify (the fixtures are in conftest.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import jwt
import requests
from flask.testing import FlaskClient

from connector.runtime import Runtime
from connector.storage.db import transaction
from connector.storage.shops import get_shop
from tests.fakes.shopify import signed_query
from tests.support import SECRET

API_KEY = "test-api-key"
BEFORE_THE_SAMPLES = datetime(2026, 1, 1, tzinfo=UTC)
APP_URL = "https://connector.example"


def install_link(shop: str, secret: str = SECRET, **extra: str) -> dict[str, str]:
    """The signed query Shopify's admin puts on the app URL."""
    return signed_query({"shop": shop, "timestamp": str(int(time.time())), **extra}, secret)


def session_token(shop: str, secret: str = SECRET, **claims: object) -> str:
    """An App Bridge session token (ID token) for `shop`, as the admin hands an embedded app."""
    now = int(time.time())
    payload = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": API_KEY,
        "sub": "42",
        "exp": now + 60,
        "nbf": now - 5,
        "iat": now - 5,
        "jti": "jti-1",
        "sid": "sid-1",
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def start_install(client: FlaskClient, shop: str) -> dict[str, str]:
    """Open the install link and approve at the fake; return the callback's query params."""
    started = client.get("/auth/install", query_string=install_link(shop))
    assert started.status_code == 302, started.get_data(as_text=True)
    approved = requests.get(started.headers["Location"], allow_redirects=False, timeout=5)
    assert approved.status_code == 302
    location = urlsplit(approved.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == APP_URL
    return dict(parse_qsl(location.query))


def install(client: FlaskClient, shop: str, dated: datetime | None = BEFORE_THE_SAMPLES) -> None:
    """The whole install as a browser does it; asserts it lands on the settings page.

    Only orders created after the install are placed, and the sample orders are of July
    2026: so the install is then dated `dated` (None keeps the real time).
    """
    finished = client.get("/auth/callback", query_string=start_install(client, shop))
    assert finished.status_code == 302, finished.get_data(as_text=True)
    assert finished.headers["Location"].endswith("/settings")
    if dated is not None:
        rt: Runtime = client.application.extensions["connector"]
        with transaction(rt.sessions) as session:
            row = get_shop(session, shop)
            assert row is not None
            row.installed_at = dated
