"""Shop domains: Shopify identifies a store by its `*.myshopify.com` domain. Pure."""

from __future__ import annotations

import re

from connector import lengths

SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9\-]*\.myshopify\.com$")
MAX_LENGTH = lengths.SHOP_DOMAIN


def normalize_shop_domain(value: str) -> str:
    """The domain trimmed and lower-cased; ValueError unless it is a `*.myshopify.com` one."""
    domain = value.strip().lower()
    if len(domain) > MAX_LENGTH or not SHOP_DOMAIN.match(domain):
        raise ValueError("not a *.myshopify.com domain")
    return domain


def is_shop_domain(value: str) -> bool:
    """Whether `value`, as given, is already a normalized `*.myshopify.com` domain."""
    return len(value) <= MAX_LENGTH and SHOP_DOMAIN.match(value) is not None
