"""Requests per 1,000 stock changes, for each vendor platform (issue 4).

Builds, on the sandbox stores, a merchant and one vendor per platform with
1,000 linked variants each, changes the stock of every one of them on the
vendor side, and runs one inventory pass. Counts the requests each store saw
(reads and writes) and compares the merchant's writes with the floor
ceil(changes / 250). Run:  python bench/stock_changes.py  (about a minute).

The sandbox stores run with Shopify Plus budgets (20,000 points, 1,000 a
second) so the setup does not wait on throttling; request counts do not
depend on the budget.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vsc import config, engine  # noqa: E402
from vsc.connectors.shopify import ShopifyConnector  # noqa: E402
from vsc.connectors.squarespace import SquarespaceConnector  # noqa: E402
from vsc.connectors.woocommerce import WooCommerceConnector  # noqa: E402
from vsc.engine import mapping  # noqa: E402
from vsc.engine.context import Context  # noqa: E402
from vsc.engine.stores import SecretInput, connect  # noqa: E402
from vsc.sandbox.shopify import ShopifySandbox  # noqa: E402
from vsc.sandbox.squarespace import SquarespaceSandbox  # noqa: E402
from vsc.sandbox.woocommerce import WooCommerceSandbox  # noqa: E402
from vsc.state import State  # noqa: E402

N = int(os.environ.get("BENCH_VARIANTS", "1000"))


def seed(platform: str, store, n: int) -> tuple[list[str], list[object]]:
    """n variants in products of at most 100 (Shopify), 100 (WooCommerce) or 250 (Squarespace)."""
    per = 250 if platform == "squarespace" else 100
    pids, setters = [], []
    for start in range(0, n, per):
        count = min(per, n - start)
        values = [f"V{start + i}" for i in range(count)]
        if platform == "shopify":
            p = store.add_product(
                f"P{start}",
                options={"N": values},
                variants=[
                    {"sku": f"S{start + i}", "price": "1.00", "options": {"N": v}, "available": 5}
                    for i, v in enumerate(values)
                ],
            )
            pids.append(p["id"])
            setters += [(lambda vid=v["id"]: store.set_available(vid, None, 9)) for v in p["variants"]]
        elif platform == "woocommerce":
            p = store.add_product(
                f"P{start}",
                attributes=[{"name": "N", "options": values}],
                variations=[
                    {"attributes": {"N": v}, "sku": f"S{start + i}", "price": "1.00", "stock": 5}
                    for i, v in enumerate(values)
                ],
            )
            pids.append(str(p["id"]))
            setters += [(lambda vid=vid: store.set_stock(vid, 9)) for vid in p["variations"]]
        else:
            p = store.add_product(
                f"P{start}",
                [
                    {"sku": f"S{start + i}", "price": "1.00", "attributes": {"N": v}, "quantity": 5}
                    for i, v in enumerate(values)
                ],
                variant_attributes=["N"],
            )
            pids.append(p["id"])
            setters += [(lambda vid=v["id"]: store.set_stock(vid, 9)) for v in p["variants"]]
    return pids, setters


def run(platform: str) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="vsc-bench-"))
    merchant = ShopifySandbox(shop="mall", maximum_available=20000, restore_rate=1000).start()
    if platform == "shopify":
        vendor = ShopifySandbox(shop="acme", maximum_available=20000, restore_rate=1000).start()
    elif platform == "woocommerce":
        vendor = WooCommerceSandbox().start()
    else:
        vendor = SquarespaceSandbox(requests_per_minute=None, order_creates_per_hour=None).start()
    os.environ.update({"B_M": merchant.token})
    state = State.create(tmp / "vsc.db")
    ctx = Context(state=state, settings=config.Settings(), session_kw={"sleep": lambda s: None})
    connect(
        state,
        platform="shopify",
        name="mall",
        role="merchant",
        url=merchant.url,
        inputs=[SecretInput("token", None, "B_M", "--token-env")],
        build=lambda v: ShopifyConnector.open("mall", merchant.url, v["token"]),
    )
    if platform == "shopify":
        os.environ["B_V"] = vendor.token
        inputs = [SecretInput("token", None, "B_V", "--token-env")]
        build = lambda v: ShopifyConnector.open("acme", vendor.url, v["token"])  # noqa: E731
    elif platform == "woocommerce":
        os.environ.update({"B_K": vendor.consumer_key, "B_S": vendor.consumer_secret})
        inputs = [SecretInput("key", None, "B_K", "--key-env"), SecretInput("secret", None, "B_S", "--secret-env")]
        build = lambda v: WooCommerceConnector.open("acme", vendor.url, v["key"], v["secret"])  # noqa: E731
    else:
        os.environ["B_Q"] = vendor.api_key
        inputs = [SecretInput("api_key", None, "B_Q", "--api-key-env")]
        build = lambda v: SquarespaceConnector.open("acme", v["api_key"], vendor.url)  # noqa: E731
    connect(state, platform=platform, name="acme", role="vendor", url=vendor.url, inputs=inputs, build=build)
    pids, setters = seed(platform, vendor, N)
    assert mapping.publish(ctx, "acme", pids).ok
    engine.sync(ctx, streams=["inventory"])  # settle: first read of everything
    ctx.close()
    time.sleep(1.1)  # the next change is strictly after the cursor
    for set_stock in setters:
        set_stock()
    merchant.reset_requests()
    vendor.reset_requests()
    started = time.perf_counter()
    result = engine.sync(ctx, streams=["inventory"])
    wall = time.perf_counter() - started
    changes = sum(1 for a in result.actions if a.kind == "set_quantity" and a.status == "done")
    out = {
        "platform": platform,
        "changes": changes,
        "vendor_reads": vendor.count(write=False),
        "vendor_writes": vendor.count(write=True),
        "merchant_reads": merchant.count(write=False),
        "merchant_writes": merchant.count(write=True),
        "write_floor": math.ceil(changes / 250),
        "wall_s": round(wall, 2),
    }
    ctx.close()
    state.close()
    merchant.stop()
    vendor.stop()
    return out


def main() -> None:
    rows = [run(p) for p in ("shopify", "woocommerce", "squarespace")]
    print(
        "| vendor platform | stock changes | vendor reads | vendor writes | merchant reads | merchant writes "
        "| write floor | merchant writes / floor | wall time (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ratio = r["merchant_writes"] / r["write_floor"] if r["write_floor"] else 0
        print(
            f"| {r['platform']} | {r['changes']} | {r['vendor_reads']} | {r['vendor_writes']} | "
            f"{r['merchant_reads']} | {r['merchant_writes']} | {r['write_floor']} | {ratio:.2f} | {r['wall_s']} |"
        )


if __name__ == "__main__":
    main()
