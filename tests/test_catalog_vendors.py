"""The catalog stream for WooCommerce and Squarespace vendors, exactly as for Shopify vendors.

Driven through the real CLI against the sandbox stores over HTTP: publish,
link by SKU, edits, auto variants, deletions, and products Shopify cannot hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from vsc.sandbox.shopify import ShopifySandbox
from vsc.sandbox.squarespace import SquarespaceSandbox
from vsc.sandbox.woocommerce import WooCommerceSandbox


@dataclass
class Vendor:
    platform: str
    store: Any

    def add_shirt(self, *, attributes: int = 1) -> tuple[str, dict[str, str]]:
        """A shirt with Size S/M (plus extra single-value attributes); returns (product id, {sku: variant id})."""
        names = ["Size", "Color", "Fit", "Neck"][:attributes]
        extra = {n: "One" for n in names[1:]}
        if self.platform == "woocommerce":
            p = self.store.add_product(
                "Linen Shirt",
                attributes=[{"name": "Size", "options": ["S", "M"]}] + [{"name": n, "options": ["One"]} for n in extra],
                variations=[
                    {"attributes": {"Size": "S", **extra}, "sku": "SH-S", "price": "40.00", "stock": 5},
                    {"attributes": {"Size": "M", **extra}, "sku": "SH-M", "price": "40.00", "stock": 2},
                ],
                images=["https://cdn.example/shirt.jpg"],
                tags=["linen"],
                description="<p>Linen.</p>",
            )
            variations = {v["sku"]: str(v["id"]) for v in (self.store.variation(i) for i in p["variations"])}
            return str(p["id"]), variations
        p = self.store.add_product(
            "Linen Shirt",
            [
                {"sku": "SH-S", "price": "40.00", "attributes": {"Size": "S", **extra}, "quantity": 5},
                {"sku": "SH-M", "price": "40.00", "attributes": {"Size": "M", **extra}, "quantity": 2},
            ],
            variant_attributes=names,
            tags=["linen"],
            description="<p>Linen.</p>",
            images=["https://cdn.example/shirt.jpg"],
        )
        return p["id"], {v["sku"]: v["id"] for v in p["variants"]}

    def rename(self, pid: str, title: str) -> None:
        if self.platform == "woocommerce":
            self.store.update_product(int(pid), name=title)
        else:
            self.store.update_product(pid, name=title)

    def reprice(self, pid: str, vid: str, price: str) -> None:
        if self.platform == "woocommerce":
            self.store.update_variation(int(pid), int(vid), regular_price=price)
        else:
            self.store.update_variant(vid, price=price)

    def add_size(self, pid: str, size: str, sku: str) -> None:
        if self.platform == "woocommerce":
            product = self.store.product(int(pid))
            options = product["attributes"][0]["options"]
            self.store.update_product(
                int(pid), attributes=[{"name": "Size", "options": [*options, size], "variation": True, "visible": True}]
            )
            self.store.add_variation(int(pid), attributes={"Size": size}, sku=sku, price="44.00", stock=6)
        else:
            self.store.add_variant(pid, sku=sku, price="44.00", attributes={"Size": size}, quantity=6)

    def delete_variant(self, pid: str, vid: str) -> None:
        if self.platform == "woocommerce":
            self.store.delete_variation(int(pid), int(vid))
        else:
            self.store.delete_variant(vid)

    def delete(self, pid: str) -> None:
        self.store.delete_product(int(pid) if self.platform == "woocommerce" else pid)


@pytest.fixture(params=["woocommerce", "squarespace"])
def market(request, cli, isolated, monkeypatch):
    merchant = ShopifySandbox(shop="mall").start()
    if request.param == "woocommerce":
        store = WooCommerceSandbox().start()
        monkeypatch.setenv("CK", store.consumer_key)
        monkeypatch.setenv("CS", store.consumer_secret)
        connect = ["connect", "woocommerce", "acme", "--url", store.url, "--key-env", "CK", "--secret-env", "CS"]
    else:
        store = SquarespaceSandbox().start()
        monkeypatch.setenv("SQ", store.api_key)
        connect = ["connect", "squarespace", "acme", "--api-key-env", "SQ", "--api-url", store.url]
    monkeypatch.setenv("MALL_TOKEN", merchant.token)
    assert cli("init").code == 0
    assert (
        cli(
            "connect", "shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token-env", "MALL_TOKEN"
        ).code
        == 0
    )
    r = cli(*connect)
    assert r.code == 0, r
    yield merchant, Vendor(request.param, store)
    merchant.stop()
    store.stop()


def merchant_product(merchant, cli) -> dict:
    (link,) = cli("map", "list", "--json").json()
    return merchant.product(link["merchant_product_id"])


def test_publish_with_attributes_as_options(cli, market):
    merchant, vendor = market
    pid, _ = vendor.add_shirt()
    r = cli("map", "add", "acme", pid)
    assert r.code == 0, r
    m = merchant_product(merchant, cli)
    assert m["title"] == "Linen Shirt" and m["tags"] == ["linen"] and m["vendor"] == "acme"
    assert [o["name"] for o in m["options"]] == ["Size"]
    assert {v["sku"]: v["price"] for v in m["variants"]} == {"SH-S": "40.00", "SH-M": "40.00"}
    stock = {v["sku"]: merchant.available(v["id"], merchant.primary_location_id) for v in m["variants"]}
    assert stock == {"SH-S": 5, "SH-M": 2}
    products = cli("products", "acme", "--json").json()
    assert products[0]["linked"] is True and all(v["linked"] for v in products[0]["variants"])


def test_more_than_three_attributes_is_refused_by_name(cli, market):
    merchant, vendor = market
    pid, _ = vendor.add_shirt(attributes=4)
    merchant.reset_requests()
    r = cli("map", "add", "acme", pid)
    assert r.code == 2
    assert "'Linen Shirt'" in r.err and "4 options" in r.err and "at most 3" in r.err
    assert merchant.count(write=True) == 0
    assert cli("map", "list", "--json").json() == []


def test_edits_auto_variants_and_a_quiet_second_pass(cli, market, isolated):
    merchant, vendor = market
    (isolated / "vsc.yaml").write_text("auto_variants: true\n")
    pid, variants = vendor.add_shirt()
    assert cli("map", "add", "acme", pid).code == 0
    vendor.rename(pid, "Linen Shirt (washed)")
    vendor.reprice(pid, variants["SH-S"], "42.00")
    vendor.add_size(pid, "L", "SH-L")
    vendor.delete_variant(pid, variants["SH-M"])
    r = cli("sync", "--json")
    assert r.code == 0, r
    kinds = sorted(a["kind"] for a in r.json()["actions"])
    assert kinds == ["add_variants", "remove_variants", "update_listing", "update_variants"]
    m = merchant_product(merchant, cli)
    assert m["title"] == "Linen Shirt (washed)"
    assert {v["sku"]: v["price"] for v in m["variants"]} == {"SH-S": "42.00", "SH-L": "44.00"}
    merchant.reset_requests()
    vendor.store.reset_requests()
    second = cli("sync", "--json")
    assert second.code == 0 and second.json()["actions"] == []
    assert merchant.count(write=True) == 0 and vendor.store.count(write=True) == 0


def test_link_by_sku_then_deletion_drafts_the_listing(cli, market, isolated):
    merchant, vendor = market
    pid, _ = vendor.add_shirt()
    own = merchant.add_product(
        "Shirt (merchant's)",
        options={"Size": ["S", "M"]},
        variants=[
            {"sku": "SH-S", "price": "39.00", "options": {"Size": "S"}},
            {"sku": "SH-M", "price": "39.00", "options": {"Size": "M"}},
        ],
    )
    r = cli("map", "auto", "acme", "--by", "sku", "--json")
    assert r.code == 0 and [x["merchant_product_id"] for x in r.json()["linked"]] == [own["id"]]
    vendor.delete(pid)
    # WooCommerce and Squarespace have no deletion feed: vsc checks linked products by id,
    # at most once an hour; the first pass after linking does it.
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert [a["kind"] for a in r.json()["actions"]] == ["vendor_deleted"]
    assert merchant.product(own["id"])["status"] == "DRAFT"
    assert cli("map", "list", "--json").json()[0]["state"] == "vendor_deleted"


@pytest.mark.parametrize("platform", ["woocommerce", "squarespace"])
def test_wrong_credentials_at_connect_save_nothing_and_show_the_platforms_answer(cli, platform, monkeypatch):
    store = (WooCommerceSandbox() if platform == "woocommerce" else SquarespaceSandbox()).start()
    try:
        assert cli("init").code == 0
        monkeypatch.setenv("WRONG", "wrong-secret")
        if platform == "woocommerce":
            monkeypatch.setenv("CK", store.consumer_key)
            args = ["connect", "woocommerce", "acme", "--url", store.url, "--key-env", "CK", "--secret-env", "WRONG"]
            answer = "Consumer secret is invalid"
        else:
            args = ["connect", "squarespace", "acme", "--api-key-env", "WRONG", "--api-url", store.url]
            answer = "invalid or revoked"
        r = cli(*args)
        assert r.code == 2, r
        assert "nothing was saved" in r.err and answer in r.err
        assert "wrong-secret" not in r.err + r.out
        assert cli("stores", "--json").json() == []
    finally:
        store.stop()


def test_a_product_read_again_unchanged_plans_without_its_variant_links(cli, market, isolated, monkeypatch):
    """The hourly sweep (and, on WooCommerce, every stock move) reads linked products again. One
    whose plan came out empty last time and that did not change is not planned again: its variant
    links are not even loaded. A vendor edit, or a settings change, plans it again."""
    import os
    from datetime import timedelta

    from vsc.state import State, now_utc

    merchant, vendor = market
    pid, _ = vendor.add_shirt()
    assert cli("map", "add", "acme", pid).code == 0
    loaded: list[int] = []
    real = State.variant_links_where

    def spy(self, column, values):
        values = list(values)
        if column == "product_link_id":
            loaded.extend(values)
        return real(self, column, values)

    monkeypatch.setattr(State, "variant_links_where", spy)

    def swept_pass() -> list[str]:
        state = State.open(os.environ["VSC_DB"])
        state.set_cursor("acme", "catalog-sweep", now_utc() - timedelta(hours=2))
        state.close()
        loaded.clear()
        r = cli("sync", "--json")
        assert r.code == 0, r
        return [a["kind"] for a in r.json()["actions"] if a["stream"] == "catalog"]

    assert swept_pass() == [] and len(loaded) == 1  # planned: nothing to do, and that is recorded
    assert swept_pass() == [] and loaded == []  # read again as it was: not planned
    vendor.rename(pid, "Linen Shirt (washed)")
    assert swept_pass() == ["update_listing"] and len(loaded) == 1
    assert merchant_product(merchant, cli)["title"] == "Linen Shirt (washed)"
    assert swept_pass() == [] and len(loaded) == 1  # the write changed its link: planned once more
    assert swept_pass() == [] and loaded == []
    (isolated / "vsc.yaml").write_text("price_rule: {percent: 10}\n")
    assert swept_pass() == [] and len(loaded) == 1  # other settings: planned again
