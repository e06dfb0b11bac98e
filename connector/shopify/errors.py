"""What a Shopify call can fail with; a `reason` holds no secret or personal data."""

from __future__ import annotations


class ShopifyError(Exception):
    """A Shopify call failed (GraphQL or user errors when no subclass fits)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ShopifyUnavailableError(ShopifyError):
    """Raised for timeouts, connection errors, 5xx and throttling that outlasted the retries."""


class ShopifyAuthError(ShopifyError):
    """Raised when Shopify refuses the code, the client credentials or the token (400-403)."""


class NotInstalledError(ShopifyError):
    """Raised when a shop has no stored access token (never installed, or uninstalled)."""
