"""CSRF protection for the HTML forms: a per-session token, checked on every POST."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

SESSION_KEY = "_csrf_token"
FORM_FIELD = "csrf_token"


def csrf_token() -> str:
    """The session's token, created on first use; templates put it in a hidden field."""
    token = session.get(SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return str(token)


def check_csrf() -> None:
    """Abort with 400 unless the POSTed form carries the session's token."""
    if request.method != "POST":
        return
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FORM_FIELD) or request.headers.get("X-CSRF-Token")
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        abort(400, description="missing or invalid CSRF token")
