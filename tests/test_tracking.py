"""The tracking stream over real HTTP: vendor shipments become merchant fulfillments, exactly once.

For each vendor platform a merchant order holds the vendor's lines and another
vendor's line; the order is pushed (the vendor order is placed directly in the
vendor sandbox and the order link written as the orders stream writes it), the
vendor ships, and `tracking.run` copies each shipment onto the vendor's lines of
the merchant order only. The sandboxes count every write they receive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests

from vsc.config import Settings
from vsc.connectors.shopify import ShopifyConnector
from vsc.engine import orders, tracking
from vsc.engine.context import Context
from vsc.errors import Unsupported
from vsc.sandbox.base import Fault
from vsc.sandbox.shopify import ShopifySandbox
from vsc.sandbox.squarespace import SquarespaceSandbox
from vsc.sandbox.woocommerce import WooCommerceSandbox
from vsc.state import State, StoreRow

UPS = {"number": "1Z001", "company": "UPS", "url": "https://ups.example/t/1Z001"}
DHL = {"number": "JD002", "company": "DHL", "url": "https://dhl.example/t/JD002"}
FIXED = {"number": "1Z009", "company": "UPS", "url": "https://ups.example/t/1Z009"}


@dataclass
class VendorStore:
    """One vendor sandbox with a tee in sizes M and L, and how the vendor ships in it."""

    platform: str
    store: Any
    variants: dict[str, str]  # sku → vendor variant id
    product_id: str

    def place(self, lines: list[tuple[str, int]]) -> tuple[str, str, dict[str, str]]:
        """A vendor order for (sku, qty): (order id, order name, {sku: vendor line id})."""
        if self.platform == "shopify":
            o = self.store.place_order([(self.variants[s], q) for s, q in lines])
            return o["id"], o["name"], {li["sku"]: li["id"] for li in o["lineItems"]}
        if self.platform == "woocommerce":
            o = self.store.place_order([(int(self.variants[s]), q) for s, q in lines])
            return str(o["id"]), f"#{o['number']}", {li["sku"]: str(li["id"]) for li in o["line_items"]}
        o = self.store.place_order([(self.variants[s], q) for s, q in lines])
        return o["id"], o["orderNumber"], {li["sku"]: li["id"] for li in o["lineItems"]}

    def ship(self, order_id: str, tracking: dict[str, str], lines: list[tuple[str, int]] | None = None) -> str | None:
        """Ship (some lines, where the platform can say so) with tracking; the new shipment's id if known."""
        if self.platform == "shopify":
            f = self.store.fulfill_order(order_id, lines, tracking)
            return f["id"]
        if self.platform == "woocommerce":
            item = self.store.add_tracking(int(order_id), tracking["number"], tracking["company"], tracking["url"])
            return item["tracking_id"]
        self.store.fulfill(
            order_id,
            [{"carrier": tracking["company"], "tracking_number": tracking["number"], "tracking_url": tracking["url"]}],
        )
        return None


def shopify_vendor() -> VendorStore:
    store = ShopifySandbox(shop="acme").start()
    p = store.add_product(
        "Tee",
        options={"Size": ["M", "L"]},
        variants=[
            {"sku": "TEE-M", "price": "20.00", "options": {"Size": "M"}, "available": 50},
            {"sku": "TEE-L", "price": "22.00", "options": {"Size": "L"}, "available": 50},
        ],
    )
    return VendorStore("shopify", store, {v["sku"]: v["id"] for v in p["variants"]}, p["id"])


def woocommerce_vendor(**kw) -> VendorStore:
    store = WooCommerceSandbox(**kw).start()
    p = store.add_product(
        "Tee",
        attributes=[{"name": "Size", "options": ["M", "L"]}],
        variations=[
            {"attributes": {"Size": "M"}, "sku": "TEE-M", "price": "20.00", "stock": 50},
            {"attributes": {"Size": "L"}, "sku": "TEE-L", "price": "22.00", "stock": 50},
        ],
    )
    variants = {v["sku"]: str(v["id"]) for v in (store.variation(i) for i in p["variations"])}
    return VendorStore("woocommerce", store, variants, str(p["id"]))


def squarespace_vendor() -> VendorStore:
    store = SquarespaceSandbox().start()
    p = store.add_product(
        "Tee",
        [
            {"sku": "TEE-M", "price": "20.00", "attributes": {"Size": "M"}, "quantity": 50},
            {"sku": "TEE-L", "price": "22.00", "attributes": {"Size": "L"}, "quantity": 50},
        ],
        variant_attributes=["Size"],
    )
    return VendorStore("squarespace", store, {v["sku"]: v["id"] for v in p["variants"]}, p["id"])


VENDORS = {"shopify": shopify_vendor, "woocommerce": woocommerce_vendor, "squarespace": squarespace_vendor}


@dataclass
class World:
    state: State
    ctx: Context
    merchant: ShopifySandbox
    vendor: VendorStore
    merchant_variants: dict[str, str]  # sku → merchant variant id (TEE-M, TEE-L are acme's; MUG is beta's)

    def push(self, lines=(("TEE-M", 3), ("TEE-L", 1)), *, state: str = "pushed") -> tuple[Any, dict[str, Any]]:
        """A merchant order with these acme lines and one line of another vendor, pushed to acme."""
        order = self.merchant.place_order(
            [(self.merchant_variants[s], q) for s, q in lines] + [(self.merchant_variants["MUG"], 2)],
            email="sam@example.com",
        )
        vendor_order_id, vendor_order_name, vendor_lines = self.vendor.place(list(lines))
        by_variant = {li["variantId"]: li for li in order["lineItems"]}
        link = self.state.add_order_link(
            vendor="acme",
            merchant_order_id=order["id"],
            merchant_order_name=order["name"],
            key=f"push:{order['id']}:acme",
            marker=f"vsc:{order['id']}",
            state=state,
            lines=[
                {
                    "merchant_line_id": by_variant[self.merchant_variants[s]]["id"],
                    "merchant_variant_id": self.merchant_variants[s],
                    "vendor_product_id": self.vendor.product_id,
                    "vendor_variant_id": self.vendor.variants[s],
                    "vendor_line_id": vendor_lines[s],
                    "sku": s,
                    "quantity": q,
                }
                for s, q in lines
            ],
        )
        self.state.update_order_link(link.id, vendor_order_id=vendor_order_id, vendor_order_name=vendor_order_name)
        return self.state.order_link_by_id(link.id), order

    def run(self) -> list[Any]:
        # A pass opens its connectors afresh, as each `vsc sync` does.
        self.ctx.close()
        return tracking.run(self.ctx, "acme", self.state.begin_pass(dry_run=False), False)

    def fulfilled(self, order_id: str) -> dict[str, int]:
        o = self.merchant.order(order_id)
        by_id = {v: s for s, v in self.merchant_variants.items()}
        return {by_id[li["variantId"]]: li["fulfilled"] for li in o["lineItems"]}


def make_world(tmp_path, monkeypatch, vendor: VendorStore, **settings: Any) -> World:
    merchant = ShopifySandbox(shop="mall").start()
    tee = merchant.add_product(
        "Tee",
        options={"Size": ["M", "L"]},
        variants=[
            {"sku": "TEE-M", "price": "25.00", "options": {"Size": "M"}, "available": 50},
            {"sku": "TEE-L", "price": "27.00", "options": {"Size": "L"}, "available": 50},
        ],
    )
    mug = merchant.add_product("Mug", variants=[{"sku": "MUG", "price": "9.00", "available": 50}])
    variants = {v["sku"]: v["id"] for v in tee["variants"] + mug["variants"]}
    state = State.create(tmp_path / "vsc.db")
    monkeypatch.setenv("MALL_TOKEN", merchant.token)
    state.add_store(
        StoreRow(
            name="mall",
            platform="shopify",
            role="merchant",
            url=merchant.url,
            secret_ref={"token": {"env": "MALL_TOKEN"}},
        )
    )
    if vendor.platform == "shopify":
        monkeypatch.setenv("ACME_TOKEN", vendor.store.token)
        refs: dict[str, Any] = {"token": {"env": "ACME_TOKEN"}}
    elif vendor.platform == "woocommerce":
        monkeypatch.setenv("CK", vendor.store.consumer_key)
        monkeypatch.setenv("CS", vendor.store.consumer_secret)
        refs = {"key": {"env": "CK"}, "secret": {"env": "CS"}}
    else:
        monkeypatch.setenv("SQ", vendor.store.api_key)
        refs = {"api_key": {"env": "SQ"}}
    state.add_store(
        StoreRow(name="acme", platform=vendor.platform, role="vendor", url=vendor.store.url, secret_ref=refs)
    )
    config = Settings(vendors={"acme": {"email": "orders@acme.example"}}, **settings)
    ctx = Context(state=state, settings=config, session_kw={"backoff": 0.01})
    return World(state, ctx, merchant, vendor, variants)


@pytest.fixture(params=sorted(VENDORS))
def world(request, tmp_path, monkeypatch):
    vendor = VENDORS[request.param]()
    w = make_world(tmp_path, monkeypatch, vendor)
    yield w
    w.ctx.close()
    w.state.close()
    w.merchant.stop()
    vendor.store.stop()


def writes(actions) -> list[str]:
    return [a.kind for a in actions if a.write and a.status == "done"]


def test_shipments_are_copied_once_onto_the_vendors_lines_only(world):
    link, order = world.push()
    assert writes(world.run()) == []  # nothing shipped yet
    partial = [(link.lines[0]["vendor_line_id"], 2)] if world.vendor.platform == "shopify" else None
    world.vendor.ship(link.vendor_order_id, UPS, partial)
    world.merchant.reset_requests()
    first = world.run()
    assert writes(first) == ["fulfil"], [(a.status, a.error, a.summary) for a in first]
    assert first[0].key.startswith(f"fulfil:{order['id']}:acme:")
    m = world.merchant.order(order["id"])
    (f1,) = m["fulfillments"]
    assert f1["trackingInfo"] == [UPS]
    if world.vendor.platform == "shopify":
        assert world.fulfilled(order["id"]) == {"TEE-M": 2, "TEE-L": 0, "MUG": 0}
        # the rest, in a second parcel
        world.vendor.ship(
            link.vendor_order_id, DHL, [(link.lines[0]["vendor_line_id"], 1), (link.lines[1]["vendor_line_id"], 1)]
        )
        assert writes(world.run()) == ["fulfil"]
        f2 = world.merchant.order(order["id"])["fulfillments"][1]
        assert f2["trackingInfo"] == [DHL]
        assert sorted((x["quantity"]) for x in f2["lines"]) == [1, 1]
    # The platform says nothing about lines: the shipment holds everything left.
    assert world.fulfilled(order["id"]) == {"TEE-M": 3, "TEE-L": 1, "MUG": 0}
    assert world.merchant.order(order["id"])["displayFulfillmentStatus"] == "PARTIALLY_FULFILLED"

    world.merchant.reset_requests()
    assert writes(world.run()) == []
    assert world.merchant.count(write=True) == 0
    flinks = world.state.fulfillment_links(link.id)
    assert {f.state for f in flinks} == {"done"} and len(flinks) == (2 if world.vendor.platform == "shopify" else 1)


def test_a_later_shipment_with_nothing_left_is_reported_not_copied(world):
    if world.vendor.platform == "shopify":
        pytest.skip("Shopify shipments name their lines")
    link, order = world.push()
    world.vendor.ship(link.vendor_order_id, UPS)
    assert writes(world.run()) == ["fulfil"]
    world.vendor.ship(link.vendor_order_id, DHL)
    world.merchant.reset_requests()
    actions = world.run()
    assert [(a.kind, a.status) for a in actions] == [("not_copied", "reported")]
    assert world.merchant.count(write=True) == 0 and len(world.merchant.order(order["id"])["fulfillments"]) == 1
    assert world.run() == []  # reported once


def test_tracking_edits_follow_and_echoes_are_no_ops(world):
    if world.vendor.platform == "squarespace":
        pytest.skip("Squarespace shipments cannot be edited")
    link, order = world.push()
    shipment = world.vendor.ship(link.vendor_order_id, UPS)
    assert writes(world.run()) == ["fulfil"]
    if world.vendor.platform == "shopify":
        world.vendor.store.update_tracking(shipment, **FIXED)
    else:
        # WooCommerce tracking items are edited by deleting one and adding another.
        store = world.vendor.store
        r = requests.delete(
            f"{store.url}/wp-json/wc-shipment-tracking/v3/orders/{link.vendor_order_id}/shipment-trackings/{shipment}",
            auth=(store.consumer_key, store.consumer_secret),
            timeout=10,
        )
        assert r.status_code == 200, r.text
        world.vendor.ship(link.vendor_order_id, FIXED)
    world.merchant.reset_requests()
    actions = world.run()
    assert writes(actions) == ["update_tracking"]
    assert [w.operation for w in world.merchant.writes] == ["fulfillmentTrackingInfoUpdate"]
    (f,) = world.merchant.order(order["id"])["fulfillments"]
    assert f["trackingInfo"] == [FIXED]
    world.merchant.reset_requests()
    assert world.run() == [] and world.merchant.count(write=True) == 0


def test_a_lost_answer_never_makes_a_second_fulfillment(world):
    link, order = world.push()
    world.vendor.ship(link.vendor_order_id, UPS)
    world.merchant.inject(
        Fault(kind="cut_after", match=lambda r: world.merchant.operation_name(r) == "fulfillmentCreate")
    )
    first = world.run()
    assert [(a.kind, a.status) for a in first] == [("fulfil", "failed")]
    assert len(world.merchant.order(order["id"])["fulfillments"]) == 1  # it was applied
    (pending,) = world.state.fulfillment_links(link.id)
    assert pending.state == "pending" and pending.merchant_fulfillment_id is None
    world.merchant.clear_faults()
    world.merchant.reset_requests()
    second = world.run()
    assert [(a.kind, a.status) for a in second] == [("fulfil", "reported")]
    assert world.merchant.count(write=True) == 0
    (f,) = world.merchant.order(order["id"])["fulfillments"]
    (done,) = world.state.fulfillment_links(link.id)
    assert done.state == "done" and done.merchant_fulfillment_id == f["id"]
    assert world.fulfilled(order["id"]) == {"TEE-M": 3, "TEE-L": 1, "MUG": 0}
    assert world.run() == []


def test_a_refused_create_is_retried_after_checking_the_merchant(world):
    link, order = world.push()
    world.vendor.ship(link.vendor_order_id, UPS)
    world.merchant.inject(
        Fault(kind="status", status=500, match=lambda r: world.merchant.operation_name(r) == "fulfillmentCreate")
    )
    assert [a.status for a in world.run()] == ["failed"]
    assert world.merchant.order(order["id"])["fulfillments"] == []
    world.merchant.clear_faults()
    assert writes(world.run()) == ["fulfil"]
    assert len(world.merchant.order(order["id"])["fulfillments"]) == 1


def test_a_shipment_of_a_cancelled_order_is_a_conflict_never_copied(world):
    state = "cancel_requested" if world.vendor.platform == "squarespace" else "cancelled"
    link, order = world.push(state=state)
    world.merchant.cancel_order(order["id"])
    world.vendor.ship(link.vendor_order_id, UPS)
    world.merchant.reset_requests()
    actions = world.run()
    assert [(a.kind, a.write, a.status) for a in actions] == [("conflict", False, "reported")]
    assert actions[0].result == {"mail": "queued"}
    assert world.merchant.count(write=True) == 0 and world.merchant.order(order["id"])["fulfillments"] == []
    (mail,) = world.state.outbox()
    assert mail.kind == "conflict" and mail.recipient == "orders@acme.example"
    assert "1Z001" in mail.body and order["name"] in mail.body
    assert world.run() == []  # reported once
    assert len(world.state.outbox()) == 1


def test_dry_run_plans_and_writes_nothing(world):
    link, order = world.push()
    world.vendor.ship(link.vendor_order_id, UPS)
    world.merchant.reset_requests()
    actions = tracking.run(world.ctx, "acme", None, True)
    assert [a.kind for a in actions] == ["fulfil"] and actions[0].status == "planned"
    assert world.merchant.count(write=True) == 0 and world.state.fulfillment_links(link.id) == []
    assert world.state.cursor("acme", tracking.STREAM) is None


def test_the_customer_is_notified_when_the_setting_says_so(tmp_path, monkeypatch):
    vendor = shopify_vendor()
    w = make_world(tmp_path, monkeypatch, vendor, tracking_notify_customer=True)
    try:
        link, order = w.push()
        w.vendor.ship(link.vendor_order_id, UPS)
        w.merchant.reset_requests()
        assert writes(w.run()) == ["fulfil"]
        (create,) = w.merchant.writes
        assert create.body["variables"]["fulfillment"]["notifyCustomer"] is True
    finally:
        w.ctx.close()
        w.merchant.stop()
        vendor.store.stop()


def test_woocommerce_without_the_extension_reads_the_meta_and_completed_orders(tmp_path, monkeypatch):
    vendor = woocommerce_vendor(shipment_tracking=False)
    w = make_world(tmp_path, monkeypatch, vendor)
    try:
        link, order = w.push()
        vendor.store.complete_order(int(link.vendor_order_id))
        assert writes(w.run()) == ["fulfil"]
        (f,) = w.merchant.order(order["id"])["fulfillments"]
        assert f["trackingInfo"] == [] and w.fulfilled(order["id"]) == {"TEE-M": 3, "TEE-L": 1, "MUG": 0}
        # Tracking added after completing (the plugin writes the order meta): it joins that fulfillment.
        vendor.store.add_tracking(int(link.vendor_order_id), UPS["number"], UPS["company"], UPS["url"])
        w.merchant.reset_requests()
        assert writes(w.run()) == ["update_tracking"]
        (f,) = w.merchant.order(order["id"])["fulfillments"]
        assert f["trackingInfo"] == [UPS]
        w.merchant.reset_requests()
        assert w.run() == [] and w.merchant.count(write=True) == 0
    finally:
        w.ctx.close()
        w.merchant.stop()
        vendor.store.stop()


def reads_of(store, order_id: str) -> list[str]:
    """Requests a vendor sandbox saw that name one order (in the path or the GraphQL variables)."""
    return [r.path for r in store.requests if order_id in r.path or order_id in repr(r.body)]


def test_reads_are_incremental_once_a_cursor_is_set(world):
    link, order = world.push()
    world.vendor.ship(link.vendor_order_id, UPS)
    world.ctx.settings = Settings(vendors={"acme": {"email": "orders@acme.example"}}, overlap_seconds=0)
    assert writes(world.run()) == ["fulfil"]
    # Time passes (the platforms keep times to the second, and this test runs within one):
    # the cursor is past the shipment, and the vendor's next changes come later still.
    later = world.state.cursor("acme", tracking.STREAM) + timedelta(seconds=5)
    world.state.set_cursor("acme", tracking.STREAM, later)
    world.vendor.store.clock = lambda: time.time() + 20
    world.vendor.store.reset_requests()
    assert world.run() == []
    try:
        list(world.ctx.connector("acme").list_orders(None))
    except Unsupported:
        assert reads_of(world.vendor.store, link.vendor_order_id)  # no feed: open links are read
        return
    # Nothing changed on the vendor since the cursor: its order's shipments are not read again.
    assert reads_of(world.vendor.store, link.vendor_order_id) == []
    world.vendor.store.reset_requests()
    if world.vendor.platform == "squarespace":
        world.vendor.store.add_internal_note(link.vendor_order_id, "packed twice")
        assert world.run() == []
    else:
        shipment = world.merchant.order(order["id"])["fulfillments"][0]["id"]
        if world.vendor.platform == "shopify":
            vendor_shipment = world.vendor.store.order(link.vendor_order_id)["fulfillments"][0]["id"]
            world.vendor.store.update_tracking(vendor_shipment, **FIXED)
        else:
            world.vendor.ship(link.vendor_order_id, FIXED)  # a second tracking item: reported only
        actions = world.run()
        assert actions and all(a.target in (shipment, order["id"]) for a in actions)
    assert reads_of(world.vendor.store, link.vendor_order_id)  # the changed order was read


def test_the_shopify_connector_maps_lines_to_fulfillment_orders(tmp_path):
    shop = ShopifySandbox(shop="mall").start()
    try:
        p = shop.add_product("Mug", variants=[{"sku": "MUG", "price": "9.00", "available": 10}])
        o = shop.place_order([(p["variants"][0]["id"], 4)])
        c = ShopifyConnector.open("mall", shop.url, shop.token)
        line = o["lineItems"][0]["id"]
        fid = c.create_fulfillment(o["id"], [(line, 3)], None)
        (f,) = c.list_fulfillments(o["id"])
        assert f.id == fid and f.lines == ((line, 3),) and f.tracking == () and f.status == "success"
        # more than remains: capped; then nothing is left, which is a typed refusal
        fid2 = c.create_fulfillment(o["id"], [(line, 5)], None)
        assert c.list_fulfillments(o["id"])[1].lines == ((line, 1),) and fid2 != fid
        from vsc.errors import UserErrors

        with pytest.raises(UserErrors) as caught:
            c.create_fulfillment(o["id"], [(line, 1)], None)
        assert "NOTHING_TO_FULFILL" in caught.value.codes
        c.session.close()
    finally:
        shop.stop()


def test_years_of_pushed_orders_are_not_loaded_by_a_pass(world, monkeypatch):
    """A vendor's pushed orders pile up for ever: a pass with a change feed looks up only the
    orders that changed (and those vsc touched), never the whole history (40,000 old links were
    all loaded, every pass, by the orders and tracking streams)."""
    link, order = world.push()
    world.vendor.ship(link.vendor_order_id, UPS)
    world.ctx.settings = Settings(vendors={"acme": {"email": "orders@acme.example"}}, overlap_seconds=0)
    assert writes(world.run()) == ["fulfil"]
    try:
        list(world.ctx.connector("acme").list_orders(None))
    except Unsupported:
        pytest.skip("no changed-orders feed on this platform: its open links are all read")
    old = "2024-01-01T00:00:00.000000Z"
    with world.state.atomic():  # (one transaction: autocommit would sync each row)
        world.state.db.conn.executemany(
            "INSERT INTO order_links (vendor, merchant_order_id, merchant_order_name, vendor_order_id, key, "
            "marker, state, lines, fingerprint, created_at, updated_at) "
            "VALUES ('acme', ?, ?, ?, ?, ?, 'pushed', '[]', '{}', ?, ?)",
            [(f"gid://old/{i}", f"#{i}", f"old-{i}", f"k-{i}", f"m-{i}", old, old) for i in range(40_000)],
        )
    later = world.state.cursor("acme", tracking.STREAM) + timedelta(seconds=5)
    world.state.set_cursor("acme", tracking.STREAM, later)
    world.state.set_cursor("acme", tracking.LOOKED, later)
    world.vendor.store.clock = lambda: time.time() + 20
    world.vendor.store.reset_requests()
    loaded = []
    olink = State._olink
    monkeypatch.setattr(State, "_olink", staticmethod(lambda r: loaded.append(r["id"]) or olink(r)))
    assert world.run() == []
    assert orders.unapplied_quantities(world.state, "acme") == {}
    assert len(loaded) < 10  # the links of changed orders only, not the 40,000
    assert not any("old-" in r.path for r in world.vendor.store.requests)
