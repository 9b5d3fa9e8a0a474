"""The first whole loop over real HTTP: a Shopify vendor publishes to a Shopify merchant, edits follow.

Everything runs through the real `vsc` command line against two sandbox
Shopify stores on 127.0.0.1; the tests count the requests the stores saw.
"""

from __future__ import annotations

import pytest

from vsc.sandbox.shopify import ShopifySandbox


@pytest.fixture
def shops(monkeypatch):
    merchant = ShopifySandbox(shop="mall").start()
    vendor = ShopifySandbox(shop="acme").start()
    monkeypatch.setenv("MALL_TOKEN", merchant.token)
    monkeypatch.setenv("ACME_TOKEN", vendor.token)
    yield merchant, vendor
    merchant.stop()
    vendor.stop()


@pytest.fixture
def connected(cli, shops, isolated):
    merchant, vendor = shops
    assert cli("init").code == 0
    r = cli("connect", "shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token-env", "MALL_TOKEN")
    assert r.code == 0, r
    r = cli("connect", "shopify", "acme", "--role", "vendor", "--shop", vendor.url, "--token-env", "ACME_TOKEN")
    assert r.code == 0, r
    return merchant, vendor


def tee(vendor: ShopifySandbox, **kw):
    spec = dict(
        options={"Size": ["M", "L"]},
        variants=[
            {"sku": "TEE-M", "price": "20.00", "options": {"Size": "M"}, "available": 7, "barcode": "111"},
            {"sku": "TEE-L", "price": "22.00", "compare_at_price": "25.00", "options": {"Size": "L"}, "available": 3},
        ],
        images=["https://cdn.example/tee-front.jpg", "https://cdn.example/tee-back.jpg"],
        tags=["cotton", "summer"],
        product_type="Shirts",
        description_html="<p>Soft tee</p>",
    )
    spec.update(kw)
    return vendor.add_product("Organic Tee", **spec)


def settings(isolated, text: str) -> None:
    (isolated / "vsc.yaml").write_text(text)


def merchant_product(merchant: ShopifySandbox, cli) -> dict:
    (link,) = cli("map", "list", "--json").json()
    return merchant.product(link["merchant_product_id"])


def test_publish_copies_the_whole_listing_and_links_every_variant(cli, connected, isolated):
    merchant, vendor = connected
    settings(isolated, "price_rule: {percent: 10, rounding: ending, ending: 0.99}\nstock_buffer: 1\n")
    p = tee(vendor)
    r = cli("map", "add", "acme", p["id"].rsplit("/", 1)[1])
    assert r.code == 0, r
    m = merchant_product(merchant, cli)
    assert m["title"] == "Organic Tee" and m["vendor"] == "acme" and m["productType"] == "Shirts"
    assert m["descriptionHtml"] == "<p>Soft tee</p>" and sorted(m["tags"]) == ["cotton", "summer"]
    assert m["status"] == "ACTIVE"
    variants = {v["sku"]: v for v in m["variants"]}
    assert variants["TEE-M"]["price"] == "22.99" and variants["TEE-M"]["barcode"] == "111"
    assert variants["TEE-L"]["price"] == "24.99" and variants["TEE-L"]["compareAtPrice"] == "27.99"
    assert [i["url"] for i in m["images"]] == ["https://cdn.example/tee-front.jpg", "https://cdn.example/tee-back.jpg"]
    assert merchant.online_store_published(m["id"])
    assert merchant.available(variants["TEE-M"]["id"], merchant.primary_location_id) == 6
    assert merchant.available(variants["TEE-L"]["id"], merchant.primary_location_id) == 2
    (link,) = cli("map", "list", "--json").json()
    assert {v["sku"] for v in link["variants"]} == {"TEE-M", "TEE-L"}
    assert all(v["merchant_variant_id"].startswith("gid://shopify/ProductVariant/") for v in link["variants"])
    assert vendor.count(write=True) == 0


def test_second_sync_sends_no_write_and_edits_follow(cli, connected, isolated):
    merchant, vendor = connected
    p = tee(vendor)
    assert cli("map", "add", "acme", p["id"]).code == 0
    first = cli("sync", "--json")
    assert first.code == 0, first
    merchant.reset_requests()
    second = cli("sync", "--json")
    assert second.code == 0 and second.json()["actions"] == []
    assert merchant.count(write=True) == 0
    assert vendor.count(write=True) == 0

    vendor.update_product(p["id"], title="Organic Tee v2", tags=["cotton"], description_html="<p>Softer</p>")
    m_variant = p["variants"][0]["id"]
    vendor.update_variant(m_variant, price="30.00")
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert sorted(a["kind"] for a in r.json()["actions"]) == ["update_listing", "update_variants"]
    m = merchant_product(merchant, cli)
    assert m["title"] == "Organic Tee v2" and m["tags"] == ["cotton"] and m["descriptionHtml"] == "<p>Softer</p>"
    assert {v["sku"]: v["price"] for v in m["variants"]}["TEE-M"] == "30.00"

    merchant.reset_requests()
    assert cli("sync", "--json").json()["actions"] == []
    assert merchant.count(write=True) == 0


def test_merchant_owned_fields_are_never_overwritten(cli, connected, isolated):
    merchant, vendor = connected
    settings(isolated, "vendor_owns: [price]\n")
    p = tee(vendor)
    assert cli("map", "add", "acme", p["id"]).code == 0
    m = merchant_product(merchant, cli)
    merchant.update_product(m["id"], title="Curated title")
    vendor.update_product(p["id"], title="Vendor title", tags=["x"])
    r = cli("sync", "--json")
    assert r.json()["actions"] == []
    assert merchant_product(merchant, cli)["title"] == "Curated title"


def test_images_are_not_uploaded_again_when_unchanged(cli, connected):
    merchant, vendor = connected
    p = tee(vendor)
    assert cli("map", "add", "acme", p["id"]).code == 0
    vendor.update_product(p["id"], images=["https://cdn.example/tee-back.jpg", "https://cdn.example/tee-side.jpg"])
    merchant.reset_requests()
    r = cli("sync", "--json")
    (action,) = r.json()["actions"]
    assert action["kind"] == "images" and action["status"] == "done"
    assert len(action["detail"]["add"]) == 1 and len(action["detail"]["remove_media_ids"]) == 1
    urls = [i["url"] for i in merchant_product(merchant, cli)["images"]]
    assert sorted(urls) == ["https://cdn.example/tee-back.jpg", "https://cdn.example/tee-side.jpg"]


def test_auto_variants_on_adds_and_removes(cli, connected, isolated):
    merchant, vendor = connected
    settings(isolated, "auto_variants: true\n")
    p = tee(vendor)
    assert cli("map", "add", "acme", p["id"]).code == 0
    vendor.add_variant(p["id"], options={"Size": "XL"}, sku="TEE-XL", price="24.00", available=4)
    vendor.delete_variant(p["variants"][0]["id"])
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert sorted(a["kind"] for a in r.json()["actions"]) == ["add_variants", "remove_variants"]
    m = merchant_product(merchant, cli)
    assert sorted(v["sku"] for v in m["variants"]) == ["TEE-L", "TEE-XL"]
    (link,) = cli("map", "list", "--json").json()
    assert sorted(v["sku"] for v in link["variants"]) == ["TEE-L", "TEE-XL"]
    xl = next(v for v in m["variants"] if v["sku"] == "TEE-XL")
    assert merchant.available(xl["id"], merchant.primary_location_id) == 4
    merchant.reset_requests()
    assert cli("sync", "--json").json()["actions"] == []
    assert merchant.count(write=True) == 0


def test_auto_variants_off_reports_divergence_and_keeps_the_link(cli, connected):
    merchant, vendor = connected
    p = tee(vendor)
    assert cli("map", "add", "acme", p["id"]).code == 0
    vendor.add_variant(p["id"], options={"Size": "XL"}, sku="TEE-XL", price="24.00", available=4)
    merchant.reset_requests()
    r = cli("sync", "--json")
    assert r.code == 0, r
    (action,) = r.json()["actions"]
    assert action["kind"] == "diverged" and action["status"] == "reported" and "TEE-XL" in action["summary"]
    assert merchant.count(write=True) == 0
    assert len(merchant_product(merchant, cli)["variants"]) == 2
    (link,) = cli("map", "list", "--json").json()
    assert link["state"] == "diverged" and "TEE-XL" in link["note"]


@pytest.mark.parametrize(("policy", "status"), [("draft", "DRAFT"), ("keep", "ACTIVE"), ("delete", None)])
def test_vendor_deleted_product(cli, connected, isolated, policy, status):
    merchant, vendor = connected
    settings(isolated, f"on_vendor_delete: {policy}\n")
    p = tee(vendor)
    assert cli("map", "add", "acme", p["id"]).code == 0
    (link,) = cli("map", "list", "--json").json()
    vendor.delete_product(p["id"])
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert [a["kind"] for a in r.json()["actions"]] == ["vendor_deleted"]
    m = merchant.product(link["merchant_product_id"])
    assert (m["status"] if m else None) == status
    (link,) = cli("map", "list", "--json").json()
    assert link["state"] == "vendor_deleted"
    merchant.reset_requests()
    assert cli("sync", "--json").json()["actions"] == []
    assert merchant.count(write=True) == 0


def test_map_to_existing_listing_and_auto_by_sku(cli, connected):
    merchant, vendor = connected
    p = tee(vendor)
    existing = merchant.add_product(
        "Tee (merchant's own)",
        options={"Size": ["M", "L"]},
        variants=[
            {"sku": "TEE-M", "price": "19.00", "options": {"Size": "M"}},
            {"sku": "TEE-L", "price": "19.00", "options": {"Size": "L"}},
        ],
    )
    r = cli("map", "add", "acme", p["id"], "--to", existing["id"])
    assert r.code == 0, r
    (link,) = cli("map", "list", "--json").json()
    assert link["merchant_product_id"] == existing["id"] and len(link["variants"]) == 2
    assert merchant.product(existing["id"])["title"] == "Tee (merchant's own)"
    vendor.update_product(p["id"], title="Renamed by vendor")
    assert cli("sync").code == 0
    assert merchant.product(existing["id"])["title"] == "Renamed by vendor"


def test_map_auto_reports_duplicates_empty_and_unmatched_by_name(cli, connected):
    merchant, vendor = connected
    vendor.add_product("Mug", variants=[{"sku": "MUG-1", "price": "8.00"}])
    vendor.add_product("Cap", variants=[{"sku": "CAP-1", "price": "9.00"}])
    vendor.add_product("Pin", variants=[{"sku": "", "price": "1.00"}])
    vendor.add_product("Bag", variants=[{"sku": "BAG-1", "price": "5.00"}])
    merchant.add_product("Mug here", variants=[{"sku": "MUG-1", "price": "9.00"}])
    merchant.add_product("Cap A", variants=[{"sku": "CAP-1", "price": "9.00"}])
    merchant.add_product("Cap B", variants=[{"sku": "CAP-1", "price": "9.00"}])
    r = cli("map", "auto", "acme", "--by", "sku", "--json")
    assert r.code == 0, r
    data = r.json()
    assert [x["title"] for x in data["linked"]] == ["Mug"]
    text = "\n".join(data["problems"])
    assert "'CAP-1' is used by 2 merchant variants" in text
    assert "has no sku" in text
    assert "no merchant variant has sku 'BAG-1'" in text


def test_dry_run_sends_no_write(cli, connected):
    merchant, vendor = connected
    p = tee(vendor)
    assert cli("map", "add", "acme", p["id"]).code == 0
    vendor.update_product(p["id"], title="Changed")
    merchant.reset_requests()
    r = cli("sync", "--dry-run", "--json")
    assert r.code == 0 and r.json()["dry_run"] is True
    assert [a["status"] for a in r.json()["actions"]] == ["planned"]
    assert merchant.count(write=True) == 0
    assert cli("sync", "--json").json()["actions"][0]["status"] == "done"


def test_wrong_token_at_connect_saves_nothing(cli, shops, isolated, monkeypatch):
    merchant, _ = shops
    assert cli("init").code == 0
    monkeypatch.setenv("BAD", "shpat_wrong")
    r = cli("connect", "shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token-env", "BAD")
    assert r.code == 2, r
    assert "nothing was saved" in r.err and "Invalid API key" in r.err
    assert cli("stores", "--json").json() == []


def test_token_in_keyring_never_reaches_database_or_output(cli, shops, isolated, memory_keyring):
    merchant, _ = shops
    assert cli("init").code == 0
    r = cli("connect", "shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token", merchant.token)
    assert r.code == 0, r
    assert "shell history" in r.err
    assert memory_keyring.get_password("vsc", "mall:token") == merchant.token
    assert merchant.token.encode() not in (isolated / "vsc.db").read_bytes()
    assert merchant.token not in r.out + r.err
    assert cli("stores", "check").code == 0


def test_no_keyring_points_to_token_env(cli, shops, isolated):
    merchant, _ = shops
    assert cli("init").code == 0
    r = cli("connect", "shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token", merchant.token)
    assert r.code == 2 and "--token-env" in r.err
    assert cli("stores", "--json").json() == []
