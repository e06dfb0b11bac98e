"""Install on an embedded load: the session token exchanged for an offline token at the fake."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from rq import Queue

from connector.runtime import Runtime
from connector.storage.models import Shop
from connector.timeutil import utcnow
from tests.fakes.shopify import FakeShopify
from tests.fakes.shopify_install import install, session_token

# The suite's test secret is shorter than the 32 bytes PyJWT recommends.
pytestmark = [
    pytest.mark.shopify,
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

SHOP = "embedded-store.myshopify.com"


def embedded_load(client: FlaskClient, token: str | None = None) -> tuple[int, str]:
    answer = client.get("/settings", headers={"Authorization": "Bearer " + (token or bearer())})
    return answer.status_code, answer.get_data(as_text=True)


def bearer() -> str:
    return session_token(SHOP)


def shop_row(rt: Runtime) -> Shop | None:
    with rt.sessions() as session:
        return session.get(Shop, SHOP)


def test_an_embedded_load_of_an_unknown_shop_installs_it_by_token_exchange(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    token = bearer()
    status, page = embedded_load(client, token)

    assert status == 200, page
    assert SHOP in page
    (exchange,) = fake_shopify.calls("token_exchange")
    assert exchange["form"] == {
        "client_id": fake_shopify.api_key,
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
        "expiring": "1",
    }
    assert fake_shopify.calls("token") == [] and fake_shopify.calls("authorize") == []
    row = shop_row(rt)
    assert row is not None and row.status == "active" and row.installed_at is not None
    access = rt.secrets.decrypt(row.shopify_access_token_encrypted or "")
    assert fake_shopify.valid_access_token(SHOP, access)
    assert rt.secrets.decrypt(row.shopify_refresh_token_encrypted or "").startswith("shprt_")
    assert row.shopify_access_expires_at is not None
    assert row.shopify_access_expires_at - utcnow() > timedelta(minutes=58)
    # The post-install steps of the authorization-code flow: subscriptions, history import.
    assert len(fake_shopify.subscriptions(SHOP)) == 12
    jobs = Queue(rt.settings.queue_name, connection=rt.redis).jobs
    assert [(job.func_name, job.args) for job in jobs if "history" in job.func_name] == [
        ("jobs.tasks.import_history", (SHOP,))
    ]


def test_a_shop_with_a_valid_token_does_not_exchange_again(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    assert embedded_load(client)[0] == 200
    stored = shop_row(rt)
    assert stored is not None

    for _ in range(2):
        assert embedded_load(client.application.test_client())[0] == 200

    assert len(fake_shopify.calls("token_exchange")) == 1
    again = shop_row(rt)
    assert again is not None
    assert again.shopify_access_token_encrypted == stored.shopify_access_token_encrypted


def test_a_shop_installed_through_oauth_is_not_exchanged(
    client: FlaskClient, fake_shopify: FakeShopify
) -> None:
    install(client.application.test_client(), SHOP)
    assert embedded_load(client)[0] == 200
    assert fake_shopify.calls("token_exchange") == []


def test_an_expired_token_pair_is_replaced_by_an_exchange(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    assert embedded_load(client)[0] == 200
    with rt.sessions.begin() as session:
        row = session.get(Shop, SHOP)
        assert row is not None
        row.shopify_access_expires_at = row.shopify_refresh_expires_at = utcnow()

    assert embedded_load(client)[0] == 200
    assert len(fake_shopify.calls("token_exchange")) == 2
    row = shop_row(rt)
    assert row is not None and row.shopify_access_expires_at is not None
    assert row.shopify_access_expires_at > utcnow()


def test_a_rejected_exchange_shows_a_page_and_stores_nothing(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    # Expired 5 s ago: inside the session-token login's 10 s leeway, refused by Shopify.
    token = session_token(SHOP, exp=int(time.time()) - 5)
    status, page = embedded_load(client, token)

    assert status == 401
    assert "Shopify did not accept this session" in page and "Nothing was saved" in page
    assert len(fake_shopify.calls("token_exchange")) == 1
    assert shop_row(rt) is None
    assert fake_shopify.subscriptions(SHOP) == []


def test_a_session_token_the_login_refuses_is_never_exchanged(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    for bad in (
        session_token(SHOP, secret="wrong-secret"),
        session_token(SHOP, aud="another-app"),
        session_token(SHOP, dest="https://evil.com"),
    ):
        assert embedded_load(client, bad)[0] == 401
    assert fake_shopify.calls("token_exchange") == []
    assert shop_row(rt) is None


def test_a_load_during_another_loads_exchange_is_asked_to_reload(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    rt.redis.set(f"connector:token-exchange:{SHOP}", "1", ex=60)  # another request installs
    status, page = embedded_load(client)

    assert status == 503 and "reload in a few seconds" in page
    assert fake_shopify.calls("token_exchange") == [] and shop_row(rt) is None

    rt.redis.delete(f"connector:token-exchange:{SHOP}")
    assert embedded_load(client)[0] == 200
    assert rt.redis.get(f"connector:token-exchange:{SHOP}") is None  # released


def test_the_first_load_without_a_session_token_asks_app_bridge_for_one(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    """Shopify installed the app (managed installation) and opens it: the document load
    carries no session token, so the page fetches one from App Bridge and sends it back."""
    with client.session_transaction() as session:  # signed in, as the admin's load does
        session["merchant_shop"] = SHOP
    answer = client.get("/settings")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "https://cdn.shopify.com/shopifycloud/app-bridge.js" in page
    assert f'content="{rt.settings.shopify_api_key}"' in page and "install.js" in page
    assert shop_row(rt) is None and fake_shopify.calls("token_exchange") == []

    status, _ = embedded_load(client)  # what install.js does with the token
    assert status == 200 and shop_row(rt) is not None
    assert client.get("/settings").status_code == 200  # its reload shows the settings
