"""WEBHOOK_SUBSCRIPTIONS: "api" creates the subscriptions through GraphQL, "app" (declared in
shopify.app.toml) creates nothing and reports what is missing: install and reconciliation."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from connector.config import Settings
from connector.runtime import Runtime
from connector.shopify.app_config import render_app_config
from connector.storage.reconciliation import get_state
from jobs.reconciliation import reconcile_shop
from tests.fakes.shopify import FakeShopify
from tests.fakes.shopify_install import APP_URL, install
from tests.support import add_staff_account, console_login

pytestmark = pytest.mark.shopify

SHOP = "toml-store.myshopify.com"
ADDRESS = f"{APP_URL}/webhooks/shopify"
PAID_BLOCK = f'[[webhooks.subscriptions]]\ntopics = ["orders/paid"]\nuri = "{ADDRESS}"\n\n'


@pytest.fixture
def mode() -> str:
    return "app"


@pytest.fixture
def settings(settings: Settings, mode: str, tmp_path: Path) -> Settings:
    return replace(
        settings, webhook_subscriptions=mode, shopify_app_config=tmp_path / "shopify.app.toml"
    )


def deploy(settings: Settings, *, without: str = "") -> None:
    """The app configuration as deployed: rendered from the settings, less `without`."""
    text = render_app_config(settings)
    assert without in text
    settings.shopify_app_config.write_text(text.replace(without, ""))


def mutations(fake: FakeShopify) -> list[dict[str, object]]:
    return fake.calls("WebhookSubscriptionCreate") + fake.calls("WebhookSubscriptionDelete")


def install_error(rt: Runtime) -> str | None:
    with rt.sessions() as session:
        state = get_state(session, SHOP)
        return state.last_error if state is not None else None


@pytest.mark.parametrize("mode", ["api"])
def test_api_mode_creates_the_subscriptions_and_re_creates_deleted_ones(
    client: FlaskClient, rt: Runtime, fake_shopify: FakeShopify
) -> None:
    install(client, SHOP)
    assert len(fake_shopify.calls("WebhookSubscriptionCreate")) == 12
    assert len(fake_shopify.subscriptions(SHOP)) == 12
    assert install_error(rt) is None

    fake_shopify.delete_subscriptions(SHOP, "ORDERS_PAID")
    result = reconcile_shop(rt, SHOP)
    assert result.subscriptions_recreated == 1 and result.error is None


def test_app_mode_creates_nothing_when_the_file_declares_everything(
    client: FlaskClient, rt: Runtime, settings: Settings, fake_shopify: FakeShopify
) -> None:
    deploy(settings)
    install(client, SHOP)

    assert mutations(fake_shopify) == [] and fake_shopify.subscriptions(SHOP) == []
    assert install_error(rt) is None
    result = reconcile_shop(rt, SHOP)
    assert result.error is None and result.subscriptions_recreated == 0
    assert mutations(fake_shopify) == []


def test_app_mode_reports_a_missing_subscription_at_install_and_reconciliation(
    client: FlaskClient,
    rt: Runtime,
    settings: Settings,
    fake_shopify: FakeShopify,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deploy(settings, without=PAID_BLOCK)
    caplog.set_level(logging.WARNING)
    install(client, SHOP)  # the install itself goes through

    assert mutations(fake_shopify) == []
    assert install_error(rt) == "at install: subscriptions missing: orders/paid"
    assert any("subscriptions missing: orders/paid" in r.getMessage() for r in caplog.records)
    staff = client.application.test_client()
    add_staff_account(rt)
    assert console_login(staff).status_code == 302
    page = staff.get(f"/console/shops/{SHOP}").get_data(as_text=True)
    assert "subscriptions missing: orders/paid" in page

    result = reconcile_shop(rt, SHOP)
    assert result.error == "subscriptions missing: orders/paid"
    assert install_error(rt) == "subscriptions missing: orders/paid"
    assert mutations(fake_shopify) == []

    # A shop-level subscription at our address (an earlier "api" install's) counts.
    fake_shopify.add_subscription(SHOP, "ORDERS_PAID", ADDRESS)
    assert reconcile_shop(rt, SHOP).error is None


def test_app_mode_without_the_file_reports_every_topic(
    client: FlaskClient, rt: Runtime, settings: Settings, fake_shopify: FakeShopify
) -> None:
    install(client, SHOP)

    error = install_error(rt) or ""
    assert "orders/create" in error and "app/uninstalled" in error and "shop/redact" in error
    assert f"app configuration: cannot read {settings.shopify_app_config}" in error
    assert mutations(fake_shopify) == []
