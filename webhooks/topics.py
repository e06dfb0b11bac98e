"""The Shopify webhook topics the connector subscribes to and what each one feeds."""

ORDERS_CREATE = "orders/create"
ORDERS_PAID = "orders/paid"
ORDERS_UPDATED = "orders/updated"
ORDERS_CANCELLED = "orders/cancelled"
CHECKOUTS_CREATE = "checkouts/create"
CHECKOUTS_UPDATE = "checkouts/update"
APP_UNINSTALLED = "app/uninstalled"
CUSTOMERS_DATA_REQUEST = "customers/data_request"
CUSTOMERS_REDACT = "customers/redact"
SHOP_REDACT = "shop/redact"

ORDER_PLACING_TOPICS = frozenset({ORDERS_CREATE, ORDERS_PAID, ORDERS_UPDATED})
CHECKOUT_TOPICS = frozenset({CHECKOUTS_CREATE, CHECKOUTS_UPDATE})
PRIVACY_TOPICS = frozenset({CUSTOMERS_DATA_REQUEST, CUSTOMERS_REDACT, SHOP_REDACT})
LIFECYCLE_TOPICS = PRIVACY_TOPICS | {APP_UNINSTALLED}  # handled alone, in arrival order
KNOWN_TOPICS = ORDER_PLACING_TOPICS | CHECKOUT_TOPICS | {ORDERS_CANCELLED} | LIFECYCLE_TOPICS

ORDER_TOPIC_CHOICES = (ORDERS_CREATE, ORDERS_PAID)  # which topic places an order, per shop
