"""The bad-input catalogue: one test per kind of bad input vsc must survive (issue 8).

Each test drives the real `vsc` command line against sandbox stores over HTTP on a
real SQLite file, and checks three things: the message says what is wrong and what
to do, the exit code is the contract's (2: bad input or usage, nothing changed;
1: the pass ran but some actions failed), and nothing was lost or changed wrongly
(database rows, links, journal, the stores).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.marketplace import PLATFORMS, Market, open_market
from vsc.sandbox.shopify import ShopifySandbox


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table: what "nothing changed" is checked against."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: con.execute(f"SELECT * FROM [{t}] ORDER BY rowid").fetchall() for t in tables}
    finally:
        con.close()


def rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(params=PLATFORMS)
def market(request, cli, isolated, monkeypatch):
    m = open_market(request.param, cli, monkeypatch)
    yield m
    m.stop()


def publish_shirt(cli: Any, m: Market) -> dict[str, Any]:
    """Publish the vendor's two-size shirt; returns its `map list` entry."""
    pid = m.vendor.add_shirt()
    r = cli("map", "add", "acme", pid)
    assert r.code == 0, r
    (link,) = cli("map", "list", "--json").json()
    return link


# -- 1. settings ---------------------------------------------------------------------------------


SETTINGS_CASES = [
    (
        "auto_variant: true\norder_push: maybe\nstock_buffer: -2\nprice_rule: {percent: lots}\n"
        "vendors:\n  acme: {emial: a@b.c, brake_share: 101}\n",
        [
            "6 problems",
            "auto_variant: unknown key (did you mean 'auto_variants'?)",
            "order_push: must be true or false",
            "stock_buffer: must be at least 0",
            "price_rule.percent: must be a number",
            "vendors.acme.emial: unknown key (did you mean 'email'?)",
            "vendors.acme.brake_share:",
        ],
    ),
    ("auto_variants: true\nvendors: [unclosed\n", ["line 3"]),  # YAML syntax
    ("- just\n- a list\n", ["mapping"]),  # not a mapping at all
]


def test_malformed_settings_are_all_reported_at_once_and_nothing_runs(cli, isolated, monkeypatch):
    m = open_market("shopify", cli, monkeypatch)
    try:
        publish_shirt(cli, m)
        m.vendor.set_stock("SH-S", 1)
        before = snapshot(isolated / "vsc.db")
        m.merchant.reset_requests()
        m.vendor.store.reset_requests()
        for text, expected in SETTINGS_CASES:
            (isolated / "vsc.yaml").write_text(text)
            for args in (["sync"], ["sync", "--dry-run"], ["map", "auto", "acme"]):
                r = cli(*args)
                assert r.code == 2, (args, r)
                for says in expected:
                    assert says in r.err, (says, r.err)
                assert "vsc.yaml" in r.err and "config.example.yaml" in r.err  # where, and what to read
        assert snapshot(isolated / "vsc.db") == before
        assert m.merchant.count() == 0 and m.vendor.store.count() == 0
    finally:
        m.stop()


# -- 2. arguments --------------------------------------------------------------------------------


def test_bad_arguments_exit_2_say_what_to_do_and_change_nothing(cli, isolated, monkeypatch):
    m = open_market("woocommerce", cli, monkeypatch)
    try:
        publish_shirt(cli, m)
        mug = m.vendor.add_product("Mug", [{"sku": "MUG-1"}])
        before = snapshot(isolated / "vsc.db")
        m.merchant.reset_requests()
        cases = [
            (["sync", "--vendor", "nosuch"], "nosuch"),
            (["sync", "--only", "catalog,everything"], "Streams are: catalog, inventory, orders, tracking"),
            (["sync", "--every", "5 parsecs"], "30s"),
            (["map", "add", "nosuch", "1"], "nosuch"),
            (["map", "add", "acme", "999999"], "999999"),
            (["map", "add", "acme", mug, "--to", "gid://shopify/Product/424242"], "424242"),
            (["map", "remove", "acme", "123456"], "vsc map list acme"),
            (["map", "auto", "acme", "--by", "colour"], "--by"),
            (["log", "--since", "the day before"], "3d"),
            (["why", "NO-SUCH-SKU"], "NO-SUCH-SKU"),
            (
                [
                    "connect",
                    "shopify",
                    "mall2",
                    "--role",
                    "merchant",
                    "--shop",
                    m.merchant.url,
                    "--token-env",
                    "MALL_TOKEN",
                ],
                "already the merchant",
            ),
            (
                [
                    "connect",
                    "woocommerce",
                    "bad name!",
                    "--url",
                    m.vendor.store.url,
                    "--key-env",
                    "CK",
                    "--secret-env",
                    "CS",
                ],
                "not a usable store name",
            ),
            (["connect", "squarespace", "sq", "--api-key-env", "NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE"),
            (["stores", "remove", "nosuch", "--yes"], "nosuch"),
            # connecting a name again renews credentials only for the same platform, role and address
            (
                ["connect", "squarespace", "acme", "--api-key-env", "CK", "--api-url", m.vendor.store.url],
                "already exists",
            ),
        ]
        for args, says in cases:
            r = cli(*args)
            assert r.code == 2, (args, r)
            assert says in r.err, (args, says, r.err)
        assert snapshot(isolated / "vsc.db") == before
        assert m.merchant.count(write=True) == 0 and m.vendor.store.count(write=True) == 0
    finally:
        m.stop()


# -- 3. the database -----------------------------------------------------------------------------


def _future(db: Path) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('vsc', '9999_future', '2030')"
        )
    con.close()


@pytest.mark.parametrize(
    ("damage", "says", "hint"),
    [
        ("missing", "no vsc database at", "vsc init"),
        ("corrupt", "not a readable vsc database", "backup"),
        ("newer", "newer vsc", "upgrade"),
    ],
)
def test_missing_corrupt_or_newer_database_is_refused_and_left_untouched(cli, isolated, damage, says, hint):
    db = isolated / "vsc.db"
    if damage != "missing":
        assert cli("init").code == 0
        if damage == "corrupt":
            db.write_bytes(b"\x00this is not sqlite\x00" * 500)
        else:
            _future(db)
    before = db.read_bytes() if db.exists() else None
    for args in (["sync"], ["stores"], ["map", "list"], ["status"], ["log"]):
        r = cli(*args)
        assert r.code == 2, (args, r)
        assert says in r.err and hint in r.err.lower(), (args, r.err)
    if damage != "missing":
        r = cli("init")  # init must not paper over a database it cannot read
        assert r.code == 2, r
    assert (db.read_bytes() if db.exists() else None) == before


# -- 4. a token revoked mid-pass -------------------------------------------------------------------


class RevokeAfter:
    """A sandbox fault rule that never fires: on the store's `n`-th request it revokes vsc's
    credentials (between two requests of one pass), so the next request is refused."""

    def __init__(self, vendor: Any, n: int) -> None:
        self.vendor, self.n, self.seen = vendor, n, 0

    def __call__(self, req: Any) -> bool:
        self.seen += 1
        if self.seen == self.n:
            self.vendor.revoke()
        return False


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_token_revoked_mid_pass_fails_that_store_alone_until_reconnected(cli, isolated, monkeypatch, platform):
    from vsc.sandbox.base import Fault

    m = open_market(platform, cli, monkeypatch)
    other = ShopifySandbox(shop="other").start()
    try:
        monkeypatch.setenv("OTHER_TOKEN", other.token)
        args = ["--role", "vendor", "--shop", other.url, "--token-env", "OTHER_TOKEN"]
        assert cli("connect", "shopify", "other", *args).code == 0
        link = publish_shirt(cli, m)
        cap = other.add_product("Cap", variants=[{"sku": "CAP-1", "price": "9.00", "available": 4}])
        assert cli("map", "add", "other", cap["id"]).code == 0
        m.vendor.set_stock("SH-S", 2)
        other.set_available(cap["variants"][0]["id"], None, 1)
        m.vendor.store.inject(Fault("status", match=RevokeAfter(m.vendor, 2)))
        links_before = rows(isolated / "vsc.db", "SELECT * FROM variant_links WHERE vendor = 'acme' ORDER BY id")
        r = cli("sync")
        assert r.code == 1, r
        text = " ".join(r.err.split())
        assert "acme" in text and "vsc connect " + platform + " acme" in text and "links are kept" in text, text
        assert "other" not in text  # the other vendor went on, untouched by acme's failure
        sku_of = {v["merchant_variant_id"]: v["sku"] for v in link["variants"]}
        merchant_stock = {sku_of[vid]: m.merchant.available(vid) for vid in sku_of}
        assert merchant_stock == {"SH-S": 5, "SH-M": 3}  # acme's change waits
        (cap_link,) = cli("map", "list", "other", "--json").json()
        assert m.merchant.available(cap_link["variants"][0]["merchant_variant_id"]) == 1  # other's went through
        assert (
            rows(isolated / "vsc.db", "SELECT * FROM variant_links WHERE vendor = 'acme' ORDER BY id") == links_before
        )
        status = {s["name"]: s for s in cli("status", "--json").json()["stores"]}
        assert status["other"]["last_pass"]["result"] == "ok" and status["acme"]["last_pass"]["result"] == "failed"
        assert status["acme"]["check_status"] == "auth failed"

        m.vendor.store.clear_faults()
        again = cli("sync")
        assert again.code == 1 and "vsc connect" in again.err  # still refused, still said plainly

        r = cli(*m.vendor.new_credentials(monkeypatch))
        assert r.code == 0 and "Reconnected" in r.out, r
        assert (
            rows(isolated / "vsc.db", "SELECT * FROM variant_links WHERE vendor = 'acme' ORDER BY id") == links_before
        )
        assert {s["name"]: s for s in cli("status", "--json").json()["stores"]}["acme"]["check_status"] == "ok"
        r = cli("sync")
        assert r.code == 0, r
        assert {sku_of[vid]: m.merchant.available(vid) for vid in sku_of} == {"SH-S": 2, "SH-M": 3}
    finally:
        other.stop()
        m.stop()


# -- 5. a product or variant deleted on either side ---------------------------------------------


def _publish_shirt_and_mug(cli: Any, m: Market) -> tuple[dict[str, Any], dict[str, Any]]:
    shirt = m.vendor.add_shirt()
    mug = m.vendor.add_product("Mug", [{"sku": "MUG-1", "qty": 4}])
    r = cli("map", "add", "acme", shirt, mug)
    assert r.code == 0, r
    links = {link["vendor_product_id"]: link for link in cli("map", "list", "--json").json()}
    return links[shirt], links[mug]


def test_product_or_variant_deleted_on_the_vendor_side(cli, market, isolated):
    m = market
    shirt, mug = _publish_shirt_and_mug(cli, m)
    m.vendor.delete_variant("SH-M")
    m.vendor.delete_product(mug["vendor_product_id"])
    r = cli("sync", "--json")
    assert r.code == 0, r
    found = {a["kind"]: a for a in r.json()["actions"] if a["stream"] == "catalog"}
    assert set(found) == {"vendor_deleted", "diverged"}
    assert "auto_variants is off" in found["diverged"]["summary"] and "SH-M" in found["diverged"]["summary"]
    assert m.merchant.product(mug["merchant_product_id"])["status"] == "DRAFT"  # drafted, not lost
    m_skus = {v["sku"] for v in m.merchant.product(shirt["merchant_product_id"])["variants"]}
    assert m_skus == {"SH-S", "SH-M"}  # kept on the merchant while auto_variants is off
    states = {link["vendor_product_id"]: link["state"] for link in cli("map", "list", "--json").json()}
    assert states == {shirt["vendor_product_id"]: "diverged", mug["vendor_product_id"]: "vendor_deleted"}
    m.merchant.reset_requests()
    again = cli("sync", "--json")
    assert again.code == 0 and again.json()["actions"] == [] and m.merchant.count(write=True) == 0


def test_product_or_variant_deleted_on_the_merchant_side(cli, market, isolated):
    m = market
    shirt, mug = _publish_shirt_and_mug(cli, m)
    sh_m = next(v for v in shirt["variants"] if v["sku"] == "SH-M")
    sh_s = next(v for v in shirt["variants"] if v["sku"] == "SH-S")
    m.merchant.delete_product(mug["merchant_product_id"])
    m.merchant.delete_variant(sh_m["merchant_variant_id"])
    for sku in ("SH-S", "SH-M", "MUG-1"):
        m.vendor.set_stock(sku, 1)
    vendor_writes = m.vendor.store.count(write=True)

    r = cli("sync")  # the pass that finds out: its failed writes say what happened and what to do
    assert r.code == 1, r
    text = " ".join(r.err.split())
    assert "'Mug'" in text and "was deleted on the merchant store" in text
    assert f"vsc map remove acme {mug['vendor_product_id']}" in text and "vsc map add acme" in text
    assert "SH-M of 'Linen Shirt' were deleted on the merchant store" in text
    assert m.merchant.available(sh_s["merchant_variant_id"]) == 1  # the rest of the product still synced

    m.merchant.reset_requests()
    r = cli("sync")  # no retry loop: the deleted side is marked and left alone
    assert r.code == 0, r
    assert m.merchant.count(write=True) == 0
    assert m.vendor.store.count(write=True) == vendor_writes  # nothing was done to the vendor's store
    links = {link["vendor_product_id"]: link for link in cli("map", "list", "--json").json()}
    assert links[mug["vendor_product_id"]]["state"] == "merchant_deleted"
    assert {v["sku"]: v["state"] for v in links[shirt["vendor_product_id"]]["variants"]} == {
        "SH-S": "active",
        "SH-M": "merchant_deleted",
    }
    status = cli("status", "--json").json()
    (acme,) = [s for s in status["stores"] if s["name"] == "acme"]
    assert acme["failed_actions"] == []  # nothing waits for a retry that would fail forever
    attention = {a["vendor_product_id"]: a for a in acme["links_needing_attention"]}
    assert attention[mug["vendor_product_id"]]["state"] == "merchant_deleted"
    assert attention[shirt["vendor_product_id"]]["merchant_deleted_skus"] == ["SH-M"]
    assert "vsc map add acme" in cli("status").err
    why = cli("why", "MUG-1")
    assert why.code == 0 and "merchant_deleted" in why.out

    # Publishing again is the user's choice, and works.
    assert cli("map", "remove", "acme", mug["vendor_product_id"]).code == 0
    assert cli("map", "add", "acme", mug["vendor_product_id"]).code == 0
    (again,) = [x for x in cli("map", "list", "--json").json() if x["vendor_product_id"] == mug["vendor_product_id"]]
    assert again["state"] == "active" and m.merchant.product(again["merchant_product_id"]) is not None


# -- 6. duplicate or empty SKUs --------------------------------------------------------------------


def test_duplicate_or_empty_skus_are_never_guessed_and_publishing_still_works(cli, market, isolated):
    m = market
    platform = m.vendor.platform
    # Shopify lets a store repeat a SKU and leave one empty; WooCommerce refuses duplicates but
    # takes empty SKUs; Squarespace needs a unique SKU on every variant. The merchant (Shopify)
    # can always repeat one, so every platform meets an ambiguous key there.
    dup = "DUP" if platform == "shopify" else "DUP-2"
    tee = m.vendor.add_product(
        "Tee",
        [
            {"sku": "DUP", "options": {"Size": "S"}, "qty": 2},
            {"sku": dup, "options": {"Size": "M"}, "qty": 3},
        ],
        options=["Size"],
    )
    blank = None
    if platform != "squarespace":
        blank = m.vendor.add_product("Blank", [{"sku": "", "qty": 1}])
    m.vendor.add_product("Twin", [{"sku": "TWIN", "qty": 1}])
    for title in ("Twin A", "Twin B"):
        m.merchant.add_product(title, variants=[{"sku": "TWIN", "price": "5.00"}])
    if platform != "shopify":
        m.merchant.add_product(
            "Dup here",
            variants=[{"sku": "DUP", "price": "5.00", "options": {"Size": s}} for s in ("S", "M")],
        )

    r = cli("map", "auto", "acme", "--by", "sku", "--apply", "--json")
    assert r.code == 0, r
    data = r.json()
    assert data["linked"] == []  # nothing ambiguous is linked
    problems = "\n".join(data["problems"])
    assert "'TWIN' is used by 2 merchant variants" in problems
    assert "'DUP' is used by 2 " in problems
    if blank is not None:
        assert "has no sku" in problems
    ambiguous = {a["key"] for a in data["review"]["ambiguous"]}
    assert {"TWIN", "DUP"} <= ambiguous
    assert rows(isolated / "vsc.db", "SELECT COUNT(*) FROM variant_links") == [(0,)]

    r = cli("map", "add", "acme", tee, *([blank] if blank else []))  # publishing pairs by options, not SKU
    assert r.code == 0, r
    linked = {x["vendor_product_id"]: x for x in cli("map", "list", "--json").json()}
    assert len(linked[tee]["variants"]) == 2 and (blank is None or len(linked[blank]["variants"]) == 1)
    r = cli("sync")
    assert r.code == 0, r
    by_vendor_variant = {v["vendor_variant_id"]: v["merchant_variant_id"] for v in linked[tee]["variants"]}
    stock = sorted(m.merchant.available(mv) for mv in by_vendor_variant.values())
    assert stock == [2, 3]  # each variant's own stock, even with the same SKU


# -- 7. more than Shopify can hold -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "options", "variants", "says"),
    [
        # Shopify vendors cannot exceed Shopify's own limits; Squarespace stops at 250 variants.
        ("woocommerce", 4, 2, "4 options (Size, Color, Fit, Neck); Shopify allows at most 3"),
        ("squarespace", 4, 2, "4 options (Size, Color, Fit, Neck); Shopify allows at most 3"),
        ("woocommerce", 1, 2049, "2049 variants; Shopify allows 2048"),
    ],
    ids=["woocommerce-4-options", "squarespace-4-options", "woocommerce-2049-variants"],
)
def test_more_than_3_options_or_2048_variants_is_refused_by_name(
    cli, isolated, monkeypatch, platform, options, variants, says
):
    m = open_market(platform, cli, monkeypatch)
    try:
        names = ["Size", "Color", "Fit", "Neck"][:options]
        big = m.vendor.add_product(
            "Huge Poster",
            [
                {"sku": f"HP-{i}", "options": {"Size": f"S{i}", **{n: "One" for n in names[1:]}}}
                for i in range(variants)
            ],
            options=names,
        )
        small = m.vendor.add_product("Mug", [{"sku": "MUG-1"}])
        m.merchant.reset_requests()
        r = cli("map", "add", "acme", big)
        assert r.code == 2, r
        text = " ".join(r.err.split())
        assert "'Huge Poster'" in text and says in text
        assert m.merchant.count(write=True) == 0 and cli("map", "list", "--json").json() == []
        # In a batch, the product that cannot be held is named and the others are published.
        r = cli("map", "add", "acme", "--all", "--yes")
        assert r.code == 1, r
        assert says in " ".join(r.err.split())
        assert [x["vendor_product_id"] for x in cli("map", "list", "--json").json()] == [small]
    finally:
        m.stop()


# -- 8. a vendor listing that comes back empty ----------------------------------------------------


def _is_product_read(platform: str):
    """Which requests read the vendor's products (the listing, or products by id)."""

    def match(req: Any) -> bool:
        if platform != "shopify":
            return req.method == "GET" and "/products" in req.path
        try:
            query = req.json()["query"]
        except (ValueError, KeyError, TypeError):
            return False
        return not query.lstrip().startswith("mutation") and ("products(" in query or "nodes(" in query)

    return match


def _emptied(req: Any, body: Any) -> Any:
    """The answer a store gives when it shows no products at all (each platform's own shape)."""
    if isinstance(body, list):  # WooCommerce lists
        return []
    if isinstance(body, dict) and isinstance(body.get("products"), list):  # Squarespace
        return {**body, "products": [], "pagination": {"hasNextPage": False, "nextPageCursor": None}}
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict) and isinstance(data.get("products"), dict):  # Shopify connection
        return {**body, "data": {**data, "products": {**data["products"], "nodes": []}}}
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):  # Shopify nodes(ids:)
        return {**body, "data": {**data, "nodes": [None for _ in data["nodes"]]}}
    return body


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_vendor_listing_that_comes_back_empty_stops_that_vendor_and_loses_nothing(
    cli, isolated, monkeypatch, platform
):
    from vsc.sandbox.base import Fault

    # brake_share 100: only the empty-listing brake may stop these passes.
    m = open_market(platform, cli, monkeypatch, settings="brake_share: 100\n")
    try:
        ids = [m.vendor.add_product(f"Mug {i}", [{"sku": f"MUG-{i}", "qty": 3}]) for i in range(3)]
        assert cli("map", "add", "acme", *ids).code == 0
        m.vendor.store.inject(Fault("rewrite", match=_is_product_read(platform), rewrite=_emptied))
        links_before = rows(isolated / "vsc.db", "SELECT * FROM product_links ORDER BY id")
        m.merchant.reset_requests()
        r = cli("sync")
        assert r.code == 1, r
        text = " ".join(r.err.split())
        assert "came back empty" in text and "3 product(s)" in text
        assert "vsc sync --dry-run --vendor acme" in text and "vsc sync --force --vendor acme" in text
        assert m.merchant.count(write=True) == 0
        assert rows(isolated / "vsc.db", "SELECT * FROM product_links ORDER BY id") == links_before
        assert all(
            m.merchant.product(x["merchant_product_id"])["status"] == "ACTIVE"
            for x in cli("map", "list", "--json").json()
        )
        again = cli("sync")  # the vendor stays stopped until a person looks
        assert again.code == 1 and "safety brake" in again.err

        m.vendor.store.clear_faults()  # the store shows its products again
        assert cli("sync", "--force", "--vendor", "acme").code == 0
        assert cli("sync").code == 0 and m.merchant.count(write=True) == 0
    finally:
        m.stop()


# -- 9. a vendor pricing in another currency ---------------------------------------------------------

MERCHANT_SETS_PRICES = "vendors:\n  acme:\n    vendor_owns: [title, description, images, tags, product_type]\n"


def _reprice(m: Market, sku: str, price: str) -> None:
    vid = m.vendor.variants[sku]
    if m.vendor.platform == "woocommerce":
        m.vendor.store.update_variation(int(m.vendor.products[sku]), int(vid), regular_price=price)
    else:
        m.vendor.store.update_variant(vid, price=price)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_vendor_pricing_in_another_currency_is_refused_never_converted(cli, isolated, monkeypatch, platform):
    m = open_market(platform, cli, monkeypatch, vendor_currency="EUR")
    try:
        shirt = m.vendor.add_shirt()
        m.merchant.reset_requests()
        for args in (["map", "add", "acme", shirt], ["map", "auto", "acme", "--by", "sku", "--apply"]):
            r = cli(*args)
            assert r.code == 2, (args, r)
            text = " ".join(r.err.split())
            assert "acme prices in EUR and the merchant in USD" in text and "never copies a price" in text
            assert "vendors.acme.vendor_owns" in text  # what to do
        assert m.merchant.count(write=True) == 0
        assert rows(isolated / "vsc.db", "SELECT COUNT(*) FROM product_links") == [(0,)]

        # The vendor moves to the merchant's currency: publishing works.
        m.vendor.store.currency = "USD"
        assert cli("stores", "check").code == 0
        assert cli("map", "add", "acme", shirt).code == 0
        (link,) = cli("map", "list", "--json").json()

        # Back to euros after linking: the pass stops acme's catalog with the reason, every pass.
        m.vendor.store.currency = "EUR"
        assert cli("stores", "check").code == 0
        _reprice(m, "SH-S", "55.00")
        m.vendor.set_stock("SH-M", 1)
        for _ in range(2):
            r = cli("sync")
            assert r.code == 1, r
            text = " ".join(r.err.split())
            assert "acme prices in EUR and the merchant in USD" in text and "catalog changes wait" in text
        prices = {v["sku"]: v["price"] for v in m.merchant.product(link["merchant_product_id"])["variants"]}
        assert prices == {"SH-S": "40.00", "SH-M": "40.00"}  # no euro price copied as dollars
        sh_m = next(v["merchant_variant_id"] for v in link["variants"] if v["sku"] == "SH-M")
        assert m.merchant.available(sh_m) == 1  # stock is not a price: it still flows

        # Once the merchant sets the prices, the currencies no longer matter.
        (isolated / "vsc.yaml").write_text(MERCHANT_SETS_PRICES)
        assert cli("sync").code == 0
        prices = {v["sku"]: v["price"] for v in m.merchant.product(link["merchant_product_id"])["variants"]}
        assert prices == {"SH-S": "40.00", "SH-M": "40.00"}
        r = cli("map", "auto", "acme", "--by", "sku", "--apply")  # and linking is allowed
        assert r.code == 0, r
    finally:
        m.stop()


# -- 10. payloads with missing, extra or null fields ---------------------------------------------------


def _product_records(platform: str, req: Any, body: Any) -> list[dict[str, Any]]:
    """The product records in a store's answer to a product read."""
    if platform == "woocommerce":
        if "/variations" in req.path:
            return []
        return [r for r in (body if isinstance(body, list) else [body]) if isinstance(r, dict)]
    if platform == "squarespace":
        return [r for r in (body or {}).get("products") or [] if isinstance(r, dict)]
    data = (body or {}).get("data") or {}
    nodes = ((data.get("products") or {}).get("nodes") or []) + (data.get("nodes") or [])
    return [n for n in nodes if isinstance(n, dict)]


def _variant_records(platform: str, req: Any, body: Any, product: dict[str, Any] | None) -> list[dict[str, Any]]:
    if platform == "woocommerce":  # variations come in their own list
        return [r for r in body if isinstance(r, dict)] if "/variations" in req.path else [product or {}]
    if platform == "squarespace":
        return list((product or {}).get("variants") or [])
    return list(((product or {}).get("variants") or {}).get("nodes") or [])


def _damage(platform: str):
    """What a store (or a plugin on it) may send: unknown extra fields everywhere, nulls where the
    platform allows them, a variant without its price, and one product (the Mug) whose price is
    unreadable."""
    title_key = "title" if platform == "shopify" else "name"
    no_price = {"shopify": ("price",), "woocommerce": ("price", "regular_price"), "squarespace": ("pricing",)}

    def broken_price(variant: dict[str, Any]) -> None:
        if platform == "squarespace":
            variant["pricing"] = {**variant["pricing"], "basePrice": {"currency": "USD", "value": "twelve"}}
        elif platform == "woocommerce":
            variant["price"] = variant["regular_price"] = "twelve"
        else:
            variant["price"] = "twelve"

    def rewrite(req: Any, body: Any) -> Any:
        products = _product_records(platform, req, body)
        groups = [(p, _variant_records(platform, req, body, p)) for p in products]
        if platform == "woocommerce" and "/variations" in req.path:
            groups = [(None, _variant_records(platform, req, body, None))]
        for product, variants in groups:
            if product is not None:
                product["x_marketplace_plugin"] = {"badge": "new", "ratings": [5, 4]}
                if platform == "squarespace":
                    product["tags"] = None  # Squarespace sends empty arrays as null
            for v in variants:
                v["x_extra"] = None
                if platform == "shopify":
                    v["barcode"] = v["compareAtPrice"] = None
                if v.get("sku") == "SH-M":
                    for key in no_price[platform]:
                        v.pop(key, None)
                if product is not None and "Mug" in str(product.get(title_key)):
                    broken_price(v)
        return body

    return rewrite


@pytest.mark.parametrize("platform", PLATFORMS)
def test_payloads_with_missing_extra_or_null_fields_fail_only_the_broken_product(cli, isolated, monkeypatch, platform):
    from vsc.sandbox.base import Fault

    m = open_market(platform, cli, monkeypatch)
    try:
        shirt, mug = _publish_shirt_and_mug(cli, m)
        if platform == "woocommerce":
            m.vendor.store.update_product(int(shirt["vendor_product_id"]), name="Linen Shirt v2")
            m.vendor.store.update_product(int(mug["vendor_product_id"]), name="Big Mug")
        else:
            m.vendor.store.update_product(shirt["vendor_product_id"], **{_title(platform): "Linen Shirt v2"})
            m.vendor.store.update_product(mug["vendor_product_id"], **{_title(platform): "Big Mug"})
        _reprice(m, "SH-S", "42.00")
        m.vendor.store.inject(Fault("rewrite", match=_is_product_read(platform), rewrite=_damage(platform)))

        r = cli("sync")
        assert r.code == 1, r
        text = " ".join(r.err.split())
        assert f"acme: product {mug['vendor_product_id']}" in text and "twelve" in text, text
        assert "read again next pass" in text
        merchant_shirt = m.merchant.product(shirt["merchant_product_id"])
        assert merchant_shirt["title"] == "Linen Shirt v2"  # the readable product went on
        prices = {v["sku"]: v["price"] for v in merchant_shirt["variants"]}
        assert prices == {"SH-S": "42.00", "SH-M": "40.00"}  # a missing price is not copied as "no price"
        merchant_mug = m.merchant.product(mug["merchant_product_id"])
        assert (merchant_mug["title"], merchant_mug["status"]) == ("Mug", "ACTIVE")  # not taken for deleted
        states = {x["vendor_product_id"]: x["state"] for x in cli("map", "list", "--json").json()}
        assert set(states.values()) == {"active"}
        (acme,) = [s for s in cli("status", "--json").json()["stores"] if s["name"] == "acme"]
        assert any("twelve" in (e["error"] or "") for e in acme["failed_actions"])

        listing = cli("products", "acme", "--json")  # the catalog listing says what it left out
        assert listing.code == 1 and [p["id"] for p in listing.json()] == [shirt["vendor_product_id"]]
        assert f"product {mug['vendor_product_id']}" in listing.err and "left out" in listing.err

        m.vendor.store.clear_faults()  # the store sends a readable record again
        r = cli("sync")
        assert r.code == 0, r
        assert m.merchant.product(mug["merchant_product_id"])["title"] == "Big Mug"
    finally:
        m.stop()


def _title(platform: str) -> str:
    return "title" if platform == "shopify" else "name"
