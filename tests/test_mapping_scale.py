"""Mapping at catalog scale: filters, CSV export/import, the auto-link review, the picker.

Everything runs through the real `vsc` command line against sandbox stores over
HTTP; the picker runs as a real process on a pseudo-terminal.
"""

from __future__ import annotations

import csv
import json
import os
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vsc.sandbox.base import Fault
from vsc.sandbox.shopify import ShopifySandbox
from vsc.sandbox.squarespace import SquarespaceSandbox
from vsc.sandbox.woocommerce import WooCommerceSandbox

OLD = 1_600_000_000.0  # September 2020: "long ago" for --updated-since


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
    yield merchant, vendor
    merchant.stop()
    vendor.stop()


def shopify_catalog(vendor: ShopifySandbox) -> dict[str, dict]:
    """Five products: tags, types, statuses, a collection, and one edited long ago."""
    vendor.clock = lambda: OLD
    old = vendor.add_product("Old Poster", tags=["art"], product_type="Posters", variants=[{"sku": "POS-1"}])
    vendor.clock = time.time
    tee = vendor.add_product(
        "Summer Tee",
        options={"Size": ["M", "L"]},
        variants=[{"sku": "TEE-M", "options": {"Size": "M"}}, {"sku": "TEE-L", "options": {"Size": "L"}}],
        tags=["summer", "cotton"],
        product_type="Shirts",
    )
    hat = vendor.add_product("Sun Hat", tags=["Summer"], product_type="Hats", variants=[{"sku": "HAT-1"}])
    mug = vendor.add_product("Mug", tags=["kitchen"], product_type="Mugs", status="DRAFT", variants=[{"sku": "MUG-1"}])
    gone = vendor.add_product("Retired Tee", tags=["summer"], status="ARCHIVED", variants=[{"sku": "RET-1"}])
    sale = vendor.add_collection("Summer Sale", [tee["id"], mug["id"]])
    return {"old": old, "tee": tee, "hat": hat, "mug": mug, "gone": gone, "sale": sale}


def published_titles(cli) -> list[str]:
    return sorted(link["title"] for link in cli("map", "list", "--json").json())


@pytest.mark.parametrize(
    ("args", "titles"),
    [
        (["--tag", "summer"], ["Summer Tee", "Sun Hat"]),
        (["--tag", "art", "--tag", "kitchen"], ["Mug", "Old Poster"]),
        (["--type", "shirts"], ["Summer Tee"]),
        (["--collection", "Summer Sale"], ["Mug", "Summer Tee"]),
        (["--collection", "SALE_ID"], ["Mug", "Summer Tee"]),
        (["--status", "draft"], ["Mug"]),
        (["--status", "archived"], ["Retired Tee"]),
        (["--tag", "summer", "--status", "archived"], ["Retired Tee"]),
        (["--updated-since", "2024-01-01"], ["Mug", "Summer Tee", "Sun Hat"]),
        (["--all"], ["Mug", "Old Poster", "Summer Tee", "Sun Hat"]),
    ],
)
def test_filters_on_shopify(cli, shops, args, titles):
    merchant, vendor = shops
    made = shopify_catalog(vendor)
    args = [made["sale"]["id"].rsplit("/", 1)[1] if a == "SALE_ID" else a for a in args]
    r = cli("map", "add", "acme", *args, "--yes", "--json")
    assert r.code == 0, r
    data = r.json()
    assert sorted(x["title"] for x in data["linked"]) == titles
    assert data["selected"]["to_publish"] == len(titles)
    assert published_titles(cli) == titles


def test_filter_shows_counts_asks_and_refuses_off_a_terminal(cli, shops):
    merchant, vendor = shops
    shopify_catalog(vendor)
    merchant.reset_requests()
    r = cli("map", "add", "acme", "--tag", "summer")
    assert r.code == 2, r
    assert "2 product(s) match tag summer: 2 to publish (3 variant(s))" in r.out
    assert "cannot ask here (not a terminal)" in r.err and "--yes" in r.err
    assert merchant.count(write=True) == 0 and cli("map", "list", "--json").json() == []

    r = cli("map", "add", "acme", "--all", "--dry-run")
    assert r.code == 0 and "Old Poster" in r.out and "Retired Tee" not in r.out
    assert merchant.count(write=True) == 0

    assert cli("map", "add", "acme", "--tag", "summer", "--yes").code == 0
    r = cli("map", "add", "acme", "--tag", "summer", "--yes", "--json")
    assert r.code == 0 and r.json()["selected"]["already_linked"] == 2 and r.json()["linked"] == []


def test_bad_selections_change_nothing(cli, shops):
    merchant, vendor = shops
    made = shopify_catalog(vendor)
    merchant.reset_requests()
    for args, said in [
        ([], "say which products to publish"),
        ([made["tee"]["id"], "--tag", "summer"], "product ids or filters, not both"),
        (["--tag", "nope", "--yes"], "no product of acme matches tag nope"),
        (["--updated-since", "last tuesday", "--yes"], "is not a date"),
        (["--updated-since", "2099-01-01", "--yes"], "no product of acme matches"),
        (["--status", "gone", "--yes"], "gone"),
    ]:
        r = cli("map", "add", "acme", *args)
        assert r.code == 2, (args, r)
        assert said in r.err, (args, r)
    assert merchant.count(write=True) == 0


def test_one_failure_never_stops_the_rest(cli, shops):
    merchant, vendor = shops
    shopify_catalog(vendor)
    vendor.add_product(
        "Too Many Options",
        options={"A": ["1"], "B": ["1"], "C": ["1"], "D": ["1"]},
        variants=[{"sku": "X-1", "options": {"A": "1", "B": "1", "C": "1", "D": "1"}}],
    )
    merchant.inject(
        Fault(kind="status", status=400, match=lambda req: b"productSet" in req.body and b"Sun Hat" in req.body)
    )
    r = cli("map", "add", "acme", "--all", "--yes")
    assert r.code == 1, r
    assert "'Too Many Options'" in r.err and "4 options" in r.err
    assert "publishing 'Sun Hat'" in r.err and "failed" in r.err
    assert published_titles(cli) == ["Mug", "Old Poster", "Summer Tee"]


# -- WooCommerce and Squarespace -------------------------------------------------------------------


@pytest.fixture(params=["woocommerce", "squarespace"])
def market(request, cli, isolated, monkeypatch):
    merchant = ShopifySandbox(shop="mall").start()
    if request.param == "woocommerce":
        store = WooCommerceSandbox().start()
        monkeypatch.setenv("CK", store.consumer_key)
        monkeypatch.setenv("CS", store.consumer_secret)
        connect = ["connect", "woocommerce", "acme", "--url", store.url, "--key-env", "CK", "--secret-env", "CS"]
    else:
        store = SquarespaceSandbox().start()
        monkeypatch.setenv("SQ", store.api_key)
        connect = ["connect", "squarespace", "acme", "--api-key-env", "SQ", "--api-url", store.url]
    monkeypatch.setenv("MALL_TOKEN", merchant.token)
    assert cli("init").code == 0
    r = cli("connect", "shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token-env", "MALL_TOKEN")
    assert r.code == 0, r
    r = cli(*connect)
    assert r.code == 0, r
    yield request.param, merchant, store
    merchant.stop()
    store.stop()


def vendor_catalog(platform: str, store) -> None:
    """Old Poster (art, long ago), Summer Tee (summer, category Shirts), Mug (draft, kitchen)."""
    store.clock = lambda: OLD
    if platform == "woocommerce":
        store.add_product("Old Poster", sku="POS-1", tags=["art"], categories=["Posters"])
        store.clock = time.time
        store.add_product("Summer Tee", sku="TEE-1", tags=["summer"], categories=["Shirts", "Sale"])
        store.add_product("Mug", sku="MUG-1", tags=["kitchen"], categories=["Kitchen"], status="draft")
    else:
        store.add_product("Old Poster", [{"sku": "POS-1", "price": "5.00", "quantity": 1}], tags=["art"])
        store.clock = time.time
        store.add_product("Summer Tee", [{"sku": "TEE-1", "price": "9.00", "quantity": 1}], tags=["summer"])
        store.add_product("Mug", [{"sku": "MUG-1", "price": "4.00", "quantity": 1}], tags=["kitchen"], is_visible=False)


@pytest.mark.parametrize(
    ("args", "titles"),
    [
        (["--tag", "SUMMER"], ["Summer Tee"]),
        (["--status", "draft"], ["Mug"]),
        (["--status", "active"], ["Old Poster", "Summer Tee"]),
        (["--updated-since", "2024-01-01"], ["Mug", "Summer Tee"]),
        (["--all"], ["Mug", "Old Poster", "Summer Tee"]),
    ],
)
def test_filters_on_woocommerce_and_squarespace(cli, market, args, titles):
    platform, merchant, store = market
    vendor_catalog(platform, store)
    r = cli("map", "add", "acme", *args, "--yes", "--json")
    assert r.code == 0, r
    assert sorted(x["title"] for x in r.json()["linked"]) == titles
    assert published_titles(cli) == titles


def test_categories_and_types(cli, market):
    platform, merchant, store = market
    vendor_catalog(platform, store)
    merchant.reset_requests()
    r = cli("map", "add", "acme", "--collection", "sale", "--yes", "--json")
    if platform == "squarespace":
        assert r.code == 2, r
        assert "Squarespace products have no collections or categories" in r.err
        r = cli("map", "add", "acme", "--type", "Shirts", "--yes")
        assert r.code == 2 and "Squarespace products have no product type" in r.err
        assert merchant.count(write=True) == 0
        return
    assert r.code == 0, r
    assert [x["title"] for x in r.json()["linked"]] == ["Summer Tee"]
    category = store.product(int(r.json()["linked"][0]["vendor_product_id"]))["categories"][0]["id"]
    r = cli("map", "add", "acme", "--collection", str(category), "--type", "posters", "--yes", "--json")
    assert r.code == 2 and "matches" in r.err  # Shirts is the tee's category; the poster's type is Posters
    r = cli("map", "add", "acme", "--type", "posters", "--yes", "--json")
    assert r.code == 0 and [x["title"] for x in r.json()["linked"]] == ["Old Poster"]


# -- CSV --------------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def variant_links(cli) -> dict[str, str]:
    return {
        v["vendor_variant_id"]: v["merchant_variant_id"]
        for link in cli("map", "list", "--json").json()
        for v in link["variants"]
    }


def test_csv_round_trip(cli, shops, isolated):
    merchant, vendor = shops
    made = shopify_catalog(vendor)
    assert cli("map", "add", "acme", made["tee"]["id"], made["hat"]["id"]).code == 0
    own = merchant.add_product("Merchant Mug", variants=[{"sku": "M-MUG", "price": "3.00"}])
    path = isolated / "links.csv"
    r = cli("map", "export", "acme", "--csv", path, "--unlinked")
    assert r.code == 0, r
    rows = read_csv(path)
    assert list(rows[0]) == [
        "action", "vendor", "vendor_product_id", "vendor_variant_id", "sku", "barcode", "vendor_title",
        "vendor_variant_title", "merchant_product_id", "merchant_variant_id", "merchant_title",
        "merchant_variant_title", "state",
    ]  # fmt: skip
    linked = [r for r in rows if r["action"] == "link"]
    assert sorted(r["sku"] for r in linked) == ["HAT-1", "TEE-L", "TEE-M"]
    assert all(r["merchant_title"] == r["vendor_title"] and r["state"] == "active" for r in linked)
    assert {r["vendor_title"] for r in rows if r["state"] == "unlinked"} == {"Old Poster", "Mug"}  # not archived

    before = variant_links(cli)
    tee_m = next(r for r in rows if r["sku"] == "TEE-M")
    tee_l = next(r for r in rows if r["sku"] == "TEE-L")
    hat = next(r for r in rows if r["sku"] == "HAT-1")
    mug = next(r for r in rows if r["sku"] == "MUG-1")
    # swap the tee's two variants, unlink the hat, link the vendor's mug onto the merchant's own mug
    tee_m["merchant_variant_id"], tee_l["merchant_variant_id"] = (
        tee_l["merchant_variant_id"],
        tee_m["merchant_variant_id"],
    )
    hat["action"] = "unlink"
    mug["merchant_product_id"] = own["id"].rsplit("/", 1)[1]  # numeric tails are fine
    mug["merchant_variant_id"] = own["variants"][0]["id"]
    write_csv(path, rows)

    merchant.reset_requests()
    r = cli("map", "import", path, "--dry-run")
    assert r.code == 0, r
    assert "2 to add" not in r.out and "1 to add, 2 to change, 1 to remove" in r.out
    assert variant_links(cli) == before

    r = cli("map", "import", path, "--apply", "--json")
    assert r.code == 0, r
    assert r.json()["counts"] == {"add": 1, "change": 2, "remove": 1, "unchanged": 0, "ignored": 1}
    after = variant_links(cli)
    assert after[tee_m["vendor_variant_id"]] == before[tee_l["vendor_variant_id"]]
    assert after[tee_l["vendor_variant_id"]] == before[tee_m["vendor_variant_id"]]
    assert hat["vendor_variant_id"] not in after
    assert after[mug["vendor_variant_id"]] == own["variants"][0]["id"]
    assert merchant.count(write=True) == 0  # links only: nothing written to either store

    # the same file again changes nothing; a fresh export reads back what was imported
    r = cli("map", "import", path, "--apply", "--json")
    assert r.code == 0 and r.json()["counts"]["unchanged"] == 4 and not r.json()["changes"]
    again = isolated / "again.csv"
    assert cli("map", "export", "--csv", again).code == 0
    exported = {r["vendor_variant_id"]: r["merchant_variant_id"] for r in read_csv(again)}
    assert exported == after
    # the mug's link is a real link: vendor edits flow to the merchant's mug
    vendor.update_product(made["mug"]["id"], title="Mug v2")
    assert cli("sync", "--only", "catalog").code == 0
    assert merchant.product(own["id"])["title"] == "Mug v2"


def test_csv_import_reports_every_problem_with_its_row_and_changes_nothing(cli, shops, isolated):
    merchant, vendor = shops
    made = shopify_catalog(vendor)
    assert cli("map", "add", "acme", made["tee"]["id"], made["hat"]["id"]).code == 0
    other = merchant.add_product(
        "Other", options={"X": ["1", "2"]},
        variants=[{"sku": "O-1", "options": {"X": "1"}}, {"sku": "O-2", "options": {"X": "2"}}],
    )  # fmt: skip
    other2 = merchant.add_product("Other 2", variants=[{"sku": "O2-1"}])
    third = merchant.add_product("Third", variants=[{"sku": "T-1"}])
    fourth = merchant.add_product("Fourth", variants=[{"sku": "F-1"}])
    belt = vendor.add_product("Belt", variants=[{"sku": "BELT-1"}])
    scarf = vendor.add_product(
        "Scarf", options={"Color": ["Red", "Blue"]},
        variants=[{"sku": "SC-R", "options": {"Color": "Red"}}, {"sku": "SC-B", "options": {"Color": "Blue"}}],
    )  # fmt: skip
    links = cli("map", "list", "--json").json()
    tee_link = next(x for x in links if x["title"] == "Summer Tee")
    hat_link = next(x for x in links if x["title"] == "Sun Hat")
    tee_m = made["tee"]["variants"][0]["id"]
    hat_v = made["hat"]["variants"][0]["id"]
    mug_p, mug_v = made["mug"]["id"], made["mug"]["variants"][0]["id"]
    poster_p, poster_v = made["old"]["id"], made["old"]["variants"][0]["id"]
    o1, o2 = other["variants"][0]["id"], other["variants"][1]["id"]
    hat_merchant_v = hat_link["variants"][0]["merchant_variant_id"]
    rows = [
        # row 2: an action vsc does not know
        {"action": "delete", "vendor": "acme", "vendor_product_id": mug_p, "vendor_variant_id": mug_v},
        # row 3: a vendor that is not connected
        {"action": "link", "vendor": "nobody", "vendor_product_id": "1", "vendor_variant_id": "1",
         "merchant_product_id": other["id"], "merchant_variant_id": o1},
        # row 4: an unknown vendor product
        {"action": "link", "vendor": "acme", "vendor_product_id": "gid://shopify/Product/999999999",
         "vendor_variant_id": "gid://shopify/ProductVariant/999999999",
         "merchant_product_id": other["id"], "merchant_variant_id": o1},
        # row 5: an unknown merchant variant
        {"action": "link", "vendor": "acme", "vendor_product_id": mug_p, "vendor_variant_id": mug_v,
         "merchant_product_id": other["id"], "merchant_variant_id": "gid://shopify/ProductVariant/999999999"},
        # row 6: the same vendor variant again (duplicate key)
        {"action": "link", "vendor": "acme", "vendor_product_id": mug_p, "vendor_variant_id": mug_v,
         "merchant_product_id": other["id"], "merchant_variant_id": o2},
        # rows 7, 8: one merchant variant linked twice in the file
        {"action": "link", "vendor": "acme", "vendor_product_id": poster_p, "vendor_variant_id": poster_v,
         "merchant_product_id": other2["id"], "merchant_variant_id": other2["variants"][0]["id"]},
        {"action": "link", "vendor": "acme", "vendor_product_id": tee_m and made["gone"]["id"],
         "vendor_variant_id": made["gone"]["variants"][0]["id"],
         "merchant_product_id": other2["id"], "merchant_variant_id": other2["variants"][0]["id"]},
        # row 9: half a linked product moved to another merchant product
        {"action": "link", "vendor": "acme", "vendor_product_id": tee_link["vendor_product_id"],
         "vendor_variant_id": tee_m, "merchant_product_id": fourth["id"],
         "merchant_variant_id": fourth["variants"][0]["id"]},
        # rows 10, 11: the scarf's two variants into two merchant products
        {"action": "link", "vendor": "acme", "vendor_product_id": scarf["id"],
         "vendor_variant_id": scarf["variants"][0]["id"], "merchant_product_id": other["id"],
         "merchant_variant_id": o2},
        {"action": "link", "vendor": "acme", "vendor_product_id": scarf["id"],
         "vendor_variant_id": scarf["variants"][1]["id"], "merchant_product_id": third["id"],
         "merchant_variant_id": third["variants"][0]["id"]},
        # row 12: a link row without a merchant product
        {"action": "link", "vendor": "acme", "vendor_product_id": hat_link["vendor_product_id"],
         "vendor_variant_id": hat_v, "merchant_product_id": "", "merchant_variant_id": o2},
        # row 13: not an id at all
        {"action": "link", "vendor": "acme", "vendor_product_id": "tee", "vendor_variant_id": "m",
         "merchant_product_id": other["id"], "merchant_variant_id": o2},
        # row 14: a merchant variant already linked to another vendor variant (the hat's)
        {"action": "link", "vendor": "acme", "vendor_product_id": belt["id"],
         "vendor_variant_id": belt["variants"][0]["id"], "merchant_product_id": hat_link["merchant_product_id"],
         "merchant_variant_id": hat_merchant_v},
    ]  # fmt: skip
    path = isolated / "bad.csv"
    columns = ["action", "vendor", "vendor_product_id", "vendor_variant_id", "merchant_product_id",
               "merchant_variant_id"]  # fmt: skip
    write_csv(path, [{c: r.get(c, "") for c in columns} for r in rows])
    before = variant_links(cli)
    for flag in ("--dry-run", "--apply"):
        r = cli("map", "import", path, flag)
        assert r.code == 2, r
        text = r.err
        for expected in [
            "row 2: action 'delete' is not link, unlink or skip",
            "row 3: there is no vendor store named 'nobody'",
            "row 4: acme has no product gid://shopify/Product/999999999",
            f"row 5: merchant product {other['id']} has no variant gid://shopify/ProductVariant/999999999",
            f"row 6: acme variant {mug_v} is already on row 5",
            f"row 8: merchant variant {other2['variants'][0]['id']} is also linked on row 7",
            f"row 9: acme product {tee_link['vendor_product_id']} is linked to merchant product",
            "give rows for all its linked variants",
            f"row 14: merchant variant {hat_merchant_v} is already linked to acme variant {hat_v}",
            f"rows 10, 11: acme product {scarf['id']} is linked into 2 merchant products",
            "row 12: merchant_product_id is empty",
            "row 13: 'tee' is not a Shopify Product id",
            "nothing was changed",
        ]:
            assert expected in text, (expected, text)
        assert variant_links(cli) == before
    r = cli("map", "import", path, "--apply", "--json")
    assert r.code == 2 and len(r.json()["problems"]) >= 10 and r.json()["ok"] is False
    (isolated / "nohead.csv").write_text("a,b\n1,2\n")
    r = cli("map", "import", isolated / "nohead.csv", "--apply")
    assert r.code == 2 and "has no column vendor" in r.err
    r = cli("map", "import", isolated / "missing.csv", "--apply")
    assert r.code == 2 and "cannot read" in r.err
    r = cli("map", "import", path)
    assert r.code == 2 and "--dry-run" in r.err


# -- map auto: the review --------------------------------------------------------------------------


def test_auto_review_table_then_apply(cli, shops):
    merchant, vendor = shops
    vendor.add_product(
        "Tee", options={"Size": ["M", "L"]},
        variants=[{"sku": "TEE-M", "options": {"Size": "M"}}, {"sku": "TEE-L", "options": {"Size": "L"}}],
    )  # fmt: skip
    vendor.add_product("Mug", variants=[{"sku": "MUG-1"}])
    vendor.add_product("Cap", variants=[{"sku": "CAP-1"}])
    vendor.add_product("Pin", variants=[{"sku": ""}])
    merchant.add_product(
        "Tee here", options={"Size": ["S", "M", "L"]},
        variants=[{"sku": "TEE-S", "options": {"Size": "S"}}, {"sku": "TEE-M", "options": {"Size": "M"}},
                  {"sku": "TEE-L", "options": {"Size": "L"}}],
    )  # fmt: skip
    merchant.add_product("Mug here", variants=[{"sku": "MUG-1"}])
    merchant.add_product("Cap A", variants=[{"sku": "CAP-1"}])
    merchant.add_product("Cap B", variants=[{"sku": "CAP-1"}])
    merchant.add_product("Lamp", variants=[{"sku": "LAMP-1"}])

    r = cli("map", "auto", "acme", "--dry-run")
    assert r.code == 0, r
    out = r.out
    # the table, whose cells wrap at the test console's 80 columns
    assert "matched*" in out and "variant counts" in out and "Tee here" in out and "Mug here" in out
    assert "ambiguous" in out and "'CAP-1'" in out
    assert "unmatched" in out and "no sku" in out and "'LAMP-1'" in out and "'TEE-S'" in out
    assert "2 product(s) matched (3 variant(s)), 1 with differing variant counts; 1 ambiguous" in out
    assert "nothing was linked" in r.err
    assert cli("map", "list", "--json").json() == []

    r = cli("map", "auto", "acme", "--dry-run", "--json")
    review = r.json()["review"]
    assert r.json()["applied"] is False and r.json()["linked"] == []
    assert sorted(m["title"] for m in review["matched"]) == ["Mug", "Tee"]
    assert [a["key"] for a in review["ambiguous"]] == ["CAP-1"]
    assert [m["merchant_title"] for m in review["variant_count_mismatches"]] == ["Tee here"]
    assert {u["sku"] for u in review["unmatched_merchant"]} == {"TEE-S", "LAMP-1"}
    assert [u["reason"] for u in review["unmatched_vendor"]] == ["no sku"]

    r = cli("map", "auto", "acme", "--apply", "--json")
    assert r.code == 0 and r.json()["applied"] is True
    assert sorted(x["title"] for x in r.json()["linked"]) == ["Mug", "Tee"]
    assert published_titles(cli) == ["Mug", "Tee"]
    # what is linked is no longer offered
    r = cli("map", "auto", "acme", "--dry-run", "--json")
    assert r.json()["review"]["matched"] == []


# -- the picker ------------------------------------------------------------------------------------


def test_pick_refuses_without_a_terminal(cli, shops):
    r = cli("map", "pick", "acme")
    assert r.code == 2 and "needs a terminal" in r.err and "--yes" in r.err


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>78]")


class Terminal:
    """A real process on a pseudo-terminal (24 rows, 120 columns): send keys, wait for text."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import fcntl
        import termios

        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.screen = ""

    def expect(self, text: str, timeout: float = 30) -> str:
        """Read until `text` shows up in what was drawn since the last expect; returns that output."""
        deadline = time.monotonic() + timeout
        seen = ""
        while True:
            plain = ANSI.sub("", seen).replace("\r", "")
            if text in plain:
                # let the rest of this screen arrive, so the next expect sees only what the next key draws
                while select.select([self.master], [], [], 0.3)[0]:
                    try:
                        more = os.read(self.master, 65536)
                    except OSError:
                        more = b""
                    if not more:
                        break
                    seen += more.decode("utf-8", "replace")
                self.screen = ANSI.sub("", seen).replace("\r", "")
                return self.screen
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} never appeared; the terminal showed:\n{plain[-3000:]}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"the process ended before {text!r}; it showed:\n{plain[-3000:]}")
                seen += data.decode("utf-8", "replace")

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self) -> int:
        # Drain what is left, so the child never blocks on a full terminal.
        while True:
            ready, _, _ = select.select([self.master], [], [], 30)
            try:
                data = os.read(self.master, 65536) if ready else b""
            except OSError:
                data = b""
            if not data:
                break
            self.screen += ANSI.sub("", data.decode("utf-8", "replace")).replace("\r", "")
        code = self.proc.wait(timeout=30)
        os.close(self.master)
        return code


def test_picker_over_a_pseudo_terminal(cli, shops, isolated):
    merchant, vendor = shops
    made = shopify_catalog(vendor)
    for n in range(20):
        vendor.add_product(f"Filler {n:02}", tags=["filler"], variants=[{"sku": f"FILL-{n:02}"}])
    assert cli("map", "add", "acme", made["hat"]["id"]).code == 0
    env = dict(os.environ, TERM="xterm-256color", PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    term = Terminal([sys.executable, "-m", "vsc", "map", "pick", "acme"], env)
    screen = term.expect("page 1/")
    assert "24 products" in screen and "linked" in screen  # the hat is shown as linked
    # page through the catalog
    term.send("\x1b[6~")
    term.expect("page 2/")
    term.send("\x1b[5~")
    term.expect("page 1/")
    # search, select the one tee that matches, clear the search, select the mug by searching its SKU
    term.send("/")
    term.expect("esc clear")
    term.send("summer t")
    term.expect("1 shown")
    term.send("\r")
    term.expect("↑↓ move")
    term.send(" ")
    term.expect("1 selected (2 variants)")
    term.send("/")
    term.expect("esc clear")
    term.send("\x7f" * 8 + "mug-1")
    term.expect("1 shown")
    term.send("\r ")
    term.expect("2 selected (3 variants)")
    # a linked product cannot be selected
    term.send("/")
    term.expect("esc clear")
    term.send("\x7f" * 5 + "sun hat\r")
    term.expect("1 shown")
    term.send(" ")
    term.expect("already linked")
    term.send("\r")
    term.expect("Publish 2 product(s) (3 variant(s)) to mall?")
    term.send("y\r")
    assert term.wait() == 0, term.screen
    assert "published 'Summer Tee'" in term.screen and "published 'Mug'" in term.screen
    assert published_titles(cli) == ["Mug", "Summer Tee", "Sun Hat"]


def test_picker_quit_changes_nothing(cli, shops):
    merchant, vendor = shops
    shopify_catalog(vendor)
    env = dict(os.environ, TERM="xterm-256color", PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    term = Terminal([sys.executable, "-m", "vsc", "map", "pick", "acme"], env)
    term.expect("page 1/")
    term.send("a")
    term.expect("4 selected")
    merchant.reset_requests()
    term.send("q")
    assert term.wait() == 0
    assert "nothing was changed" in term.screen
    assert merchant.count(write=True) == 0 and cli("map", "list", "--json").json() == []


def test_picker_keys_without_a_terminal():
    from vsc.commands.picker import Picker
    from vsc.connectors.base import Product, Variant

    products = [Product(id=str(i), title=f"P{i}", variants=(Variant(id=f"v{i}"),)) for i in range(25)]
    p = Picker(products, linked={"3"}, page_size=10)
    for key in ["pgdn", "pgdn", "pgdn"]:
        p.handle(key)
    assert p.cursor == 24 and p.page == 2
    p.handle("home")
    p.handle("a")
    assert len(p.selected) == 24 and "3" not in p.selected
    p.handle("a")
    assert not p.selected
    for key in ["/", "P", "2", "backspace", "1", "enter"]:
        p.handle(key)
    assert [x.id for x in p.shown()] == ["1", *[str(i) for i in range(10, 20)]]
    p.handle("/")
    p.handle("esc")
    assert len(p.shown()) == 25
    assert json.dumps(sorted(p.selected)) == "[]"
