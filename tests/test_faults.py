"""Convergence under faults: with 20 % of the requests to every store failing, repeated passes reach
the end state of a fault-free run, with no duplicate order, fulfillment or stock move.

A marketplace (Shopify merchant; vendors on Shopify, WooCommerce and Squarespace) lives through the
whole story twice, on fresh stores and a fresh database each time: publish, a listing edit, stock
changes on both sides, merchant orders pushed to the vendors, an attribute edit, a cancellation, and
vendor shipments with tracking (one partial) copied back. The reference run has no faults; the other
fails a seeded, reproducible 20 % of all requests to each store with a mix of every fault kind the
sandboxes inject (429 with Retry-After, Shopify THROTTLED, 500/502/503, timeouts with and without the
write applied, the connection cut before the store applies a write and after it). After each step the
real `vsc` command line runs passes until one exits 0: every pass before it must exit 1 and say why.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller

from tests.marketplace import VendorStore, start_merchant, start_vendor
from tests.test_notify import Inbox
from tests.test_orders import ADDRESS
from vsc import cli as cli_module
from vsc.sandbox.base import Fault
from vsc.sandbox.shopify import GRAPHQL_PATH, ShopifySandbox
from vsc.sandbox.squarespace import SquarespaceSandbox
from vsc.sandbox.woocommerce import WooCommerceSandbox

# Another seed (or a higher rate) explores other fault sequences: VSC_FAULTS_SEED=7 pytest ...
SEED = int(os.environ.get("VSC_FAULTS_SEED", "1"))
RATE = float(os.environ.get("VSC_FAULTS_RATE", "0.2"))
#: passes allowed per step before the test gives up on convergence
MAX_PASSES = 15
# No real waiting between retries (the sandboxes count requests, they do not need time). Under
# faults, a short read timeout keeps each injected stall cheap; a normal answer takes milliseconds.
# The fault-free run waits as long as vsc does, so a slow machine cannot fail it.
READ_TIMEOUT = 0.3
SESSION = {"sleep": lambda s: None, "timeout": (10.0, 60.0)}
STALL = READ_TIMEOUT * 2

VENDORS = {"tees": "shopify", "mugs": "woocommerce", "prints": "squarespace"}
SKUS = {"tees": ("TEE-S", "TEE-M"), "mugs": ("MUG-S", "MUG-M"), "prints": ("PRT-S", "PRT-M")}
START = {"S": 8, "M": 6}
UPS = {"number": "1Z001", "company": "UPS", "url": "https://ups.example/t/1Z001"}
UPS2 = {"number": "1Z002", "company": "UPS", "url": "https://ups.example/t/1Z002"}
USPS = {"number": "9400111", "company": "USPS", "url": "https://usps.example/t/9400111"}
DHL = {"number": "JD003", "company": "DHL", "url": "https://dhl.example/t/JD003"}


def fault_mix(platform: str, seed: int) -> Fault:
    """RATE of every request to a store on `platform` fails, each failure one of the kinds it produces."""
    kinds = [
        Fault("status", status=500),
        Fault("status", status=502),
        Fault("status", status=503),
        Fault("timeout", delay=STALL),  # the store applied it; the answer never came
        Fault("timeout", delay=STALL, applied=False),
        Fault("cut_before"),
        Fault("cut_after"),  # a lost response
    ]
    if platform == "shopify":
        kinds += [Fault("throttle"), Fault("status", status=429, retry_after=2)]  # GraphQL THROTTLED; REST 429
    elif platform == "woocommerce":
        kinds += [Fault("status", status=429, retry_after=2)]  # core has no limit; hosts and WAFs answer 429
    else:
        kinds += [Fault("throttle")]  # 429 TOO_MANY_REQUESTS, no Retry-After (platforms/squarespace.md)
    return Fault("mix", rate=RATE, choices=kinds, seed=seed)


@dataclass
class Mall:
    merchant: ShopifySandbox
    vendors: dict[str, VendorStore]
    faults: list[Fault]
    passes: list[tuple[str, int]]  # (step, exit code) of every pass
    steps: list[tuple[str, dict[str, Any]]]  # (step, snapshot once its passes caught up)
    expected: list[tuple[str, dict[str, Any]]]  # the fault-free run's steps, to compare as they come
    merchant_variants: dict[str, str] = field(default_factory=dict)  # sku → merchant variant id

    def stores(self) -> list[Any]:
        return [self.merchant, *(v.store for v in self.vendors.values())]

    def stop(self) -> None:
        for s in self.stores():
            s.stop()


def open_mall(cli, monkeypatch, smtp_port: int) -> Mall:
    settings = (
        f"smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false, from: market@example.com}}\n"
        "vendors:\n" + "".join(f"  {name}: {{email: orders@{name}.example}}\n" for name in VENDORS)
    )
    merchant = start_merchant(cli, monkeypatch, settings=settings)
    vendors = {}
    for name, platform in VENDORS.items():
        kw = {"requests_per_minute": None, "order_creates_per_hour": None} if platform == "squarespace" else {}
        vendors[name] = start_vendor(platform, name, cli, monkeypatch, **kw)
        vendors[name].add_shirt({f"{SKUS[name][0]}": START["S"], f"{SKUS[name][1]}": START["M"]})
    return Mall(merchant, vendors, [], [], [], [])


def converge(cli, mall: Mall, step: str, *args: str) -> list[int]:
    """Run `vsc sync` (or `vsc ARGS`) until it exits 0; every earlier run must exit 1 and say why."""
    codes = []
    for _ in range(MAX_PASSES):
        r = cli(*(args or ("sync", "--json")))
        codes.append(r.code)
        mall.passes.append((step, r.code))
        if r.code == 0:
            if not args:
                mall.steps.append((step, snapshot(mall)))
                if mall.expected:  # the first step that ends elsewhere than without faults, as it happens
                    assert mall.steps[-1] == mall.expected[len(mall.steps) - 1], differences(
                        step, mall.steps[-1][1], mall.expected[len(mall.steps) - 1][1]
                    )
            return codes
        assert r.code == 1, (step, r)
        if not args:
            report = r.json()
            assert report["errors"] and not report["ok"], (step, report)
    raise AssertionError(f"{step}: no pass exited 0 in {MAX_PASSES}: {codes}")


def differences(step: str, got: dict[str, Any], want: dict[str, Any]) -> str:
    """What differs between two snapshots, part by part (the whole pair is too long to read)."""
    lines = [f"after {step!r}, with faults vs without:"]
    for key in sorted(set(got) | set(want)):
        a, b = got.get(key), want.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            lines += [f"  {key}/{k}: {a.get(k)!r} != {b.get(k)!r}" for k in keys]
        elif a != b:
            lines.append(f"  {key}: {a!r} != {b!r}")
    return "\n".join(lines)


def a_second_later(mall: Mall) -> None:
    """Move every store's clock a second on, before people act on the stores again.

    Passes here follow each other within milliseconds, unlike cron's minutes; platforms stamp
    `updatedAt` in whole seconds, so an edit in the very second vsc last read an item would
    share its stamp. (vsc's handling of that coincidence is not what this test is about.)"""
    for store in mall.stores():
        store.clock = lambda clock=store.clock: clock() + 1.0


def story(cli, mall: Mall) -> dict[str, Any]:
    """The mission story; returns what the test needs to check the end state."""
    m, v = mall.merchant, mall.vendors
    for name, vendor in v.items():
        converge(cli, mall, "publish", "map", "add", name, next(iter(vendor.products.values())))
    converge(cli, mall, "after publish")
    links = cli("map", "list", "--json").json()
    mall.merchant_variants.update({x["sku"]: x["merchant_variant_id"] for link in links for x in link["variants"]})

    # The vendors edit their listings: a new title, a new price on the S size.
    a_second_later(mall)
    tees, mugs, prints = v["tees"], v["mugs"], v["prints"]
    tees.store.update_product(tees.products["TEE-S"], title="Linen Shirt (relaxed)")
    tees.store.update_variant(tees.variants["TEE-S"], price="44.00")
    mugs.store.update_product(int(mugs.products["MUG-S"]), name="Linen Shirt (washed)")
    mugs.store.update_variation(int(mugs.products["MUG-S"]), int(mugs.variants["MUG-S"]), regular_price="46.00")
    prints.store.update_product(prints.products["PRT-S"], name="Linen Shirt (printed)")
    prints.store.update_variant(prints.variants["PRT-S"], price="48.00")
    converge(cli, mall, "listing edit")

    # Stock moves on the vendors' side: a restock and a storefront sale each.
    a_second_later(mall)
    sold: Counter[str] = Counter()
    restock: Counter[str] = Counter()
    for name, vendor in v.items():
        s_sku, m_sku = SKUS[name]
        vendor.set_stock(m_sku, START["M"] + 2)
        restock[m_sku] += 2
        vendor.sell(s_sku, 1)
        sold[s_sku] += 1
    converge(cli, mall, "vendor stock")

    # Shoppers buy on the merchant: one order from all three vendors (and the merchant's own mug),
    # one from two vendors, one from the Shopify vendor alone.
    a_second_later(mall)
    own = m.add_product("House Mug", variants=[{"sku": "HOUSE", "price": "9.00", "available": 10}])
    lines = {
        "A": [("TEE-S", 2), ("MUG-S", 1), ("PRT-S", 1)],
        "B": [("MUG-M", 1), ("PRT-M", 2)],
        "C": [("TEE-M", 1)],
    }
    orders = {}
    for key, items in lines.items():
        extra = [(own["variants"][0]["id"], 1)] if key == "A" else []
        orders[key] = m.place_order(
            [(mall.merchant_variants[sku], q) for sku, q in items] + extra,
            email="ada@example.com",
            shipping_address=ADDRESS,
            note="gift wrap",
        )
        for sku, q in items:
            sold[sku] += q
    converge(cli, mall, "orders")

    # The merchant edits order A's attributes, and cancels order B.
    a_second_later(mall)
    m.update_order(
        orders["A"]["id"], note="leave at the door", shipping_address={**ADDRESS, "address1": "2 Difference Rd"}
    )
    converge(cli, mall, "attribute edit")
    a_second_later(mall)
    m.cancel_order(orders["B"]["id"], restock=True)
    for sku, q in lines["B"]:
        sold[sku] -= q
    converge(cli, mall, "cancellation")

    # Squarespace cannot cancel through its API: the vendor does it in its admin after the e-mail.
    a_second_later(mall)
    b_print = pushed_order(v["prints"], "PRT-M")
    prints.store.cancel_order(b_print["id"], restock=True)
    # The vendors ship order A (the Shopify vendor only one of its two shirts first) and order C.
    a_tee = pushed_order(v["tees"], "TEE-S")
    c_tee = pushed_order(v["tees"], "TEE-M")
    tees.store.fulfill_order(a_tee["id"], [(tees.variants["TEE-S"], 1)], UPS)
    a_mug = pushed_order(v["mugs"], "MUG-S")
    mugs.store.add_tracking(a_mug["id"], USPS["number"], USPS["company"], USPS["url"])
    mugs.store.complete_order(a_mug["id"])
    a_print = pushed_order(v["prints"], "PRT-S")
    prints.store.fulfill(a_print["id"], [{"carrier": DHL["company"], "tracking_number": DHL["number"]}])
    tees.store.fulfill_order(c_tee["id"], None, UPS2)
    converge(cli, mall, "shipments")
    a_second_later(mall)
    tees.store.fulfill_order(a_tee["id"], None, {**UPS2, "number": "1Z004"})
    converge(cli, mall, "rest of the shipment")
    return {"sold": sold, "restock": restock, "orders": orders}


def pushed_order(vendor: VendorStore, sku: str) -> dict[str, Any]:
    """The one order vsc pushed into `vendor` holding `sku`."""
    key = "line_items" if vendor.platform == "woocommerce" else "lineItems"
    found = [o for o in vendor.pushed_orders() if any(li["sku"] == sku for li in o[key])]
    assert len(found) == 1, f"{len(found)} pushed orders hold {sku} in the {vendor.platform} vendor's store"
    return found[0]


def snapshot(mall: Mall) -> dict[str, Any]:
    """Every store's state that the story changes, without ids or timestamps."""
    m = mall.merchant
    loc = m.primary_location_id
    out: dict[str, Any] = {"merchant orders": {}}
    # A list, not a dict by title: a listing published twice must show as two.
    out["listings"] = sorted(
        (
            p["vendor"],
            p["title"],
            p["status"],
            m.online_store_published(p["id"]),
            tuple(sorted((v["sku"], v["price"], m.available(v["id"], loc)) for v in p["variants"])),
        )
        for p in m.products()
    )
    for o in m.orders():
        order = m.order(o["id"])
        skus = {li["id"]: li["sku"] for li in order["lineItems"]}
        out["merchant orders"][order["name"]] = {
            "cancelled": order["cancelledAt"] is not None,
            "status": order["displayFulfillmentStatus"],
            "lines": sorted((li["sku"], li["quantity"], li["fulfilled"]) for li in order["lineItems"]),
            "fulfillments": sorted(
                (
                    tuple(sorted((skus.get(x["lineItemId"], x["lineItemId"]), x["quantity"]) for x in f["lines"])),
                    tuple(sorted((t["number"], t["company"]) for t in f.get("trackingInfo") or [])),
                )
                for f in order["fulfillments"]
            ),
        }
    for name, vendor in mall.vendors.items():
        pushed = vendor.pushed_orders()
        out[name] = {
            "stock": {sku: vendor.stock(sku) for sku in SKUS[name]},
            "orders": sorted(vendor_order_view(vendor, o) for o in pushed),
        }
    return out


def vendor_order_view(vendor: VendorStore, o: dict[str, Any]) -> tuple:
    if vendor.platform == "shopify":
        return (
            tuple(sorted((li["sku"], li["quantity"]) for li in o["lineItems"])),
            o["cancelledAt"] is not None,
            o["note"],
            o["shippingAddress"]["address1"],
            o["displayFulfillmentStatus"],
        )
    if vendor.platform == "woocommerce":
        return (
            tuple(sorted((li["sku"], li["quantity"]) for li in o["line_items"])),
            o["status"],
            o["customer_note"],
            o["shipping"]["address_1"],
        )
    return (tuple(sorted((li["sku"], li["quantity"]) for li in o["lineItems"])), o["fulfillmentStatus"])


def run(cli, monkeypatch, *, faults: bool, expected: list | None = None) -> tuple[Mall, dict, dict, list]:
    """The story on fresh stores, a fresh database and a fresh SMTP server: (mall, facts, end state,
    e-mails as (to, subject)). With `faults`, every store fails RATE of its requests; `expected`
    (the fault-free run's steps) is compared with each step as it converges."""
    inbox = Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    mall = open_mall(cli, monkeypatch, port)
    mall.expected = list(expected or [])
    try:
        if faults:
            monkeypatch.setitem(SESSION, "timeout", (10.0, READ_TIMEOUT))
            platforms = ["shopify", *(v.platform for v in mall.vendors.values())]
            for i, (store, platform) in enumerate(zip(mall.stores(), platforms, strict=True)):
                mall.faults.append(store.inject(fault_mix(platform, SEED + i)))
        facts = story(cli, mall)
        # Caught up means caught up: without faults, one more pass finds nothing to write.
        for store in mall.stores():
            store.clear_faults()
            store.reset_requests()
        r = cli("sync", "--json")
        assert r.code == 0 and [a for a in r.json()["actions"] if a["write"]] == [], r
        assert sum(store.count(write=True) for store in mall.stores()) == 0
        # The vendor's own order number depends on the order the pushes landed in: leave it out.
        mails = [(msg["To"], re.sub(r" order \S+ \(", " order (", msg["Subject"])) for msg in inbox.messages]
        return mall, facts, snapshot(mall), mails
    finally:
        mall.stop()
        smtp.stop()


@pytest.fixture
def fast_sessions(monkeypatch):
    """Every `vsc` command of the test opens its stores with short timeouts and no real sleeps."""
    from vsc.commands import mapping, operating

    opened = cli_module.open_context

    def open_context(**kw):
        ctx = opened(**kw)
        ctx.session_kw = dict(SESSION)
        return ctx

    for module in (cli_module, mapping, operating):
        monkeypatch.setattr(module, "open_context", open_context)


def test_twenty_percent_faults_on_every_store_converge_to_the_fault_free_end_state(
    cli, monkeypatch, isolated, fast_sessions
):
    ref_mall, ref_facts, reference, ref_mail = run(cli, monkeypatch, faults=False)
    assert {code for _, code in ref_mall.passes} == {0}, ref_mall.passes  # fault-free: every pass is clean

    os.rename(isolated / "vsc.db", isolated / "reference.db")
    mall, facts, end, mail = run(cli, monkeypatch, faults=True, expected=ref_mall.steps)

    # Faults fired on every store, of every kind, and made passes fail before they caught up.
    fired = Counter[str]()
    for fault in mall.faults:
        assert fault.fired > 0, fault
        fired += fault.kinds
    assert set(fired) == {c.label for f in mall.faults for c in f.choices}, fired
    codes = [code for _, code in mall.passes]
    assert codes.count(1) > 0 and set(codes) == {0, 1}, mall.passes
    # After every step (checked as it came), the state the passes converged to is the fault-free run's.
    assert [step for step, _ in mall.steps] == [step for step, _ in ref_mall.steps]
    assert end == reference

    # No duplicate order on any vendor, no duplicate fulfillment on the merchant, no stock move twice.
    for name, vendor in mall.vendors.items():
        orders = vendor.pushed_orders()
        assert len(orders) == len(ref_mall.vendors[name].pushed_orders()) > 0
        for sku in SKUS[name]:
            size = sku[-1]
            assert vendor.stock(sku) == START[size] + facts["restock"][sku] - facts["sold"][sku], sku
    tracking = Counter(t for o in end["merchant orders"].values() for f in o["fulfillments"] for t in f[1])
    assert tracking and max(tracking.values()) == 1, tracking

    # Each vendor got each e-mail once (one per order pushed to it), the same ones as without faults.
    assert sorted(mail) == sorted(ref_mail)
    order_mails = Counter(to for to, subject in mail if subject.startswith("New order"))
    assert order_mails == {f"orders@{name}.example": len(v.pushed_orders()) for name, v in mall.vendors.items()}
    assert len(set(mail)) == len(mail) and {to for to, _ in mail} == {f"orders@{n}.example" for n in VENDORS}

    con = sqlite3.connect(isolated / "vsc.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()


def test_fault_rules_pick_requests_by_operation_method_path_and_rate():
    """Each rule fires on the requests it names, in each platform's own error shape."""
    shop = ShopifySandbox(shop="mall").start()
    woo = WooCommerceSandbox().start()
    sq = SquarespaceSandbox(requests_per_minute=None).start()
    try:
        gql = f"{shop.url}{GRAPHQL_PATH}"
        headers = {"X-Shopify-Access-Token": shop.token}

        def graphql(query: str) -> requests.Response:
            return requests.post(gql, json={"query": query}, headers=headers, timeout=5)

        set_title = 'mutation Rename { productSet(input: {title: "Hat"}, synchronous: true) { product { id } } }'
        shop.inject(Fault("throttle", operation="productSet", times=1))
        shop.inject(Fault("status", status=503, operation="ShopName", times=1))
        assert graphql("{ shop { name } }").status_code == 200  # neither rule names this one
        r = graphql("query ShopName { shop { name } }")  # by GraphQL operation name
        assert r.status_code == 503 and r.json() == {"errors": "Internal Server Error"}
        r = graphql(set_title)  # by root field: THROTTLED rides on HTTP 200, nothing ran
        assert r.status_code == 200 and r.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert shop.products() == []
        assert graphql(set_title).json()["data"]["productSet"]["product"]["id"]

        auth = (woo.consumer_key, woo.consumer_secret)
        woo.inject(Fault("status", status=429, retry_after=7, method="POST", path=r"/orders$", times=1))
        assert requests.get(f"{woo.url}/wp-json/wc/v3/orders", auth=auth, timeout=5).status_code == 200
        r = requests.post(f"{woo.url}/wp-json/wc/v3/orders", json={}, auth=auth, timeout=5)
        assert r.status_code == 429 and r.headers["Retry-After"] == "7" and r.json()["data"]["status"] == 429
        woo.inject(Fault("status", status=502, operation="orders.list", times=1))  # from the proxy, in HTML
        r = requests.get(f"{woo.url}/wp-json/wc/v3/orders", auth=auth, timeout=5)
        assert r.status_code == 502 and r.headers["Content-Type"].startswith("text/html") and "Bad Gateway" in r.text

        sq_headers = {"Authorization": f"Bearer {sq.api_key}", "User-Agent": "vsc-test"}
        sq.inject(Fault("throttle", operation="orders.list", times=1))
        r = requests.get(f"{sq.url}/1.0/commerce/orders", headers=sq_headers, timeout=5)
        assert r.status_code == 429 and "Retry-After" not in r.headers

        # Stalls: the client times out either way; the store applied the first write, not the second.
        item = woo.add_product("Cap", stock=5)
        for applied, stock in ((True, 1), (False, 2)):
            woo.inject(Fault("timeout", delay=0.6, applied=applied, method="PUT", times=1))
            with pytest.raises(requests.Timeout):
                requests.put(
                    f"{woo.url}/wp-json/wc/v3/products/{item['id']}",
                    json={"manage_stock": True, "stock_quantity": stock if applied else 9},
                    auth=auth,
                    timeout=0.3,
                )
            assert woo.stock(item["id"]) == 1

        # A mix fires at its rate and draws its kinds from its own seed: the same seed, the same faults.
        draws = []
        for _ in range(2):
            mix = Fault("mix", rate=0.5, seed=7, choices=[Fault("status", status=500), Fault("cut_before")])
            shop.faults[:] = [mix]
            codes = []
            for _ in range(40):
                try:
                    codes.append(graphql("{ shop { name } }").status_code)
                except requests.ConnectionError:
                    codes.append(0)
            draws.append(codes)
            assert 10 < mix.fired < 30 and set(mix.kinds) == {"status 500", "cut_before"}
        assert draws[0] == draws[1]
    finally:
        for s in (shop, woo, sq):
            s.stop()
