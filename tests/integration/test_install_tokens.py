"""Expiring offline tokens: refreshed before expiry, once, from any worker; GraphQL throttling."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from connector.runtime import Runtime
from connector.shopify.admin import AdminClient, client_for
from connector.shopify.errors import ShopifyAuthError, ShopifyUnavailableError
from connector.shopify.tokens import fresh_access_token
from connector.storage.db import transaction
from connector.storage.models import Shop
from connector.timeutil import utcnow
from tests.fakes.shopify import FakeShopify
from tests.fakes.shopify_install import install
from webhooks.topics import SUBSCRIBED_TOPICS

pytestmark = pytest.mark.shopify

SHOP = "acme-store.myshopify.com"


def stored_tokens(rt: Runtime) -> tuple[str, str]:
    with rt.sessions() as session:
        row = session.get(Shop, SHOP)
        assert row is not None
        return (
            rt.secrets.decrypt(row.shopify_access_token_encrypted or ""),
            rt.secrets.decrypt(row.shopify_refresh_token_encrypted or ""),
        )


def expire_soon(rt: Runtime, minutes: int = 2) -> None:
    with transaction(rt.sessions) as session:
        session.execute(
            update(Shop).values(shopify_access_expires_at=utcnow() + timedelta(minutes=minutes))
        )


def token(rt: Runtime) -> str:
    return fresh_access_token(rt.sessions, rt.secrets, rt.settings, SHOP)


def test_a_token_far_from_expiry_is_used_as_is(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    install(client, SHOP)
    access, _ = stored_tokens(rt)
    assert token(rt) == access
    assert fake_shopify.calls("refresh") == []


def test_a_token_near_expiry_is_refreshed_and_the_new_pair_stored(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    install(client, SHOP)
    old_access, old_refresh = stored_tokens(rt)
    expire_soon(rt)

    new_access = token(rt)

    assert new_access != old_access and fake_shopify.valid_access_token(SHOP, new_access)
    (call,) = fake_shopify.calls("refresh")
    assert call["form"]["refresh_token"] == old_refresh
    assert stored_tokens(rt)[0] == new_access and stored_tokens(rt)[1] != old_refresh
    with rt.sessions() as session:
        row = session.get(Shop, SHOP)
        assert row is not None and row.shopify_access_expires_at
        assert row.shopify_access_expires_at > utcnow() + timedelta(minutes=58)


def test_concurrent_workers_refresh_once(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    install(client, SHOP)
    expire_soon(rt, minutes=-1)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(token(rt))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(fake_shopify.calls("refresh")) == 1
    assert len(set(results)) == 1 and fake_shopify.valid_access_token(SHOP, results[0])


def test_a_revoked_refresh_token_is_an_auth_error(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    install(client, SHOP)
    fake_shopify.refresh.clear()
    expire_soon(rt)
    with pytest.raises(ShopifyAuthError):
        token(rt)


def test_graphql_waits_out_throttling(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    install(client, SHOP)
    admin = client_for(rt.sessions, rt.secrets, rt.settings, SHOP)
    slept: list[float] = []
    admin.sleep = slept.append
    fake_shopify.throttle_next(1, "429")
    fake_shopify.throttle_next(2, "graphql")

    assert len(admin.webhook_subscriptions()) == len(SUBSCRIBED_TOPICS)
    assert len(slept) == 3 and all(0 < s <= 30 for s in slept)


def test_graphql_gives_up_when_throttled_too_long(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    install(client, SHOP)
    admin = client_for(rt.sessions, rt.secrets, rt.settings, SHOP)
    admin.sleep = lambda _s: None
    fake_shopify.throttle_next(20)
    with pytest.raises(ShopifyUnavailableError):
        admin.webhook_subscriptions()


def test_unreachable_shopify_is_unavailable(rt: Runtime) -> None:
    admin = AdminClient(
        base_url="http://127.0.0.1:9", api_version="2026-07", access_token="x", timeout=1
    )
    with pytest.raises(ShopifyUnavailableError):
        admin.customer_order_count("1")
