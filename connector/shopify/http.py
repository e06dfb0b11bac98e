"""Where a shop's Admin API lives, and the one way a request is sent to it."""

from __future__ import annotations

from typing import Any

import requests

from connector.config import Settings
from connector.shopify.errors import ShopifyUnavailableError


def admin_base_url(settings: Settings, shop: str) -> str:
    """https://{shop}, or SHOPIFY_ADMIN_BASE_URL (may contain "{shop}") for a fake Shopify."""
    if settings.shopify_admin_base_url:
        return settings.shopify_admin_base_url.replace("{shop}", shop).rstrip("/")
    return f"https://{shop}"


def post(http: requests.Session, url: str, timeout: float, **kwargs: Any) -> requests.Response:
    """POST without following redirects; raises ShopifyUnavailableError when unreachable."""
    try:
        return http.post(url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.RequestException as exc:
        raise ShopifyUnavailableError(f"cannot reach Shopify ({type(exc).__name__})") from exc
