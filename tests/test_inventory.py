"""The inventory stream over real HTTP, for vendors on all three platforms: the vendor's stock is
the truth, pending orders and the buffer are held back, writes are compare-and-set, and an
unchanged pass writes nothing."""

from __future__ import annotations

import pytest

from tests.marketplace import PLATFORMS, open_market
from vsc.config import Settings, VendorSettings
from vsc.engine.inventory import VendorStock, plan, restale, target_quantity
from vsc.state import VariantLink

# -- the planner, as a pure function ------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "pending", "buffer", "untracked", "expected"),
    [
        (10, 0, 0, None, 10),
        (10, 3, 0, None, 7),
        (10, 3, 2, None, 5),
        (2, 3, 0, None, 0),
        (-4, 0, 0, None, 0),  # backorders count as nothing to sell
        (None, 0, 0, None, None),  # untracked: leave the merchant's quantity
        (None, 5, 1, 50, 50),  # untracked with untracked_quantity set
    ],
)
def test_target_quantity(vendor, pending, buffer, untracked, expected):
    assert target_quantity(vendor, pending, buffer, untracked) == expected


def vlink(i: int, *, merchant_available: int | None = 5, location: str | None = "L") -> VariantLink:
    return VariantLink(
        i,
        1,
        "acme",
        "p",
        f"v{i}",
        "mp",
        f"mv{i}",
        f"item{i}",
        f"SKU{i}",
        None,
        "active",
        {},
        merchant_available,
        None,
        location,
    )


def test_plan_writes_only_differences_with_compare_and_set():
    links = [vlink(1), vlink(2), vlink(3, merchant_available=None, location=None)]
    stock = {"v1": VendorStock(True, 5), "v2": VendorStock(True, 9), "v3": VendorStock(True, 4)}
    actions = plan(
        links,
        stock,
        {"v2": 2},
        {"item3": None},
        vendor="acme",
        merchant="mall",
        location="L",
        vs=VendorSettings(stock_buffer=1),
        settings=Settings(),
    )
    by_item = {a.target: a for a in actions}
    assert set(by_item) == {"item1", "item2", "item3"}
    assert by_item["item1"].detail | {} == by_item["item1"].detail
    assert (by_item["item1"].detail["quantity"], by_item["item1"].detail["change_from"]) == (4, 5)
    assert (by_item["item2"].detail["quantity"], by_item["item2"].detail["change_from"]) == (6, 5)
    assert by_item["item3"].kind == "activate" and by_item["item3"].detail["quantity"] == 3
    same = plan(
        [vlink(1, merchant_available=5)],
        {"v1": VendorStock(True, 5)},
        {},
        {},
        vendor="acme",
        merchant="mall",
        location="L",
        vs=VendorSettings(),
        settings=Settings(),
    )
    assert same == []


def test_never_read_stock_plans_nothing():
    assert (
        plan(
            [vlink(1)],
            {"v1": VendorStock(False, None)},
            {},
            {},
            vendor="acme",
            merchant="mall",
            location="L",
            vs=VendorSettings(),
            settings=Settings(),
        )
        == []
    )


def test_a_stale_write_holds_back_what_sold_in_between():
    (action,) = plan(
        [vlink(1, merchant_available=5)],
        {"v1": VendorStock(True, 8)},
        {},
        {},
        vendor="acme",
        merchant="mall",
        location="L",
        vs=VendorSettings(),
        settings=Settings(),
    )
    assert action.detail["quantity"] == 8
    assert restale(action, 3) == 6  # 2 sold on the merchant since vsc last looked
    assert restale(action, 7) == 8  # the merchant's count went up: the vendor's stock still rules


# -- over the sandbox stores ---------------------------------------------------------------------


@pytest.fixture(params=PLATFORMS)
def market(request, cli, monkeypatch):
    m = open_market(request.param, cli, monkeypatch, settings="vendors:\n  acme: {stock_buffer: 1}\n")
    pid = m.vendor.add_shirt({"SH-S": 5, "SH-M": 3})
    assert cli("map", "add", "acme", pid).code == 0
    yield m
    m.stop()


def merchant_available(m, cli, sku):
    return m.merchant.available(m.merchant_variant(cli, sku), m.merchant.primary_location_id)


def test_vendor_stock_flows_and_an_unchanged_pass_writes_nothing(market, cli):
    m = market
    assert merchant_available(m, cli, "SH-S") == 4  # buffer of 1 held back at publish
    r = cli("sync", "--json")
    assert r.code == 0, r
    m.vendor.set_stock("SH-S", 9)
    m.vendor.sell("SH-M", 1)
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert merchant_available(m, cli, "SH-S") == 8
    assert merchant_available(m, cli, "SH-M") == 1
    sets = [a for a in r.json()["actions"] if a["kind"] == "set_quantity"]
    assert len(sets) == 2 and all(a["status"] == "done" for a in sets)
    m.merchant.reset_requests()
    m.vendor.store.reset_requests()
    again = cli("sync", "--json")
    assert [a for a in again.json()["actions"] if a["stream"] == "inventory"] == []
    assert m.merchant.count(write=True) == 0 and m.vendor.store.count(write=True) == 0


def test_a_quiet_vendor_still_follows_a_new_buffer_and_a_hand_edit(market, cli, monkeypatch):
    """A pass loads only the links that can need a write (State.stock_links): with nothing
    changed at the vendor, a new stock_buffer and a merchant hand edit must still be applied."""
    import os
    import time

    from vsc.state import State

    m = market
    settings = os.path.join(os.path.dirname(os.environ["VSC_DB"]), "vsc.yaml")
    with open(settings, "w") as f:  # no overlap: the stores' change feeds show nothing already read
        f.write("overlap_seconds: 0\nvendors:\n  acme: {stock_buffer: 1}\n")
    assert cli("sync").code == 0
    time.sleep(1.1)  # (store times are whole seconds)
    assert cli("sync").code == 0  # reads back what the first pass wrote
    time.sleep(1.1)
    with open(settings, "w") as f:
        f.write("overlap_seconds: 0\nvendors:\n  acme: {stock_buffer: 2}\n")
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert merchant_available(m, cli, "SH-S") == 3 and merchant_available(m, cli, "SH-M") == 1
    state = State.open(os.environ["VSC_DB"])
    try:
        location = m.merchant.primary_location_id
        quiet = state.stock_links("acme", variant_ids=[], items=[], location=location, buffer=2, untracked=None)
        assert quiet == []  # settled: a pass loads none of them
    finally:
        state.close()
    time.sleep(1.1)
    m.merchant.set_available(m.merchant_variant(cli, "SH-S"), None, 40)  # a hand edit on the merchant
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert merchant_available(m, cli, "SH-S") == 3  # the vendor's stock rules


def test_merchant_sales_move_the_vendors_stock_through_the_order(market, cli):
    m = market
    assert cli("sync").code == 0
    m.merchant.place_order([(m.merchant_variant(cli, "SH-S"), 2)])
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert m.vendor.stock("SH-S") == 3  # the pushed order took it from the vendor
    assert merchant_available(m, cli, "SH-S") == 2  # 3 at the vendor, 1 held back
    m.merchant.reset_requests()
    assert [a for a in cli("sync", "--json").json()["actions"] if a["stream"] == "inventory"] == []


def test_unpaid_orders_are_held_back_until_pushed(market, cli):
    m = market
    assert cli("sync").code == 0
    m.merchant.place_order([(m.merchant_variant(cli, "SH-S"), 2)], financial_status="PENDING")
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert m.vendor.stock("SH-S") == 5  # not pushed: not paid
    m.vendor.set_stock("SH-S", 6)  # a restock on the vendor side
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert merchant_available(m, cli, "SH-S") == 3  # 6 - 2 pending - 1 buffer


def test_a_sale_racing_the_write_is_never_overwritten(market, cli):
    """The merchant sells between vsc's read and its write: the compare-and-set refuses, vsc
    re-reads and holds the sold units back."""
    m = market
    assert cli("sync").code == 0
    m.vendor.set_stock("SH-S", 10)
    # A shopper buys on the merchant store right before vsc writes (after its orders read).
    m.merchant.place_order([(m.merchant_variant(cli, "SH-S"), 3)], financial_status="PENDING")
    from vsc.engine import orders as orders_stream

    m.merchant.reset_requests()
    r = cli("sync", "--only", "inventory", "--json")  # orders are not read in this pass
    assert r.code == 0, r
    assert orders_stream.STREAM == "orders"
    (action,) = [a for a in r.json()["actions"] if a["kind"] == "set_quantity" and "SH-S" in a["summary"]]
    # Seen either as a changed merchant level or as a stale compare-and-set: never overwritten.
    assert action["detail"]["change_from"] == 1
    assert merchant_available(m, cli, "SH-S") == 6  # 10 - 1 buffer - 3 just sold
    r = cli("sync", "--json")  # the order is now seen (pending payment): nothing more to write
    assert r.code == 0, r
    assert merchant_available(m, cli, "SH-S") == 6


def test_n_changes_leave_in_ceil_n_over_250_merchant_writes(cli, monkeypatch):
    m = open_market("shopify", cli, monkeypatch)
    # Plus-plan budgets (20,000 points, 1,000 a second): this test counts writes, and on the
    # Standard plan's 100 points a second reading 300 variants honestly takes half a minute.
    for store in (m.merchant, m.vendor.store):
        store.maximum_available, store.restore_rate = 20000.0, 1000.0
    try:
        variants = [{"sku": f"V{i:03d}", "price": "1.00", "options": {"N": str(i)}, "available": 1} for i in range(300)]
        ids = []
        for chunk in range(0, 300, 100):
            p = m.vendor.store.add_product(
                f"Bulk {chunk}",
                options={"N": [str(i) for i in range(chunk, chunk + 100)]},
                variants=variants[chunk : chunk + 100],
            )
            ids.append(p["id"])
            for v in p["variants"]:
                m.vendor.variants[v["sku"]] = v["id"]
        assert cli("map", "add", "acme", *ids).code == 0
        assert cli("sync").code == 0
        for i in range(260):
            m.vendor.store.set_available(m.vendor.variants[f"V{i:03d}"], None, 7)
        m.merchant.reset_requests()
        r = cli("sync", "--only", "inventory", "--json")
        assert r.code == 0, r
        assert len([a for a in r.json()["actions"] if a["kind"] == "set_quantity"]) == 260
        writes = [x for x in m.merchant.requests if x.write]
        assert len(writes) == 2  # ceil(260 / 250)
        m.merchant.reset_requests()
        assert cli("sync", "--only", "inventory").code == 0
        assert m.merchant.count(write=True) == 0
    finally:
        m.stop()


def test_which_vendor_locations_count_is_a_setting(cli, monkeypatch, isolated):
    m = open_market("shopify", cli, monkeypatch)
    try:
        depot = m.vendor.store.add_location("Depot")["id"]
        pid = m.vendor.add_shirt({"SH-S": 5, "SH-M": 3})
        m.vendor.store.set_available(m.vendor.variants["SH-S"], depot, 4)
        assert cli("map", "add", "acme", pid).code == 0
        assert cli("sync").code == 0
        assert merchant_available(m, cli, "SH-S") == 9  # every active location, summed
        (isolated / "vsc.yaml").write_text("vendors:\n  acme: {stock_locations: [Depot]}\n")
        m.vendor.store.set_available(m.vendor.variants["SH-S"], depot, 6)
        assert cli("sync").code == 0
        assert merchant_available(m, cli, "SH-S") == 6  # only the Depot counts now
    finally:
        m.stop()


def test_a_merchant_edit_in_the_second_of_vscs_own_write_is_still_seen(cli, monkeypatch):
    import time

    m = open_market("shopify", cli, monkeypatch)
    try:
        frozen = time.time()
        m.merchant.clock = lambda: frozen  # every merchant change lands in one second
        pid = m.vendor.add_shirt()
        assert cli("map", "add", "acme", pid).code == 0
        assert cli("sync").code == 0
        m.vendor.set_stock("SH-S", 4)
        assert cli("sync").code == 0  # vsc writes the merchant's SH-S: 4
        mv = m.merchant_variant(cli, "SH-S")
        assert m.merchant.available(mv) == 4
        m.merchant.set_available(mv, None, 9)  # someone edits it by hand, in that same second
        assert cli("sync").code == 0
        assert cli("sync").code == 0
        assert m.merchant.available(mv) == 4  # the vendor's stock is the truth
    finally:
        m.stop()
