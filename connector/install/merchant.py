"""Who the merchant is: the signed session the OAuth callback set, or a Shopify session token."""

from __future__ import annotations

from urllib.parse import urlsplit

import shopify
from flask import g, request, session
from shopify.session_token import SessionTokenError
from werkzeug.wrappers import Response

from connector.config import Settings
from connector.headers import merchant_frame_ancestors
from connector.shop_domain import is_shop_domain

SESSION_KEY = "merchant_shop"


def start(shop: str) -> None:
    """Sign the browser in as `shop`'s merchant (a fresh session: no earlier shop or token)."""
    session.clear()
    session[SESSION_KEY] = shop
    g.merchant_shop = shop
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


def session_token() -> str | None:
    """The request's App Bridge session token (the `Authorization: Bearer` value), if any;
    only meaningful once current_shop verified it."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return header.removeprefix("Bearer ").strip() or None


def current_shop(settings: Settings) -> str | None:
    """The signed-in merchant's shop, or None."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return shop_from_session_token(header, settings)
    shop = session.get(SESSION_KEY)
    return str(shop) if shop else None


def by_session_token() -> bool:
    """Whether this request names its merchant with a session token (App Bridge's fetch).

    Such a request carries no cookie to forge, so it needs no CSRF token; `current_shop`
    has then checked the token, never the cookie.
    """
    return request.headers.get("Authorization", "").startswith("Bearer ")


def frame_only_in_admin(response: Response) -> Response:
    """After every merchant page: framed by the verified shop's admin only (Shopify's rule).

    The shop is the one a view verified (`g.merchant_shop`), never a query parameter.
    """
    response.headers["Content-Security-Policy"] = merchant_frame_ancestors(g.get("merchant_shop"))
    return response
