"""What every merchant-facing view shares: the app's runtime and the plain refusal page."""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template
from flask.typing import ResponseReturnValue

from connector.runtime import Runtime


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
