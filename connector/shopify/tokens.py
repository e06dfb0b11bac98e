"""Expiring offline tokens: the grant at install (authorization code, or token exchange on an
embedded load), the refresh before expiry, from any worker.

ShopifyAPI's `request_token` only yields non-expiring tokens, so the grant and the refresh
are made here with `requests`. Nothing here logs a token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests

from connector.config import Settings
from connector.crypto import SecretBox
from connector.shopify.errors import NotInstalledError, ShopifyAuthError, ShopifyUnavailableError
from connector.shopify.http import admin_base_url, post
from connector.statuses import ShopStatus
from connector.storage import shops
from connector.storage.db import Sessions, transaction
from connector.storage.models import Shop
from connector.timeutil import utcnow

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    scope: str
    access_expires_at: datetime | None
    refresh_token: str | None
    refresh_expires_at: datetime | None


def _token_grant(
    settings: Settings, shop: str, form: dict[str, str], http: requests.Session | None
) -> TokenSet:
    url = admin_base_url(settings, shop) + "/admin/oauth/access_token"
    form = {
        "client_id": settings.shopify_api_key,
        "client_secret": settings.shopify_api_secrets[0],
        **form,
    }
    response = post(http or requests.Session(), url, settings.http_timeout_seconds, data=form)
    if response.status_code in (400, 401, 403):
        raise ShopifyAuthError(f"token request refused ({response.status_code})")
    if response.status_code != 200:
        raise ShopifyUnavailableError(f"token request failed ({response.status_code})")
    try:
        body = response.json()
        now = utcnow()
        expires_in, refresh_in = body.get("expires_in"), body.get("refresh_token_expires_in")
        return TokenSet(
            access_token=str(body["access_token"]),
            scope=str(body.get("scope", "")),
            access_expires_at=now + timedelta(seconds=int(expires_in)) if expires_in else None,
            refresh_token=body.get("refresh_token"),
            refresh_expires_at=now + timedelta(seconds=int(refresh_in)) if refresh_in else None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ShopifyUnavailableError("token response is not what Shopify sends") from exc


def exchange_code(
    settings: Settings, shop: str, code: str, http: requests.Session | None = None
) -> TokenSet:
    """Trade an authorization code for an expiring offline token pair (`expiring=1`)."""
    return _token_grant(settings, shop, {"code": code, "expiring": "1"}, http)


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_ACCESS_TOKEN = "urn:shopify:params:oauth:token-type:offline-access-token"


def exchange_session_token(
    settings: Settings, shop: str, session_token: str, http: requests.Session | None = None
) -> TokenSet:
    """Trade an embedded app's session token (App Bridge's ID token) for an expiring offline
    token pair: Shopify's token exchange. An invalid or expired session token gets 400,
    raised as ShopifyAuthError."""
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": session_token,
        "subject_token_type": ID_TOKEN,
        "requested_token_type": OFFLINE_ACCESS_TOKEN,
        "expiring": "1",
    }
    return _token_grant(settings, shop, form, http)


def refresh_tokens(
    settings: Settings, shop: str, refresh_token: str, http: requests.Session | None = None
) -> TokenSet:
    """Trade a refresh token for a new pair; the old refresh token stops working."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _token_grant(settings, shop, form, http)


def stored_tokens(secrets: SecretBox, tokens: TokenSet) -> shops.StoredTokens:
    """The token pair as the shop row stores it (tokens encrypted)."""
    return shops.StoredTokens(
        access_token_encrypted=secrets.encrypt(tokens.access_token),
        access_expires_at=tokens.access_expires_at,
        refresh_token_encrypted=(
            secrets.encrypt(tokens.refresh_token) if tokens.refresh_token else None
        ),
        refresh_expires_at=tokens.refresh_expires_at,
        scopes=tokens.scope,
    )


def has_offline_token(shop: Shop | None, now: datetime) -> bool:
    """Whether the shop holds an offline token the workers can use (or refresh): else an
    embedded load gets one by token exchange."""
    if shop is None or shop.status == ShopStatus.UNINSTALLED:
        return False
    if not shop.shopify_access_token_encrypted:
        return False
    access, refresh = shop.shopify_access_expires_at, shop.shopify_refresh_expires_at
    if access is None or access > now:
        return True
    return bool(shop.shopify_refresh_token_encrypted) and (refresh is None or refresh > now)


def _usable(shop: Shop | None, now: datetime) -> bool:
    if shop is None or not shop.shopify_access_token_encrypted:
        raise NotInstalledError("shop has no Shopify access token")
    expires = shop.shopify_access_expires_at
    return expires is None or expires - REFRESH_MARGIN > now


def fresh_access_token(
    sessions: Sessions,
    secrets: SecretBox,
    settings: Settings,
    shop_domain: str,
    *,
    http: requests.Session | None = None,
) -> str:
    """The shop's access token, refreshed first when it expires within REFRESH_MARGIN.

    Any worker may call this. The refresh holds the shop row's write lock, re-checks, and
    stores the new pair only if the refresh token it used is still the stored one, so
    concurrent callers refresh once.
    Raises NotInstalledError, ShopifyAuthError (refresh token refused) or
    ShopifyUnavailableError.
    """
    with sessions() as session:
        shop = shops.get_shop(session, shop_domain)
        if _usable(shop, utcnow()):
            assert shop is not None and shop.shopify_access_token_encrypted
            return secrets.decrypt(shop.shopify_access_token_encrypted)
    with transaction(sessions) as session:
        shop = shops.lock_shop(session, shop_domain)
        if _usable(shop, utcnow()):
            assert shop is not None and shop.shopify_access_token_encrypted
            return secrets.decrypt(shop.shopify_access_token_encrypted)
        assert shop is not None
        old = shop.shopify_refresh_token_encrypted
        if not old:
            raise ShopifyAuthError("access token expired and no refresh token is stored")
        tokens = refresh_tokens(settings, shop_domain, secrets.decrypt(old), http)
        if not shops.swap_tokens(session, shop_domain, old, stored_tokens(secrets, tokens)):
            raise ShopifyUnavailableError("token pair changed during refresh; try again")
        log.info("shopify token refreshed shop=%s", shop_domain)
        return tokens.access_token
