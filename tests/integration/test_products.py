"""Product details on items: one Admin API request per batch, cached per shop, refreshed by
products/update, and never a reason to send late."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from jobs.products import COOLDOWN_KEY, REFUSED_COOLDOWN_SECONDS, UNAVAILABLE_COOLDOWN_SECONDS
from tests.fakes.shopify import FakeShopify
from tests.fakes.shopify_install import install
from tests.support import add_shop, make_order, post_webhook, run_jobs, sample

pytestmark = pytest.mark.shopify

SHOP = "acme-store.myshopify.com"
SOCKS, TOTE = 8123456789001, 8123456789002


def an_order(order_id: int) -> dict[str, Any]:
    # The payload's own order count decides is_first_order: no other Admin API call.
    return make_order(order_id, customer={"orders_count": 1})


def items_of(fake: FakeCustomerIO) -> list[list[dict[str, Any]]]:
    return [e["attributes"]["items"] for e in fake.events_named("order_placed")]


@pytest.fixture
def installed(client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify) -> FakeShopify:
    fake_shopify.add_product(
        SHOP,
        SOCKS,
        handle="merino-crew-socks",
        product_type="Socks",
        tags=("merino", "gift"),
        image_url="https://cdn.shopify.com/socks.jpg",
    )
    fake_shopify.add_product(SHOP, TOTE, handle="waxed-canvas-tote", product_type="Bags")
    install(client, SHOP)
    add_shop(rt, SHOP)
    run_jobs(rt)  # the history import the install queued
    return fake_shopify


def test_items_carry_image_page_type_and_tags_from_one_request(
    client: FlaskClient, rt: Runtime, installed: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    post_webhook(client, "orders/create", an_order(30_001), "pd-1", SHOP)
    post_webhook(client, "orders/create", an_order(30_002), "pd-2", SHOP)
    run_jobs(rt)

    socks, tote = items_of(fake_customerio)[0]
    assert socks["image_url"] == "https://cdn.shopify.com/socks.jpg"
    assert socks["product_url"] == f"https://{SHOP}/products/merino-crew-socks"
    assert (socks["product_type"], socks["product_tags"]) == ("Socks", ["merino", "gift"])
    assert tote["product_type"] == "Bags" and "image_url" not in tote
    [lookup] = installed.calls("ProductDetails")  # both orders, one request
    assert sorted(lookup["variables"]["ids"]) == [
        f"gid://shopify/Product/{SOCKS}",
        f"gid://shopify/Product/{TOTE}",
    ]

    post_webhook(client, "orders/create", an_order(30_003), "pd-3", SHOP)
    run_jobs(rt)
    assert len(installed.calls("ProductDetails")) == 1  # from the cache

    post_webhook(client, "products/update", sample("products_update_2026-07.json"), "pu-1", SHOP)
    run_jobs(rt)
    post_webhook(client, "orders/create", an_order(30_004), "pd-4", SHOP)
    run_jobs(rt)
    latest = installed.calls("ProductDetails")[-1]
    assert latest["variables"]["ids"] == [f"gid://shopify/Product/{SOCKS}"]


def test_an_unreachable_shopify_sends_the_order_on_time_without_details(
    client: FlaskClient, rt: Runtime, installed: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    installed.throttle_next(50, "429")  # throttled for a long while
    post_webhook(client, "orders/create", an_order(30_011), "pf-1", SHOP)
    run_jobs(rt)

    [items] = items_of(fake_customerio)
    assert [item.get("product_type") for item in items] == [None, None]
    assert items[0]["name"] == "Merino Crew Socks"
    assert len(installed.calls("ProductDetails")) == 1  # throttling is not waited out


def test_a_failed_lookup_is_not_repeated_by_every_batch_until_its_cool_down_ends(
    client: FlaskClient, rt: Runtime, installed: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    installed.fail_next(1, 503)
    post_webhook(client, "orders/create", an_order(30_021), "pc-1", SHOP)
    run_jobs(rt)
    post_webhook(client, "orders/create", an_order(30_022), "pc-2", SHOP)
    run_jobs(rt)

    first, second = items_of(fake_customerio)
    assert [item.get("product_type") for item in first + second] == [None] * 4
    assert len(installed.calls("ProductDetails")) == 1  # the second batch did not ask
    key = COOLDOWN_KEY.format(shop=SHOP)
    assert 0 < rt.redis.ttl(key) <= UNAVAILABLE_COOLDOWN_SECONDS

    rt.redis.delete(key)  # the cool-down is over
    post_webhook(client, "orders/create", an_order(30_023), "pc-3", SHOP)
    run_jobs(rt)
    assert items_of(fake_customerio)[-1][0]["product_type"] == "Socks"
    assert len(installed.calls("ProductDetails")) == 2


def test_a_refused_lookup_waits_longer_than_an_unreachable_one(
    client: FlaskClient, rt: Runtime, installed: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    installed.fail_next(1, 403)  # e.g. a shop installed before read_products was asked
    post_webhook(client, "orders/create", an_order(30_031), "pr-1", SHOP)
    run_jobs(rt)

    [items] = items_of(fake_customerio)
    assert "product_type" not in items[0]
    ttl = rt.redis.ttl(COOLDOWN_KEY.format(shop=SHOP))
    assert UNAVAILABLE_COOLDOWN_SECONDS < ttl <= REFUSED_COOLDOWN_SECONDS


def test_a_shop_without_a_token_sends_items_without_asking_shopify(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify, fake_customerio: FakeCustomerIO
) -> None:
    fake_shopify.add_product(SHOP, SOCKS, handle="merino-crew-socks", product_type="Socks")
    add_shop(rt, SHOP)  # added by the CLI, never installed: no Admin API token
    post_webhook(client, "orders/create", an_order(30_041), "pt-1", SHOP)
    run_jobs(rt)

    [items] = items_of(fake_customerio)
    assert [item.get("product_type") for item in items] == [None, None]
    assert items[0]["name"] == "Merino Crew Socks"
    assert fake_shopify.calls("ProductDetails") == []
