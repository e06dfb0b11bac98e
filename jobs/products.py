"""Product details for recovery and cross-sell emails: pictures, links, types and tags.

Webhooks carry product ids but no image, page or type. The worker asks the Admin API for
all the products of a batch in one request and caches the answers per shop
(connector/storage/products.py) until products/update or CACHE_HOURS. If Shopify cannot be
reached the events go out without the details, on time: Customer.io triggers journeys only
on events younger than 72 hours, which matters more than a picture. So the look-up is
best-effort: a short timeout, no waiting out throttling, and after a failure the shop's
batches skip it for a cool-down instead of each paying the timeout again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from connector.runtime import Runtime
from connector.shopify.admin import client_for
from connector.shopify.errors import ShopifyError, ShopifyUnavailableError
from connector.storage import products as cache
from connector.storage.db import Session
from connector.storage.shops import get_shop
from connector.timeutil import utcnow
from webhooks.mapping import ProductInfo

log = logging.getLogger(__name__)

CACHE_HOURS = 24
PAGE = 100  # product ids per Admin API request
LOOKUP_TIMEOUT_SECONDS = 5.0  # at most; HTTP_TIMEOUT_SECONDS when that is shorter
# After a failed look-up the shop's batches go without details for a while: 60 s when
# Shopify is unreachable, slow or throttled; an hour when it refused (token, or no
# read_products scope before a re-install), which a retry soon would not change.
UNAVAILABLE_COOLDOWN_SECONDS = 60
REFUSED_COOLDOWN_SECONDS = 3600
COOLDOWN_KEY = "connector:products:cooldown:{shop}"

# (shop, product ids) -> Admin API Product nodes by id; None when Shopify could not answer.
ProductFetch = Callable[[str, list[str]], dict[str, dict[str, Any]] | None]


def product_ids(webhooks: Iterable[Any]) -> set[str]:
    """The product ids named by these payloads' lines (orders, checkouts, refunds, ...)."""
    found: set[str] = set()
    for payload in webhooks:
        if not isinstance(payload, Mapping):
            continue
        lines = list(payload.get("line_items") or [])
        lines += [
            r.get("line_item")
            for r in payload.get("refund_line_items") or []
            if isinstance(r, Mapping)
        ]
        for line in lines:
            if isinstance(line, Mapping) and line.get("product_id") not in (None, ""):
                found.add(str(line["product_id"]))
    return found


def products_for(
    session: Session, wanted: Mapping[str, set[str]], fetch: ProductFetch | None
) -> dict[str, dict[str, ProductInfo]]:
    """Details of these products (shop -> product ids), per shop: from the cache (one query
    for all the shops), else from one Admin API request per shop that misses some."""
    cached = cache.cached_products(
        session,
        ((shop, product_id) for shop, ids in wanted.items() for product_id in ids),
        fresh_after=utcnow() - timedelta(hours=CACHE_HOURS),
    )
    found: dict[str, dict[str, ProductInfo]] = {}
    for shop_domain, ids in wanted.items():
        known = {p: node for (shop, p), node in cached.items() if shop == shop_domain}
        missing = sorted(ids - known.keys())
        if missing and fetch is not None:
            fetched = fetch(shop_domain, missing)
            if fetched is not None:  # {} for a product Shopify no longer has: asked once a day
                answers = {product_id: fetched.get(product_id, {}) for product_id in missing}
                cache.store_products(session, shop_domain, answers)
                known.update(answers)
        found[shop_domain] = {
            product_id: product_info(node, shop_domain)
            for product_id, node in known.items()
            if node
        }
    return found


def product_info(node: Mapping[str, Any], shop_domain: str) -> ProductInfo:
    """An Admin API Product node as the item schema uses it."""
    handle = node.get("handle")
    url = node.get("onlineStoreUrl") or (
        f"https://{shop_domain}/products/{handle}" if handle else None
    )
    image = node.get("featuredImage") or {}
    tags = node.get("tags") or []
    return ProductInfo(
        product_url=url if isinstance(url, str) else None,
        image_url=image.get("url") if isinstance(image, Mapping) else None,
        product_type=node.get("productType") or None,
        tags=tuple(str(tag) for tag in tags if tag),
    )


def product_fetch(rt: Runtime, tokens: dict[str, bool] | None = None) -> ProductFetch:
    """The worker's Admin API look-up; None (send without details) when it cannot answer.
    `tokens` (shop -> whether it has an Admin API token), when the caller knows, saves a
    look-up per shop."""
    timeout = min(rt.settings.http_timeout_seconds, LOOKUP_TIMEOUT_SECONDS)

    def fetch(shop_domain: str, ids: list[str]) -> dict[str, dict[str, Any]] | None:
        if not (tokens or {}).get(shop_domain, True):
            return None
        cooldown = COOLDOWN_KEY.format(shop=shop_domain)
        if rt.redis.exists(cooldown):
            return None
        with rt.sessions() as session:
            shop = get_shop(session, shop_domain)
            if shop is None or not shop.shopify_access_token_encrypted:
                return None
        try:
            client = client_for(
                rt.sessions,
                rt.secrets,
                rt.settings,
                shop_domain,
                timeout=timeout,
                throttle_retries=0,
            )
            found: dict[str, dict[str, Any]] = {}
            for start in range(0, len(ids), PAGE):
                found.update(client.product_details(ids[start : start + PAGE]))
            return found
        except ShopifyError as exc:
            seconds = (
                UNAVAILABLE_COOLDOWN_SECONDS
                if isinstance(exc, ShopifyUnavailableError)
                else REFUSED_COOLDOWN_SECONDS
            )
            rt.redis.set(cooldown, exc.reason, ex=seconds)
            log.warning(
                "product details not available shop=%s for %ds: %s",
                shop_domain,
                seconds,
                exc.reason,
            )
            return None

    return fetch
