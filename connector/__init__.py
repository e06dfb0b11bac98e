"""Shopify -> Customer.io purchase-feed connector: the application package."""
