"""Who a shopper is inside a shop: the Shopify customer id first, the email second. Pure."""

from __future__ import annotations

from typing import Any


def normalize_email(value: Any) -> str | None:
    """An email address trimmed and lower-cased, or None when there is none."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().lower()


def person_key(customer_id: Any, email: Any) -> str | None:
    """The key the ledger and Customer.io know a shopper by; None when unidentifiable.

    The customer id wins because it survives an email change; a guest is known by email.
    """
    if customer_id not in (None, ""):
        return str(customer_id)
    return normalize_email(email)
