"""OAuth install against a real fake Shopify: tokens, subscriptions, and forged callbacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from connector.runtime import Runtime
from connector.storage.db import transaction
from connector.storage.models import Shop
from connector.timeutil import utcnow
from tests.fakes.shopify import FakeShopify, signed_query
from tests.fakes.shopify_install import APP_URL, install, install_link, start_install
from tests.support import SECRET

pytestmark = pytest.mark.shopify

SHOP = "acme-store.myshopify.com"
TOPICS = [
    "APP_UNINSTALLED",
    "CHECKOUTS_CREATE",
    "CHECKOUTS_UPDATE",
    "CUSTOMERS_CREATE",
    "CUSTOMERS_UPDATE",
    "FULFILLMENTS_CREATE",
    "ORDERS_CANCELLED",
    "ORDERS_CREATE",
    "ORDERS_PAID",
    "ORDERS_UPDATED",
    "PRODUCTS_UPDATE",
    "REFUNDS_CREATE",
]
ADDRESS = f"{APP_URL}/webhooks/shopify"


def shop_row(rt: Runtime, domain: str = SHOP) -> Shop | None:
    with rt.sessions() as session:
        return session.get(Shop, domain)


def test_install_stores_expiring_tokens_encrypted_and_subscribes(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    install(client, SHOP)

    row = shop_row(rt)
    assert row is not None and row.status == "active" and row.installed_at is not None
    access = rt.secrets.decrypt(row.shopify_access_token_encrypted or "")
    refresh = rt.secrets.decrypt(row.shopify_refresh_token_encrypted or "")
    assert access.startswith("shpat_") and refresh.startswith("shprt_")
    assert access not in (row.shopify_access_token_encrypted or "")
    assert fake_shopify.valid_access_token(SHOP, access)
    assert row.shopify_access_expires_at is not None
    remaining = row.shopify_access_expires_at - utcnow()
    assert timedelta(minutes=58) < remaining <= timedelta(minutes=60)
    assert row.shopify_refresh_expires_at and row.shopify_refresh_expires_at > utcnow()
    (token_call,) = fake_shopify.calls("token")
    assert token_call["form"]["expiring"] == "1"
    (authorize,) = fake_shopify.calls("authorize")
    scopes = "read_orders,read_checkouts,read_customers,read_fulfillments,read_products"
    assert authorize["query"]["scope"] == scopes
    assert authorize["query"]["redirect_uri"] == f"{APP_URL}/auth/callback"
    subs = fake_shopify.subscriptions(SHOP)
    assert [s["topic"] for s in subs] == TOPICS
    assert {s["uri"] for s in subs} == {ADDRESS}


def test_settings_page_follows_the_install(client: FlaskClient, rt: Runtime) -> None:
    install(client, SHOP)
    page = client.get("/settings")
    assert page.status_code == 200
    assert SHOP in page.get_data(as_text=True)


def test_reinstall_changes_no_subscription(client: FlaskClient, fake_shopify: FakeShopify) -> None:
    install(client, SHOP)
    before = fake_shopify.subscriptions(SHOP)
    install(client, SHOP)
    assert fake_shopify.subscriptions(SHOP) == before
    assert len(fake_shopify.calls("WebhookSubscriptionCreate")) == len(TOPICS)
    assert fake_shopify.calls("WebhookSubscriptionDelete") == []


def test_subscriptions_for_the_wrong_address_are_replaced(
    client: FlaskClient, fake_shopify: FakeShopify
) -> None:
    fake_shopify.add_subscription(SHOP, "ORDERS_CREATE", "https://old-host.example/webhooks")
    fake_shopify.add_subscription(SHOP, "ORDERS_PAID", ADDRESS)
    fake_shopify.add_subscription(SHOP, "CARTS_UPDATE", "https://another-app.example/hook")

    install(client, SHOP)

    subs = fake_shopify.subscriptions(SHOP)
    ours = [s for s in subs if s["uri"] == ADDRESS]
    assert sorted(s["topic"] for s in ours) == TOPICS
    assert "https://old-host.example/webhooks" not in {s["uri"] for s in subs}
    assert {"topic": "CARTS_UPDATE", "uri": "https://another-app.example/hook"} in [
        {"topic": s["topic"], "uri": s["uri"]} for s in subs
    ]  # not ours to touch


def resign(params: dict[str, str], **changes: str) -> dict[str, str]:
    """The callback query with `changes`, signed again with the real secret (valid hmac)."""
    changed = {k: v for k, v in params.items() if k != "hmac"}
    changed.update(changes)
    return signed_query(changed, SECRET)


FORGERIES: dict[str, Callable[[dict[str, str]], dict[str, str]]] = {
    "bad hmac": lambda p: {**p, "hmac": "0" * 64},
    "hmac from another secret": lambda p: signed_query(
        {k: v for k, v in p.items() if k != "hmac"}, "not-the-secret"
    ),
    "no hmac": lambda p: {k: v for k, v in p.items() if k != "hmac"},
    "wrong state": lambda p: resign(p, state="forged-state"),
    "no state": lambda p: resign({k: v for k, v in p.items() if k != "state"}),
    "shop outside myshopify.com": lambda p: resign(p, shop="evil.com"),
    "other shop": lambda p: resign(p, shop="other-store.myshopify.com"),
    "stale timestamp": lambda p: resign(p, timestamp=str(int(time.time()) - 600)),
    "future timestamp": lambda p: resign(p, timestamp=str(int(time.time()) + 3600)),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_callback_is_refused_and_stores_nothing(
    forgery: str, client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    params = FORGERIES[forgery](start_install(client, SHOP))

    answer = client.get("/auth/callback", query_string=params)

    assert answer.status_code in (400, 401)
    assert "text/html" in answer.content_type
    assert "Nothing was saved" in answer.get_data(as_text=True) or answer.status_code == 400
    with rt.sessions() as session:
        assert session.scalars(select(Shop)).all() == []
    assert fake_shopify.calls("token") == []
    assert fake_shopify.subscriptions(SHOP) == []


def test_callback_from_another_browser_is_refused(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    params = start_install(client, SHOP)
    other_browser = client.application.test_client()
    answer = other_browser.get("/auth/callback", query_string=params)
    assert answer.status_code == 401
    assert shop_row(rt) is None and fake_shopify.calls("token") == []


def test_replayed_callback_is_refused_even_with_the_old_cookie(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    params = start_install(client, SHOP)
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert client.get("/auth/callback", query_string=params).status_code == 302
    with transaction(rt.sessions) as session:
        session.execute(update(Shop).values(shopify_access_token_encrypted=None))

    client.set_cookie("session", cookie.value)  # the cookie as it was before the callback
    replay = client.get("/auth/callback", query_string=params)

    assert replay.status_code == 401
    assert "already used" in replay.get_data(as_text=True)
    assert len(fake_shopify.calls("token")) == 1
    row = shop_row(rt)
    assert row is not None and row.shopify_access_token_encrypted is None


@pytest.mark.parametrize(
    "query",
    [
        {"shop": "evil.com"},
        {"shop": "acme-store.myshopify.com.evil.com"},
        {"shop": "ACME_STORE.myshopify.com"},
        {"shop": "-acme.myshopify.com"},
    ],
)
def test_install_link_for_a_non_shopify_host_is_refused(
    query: dict[str, str], client: FlaskClient, fake_shopify: FakeShopify
) -> None:
    answer = client.get("/auth/install", query_string=install_link(query["shop"]))
    assert answer.status_code == 400
    assert fake_shopify.calls("authorize") == []


def test_install_link_with_a_bad_hmac_is_refused(client: FlaskClient) -> None:
    link = {**install_link(SHOP), "hmac": "f" * 64}
    answer = client.get("/auth/install", query_string=link)
    assert answer.status_code == 401
    assert "signature" in answer.get_data(as_text=True)


def test_missing_scopes_store_nothing(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    fake_shopify.granted_scope = "read_orders"
    answer = client.get("/auth/callback", query_string=start_install(client, SHOP))
    assert answer.status_code == 403
    assert "Nothing was saved" in answer.get_data(as_text=True)
    assert shop_row(rt) is None


def test_shopify_failing_during_subscription_stores_nothing(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    fake_shopify.throttle_next(50, "429")
    answer = client.get("/auth/callback", query_string=start_install(client, SHOP))
    assert answer.status_code == 502
    assert "Traceback" not in answer.get_data(as_text=True)
    assert shop_row(rt) is None


def test_a_write_scope_counts_as_its_read_scope(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    fake_shopify.granted_scope = (
        "write_orders,read_checkouts,write_customers,read_fulfillments,read_products"
    )
    install(client, SHOP)
    assert shop_row(rt) is not None
