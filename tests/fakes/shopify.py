"""FakeShopify: a real HTTP server on loopback standing in for a shop's OAuth and Admin API.

Serves, per shop under `/shops/<shop>` (point SHOPIFY_ADMIN_BASE_URL at `url_template`):
- GET  /admin/oauth/authorize: the merchant approves at once; 302 to the redirect_uri with
  code, hmac (signed with the app secret, as Shopify does), host, shop, state, timestamp;
- POST /admin/oauth/access_token: authorization_code (expiring=1 gives a 60-minute token
  plus a refresh token), grant_type=refresh_token (rotates the pair) and token exchange (a
  valid session token of the shop gives a pair; an invalid or expired one 400
  invalid_subject_token);
- POST /admin/api/<version>/graphql.json: the operations the connector sends, dispatched
  on `operationName` (WebhookSubscriptions/Create/Delete, Orders, ReconcileOrders,
  CustomerOrderCount, ProductDetails), after checking X-Shopify-Access-Token; answers 429
  or a THROTTLED error on demand (any call, or one operation's, from its nth call on).
Everything it answered is kept in `requests` for the tests to read.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from werkzeug.wrappers import Request, Response

from connector.dev.http_server import LoopbackServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_ACCESS_TOKEN = "urn:shopify:params:oauth:token-type:offline-access-token"
ACCESS_SECONDS = 3600
REFRESH_SECONDS = 90 * 24 * 3600
THROTTLE_STATUS = {"maximumAvailable": 2000.0, "currentlyAvailable": 1990.0, "restoreRate": 100.0}


def query_hmac(params: dict[str, str], secret: str) -> str:
    """Shopify's OAuth query signature: sorted key=value pairs joined by &, HMAC-SHA256 hex."""
    pairs = (
        f"{k.replace('%', '%25').replace('=', '%3D')}={v.replace('%', '%25')}".replace("&", "%26")
        for k, v in params.items()
        if k != "hmac"
    )
    message = "&".join(sorted(pairs))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_query(params: dict[str, str], secret: str) -> dict[str, str]:
    return {**params, "hmac": query_hmac(params, secret)}


@dataclass
class _Token:
    shop: str
    expires_at: float | None


@dataclass
class ShopState:
    subscriptions: dict[str, dict[str, str]] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeShopify:
    """The fake; `start()` it, read `requests`, add orders, inject faults."""

    def __init__(self, api_key: str, secret: str, *, host: str = "127.0.0.1") -> None:
        self.api_key, self.secret, self.host = api_key, secret, host
        self.port = 0
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.shops: dict[str, ShopState] = {}
        self.codes: dict[str, str] = {}  # code -> shop
        self.access: dict[str, _Token] = {}
        self.refresh: dict[str, _Token] = {}
        self.access_seconds = ACCESS_SECONDS
        self.granted_scope: str | None = None  # None: what was asked for
        self._ids = itertools.count(1)
        self._throttle_next: list[_Throttling] = []
        self._fail_next: list[int] = []  # HTTP statuses of the next GraphQL answers
        self._server = LoopbackServer(self._wsgi, host=host)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeShopify:
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeShopify:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url_template(self) -> str:
        return f"http://{self.host}:{self.port}/shops/{{shop}}"

    # -- test helpers ------------------------------------------------------------------

    def shop(self, domain: str) -> ShopState:
        with self.lock:
            return self.shops.setdefault(domain, ShopState())

    def subscriptions(self, domain: str) -> list[dict[str, str]]:
        with self.lock:
            return sorted(
                self.shop_unlocked(domain).subscriptions.values(), key=lambda s: s["topic"]
            )

    def shop_unlocked(self, domain: str) -> ShopState:
        return self.shops.setdefault(domain, ShopState())

    def add_subscription(self, domain: str, topic: str, uri: str) -> None:
        with self.lock:
            self._create_sub(self.shop_unlocked(domain), topic, uri)

    def add_order(
        self,
        domain: str,
        order_id: int,
        created_at: datetime,
        *,
        customer_id: int | None = None,
        email: str | None = None,
        total: str = "25.00",
        test: bool = False,
        updated_at: datetime | None = None,
        checkout_token: str | None = None,
    ) -> None:
        """Add an order (as the Admin API's Order node) to the shop's history."""
        when = _iso(created_at)
        money = lambda amount: {"shopMoney": {"amount": amount, "currencyCode": "USD"}}  # noqa: E731
        node = {
            "id": f"gid://shopify/Order/{order_id}",
            "legacyResourceId": str(order_id),
            "name": f"#{order_id}",
            "createdAt": when,
            "processedAt": when,
            "updatedAt": _iso(updated_at or created_at),
            "cancelledAt": None,
            "checkoutToken": checkout_token,
            "email": email,
            "test": test,
            "currencyCode": "USD",
            "displayFinancialStatus": "PAID",
            "sourceName": "web",
            "customer": (
                {
                    "legacyResourceId": str(customer_id),
                    "email": email,
                    "firstName": "Ada",
                    "lastName": "L",
                }
                if customer_id is not None
                else None
            ),
            "totalPriceSet": money(total),
            "subtotalPriceSet": money(total),
            "totalDiscountsSet": money("0.00"),
            "totalTaxSet": money("0.00"),
            "totalShippingPriceSet": money("0.00"),
            "shippingAddress": {"countryCodeV2": "US"},
            "lineItems": {
                "nodes": [
                    {
                        "title": "Mug",
                        "quantity": 1,
                        "sku": "MUG-1",
                        "product": {"legacyResourceId": "9001"},
                        "variant": {"legacyResourceId": "9002"},
                        "originalUnitPriceSet": money(total),
                    }
                ]
            },
        }
        with self.lock:
            state = self.shop_unlocked(domain)
            state.orders.append(node)
            state.orders.sort(key=lambda o: (o["createdAt"], int(o["legacyResourceId"])))

    def update_order(self, domain: str, order_id: int, updated_at: datetime) -> None:
        """Mark an order as updated at `updated_at` (a tag, a payment, a refund)."""
        with self.lock:
            for node in self.shop_unlocked(domain).orders:
                if node["legacyResourceId"] == str(order_id):
                    node["updatedAt"] = _iso(updated_at)

    def delete_subscriptions(self, domain: str, topic: str) -> int:
        """Drop the shop's subscriptions of a topic (GraphQL enum name), as Shopify does after
        8 failed deliveries; returns how many were dropped."""
        with self.lock:
            subs = self.shop_unlocked(domain).subscriptions
            gone = [sub_id for sub_id, sub in subs.items() if sub["topic"] == topic]
            for sub_id in gone:
                del subs[sub_id]
            return len(gone)

    def throttle_next(
        self, n: int, kind: str = "graphql", *, operation: str | None = None, after: int = 0
    ) -> None:
        """Answer the next `n` GraphQL calls throttled: "graphql" (THROTTLED) or "429".

        `operation`: only calls of that operation count (e.g. "ReconcileOrders"), and the
        first `after` of them are answered normally (throttling a later page).
        """
        with self.lock:
            self._throttle_next.append(_Throttling(kind, operation, after, n))

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next `n` GraphQL calls with this HTTP error status (Shopify is down)."""
        with self.lock:
            self._fail_next.extend([status] * n)

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.access.values():
                token.expires_at = time.time() - 1

    def calls(self, kind: str) -> list[dict[str, Any]]:
        """Recorded requests of one kind: authorize, token, refresh, or a GraphQL operation."""
        with self.lock:
            return [r for r in self.requests if r["kind"] == kind]

    def valid_access_token(self, domain: str, token: str) -> bool:
        with self.lock:
            found = self.access.get(token)
            return found is not None and found.shop == domain and not _expired(found)

    # -- request handling --------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        headers = {name.lower(): value for name, value in request.headers.items()}
        status, reply_headers, body = self.handle(
            request.method, environ["RAW_URI"], headers, request.get_data()
        )
        return Response(body, status, reply_headers)(environ, start_response)

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path)
        segments = parts.path.strip("/").split("/")
        if len(segments) < 3 or segments[0] != "shops":
            return _json(404, {"errors": "Not Found"})
        shop, route = segments[1], "/" + "/".join(segments[2:])
        query = dict(parse_qsl(parts.query))
        with self.lock:
            if method == "GET" and route == "/admin/oauth/authorize":
                return self._authorize(shop, query)
            if method == "POST" and route == "/admin/oauth/access_token":
                return self._token(shop, headers, body)
            if (
                method == "POST"
                and route.startswith("/admin/api/")
                and route.endswith("/graphql.json")
            ):
                return self._graphql(shop, headers, body)
            return _json(404, {"errors": "Not Found"})

    def _record(self, kind: str, shop: str, **extra: Any) -> None:
        self.requests.append({"kind": kind, "shop": shop, "time": time.time(), **extra})

    def _authorize(self, shop: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self._record("authorize", shop, query=query)
        if query.get("client_id") != self.api_key or not query.get("redirect_uri"):
            return _json(400, {"errors": "invalid client_id or redirect_uri"})
        code = secrets.token_hex(16)
        self.codes[code] = shop
        params = signed_query(
            {
                "code": code,
                "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvdGVzdA",
                "shop": shop,
                "state": query.get("state", ""),
                "timestamp": str(int(time.time())),
            },
            self.secret,
        )
        self.last_callback_params = params
        return 302, {"Location": f"{query['redirect_uri']}?{urlencode(params)}"}, b""

    def _token(
        self, shop: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if headers.get("content-type", "").startswith("application/json"):
            form = json.loads(body or b"{}")
        else:
            form = dict(parse_qsl(body.decode()))
        grant = form.get("grant_type", "authorization_code")
        kind = {"refresh_token": "refresh", TOKEN_EXCHANGE: "token_exchange"}.get(grant, "token")
        self._record(kind, shop, form={k: v for k, v in form.items() if k != "client_secret"})
        if form.get("client_id") != self.api_key or form.get("client_secret") != self.secret:
            return _json(401, {"error": "invalid_client"})
        if grant == "refresh_token":
            old = self.refresh.pop(form.get("refresh_token", ""), None)
            if old is None or old.shop != shop or _expired(old):
                return _json(400, {"error": "invalid_grant"})
            return self._issue(shop, expiring=True)
        if grant == TOKEN_EXCHANGE:
            if not self._valid_session_token(shop, form):
                return _json(400, {"error": "invalid_subject_token"})
            return self._issue(shop, expiring=form.get("expiring") in ("1", 1, True))
        if self.codes.pop(form.get("code", ""), None) != shop:
            return _json(400, {"error": "invalid_request", "error_description": "code is invalid"})
        return self._issue(shop, expiring=form.get("expiring") in ("1", 1, True))

    def _valid_session_token(self, shop: str, form: dict[str, Any]) -> bool:
        """Shopify's checks of a token exchange's subject: an ID token of this app and shop."""
        if form.get("subject_token_type") != ID_TOKEN:
            return False
        if form.get("requested_token_type") != OFFLINE_ACCESS_TOKEN:
            return False
        try:
            claims = jwt.decode(
                str(form.get("subject_token", "")),
                self.secret,
                algorithms=["HS256"],
                audience=self.api_key,
                options={"require": ["exp", "dest"]},
            )
        except jwt.PyJWTError:
            return False
        return urlsplit(str(claims["dest"])).hostname == shop

    def _issue(self, shop: str, *, expiring: bool) -> tuple[int, dict[str, str], bytes]:
        access = "shpat_" + secrets.token_hex(16)
        scope = (
            self.granted_scope
            if self.granted_scope is not None
            else "read_orders,read_checkouts,read_customers,read_fulfillments,read_products"
        )
        now = time.time()
        body: dict[str, Any] = {"access_token": access, "scope": scope}
        self.access[access] = _Token(shop, now + self.access_seconds if expiring else None)
        if expiring:
            refresh = "shprt_" + secrets.token_hex(16)
            self.refresh[refresh] = _Token(shop, now + REFRESH_SECONDS)
            body.update(
                expires_in=self.access_seconds,
                refresh_token=refresh,
                refresh_token_expires_in=REFRESH_SECONDS,
            )
        return _json(200, body)

    def _graphql(
        self, shop: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        request = json.loads(body or b"{}")
        operation = request.get("operationName") or "?"
        variables = request.get("variables") or {}
        token = self.access.get(headers.get("x-shopify-access-token", ""))
        if token is None or token.shop != shop or _expired(token):
            self._record(operation, shop, variables=variables, status=401)
            return _json(401, {"errors": "[API] Invalid API key or access token"})
        if self._fail_next:
            status = self._fail_next.pop(0)
            self._record(operation, shop, variables=variables, status=status)
            return _json(status, {"errors": "Service Unavailable"})
        kind = self._throttled(operation)
        if kind is not None:
            self._record(
                operation, shop, variables=variables, status=429 if kind == "429" else "THROTTLED"
            )
            if kind == "429":
                return (
                    429,
                    {"Content-Type": "application/json", "Retry-After": "0.05"},
                    b'{"errors":"Throttled"}',
                )
            status = {**THROTTLE_STATUS, "currentlyAvailable": 0.0}
            return _json(
                200,
                {
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": {"cost": {"requestedQueryCost": 5, "throttleStatus": status}},
                },
            )
        self._record(operation, shop, variables=variables, status=200)
        state = self.shop_unlocked(shop)
        handler = {
            "WebhookSubscriptions": self._list_subs,
            "WebhookSubscriptionCreate": self._create_sub_op,
            "WebhookSubscriptionDelete": self._delete_sub,
            "Orders": self._orders,
            "ReconcileOrders": self._orders_by_update,
            "CustomerOrderCount": self._customer,
            "ProductDetails": self._products,
        }.get(operation)
        if handler is None:
            return _json(200, {"errors": [{"message": f"unknown operation {operation}"}]})
        data = handler(state, variables)
        cost = {"requestedQueryCost": 10, "actualQueryCost": 10, "throttleStatus": THROTTLE_STATUS}
        return _json(200, {"data": data, "extensions": {"cost": cost}})

    def _throttled(self, operation: str) -> str | None:
        """The kind of throttling this call gets, or None (see throttle_next)."""
        for rule in self._throttle_next:
            if rule.operation not in (None, operation):
                continue
            if rule.after > 0:
                rule.after -= 1
                return None
            rule.remaining -= 1
            if rule.remaining <= 0:
                self._throttle_next.remove(rule)
            return rule.kind
        return None

    def _list_subs(self, state: ShopState, variables: dict[str, Any]) -> dict[str, Any]:
        nodes = list(state.subscriptions.values())
        return {
            "webhookSubscriptions": {
                "nodes": nodes,
                "pageInfo": {"hasNextPage": False, "endCursor": None},
            }
        }

    def _create_sub(self, state: ShopState, topic: str, uri: str) -> dict[str, str]:
        sub = {
            "id": f"gid://shopify/WebhookSubscription/{next(self._ids)}",
            "topic": topic,
            "uri": uri,
        }
        state.subscriptions[sub["id"]] = sub
        return sub

    def _create_sub_op(self, state: ShopState, variables: dict[str, Any]) -> dict[str, Any]:
        topic, uri = variables["topic"], variables["sub"]["uri"]
        if any(s["topic"] == topic and s["uri"] == uri for s in state.subscriptions.values()):
            errors = [
                {
                    "field": ["webhookSubscription", "uri"],
                    "message": "Address for this topic has already been taken",
                }
            ]
            return {
                "webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": errors}
            }
        sub = self._create_sub(state, topic, uri)
        return {"webhookSubscriptionCreate": {"webhookSubscription": sub, "userErrors": []}}

    def _delete_sub(self, state: ShopState, variables: dict[str, Any]) -> dict[str, Any]:
        removed = state.subscriptions.pop(variables["id"], None)
        errors = (
            [] if removed else [{"field": ["id"], "message": "Webhook subscription does not exist"}]
        )
        return {
            "webhookSubscriptionDelete": {
                "deletedWebhookSubscriptionId": variables["id"] if removed else None,
                "userErrors": errors,
            }
        }

    def _orders(self, state: ShopState, variables: dict[str, Any]) -> dict[str, Any]:
        orders = [o for o in state.orders if _matches(o, variables.get("query"))]
        start = int(variables.get("after") or 0)
        first = int(variables.get("first") or 50)
        page = orders[start : start + first]
        end = start + len(page)
        info = {
            "hasNextPage": end < len(orders),
            "endCursor": str(end) if page else variables.get("after"),
        }
        return {"orders": {"nodes": page, "pageInfo": info}}

    def _orders_by_update(self, state: ShopState, variables: dict[str, Any]) -> dict[str, Any]:
        """orders(sortKey: UPDATED_AT, query: "updated_at:>=... created_at:>=...")."""
        orders = [o for o in state.orders if _matches(o, variables.get("query"))]
        orders.sort(key=lambda o: (_parse(o["updatedAt"]), int(o["legacyResourceId"])))
        start = int(variables.get("after") or 0)
        page = orders[start : start + int(variables.get("first") or 50)]
        end = start + len(page)
        info = {
            "hasNextPage": end < len(orders),
            "endCursor": str(end) if page else variables.get("after"),
        }
        return {"orders": {"nodes": page, "pageInfo": info}}

    def _products(self, state: ShopState, variables: dict[str, Any]) -> dict[str, Any]:
        ids = [str(gid).rsplit("/", 1)[-1] for gid in variables.get("ids") or []]
        return {"nodes": [state.products.get(product_id) for product_id in ids]}

    def add_product(
        self,
        domain: str,
        product_id: int,
        *,
        handle: str,
        product_type: str = "",
        tags: tuple[str, ...] = (),
        image_url: str | None = None,
        published: bool = True,
    ) -> None:
        """Add a product (as the Admin API's Product node) to the shop's catalogue."""
        with self.lock:
            self.shop_unlocked(domain).products[str(product_id)] = {
                "legacyResourceId": str(product_id),
                "handle": handle,
                "productType": product_type,
                "tags": list(tags),
                "onlineStoreUrl": f"https://{domain}/products/{handle}" if published else None,
                "featuredImage": {"url": image_url} if image_url else None,
            }

    def _customer(self, state: ShopState, variables: dict[str, Any]) -> dict[str, Any]:
        customer_id = str(variables["id"]).rsplit("/", 1)[-1]
        count = sum(
            1 for o in state.orders if (o["customer"] or {}).get("legacyResourceId") == customer_id
        )
        return {"customer": {"numberOfOrders": str(count)} if count else None}


def _matches(order: dict[str, Any], search: str | None) -> bool:
    """The subset of Shopify's search syntax the connector uses: created_at or updated_at
    with >=, >, <= or < and a time."""
    fields = {"created_at": "createdAt", "updated_at": "updatedAt"}
    for term in (search or "").split():
        name, _, condition = term.partition(":")
        if name not in fields:
            continue
        value = condition.lstrip("<>=").strip("'\"")
        op = condition[: len(condition) - len(condition.lstrip("<>="))]
        when, bound = _parse(order[fields[name]]), _parse(value)
        if (
            (op == ">=" and when < bound)
            or (op == "<" and when >= bound)
            or (op == ">" and when <= bound)
        ):
            return False
        if op == "<=" and when > bound:
            return False
    return True


@dataclass
class _Throttling:
    kind: str  # "graphql" (THROTTLED) or "429"
    operation: str | None  # None: any operation
    after: int  # calls of the operation answered normally first
    remaining: int


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _expired(token: _Token) -> bool:
    return token.expires_at is not None and token.expires_at <= time.time()


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
