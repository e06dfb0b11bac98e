"""Install on an embedded load: Shopify's token exchange.

Shopify-managed installation installs the app without our OAuth redirect; the first load
in the admin then carries only App Bridge's session token. A request whose session token
passed the same checks as the session-token login (connector/install/merchant.py), for a
shop with no usable offline token (never installed, uninstalled, or its refresh token
expired), trades that session token for an expiring offline token pair and completes the
install as the authorization-code callback does (connector/install/finish.py). A refused
exchange shows a plain page and stores nothing.
"""

from __future__ import annotations

import logging

from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from connector.install.finish import finish_install
from connector.install.pages import page
from connector.runtime import Runtime
from connector.shopify.errors import ShopifyAuthError, ShopifyError
from connector.shopify.tokens import exchange_session_token, has_offline_token
from connector.storage import shops
from connector.storage.db import StorageUnavailableError, storage_errors
from connector.timeutil import utcnow

log = logging.getLogger(__name__)

LOCK_SECONDS = 60
INSTALLING = "The connector is being set up for your store: reload in a few seconds."


def install_if_needed(rt: Runtime, shop: str, session_token: str) -> ResponseReturnValue | None:
    """Exchange `session_token` (already verified for `shop`) when the shop has no usable
    offline token; a refusal page, or None when the shop is (now) installed."""
    try:
        if _installed(rt, shop):
            return None
    except StorageUnavailableError:
        return page(503, "Unavailable", "Please try again in a minute.")
    # App Bridge may send several requests at once: one of them installs, the others are
    # asked to reload (and one that got the lock just after it re-checks first).
    lock = f"connector:token-exchange:{shop}"
    try:
        if not rt.redis.set(lock, "1", nx=True, ex=LOCK_SECONDS):
            return page(503, "Installing", INSTALLING)
    except RedisError:
        return page(503, "Install unavailable", "Please try again in a minute.")
    try:
        return None if _installed(rt, shop) else _exchange(rt, shop, session_token)
    except StorageUnavailableError:
        return page(503, "Unavailable", "Please try again in a minute.")
    finally:
        try:
            rt.redis.delete(lock)
        except RedisError:
            pass  # it expires by itself


def _installed(rt: Runtime, shop: str) -> bool:
    with storage_errors(), rt.sessions() as db:
        return has_offline_token(shops.get_shop(db, shop), utcnow())


def _exchange(rt: Runtime, shop: str, session_token: str) -> ResponseReturnValue | None:
    try:
        tokens = exchange_session_token(rt.settings, shop, session_token)
    except ShopifyAuthError as exc:
        log.info("token exchange refused shop=%s: %s", shop, exc.reason)
        return page(
            401,
            "Install not completed",
            "Shopify did not accept this session. Nothing was saved; "
            "open the connector again from your Shopify admin.",
        )
    except ShopifyError as exc:
        log.warning("token exchange failed shop=%s: %s", shop, exc.reason)
        return page(502, "Install not completed", "Shopify could not be reached. Try again.")
    log.info("token exchange gave an offline token shop=%s", shop)
    return finish_install(rt, shop, tokens)
