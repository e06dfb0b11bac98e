"""What every merchant-facing view shares: the app's runtime and the plain refusal page."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, render_template
from flask.typing import ResponseReturnValue

from connector.runtime import Runtime
from connector.shopify.errors import ShopifyAuthError, ShopifyError

log = logging.getLogger(__name__)


def app_runtime() -> Runtime:
    """The runtime `create_app` plugged into the running app."""
    runtime: Runtime = current_app.extensions["connector"]
    return runtime


def page(status: int, title: str, message: str) -> ResponseReturnValue:
    """The merchant-facing refusal: a plain page saying what went wrong and what to do."""
    return render_template("merchant/error.html", title=title, message=message), status


def bad_request(error: Any) -> ResponseReturnValue:
    """A 400 (a missing CSRF token, a malformed form) as the merchant's refusal page."""
    return page(400, "Request refused", str(getattr(error, "description", "bad request")))


def install_refused(shop: str, exc: ShopifyError) -> ResponseReturnValue:
    """An install Shopify refused (400) or could not be reached for (502), logged by shop."""
    if isinstance(exc, ShopifyAuthError):
        log.info("install refused by Shopify shop=%s: %s", shop, exc.reason)
        return page(400, "Install not completed", "Shopify did not accept the approval.")
    log.warning("install failed shop=%s: %s", shop, exc.reason)
    return page(502, "Install not completed", "Shopify could not be reached. Try again.")
