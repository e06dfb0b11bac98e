"""Transport and framing headers: Secure cookies and HSTS on https, who may frame a page."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.wrappers import Response

from connector.config import Settings

HSTS = "max-age=31536000"  # a year; no includeSubDomains: the app does not own its parent domain
SHOPIFY_ADMIN = "https://admin.shopify.com"
# A session cookie is refused once this old (Flask checks its signed timestamp), whatever
# the browser keeps: a staff or merchant login lasts a working day at most.
SESSION_LIFETIME = timedelta(hours=12)


def serves_https(settings: Settings) -> bool:
    return urlsplit(settings.app_url).scheme == "https"


def transport_headers(settings: Settings) -> list[tuple[str, str]]:
    """The headers every answer carries: HSTS on an https APP_URL, none on plain http."""
    return [("Strict-Transport-Security", HSTS)] if serves_https(settings) else []


def secure_transport(app: Flask, settings: Settings) -> None:
    """On an https APP_URL: session cookies only over https, and HSTS on every answer (the
    webhook endpoint, which Flask does not serve, adds `transport_headers` itself).

    A plain-http APP_URL (the local demo) gets neither: browsers would drop a Secure cookie.
    """
    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if not serves_https(settings):
        return
    app.config["SESSION_COOKIE_SECURE"] = True

    @app.after_request
    def strict_transport(response: Response) -> Response:
        response.headers["Strict-Transport-Security"] = HSTS
        return response


def merchant_frame_ancestors(shop: str | None) -> str:
    """Merchant pages may be framed by the verified shop's admin only.

    Without a verified shop (a refusal page), only Shopify's admin may frame it: such a page
    holds nothing to click on, and the merchant sees "open from your admin" inside the admin
    rather than a blank frame.
    """
    sources = [f"https://{shop}", SHOPIFY_ADMIN] if shop else [SHOPIFY_ADMIN]
    return "frame-ancestors " + " ".join(sources)


def deny_framing(response: Response) -> Response:
    """No one may frame the page (the staff console)."""
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    response.headers["X-Frame-Options"] = "DENY"
    return response
