"""The shop's webhook subscriptions: made (or, in "app" mode, checked) by the install and
by reconciliation.

WEBHOOK_SUBSCRIPTIONS=api: the connector makes them, exactly one per topic, through GraphQL.
WEBHOOK_SUBSCRIPTIONS=app: they are declared in shopify.app.toml and Shopify keeps them;
nothing is created. Shopify's `webhookSubscriptions` query lists only shop-level
subscriptions, never the declared ones, so the check reads the declared ones from the app
configuration file (SHOPIFY_APP_CONFIG, the one deployed) and counts a shop-level
subscription at our address (one an "api" install made) as present too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from connector.config import Settings
from connector.shopify.admin import AdminClient
from connector.shopify.app_config import COMPLIANCE_TOPICS, read_declared_topics, webhook_address
from webhooks.topics import SUBSCRIBED_TOPICS

log = logging.getLogger(__name__)

__all__ = ["SubscriptionSync", "ensure_webhooks", "sync_webhooks", "webhook_address"]


@dataclass(frozen=True)
class SubscriptionSync:
    """What making or checking a shop's subscriptions found."""

    mode: str
    created: int = 0
    deleted: int = 0
    kept: int = 0
    missing: tuple[str, ...] = ()  # topics ("orders/create") with no subscription
    problem: str | None = None  # why the app configuration could not be read

    def report(self) -> str | None:
        """A plain sentence for logs and the reconciliation state, or None when all is well."""
        parts = []
        if self.missing:
            parts.append("subscriptions missing: " + ", ".join(self.missing))
        if self.problem:
            parts.append(f"app configuration: {self.problem}")
        return "; ".join(parts) or None


def ensure_webhooks(client: AdminClient, settings: Settings) -> dict[str, int]:
    """Exactly one subscription per topic of SUBSCRIBED_TOPICS at the webhook address;
    returns how many were created, deleted and kept (see AdminClient.ensure_subscriptions)."""
    topics = [topic.graphql_name for topic in SUBSCRIBED_TOPICS]
    return client.ensure_subscriptions(webhook_address(settings), topics)


def check_webhooks(client: AdminClient, settings: Settings, shop: str) -> SubscriptionSync:
    """The topics neither declared in the app configuration nor subscribed for the shop."""
    address = webhook_address(settings)
    problem = None
    try:
        declared = read_declared_topics(settings.shopify_app_config, address)
    except ValueError as exc:
        declared, problem = set(), str(exc)
    subscribed = client.webhook_subscriptions()
    shop_level = {sub["topic"] for sub in subscribed if sub.get("uri") == address}
    missing = [
        topic.value
        for topic in SUBSCRIBED_TOPICS
        if topic.value not in declared and topic.graphql_name not in shop_level
    ]
    missing += [topic.value for topic in COMPLIANCE_TOPICS if topic.value not in declared]
    result = SubscriptionSync("app", kept=len(shop_level), missing=tuple(missing), problem=problem)
    if result.report():
        log.warning("webhook subscriptions incomplete shop=%s: %s", shop, result.report())
    return result


def sync_webhooks(client: AdminClient, settings: Settings, shop: str) -> SubscriptionSync:
    """Make the shop's subscriptions ("api" mode) or check them ("app" mode)."""
    if settings.webhook_subscriptions == "app":
        return check_webhooks(client, settings, shop)
    counts = ensure_webhooks(client, settings)
    return SubscriptionSync("api", counts["created"], counts["deleted"], counts["kept"])
