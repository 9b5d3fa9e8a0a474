"""First publish of vendors' catalogs: productSet per product against Shopify bulk operations (issue 7).

K vendors, each with N products of V variants (defaults: 4 vendors × 50 products × 5
variants; the issue's marketplace is 200 vendors of 250 variants each), publish their whole
catalog in turn (`vsc map add VENDOR --all`) to one merchant sandbox store with the
Standard plan's cost bucket (2,000 points, 100 restored a second): once product by product
and once through bulk operations. For each it reports requests to the merchant, cost
points requested and kept, throttled answers, wall time, CPU time and peak memory of the
vsc process. Run:

    python bench/first_publish.py [--vendors K] [--products N] [--variants V] [--mode both|single|bulk]

Waiting on the cost bucket is simulated: the sandbox's clock and vsc's pacing share a
virtual clock that moves by every pause vsc takes, so a run that would wait twenty minutes
on the real bucket finishes in the time the work itself takes, and its "wall" column is
that work plus the simulated waits. The sandbox finishes a bulk operation by the next
request; a real one is queued and runs asynchronously (Shopify gives no throughput figure;
the imports guide only caps an operation at 24 hours), so the bulk rows' wall time is a
lower bound. Each store runs in its own process; CPU and memory are the vsc process's own.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def serve(k: int, n: int, v: int, slept: Any, conn: Any) -> None:
    """The sandbox process: a merchant on the Standard plan and K vendors holding N × V variants each."""
    from vsc.sandbox.shopify import ShopifySandbox

    real = time.time
    merchant = ShopifySandbox(shop="mall", maximum_available=2000, restore_rate=100)
    merchant.clock = lambda: real() + slept.value  # the bucket refills in virtual time
    merchant.start()
    values = [f"V{j}" for j in range(v)]
    vendors = []
    for x in range(k):
        vendor = ShopifySandbox(shop=f"vendor{x}", maximum_available=20000, restore_rate=1000).start()
        for i in range(n):
            vendor.add_product(
                f"Product {x}-{i}",
                options={"Size": values},
                variants=[
                    {"sku": f"{x}-{i}-{j}", "price": "9.50", "options": {"Size": values[j]}, "available": 5}
                    for j in range(v)
                ],
                images=[f"https://cdn.example/p{x}-{i}.jpg"],
            )
        vendors.append(vendor)
    urls = {f"vendor{x}": (store.url, store.token) for x, store in enumerate(vendors)}
    conn.send({"mall": (merchant.url, merchant.token), **urls})
    while True:
        command = conn.recv()
        if command == "reset":
            merchant.reset_requests()
            merchant.points.clear()
            conn.send("reset")
        elif command == "stats":
            ops: dict[str, int] = {}
            for r in merchant.requests:
                key = r.operation or ("upload" if r.path.startswith("/staged") else "download")
                ops[key] = ops.get(key, 0) + 1
            conn.send(
                {
                    "requests": len(merchant.requests),
                    "operations": ops,
                    "points": dict(merchant.points),
                    "listings": len(merchant.products()),
                }
            )
        else:
            for store in (merchant, *vendors):
                store.stop()
            conn.send("stopped")
            return


def client(mode: str, urls: dict[str, Any], slept: Any, out: Any, ready: Any, go: Any) -> None:
    """The vsc process: connect the stores; each vendor in turn: select every product, publish them."""
    from vsc import config
    from vsc.connectors.http import StoreSession
    from vsc.connectors.shopify import ShopifyConnector
    from vsc.connectors.shopify.client import CostLimiter
    from vsc.engine import bulk_publish, mapping, selection
    from vsc.engine.context import Context
    from vsc.engine.stores import SecretInput, connect
    from vsc.state import State

    def sleep(seconds: float) -> None:
        with slept.get_lock():
            slept.value += seconds

    def clock() -> float:
        return time.monotonic() + slept.value

    def open_store(row: Any, **_: Any) -> ShopifyConnector:
        url, token = urls[row.name]
        limiter = CostLimiter(clock=clock, sleep=sleep)
        session = StoreSession(
            row.name,
            "shopify",
            url,
            headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json"},
            limiter=limiter,
            sleep=sleep,
        )
        return ShopifyConnector(row.name, session, limiter)

    tmp = Path(tempfile.mkdtemp(prefix="vsc-bench-"))
    state = State.create(tmp / "vsc.db")
    for name in urls:
        role = "merchant" if name == "mall" else "vendor"
        os.environ[f"BENCH_{name.upper()}"] = urls[name][1]
        connect(
            state,
            platform="shopify",
            name=name,
            role=role,
            url=urls[name][0],
            inputs=[SecretInput("token", None, f"BENCH_{name.upper()}", "--token-env")],
            build=lambda values, name=name: open_store(type("Row", (), {"name": name})()),
        )
    # Each run takes one path whatever the sizes ("single": never bulk; "bulk": always).
    bulk_publish.worth_it = lambda *args: mode == "bulk"
    ctx = Context(state=state, settings=config.Settings(), opener=open_store)
    vendors = [name for name in urls if name != "mall"]
    plans = {name: selection.select(ctx, name, selection.Selection(all=True)).to_publish for name in vendors}
    merchant = ctx.merchant()
    for name in vendors:
        ctx.merchant_location(name)  # read before counting: both paths need it
    merchant.online_store_publication()
    merchant.session.stats.clear()
    ready.set()  # the sandbox's counters are reset now
    go.wait()
    slept_before, cpu_before, started = slept.value, time.process_time(), time.perf_counter()
    linked, problems = [], []
    for name in vendors:
        result = mapping.publish(ctx, name, products=plans[name])
        linked += result.linked
        problems += result.problems
    wall = time.perf_counter() - started + (slept.value - slept_before)
    out.put(
        {
            "linked": len(linked),
            "problems": problems[:3],
            "links": sum(item["variants"] for item in linked),
            "wall_s": wall,
            "waited_s": slept.value - slept_before,
            "cpu_s": time.process_time() - cpu_before,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "client_throttled": merchant.session.stats["throttled"],
        }
    )
    ctx.close()
    state.close()


def run(mode: str, k: int, n: int, v: int) -> dict[str, Any]:
    spawn = mp.get_context("spawn")
    slept = spawn.Value("d", 0.0)
    mine, theirs = spawn.Pipe()
    server = spawn.Process(target=serve, args=(k, n, v, slept, theirs))
    server.start()
    urls = mine.recv()
    out = spawn.Queue()
    ready, go = spawn.Event(), spawn.Event()
    worker = spawn.Process(target=client, args=(mode, urls, slept, out, ready, go))
    worker.start()
    ready.wait()
    mine.send("reset")
    mine.recv()
    go.set()
    got = out.get()
    worker.join()
    mine.send("stats")
    stats = mine.recv()
    mine.send("stop")
    mine.recv()
    server.join()
    return {"mode": mode, "vendors": k, "products": n, "variants": v, **got, **stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vendors", type=int, default=4)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--variants", type=int, default=5)
    parser.add_argument("--mode", choices=("both", "single", "bulk"), default="both")
    args = parser.parse_args()
    modes = ("single", "bulk") if args.mode == "both" else (args.mode,)
    print(
        "| path | vendors × products × variants | links | merchant requests | points requested | points kept "
        "| throttled | wall (s) | of which waiting (s) | CPU (s) | peak memory (MB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode in modes:
        r = run(mode, args.vendors, args.products, args.variants)
        if r["problems"] or r["linked"] != args.vendors * args.products:
            print(f"<!-- {mode}: {r['linked']} linked, problems: {r['problems']} -->")
        points = r["points"]
        label = "productSet per product" if mode == "single" else "bulk operations"
        print(
            f"| {label} | {r['vendors']} × {r['products']} × {r['variants']} | {r['links']} | {r['requests']} | "
            f"{points.get('requested', 0)} | {points.get('actual', 0)} | {points.get('throttled', 0)} | "
            f"{r['wall_s']:.1f} | {r['waited_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_mb']:.0f} |"
        )
        print(f"<!-- {mode} merchant operations: {r['operations']} -->")


if __name__ == "__main__":
    main()
