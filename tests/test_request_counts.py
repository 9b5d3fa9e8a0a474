"""Request counts of steady passes (issue 7): an idle pass and a small change are at the floor.

The floor of an idle pass is one read per store and stream that has something to watch: the
merchant's changed orders and changed inventory items; each vendor's changed products (with
Shopify's deletions in the same request) and its stock (Shopify: changed inventory items;
WooCommerce: changed orders, its changed products being shared with the catalog read;
Squarespace, which has no change feed for stock: linked variants by id, 50 a request).
Counts, never times: the sandbox stores count every request they answer.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.marketplace import PLATFORMS, open_market

#: what an idle pass reads of each vendor platform, by the sandbox's operation names
IDLE_VENDOR = {
    "shopify": {"POST products,deletionEvents": 1, "POST inventoryItems": 1},
    "woocommerce": {"GET products.list": 1, "GET orders.list": 1},
    "squarespace": {"GET products.list": 1, "GET inventory.get": 1},
}
IDLE_MERCHANT = {"POST orders": 1, "POST inventoryItems": 1}


def operations(store) -> Counter[str]:
    return Counter(f"{r.method} {r.operation}" for r in store.requests)


@pytest.fixture(params=PLATFORMS)
def market(request, cli, monkeypatch):
    m = open_market(request.param, cli, monkeypatch)
    # The catalog was made an hour ago, as a real one is: a pass right after it was seeded
    # must not count it as a change inside the overlap window.
    m.vendor.store.clock = lambda: time.time() - 3600
    pid = m.vendor.add_shirt({"SH-S": 5, "SH-M": 3})
    m.vendor.store.clock = time.time
    assert cli("map", "add", "acme", pid).code == 0
    # (A read in the very second of a change cannot trust its whole-second stamp and is made
    # again next pass; passes do not run in the second of a publish in real life.)
    time.sleep(1.1)
    assert cli("sync").code == 0  # the settling pass reads everything once
    time.sleep(1.1)  # later changes are after the cursor, to the second
    yield m
    m.stop()


def test_an_idle_pass_reads_each_store_once_per_stream(market, cli):
    m = market
    m.merchant.reset_requests()
    m.vendor.store.reset_requests()
    assert cli("sync").code == 0
    assert operations(m.merchant) == IDLE_MERCHANT
    assert operations(m.vendor.store) == IDLE_VENDOR[m.vendor.platform]
    # and again: nothing vsc did in the last pass comes back as a change (no echo re-reads)
    time.sleep(1.1)
    m.merchant.reset_requests()
    m.vendor.store.reset_requests()
    assert cli("sync").code == 0
    assert operations(m.merchant) == IDLE_MERCHANT
    assert operations(m.vendor.store) == IDLE_VENDOR[m.vendor.platform]


def test_a_small_stock_change_costs_one_merchant_write(market, cli):
    m = market
    m.vendor.set_stock("SH-S", 1)
    m.merchant.reset_requests()
    m.vendor.store.reset_requests()
    assert cli("sync").code == 0
    assert operations(m.merchant) == {**IDLE_MERCHANT, "POST inventorySetQuantities": 1}
    assert m.merchant.count(write=True) == 1
    vendor = operations(m.vendor.store)
    assert m.vendor.store.count(write=True) == 0
    expected = Counter(IDLE_VENDOR[m.vendor.platform])
    if m.vendor.platform == "woocommerce":
        expected["GET variations.list"] += 1  # the changed product's variations
    assert vendor == expected
    # The next pass reads the written item back once (a hand edit in the very second of vsc's
    # write would share its whole-second updatedAt); after that, its echo costs nothing.
    time.sleep(1.1)
    m.merchant.reset_requests()
    assert cli("sync").code == 0
    assert operations(m.merchant) == {**IDLE_MERCHANT, "POST nodes": 1}
    time.sleep(1.1)
    m.merchant.reset_requests()
    assert cli("sync").code == 0
    assert operations(m.merchant) == IDLE_MERCHANT


def test_merchant_quantities_of_all_vendors_are_read_back_together(cli, monkeypatch):
    """Orders touch items of several vendors: the stock stream reads their merchant quantities
    back in one request for all vendors (100 items a request), not one per vendor."""
    from tests.marketplace import start_merchant, start_vendor

    merchant = start_merchant(cli, monkeypatch)
    vendors = [start_vendor(p, f"v{i}", cli, monkeypatch) for i, p in enumerate(PLATFORMS)]
    try:
        for i, v in enumerate(vendors):
            v.store.clock = lambda: time.time() - 3600
            pid = v.add_shirt({f"V{i}-S": 5, f"V{i}-M": 3})
            v.store.clock = time.time
            assert cli("map", "add", f"v{i}", pid).code == 0
        time.sleep(1.1)
        assert cli("sync").code == 0
        time.sleep(1.1)
        variants = {
            v["sku"]: v["merchant_variant_id"] for link in cli("map", "list", "--json").json() for v in link["variants"]
        }
        merchant.place_order([(variants[f"V{i}-S"], 1) for i in range(len(vendors))], email="buyer@example.com")
        merchant.reset_requests()
        r = cli("sync", "--json")
        assert r.code == 0, r
        assert operations(merchant)["POST nodes"] == 1  # the sold items of the three vendors, together
    finally:
        merchant.stop()
        for v in vendors:
            v.store.stop()
