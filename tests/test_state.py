"""The state database: created 0600, migrations on open, refusing missing, corrupt or newer files."""

from __future__ import annotations

import os
import stat

import pytest

from vsc.errors import StateError, StateMissing, UsageError
from vsc.state import State, StoreRow


def test_created_with_mode_0600_and_all_tables(tmp_path):
    path = tmp_path / "sub" / "vsc.db"
    state = State.create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert {"stores", "product_links", "variant_links", "cursors", "journal", "passes"} <= set(state.db.table_names())
    state.close()


def test_missing_database_names_vsc_init(tmp_path):
    with pytest.raises(StateMissing) as caught:
        State.open(tmp_path / "nope.db")
    assert "vsc init" in caught.value.hint


def test_corrupt_database_is_refused(tmp_path):
    path = tmp_path / "vsc.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StateError, match="not a readable vsc database"):
        State.open(path)


def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "vsc.db"
    state = State.create(path)
    state.db["_sqlite_migrations"].insert(
        {"migration_set": "vsc", "name": "9999_from_the_future", "applied_at": "2030-01-01"}
    )
    state.close()
    with pytest.raises(StateError, match="newer vsc"):
        State.open(path)


def test_exactly_one_merchant(tmp_path):
    state = State.create(tmp_path / "vsc.db")
    state.add_store(StoreRow("mall", "shopify", "merchant", "https://mall.myshopify.com", {"token": {"env": "T"}}))
    with pytest.raises(UsageError, match="already the merchant"):
        state.add_store(StoreRow("mall2", "shopify", "merchant", "https://x.myshopify.com", {}))
    with pytest.raises(UsageError, match="already exists"):
        state.add_store(StoreRow("mall", "shopify", "vendor", "https://x.myshopify.com", {}))


def test_links_cursors_and_journal_round_trip(tmp_path):
    from datetime import UTC, datetime

    state = State.create(tmp_path / "vsc.db")
    state.add_store(StoreRow("acme", "shopify", "vendor", "https://acme.myshopify.com", {}))
    link = state.add_product_link("acme", "p1", "m1", mode="published", fingerprint={"title": "T"})
    v = state.add_variant_link(
        link,
        vendor_variant_id="v1",
        merchant_variant_id="mv1",
        merchant_inventory_item_id="ii1",
        sku="S",
        barcode=None,
        fingerprint={"price": "1"},
    )
    assert state.product_link("acme", "p1").fingerprint == {"title": "T"}
    assert state.variant_link_by_merchant_variant("mv1") == v
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    state.set_cursor("acme", "catalog", stamp)
    assert state.cursor("acme", "catalog") == stamp
    entry = state.journal_begin(pass_id=None, store="m", stream="catalog", kind="k", key="a:b", target="t")
    state.journal_finish(entry, status="done")
    (row,) = state.journal(key_like="a:b")
    assert row.status == "done"
    state.remove_store("acme")
    assert state.product_links() == [] and state.variant_links() == []


def test_atomic_rolls_back_together(tmp_path):
    state = State.create(tmp_path / "vsc.db")
    state.add_store(StoreRow("acme", "shopify", "vendor", "https://acme.myshopify.com", {}))
    with pytest.raises(RuntimeError), state.atomic():
        state.add_product_link("acme", "p1", "m1", mode="published")
        raise RuntimeError("crash")
    assert state.product_links() == []


def test_writes_cut_off_by_a_killed_pass_are_settled_by_a_later_attempt_or_a_clean_pass(tmp_path):
    state = State.create(tmp_path / "vsc.db")

    def begin(pass_id, key, stream="orders", vendor="acme"):
        return state.journal_begin(
            pass_id=pass_id, store="mall", stream=stream, kind="k", key=key, target="t", vendor=vendor
        )

    killed = state.begin_pass(dry_run=False)
    begin(killed, "push:1")  # the same write is attempted again below
    begin(killed, "stock:1", stream="inventory")  # found made by the next pass: not attempted again
    begin(killed, "stock:2", stream="inventory", vendor="beta")  # beta is not in the next pass
    assert state.interrupt_stale_passes() == [killed]
    assert {e.key for e in state.unfinished_writes()} == {"push:1", "stock:1", "stock:2"}

    again = state.begin_pass(dry_run=False)
    retry = begin(again, "push:1")
    state.journal_finish(retry, status="failed", error="refused")
    assert {e.key for e in state.unfinished_writes()} == {"push:1", "stock:1", "stock:2"}  # not settled yet
    retry = begin(again, "push:1")
    state.journal_finish(retry, status="done")
    assert {e.key for e in state.unfinished_writes()} == {"stock:1", "stock:2"}
    assert state.settle_cut_off(vendors=["acme"], streams=["orders", "inventory"], by_pass=again) == 1
    assert [e.key for e in state.unfinished_writes()] == ["stock:2"]
    statuses = {(e.key, e.status) for e in state.journal() if e.status == "interrupted"}
    assert statuses == {("push:1", "interrupted"), ("stock:1", "interrupted")}
    state.close()


def test_an_up_to_date_database_opens_without_sqlite_utils(tmp_path):
    """sqlite-utils (and click, pluggy, dateutil with it) is imported only to apply a migration:
    its import was ~0.15 s of CPU in every cron pass."""
    import subprocess
    import sys

    path = tmp_path / "vsc.db"
    State.create(path).close()
    code = (
        "import sys\n"
        "from vsc.state import State\n"
        f"s = State.open({str(path)!r})\n"
        "with s.atomic():\n"
        "    s.engage_brake('acme', reason='r', detail={'a': 1}, pass_id=None)\n"
        "    s.engage_brake('acme', reason='again', detail={}, pass_id=None)\n"
        "print(s.brakes()['acme']['reason'], sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlite_utils', 'click', 'pluggy', 'dateutil')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["again", "[]"], done.stdout + done.stderr


def test_row_operations_without_sqlite_utils(tmp_path):
    from vsc.state import RowMissing

    state = State.create(tmp_path / "vsc.db")
    state.add_store(StoreRow("acme", "shopify", "vendor", "https://acme.myshopify.com", {}))
    link = state.add_product_link("acme", "p1", "m1", mode="published", fingerprint={"title": "T"})
    state.update_product_link(link.id, fingerprint={"title": "U", "tags": ["a"]})
    assert state.product_link_by_id(link.id).fingerprint == {"title": "U", "tags": ["a"]}
    with pytest.raises(RowMissing):
        state.db["product_links"].update(link.id + 100, {"state": "active"})
    with pytest.raises(RowMissing):
        state.db["product_links"].get(link.id + 100)
    with pytest.raises(ZeroDivisionError), state.atomic():  # a failed block leaves nothing behind
        state.update_product_link(link.id, state="diverged")
        with state.atomic():  # nested: a savepoint
            state.update_product_link(link.id, note="inner")
        1 / 0  # noqa: B018
    assert state.product_link_by_id(link.id).state != "diverged"
    assert state.db["stores"].count_where("name = ?", ["acme"]) == 1
    state.close()


def _vendor_with_variants(state: State, vendor: str, count: int, prefix: str = "") -> list:
    """A vendor store with one linked product of `count` linked variants: v0, v1... at the vendor,
    mv{prefix}0... and inventory items i{prefix}0... at the merchant."""
    state.add_store(StoreRow(vendor, "shopify", "vendor", f"https://{vendor}.myshopify.com", {}))
    link = state.add_product_link(vendor, "p1", f"m-{vendor}", mode="published", fingerprint={})
    return [
        state.add_variant_link(
            link,
            vendor_variant_id=f"v{n}",
            merchant_variant_id=f"mv{prefix}{n}",
            merchant_inventory_item_id=f"i{prefix}{n}",
            sku=None,
            barcode=None,
        )
        for n in range(count)
    ]


@pytest.mark.parametrize("many", [False, True])
def test_stock_links_loads_only_what_can_need_a_write(tmp_path, many):
    """Whether the named variants and items fit one statement or not (a pass after stock writes
    for many vendors names the merchant's changed items of all of them), a vendor's stock plan
    loads the named links and the unsettled ones, not its whole catalog."""
    state = State.create(tmp_path / "vsc.db")
    made = _vendor_with_variants(state, "acme", 6)
    for n in range(6):
        # settled: the merchant shows what the vendor's 5 calls for; n == 5 is not
        state.update_variant_link(
            made[n].id, vendor_available=5, merchant_available=5 if n != 5 else 4, merchant_location_id="L"
        )
    noise = [f"other{k}" for k in range(700 if many else 10)]
    got = state.stock_links(
        "acme", variant_ids=["v1", *noise[:300]], items=[*noise, "i3"], location="L", buffer=0, untracked=None
    )
    assert [v.vendor_variant_id for v in got] == ["v1", "v3", "v5"]
    state.close()


def test_many_links_and_journal_entries_settle_as_one_at_a_time_would(tmp_path):
    """`update_variant_links` and `journal_finish_many` (a stock batch's writes) leave the rows as
    `update_variant_link` and `journal_finish` called one by one would, superseded attempts
    included, and refuse links that are not there."""
    from vsc.state import RowMissing

    state = State.create(tmp_path / "vsc.db")
    made = _vendor_with_variants(state, "acme", 3)
    with state.atomic():
        state.update_variant_links(
            [
                (made[0].id, {"vendor_available": 4, "stock_seen": 1}),
                (made[1].id, {"merchant_available": 7, "merchant_location_id": "L", "merchant_stock_at": None}),
                (made[2].id, {"vendor_available": 0, "stock_seen": 1}),
            ]
        )
    got = {v.vendor_variant_id: v for v in state.variant_links()}
    assert (got["v0"].vendor_available, got["v0"].stock_seen, got["v0"].merchant_available) == (4, True, None)
    assert (got["v1"].merchant_available, got["v1"].merchant_location_id, got["v1"].vendor_available) == (7, "L", None)
    assert got["v2"].vendor_available == 0
    with pytest.raises(RowMissing):
        state.update_variant_links([(made[0].id, {"vendor_available": 1}), (99999, {"vendor_available": 1})])

    def begin(key):
        return state.journal_begin(pass_id=None, store="m", stream="inventory", kind="set", key=key, target="t")

    cut_off = begin("stock:a")  # an earlier attempt a killed pass left pending
    a, b, c = begin("stock:a"), begin("stock:b"), begin("stock:c")
    state.journal_finish_many(
        [(a, "done", {"quantity": 3}, None), (b, "failed", None, "refused"), (c, "done", None, None)]
    )
    rows = {e.id: e for e in state.journal()}
    assert (rows[a].status, rows[a].detail) == ("done", {"quantity": 3})
    assert (rows[b].status, rows[b].error) == ("failed", "refused")
    assert rows[c].status == "done"
    assert (rows[cut_off].status, rows[cut_off].error) == ("interrupted", f"cut off; settled by journal entry {a}")
    with pytest.raises(RowMissing):
        state.journal_finish(99999, status="done")
    state.close()


def test_order_links_of_many_merchant_orders_in_one_look(tmp_path):
    """A pass plans every merchant order of its window for every vendor: the vendor's links of
    those orders are read together (500 ids a statement), not one statement per order."""
    state = State.create(tmp_path / "vsc.db")
    for vendor in ("acme", "beta"):
        state.add_store(StoreRow(vendor, "shopify", "vendor", f"https://{vendor}.myshopify.com", {}))
    with state.atomic():
        for n in range(0, 1200, 3):
            for vendor in ("acme", "beta"):
                state.add_order_link(
                    vendor=vendor,
                    merchant_order_id=f"o{n}",
                    merchant_order_name=f"#{n}",
                    key=f"push:o{n}:{vendor}",
                    marker=f"m{n}",
                    state="pushed",
                    lines=[],
                )
    statements: list[str] = []
    state.db.conn.set_trace_callback(statements.append)
    got = state.order_links_of("acme", [f"o{n}" for n in range(1200)])
    state.db.conn.set_trace_callback(None)
    assert sorted(got) == sorted(f"o{n}" for n in range(0, 1200, 3))
    assert {link.vendor for link in got.values()} == {"acme"}
    assert got["o300"] == state.order_link("o300", "acme")
    assert len(statements) == 3  # 1,200 ids, 500 a statement
    state.close()


def test_vendors_of_items_names_each_vendor_its_own_active_items(tmp_path):
    """The merchant's changed items of a pass are matched to their vendors once (index on the
    item), so each vendor's stock plan names only its own, not all of them."""
    state = State.create(tmp_path / "vsc.db")
    for vendor in ("acme", "beta"):
        made = _vendor_with_variants(state, vendor, 3, prefix=f"-{vendor}-")
        state.update_variant_link(made[2].id, state="gone")
    items = ["i-acme-0", "i-acme-2", "i-beta-1", "i-beta-0", "unknown", *[f"x{k}" for k in range(600)]]
    got = {vendor: sorted(mine) for vendor, mine in state.vendors_of_items(items).items()}
    assert got == {"acme": ["i-acme-0"], "beta": ["i-beta-0", "i-beta-1"]}
    plan = state.db.conn.execute(
        "EXPLAIN QUERY PLAN SELECT vendor FROM variant_links WHERE merchant_inventory_item_id IN (?)", ["x"]
    ).fetchall()
    assert "merchant_inventory_item_id" in str(plan), plan
    state.close()


def test_a_plan_digest_is_cleared_by_any_change_the_catalog_planner_reads(tmp_path):
    """A product link's plan digest stands only while its links are as they were when its plan
    came out empty: changes to what the planner reads of them clear it, whoever makes them (a
    catalog write, `vsc reconcile`, `vsc map`); stock bookkeeping does not."""
    state = State.create(tmp_path / "vsc.db")
    made = _vendor_with_variants(state, "acme", 2)
    link_id = made[0].product_link_id

    def digest() -> str | None:
        return state.plan_digests([link_id]).get(link_id)

    changes = [
        lambda: state.update_variant_link(made[0].id, fingerprint={"price": "1.00"}),
        lambda: state.update_variant_link(made[1].id, state="vendor_deleted"),
        lambda: state.update_variant_links([(made[0].id, {"sku": "NEW"})]),
        lambda: state.update_product_link(link_id, fingerprint={"title": "Renamed"}),
        lambda: state.update_product_link(link_id, state="diverged"),
        lambda: state.add_variant_link(
            state.product_link_by_id(link_id),
            vendor_variant_id="v9",
            merchant_variant_id="mv9",
            merchant_inventory_item_id="i9",
            sku=None,
            barcode=None,
        ),
        lambda: state.remove_variant_link(made[1].id),
    ]
    for change in changes:
        state.set_plan_digests([(link_id, "d1")])
        assert digest() == "d1"
        change()
        assert digest() is None
    state.set_plan_digests([(link_id, "d2")])
    state.update_variant_links([(made[0].id, {"vendor_available": 3, "stock_seen": 1, "merchant_available": 3})])
    state.update_variant_link(made[0].id, merchant_location_id="L", merchant_stock_at="2026-11-28T00:00:00+00:00")
    state.update_product_link(link_id, note="a note")
    assert digest() == "d2"
    state.close()
