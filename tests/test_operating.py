"""Running vsc for real: dry runs, the pass lock, brakes, status, log, why, reconcile, schedules.

Everything goes through the real `vsc` command line (in-process, or as real
processes where two passes or signals are the point) against sandbox stores
over HTTP, on a real SQLite file. Nothing is timed: tests count requests and
wait for states.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from vsc.engine.actions import Action
from vsc.errors import UsageError, VscError
from vsc.sandbox.base import Fault
from vsc.sandbox.shopify import ShopifySandbox
from vsc.sandbox.squarespace import SquarespaceSandbox
from vsc.sandbox.woocommerce import WooCommerceSandbox


@pytest.fixture
def shops(cli, isolated, monkeypatch):
    merchant = ShopifySandbox(shop="mall").start()
    vendor = ShopifySandbox(shop="acme").start()
    monkeypatch.setenv("MALL_TOKEN", merchant.token)
    monkeypatch.setenv("ACME_TOKEN", vendor.token)
    assert cli("init").code == 0
    r = cli("connect", "shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token-env", "MALL_TOKEN")
    assert r.code == 0, r
    r = cli("connect", "shopify", "acme", "--role", "vendor", "--shop", vendor.url, "--token-env", "ACME_TOKEN")
    assert r.code == 0, r
    settings(isolated, "")
    yield merchant, vendor
    merchant.stop()
    vendor.stop()


def settings(isolated, text: str) -> None:
    # Short lock waits keep the lock tests quick; everything else is the defaults.
    (isolated / "vsc.yaml").write_text("lock_wait_seconds: 0.5\n" + text)


def tee(vendor: ShopifySandbox, title: str = "Organic Tee", sizes: tuple[str, ...] = ("M", "L")):
    return vendor.add_product(
        title,
        options={"Size": list(sizes)},
        variants=[
            {"sku": f"{title[:3].upper()}-{s}", "price": "20.00", "options": {"Size": s}, "available": 5} for s in sizes
        ],
        images=["https://cdn.example/front.jpg", "https://cdn.example/back.jpg"],
        tags=["cotton"],
        product_type="Shirts",
    )


def publish(cli, vendor_name: str, pid: str) -> None:
    r = cli("map", "add", vendor_name, pid)
    assert r.code == 0, r


def db_rows(isolated, sql: str) -> list[tuple]:
    con = sqlite3.connect(isolated / "vsc.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def vsc_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vsc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def wait_for(predicate, what: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


class Gate:
    """Holds the first matching request inside the sandbox until released (a pass caught mid-read)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, req) -> bool:
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(60)
        return False


# -- 3. dry run ------------------------------------------------------------------------------


def test_dry_run_plans_every_vendor_and_sends_no_write_to_any_store(cli, isolated, monkeypatch):
    merchant = ShopifySandbox(shop="mall").start()
    shop = ShopifySandbox(shop="acme").start()
    woo = WooCommerceSandbox().start()
    sq = SquarespaceSandbox().start()
    try:
        monkeypatch.setenv("MALL_TOKEN", merchant.token)
        monkeypatch.setenv("ACME_TOKEN", shop.token)
        monkeypatch.setenv("CK", woo.consumer_key)
        monkeypatch.setenv("CS", woo.consumer_secret)
        monkeypatch.setenv("SQ", sq.api_key)
        assert cli("init").code == 0
        for args in (
            ["shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token-env", "MALL_TOKEN"],
            ["shopify", "acme", "--role", "vendor", "--shop", shop.url, "--token-env", "ACME_TOKEN"],
            ["woocommerce", "mugs", "--url", woo.url, "--key-env", "CK", "--secret-env", "CS"],
            ["squarespace", "prints", "--api-key-env", "SQ", "--api-url", sq.url],
        ):
            assert cli("connect", *args).code == 0
        p = tee(shop)
        mug = woo.add_product("Mug", sku="MUG-1", price="12.00")
        prt = sq.add_product("Print", [{"sku": "PRT-1", "price": "30.00", "quantity": 4}])
        publish(cli, "acme", p["id"])
        publish(cli, "mugs", str(mug["id"]))
        publish(cli, "prints", prt["id"])
        assert cli("sync").code == 0
        shop.update_product(p["id"], title="Organic Tee v2")
        woo.update_product(mug["id"], name="Big Mug")
        sq.update_product(prt["id"], name="Signed Print")
        stores = (merchant, shop, woo, sq)
        for s in stores:
            s.reset_requests()

        r = cli("sync", "--dry-run", "--json")
        assert r.code == 0, r
        plan = r.json()
        assert plan["dry_run"] is True
        assert {(a["vendor"], a["kind"], a["status"]) for a in plan["actions"]} == {
            ("acme", "update_listing", "planned"),
            ("mugs", "update_listing", "planned"),
            ("prints", "update_listing", "planned"),
        }
        assert sum(s.count(write=True) for s in stores) == 0
        assert sum(s.count() for s in stores) > 0  # it did read

        text = cli("sync", "--dry-run")
        assert text.code == 0 and "Dry run: the plan (3 action(s), nothing sent)" in text.out
        assert all(name in text.out for name in ("acme", "mugs", "prints"))  # one row per vendor's action
        assert sum(s.count(write=True) for s in stores) == 0

        r = cli("sync", "--json")
        assert r.code == 0 and {a["status"] for a in r.json()["actions"]} == {"done"}
        assert merchant.count(write=True) > 0
    finally:
        for s in (merchant, shop, woo, sq):
            s.stop()


# -- 2. the pass lock ------------------------------------------------------------------------


def test_two_concurrent_syncs_make_one_pass_and_the_second_exits_3(cli, shops, isolated):
    merchant, vendor = shops
    publish(cli, "acme", tee(vendor)["id"])
    gate = Gate()
    vendor.inject(Fault("status", match=gate))
    first = vsc_process("sync", "--json")
    try:
        assert gate.entered.wait(60), "the first pass never read the vendor"
        second = subprocess.run(
            [sys.executable, "-m", "vsc", "sync"], capture_output=True, text=True, env=os.environ, timeout=120
        )
        assert second.returncode == 3, second.stderr
        assert "a pass is already running" in second.stderr and f"pid {first.pid}" in second.stderr
    finally:
        gate.release.set()
        out, errs = first.communicate(timeout=120)
    assert first.returncode == 0, errs
    assert json.loads(out)["ok"] is True
    assert db_rows(isolated, "SELECT count(*), min(status) FROM passes") == [(1, "ok")]


def test_a_killed_pass_leaves_a_lock_the_next_pass_recovers(cli, shops, isolated):
    merchant, vendor = shops
    publish(cli, "acme", tee(vendor)["id"])
    gate = Gate()
    vendor.inject(Fault("status", match=gate))
    holder = vsc_process("sync")
    try:
        assert gate.entered.wait(60)
        assert db_rows(isolated, "SELECT status FROM passes") == [("running",)]
        status = cli("status", "--json").json()
        assert status["running"]["pid"] == holder.pid
        holder.send_signal(signal.SIGKILL)
        holder.wait(60)
    finally:
        gate.release.set()
    assert (isolated / "vsc.db.lock").read_text()  # the dead holder's name is still in the file
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert "recovered the pass lock left by pid" in r.err
    rows = db_rows(isolated, "SELECT id, status FROM passes ORDER BY id")
    assert [s for _, s in rows] == ["interrupted", "ok"]
    assert cli("status", "--json").json()["running"] is None
    assert (isolated / "vsc.db.lock").read_text() == ""


# -- 7. safety brakes ------------------------------------------------------------------------


def test_deleting_most_linked_variants_stops_the_vendor_until_force(cli, shops, isolated):
    merchant, vendor = shops
    a, b = tee(vendor, "Alpha Tee"), tee(vendor, "Beta Tee")
    publish(cli, "acme", a["id"])
    publish(cli, "acme", b["id"])
    vendor.delete_product(a["id"])
    vendor.delete_product(b["id"])
    merchant.reset_requests()

    r = cli("sync", "--json")
    assert r.code == 1, r
    data = r.json()
    assert data["actions"] == [] and merchant.count(write=True) == 0
    assert "acme is stopped by a safety brake" in r.err or any("safety brake" in e for e in data["errors"])
    assert data["brakes"][0]["affected"] == 4 and data["brakes"][0]["total"] == 4
    assert {link["state"] for link in cli("map", "list", "--json").json()} == {"active"}

    again = cli("sync")
    assert again.code == 1 and "stopped by a safety brake" in again.err and "--force" in again.err
    assert merchant.count(write=True) == 0
    status = cli("status", "--json").json()
    acme = next(s for s in status["stores"] if s["name"] == "acme")
    assert "4 of its 4 linked variants" in acme["brake"]["reason"]
    assert acme["last_pass"]["result"] == "stopped"

    plan = cli("sync", "--dry-run", "--json")
    assert plan.code == 1 and [a["kind"] for a in plan.json()["actions"]] == ["vendor_deleted", "vendor_deleted"]
    assert merchant.count(write=True) == 0

    forced = cli("sync", "--force", "--json")
    assert forced.code == 0, forced
    assert [a["status"] for a in forced.json()["actions"]] == ["done", "done"]
    assert {link["state"] for link in cli("map", "list", "--json").json()} == {"vendor_deleted"}
    acme = next(s for s in cli("status", "--json").json()["stores"] if s["name"] == "acme")
    assert acme["brake"] is None
    kinds = [e["kind"] for e in cli("log", "--store", "acme", "--json").json()]
    assert "brake_engaged" in kinds and "brake_released" in kinds


def test_brake_share_is_a_setting_per_vendor(cli, shops, isolated):
    merchant, vendor = shops
    settings(isolated, "vendors:\n  acme:\n    brake_share: 100\n")
    a, b = tee(vendor, "Alpha Tee"), tee(vendor, "Beta Tee")
    publish(cli, "acme", a["id"])
    publish(cli, "acme", b["id"])
    vendor.delete_product(a["id"])
    r = cli("sync", "--json")
    assert r.code == 0 and [x["kind"] for x in r.json()["actions"]] == ["vendor_deleted"]
    r = cli("sync", "--json")
    assert r.code == 0, r


def test_an_empty_full_read_stops_the_vendor(cli, isolated, monkeypatch):
    merchant = ShopifySandbox(shop="mall").start()
    woo = WooCommerceSandbox().start()
    try:
        monkeypatch.setenv("MALL_TOKEN", merchant.token)
        monkeypatch.setenv("CK", woo.consumer_key)
        monkeypatch.setenv("CS", woo.consumer_secret)
        assert cli("init").code == 0
        settings(isolated, "brake_share: 100\n")  # only the empty-read brake can stop this pass
        shop_args = ["--role", "merchant", "--shop", merchant.url, "--token-env", "MALL_TOKEN"]
        assert cli("connect", "shopify", "mall", *shop_args).code == 0
        assert (
            cli("connect", "woocommerce", "mugs", "--url", woo.url, "--key-env", "CK", "--secret-env", "CS").code == 0
        )
        ids = [woo.add_product(f"Mug {i}", sku=f"MUG-{i}", price="9.00")["id"] for i in range(3)]
        for pid in ids:
            publish(cli, "mugs", str(pid))
        for pid in ids:  # the whole listing is gone at once (as when an API key loses its rights)
            woo.delete_product(pid)
        merchant.reset_requests()
        r = cli("sync")
        assert r.code == 1
        assert "came back empty" in r.err and "vsc sync --force --vendor mugs" in r.err
        assert merchant.count(write=True) == 0
    finally:
        merchant.stop()
        woo.stop()


def test_destructive_actions_are_a_predicate_other_streams_plug_into():
    def act(kind, **kw):
        return Action(stream="s", kind=kind, store="m", target="t", detail=kw.pop("detail", {}), summary="", **kw)

    assert act("vendor_deleted").is_destructive and act("remove_variants").is_destructive
    assert act("set_quantity", detail={"quantity": 0}).is_destructive
    assert not act("set_quantity", detail={"quantity": 3}).is_destructive
    assert act("push", destructive=True).is_destructive
    assert not act("update_listing").is_destructive


# -- 4. status -------------------------------------------------------------------------------


def test_status_shows_passes_lag_failures_throttling_and_open_requests(cli, shops, isolated):
    from vsc.state import State

    merchant, vendor = shops
    p = tee(vendor)
    publish(cli, "acme", p["id"])
    assert cli("status", "--json").json()["stores"][1]["last_pass"] is None

    vendor.update_product(p["id"], title="Renamed")
    vendor.inject(Fault("status", status=429, retry_after=0, times=1))
    merchant.inject(Fault("status", status=500, match=lambda req: b"productUpdate" in req.body))
    r = cli("sync", "--json")
    assert r.code == 1, r
    state = State.open(isolated / "vsc.db")
    state.add_order_link(
        vendor="acme",
        merchant_order_id="gid://shopify/Order/7",
        merchant_order_name="#1007",
        key="push:gid://shopify/Order/7:acme",
        marker="vsc-7",
        state="pending",
        lines=[],
    )
    state.add_order_link(
        vendor="acme",
        merchant_order_id="gid://shopify/Order/8",
        merchant_order_name="#1008",
        key="push:gid://shopify/Order/8:acme",
        marker="vsc-8",
        state="cancel_requested",
        lines=[],
    )
    state.close()

    data = cli("status", "--json").json()
    by_name = {s["name"]: s for s in data["stores"]}
    acme = by_name["acme"]
    assert acme["last_pass"]["result"] == "failed" and acme["last_pass"]["id"] == r.json()["pass_id"]
    assert acme["last_rate_limit"]["throttled"] == 1 and acme["last_rate_limit"]["http_429"] == 1
    assert by_name["mall"]["last_rate_limit"] is None
    (failed,) = acme["failed_actions"]
    assert failed["kind"] == "update_listing" and "500" in failed["error"]
    assert by_name["mall"]["failed_actions"] == []
    assert [o["merchant_order"] for o in acme["pending_pushes"]] == ["#1007"]
    assert [o["merchant_order"] for o in acme["cancel_requests"]] == ["#1008"]
    (cursor,) = [c for c in acme["cursors"] if c["stream"] == "catalog"]
    assert cursor["lag_seconds"] >= 0

    text = cli("status")
    assert text.code == 0 and "acme" in text.out and "waiting for retry" in text.err

    merchant.clear_faults()
    assert cli("sync").code == 0
    acme = {s["name"]: s for s in cli("status", "--json").json()["stores"]}["acme"]
    assert acme["failed_actions"] == [] and acme["last_pass"]["result"] == "ok"
    assert acme["last_rate_limit"]["pass_id"] == r.json()["pass_id"]  # the last event, from the earlier pass


# -- 5. log and why --------------------------------------------------------------------------


def test_log_filters_by_store_sku_order_and_time(cli, shops, isolated):
    from vsc.state import State

    merchant, vendor = shops
    p = tee(vendor)
    other = tee(vendor, "Cap", sizes=("S",))
    publish(cli, "acme", p["id"])
    publish(cli, "acme", other["id"])
    vendor.update_variant(p["variants"][0]["id"], price="30.00")
    vendor.update_product(other["id"], title="Flat Cap")
    assert cli("sync").code == 0
    state = State.open(isolated / "vsc.db")
    entry = state.journal_begin_action(
        pass_id=None,
        store="acme",
        vendor="acme",
        stream="orders",
        kind="push",
        key="push:gid://shopify/Order/12:acme",
        target="gid://shopify/Order/12",
        detail={"summary": "push #1012"},
    )
    state.journal_finish(entry, status="done")
    state.add_order_link(
        vendor="acme",
        merchant_order_id="gid://shopify/Order/12",
        merchant_order_name="#1012",
        key="push:gid://shopify/Order/12:acme",
        marker="vsc-12",
        state="pushed",
        lines=[],
    )
    state.close()

    everything = cli("log", "--json").json()
    assert {"update_listing", "update_variants", "push"} <= {e["kind"] for e in everything}
    by_sku = cli("log", "--sku", "ORG-M", "--json").json()
    assert "update_variants" in [e["kind"] for e in by_sku]
    assert not any("Cap" in (e["summary"] or "") or e["kind"] == "push" for e in by_sku)
    by_cap = cli("log", "--sku", "CAP-S", "--json").json()
    assert "update_listing" in [e["kind"] for e in by_cap] and "update_variants" not in [e["kind"] for e in by_cap]
    assert [e["kind"] for e in cli("log", "--order", "#1012", "--json").json()] == ["push"]
    assert [e["kind"] for e in cli("log", "--order", "12", "--json").json()] == ["push"]
    assert cli("log", "--order", "1", "--json").json() == []
    assert len(cli("log", "--store", "acme", "--json").json()) == len(everything)
    mall = [e for e in everything if "mall" in (e["store"], e["vendor"])]
    assert cli("log", "--store", "mall", "--json").json() == mall and "push" not in [e["kind"] for e in mall]
    assert len(cli("log", "--since", "1h", "--json").json()) == len(everything)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert cli("log", "--since", tomorrow, "--json").json() == []
    assert len(cli("log", "--limit", "1", "--json").json()) == 1
    text = cli("log", "--sku", "ORG-M")
    assert text.code == 0 and "acme" in text.out and "┃ at" in text.out
    for bad in (["--since", "yesterday-ish"], ["--since", "5 parsecs"], ["--store", "nobody"], ["--limit", "-1"]):
        r = cli("log", *bad)
        assert r.code == 2, (bad, r)


def test_why_explains_what_was_read_decided_and_written(cli, shops, isolated):
    merchant, vendor = shops
    p = tee(vendor)
    publish(cli, "acme", p["id"])
    vendor.update_variant(p["variants"][0]["id"], price="30.00")
    assert cli("sync").code == 0
    data = cli("why", "ORG-M", "--json").json()
    assert data["kind"] == "variant"
    (variant,) = data["variants"]
    assert variant["last_read_from_vendor"]["price"] == "30.00"
    change = data["changes"][0]
    assert change["kind"] == "update_variants" and change["status"] == "done"
    assert change["read"][0]["price"] == "30.00"
    assert change["written"][0]["price"] == "30.00"
    assert "variant(s) of 'Organic Tee'" in change["decided"]
    text = cli("why", "ORG-M")
    assert text.code == 0 and "read:" in text.out and "decided:" in text.out and "wrote:" in text.out
    missing = cli("why", "NO-SUCH-SKU")
    assert missing.code == 2 and "knows no order or SKU" in missing.err


# -- 6. reconcile ----------------------------------------------------------------------------


def test_reconcile_reports_drift_without_writing_and_fix_repairs_it_through_a_pass(cli, shops, isolated):
    merchant, vendor = shops
    settings(isolated, "auto_variants: true\n")
    p = tee(vendor)
    publish(cli, "acme", p["id"])
    (link,) = cli("map", "list", "--json").json()
    mid = link["merchant_product_id"]
    m = merchant.product(mid)
    m_variant = next(v for v in m["variants"] if v["sku"] == "ORG-M")
    merchant.update_product(mid, title="Hand-edited", images=["https://cdn.example/front.jpg"])
    merchant.update_variant(m_variant["id"], price="1.00")
    assert cli("reconcile", "--json").json()["drifts"]  # found before anything is fixed
    merchant.reset_requests()
    vendor.reset_requests()

    r = cli("reconcile", "--json")
    assert r.code == 0, r
    drifts = {(d["kind"], d["what"]) for d in r.json()["drifts"]}
    assert drifts == {("field", "title"), ("image", "image"), ("price", "price")}
    assert merchant.count(write=True) == 0 and vendor.count(write=True) == 0
    text = cli("reconcile")
    assert "3 drift(s)" in text.out and "vsc reconcile --fix" in text.out

    fixed = cli("reconcile", "--fix", "--json")
    assert fixed.code == 0, fixed
    data = fixed.json()
    assert data["fixed"] is True and data["remaining"] == []
    assert {a["kind"] for a in data["pass"]["actions"]} == {"update_listing", "images", "update_variants"}
    m = merchant.product(mid)
    assert m["title"] == "Organic Tee"
    assert sorted(i["url"] for i in m["images"]) == ["https://cdn.example/back.jpg", "https://cdn.example/front.jpg"]
    assert {v["sku"]: v["price"] for v in m["variants"]}["ORG-M"] == "20.00"
    assert cli("reconcile", "--json").json()["in_step"] is True
    kinds = [e["kind"] for e in cli("log", "--json").json()]
    assert kinds.count("reset_fingerprint") == 3
    merchant.reset_requests()
    assert cli("sync", "--json").json()["actions"] == [] and merchant.count(write=True) == 0


def test_reconcile_finds_missing_objects_on_either_side(cli, shops, isolated):
    merchant, vendor = shops
    settings(isolated, "auto_variants: true\n")
    keep, gone = tee(vendor, "Alpha Tee"), tee(vendor, "Beta Tee", sizes=("S",))
    publish(cli, "acme", keep["id"])
    publish(cli, "acme", gone["id"])
    links = {x["vendor_product_id"]: x for x in cli("map", "list", "--json").json()}
    vendor.delete_product(gone["id"])
    m_variant = links[keep["id"]]["variants"][0]["merchant_variant_id"]
    merchant.delete_variant(m_variant)
    r = cli("reconcile", "--json").json()
    whats = sorted(d["what"] for d in r["drifts"])
    assert whats == ["merchant variant", "vendor product"]
    fixed = cli("reconcile", "--fix", "--json")
    assert fixed.code == 0, fixed
    kinds = sorted(a["kind"] for a in fixed.json()["pass"]["actions"])
    assert kinds == ["add_variants", "vendor_deleted"]
    assert fixed.json()["remaining"] == []
    assert len(merchant.product(links[keep["id"]]["merchant_product_id"])["variants"]) == 2


# -- 1. schedules ----------------------------------------------------------------------------


def test_schedule_systemd_and_cron_name_the_secret_variables_never_their_values(cli, shops, isolated):
    merchant, vendor = shops
    r = cli("schedule", "systemd", "--every", "10m")
    assert r.code == 0, r
    text = r.out
    assert "[Service]" in text and "[Timer]" in text and "OnUnitActiveSec=10min" in text
    assert "SuccessExitStatus=3" in text and "WantedBy=timers.target" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    exe = exec_line.split("=", 1)[1].split()[0]
    assert os.path.isabs(exe) and os.path.exists(exe)
    assert f"--db {isolated / 'vsc.db'}" in exec_line and f"--config {isolated / 'vsc.yaml'}" in exec_line
    assert exec_line.endswith(" sync")
    assert f"EnvironmentFile={isolated / 'vsc.env'}" in text
    assert "MALL_TOKEN=" in text and "ACME_TOKEN=" in text
    assert merchant.token not in text and vendor.token not in text
    files = cli("schedule", "systemd", "--user", "--json").json()
    assert set(files) == {"vsc-sync.service", "vsc-sync.timer", "vsc.env"}
    assert "network-online" not in files["vsc-sync.service"]

    cron = cli("schedule", "cron", "--every", "15m")
    assert cron.code == 0, cron
    (line,) = [x for x in cron.out.splitlines() if x and not x.startswith("#") and "sync" in x]
    assert line.startswith("*/15 * * * * set -a; . ") and f"--db {isolated / 'vsc.db'}" in line
    assert line.endswith(f"sync >> {isolated / 'vsc-sync.log'} 2>&1")
    assert merchant.token not in cron.out
    assert cli("schedule", "cron", "--every", "2h").out.count("0 */2 * * *") == 1
    assert cli("schedule", "cron", "--every", "30s").code == 2
    assert cli("schedule", "cron", "--every", "often").code == 2
    assert cli("schedule", "systemd", "--name", "bad name").code == 2


def test_sync_every_runs_passes_until_sigterm(cli, shops, isolated):
    merchant, vendor = shops
    publish(cli, "acme", tee(vendor)["id"])
    proc = vsc_process("sync", "--every", "1s", "--json")
    try:
        wait_for(lambda: db_rows(isolated, "SELECT count(*) FROM passes WHERE status = 'ok'")[0][0] >= 2, "two passes")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, errs = proc.communicate(timeout=60)
    assert proc.returncode == 0, errs
    assert "Stopped." in errs
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(docs) >= 2 and all(d["ok"] for d in docs)
    assert db_rows(isolated, "SELECT count(*) FROM passes WHERE status = 'running'") == [(0,)]


def test_a_failing_run_is_logged_and_the_schedule_goes_on(caplog):
    from vsc.engine.schedule import run_every

    stop = threading.Event()
    calls = []

    def job():
        calls.append(1)
        if len(calls) == 1:
            raise VscError("the merchant store is down")
        if len(calls) == 2:
            raise RuntimeError("a bug")
        stop.set()

    with caplog.at_level(logging.WARNING, logger="vsc.schedule"):
        logging.getLogger("vsc").propagate = True
        try:
            run_every(timedelta(milliseconds=20), job, stop=stop)
        finally:
            logging.getLogger("vsc").propagate = False
    assert len(calls) == 3
    assert "the merchant store is down" in caplog.text and "a bug" in caplog.text


def test_sync_every_refuses_bad_durations_and_one_pass_flags(cli, shops):
    for args in (["--every", "soon"], ["--every", "0s"], ["--every", "5m", "--force"], ["--every", "5m", "--dry-run"]):
        r = cli("sync", *args)
        assert r.code == 2, (args, r)


def test_durations_and_times():
    from vsc.engine.schedule import cron_schedule, parse_duration, parse_when, systemd_span

    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2) and parse_duration("45") == timedelta(seconds=45)
    for bad in ("", "5 parsecs", "m5", "-5m"):
        with pytest.raises(UsageError):
            parse_duration(bad)
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_when("2h", now=now) == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_when("2026-02-01", now=now) == datetime(2026, 2, 1, tzinfo=UTC)
    assert parse_when("2026-02-01T10:00+02:00", now=now) == datetime(2026, 2, 1, 8, tzinfo=UTC)
    assert systemd_span(timedelta(minutes=5)) == "5min" and systemd_span(timedelta(seconds=90)) == "90s"
    assert cron_schedule(timedelta(minutes=1)) == "* * * * *" and cron_schedule(timedelta(days=1)) == "0 0 * * *"


# -- 8. manners ------------------------------------------------------------------------------


def test_debug_logs_request_lines_with_secrets_redacted_even_in_tracebacks(cli, shops, isolated):
    merchant, vendor = shops
    publish(cli, "acme", tee(vendor)["id"])
    r = cli("--debug", "sync", "--json")
    assert r.code == 0, r
    json.loads(r.out)  # stdout stays one JSON document
    assert f"acme POST {vendor.url}" in r.err
    assert vendor.token not in r.err and merchant.token not in r.err
    assert "━" not in r.err  # no progress bar when stderr is not a terminal

    from vsc.cli import setup_logging
    from vsc.secrets import redactor

    redactor.register("s3cr3t-value")
    setup_logging(0, True)
    handler = logging.getLogger("vsc").handlers[0]
    try:
        raise RuntimeError("token s3cr3t-value refused")
    except RuntimeError:
        record = logging.getLogger("vsc.test").makeRecord(
            "vsc.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    text = handler.format(record)
    assert "RuntimeError" in text and "s3cr3t-value" not in text


def test_progress_bar_only_on_a_terminal_and_never_for_json(monkeypatch):
    import io

    from rich.console import Console

    import vsc.cli as cli_module

    plain = io.StringIO()
    monkeypatch.setattr(cli_module, "err", Console(file=plain, force_terminal=False))
    with cli_module.pass_progress(True, 2) as step:
        assert step is None
    tty = io.StringIO()
    monkeypatch.setattr(cli_module, "err", Console(file=tty, force_terminal=True, width=100))
    with cli_module.pass_progress(False, 2) as step:
        assert step is None  # --json
    with cli_module.pass_progress(True, 2) as step:
        step("acme", "catalog")
        step("acme", "orders")
    assert "acme" in tty.getvalue() and plain.getvalue() == ""


def test_the_lock_is_reentrant_in_one_thread_and_exclusive_across_threads(isolated):
    from vsc.engine.lock import PassLock, holder
    from vsc.errors import LockHeld

    db = isolated / "vsc.db"
    with PassLock(db, wait=0):
        with PassLock(db, wait=0):  # reconcile --fix → sync
            assert holder(db)["this_process"] is True
        failures = []

        def other():
            try:
                PassLock(db, wait=0.2).acquire()
            except LockHeld as exc:
                failures.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(failures) == 1 and failures[0].exit_status == 3
    assert holder(db) is None
    with PassLock(db, wait=0) as lock:
        assert lock.recovered is None
