"""The lengths of the stored identifiers, in one place. Pure.

storage/models.py sizes its columns with these, and the webhook door refuses a longer value
with a 400 before the insert: PostgreSQL would refuse it (and the door would answer 503, so
Shopify would retry it forever) while SQLite would quietly store it.
"""

from __future__ import annotations

SHOP_DOMAIN = 255
TOPIC = 64
SHOPIFY_EVENT_ID = 128
WEBHOOK_ID = 128
API_VERSION = 16
RESOURCE_KEY = 128  # the order id or checkout token a delivery is about
