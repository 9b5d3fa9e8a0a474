"""The orders stream over real HTTP: merchant orders pushed into each vendor platform exactly once,
cancellations and edits followed (or requested by e-mail where the platform cannot), stock moved
directly when order push is off, and crashes at every write recovered without a duplicate."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from tests.marketplace import PLATFORMS, open_market
from vsc.sandbox.base import Fault
from vsc.state import State

SETTINGS = "vendors:\n  acme: {email: orders@acme.example}\n"
ADDRESS = {
    "firstName": "Ada",
    "lastName": "Lovelace",
    "address1": "1 Analytical St",
    "city": "London",
    "countryCode": "GB",
    "zip": "N1 1AA",
}


@pytest.fixture(params=PLATFORMS)
def market(request, cli, monkeypatch):
    m = open_market(request.param, cli, monkeypatch, settings=SETTINGS)
    pid = m.vendor.add_shirt()
    r = cli("map", "add", "acme", pid)
    assert r.code == 0, r
    yield m
    m.stop()


def vendor_orders(m):
    """The orders vsc pushed into the vendor store (ignoring the vendor's own storefront sales)."""
    return m.vendor.pushed_orders()


def buy(m, cli, qty=2, **kw):
    own = m.merchant.add_product("House Mug", variants=[{"sku": "MUG", "price": "9.00", "available": 10}])
    return m.merchant.place_order(
        [(m.merchant_variant(cli, "SH-S"), qty), (own["variants"][0]["id"], 1)],
        email="ada@example.com",
        shipping_address=ADDRESS,
        note="gift wrap",
        **kw,
    )


def state():
    return State.open(os.environ["VSC_DB"])


def test_push_once_with_only_the_vendors_lines(market, cli):
    m = market
    order = buy(m, cli)
    r = cli("sync", "--json")
    assert r.code == 0, r
    push = [a for a in r.json()["actions"] if a["kind"] == "push"]
    assert len(push) == 1 and push[0]["status"] == "done"
    assert "MUG" in push[0]["summary"]  # the unlinked line is reported, not pushed
    (pushed,) = vendor_orders(m)
    assert m.vendor.stock("SH-S") == 3  # the vendor's stock dropped through the order itself
    if m.vendor.platform == "shopify":
        assert [(li["sku"], li["quantity"]) for li in pushed["lineItems"]] == [("SH-S", 2)]
        assert pushed["email"] == "ada@example.com" and pushed["note"] == "gift wrap"
        assert any(t.startswith("vsc-mall-") for t in pushed["tags"])
    elif m.vendor.platform == "woocommerce":
        assert [(li["sku"], li["quantity"]) for li in pushed["line_items"]] == [("SH-S", 2)]
        assert pushed["billing"]["email"] == "ada@example.com" and pushed["status"] == "processing"
        assert pushed["shipping"]["city"] == "London"
    else:
        assert [(li["sku"], li["quantity"]) for li in pushed["lineItems"]] == [("SH-S", 2)]
        assert pushed["externalOrderReference"].startswith("vsc-mall-")
        assert pushed["customerEmail"] == "ada@example.com"
    links = state().order_links(vendor="acme")
    assert [(x.merchant_order_id, x.state) for x in links] == [(order["id"], "pushed")]
    mails = state().outbox()
    assert len(mails) == 1 and mails[0].recipient == "orders@acme.example" and "SH-S" in mails[0].body
    m.merchant.reset_requests()
    m.vendor.store.reset_requests()
    again = cli("sync", "--json")
    assert again.code == 0 and [a for a in again.json()["actions"] if a["write"]] == []
    assert m.merchant.count(write=True) == 0 and m.vendor.store.count(write=True) == 0
    assert len(vendor_orders(m)) == 1


def test_unpaid_orders_wait_and_test_orders_are_not_pushed(market, cli):
    m = market
    buy(m, cli, financial_status="PENDING")
    buy(m, cli, test=True)
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert {a["kind"] for a in r.json()["actions"]} <= {"wait"}
    assert vendor_orders(m) == []
    assert {x.state for x in state().order_links(vendor="acme")} == {"waiting"}


def test_cancellation_follows_or_is_requested(market, cli):
    m = market
    order = buy(m, cli)
    assert cli("sync").code == 0
    m.merchant.cancel_order(order["id"])
    r = cli("sync", "--json")
    assert r.code == 0, r
    (link,) = state().order_links(vendor="acme")
    if m.vendor.platform == "squarespace":
        assert link.state == "cancel_requested"
        kinds = [mail.kind for mail in state().outbox()]
        assert "cancel" in kinds
        (pushed,) = vendor_orders(m)
        m.vendor.store.cancel_order(pushed["id"], restock=True)  # the vendor does it in its admin
        assert cli("sync").code == 0
        assert state().order_links(vendor="acme")[0].state == "cancelled"
    else:
        assert link.state == "cancelled"
        (pushed,) = vendor_orders(m)
        status = pushed.get("cancelledAt") if m.vendor.platform == "shopify" else pushed["status"] == "cancelled"
        assert status
    assert m.vendor.stock("SH-S") == 5  # stock restored
    m.vendor.store.reset_requests()
    assert cli("sync").code == 0
    assert m.vendor.store.count(write=True) == 0


def test_a_cancellation_follows_even_after_the_product_was_unlinked(cli, monkeypatch):
    """A pushed order stays the vendor's once none of its lines maps to the vendor any more (the
    product unlinked since the push): its cancellation still goes to the vendor's store. (A
    pass plans each vendor's orders from the lines it holds and the order links it has.)"""
    m = open_market("woocommerce", cli, monkeypatch, settings=SETTINGS)
    try:
        pid = m.vendor.add_shirt()
        assert cli("map", "add", "acme", pid).code == 0
        order = buy(m, cli)
        assert cli("sync").code == 0
        assert cli("map", "remove", "acme", pid).code == 0
        m.merchant.cancel_order(order["id"])
        r = cli("sync", "--json")
        assert r.code == 0, r
        assert [a["kind"] for a in r.json()["actions"] if a["stream"] == "orders"] == ["cancel"]
        assert [x.state for x in state().order_links(vendor="acme")] == ["cancelled"]
        (pushed,) = vendor_orders(m)
        assert pushed["status"] == "cancelled"
    finally:
        m.stop()


def test_a_push_to_a_shopify_vendor_is_its_order_create_alone(cli, monkeypatch):
    """orderCreate answers with what recording the push needs (the order's id and name, each
    line's id and variant): the order is not read back, and the link holds the vendor's lines."""
    m = open_market("shopify", cli, monkeypatch, settings=SETTINGS)
    try:
        assert cli("map", "add", "acme", m.vendor.add_shirt()).code == 0
        buy(m, cli)
        m.vendor.store.reset_requests()
        assert cli("sync").code == 0
        sent = [str(r.body or "") for r in m.vendor.store.requests]
        assert sum("orderCreate" in b for b in sent) == 1
        assert not any("OrderById" in b for b in sent), "the pushed order was read back"
        ((line,),) = [x.lines for x in state().order_links(vendor="acme")]
        (pushed,) = vendor_orders(m)
        assert line["vendor_line_id"] == pushed["lineItems"][0]["id"] and line["quantity"] == 2
    finally:
        m.stop()


def test_attribute_edits_follow_or_are_mailed(market, cli):
    m = market
    order = buy(m, cli)
    assert cli("sync").code == 0
    m.merchant.update_order(
        order["id"],
        note="leave at the door",
        email="ada@lovelace.example",
        shipping_address={**ADDRESS, "address1": "2 Difference Rd"},
    )
    r = cli("sync", "--json")
    assert r.code == 0, r
    kinds = [a["kind"] for a in r.json()["actions"]]
    (pushed,) = vendor_orders(m)
    if m.vendor.platform == "shopify":
        assert kinds == ["update_order"]
        assert pushed["note"] == "leave at the door" and pushed["email"] == "ada@lovelace.example"
        assert pushed["shippingAddress"]["address1"] == "2 Difference Rd"
        assert any(t.startswith("vsc-mall-") for t in pushed["tags"])  # the marker survives
    elif m.vendor.platform == "woocommerce":
        assert kinds == ["update_order"]
        assert pushed["customer_note"] == "leave at the door" and pushed["billing"]["email"] == "ada@lovelace.example"
        assert pushed["shipping"]["address_1"] == "2 Difference Rd"
    else:
        assert kinds == ["edit_request"]
        mail = [x for x in state().outbox() if x.kind == "edit"]
        assert len(mail) == 1 and "2 Difference Rd" in mail[0].body
    m.vendor.store.reset_requests()
    assert [a for a in cli("sync", "--json").json()["actions"] if a["write"]] == []
    assert m.vendor.store.count(write=True) == 0


def test_vendor_refusing_the_push_is_reported_and_retried(market, cli):
    m = market
    buy(m, cli, qty=2)
    m.vendor.set_stock("SH-S", 1)  # sold out on the vendor's side in between
    r = cli("sync", "--json")
    assert r.code == 1
    (push,) = [a for a in r.json()["actions"] if a["kind"] == "push"]
    assert push["status"] == "failed" and r.json()["errors"]
    assert vendor_orders(m) == []
    assert state().order_links(vendor="acme")[0].state == "failed"
    m.vendor.set_stock("SH-S", 4)
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert len(vendor_orders(m)) == 1


def test_a_lost_response_never_makes_a_second_order(market, cli):
    m = market
    buy(m, cli)
    m.vendor.store.inject(Fault("cut_after", times=1, match=m.vendor.store.is_write))
    first = cli("sync", "--json")
    assert len(vendor_orders(m)) == 1  # the vendor store applied it; vsc never heard back
    second = cli("sync", "--json")
    assert second.code == 0, (first, second)
    assert len(vendor_orders(m)) == 1
    (link,) = state().order_links(vendor="acme")
    assert link.state == "pushed" and link.vendor_order_id


@pytest.fixture
def three_vendors(cli, monkeypatch):
    """The merchant and three vendors (one per platform, `v0`..`v2`), each with a linked shirt,
    and a function placing one merchant order holding one item of each."""
    from tests.marketplace import start_merchant, start_vendor

    merchant = start_merchant(cli, monkeypatch)
    vendors = [start_vendor(p, f"v{i}", cli, monkeypatch) for i, p in enumerate(PLATFORMS)]
    for i, v in enumerate(vendors):
        v.store.clock = lambda: time.time() - 3600
        pid = v.add_shirt({f"V{i}-S": 5})
        v.store.clock = time.time
        assert cli("map", "add", f"v{i}", pid).code == 0
    variants = {
        v["sku"]: v["merchant_variant_id"] for link in cli("map", "list", "--json").json() for v in link["variants"]
    }

    def order():
        return merchant.place_order([(variants[f"V{i}-S"], 1) for i in range(len(vendors))], email="ada@example.com")

    yield merchant, vendors, order
    merchant.stop()
    for v in vendors:
        v.store.stop()


def hold_until_all(vendors, match):
    """Make each vendor store hold its answer to its first request matching `match(platform, req)`
    until every vendor store got one: requests sent one store after another would wait in vain
    (the barrier breaks after 5 s). Returns the barrier."""
    barrier = threading.Barrier(len(vendors), timeout=5)

    def held(req, body):
        barrier.wait()
        return body

    for v in vendors:
        v.store.inject(Fault("rewrite", rewrite=held, match=lambda req, v=v: match(v, req), times=1))
    return barrier


def test_pushes_to_different_vendors_go_out_at_the_same_time(three_vendors, cli):
    """One merchant order holding items of three vendors: the three pushes are sent together."""
    merchant, vendors, order = three_vendors
    order()
    together = hold_until_all(vendors, lambda v, req: v.store.is_write(req))
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert not together.broken
    assert [len(v.pushed_orders()) for v in vendors] == [1, 1, 1]
    assert {x.state for x in state().order_links()} == {"pushed"}


def _shipments_read(v, req) -> bool:
    if v.platform == "shopify":
        return "OrderFulfillments" in v.store.operation_names(req)
    if v.platform == "woocommerce":
        return req.method == "GET" and req.path.endswith("/shipment-trackings")
    return req.method == "GET" and re.search(r"/commerce/orders/[^/]+$", req.path) is not None


def test_shipments_of_different_vendors_are_read_at_the_same_time(three_vendors, cli):
    """Each vendor ships its part of one merchant order: the three vendors' shipments are read
    together, and each one's tracking reaches the merchant order."""
    merchant, vendors, order = three_vendors
    placed = order()
    assert cli("sync").code == 0
    for i, v in enumerate(vendors):
        (pushed,) = v.pushed_orders()
        v.ship(str(pushed["id"]), f"1Z{i}")
    time.sleep(1.1)
    together = hold_until_all(vendors, _shipments_read)
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert not together.broken
    shipped = merchant.order(placed["id"])["fulfillments"]
    assert sorted(t["number"] for f in shipped for t in f["trackingInfo"]) == ["1Z0", "1Z1", "1Z2"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_killed_at_each_write_then_rerun_makes_exactly_one_order(platform, cli, monkeypatch, forkserver):
    """SIGKILL the vsc process right after the vendor store applied each write of the pass in turn."""
    m = open_market(platform, cli, monkeypatch, settings=SETTINGS)
    try:
        pid = m.vendor.add_shirt()
        assert cli("map", "add", "acme", pid).code == 0
        orders = [buy(m, cli, qty=1) for _ in range(2)]
        # Each round kills the pass right after the vendor store applied its next write; the
        # round after resumes from there. A clean pass makes one vendor order per merchant order.
        kills = 0
        for _ in range(10):
            m.vendor.store.clear_faults()
            forkserver.kill_at(m.vendor.store)
            code = forkserver.run(["sync"])
            if code != -signal.SIGKILL:
                assert code == 0
                break
            kills += 1
        assert kills == len(orders)
        m.vendor.store.clear_faults()
        r = cli("sync", "--json")
        assert r.code == 0, r
        assert len(vendor_orders(m)) == len(orders)
        assert {x.state for x in state().order_links(vendor="acme")} == {"pushed"}
        assert m.vendor.stock("SH-S") == 5 - len(orders)
    finally:
        m.stop()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_order_push_off_moves_the_vendors_stock_once(platform, cli, monkeypatch):
    m = open_market(platform, cli, monkeypatch, settings="vendors:\n  acme: {order_push: false}\n")
    try:
        pid = m.vendor.add_shirt()
        assert cli("map", "add", "acme", pid).code == 0
        order = buy(m, cli, qty=2)
        r = cli("sync", "--json")
        assert r.code == 0, r
        assert vendor_orders(m) == []
        assert m.vendor.stock("SH-S") == 3
        assert cli("sync").code == 0
        assert m.vendor.stock("SH-S") == 3  # once per (order, line, event)
        m.merchant.cancel_order(order["id"], restock=True)
        assert cli("sync").code == 0
        assert m.vendor.stock("SH-S") == 5
        assert cli("sync").code == 0
        assert m.vendor.stock("SH-S") == 5
    finally:
        m.stop()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_stock_move_cut_off_after_it_applied_is_not_made_twice(platform, cli, monkeypatch, forkserver):
    """vsc killed right after the vendor store applied a direct stock move, then rerun: moved once.
    Shopify and Squarespace replay the move's idempotency key; WooCommerce has none, so the key
    travels in the same write as the stock (`_vsc_moves` meta) and the retry reads it back."""
    m = open_market(platform, cli, monkeypatch, settings="vendors:\n  acme: {order_push: false}\n")
    try:
        pid = m.vendor.add_shirt()
        assert cli("map", "add", "acme", pid).code == 0
        order = buy(m, cli, qty=2)
        for expected in (3, 5):  # the sale, then its cancellation
            forkserver.kill_at(m.vendor.store)  # the pass's only vendor write is the move
            assert forkserver.run(["sync"]) == -signal.SIGKILL
            assert m.vendor.stock("SH-S") == expected
            r = cli("sync", "--json")
            assert r.code == 0, r
            assert m.vendor.stock("SH-S") == expected  # not moved a second time
            assert state().stock_moves(vendor="acme") == []  # none pending or failed
            m.merchant.cancel_order(order["id"], restock=True)
        if platform == "woocommerce":
            variation = m.vendor.store.variation(int(m.vendor.variants["SH-S"]))
            (moves,) = [x["value"] for x in variation["meta_data"] if x["key"] == "_vsc_moves"]
            assert len(moves) == 2 and all(k.startswith("move:") for k in moves)
    finally:
        m.stop()
