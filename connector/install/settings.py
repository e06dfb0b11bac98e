"""The merchant's settings page (Customer.io workspace, order topic) and data-request downloads."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from connector.csrf import check_csrf
from connector.customerio import TrackClient, track_base_url
from connector.feed_health import advise, format_lag, plain_failures
from connector.install import merchant
from connector.install.pages import app_runtime, bad_request, page
from connector.install.token_exchange import install_if_needed
from connector.runtime import Runtime
from connector.shop_domain import normalize_shop_domain
from connector.statuses import ShopStatus
from connector.storage import health, privacy, shops
from connector.storage.db import transaction
from connector.storage.models import PrivacyExport, Shop
from connector.timeutil import utcnow
from jobs import queue
from webhooks.topics import ORDER_TOPIC_CHOICES

blueprint = Blueprint("settings", __name__)
blueprint.register_error_handler(400, bad_request)
blueprint.after_request(merchant.frame_only_in_admin)

SIGN_IN = ("Sign in from Shopify", "Open the connector from your Shopify admin.")


def _merchant_shop(rt: Runtime) -> str | None:
    shop = merchant.current_shop(rt.settings)
    requested = request.args.get("shop")
    if shop and requested and not _is_shop(requested, shop):
        return None  # a session never reaches another shop's settings
    g.merchant_shop = shop
    return shop


def _is_shop(requested: str, shop: str) -> bool:
    try:
        return normalize_shop_domain(requested) == shop
    except ValueError:
        return False


def _form_values(form: Any, row: Shop) -> dict[str, Any]:
    return {
        "site_id": form.get("site_id", "").strip(),
        "api_key": form.get("api_key", "").strip(),
        "region": form.get("region", row.cio_region),
        "order_topic": form.get("order_topic", row.order_topic),
        "include_test_orders": form.get("include_test_orders") == "on",
    }


def _shown(row: Shop) -> dict[str, Any]:
    return {
        "site_id": row.cio_site_id or "",
        "api_key": "",
        "region": row.cio_region or "us",
        "order_topic": row.order_topic or "orders/create",
        "include_test_orders": bool(row.include_test_orders),
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


def _customerio_settings(rt: Runtime, values: dict[str, Any]) -> shops.CustomerioSettings:
    return shops.CustomerioSettings(
        site_id=values["site_id"],
        api_key_encrypted=rt.secrets.encrypt(values["api_key"]) if values["api_key"] else None,
        region=values["region"],
        order_topic=values["order_topic"],
        include_test_orders=values["include_test_orders"],
    )


def _exports(rows: list[PrivacyExport]) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "created_at": r.created_at,
            "customer_id": r.customer_id,
            "request": r.data_request_id,
        }
        for r in rows
    ]


@blueprint.route("/settings", methods=["GET", "POST"])
def edit() -> ResponseReturnValue:
    """Show and save the shop's Customer.io settings; "Test connection" saves nothing."""
    rt = app_runtime()
    shop = _merchant_shop(rt)
    if shop is None:
        return page(401, *SIGN_IN)
    token = merchant.session_token()
    if token is None:  # a form post of the plain page: it carries the cookie to protect
        check_csrf()
    else:  # App Bridge's fetch (no cookie to forge); install by token exchange if needed
        refused = install_if_needed(rt, shop, token)
        if refused is not None:
            return refused
    with transaction(rt.sessions) as db:
        row = shops.get_shop(db, shop)
        if row is None or row.status == ShopStatus.UNINSTALLED:
            if token is None and request.method == "GET":
                # Installed by Shopify (managed installation), never through our OAuth: this
                # page gets App Bridge's session token and sends it back for the exchange.
                api_key = rt.settings.shopify_api_key
                return render_template("merchant/installing.html", api_key=api_key), 200
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
                shops.save_customerio_settings(db, shop, _customerio_settings(rt, values))
        exports = _exports(privacy.recent_exports(db, shop))
        status, status_reason = row.status, row.status_reason
        feed = health.feed_health(db, shop)
    if request.method == "POST" and not errors and request.form.get("action") != "test":
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER)
        return redirect(url_for("settings.edit", saved=1))
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
        api_key=rt.settings.shopify_api_key,
        feed=feed,
        advice=advise(feed, utcnow()),
        failures=plain_failures(feed.failures),
        format_lag=format_lag,
    ), (200 if not errors else 400)


@blueprint.get("/settings/privacy/<int:export_id>")
def privacy_export(export_id: int) -> ResponseReturnValue:
    """Download one customers/data_request export of the signed-in merchant's shop."""
    rt = app_runtime()
    shop = _merchant_shop(rt)
    if shop is None:
        return page(401, *SIGN_IN)
    with rt.sessions() as db:
        export = privacy.get_export(db, export_id)
        if export is None or export.shop_domain != shop:
            return page(404, "Not found", "There is no such data request for your store.")
        body = json.dumps(export.content, indent=2, sort_keys=True, default=str)
    headers = {
        "Content-Type": "application/json",
        "Content-Disposition": f"attachment; filename=data-request-{export_id}.json",
    }
    return body, 200, headers
