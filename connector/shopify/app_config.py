"""The app configuration file (`shopify.app.toml`, deployed with `shopify app deploy`):
rendered from the settings, and read back to see which subscriptions it declares.

With WEBHOOK_SUBSCRIPTIONS=app the file declares one subscription per topic the connector
needs ("app-specific" subscriptions, the same for every shop); with "api" it declares only
the privacy topics, which cannot be subscribed through the API, and the install creates
the others per shop (declaring them too would deliver every webhook twice).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from connector.config import Settings
from connector.shopify.oauth import SCOPES
from webhooks.topics import PRIVACY_TOPICS, SUBSCRIBED_TOPICS, Topic

APP_NAME = "Customer.io purchase feed"
EMBEDDED_PAGE = "/settings"  # what Shopify opens in the admin
CALLBACK = "/auth/callback"  # the authorization-code grant (non-embedded installs)
COMPLIANCE_TOPICS = tuple(topic for topic in Topic if topic in PRIVACY_TOPICS)


def webhook_address(settings: Settings) -> str:
    """Where Shopify posts the webhooks: APP_URL/webhooks/shopify."""
    return settings.app_url.rstrip("/") + "/webhooks/shopify"


def _string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _strings(values: list[str]) -> str:
    return "[" + ", ".join(_string(v) for v in values) + "]"


def render_app_config(settings: Settings) -> str:
    """The shopify.app.toml text for these settings."""
    base = settings.app_url.rstrip("/")
    address = webhook_address(settings)
    lines = [
        "# Rendered by `connector shopify config` from the connector's settings: do not edit,",
        "# render it again. Deploy it with `shopify app deploy` (Shopify CLI).",
        f"# WEBHOOK_SUBSCRIPTIONS={settings.webhook_subscriptions}",
        f"client_id = {_string(settings.shopify_api_key)}",
        f"name = {_string(APP_NAME)}",
        f"application_url = {_string(base + EMBEDDED_PAGE)}",
        "embedded = true",
        "",
        "[access_scopes]",
        f"scopes = {_string(','.join(SCOPES))}",
        "",
        "[auth]",
        f"redirect_urls = {_strings([base + CALLBACK])}",
        "",
        "[webhooks]",
        f"api_version = {_string(settings.shopify_api_version)}",
    ]
    if settings.webhook_subscriptions == "app":
        for topic in SUBSCRIBED_TOPICS:
            lines += [
                "",
                "[[webhooks.subscriptions]]",
                f"topics = {_strings([topic.value])}",
                f"uri = {_string(address)}",
            ]
    else:
        lines += ["", "# The install creates the other subscriptions per shop (GraphQL)."]
    lines += [
        "",
        "[[webhooks.subscriptions]]",
        f"compliance_topics = {_strings([topic.value for topic in COMPLIANCE_TOPICS])}",
        f"uri = {_string(address)}",
    ]
    return "\n".join(lines) + "\n"


def declared_topics(text: str, address: str) -> set[str]:
    """The topics an app configuration declares at `address` (compliance topics included).

    Raises ValueError when the text is not TOML.
    """
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not TOML: {exc}") from exc
    found: set[str] = set()
    for sub in (config.get("webhooks") or {}).get("subscriptions") or []:
        if isinstance(sub, dict) and sub.get("uri") == address:
            for key in ("topics", "compliance_topics"):
                found.update(str(topic) for topic in sub.get(key) or [])
    return found


def read_declared_topics(path: Path, address: str) -> set[str]:
    """declared_topics of the file at `path`; raises ValueError when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({type(exc).__name__})") from exc
    return declared_topics(text, address)
