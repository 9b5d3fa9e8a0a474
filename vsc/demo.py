"""`vsc demo` and `vsc sandbox`: the sandbox stores, seeded with a small marketplace.

The demo runs the real engine against sandbox stores over real HTTP on
127.0.0.1, on a temporary database, and tells what happens at each step.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from vsc import config, engine
from vsc.engine import mapping
from vsc.engine.context import Context
from vsc.engine.stores import SecretInput, connect
from vsc.sandbox.shopify import ShopifySandbox
from vsc.sandbox.squarespace import SquarespaceSandbox
from vsc.sandbox.woocommerce import WooCommerceSandbox
from vsc.state import State

DEMO_SETTINGS = """\
auto_variants: true
price_rule: {percent: 20, rounding: ending, ending: 0.99}
stock_buffer: 1
vendors:
  tees-on-shopify: {vendor_name: Tee Works, email: orders@teeworks.example}
  mugs-on-woo: {vendor_name: Mug House, email: hello@mughouse.example}
  prints-on-squarespace: {vendor_name: Print Studio, email: studio@prints.example}
"""


@dataclass
class Marketplace:
    merchant: ShopifySandbox
    shopify: ShopifySandbox
    woo: WooCommerceSandbox
    squarespace: SquarespaceSandbox

    def stores(self) -> list[Any]:
        return [self.merchant, self.shopify, self.woo, self.squarespace]

    def stop(self) -> None:
        for s in self.stores():
            s.stop()


def seed(m: Marketplace, products: int = 3) -> dict[str, list[Any]]:
    """Give each vendor store a few products; returns the vendor product ids by store."""
    ids: dict[str, list[Any]] = {"shopify": [], "woo": [], "squarespace": []}
    colours = ["Black", "White", "Olive", "Sand", "Navy"]
    for i in range(products):
        colour = colours[i % len(colours)]
        p = m.shopify.add_product(
            f"{colour} Organic Tee",
            options={"Size": ["S", "M", "L"]},
            variants=[
                {"sku": f"TEE-{colour[:3].upper()}-{s}", "price": "24.00", "options": {"Size": s}, "available": 5 + i}
                for s in ("S", "M", "L")
            ],
            images=[f"https://cdn.example/tees/{colour.lower()}.jpg"],
            tags=["cotton", "tees"],
            product_type="T-Shirts",
            description_html=f"<p>A {colour.lower()} tee in organic cotton.</p>",
        )
        ids["shopify"].append(p["id"])
        w = m.woo.add_product(
            f"{colour} Stoneware Mug",
            attributes=[{"name": "Size", "options": ["8oz", "12oz"]}],
            variations=[
                {"attributes": {"Size": "8oz"}, "sku": f"MUG-{colour[:3].upper()}-8", "price": "14.00", "stock": 10},
                {"attributes": {"Size": "12oz"}, "sku": f"MUG-{colour[:3].upper()}-12", "price": "16.00", "stock": 4},
            ],
            images=[f"https://cdn.example/mugs/{colour.lower()}.jpg"],
            tags=["kitchen"],
            description="<p>Hand-glazed stoneware.</p>",
        )
        ids["woo"].append(w["id"])
        s = m.squarespace.add_product(
            f"{colour} Risograph Print",
            [
                {
                    "sku": f"PRT-{colour[:3].upper()}-A4",
                    "price": "30.00",
                    "attributes": {"Format": "A4"},
                    "quantity": 6,
                },
                {
                    "sku": f"PRT-{colour[:3].upper()}-A3",
                    "price": "45.00",
                    "attributes": {"Format": "A3"},
                    "quantity": 2,
                },
            ],
            variant_attributes=["Format"],
            tags=["art"],
            description="<p>Two-colour risograph.</p>",
            images=[f"https://cdn.example/prints/{colour.lower()}.jpg"],
        )
        ids["squarespace"].append(s["id"])
    return ids


@contextmanager
def marketplace(port: int = 0, products: int = 3) -> Iterator[tuple[Marketplace, dict[str, list[Any]]]]:
    """Start the four sandbox stores (ports port..port+3 when port is given) and seed them."""

    def at(i: int) -> int:
        return port + i if port else 0

    m = Marketplace(
        merchant=ShopifySandbox(shop="marketplace", port=at(0)),
        shopify=ShopifySandbox(shop="tee-works", location="Tee Works warehouse", port=at(1)),
        woo=WooCommerceSandbox(port=at(2)),
        squarespace=SquarespaceSandbox(port=at(3)),
    )
    for s in m.stores():
        s.start()
    try:
        yield m, seed(m, products)
    finally:
        m.stop()


def _connect_all(state: State, m: Marketplace) -> None:
    from vsc.connectors.shopify import ShopifyConnector
    from vsc.connectors.squarespace import SquarespaceConnector
    from vsc.connectors.woocommerce import WooCommerceConnector

    os.environ["VSC_DEMO_MERCHANT_TOKEN"] = m.merchant.token
    os.environ["VSC_DEMO_TEES_TOKEN"] = m.shopify.token
    os.environ["VSC_DEMO_WOO_KEY"] = m.woo.consumer_key
    os.environ["VSC_DEMO_WOO_SECRET"] = m.woo.consumer_secret
    os.environ["VSC_DEMO_SQSP_KEY"] = m.squarespace.api_key
    connect(
        state,
        platform="shopify",
        name="marketplace",
        role="merchant",
        url=m.merchant.url,
        inputs=[SecretInput("token", None, "VSC_DEMO_MERCHANT_TOKEN", "--token-env")],
        build=lambda v: ShopifyConnector.open("marketplace", m.merchant.url, v["token"]),
    )
    connect(
        state,
        platform="shopify",
        name="tees-on-shopify",
        role="vendor",
        url=m.shopify.url,
        inputs=[SecretInput("token", None, "VSC_DEMO_TEES_TOKEN", "--token-env")],
        build=lambda v: ShopifyConnector.open("tees-on-shopify", m.shopify.url, v["token"]),
    )
    connect(
        state,
        platform="woocommerce",
        name="mugs-on-woo",
        role="vendor",
        url=m.woo.url,
        inputs=[
            SecretInput("key", None, "VSC_DEMO_WOO_KEY", "--key-env"),
            SecretInput("secret", None, "VSC_DEMO_WOO_SECRET", "--secret-env"),
        ],
        build=lambda v: WooCommerceConnector.open("mugs-on-woo", m.woo.url, v["key"], v["secret"]),
    )
    connect(
        state,
        platform="squarespace",
        name="prints-on-squarespace",
        role="vendor",
        url=m.squarespace.url,
        inputs=[SecretInput("api_key", None, "VSC_DEMO_SQSP_KEY", "--api-key-env")],
        build=lambda v: SquarespaceConnector.open("prints-on-squarespace", v["api_key"], m.squarespace.url),
    )


def _listing_table(m: Marketplace, ctx: Context, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("vendor", "listing", "status", "variants (sku price stock)"):
        table.add_column(col)
    location = m.merchant.primary_location_id
    for link in ctx.state.product_links():
        p = m.merchant.product(link.merchant_product_id)
        if p is None:
            table.add_row(link.vendor, f"[dim](deleted) {link.merchant_product_id}[/]", "-", "")
            continue
        variants = ", ".join(
            f"{v['sku']} {v['price']} ×{m.merchant.available(v['id'], location)}" for v in p["variants"]
        )
        table.add_row(p["vendor"], p["title"], p["status"].lower(), variants)
    return table


def _pass_table(result: Any, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("vendor")
    table.add_column("what vsc did")
    table.add_column("status")
    for a in result.actions:
        table.add_row(a.vendor or a.store, a.summary, a.status)
    if not result.actions:
        table.add_row("-", "nothing changed, nothing written", "ok")
    return table


def run_demo(out: Console, *, keep: bool = False) -> None:
    """Tell the whole story on sandbox stores; raises if any step does not do what it says."""
    tmp = Path(tempfile.mkdtemp(prefix="vsc-demo-"))
    out.print(
        Panel(
            "A Shopify marketplace takes in three vendors, on Shopify,\nWooCommerce and Squarespace. "
            "Every store is a local sandbox\non 127.0.0.1, and the database is a temporary file.",
            title="vsc demo",
        )
    )
    with marketplace() as (m, ids):
        state = State.create(tmp / "vsc.db")
        (tmp / "vsc.yaml").write_text(DEMO_SETTINGS)
        settings = config.load(tmp / "vsc.yaml")
        ctx = Context(state=state, settings=settings)
        try:
            out.rule("1. Connect the stores (each checked with one call before it is saved)")
            _connect_all(state, m)
            table = Table("store", "platform", "role", "url")
            for s in state.stores():
                table.add_row(s.name, s.platform, s.role, s.url)
            out.print(table)
            out.print("Settings: prices +20 % ending in .99, one unit of stock held back, new variants follow.")

            out.rule("2. Publish two products from each vendor")
            for vendor, key in (
                ("tees-on-shopify", "shopify"),
                ("mugs-on-woo", "woo"),
                ("prints-on-squarespace", "squarespace"),
            ):
                result = mapping.publish(ctx, vendor, [str(i) for i in ids[key][:2]])
                if not result.ok:
                    raise RuntimeError("; ".join(result.problems))
                for item in result.linked:
                    out.print(f"  {vendor}: published {item['title']!r} with {item['variants']} variants")
            out.print(_listing_table(m, ctx, "The merchant's store now"))

            out.rule("3. The vendors edit their stores")
            tee = m.shopify.product(ids["shopify"][0])
            m.shopify.update_product(tee["id"], title=tee["title"] + " (relaxed fit)")
            m.shopify.update_variant(tee["variants"][0]["id"], price="26.00")
            out.print("  tees-on-shopify renames a tee and raises the price of its S size to 26.00")
            mug = m.woo.product(ids["woo"][0])
            m.woo.add_variation(mug["id"], attributes={"Size": "16oz"}, sku="MUG-BLA-16", price="18.00", stock=3)
            out.print("  mugs-on-woo adds a 16oz size")
            m.squarespace.delete_product(ids["squarespace"][1])
            out.print("  prints-on-squarespace deletes a print")
            ctx.close()
            # Squarespace and WooCommerce have no deletion feed; the demo asks for the hourly check now.
            for vendor in ("mugs-on-woo", "prints-on-squarespace"):
                state.db["cursors"].delete_where("store = ? AND stream = 'catalog-sweep'", [vendor])

            out.rule("4. vsc sync")
            for s in m.stores():
                s.reset_requests()
            result = engine.sync(ctx)
            out.print(_pass_table(result, "The pass"))
            if not result.ok:
                raise RuntimeError("; ".join(result.errors))
            out.print(_listing_table(m, ctx, "The merchant's store after the pass"))

            out.rule("5. A customer buys from all three vendors in one marketplace order")
            by_sku = {v.sku: v.merchant_variant_id for v in state.variant_links()}
            order = m.merchant.place_order(
                [(by_sku["TEE-BLA-M"], 1), (by_sku["MUG-BLA-8"], 2), (by_sku["PRT-BLA-A4"], 1)],
                email="ada@example.com",
                shipping_address={
                    "firstName": "Ada",
                    "lastName": "Lovelace",
                    "address1": "12 St James's Sq",
                    "city": "London",
                    "zip": "SW1Y 4JH",
                    "countryCode": "GB",
                },
            )
            out.print(f"  marketplace order {order['name']}: 1 tee, 2 mugs, 1 print")
            result = engine.sync(ctx)
            ctx.close()
            out.print(_pass_table(result, "vsc sync: one order per vendor, only that vendor's lines"))
            if not result.ok:
                raise RuntimeError("; ".join(result.errors))
            table = Table("vendor", "order in the vendor's store", "state", title="Order links", title_justify="left")
            for link in state.order_links():
                table.add_row(link.vendor, str(link.vendor_order_name or link.vendor_order_id), link.state)
            out.print(table)
            mails = state.outbox(statuses=("pending", "sent", "failed"))
            out.print(
                f"  {len(mails)} e-mail(s) to vendors queued (no SMTP server set in the demo, so they wait "
                "in the outbox)."
            )

            out.rule("6. The vendors ship, and the tracking comes back to the marketplace order")
            links = {link.vendor: link for link in state.order_links()}
            m.shopify.fulfill_order(
                links["tees-on-shopify"].vendor_order_id,
                tracking={
                    "number": "1Z999AA10123456784",
                    "company": "UPS",
                    "url": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
                },
            )
            woo_id = int(links["mugs-on-woo"].vendor_order_id)
            m.woo.add_tracking(
                woo_id,
                "9400111899223197428490",
                "USPS",
                "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223197428490",
            )
            m.woo.complete_order(woo_id)
            m.squarespace.fulfill(
                links["prints-on-squarespace"].vendor_order_id,
                [{"carrierName": "DHL", "trackingNumber": "JD014600006281230704", "service": "Express"}],
            )
            result = engine.sync(ctx)
            ctx.close()
            out.print(_pass_table(result, "vsc sync: fulfillments copied onto each vendor's lines"))
            shipped = m.merchant.order(order["id"])
            table = Table(
                "tracking number",
                "company",
                title=f"Merchant order {order['name']}: {shipped['displayFulfillmentStatus'].lower()}",
                title_justify="left",
            )
            for f in shipped["fulfillments"]:
                for info in f.get("trackingInfo") or []:
                    table.add_row(str(info.get("number")), str(info.get("company")))
            out.print(table)

            out.rule("7. vsc sync again: nothing changed, so nothing is written")
            for s in m.stores():
                s.reset_requests()
            again = engine.sync(ctx)
            writes = sum(s.count(write=True) for s in m.stores())
            reads = sum(s.count(write=False) for s in m.stores())
            out.print(_pass_table(again, "The last pass"))
            out.print(f"  {reads} read request(s), {writes} write request(s).")
            if again.actions or writes:
                raise RuntimeError("the last pass was expected to write nothing")
        finally:
            ctx.close()
            state.close()
    if keep:
        out.print(f"The demo database is kept at {tmp / 'vsc.db'}.")
    else:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    out.print(Panel("Done. For real stores: `vsc init`, then `vsc connect`\n(see the README).", title="vsc demo"))


def run_sandbox(out: Console, *, port: int = 0, products: int = 3) -> None:
    """Run the sandbox stores until Ctrl-C or SIGTERM, printing how to connect to them."""
    stop = threading.Event()
    with marketplace(port, products) as (m, _ids):
        table = Table("store", "platform", "url", "credentials", title="Sandbox stores (Ctrl-C stops them)")
        table.add_row("marketplace", "shopify (merchant)", m.merchant.url, f"token {m.merchant.token}")
        table.add_row("tee-works", "shopify (vendor)", m.shopify.url, f"token {m.shopify.token}")
        table.add_row(
            "mug-house", "woocommerce (vendor)", m.woo.url, f"key {m.woo.consumer_key} secret {m.woo.consumer_secret}"
        )
        table.add_row("print-studio", "squarespace (vendor)", m.squarespace.url, f"api key {m.squarespace.api_key}")
        out.print(table)
        out.print(
            f"Example: MALL_TOKEN={m.merchant.token} vsc connect shopify mall --role merchant "
            f"--shop {m.merchant.url} --token-env MALL_TOKEN"
        )
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    out.print("Sandbox stores stopped.")
