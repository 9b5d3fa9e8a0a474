"""Shopify inventory: levels by location, compare-and-set writes, deltas, activation."""

from __future__ import annotations

from vsc.connectors.shopify.client import ShopifyClient


class InventoryMixin:
    """Inventory verbs of `ShopifyConnector` (platforms/shopify.md §7.4–7.5, §8)."""

    client: ShopifyClient
    name: str
