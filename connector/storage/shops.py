"""Shops: their Customer.io workspace, their Shopify tokens, whether they may be delivered."""

from __future__ import annotations

from dataclasses import dataclass

from connector.statuses import ShopStatus
from connector.storage.db import Session
from connector.storage.models import Shop


@dataclass(frozen=True)
class CustomerioSettings:
    """What a merchant (settings page) or an operator (`connector shops add`) saves."""

    site_id: str
    api_key_encrypted: str | None  # None: keep the stored key
    region: str
    order_topic: str | None = None  # None: keep the shop's choice
    include_test_orders: bool | None = None  # None: keep the shop's choice


def get_shop(session: Session, domain: str) -> Shop | None:
    return session.get(Shop, domain)


def save_customerio_settings(session: Session, domain: str, settings: CustomerioSettings) -> Shop:
    """Create or update the shop's Customer.io workspace.

    A new key may fix what Customer.io rejected, so a `credentials_rejected` shop becomes
    active again (its waiting events go out); an uninstalled shop stays uninstalled.
    """
    shop = session.get(Shop, domain)
    if shop is None:
        shop = Shop(domain=domain, status=ShopStatus.ACTIVE)
        session.add(shop)
    shop.cio_site_id = settings.site_id
    if settings.api_key_encrypted:
        shop.cio_api_key_encrypted = settings.api_key_encrypted
    shop.cio_region = settings.region
    if settings.order_topic:
        shop.order_topic = settings.order_topic
    if settings.include_test_orders is not None:
        shop.include_test_orders = settings.include_test_orders
    if shop.status == ShopStatus.CREDENTIALS_REJECTED:
        reactivate(shop)
    return shop


def reactivate(shop: Shop) -> None:
    """Let the shop's events be delivered again (new credentials, or a re-install)."""
    shop.status, shop.status_reason = ShopStatus.ACTIVE, None
