"""The GraphQL documents the Admin API client sends (one named operation each)."""

LIST_SUBSCRIPTIONS = """
query WebhookSubscriptions($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id topic uri }
  }
}"""

CREATE_SUBSCRIPTION = """
mutation WebhookSubscriptionCreate(
  $topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!
) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""

DELETE_SUBSCRIPTION = """
mutation WebhookSubscriptionDelete($id: ID!) {
  webhookSubscriptionDelete(id: $id) {
    deletedWebhookSubscriptionId
    userErrors { field message }
  }
}"""

ORDERS = """
query Orders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      legacyResourceId name createdAt processedAt email test currencyCode
      displayFinancialStatus sourceName
      customer { legacyResourceId email firstName lastName }
      totalPriceSet { shopMoney { amount currencyCode } }
      subtotalPriceSet { shopMoney { amount currencyCode } }
      totalDiscountsSet { shopMoney { amount currencyCode } }
      totalTaxSet { shopMoney { amount currencyCode } }
      lineItems(first: 50) {
        nodes {
          title quantity sku
          product { legacyResourceId }
          variant { legacyResourceId }
          originalUnitPriceSet { shopMoney { amount currencyCode } }
        }
      }
    }
  }
}"""

PRODUCT_DETAILS = """
query ProductDetails($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Product {
      legacyResourceId handle productType tags onlineStoreUrl
      featuredImage { url }
    }
  }
}"""

CUSTOMER_ORDER_COUNT = """
query CustomerOrderCount($id: ID!) {
  customer(id: $id) { numberOfOrders }
}"""

# Reconciliation: orders by last update, with what the order_placed mapping reads (the
# REST shape comes from webhooks/graphql_orders.py). Page and line counts keep the requested
# cost (about 10 x 80 points) under Shopify's 1,000-point limit for one query.
RECONCILE_PAGE_SIZE = 10
RECONCILE_ORDERS = """
fragment Money on MoneyBag {
  shopMoney { amount currencyCode }
  presentmentMoney { amount currencyCode }
}
query ReconcileOrders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id legacyResourceId name createdAt processedAt updatedAt cancelledAt
      email phone test currencyCode presentmentCurrencyCode displayFinancialStatus
      sourceName checkoutToken discountCodes
      customer { legacyResourceId email firstName lastName phone createdAt }
      shippingAddress { countryCodeV2 }
      totalPriceSet { ...Money }
      subtotalPriceSet { ...Money }
      totalDiscountsSet { ...Money }
      totalTaxSet { ...Money }
      totalShippingPriceSet { ...Money }
      lineItems(first: 20) {
        nodes {
          id title variantTitle vendor quantity sku
          product { legacyResourceId }
          variant { legacyResourceId }
          originalUnitPriceSet { ...Money }
          totalDiscountSet { ...Money }
        }
      }
    }
  }
}"""
