"""Who the merchant is: the signed session the OAuth callback set, or a Shopify session token."""

from __future__ import annotations

from urllib.parse import urlsplit

import shopify
from flask import request, session
from shopify.session_token import SessionTokenError

from connector.config import Settings
from connector.shop_domain import is_shop_domain

SESSION_KEY = "merchant_shop"


def start(shop: str) -> None:
    """Sign the browser in as `shop`'s merchant (a fresh session: no earlier shop or token)."""
    session.clear()
    session[SESSION_KEY] = shop
    session.permanent = False


def shop_from_session_token(header: str, settings: Settings) -> str | None:
    """The shop of a valid embedded-app session token (JWT), else None.

    ShopifyAPI checks the HS256 signature, audience (our client id), nbf/exp when present
    (10 s leeway) and that iss and dest share a host; we also insist on `exp` and a
    *.myshopify.com `dest`.
    """
    for secret in settings.shopify_api_secrets:
        try:
            claims = shopify.session_token.decode_from_header(
                header, settings.shopify_api_key, secret
            )
        except SessionTokenError:
            continue
        host = (urlsplit(str(claims.get("dest", ""))).hostname or "").lower()
        if "exp" in claims and is_shop_domain(host):
            return host
        return None
    return None


def current_shop(settings: Settings) -> str | None:
    """The signed-in merchant's shop, or None."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return shop_from_session_token(header, settings)
    shop = session.get(SESSION_KEY)
    return str(shop) if shop else None
