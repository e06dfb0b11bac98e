"""GraphQL Admin API calls for one shop: throttling, webhook subscriptions, orders.

ShopifyAPI's GraphQL helper has no timeout, no throttle handling and global session state,
so the calls are made here with `requests`. Nothing here logs a token or a customer's data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from connector.config import Settings
from connector.crypto import SecretBox
from connector.shopify import queries
from connector.shopify.errors import ShopifyAuthError, ShopifyError, ShopifyUnavailableError
from connector.shopify.http import admin_base_url, post
from connector.shopify.tokens import fresh_access_token
from connector.storage.db import Sessions

MAX_THROTTLE_RETRIES = 5
MAX_THROTTLE_WAIT = 30.0


@dataclass
class _Throttle:
    available: float | None = None
    restore_rate: float = 50.0
    last_cost: float = 10.0

    def wait_before_call(self) -> float:
        if self.available is None or self.available >= self.last_cost:
            return 0.0
        return min(MAX_THROTTLE_WAIT, (self.last_cost - self.available) / self.restore_rate)

    def read(self, body: Any) -> None:
        try:
            cost = body["extensions"]["cost"]
            status = cost["throttleStatus"]
            self.available = float(status["currentlyAvailable"])
            self.restore_rate = max(1.0, float(status["restoreRate"]))
            self.last_cost = float(cost.get("requestedQueryCost") or self.last_cost)
        except (KeyError, TypeError, ValueError):
            pass


class AdminClient:
    """GraphQL Admin API calls for one shop, within its rate limits."""

    def __init__(
        self,
        *,
        base_url: str,
        api_version: str,
        access_token: str,
        timeout: float = 10.0,
        http: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        throttle_retries: int = MAX_THROTTLE_RETRIES,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._token = access_token
        self.timeout = timeout
        self.http = http or requests.Session()
        self.sleep = sleep
        self.throttle = _Throttle()
        self.throttle_retries = throttle_retries  # 0: a throttled call fails at once

    def __repr__(self) -> str:
        return f"AdminClient(url={self.url!r}, access_token='***')"

    def graphql(self, operation: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one named operation and return its `data`; waits out throttling.

        Raises ShopifyAuthError (401/403), ShopifyUnavailableError (network, 5xx, throttled
        beyond `throttle_retries`) or ShopifyError (GraphQL errors).
        """
        payload = {"query": query, "variables": variables, "operationName": operation}
        headers = {"X-Shopify-Access-Token": self._token, "Content-Type": "application/json"}
        for attempt in range(self.throttle_retries + 1):
            last = attempt == self.throttle_retries
            if wait := self.throttle.wait_before_call():
                self.sleep(wait)
            response = post(self.http, self.url, self.timeout, json=payload, headers=headers)
            if response.status_code in (401, 403):
                raise ShopifyAuthError(f"Admin API refused the token ({response.status_code})")
            if response.status_code == 429:
                if not last:  # no point waiting when no attempt is left
                    self.sleep(_retry_after(response.headers.get("Retry-After")))
                continue
            if response.status_code != 200:
                raise ShopifyUnavailableError(f"Admin API answered {response.status_code}")
            try:
                body = response.json()
            except ValueError as exc:
                raise ShopifyUnavailableError("Admin API answered non-JSON") from exc
            self.throttle.read(body)
            errors = body.get("errors") or []
            if any(_code(e) == "THROTTLED" for e in errors):
                self.throttle.available = 0.0  # the wait happens before the next attempt
                continue
            if errors:
                raise ShopifyError(f"{operation}: {_short(errors)}")
            return body.get("data") or {}
        raise ShopifyUnavailableError(f"{operation}: still throttled after retries")

    # -- webhook subscriptions -----------------------------------------------------------

    def webhook_subscriptions(self) -> list[dict[str, str]]:
        """Every subscription of this app on the shop: id, topic (enum) and uri."""
        found: list[dict[str, str]] = []
        after: str | None = None
        while True:
            data = self.graphql(
                "WebhookSubscriptions", queries.LIST_SUBSCRIPTIONS, {"after": after}
            )
            page = data["webhookSubscriptions"]
            found.extend(page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    def create_subscription(self, topic: str, uri: str) -> None:
        variables = {"topic": topic, "sub": {"uri": uri, "format": "JSON"}}
        data = self.graphql("WebhookSubscriptionCreate", queries.CREATE_SUBSCRIPTION, variables)
        _raise_user_errors(data["webhookSubscriptionCreate"])

    def delete_subscription(self, subscription_id: str) -> None:
        data = self.graphql(
            "WebhookSubscriptionDelete", queries.DELETE_SUBSCRIPTION, {"id": subscription_id}
        )
        _raise_user_errors(data["webhookSubscriptionDelete"])

    def ensure_subscriptions(self, uri: str, topics: list[str]) -> dict[str, int]:
        """Make the shop's subscriptions exactly one per topic at `uri`; idempotent.

        Subscriptions of these topics at another address, and duplicates, are deleted.
        """
        created = deleted = 0
        kept: set[str] = set()
        for sub in self.webhook_subscriptions():
            wanted = sub["topic"] in topics and sub.get("uri") == uri
            if wanted and sub["topic"] not in kept:
                kept.add(sub["topic"])
            elif sub["topic"] in topics or sub.get("uri") == uri:
                self.delete_subscription(sub["id"])
                deleted += 1
        for topic in topics:
            if topic not in kept:
                self.create_subscription(topic, uri)
                created += 1
        return {"created": created, "deleted": deleted, "kept": len(kept)}

    # -- orders and customers ------------------------------------------------------------

    def orders_pages(
        self, after: str | None = None, search: str | None = None, page_size: int = 100
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Orders oldest first, a page at a time, with the cursor that resumes after it."""
        while True:
            variables = {"after": after, "query": search, "first": page_size}
            page = self.graphql("Orders", queries.ORDERS, variables)["orders"]
            after = page["pageInfo"]["endCursor"]
            yield page["nodes"], after
            if not page["pageInfo"]["hasNextPage"]:
                return

    def orders_updated_pages(
        self, search: str, after: str | None = None, page_size: int = queries.RECONCILE_PAGE_SIZE
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Orders matching `search`, least recently updated first, a page at a time
        (reconciliation's query: more fields than `orders_pages`, smaller pages)."""
        while True:
            variables = {"after": after, "query": search, "first": page_size}
            page = self.graphql("ReconcileOrders", queries.RECONCILE_ORDERS, variables)["orders"]
            after = page["pageInfo"]["endCursor"]
            yield page["nodes"], after
            if not page["pageInfo"]["hasNextPage"]:
                return

    def product_details(self, product_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Product id -> handle, productType, tags, onlineStoreUrl and featuredImage, for the
        products Shopify still has; one request for all of them."""
        ids = [f"gid://shopify/Product/{product_id}" for product_id in product_ids]
        data = self.graphql("ProductDetails", queries.PRODUCT_DETAILS, {"ids": ids})
        return {
            str(node["legacyResourceId"]): node
            for node in data.get("nodes") or []
            if isinstance(node, dict) and node.get("legacyResourceId")
        }

    def customer_order_count(self, customer_id: str) -> int | None:
        """Shopify's lifetime order count for a customer, or None if Shopify has no such one."""
        gid = f"gid://shopify/Customer/{customer_id}"
        data = self.graphql("CustomerOrderCount", queries.CUSTOMER_ORDER_COUNT, {"id": gid})
        customer = data["customer"]
        return None if customer is None else int(customer["numberOfOrders"])


def client_for(
    sessions: Sessions,
    secrets: SecretBox,
    settings: Settings,
    shop_domain: str,
    *,
    timeout: float | None = None,
    throttle_retries: int = MAX_THROTTLE_RETRIES,
) -> AdminClient:
    """An AdminClient with a fresh token for the shop (refreshing it first if needed).

    `timeout` (default HTTP_TIMEOUT_SECONDS) and `throttle_retries` let a best-effort call
    give up sooner than one that must succeed.
    """
    token = fresh_access_token(sessions, secrets, settings, shop_domain)
    return AdminClient(
        base_url=admin_base_url(settings, shop_domain),
        api_version=settings.shopify_api_version,
        access_token=token,
        timeout=settings.http_timeout_seconds if timeout is None else timeout,
        throttle_retries=throttle_retries,
    )


def _retry_after(value: str | None) -> float:
    try:
        return min(MAX_THROTTLE_WAIT, max(0.0, float(value or 1)))
    except ValueError:
        return 1.0


def _code(error: Any) -> str | None:
    return (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None


def _short(errors: Any) -> str:
    return json.dumps(errors)[:200]


def _raise_user_errors(result: dict[str, Any]) -> None:
    if result.get("userErrors"):
        raise ShopifyError(f"userErrors: {_short(result['userErrors'])}")
