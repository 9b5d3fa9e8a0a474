"""The Shopify connector: Admin GraphQL API 2026-04 only (platforms/shopify.md)."""

from vsc.connectors.shopify.connector import ShopifyConnector

__all__ = ["ShopifyConnector"]
