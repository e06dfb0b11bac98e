"""Shops: their Customer.io workspace, their Shopify tokens, whether they may be delivered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from connector.statuses import EventStatus, ShopStatus
from connector.storage.db import Session, one_of
from connector.storage.models import Event, Shop
from connector.timeutil import utcnow


@dataclass(frozen=True)
class CustomerioSettings:
    """What a merchant (settings page) or an operator (`connector shops add`) saves."""

    site_id: str
    api_key_encrypted: str | None  # None: keep the stored key
    region: str
    order_topic: str | None = None  # None: keep the shop's choice
    include_test_orders: bool | None = None  # None: keep the shop's choice


@dataclass(frozen=True)
class StoredTokens:
    """A Shopify token pair as the shop row keeps it: both tokens encrypted."""

    access_token_encrypted: str
    access_expires_at: datetime | None
    refresh_token_encrypted: str | None
    refresh_expires_at: datetime | None
    scopes: str

    def columns(self) -> dict[str, object]:
        return {
            "shopify_access_token_encrypted": self.access_token_encrypted,
            "shopify_access_expires_at": self.access_expires_at,
            "shopify_refresh_token_encrypted": self.refresh_token_encrypted,
            "shopify_refresh_expires_at": self.refresh_expires_at,
            "shopify_scopes": self.scopes,
        }


@dataclass(frozen=True)
class Installed:
    """What storing an install found: a re-install of an uninstalled shop, a history to import."""

    reinstalled: bool
    needs_history: bool


def get_shop(session: Session, domain: str) -> Shop | None:
    return session.get(Shop, domain)


def get_shops(session: Session, domains: list[str]) -> list[Shop]:
    """The stored shops among `domains`, in one query."""
    if not domains:
        return []
    return list(session.scalars(select(Shop).where(one_of(session, Shop.domain, domains))).all())


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


def mark_history_known(session: Session, domain: str) -> None:
    """Declare the shop's order history known without importing it (a new store with no
    orders before the connector): a customer the ledger lacks is then new."""
    shop = session.get(Shop, domain)
    if shop is not None and shop.history_imported_at is None:
        shop.history_imported_at = utcnow()


def reactivate(shop: Shop) -> None:
    """Let the shop's events be delivered again (new credentials, or a re-install)."""
    shop.status, shop.status_reason = ShopStatus.ACTIVE, None


# -- install and uninstall -------------------------------------------------------------------


def record_install(session: Session, domain: str, tokens: StoredTokens) -> Installed:
    """Store an install's token pair; an uninstalled shop becomes active again."""
    shop = session.get(Shop, domain) or Shop(domain=domain, status=ShopStatus.ACTIVE)
    reinstalled = shop.status == ShopStatus.UNINSTALLED
    for name, value in tokens.columns().items():
        setattr(shop, name, value)
    shop.installed_at = utcnow()
    shop.uninstalled_at = None
    if reinstalled:
        reactivate(shop)
    session.add(shop)
    return Installed(reinstalled, needs_history=shop.history_imported_at is None)


def mark_uninstalled(session: Session, domain: str) -> Shop | None:
    """Deactivate the shop and erase its Shopify tokens; None if the shop is unknown."""
    shop = session.get(Shop, domain)
    if shop is None:
        return None
    shop.status, shop.status_reason = ShopStatus.UNINSTALLED, "app uninstalled"
    shop.uninstalled_at = utcnow()
    shop.shopify_access_token_encrypted = shop.shopify_refresh_token_encrypted = None
    shop.shopify_access_expires_at = shop.shopify_refresh_expires_at = None
    return shop


def mark_pending_events(session: Session, domain: str, reason: str) -> None:
    """Give the shop's pending events `reason` (why they wait)."""
    session.execute(
        update(Event)
        .where(Event.shop_domain == domain, Event.status == EventStatus.PENDING)
        .values(reason=reason)
    )


def clear_event_reason(session: Session, domain: str, reason: str) -> None:
    """Remove `reason` from the shop's events that carry it."""
    session.execute(
        update(Event).where(Event.shop_domain == domain, Event.reason == reason).values(reason=None)
    )


# -- the token refresh -----------------------------------------------------------------------


def lock_shop(session: Session, domain: str) -> Shop | None:
    """The shop re-read under its row write lock, held until the transaction ends.

    The lock is taken with a no-op UPDATE, which also serialises SQLite writers.
    """
    session.execute(update(Shop).where(Shop.domain == domain).values(domain=Shop.domain))
    return session.get(Shop, domain, populate_existing=True)


def swap_tokens(session: Session, domain: str, old_refresh: str, tokens: StoredTokens) -> bool:
    """Store the new pair only if `old_refresh` is still the stored refresh token."""
    stored = session.execute(
        update(Shop)
        .where(Shop.domain == domain, Shop.shopify_refresh_token_encrypted == old_refresh)
        .values(**tokens.columns())
        .execution_options(synchronize_session=False)
    )
    return bool(stored.rowcount == 1)  # type: ignore[attr-defined]
