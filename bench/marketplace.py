"""A whole marketplace on the sandbox stores, at the platforms' real limits (issue 7).

Builds a Shopify merchant and N vendors (Shopify, WooCommerce and Squarespace in turn),
each with P products of V variants, then measures, through the real `vsc` command:

1. the first publish (`vsc map add VENDOR --all --yes`, one command per vendor);
2. the settling pass (the first `vsc sync`, which reads everything once);
3. an idle pass (nothing changed anywhere), as a `vsc` run of its own (cron style) and as a
   pass of one long-running `vsc sync --every` (start-up paid once);
4. a pass after 1 % of the vendor variants changed stock;
5. a pass after 100 new merchant orders holding vendor items, and the idle pass after it;
6. 4 and 5 again (new changes, new orders) inside one long-running `vsc sync --every`.

For each: requests per store (merchant; vendors summed and per platform), Shopify cost
points spent, throttled responses, wall time, CPU time and peak memory of the `vsc`
process (GNU time around each run), and each request count divided by its floor.

Limits are the platforms' real ones: the merchant and Shopify vendors on the Standard
plan (2,000-point bucket restoring 100 points a second), Squarespace at 300 requests a
minute and 100 order creations an hour, WooCommerce without a limit (it has none of its
own). The sandbox stores run in this process; `vsc` runs as a child process, so its CPU
and memory are its own.

Run:  python bench/marketplace.py --vendors 200 --products 25 --variants 10
(the default; about 50,000 links). `--markdown` prints the RESULTS.md table.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vsc.config import Settings  # noqa: E402
from vsc.connectors.shopify import ShopifyConnector  # noqa: E402
from vsc.connectors.squarespace import SquarespaceConnector  # noqa: E402
from vsc.connectors.woocommerce import WooCommerceConnector  # noqa: E402
from vsc.engine.stores import SecretInput, connect  # noqa: E402
from vsc.sandbox.shopify import ShopifySandbox  # noqa: E402
from vsc.sandbox.squarespace import SquarespaceSandbox  # noqa: E402
from vsc.sandbox.woocommerce import WooCommerceSandbox  # noqa: E402
from vsc.state import State  # noqa: E402

PLATFORMS = ("shopify", "woocommerce", "squarespace")
#: GNU time, for the CPU time and peak memory of each `vsc` run
TIME = "/usr/bin/time"
#: the most stock writes one request carries, per merchant platform (Shopify inventorySetQuantities)
MERCHANT_BATCH = 250


@dataclass
class Vendor:
    name: str
    platform: str
    store: Any
    #: vendor variant id → a callable setting its stock
    stock: dict[str, Any] = field(default_factory=dict)


@dataclass
class Phase:
    name: str
    rc: int
    wall: float
    cpu: float
    peak_mb: float
    merchant: Counter[str]
    vendors: dict[str, Counter[str]]
    detail: dict[str, Any] = field(default_factory=dict)


def seed_vendor(v: Vendor, products: int, variants: int) -> None:
    """P products of V variants (one option, values V0..), 5 in stock each."""
    for p in range(products):
        values = [f"V{i}" for i in range(variants)]
        skus = [f"{v.name}-P{p}-{i}" for i in range(variants)]
        if v.platform == "shopify":
            made = v.store.add_product(
                f"{v.name} product {p}",
                options={"N": values},
                variants=[
                    {"sku": s, "price": "10.00", "options": {"N": val}, "available": 5}
                    for s, val in zip(skus, values, strict=True)
                ],
            )
            for var in made["variants"]:
                v.stock[var["id"]] = lambda q, vid=var["id"]: v.store.set_available(vid, None, q)
        elif v.platform == "woocommerce":
            made = v.store.add_product(
                f"{v.name} product {p}",
                attributes=[{"name": "N", "options": values}],
                variations=[
                    {"attributes": {"N": val}, "sku": s, "price": "10.00", "stock": 5}
                    for s, val in zip(skus, values, strict=True)
                ],
            )
            for vid in made["variations"]:
                v.stock[str(vid)] = lambda q, vid=vid: v.store.set_stock(vid, q)
        else:
            made = v.store.add_product(
                f"{v.name} product {p}",
                [
                    {"sku": s, "price": "10.00", "attributes": {"N": val}, "quantity": 5}
                    for s, val in zip(skus, values, strict=True)
                ],
                variant_attributes=["N"],
            )
            for var in made["variants"]:
                v.stock[var["id"]] = lambda q, vid=var["id"]: v.store.set_stock(vid, q)


class Market:
    """The sandbox stores, the state database and the environment `vsc` runs with."""

    def __init__(self, vendors: int, products: int, variants: int, concurrency: int | None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="vsc-market-"))
        self.db = self.dir / "vsc.db"
        self.config = self.dir / "vsc.yaml"
        self.env = {**os.environ, "VSC_DB": str(self.db), "VSC_CONFIG": str(self.config)}
        self.env.pop("VSC_DEBUG", None)
        self._offset = 0.0
        #: where `run` writes a cProfile of `vsc sync` (None: no profiling)
        self.profile: Path | None = None
        self.merchant = ShopifySandbox(shop="mall").start()  # Standard: 2,000 points, 100 a second
        self.env["VSC_BENCH_MALL"] = self.merchant.token
        state = State.create(self.db)
        os.environ.update(self.env)
        connect(
            state,
            platform="shopify",
            name="mall",
            role="merchant",
            url=self.merchant.url,
            inputs=[SecretInput("token", None, "VSC_BENCH_MALL", "--token-env")],
            build=lambda s: ShopifyConnector.open("mall", self.merchant.url, s["token"]),
        )
        self.vendors: list[Vendor] = []
        for i in range(vendors):
            platform = PLATFORMS[i % 3]
            name = f"v{i:03d}"
            store: Any
            if platform == "shopify":
                store = ShopifySandbox(shop=name).start()
                self.env[f"VSC_BENCH_{i}"] = store.token
                inputs = [SecretInput("token", None, f"VSC_BENCH_{i}", "--token-env")]
                build = lambda s, st=store, n=name: ShopifyConnector.open(n, st.url, s["token"])  # noqa: E731
            elif platform == "woocommerce":
                store = WooCommerceSandbox().start()
                self.env[f"VSC_BENCH_{i}_K"] = store.consumer_key
                self.env[f"VSC_BENCH_{i}_S"] = store.consumer_secret
                inputs = [
                    SecretInput("key", None, f"VSC_BENCH_{i}_K", "--key-env"),
                    SecretInput("secret", None, f"VSC_BENCH_{i}_S", "--secret-env"),
                ]
                build = lambda s, st=store, n=name: WooCommerceConnector.open(n, st.url, s["key"], s["secret"])  # noqa: E731
            else:
                store = SquarespaceSandbox(site=name).start()  # 300 requests a minute, 100 orders an hour
                self.env[f"VSC_BENCH_{i}"] = store.api_key
                inputs = [SecretInput("api_key", None, f"VSC_BENCH_{i}", "--api-key-env")]
                build = lambda s, st=store, n=name: SquarespaceConnector.open(n, s["api_key"], st.url)  # noqa: E731
            os.environ.update(self.env)
            connect(state, platform=platform, name=name, role="vendor", url=store.url, inputs=inputs, build=build)
            v = Vendor(name, platform, store)
            # The catalog was made an hour ago, as a real one would be: a pass right after the
            # seeding should not see it as a change inside the overlap window.
            store.clock = lambda: time.time() - 3600
            seed_vendor(v, products, variants)
            store.clock = time.time
            self.vendors.append(v)
        state.close()
        lines = ["# vsc benchmark settings", "overlap_seconds: 300"]
        if concurrency is not None:
            lines.append(f"concurrency: {concurrency}")
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.chmod(self.config, 0o600)

    def shift(self, seconds: float) -> None:
        """Run every store's clock `seconds` behind: what happens now looks that old later.

        The stores' rate-limit bookkeeping moves with their clocks, so budgets stay real."""
        delta = seconds - self._offset
        self._offset = seconds
        for s in self.stores():
            s.clock = (lambda: time.time() - seconds) if seconds else time.time
            if getattr(s, "_bucket_at", None) is not None:
                s._bucket_at -= delta
            for name in ("_recent", "_recent_creates"):
                if hasattr(s, name):
                    setattr(s, name, deque(t - delta for t in getattr(s, name)))
            if getattr(s, "_cool_down_until", None):
                s._cool_down_until -= delta

    def plan(self, restore: float, bucket: float) -> None:
        """Set the merchant's cost budget (Standard: 100 a second, 2,000 points)."""
        self.merchant.restore_rate = restore
        self.merchant.maximum_available = bucket
        self.merchant._bucket = min(self.merchant._bucket, bucket)

    def stores(self) -> list[Any]:
        return [self.merchant, *(v.store for v in self.vendors)]

    def reset(self) -> None:
        for s in self.stores():
            s.reset_requests()

    def run(self, name: str, commands: list[list[str]]) -> Phase:
        """Run vsc commands one after the other; the phase's numbers are their sums (peak: max)."""
        self.reset()
        before = self._pass_ids()
        wall = cpu = peak = 0.0
        rc = 0
        for args in commands:
            out = self.dir / "out.json"
            started = time.perf_counter()
            with open(out, "wb") as fh:
                profile = ["-m", "cProfile", "-o", str(self.profile)] if self.profile and args[0] == "sync" else []
                # /usr/bin/time measures the vsc process itself: a child forked straight from this
                # process (which holds every sandbox store) would count this one's pages as its peak.
                usage = self.dir / "usage.txt"
                proc = subprocess.Popen(
                    [TIME, "-o", str(usage), "-f", "%e %U %S %M", sys.executable, *profile, "-m", "vsc", *args],
                    env=self.env,
                    stdout=fh,
                    stderr=fh,
                )
                proc.wait()
            wall += time.perf_counter() - started
            _, user, system, max_kb = usage.read_text().split()[-4:]
            cpu += float(user) + float(system)
            peak = max(peak, int(max_kb) / 1024)
            if proc.returncode:
                rc = proc.returncode
                print(f"  {' '.join(args)} exited {proc.returncode}: {out.read_text()[-2000:]}", file=sys.stderr)
        merchant = self._counts(self.merchant)
        vendors = {v.name: self._counts(v.store) for v in self.vendors}
        phase = Phase(name, rc, wall, cpu, peak, merchant, vendors)
        phase.detail["operations"] = self._operations()
        phase.detail["passes"] = self._passes_since(before)
        return phase

    def _operations(self) -> dict[str, int]:
        """The requests the stores answered since they were last reset, by operation."""
        ops: Counter[str] = Counter()
        for platform, store in [("merchant", self.merchant), *((v.platform, v.store) for v in self.vendors)]:
            for r in store.requests:
                what = r.operation or re.sub(r"/[0-9a-f-]{6,}|/\d+", "/ID", r.path)
                ops[f"{platform} {r.method} {what}"] += 1
        return dict(ops.most_common())

    @staticmethod
    def _counts(store: Any) -> Counter[str]:
        c: Counter[str] = Counter()
        for r in store.requests:
            c["writes" if r.write else "reads"] += 1
            if r.status == 429:
                c["http_429"] += 1
        return c

    def _pass_ids(self) -> int:
        state = State.open(self.db)
        try:
            passes = state.passes(limit=1)
            return int(passes[0]["id"]) if passes else 0
        finally:
            state.close()

    def _passes_since(self, pass_id: int) -> list[dict[str, Any]]:
        state = State.open(self.db)
        try:
            return [p for p in state.passes(limit=10) if int(p["id"]) > pass_id]
        finally:
            state.close()

    def links(self) -> list[dict[str, Any]]:
        state = State.open(self.db)
        try:
            return [
                {
                    "vendor": v.vendor,
                    "vendor_variant_id": v.vendor_variant_id,
                    "merchant_variant_id": v.merchant_variant_id,
                }
                for v in state.variant_links()
            ]
        finally:
            state.close()

    def run_every(self, passes: list[tuple[str, Callable[[], Any] | None]], interval: float) -> list[Phase]:
        """`vsc sync --every` in one long-running process: the CPU time and peak memory of each of
        its passes after the first (which also pays Python's start-up and imports), from
        /proc/PID/stat between the JSON lines the passes print. `passes` names each measured pass
        and what to change on the stores before it (run when the previous pass's line arrives,
        during the wait between passes). Requests are counted per pass as in `run` (each pass's
        stores are reset when the previous pass's line arrives)."""
        tick = os.sysconf("SC_CLK_TCK")
        proc = subprocess.Popen(
            [sys.executable, "-m", "vsc", "sync", "--every", f"{interval:g}s", "--json"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

        def cpu() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

        phases: list[Phase] = []
        try:
            assert proc.stdout is not None
            proc.stdout.readline()  # the first pass: start-up and imports included, not counted
            for name, change in passes:
                if change is not None:
                    change()
                self.reset()
                used, started = cpu(), time.perf_counter()
                line = proc.stdout.readline()
                wall, spent = time.perf_counter() - started, cpu() - used
                peak = int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{proc.pid}/status").read_text())[1]) / 1024
                result = json.loads(line)
                phase = Phase(
                    name,
                    0 if result.get("ok", True) else 1,
                    wall,
                    spent,
                    peak,
                    self._counts(self.merchant),
                    {v.name: self._counts(v.store) for v in self.vendors},
                )
                phase.detail["operations"] = self._operations()
                pass_id = int(result["pass_id"])
                phase.detail["passes"] = [p for p in self._passes_since(pass_id - 1) if int(p["id"]) == pass_id]
                for p in phase.detail["passes"]:  # the pass's own time, not the wait for its turn
                    times = [datetime.fromisoformat(p[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at")]
                    phase.wall = (times[1] - times[0]).total_seconds()
                phases.append(phase)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        return phases

    def stop(self) -> None:
        for s in self.stores():
            s.stop()


def sync_stats(phase: Phase) -> dict[str, int]:
    """Throttled responses and cost points vsc itself counted (from the pass records)."""
    out: Counter[str] = Counter()
    for p in phase.detail.get("passes", []):
        for name, s in (p.get("stores") or {}).items():
            out["throttled"] += int(s.get("throttled") or 0)
            out["http_429"] += int(s.get("http_429") or 0)
            if name == "mall":
                out["merchant_cost"] += int(s.get("cost_points") or 0)
            else:
                out["vendor_cost"] += int(s.get("cost_points") or 0)
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vendors", type=int, default=200)
    ap.add_argument("--products", type=int, default=25)
    ap.add_argument("--variants", type=int, default=10)
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--change", type=float, default=1.0, help="percent of vendor variants whose stock changes")
    ap.add_argument("--concurrency", type=int, default=None, help="the `concurrency` setting (default: vsc's)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--standard-settle", action="store_true", help="run the settling pass at Standard limits too (slow)"
    )
    ap.add_argument(
        "--every",
        type=float,
        default=30.0,
        help="the interval of the `vsc sync --every` passes (s; > a pass's wall time)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="idle passes measured, cron style and in --every")
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of the (first) idle pass to FILE")
    ap.add_argument("--operations", action="store_true", help="list the requests of each phase by operation")
    ap.add_argument("--json", action="store_true", help="print the raw numbers as JSON too")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    # An installed vsc runs from bytecode compiled at install time; an editable checkout under
    # PYTHONDONTWRITEBYTECODE would compile every module at every run (~0.1 s a run).
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "vsc"), quiet=1)
    t0 = time.perf_counter()
    market = Market(args.vendors, args.products, args.variants, args.concurrency)
    print(f"built {args.vendors} vendors in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    phases: list[Phase] = []
    try:
        # The setup happens "an hour ago" on the stores' clocks, so the steady passes below see
        # it as the past, as they would in production, not as changes inside the overlap window.
        market.shift(3600)
        phases.append(market.run("first publish", [["map", "add", v.name, "--all", "--yes"] for v in market.vendors]))
        links = market.links()
        print(f"published: {len(links)} links", file=sys.stderr)
        if not args.standard_settle:
            market.plan(1000, 20000)  # Plus, to save time: the settling pass is setup, not a target
        phases.append(market.run("settling pass", [["sync", "--json"]]))
        market.plan(100, 2000)
        market.shift(0)
        time.sleep(1.1)  # later changes are strictly after the cursors
        if args.profile:
            market.profile = Path(args.profile)
        # Idle passes are repeated (--repeat): on a shared machine one pass's CPU varies by ±15 %.
        for i in range(args.repeat):
            phases.append(market.run("idle pass" + (f" {i + 1}" if args.repeat > 1 else ""), [["sync", "--json"]]))
            market.profile = None
        # The same idle pass in one long-running `vsc sync --every` (systemd service style):
        # Python's start-up and imports are paid once, before it.
        idle = "idle pass (in `vsc sync --every`)"
        phases += market.run_every([(f"{idle} {i + 1}", None) for i in range(args.repeat)], args.every)
        time.sleep(1.1)
        by_name = {v.name: v for v in market.vendors}
        zeroed: set[str] = set()
        count = max(1, round(len(links) * args.change / 100))

        def change_stock() -> None:
            for link in rng.sample(links, count):
                level = rng.choice([0, 1, 2, 3, 4, 6, 7, 8, 9])
                by_name[link["vendor"]].stock[link["vendor_variant_id"]](level)
                (zeroed.add if level == 0 else zeroed.discard)(link["vendor_variant_id"])
            time.sleep(1.1)  # (the pass's cursor is strictly after the changes' times)

        def place_orders() -> None:
            # (not on a variant sold out: the merchant store would refuse the order)
            for link in rng.sample([x for x in links if x["vendor_variant_id"] not in zeroed], args.orders):
                market.merchant.place_order([(link["merchant_variant_id"], 1)], email="buyer@example.com")
            time.sleep(1.1)

        change_stock()
        phase = market.run("1 % stock pass", [["sync", "--json"]])
        phase.detail["changes"] = count
        phases.append(phase)
        place_orders()
        phase = market.run("100 orders pass", [["sync", "--json"]])
        phase.detail["orders"] = args.orders
        phases.append(phase)
        time.sleep(1.1)
        phases.append(market.run("idle pass after orders", [["sync", "--json"]]))
        # The same three passes inside one long-running `vsc sync --every` (start-up paid once),
        # each change made while the process waits for its next pass (the idle pass after orders
        # is inside the overlap window, as the cron-style one is). First the overlap window of the
        # orders above goes by, so that the 1 % pass reads what the cron-style one read.
        time.sleep(Settings().overlap_seconds + 5)
        changed = market.run_every(
            [
                ("1 % stock pass (in `vsc sync --every`)", change_stock),
                ("100 orders pass (in `vsc sync --every`)", place_orders),
                ("idle pass after orders (in `vsc sync --every`)", None),
            ],
            args.every,
        )
        changed[0].detail["changes"] = count
        changed[1].detail["orders"] = args.orders
        phases += changed

    finally:
        market.stop()
    report(args, phases)


def report(args: argparse.Namespace, phases: list[Phase]) -> None:
    n = args.vendors
    print(
        f"\n{n} vendors × {args.products} products × {args.variants} variants = "
        f"{n * args.products * args.variants} links\n"
    )
    print(
        "| phase | exit | merchant reads | merchant writes | vendor reads (sum) | vendor writes (sum) "
        "| merchant cost points | throttled | HTTP 429 | wall (s) | CPU (s) | peak memory (MB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for p in phases:
        s = sync_stats(p)
        vr = sum(c["reads"] for c in p.vendors.values())
        vw = sum(c["writes"] for c in p.vendors.values())
        print(
            f"| {p.name} | {p.rc} | {p.merchant['reads']} | {p.merchant['writes']} | {vr} | {vw} | "
            f"{s.get('merchant_cost', '–')} | {s.get('throttled', 0)} | {s.get('http_429', 0)} | "
            f"{p.wall:.1f} | {p.cpu:.2f} | {p.peak_mb:.0f} |"
        )
    print()
    print("| phase | platform | vendor reads per store (min–max) | vendor writes per store (min–max) |")
    print("| --- | --- | --- | --- |")
    for p in phases:
        for platform in PLATFORMS:
            names = [f"v{i:03d}" for i in range(n) if PLATFORMS[i % 3] == platform]
            if not names:
                continue
            reads = [p.vendors[x]["reads"] for x in names]
            writes = [p.vendors[x]["writes"] for x in names]
            print(f"| {p.name} | {platform} | {min(reads)}–{max(reads)} | {min(writes)}–{max(writes)} |")
    for stock in (p for p in phases if p.name.startswith("1 %")):
        floor = math.ceil(stock.detail["changes"] / MERCHANT_BATCH)
        print(
            f"\n{stock.name}: {stock.detail['changes']} changes; merchant writes {stock.merchant['writes']} "
            f"/ floor {floor} = {stock.merchant['writes'] / floor:.2f}"
        )
    if args.operations:
        for p in phases:
            print(f"\n{p.name}:")
            for what, count in p.detail["operations"].items():
                print(f"  {count:6d}  {what}")
    if args.json:
        print(
            json.dumps(
                [
                    {**p.__dict__, "merchant": dict(p.merchant), "vendors": {k: dict(v) for k, v in p.vendors.items()}}
                    for p in phases
                ],
                default=str,
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
