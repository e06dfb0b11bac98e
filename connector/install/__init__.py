"""Merchant install: OAuth, the settings page, the merchant's session."""
