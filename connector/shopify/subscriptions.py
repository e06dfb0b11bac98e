"""The shop's webhook subscriptions: made by the install, re-made by reconciliation."""

from __future__ import annotations

from connector.config import Settings
from connector.shopify.admin import AdminClient
from webhooks.topics import SUBSCRIBED_TOPICS


def webhook_address(settings: Settings) -> str:
    """Where Shopify posts the webhooks: APP_URL/webhooks/shopify."""
    return settings.app_url.rstrip("/") + "/webhooks/shopify"


def ensure_webhooks(client: AdminClient, settings: Settings) -> dict[str, int]:
    """Exactly one subscription per topic of SUBSCRIBED_TOPICS at the webhook address;
    returns how many were created, deleted and kept (see AdminClient.ensure_subscriptions)."""
    topics = [topic.graphql_name for topic in SUBSCRIBED_TOPICS]
    return client.ensure_subscriptions(webhook_address(settings), topics)
