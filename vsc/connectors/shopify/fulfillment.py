"""Shopify fulfillments: read a vendor's shipments, create and update them on the merchant's orders."""

from __future__ import annotations

from vsc.connectors.shopify.client import ShopifyClient


class FulfillmentMixin:
    """Fulfillment verbs of `ShopifyConnector` (platforms/shopify.md §7.10–7.11)."""

    client: ShopifyClient
    name: str
