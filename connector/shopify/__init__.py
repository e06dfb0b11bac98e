"""Shopify's Admin API at the edge: OAuth helpers, expiring tokens, GraphQL."""
