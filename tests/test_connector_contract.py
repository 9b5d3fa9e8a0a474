"""One contract suite for every connector: the same verbs return the same platform-neutral records.

Each platform's sandbox store is seeded with the same small catalog through
its own Python API; the connector then reads it over real HTTP, and every
assertion below is the same for Shopify, WooCommerce and Squarespace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from vsc.connectors.base import Connector, Product, VariantRef
from vsc.connectors.shopify import ShopifyConnector
from vsc.connectors.squarespace import SquarespaceConnector
from vsc.connectors.woocommerce import WooCommerceConnector
from vsc.errors import AuthError, Unsupported
from vsc.sandbox.shopify import ShopifySandbox
from vsc.sandbox.squarespace import SquarespaceSandbox
from vsc.sandbox.woocommerce import WooCommerceSandbox

FAST = {"sleep": lambda s: None}


@dataclass
class Platform:
    name: str
    store: Any
    connector: Connector
    bad: Connector
    ids: dict[str, str]

    def edit_title(self, product_id: str, title: str) -> None:
        if self.name == "shopify":
            self.store.update_product(product_id, title=title)
        elif self.name == "woocommerce":
            self.store.update_product(int(product_id), name=title)
        else:
            self.store.update_product(product_id, name=title)

    def delete(self, product_id: str) -> None:
        self.store.delete_product(int(product_id) if self.name == "woocommerce" else product_id)


def seed_shopify(s: ShopifySandbox) -> dict[str, str]:
    tote = s.add_product(
        "Canvas Tote",
        variants=[{"sku": "TOTE-1", "price": "15.00", "available": 4}],
        images=["https://cdn.example/tote.jpg"],
        tags=["bags"],
    )
    beanie = s.add_product(
        "Wool Beanie",
        options={"Color": ["Red", "Blue"]},
        variants=[
            {"sku": "BEANIE-RED", "price": "12.00", "options": {"Color": "Red"}, "available": 3},
            {"sku": "BEANIE-BLU", "price": "12.00", "options": {"Color": "Blue"}, "tracked": False},
        ],
    )
    return {"tote": tote["id"], "beanie": beanie["id"]}


def seed_woocommerce(s: WooCommerceSandbox) -> dict[str, str]:
    tote = s.add_product(
        "Canvas Tote", sku="TOTE-1", price="15.00", stock=4, images=["https://cdn.example/tote.jpg"], tags=["bags"]
    )
    beanie = s.add_product(
        "Wool Beanie",
        attributes=[{"name": "Color", "options": ["Red", "Blue"]}],
        variations=[
            {"attributes": {"Color": "Red"}, "sku": "BEANIE-RED", "price": "12.00", "stock": 3},
            {"attributes": {"Color": "Blue"}, "sku": "BEANIE-BLU", "price": "12.00", "stock": None},
        ],
    )
    return {"tote": str(tote["id"]), "beanie": str(beanie["id"])}


def seed_squarespace(s: SquarespaceSandbox) -> dict[str, str]:
    tote = s.add_product(
        "Canvas Tote",
        [{"sku": "TOTE-1", "price": "15.00", "quantity": 4}],
        images=["https://cdn.example/tote.jpg"],
        tags=["bags"],
    )
    beanie = s.add_product(
        "Wool Beanie",
        [
            {"sku": "BEANIE-RED", "price": "12.00", "attributes": {"Color": "Red"}, "quantity": 3},
            {"sku": "BEANIE-BLU", "price": "12.00", "attributes": {"Color": "Blue"}, "unlimited": True},
        ],
        variant_attributes=["Color"],
    )
    return {"tote": tote["id"], "beanie": beanie["id"]}


@pytest.fixture(params=["shopify", "woocommerce", "squarespace"])
def platform(request):
    name = request.param
    if name == "shopify":
        store = ShopifySandbox(shop="vendor").start()
        ids = seed_shopify(store)
        conn = ShopifyConnector.open("v", store.url, store.token, **FAST)
        bad = ShopifyConnector.open("v", store.url, "shpat_nope", **FAST)
    elif name == "woocommerce":
        store = WooCommerceSandbox().start()
        ids = seed_woocommerce(store)
        conn = WooCommerceConnector.open("v", store.url, store.consumer_key, store.consumer_secret, **FAST)
        bad = WooCommerceConnector.open("v", store.url, store.consumer_key, "cs_wrong", **FAST)
    else:
        store = SquarespaceSandbox().start()
        ids = seed_squarespace(store)
        conn = SquarespaceConnector.open("v", store.api_key, store.url, **FAST)
        bad = SquarespaceConnector.open("v", "wrong-key", store.url, **FAST)
    yield Platform(name, store, conn, bad, ids)
    store.stop()


def by_title(products) -> dict[str, Product]:
    return {p.title: p for p in products}


def test_check_describes_the_store(platform):
    info = platform.connector.check()
    assert info.name
    # Squarespace's Commerce APIs have no store-settings call that tells the currency; it is
    # known from the money objects of products and orders instead.
    assert info.currency == ("USD" if platform.name != "squarespace" else None)


def test_wrong_credentials_raise_auth_error_with_the_platforms_answer(platform):
    with pytest.raises(AuthError) as caught:
        platform.bad.check()
    assert str(caught.value)


def test_list_products_returns_the_same_records(platform):
    products = by_title(platform.connector.list_products(None))
    assert set(products) == {"Canvas Tote", "Wool Beanie"}
    tote, beanie = products["Canvas Tote"], products["Wool Beanie"]
    assert tote.id == platform.ids["tote"] and beanie.id == platform.ids["beanie"]
    assert tote.options == () and len(tote.variants) == 1
    (v,) = tote.variants
    assert (v.sku, v.price, v.options, v.available) == ("TOTE-1", Decimal("15.00"), (), 4)
    assert [i.src.split("?")[0] for i in tote.images] == ["https://cdn.example/tote.jpg"]
    assert "bags" in tote.tags and tote.status == "active"
    assert beanie.options == ("Color",)
    variants = {v.sku: v for v in beanie.variants}
    assert variants["BEANIE-RED"].options == (("Color", "Red"),) and variants["BEANIE-RED"].available == 3
    assert variants["BEANIE-BLU"].options == (("Color", "Blue"),) and variants["BEANIE-BLU"].available is None
    assert all(isinstance(v.price, Decimal) for v in beanie.variants)
    assert all(isinstance(v.id, str) for v in beanie.variants)


def test_get_products_leaves_out_missing_ids(platform):
    found = platform.connector.get_products([platform.ids["tote"]])
    assert list(found) == [platform.ids["tote"]]
    platform.delete(platform.ids["beanie"])
    found = platform.connector.get_products([platform.ids["tote"], platform.ids["beanie"]])
    assert list(found) == [platform.ids["tote"]]


def test_list_products_since_returns_only_what_changed(platform):
    time.sleep(1.1)
    since = datetime.now(UTC)
    time.sleep(1.1)
    platform.edit_title(platform.ids["tote"], "Canvas Tote XL")
    changed = list(platform.connector.list_products(since))
    assert [p.title for p in changed] == ["Canvas Tote XL"]


def test_deletions_are_reported_or_left_to_a_sweep(platform):
    since = datetime.now(UTC)
    platform.delete(platform.ids["beanie"])
    deleted = platform.connector.list_deleted_product_ids(since)
    if platform.name == "shopify":
        assert deleted == [platform.ids["beanie"]]
    else:
        assert deleted is None  # no deletion feed: the engine checks linked ids by itself


def test_read_stock_by_variant(platform):
    beanie = by_title(platform.connector.list_products(None))["Wool Beanie"]
    refs = [VariantRef(beanie.id, v.id) for v in beanie.variants]
    levels = platform.connector.read_stock(refs)
    assert {levels[r].available for r in refs} == {3, None}


def test_operations_a_platform_cannot_do_raise_unsupported(platform):
    if platform.name == "squarespace":
        with pytest.raises(Unsupported, match="squarespace cannot"):
            platform.connector.cancel_order("0" * 24)
        with pytest.raises(Unsupported):
            platform.connector.update_order("0" * 24, {"note": "x"})
    if platform.name != "shopify":
        from vsc.connectors.base import ListingDraft

        with pytest.raises(Unsupported):
            platform.connector.create_listing(ListingDraft(title="x"))
