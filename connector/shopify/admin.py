"""Shopify's Admin API at the edge: expiring offline tokens (exchange, refresh) and GraphQL.

ShopifyAPI builds the permission URL and checks query HMACs (connector/install.py). Its
`request_token` only yields non-expiring tokens and its GraphQL helper has no timeout, no
throttle handling and global session state, so the token grant, refresh and GraphQL calls
are made here with `requests`. Nothing here logs a token or a customer's data.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from connector.config import Settings
from connector.crypto import SecretBox
from connector.storage.db import transaction
from connector.storage.models import Shop
from connector.timeutil import utcnow

log = logging.getLogger(__name__)

SCOPES = ("read_orders", "read_checkouts", "read_customers")
REFRESH_MARGIN = timedelta(minutes=5)
MAX_THROTTLE_RETRIES = 5
MAX_THROTTLE_WAIT = 30.0


class ShopifyError(Exception):
    """A Shopify call failed; `reason` is short and holds no secret or personal data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ShopifyUnavailableError(ShopifyError):
    """Raised for timeouts, connection errors, 5xx and throttling that outlasted the retries."""


class ShopifyAuthError(ShopifyError):
    """Raised when Shopify refuses the code, the client credentials or the token (400-403)."""


class NotInstalledError(ShopifyError):
    """Raised when a shop has no stored access token (never installed, or uninstalled)."""


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    scope: str
    access_expires_at: datetime | None
    refresh_token: str | None
    refresh_expires_at: datetime | None


def admin_base_url(settings: Settings, shop: str) -> str:
    """https://{shop}, or SHOPIFY_ADMIN_BASE_URL (may contain "{shop}") for a fake Shopify."""
    if settings.shopify_admin_base_url:
        return settings.shopify_admin_base_url.replace("{shop}", shop).rstrip("/")
    return f"https://{shop}"


def _post(http: requests.Session, url: str, timeout: float, **kwargs: Any) -> requests.Response:
    try:
        return http.post(url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.RequestException as exc:
        raise ShopifyUnavailableError(f"cannot reach Shopify ({type(exc).__name__})") from exc


def _token_grant(
    settings: Settings, shop: str, form: dict[str, str], http: requests.Session | None
) -> TokenSet:
    url = admin_base_url(settings, shop) + "/admin/oauth/access_token"
    form = {
        "client_id": settings.shopify_api_key,
        "client_secret": settings.shopify_api_secrets[0],
        **form,
    }
    response = _post(http or requests.Session(), url, settings.http_timeout_seconds, data=form)
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


def refresh_tokens(
    settings: Settings, shop: str, refresh_token: str, http: requests.Session | None = None
) -> TokenSet:
    """Trade a refresh token for a new pair; the old refresh token stops working."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _token_grant(settings, shop, form, http)


def token_columns(secrets: SecretBox, tokens: TokenSet) -> dict[str, Any]:
    """The Shop column values that store a token pair (encrypted)."""
    return {
        "shopify_access_token_encrypted": secrets.encrypt(tokens.access_token),
        "shopify_access_expires_at": tokens.access_expires_at,
        "shopify_refresh_token_encrypted": (
            secrets.encrypt(tokens.refresh_token) if tokens.refresh_token else None
        ),
        "shopify_refresh_expires_at": tokens.refresh_expires_at,
        "shopify_scopes": tokens.scope,
    }


def _usable(shop: Shop | None, now: datetime) -> bool:
    if shop is None or not shop.shopify_access_token_encrypted:
        raise NotInstalledError("shop has no Shopify access token")
    expires = shop.shopify_access_expires_at
    return expires is None or expires - REFRESH_MARGIN > now


def fresh_access_token(
    sessions: sessionmaker[Session],
    secrets: SecretBox,
    settings: Settings,
    shop_domain: str,
    *,
    http: requests.Session | None = None,
) -> str:
    """The shop's access token, refreshed first when it expires within REFRESH_MARGIN.

    Any worker may call this. The refresh holds the shop row's write lock (an UPDATE, which
    also serialises SQLite writers), re-checks, and stores the new pair only if the refresh
    token it used is still the stored one, so concurrent callers refresh once.
    Raises NotInstalledError, ShopifyAuthError (refresh token refused) or
    ShopifyUnavailableError.
    """
    with sessions() as session:
        shop = session.get(Shop, shop_domain)
        if _usable(shop, utcnow()):
            assert shop is not None and shop.shopify_access_token_encrypted
            return secrets.decrypt(shop.shopify_access_token_encrypted)
    with transaction(sessions) as session:
        session.execute(
            update(Shop).where(Shop.domain == shop_domain).values(domain=Shop.domain)
        )  # takes the row (SQLite: database) write lock until commit
        shop = session.get(Shop, shop_domain, populate_existing=True)
        if _usable(shop, utcnow()):
            assert shop is not None and shop.shopify_access_token_encrypted
            return secrets.decrypt(shop.shopify_access_token_encrypted)
        assert shop is not None
        old = shop.shopify_refresh_token_encrypted
        if not old:
            raise ShopifyAuthError("access token expired and no refresh token is stored")
        tokens = refresh_tokens(settings, shop_domain, secrets.decrypt(old), http)
        stored = session.execute(
            update(Shop)
            .where(Shop.domain == shop_domain, Shop.shopify_refresh_token_encrypted == old)
            .values(**token_columns(secrets, tokens))
            .execution_options(synchronize_session=False)
        )
        if stored.rowcount != 1:  # type: ignore[attr-defined]
            raise ShopifyUnavailableError("token pair changed during refresh; try again")
        log.info("shopify token refreshed shop=%s", shop_domain)
        return tokens.access_token


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
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._token = access_token
        self.timeout = timeout
        self.http = http or requests.Session()
        self.sleep = sleep
        self.throttle = _Throttle()

    def __repr__(self) -> str:
        return f"AdminClient(url={self.url!r}, access_token='***')"

    def graphql(self, operation: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one named operation and return its `data`; waits out throttling.

        Raises ShopifyAuthError (401/403), ShopifyUnavailableError (network, 5xx, throttled
        beyond MAX_THROTTLE_RETRIES) or ShopifyError (GraphQL errors).
        """
        payload = {"query": query, "variables": variables, "operationName": operation}
        headers = {"X-Shopify-Access-Token": self._token, "Content-Type": "application/json"}
        for _attempt in range(MAX_THROTTLE_RETRIES + 1):
            if wait := self.throttle.wait_before_call():
                self.sleep(wait)
            response = _post(self.http, self.url, self.timeout, json=payload, headers=headers)
            if response.status_code in (401, 403):
                raise ShopifyAuthError(f"Admin API refused the token ({response.status_code})")
            if response.status_code == 429:
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
            data = self.graphql("WebhookSubscriptions", LIST_SUBSCRIPTIONS, {"after": after})
            page = data["webhookSubscriptions"]
            found.extend(page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    def create_subscription(self, topic: str, uri: str) -> None:
        variables = {"topic": topic, "sub": {"uri": uri, "format": "JSON"}}
        data = self.graphql("WebhookSubscriptionCreate", CREATE_SUBSCRIPTION, variables)
        _raise_user_errors(data["webhookSubscriptionCreate"])

    def delete_subscription(self, subscription_id: str) -> None:
        data = self.graphql(
            "WebhookSubscriptionDelete", DELETE_SUBSCRIPTION, {"id": subscription_id}
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
            page = self.graphql("Orders", ORDERS, variables)["orders"]
            after = page["pageInfo"]["endCursor"]
            yield page["nodes"], after
            if not page["pageInfo"]["hasNextPage"]:
                return

    def customer_order_count(self, customer_id: str) -> int | None:
        """Shopify's lifetime order count for a customer, or None if Shopify has no such one."""
        gid = f"gid://shopify/Customer/{customer_id}"
        customer = self.graphql("CustomerOrderCount", CUSTOMER_ORDER_COUNT, {"id": gid})["customer"]
        return None if customer is None else int(customer["numberOfOrders"])


def client_for(
    sessions: sessionmaker[Session], secrets: SecretBox, settings: Settings, shop_domain: str
) -> AdminClient:
    """An AdminClient with a fresh token for the shop (refreshing it first if needed)."""
    token = fresh_access_token(sessions, secrets, settings, shop_domain)
    return AdminClient(
        base_url=admin_base_url(settings, shop_domain),
        api_version=settings.shopify_api_version,
        access_token=token,
        timeout=settings.http_timeout_seconds,
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


LIST_SUBSCRIPTIONS = """
query WebhookSubscriptions($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id topic uri }
  }
}"""

CREATE_SUBSCRIPTION = """
mutation WebhookSubscriptionCreate(
  $topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!
) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""

DELETE_SUBSCRIPTION = """
mutation WebhookSubscriptionDelete($id: ID!) {
  webhookSubscriptionDelete(id: $id) {
    deletedWebhookSubscriptionId
    userErrors { field message }
  }
}"""

ORDERS = """
query Orders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      legacyResourceId name createdAt processedAt email test currencyCode
      displayFinancialStatus sourceName
      customer { legacyResourceId email firstName lastName }
      totalPriceSet { shopMoney { amount currencyCode } }
      subtotalPriceSet { shopMoney { amount currencyCode } }
      totalDiscountsSet { shopMoney { amount currencyCode } }
      totalTaxSet { shopMoney { amount currencyCode } }
      lineItems(first: 50) {
        nodes {
          title quantity sku
          product { legacyResourceId }
          variant { legacyResourceId }
          originalUnitPriceSet { shopMoney { amount currencyCode } }
        }
      }
    }
  }
}"""

CUSTOMER_ORDER_COUNT = """
query CustomerOrderCount($id: ID!) {
  customer(id: $id) { numberOfOrders }
}"""
