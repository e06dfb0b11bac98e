"""Shopify's side of the install: signed-query checks, the authorize URL, the scopes we need.

ShopifyAPI builds the permission URL and checks query HMACs. Query timestamps older than
MAX_QUERY_AGE (5 minutes: the install link and the callback follow a click within seconds;
ShopifyAPI's own check allows a day, too long for a replay) are refused.
"""

from __future__ import annotations

import threading

import shopify

from connector.config import Settings
from connector.shopify.http import admin_base_url

SCOPES = ("read_orders", "read_checkouts", "read_customers", "read_fulfillments", "read_products")
MAX_QUERY_AGE = 300
MAX_CLOCK_SKEW = 60
_hmac_lock = threading.Lock()  # shopify.Session keeps the secret on the class


def query_problem(params: dict[str, str], settings: Settings, now: float) -> str | None:
    """Why a Shopify-signed query (install link, callback) is refused, or None if it is fine."""
    verified = False
    with _hmac_lock:
        for secret in settings.shopify_api_secrets:
            shopify.Session.setup(api_key=settings.shopify_api_key, secret=secret)
            verified |= bool(shopify.Session.validate_hmac(params))
    if not verified:
        return "the request's signature (hmac) is missing or wrong"
    try:
        timestamp = int(params.get("timestamp", ""))
    except ValueError:
        return "the request has no valid timestamp"
    if timestamp < now - MAX_QUERY_AGE or timestamp > now + MAX_CLOCK_SKEW:
        return "the request is too old (or from the future): start the install again"
    return None


def permission_url(settings: Settings, shop: str, state: str) -> str:
    """Shopify's authorize URL (ShopifyAPI builds it; the host is swapped for a fake Shopify)."""
    redirect_uri = settings.app_url.rstrip("/") + "/auth/callback"
    with _hmac_lock:
        shopify.Session.setup(
            api_key=settings.shopify_api_key, secret=settings.shopify_api_secrets[0]
        )
        url = shopify.Session(shop, settings.shopify_api_version).create_permission_url(
            list(SCOPES), redirect_uri, state
        )
    _, _, query = url.partition("?")
    return f"{admin_base_url(settings, shop)}/admin/oauth/authorize?{query}"


def missing_scopes(granted_scope: str) -> set[str]:
    """The SCOPES a token's comma-separated `scope` lacks (a write scope implies its read)."""
    granted = {s.strip() for s in granted_scope.split(",") if s.strip()}
    granted |= {"read_" + s.removeprefix("write_") for s in granted}
    return set(SCOPES) - granted
