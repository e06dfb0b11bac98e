"""The Shopify webhook topics the connector handles, and what each one feeds. Pure."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    """A webhook topic as Shopify names it in the `X-Shopify-Topic` header."""

    ORDERS_CREATE = "orders/create"
    ORDERS_PAID = "orders/paid"
    ORDERS_UPDATED = "orders/updated"
    ORDERS_CANCELLED = "orders/cancelled"
    REFUNDS_CREATE = "refunds/create"
    FULFILLMENTS_CREATE = "fulfillments/create"
    PRODUCTS_UPDATE = "products/update"  # refreshes the cached product details
    CHECKOUTS_CREATE = "checkouts/create"
    CHECKOUTS_UPDATE = "checkouts/update"
    CUSTOMERS_CREATE = "customers/create"  # profile and consent changes without an order
    CUSTOMERS_UPDATE = "customers/update"
    APP_UNINSTALLED = "app/uninstalled"
    CUSTOMERS_DATA_REQUEST = "customers/data_request"
    CUSTOMERS_REDACT = "customers/redact"
    SHOP_REDACT = "shop/redact"

    @property
    def graphql_name(self) -> str:
        """The Admin API's WebhookSubscriptionTopic value (ORDERS_CREATE for orders/create)."""
        return self.name


ORDER_PLACING_TOPICS = frozenset({Topic.ORDERS_CREATE, Topic.ORDERS_PAID, Topic.ORDERS_UPDATED})
CHECKOUT_TOPICS = frozenset({Topic.CHECKOUTS_CREATE, Topic.CHECKOUTS_UPDATE})
# A customer record changed: an identify-only profile update (no event is tracked).
CUSTOMER_TOPICS = frozenset({Topic.CUSTOMERS_CREATE, Topic.CUSTOMERS_UPDATE})
# What happens to an order after it was placed: each yields its own event, once.
ORDER_LIFECYCLE_TOPICS = frozenset(
    {Topic.ORDERS_CANCELLED, Topic.REFUNDS_CREATE, Topic.FULFILLMENTS_CREATE}
)
PRIVACY_TOPICS = frozenset(
    {Topic.CUSTOMERS_DATA_REQUEST, Topic.CUSTOMERS_REDACT, Topic.SHOP_REDACT}
)
LIFECYCLE_TOPICS = PRIVACY_TOPICS | {Topic.APP_UNINSTALLED}  # handled alone, in arrival order
KNOWN_TOPICS = frozenset(Topic)

# What the install subscribes each shop to. The privacy topics cannot be subscribed through
# the API: they are declared in the app's configuration.
SUBSCRIBED_TOPICS: tuple[Topic, ...] = tuple(
    topic for topic in Topic if topic not in PRIVACY_TOPICS
)

ORDER_TOPIC_CHOICES = (Topic.ORDERS_CREATE.value, Topic.ORDERS_PAID.value)  # places an order
