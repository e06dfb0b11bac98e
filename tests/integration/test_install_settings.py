"""The merchant's settings page: who may see it, CSRF, Test connection, saving."""

from __future__ import annotations

import re
import time

import pytest
from flask.testing import FlaskClient

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.storage.models import Shop
from tests.fakes.shopify_install import install, session_token
from tests.support import API_KEY, SITE_ID

pytestmark = pytest.mark.shopify

SHOP = "acme-store.myshopify.com"
OTHER = "other-store.myshopify.com"


def csrf(client: FlaskClient) -> str:
    page = client.get("/settings").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def form(client: FlaskClient, action: str, **overrides: str) -> dict[str, str]:
    values = {
        "csrf_token": csrf(client),
        "site_id": SITE_ID,
        "api_key": API_KEY,
        "region": "eu",
        "order_topic": "orders/paid",
        "include_test_orders": "on",
        "action": action,
    }
    values.update(overrides)
    return values


def stored(rt: Runtime, domain: str = SHOP) -> Shop:
    with rt.sessions() as session:
        row = session.get(Shop, domain)
        assert row is not None
        return row


def test_settings_need_a_signed_in_merchant(client: FlaskClient) -> None:
    answer = client.get("/settings")
    assert answer.status_code == 401
    assert "Shopify admin" in answer.get_data(as_text=True)


def test_a_merchant_never_sees_another_shops_settings(client: FlaskClient, rt: Runtime) -> None:
    other_browser = client.application.test_client()
    install(other_browser, OTHER)
    install(client, SHOP)

    assert client.get("/settings", query_string={"shop": OTHER}).status_code == 401
    page = client.get("/settings").get_data(as_text=True)
    assert SHOP in page and OTHER not in page
    client.post("/settings", data=form(client, "save"))
    assert stored(rt, OTHER).cio_site_id is None


def test_saving_without_the_csrf_token_is_refused(client: FlaskClient, rt: Runtime) -> None:
    install(client, SHOP)
    answer = client.post("/settings", data=form(client, "save", csrf_token="wrong"))
    assert answer.status_code == 400
    assert "CSRF" in answer.get_data(as_text=True)
    assert stored(rt).cio_site_id is None


def test_test_connection_reports_success_and_saves_nothing(
    client: FlaskClient, rt: Runtime, fake_customerio: FakeCustomerIO
) -> None:
    install(client, SHOP)
    answer = client.post("/settings", data=form(client, "test"))
    assert answer.status_code == 200
    assert "Connected" in answer.get_data(as_text=True)
    assert [r["path"] for r in fake_customerio.requests] == ["/api/v1/accounts/region"]
    assert stored(rt).cio_site_id is None


def test_test_connection_reports_rejected_credentials(client: FlaskClient) -> None:
    install(client, SHOP)
    answer = client.post("/settings", data=form(client, "test", api_key="wrong-key"))
    assert "rejected this site id and API key" in answer.get_data(as_text=True)


def test_save_stores_the_key_encrypted_and_never_shows_it(client: FlaskClient, rt: Runtime) -> None:
    install(client, SHOP)
    answer = client.post("/settings", data=form(client, "save"))
    assert answer.status_code == 302
    row = stored(rt)
    assert (row.cio_site_id, row.cio_region, row.order_topic) == (SITE_ID, "eu", "orders/paid")
    assert row.include_test_orders is True
    assert API_KEY not in (row.cio_api_key_encrypted or "")
    assert rt.secrets.decrypt(row.cio_api_key_encrypted or "") == API_KEY
    page = client.get("/settings?saved=1").get_data(as_text=True)
    assert "Settings saved." in page and API_KEY not in page

    # A blank key keeps the stored one.
    client.post("/settings", data=form(client, "save", api_key="", region="us"))
    assert rt.secrets.decrypt(stored(rt).cio_api_key_encrypted or "") == API_KEY
    assert stored(rt).cio_region == "us"


def test_invalid_settings_are_explained(client: FlaskClient) -> None:
    install(client, SHOP)
    answer = client.post("/settings", data=form(client, "save", site_id="", region="mars"))
    assert answer.status_code == 400
    text = answer.get_data(as_text=True)
    assert "site id" in text and "region" in text


# The suite's test secret is shorter than the 32 bytes PyJWT recommends.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_an_embedded_session_token_opens_that_shops_settings(
    client: FlaskClient, rt: Runtime
) -> None:
    install(client.application.test_client(), SHOP)
    fresh_browser = client.application.test_client()
    good = {"Authorization": "Bearer " + session_token(SHOP)}
    answer = fresh_browser.get("/settings", headers=good)
    assert answer.status_code == 200
    assert answer.headers["Content-Security-Policy"] == (
        f"frame-ancestors https://{SHOP} https://admin.shopify.com"
    )

    for bad in (
        session_token(SHOP, secret="wrong-secret"),
        session_token(SHOP, aud="another-app"),
        session_token(SHOP, exp=int(time.time()) - 60),
        session_token(SHOP, dest="https://evil.com"),
    ):
        answer = fresh_browser.get("/settings", headers={"Authorization": "Bearer " + bad})
        assert answer.status_code == 401
