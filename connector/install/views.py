"""Merchant install: /auth/install -> Shopify's authorize page -> /auth/callback -> /settings.

Refusals render a plain page and store nothing. The callback's `state` is a nonce signed
with the app's secret key, kept in the browser's signed session (so it is bound to the
browser that started), registered in Redis and deleted there on use (so it works once).
Query timestamps older than MAX_QUERY_AGE (5 minutes: both requests follow a click within
seconds; ShopifyAPI's own check allows a day, too long for a replay) are refused.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from typing import Any

import shopify
from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from connector.config import Settings
from connector.csrf import check_csrf
from connector.customerio import TrackClient, track_base_url
from connector.install import merchant as merchant_session
from connector.runtime import Runtime
from connector.shop_domain import SHOP_DOMAIN
from connector.shopify.admin import (
    SCOPES,
    AdminClient,
    ShopifyAuthError,
    ShopifyError,
    admin_base_url,
    exchange_code,
    token_columns,
)
from connector.statuses import ShopStatus
from connector.storage.db import transaction
from connector.storage.models import PrivacyExport, Shop
from connector.timeutil import utcnow
from jobs import privacy, queue
from webhooks.topics import ORDER_TOPIC_CHOICES, SUBSCRIBED_TOPICS

log = logging.getLogger(__name__)
blueprint = Blueprint("install", __name__)

MAX_QUERY_AGE = 300
MAX_CLOCK_SKEW = 60
STATE_TTL = 600
STATE_SESSION_KEY = "oauth_state"
_hmac_lock = threading.Lock()  # shopify.Session keeps the secret on the class


def _rt() -> Runtime:
    return current_app.extensions["connector"]


def page(status: int, title: str, message: str) -> ResponseReturnValue:
    """The merchant-facing refusal: a plain page saying what went wrong and what to do."""
    return render_template("merchant/error.html", title=title, message=message), status


def valid_shop(shop: str) -> bool:
    return bool(SHOP_DOMAIN.match(shop))


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


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt="connector.oauth-state")


def _state_key(nonce: str) -> str:
    return f"connector:oauth:state:{nonce}"


@blueprint.get("/auth/install")
def install() -> ResponseReturnValue:
    """Check the install link, then send the merchant to Shopify to approve the scopes."""
    rt = _rt()
    params = request.args.to_dict()
    shop = params.get("shop", "").strip().lower()
    if not valid_shop(shop):
        return page(400, "Not a Shopify store", "Install from your store's Shopify admin.")
    problem = query_problem(params, rt.settings, time.time())
    if problem:
        return page(401, "Install link not accepted", f"Refused: {problem}.")
    nonce = secrets.token_urlsafe(24)
    state = _serializer(rt.settings).dumps({"nonce": nonce, "shop": shop})
    try:
        rt.redis.set(_state_key(nonce), shop, ex=STATE_TTL)
    except RedisError:
        return page(503, "Install unavailable", "Please try again in a minute.")
    session[STATE_SESSION_KEY] = state
    return redirect(permission_url(rt.settings, shop, state))


def state_problem(params: dict[str, str], shop: str, rt: Runtime) -> str | None:
    """Why the callback's state is refused: not from this browser, forged, stale or reused."""
    expected = session.pop(STATE_SESSION_KEY, None)
    state = params.get("state", "")
    if not expected or not state or not hmac.compare_digest(str(expected), state):
        return "this approval did not start in this browser"
    try:
        data: dict[str, Any] = _serializer(rt.settings).loads(state, max_age=STATE_TTL)
    except BadSignature:
        return "the approval is forged or expired"
    if data.get("shop") != shop:
        return "the approval is for another store"
    try:
        fresh = rt.redis.delete(_state_key(str(data.get("nonce"))))
    except RedisError:
        return "the approval cannot be checked right now"
    return None if fresh else "this approval was already used"


@blueprint.get("/auth/callback")
def callback() -> ResponseReturnValue:
    """Verify Shopify's redirect, get tokens, subscribe webhooks, store the shop; or refuse."""
    rt = _rt()
    params = request.args.to_dict()
    shop = params.get("shop", "").strip().lower()
    if not valid_shop(shop):
        session.pop(STATE_SESSION_KEY, None)
        return page(400, "Not a Shopify store", "Install from your store's Shopify admin.")
    problem = query_problem(params, rt.settings, time.time()) or state_problem(params, shop, rt)
    if problem:
        session.pop(STATE_SESSION_KEY, None)
        log.info("install callback refused shop=%s: %s", shop, problem)
        return page(401, "Install not completed", f"Refused: {problem}. Nothing was saved.")
    if not params.get("code"):
        return page(400, "Install not completed", "Shopify sent no approval code.")
    try:
        tokens = exchange_code(rt.settings, shop, params["code"])
        missing = set(SCOPES) - _granted(tokens.scope)
        if missing:
            return page(
                403,
                "Permissions missing",
                "The connector needs read access to orders, checkouts and customers. "
                "Nothing was saved; install again and approve them.",
            )
        client = AdminClient(
            base_url=admin_base_url(rt.settings, shop),
            api_version=rt.settings.shopify_api_version,
            access_token=tokens.access_token,
            timeout=rt.settings.http_timeout_seconds,
        )
        client.ensure_subscriptions(
            webhook_address(rt.settings), [topic.graphql_name for topic in SUBSCRIBED_TOPICS]
        )
    except ShopifyAuthError as exc:
        log.info("install refused by Shopify shop=%s: %s", shop, exc.reason)
        return page(400, "Install not completed", "Shopify did not accept the approval.")
    except ShopifyError as exc:
        log.warning("install failed shop=%s: %s", shop, exc.reason)
        return page(502, "Install not completed", "Shopify could not be reached. Try again.")
    try:
        reinstalled, needs_history = _store_install(rt, shop, token_columns(rt.secrets, tokens))
    except SQLAlchemyError:
        return page(503, "Install not completed", "Nothing was saved. Try again in a minute.")
    _after_install(rt, shop, reinstalled, needs_history)
    merchant_session.start(shop)
    return redirect(url_for("install.settings_page"))


def webhook_address(settings: Settings) -> str:
    return settings.app_url.rstrip("/") + "/webhooks/shopify"


def _granted(scope: str) -> set[str]:
    granted = {s.strip() for s in scope.split(",") if s.strip()}
    return granted | {"read_" + s.removeprefix("write_") for s in granted}  # write implies read


def _store_install(rt: Runtime, shop: str, columns: dict[str, Any]) -> tuple[bool, bool]:
    """Save the token pair and (re)activate the shop in one transaction."""
    with transaction(rt.sessions) as session_:
        row = session_.get(Shop, shop) or Shop(domain=shop, status=ShopStatus.ACTIVE)
        reinstalled = row.status == ShopStatus.UNINSTALLED
        for name, value in columns.items():
            setattr(row, name, value)
        row.installed_at = utcnow()
        row.uninstalled_at = None
        if reinstalled:
            row.status, row.status_reason = ShopStatus.ACTIVE, None
            privacy.resume_after_reinstall(session_, shop)
        session_.add(row)
        return reinstalled, row.history_imported_at is None


def _after_install(rt: Runtime, shop: str, reinstalled: bool, needs_history: bool) -> None:
    log.info("shop installed shop=%s reinstall=%s", shop, reinstalled)
    try:
        if needs_history:
            Queue(rt.settings.queue_name, connection=rt.redis).enqueue(
                "jobs.tasks.import_history", shop, job_timeout=3600, failure_ttl=7 * 24 * 3600
            )
        if reinstalled:  # pending events waited while the shop was uninstalled
            queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER, shop)
            queue.kick(rt.redis, rt.settings.queue_name, queue.PROCESS, shop)
    except RedisError:
        log.warning("post-install jobs not queued shop=%s; the sweep resumes delivery", shop)


# -- the merchant's settings page ---------------------------------------------------------


@blueprint.errorhandler(400)
def bad_request(error: Any) -> ResponseReturnValue:
    return page(400, "Request refused", str(getattr(error, "description", "bad request")))


def _merchant_shop(rt: Runtime) -> str | None:
    shop = merchant_session.current_shop(rt.settings)
    requested = request.args.get("shop")
    if shop and requested and requested.strip().lower() != shop:
        return None  # a session never reaches another shop's settings
    return shop


def _form_values(form: Any, row: Shop) -> dict[str, Any]:
    return {
        "site_id": form.get("site_id", "").strip(),
        "api_key": form.get("api_key", "").strip(),
        "region": form.get("region", row.cio_region),
        "order_topic": form.get("order_topic", row.order_topic),
        "include_test_orders": form.get("include_test_orders") == "on",
    }


def _form_errors(values: dict[str, Any], has_key: bool) -> list[str]:
    errors = []
    if not values["site_id"]:
        errors.append("Enter your Customer.io site id.")
    if not values["api_key"] and not has_key:
        errors.append("Enter your Customer.io Track API key.")
    if values["region"] not in ("us", "eu"):
        errors.append("Choose the US or EU region.")
    if values["order_topic"] not in ORDER_TOPIC_CHOICES:
        errors.append("Choose when an order counts as placed.")
    return errors


def test_connection(
    rt: Runtime, values: dict[str, Any], stored_key: str | None
) -> tuple[bool, str]:
    """Ask Customer.io whether the site id and key are accepted (the region's endpoint)."""
    client = TrackClient(
        site_id=values["site_id"],
        api_key=values["api_key"] or stored_key or "",
        base_url=track_base_url(values["region"], rt.settings.customerio_track_url),
        timeout=rt.settings.http_timeout_seconds,
    )
    result = client.check_credentials()
    if result.outcome == "delivered":
        return True, "Connected: Customer.io accepted this site id and API key."
    if result.outcome == "rejected_credentials":
        return False, "Customer.io rejected this site id and API key."
    return False, f"Customer.io could not be reached ({result.reason or 'no answer'})."


@blueprint.route("/settings", methods=["GET", "POST"])
def settings_page() -> ResponseReturnValue:
    """Show and save the shop's Customer.io settings; "Test connection" saves nothing."""
    rt = _rt()
    shop = _merchant_shop(rt)
    if shop is None:
        return page(401, "Sign in from Shopify", "Open the connector from your Shopify admin.")
    check_csrf()
    with transaction(rt.sessions) as session_:
        row = session_.get(Shop, shop)
        if row is None or row.status == ShopStatus.UNINSTALLED:
            return page(404, "Not installed", "Install the connector from your Shopify admin.")
        stored_key = (
            rt.secrets.decrypt(row.cio_api_key_encrypted) if row.cio_api_key_encrypted else None
        )
        values = _form_values(request.form, row) if request.method == "POST" else _shown(row)
        message, ok, errors = request.args.get("saved") and "Settings saved.", True, []
        if request.method == "POST":
            errors = _form_errors(values, stored_key is not None)
            if not errors and request.form.get("action") == "test":
                ok, message = test_connection(rt, values, stored_key)
            elif not errors:
                _save(rt, row, values)
        exports = _exports(session_, shop)
        status, status_reason = row.status, row.status_reason
    if request.method == "POST" and not errors and request.form.get("action") != "test":
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER, shop)
        return redirect(url_for("install.settings_page", saved=1))
    # The stored key is never put in the page; a key typed into this very form is kept.
    return render_template(
        "merchant/settings.html",
        shop=shop,
        values=values,
        has_key=stored_key is not None,
        message=message,
        ok=ok,
        errors=errors,
        exports=exports,
        status=status,
        status_reason=status_reason,
        topics=ORDER_TOPIC_CHOICES,
    ), (200 if not errors else 400)


def _shown(row: Shop) -> dict[str, Any]:
    return {
        "site_id": row.cio_site_id or "",
        "api_key": "",
        "region": row.cio_region or "us",
        "order_topic": row.order_topic or "orders/create",
        "include_test_orders": bool(row.include_test_orders),
    }


def _save(rt: Runtime, row: Shop, values: dict[str, Any]) -> None:
    row.cio_site_id = values["site_id"]
    if values["api_key"]:
        row.cio_api_key_encrypted = rt.secrets.encrypt(values["api_key"])
    row.cio_region = values["region"]
    row.order_topic = values["order_topic"]
    row.include_test_orders = values["include_test_orders"]
    if row.status == ShopStatus.CREDENTIALS_REJECTED:
        row.status, row.status_reason = ShopStatus.ACTIVE, None


def _exports(session_: Any, shop: str) -> list[dict[str, Any]]:
    rows = session_.scalars(
        select(PrivacyExport)
        .where(PrivacyExport.shop_domain == shop)
        .order_by(PrivacyExport.created_at.desc())
        .limit(50)
    ).all()
    return [
        {
            "id": r.id,
            "created_at": r.created_at,
            "customer_id": r.customer_id,
            "request": r.data_request_id,
        }
        for r in rows
    ]


@blueprint.get("/settings/privacy/<int:export_id>")
def privacy_export(export_id: int) -> ResponseReturnValue:
    """Download one customers/data_request export of the signed-in merchant's shop."""
    rt = _rt()
    shop = _merchant_shop(rt)
    if shop is None:
        return page(401, "Sign in from Shopify", "Open the connector from your Shopify admin.")
    with rt.sessions() as session_:
        export = session_.get(PrivacyExport, export_id)
        if export is None or export.shop_domain != shop:
            return page(404, "Not found", "There is no such data request for your store.")
        body = json.dumps(export.content, indent=2, sort_keys=True, default=str)
    headers = {
        "Content-Type": "application/json",
        "Content-Disposition": f"attachment; filename=data-request-{export_id}.json",
    }
    return body, 200, headers
