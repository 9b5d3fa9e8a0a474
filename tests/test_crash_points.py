"""Crash points across the whole mission story.

The story (publish, vendor listing edit, stock changes on both sides, merchant orders pushed, an
order attribute edit, a cancellation, a vendor shipment copied back) is run once fault-free on each
vendor platform, recording every remote write vsc sends (every store: POST/PUT/DELETE, GraphQL
mutations) and the end state. Then, for write index k, the story is run again from scratch with the
k-th write killing the vsc process (SIGKILL), either *before* the store applies it or *after* (the
response is lost); the interrupted command is run again, and the rest of the story after it. The
end state must be the fault-free one, every effect must have happened once, and the database must
be valid with no write left pending.

`VSC_CRASH_FULL=1` runs the full cross product (every k, both ways, every platform: ~55 stories).
By default a subset keeps it within CI's budget while still cutting every kind of write on every
platform (see `crashes`). The command that is killed runs as a real process, forked from a
pre-imported vsc (tests/killable.py); the rest of the story runs in-process.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.killable import Forkserver
from tests.marketplace import PLATFORMS, Market, open_market
from tests.test_notify import Inbox, free_port
from tests.test_orders import ADDRESS, state, vendor_orders
from vsc.sandbox.base import Fault, SandboxRequest

FULL = os.environ.get("VSC_CRASH_FULL") == "1"
MODES = ("before", "after")
ORDERS_STEP = 4  # the story's first command that pushes orders
TRACKING = {"number": "1Z777", "company": "UPS", "url": "https://ups.example/t/1Z777"}


_NUMBER = re.compile(r"/\d+")


@dataclass
class Write:
    index: int
    step: int
    kind: str  # "merchant productSet", "vendor POST /wc/v3/orders", ...


@dataclass
class Crash:
    index: int  # the write that kills vsc
    mode: str  # "before" the store applies it, or "after" (a lost response)
    step: int = 0  # the story's command that sends it


@dataclass
class Recorder:
    """Counts vsc's writes across every store in the order they arrive, and fires the crash."""

    crash: Crash | None
    kill: Callable[[], None]
    step: int = 0
    writes: list[Write] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, role: str, store: Any) -> None:
        def match(req: SandboxRequest) -> bool:
            if not store.is_write(req):
                return False
            with self.lock:
                what = store.operation_name(req) or f"{req.method} {_NUMBER.sub('/N', req.path)}"
                kind = f"{role} {what}"
                w = Write(len(self.writes), self.step, kind)
                self.writes.append(w)
                return self.crash is not None and w.index == self.crash.index

        mode = "hook" if self.crash is None or self.crash.mode == "after" else "hook_before"
        store.inject(Fault(mode, match=match, hook=lambda req: self.kill()))


@dataclass
class Outcome:
    writes: list[Write]
    snapshot: dict[str, Any]
    killed: bool


def settings(smtp_port: int) -> str:
    return (
        f"smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false, from: market@example.com}}\n"
        "vendors:\n  acme: {email: orders@acme.example}\n"
    )


# -- the end state, without what differs between two runs of the same story ----------------------------

_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
# Ids, times, and what the stores or vsc draw at random (listing handles, WooCommerce order keys).
_VOLATILE = re.compile(
    r"(^id$|Id$|_id$|Ids$|_ids$|At$|_at$|^date_|_gmt$|modifiedOn|createdOn|^_links$|permalink|^url$|^href$"
    r"|^handle$|^order_key$)"
)


def normalise(value: Any) -> Any:
    """Drop ids and times (they depend on when, not on what), sort lists of records; an empty
    list is `null` or `[]` (Squarespace draws which per object id)."""
    if value is None or value == []:
        return None
    if isinstance(value, dict):
        return {normalise(k): normalise(v) for k, v in sorted(value.items()) if not _VOLATILE.search(k)}
    if isinstance(value, list):
        items = [normalise(v) for v in value]
        return sorted(items, key=repr)
    if isinstance(value, str):
        if _TIME.match(value):
            return "<time>"
        return re.sub(r"\d{6,}", "<n>", re.sub(r"gid://shopify/(\w+)/\d+", r"gid://shopify/\1", value))
    return value


def snapshot(m: Market, inbox: Inbox) -> dict[str, Any]:
    merchant = m.merchant
    return normalise(
        {
            "merchant_products": merchant.products(),
            "merchant_orders": merchant.orders(),
            "vendor_products": m.vendor.store.products(),
            "vendor_orders": m.vendor.orders(),
            "vendor_stock": {sku: m.vendor.stock(sku) for sku in m.vendor.variants},
            "mail": [msg["Subject"] for msg in inbox.messages],
        }
    )


# -- the story ------------------------------------------------------------------------------------------


def run_story(
    platform: str, cli, monkeypatch, inbox: Inbox, forkserver: Forkserver | None = None, crash: Crash | None = None
) -> Outcome:
    """The mission story on a fresh marketplace; with `crash`, the command holding write
    `crash.index` runs as its own process and is killed there, then run again."""
    inbox.messages.clear()
    inbox.envelopes.clear()
    port = inbox.port  # type: ignore[attr-defined]
    m = open_market(platform, cli, monkeypatch, settings=settings(port))
    # Someone's change on the merchant lands in a later second than vsc's last write there, as
    # it does in life: vsc takes a merchant item whose updatedAt (whole seconds) is no later than
    # its own last write for its own echo, and a story that races the second boundary would send
    # different writes from one run to the next.
    later = [0.0]
    m.merchant.clock = lambda: time.time() + later[0]

    def merchant_acts() -> None:
        later[0] += 1.0

    killed = False
    rec = Recorder(crash, forkserver.kill if forkserver is not None else lambda: None)
    rec.attach("merchant", m.merchant)
    rec.attach("vendor", m.vendor.store)

    def vsc(*args: str) -> None:
        nonlocal killed
        rec.step += 1
        if crash is not None and not killed and rec.step == crash.step:
            assert forkserver is not None
            code = forkserver.run(args)
            assert code == -signal.SIGKILL, f"write {crash.index} never came in step {rec.step} ({args}): {code}"
            killed = True
        r = cli(*args)  # the command again, to completion
        assert r.code == 0, (args, r)

    try:
        pid = m.vendor.add_shirt()
        vsc("map", "add", "acme", pid)  # publish
        # The vendor edits the listing.
        if platform == "shopify":
            m.vendor.store.update_product(pid, title="Linen Shirt II")
        elif platform == "woocommerce":
            m.vendor.store.update_product(int(pid), name="Linen Shirt II")
        else:
            m.vendor.store.update_product(pid, name="Linen Shirt II")
        vsc("sync")
        # Stock changes on both sides: the vendor restocks M, someone edits the merchant's S.
        m.vendor.set_stock("SH-M", 7)
        merchant_acts()
        m.merchant.set_available(m.merchant_variant(cli, "SH-S"), None, 9)
        vsc("sync")
        # Two merchant orders: A is edited and then cancelled, B is shipped by the vendor.
        merchant_acts()
        a = m.merchant.place_order(
            [(m.merchant_variant(cli, "SH-S"), 2)], email="ada@example.com", shipping_address=ADDRESS
        )
        b = m.merchant.place_order(
            [(m.merchant_variant(cli, "SH-M"), 1), (m.merchant_variant(cli, "SH-S"), 1)],
            email="bob@example.com",
            shipping_address=ADDRESS,
        )
        vsc("sync")
        merchant_acts()
        m.merchant.update_order(a["id"], note="leave at the door", shipping_address={**ADDRESS, "address1": "2 Rd"})
        vsc("sync")
        merchant_acts()
        m.merchant.cancel_order(a["id"], restock=True)
        vsc("sync")
        pushed = {link.merchant_order_id: link.vendor_order_id for link in state().order_links()}
        if platform == "squarespace":  # vsc asked by e-mail; the vendor cancels in its admin
            m.vendor.store.cancel_order(pushed[a["id"]], restock=True)
        m.vendor.ship(pushed[b["id"]], TRACKING["number"], TRACKING["company"])
        vsc("sync")
        vsc("sync")  # an idle pass changes nothing
        assert [w for w in rec.writes if w.step == rec.step] == []
        assert crash is None or killed
        check_effects(m, inbox, a, b)
        return Outcome(rec.writes, snapshot(m, inbox), killed)
    finally:
        m.stop()


def check_effects(m: Market, inbox: Inbox, a: dict[str, Any], b: dict[str, Any]) -> None:
    """Every effect happened once, and the database is valid with nothing left pending."""
    pushed = vendor_orders(m)
    assert len(pushed) == 2, pushed  # one vendor order per merchant order
    assert m.vendor.stock("SH-S") == 5 - 1 and m.vendor.stock("SH-M") == 7 - 1  # start − sold (A cancelled)
    fulfillments = m.merchant.order(b["id"])["fulfillments"]
    assert len(fulfillments) == 1 and fulfillments[0]["trackingInfo"][0]["number"] == TRACKING["number"]
    assert m.merchant.order(a["id"])["fulfillments"] == []
    # Every e-mail arrived once: one order e-mail per order, and whatever else the fault-free run
    # sent (the snapshot holds the subjects).
    ids = [msg["Message-ID"] for msg in inbox.messages]
    assert len(ids) == len(set(ids)), ids
    sent = state().outbox(statuses=("sent",))
    assert len(sent) == len(ids)
    orders = [mail.subject for mail in sent if mail.kind == "order"]
    assert [sum(o["name"] in subject for subject in orders) for o in (a, b)] == [1, 1], orders
    db = os.environ["VSC_DB"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        pending = conn.execute("SELECT key, kind FROM journal WHERE status = 'pending'").fetchall()
    assert pending == []
    assert state().unfinished_writes() == [] and state().outbox() == []


# -- the tests -----------------------------------------------------------------------------------------


@pytest.fixture
def inbox():
    box = Inbox()
    port = free_port()
    server = Controller(box, hostname="127.0.0.1", port=port)
    server.start()
    box.port = port  # type: ignore[attr-defined]
    yield box
    server.stop()


_FAULT_FREE: dict[str, Outcome] = {}


def fault_free(platform: str, cli, monkeypatch, inbox: Inbox, home) -> Outcome:
    """The fault-free run of the story on `platform` (once per test session)."""
    if platform not in _FAULT_FREE:
        fresh_db(monkeypatch, home, "fault-free")
        _FAULT_FREE[platform] = run_story(platform, cli, monkeypatch, inbox)
    return _FAULT_FREE[platform]


def fresh_db(monkeypatch, home: Path, name: str) -> None:
    (home / name).mkdir()
    monkeypatch.setenv("VSC_DB", str(home / name / "vsc.db"))


@pytest.fixture
def home(isolated):
    """Where each run's database goes. A story commits a few hundred transactions and each commit
    syncs to disk: on a RAM file system where there is one (still a real SQLite file)."""
    if not (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)):
        yield isolated
        return
    with tempfile.TemporaryDirectory(prefix="vsc-crash-", dir="/dev/shm") as d:
        yield Path(d)


def crashes(platform: str, writes: list[Write]) -> list[Crash]:
    """Which writes to crash at, and how.

    `VSC_CRASH_FULL=1`: every write, both ways. By default a subset that still cuts every kind of
    write on every platform: the first write of each kind (operation, and story step from the
    orders on). Vendor writes are cut after the vendor applied them (the case a retry must
    recognise), the merchant's writes of the order steps before or after in turn. The catalog and
    stock writes of the first steps go to the merchant alone and do not depend on the vendor's
    platform: each of those is cut both ways once, on platforms in rotation.
    """
    if FULL:
        return [Crash(w.index, mode) for w in writes for mode in ("before", "after")]
    p = PLATFORMS.index(platform)
    firsts: dict[str, Write] = {}
    for w in writes:
        firsts.setdefault(w.kind if w.step < ORDERS_STEP else f"{w.step} {w.kind}", w)
    out = []
    for n, w in enumerate(firsts.values()):
        if w.step < ORDERS_STEP:
            out += [Crash(w.index, mode) for m, mode in enumerate(MODES) if (2 * n + m) % len(PLATFORMS) == p]
        elif w.kind.startswith("vendor "):
            out.append(Crash(w.index, "after"))  # vendor APIs without idempotency keys: the answer lost
        else:
            out.append(Crash(w.index, MODES[(n + p) % 2]))
    return out


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_story_fault_free_writes_each_effect_once(platform, cli, monkeypatch, inbox, home):
    clean = fault_free(platform, cli, monkeypatch, inbox, home)
    kinds = {w.kind for w in clean.writes}
    assert {"merchant productSet", "merchant publishablePublish", "merchant fulfillmentCreate"} <= kinds
    assert any(k.startswith("vendor ") for k in kinds)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_killed_at_each_write_then_rerun_ends_as_if_nothing_happened(
    platform, cli, monkeypatch, inbox, home, forkserver
):
    clean = fault_free(platform, cli, monkeypatch, inbox, home)
    failures = []
    for crash in crashes(platform, clean.writes):
        write = clean.writes[crash.index]
        fresh_db(monkeypatch, home, f"k{crash.index}-{crash.mode}")
        crash.step = write.step
        where = f"killed {crash.mode} write {crash.index} ({write.kind}, step {write.step})"
        try:
            out = run_story(platform, cli, monkeypatch, inbox, forkserver, crash)
        except AssertionError as exc:
            failures.append(f"{where}: {str(exc)[:1500]}")
            continue
        if out.snapshot != clean.snapshot:
            failures.append(f"{where}: end state differs: {diff(clean.snapshot, out.snapshot)}")
    assert not failures, "\n".join(failures)


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two snapshots differ, as paths (for a readable failure)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += diff(a.get(k), b.get(k), f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r:.200} != {b!r:.200}"]
