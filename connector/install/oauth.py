"""Merchant install: /auth/install -> Shopify's authorize page -> /auth/callback -> /settings.

Refusals render a plain page and store nothing. The callback's `state` is a nonce signed
with the app's secret key, kept in the browser's signed session (so it is bound to the
browser that started), registered in Redis and deleted there on use (so it works once).
Shopify's signed query is checked by connector/shopify/oauth.py.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from typing import Any

from flask import Blueprint, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis.exceptions import RedisError

from connector.config import Settings
from connector.install import merchant
from connector.install.finish import finish_install
from connector.install.pages import app_runtime, bad_request, install_refused, page
from connector.runtime import Runtime
from connector.shop_domain import normalize_shop_domain
from connector.shopify.errors import ShopifyError
from connector.shopify.oauth import permission_url, query_problem
from connector.shopify.tokens import exchange_code

log = logging.getLogger(__name__)
blueprint = Blueprint("install", __name__)
blueprint.register_error_handler(400, bad_request)
blueprint.after_request(merchant.frame_only_in_admin)

STATE_TTL = 600
STATE_SESSION_KEY = "oauth_state"
NOT_A_SHOP = ("Not a Shopify store", "Install from your store's Shopify admin.")


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt="connector.oauth-state")


def _state_key(nonce: str) -> str:
    return f"connector:oauth:state:{nonce}"


def _shop_param(params: dict[str, str]) -> str | None:
    try:
        return normalize_shop_domain(params.get("shop", ""))
    except ValueError:
        return None


@blueprint.get("/auth/install")
def install() -> ResponseReturnValue:
    """Check the install link, then send the merchant to Shopify to approve the scopes."""
    rt = app_runtime()
    params = request.args.to_dict()
    shop = _shop_param(params)
    if shop is None:
        return page(400, *NOT_A_SHOP)
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
    rt = app_runtime()
    params = request.args.to_dict()
    shop = _shop_param(params)
    if shop is None:
        session.pop(STATE_SESSION_KEY, None)
        return page(400, *NOT_A_SHOP)
    problem = query_problem(params, rt.settings, time.time()) or state_problem(params, shop, rt)
    if problem:
        session.pop(STATE_SESSION_KEY, None)
        log.info("install callback refused shop=%s: %s", shop, problem)
        return page(401, "Install not completed", f"Refused: {problem}. Nothing was saved.")
    if not params.get("code"):
        return page(400, "Install not completed", "Shopify sent no approval code.")
    try:
        tokens = exchange_code(rt.settings, shop, params["code"])
    except ShopifyError as exc:
        return install_refused(shop, exc)
    refused = finish_install(rt, shop, tokens)
    if refused is not None:
        return refused
    merchant.start(shop)
    return redirect(url_for("settings.edit"))
