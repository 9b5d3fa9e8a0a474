"""Connectors: one per platform, all speaking the records of `vsc.connectors.base`."""

from __future__ import annotations

from typing import Any

from vsc import secrets
from vsc.connectors.base import Connector
from vsc.errors import UsageError

PLATFORMS = ("shopify", "woocommerce", "squarespace")


def open_connector(store: Any, **session_kw: Any) -> Connector:
    """Open the connector of a store row (`vsc.state.StoreRow`), fetching its secrets now.

    Secrets are resolved here, at the last moment, from the keyring or the
    environment; they live only in the connector's HTTP session. The store's TLS
    rule (`StoreRow.tls_verify`) goes to the session too.
    """
    values = secrets.resolve(store.name, store.secret_ref)
    session_kw.setdefault("verify", getattr(store, "tls_verify", True))
    if store.platform == "shopify":
        from vsc.connectors.shopify import ShopifyConnector

        return ShopifyConnector.open(store.name, store.url, values["token"], **session_kw)
    if store.platform == "woocommerce":
        from vsc.connectors.woocommerce import WooCommerceConnector

        return WooCommerceConnector.open(store.name, store.url, values["key"], values["secret"], **session_kw)
    if store.platform == "squarespace":
        from vsc.connectors.squarespace import SquarespaceConnector

        return SquarespaceConnector.open(store.name, values["api_key"], store.url, **session_kw)
    raise UsageError(f"{store.name}: unknown platform {store.platform!r}")
