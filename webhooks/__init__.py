"""Everything about Shopify's webhooks: verification, mapping, the endpoint."""
