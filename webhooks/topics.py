"""The Shopify webhook topics the connector subscribes to and what each one feeds."""

ORDERS_CREATE = "orders/create"
ORDERS_PAID = "orders/paid"
ORDERS_UPDATED = "orders/updated"
ORDERS_CANCELLED = "orders/cancelled"
CHECKOUTS_CREATE = "checkouts/create"
CHECKOUTS_UPDATE = "checkouts/update"

ORDER_PLACING_TOPICS = frozenset({ORDERS_CREATE, ORDERS_PAID, ORDERS_UPDATED})
CHECKOUT_TOPICS = frozenset({CHECKOUTS_CREATE, CHECKOUTS_UPDATE})
KNOWN_TOPICS = ORDER_PLACING_TOPICS | CHECKOUT_TOPICS | {ORDERS_CANCELLED}

ORDER_TOPIC_CHOICES = (ORDERS_CREATE, ORDERS_PAID)  # which topic places an order, per shop
