"""Shopify orders: read merchant orders, push orders into a vendor's Shopify store, cancel, edit."""

from __future__ import annotations

from vsc.connectors.shopify.client import ShopifyClient


class OrdersMixin:
    """Order verbs of `ShopifyConnector` (platforms/shopify.md §7.6–7.9, §7.12)."""

    client: ShopifyClient
    name: str
