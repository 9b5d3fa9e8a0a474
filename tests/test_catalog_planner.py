"""The catalog planner as a pure function: tables of (links, vendor product, settings) → actions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from vsc.config import PriceRule, VendorSettings
from vsc.connectors.base import Image, Product, Variant
from vsc.engine.catalog import plan_product, product_fingerprint, variant_values
from vsc.state import ProductLink, VariantLink

D = Decimal


def variant(vid: str, sku: str, price: str = "10.00", size: str = "M", **kw) -> Variant:
    return Variant(id=vid, sku=sku, price=D(price), options=(("Size", size),), available=5, **kw)


def product(**kw) -> Product:
    base = dict(
        id="p1",
        title="Tee",
        description_html="<p>soft</p>",
        product_type="Shirts",
        tags=("cotton",),
        status="active",
        options=("Size",),
        variants=(variant("v1", "TEE-M"), variant("v2", "TEE-L", size="L")),
        images=(Image("https://img/1.jpg"),),
    )
    base.update(kw)
    return Product(**base)


def links_for(p: Product, *, media=("m1",)) -> tuple[ProductLink, list[VariantLink]]:
    link = ProductLink(
        1, "acme", p.id, "gid://shopify/Product/9", "published", "active", product_fingerprint(p, list(media))
    )
    vlinks = [
        VariantLink(
            10 + i,
            1,
            "acme",
            p.id,
            v.id,
            "gid://shopify/Product/9",
            f"gid://shopify/ProductVariant/{i}",
            f"gid://shopify/InventoryItem/{i}",
            v.sku,
            v.barcode,
            "active",
            variant_values(v),
        )
        for i, v in enumerate(p.variants)
    ]
    return link, vlinks


def plan(link, vlinks, p, *, deleted=False, vs=None, on_delete="draft"):
    return plan_product(
        link, vlinks, p, deleted=deleted, vs=vs or VendorSettings(), on_vendor_delete=on_delete, merchant="mall"
    )


def kinds(actions):
    return [a.kind for a in actions]


def test_unchanged_product_plans_nothing():
    p = product()
    link, vlinks = links_for(p)
    assert plan(link, vlinks, p) == []


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"title": "Tee 2"}, "title", "Tee 2"),
        ({"description_html": "<p>new</p>"}, "description_html", "<p>new</p>"),
        ({"tags": ("cotton", "sale")}, "tags", ["cotton", "sale"]),
        ({"product_type": "Tops"}, "product_type", "Tops"),
    ],
)
def test_vendor_owned_listing_field_edits_flow(change, field, value):
    before = product()
    link, vlinks = links_for(before)
    actions = plan(link, vlinks, product(**change))
    assert kinds(actions) == ["update_listing"]
    assert actions[0].detail["fields"] == {field: value}
    assert actions[0].store == "mall" and actions[0].target == "gid://shopify/Product/9"


def test_merchant_owned_fields_are_never_planned():
    before = product()
    link, vlinks = links_for(before)
    vs = VendorSettings(vendor_owns=("price",))
    after = product(title="Other", tags=("x",), images=(Image("https://img/2.jpg"),))
    assert plan(link, vlinks, after, vs=vs) == []


def test_status_follows_only_when_owned_and_maps_through_publish_status():
    before = product()
    link, vlinks = links_for(before)
    after = product(status="draft")
    assert plan(link, vlinks, after) == []
    actions = plan(link, vlinks, after, vs=VendorSettings(vendor_owns=("status",)))
    assert actions[0].detail["fields"] == {"status": "draft"}
    actions = plan(link, vlinks, after, vs=VendorSettings(vendor_owns=("status",), publish_status="active"))
    assert actions[0].detail["fields"] == {"status": "active"}


@pytest.mark.parametrize(
    ("rule", "vendor_price", "merchant_price"),
    [
        (PriceRule(), "12.00", "12.00"),
        (PriceRule(percent=D(20)), "12.00", "14.40"),
        (PriceRule(amount=D("1.50")), "12.00", "13.50"),
        (PriceRule(percent=D(10), rounding="whole"), "12.00", "14.00"),
        (PriceRule(percent=D(10), rounding="ending", ending=D("0.99")), "12.00", "13.99"),
        (PriceRule(percent=D(-10)), "12.00", "10.80"),
    ],
)
def test_price_edits_go_through_the_price_rule(rule, vendor_price, merchant_price):
    before = product()
    link, vlinks = links_for(before)
    after = product(variants=(variant("v1", "TEE-M", vendor_price), variant("v2", "TEE-L", size="L")))
    actions = plan(link, vlinks, after, vs=VendorSettings(price_rule=rule))
    assert kinds(actions) == ["update_variants"]
    (update,) = actions[0].detail["updates"]
    assert update["price"] == merchant_price
    assert update["merchant_variant_id"] == "gid://shopify/ProductVariant/0"
    assert update["fingerprint"]["price"] == vendor_price


def test_sku_and_barcode_follow_only_when_owned():
    before = product()
    link, vlinks = links_for(before)
    after = product(variants=(variant("v1", "NEW-M", barcode="123"), variant("v2", "TEE-L", size="L")))
    assert plan(link, vlinks, after) == []
    actions = plan(link, vlinks, after, vs=VendorSettings(vendor_owns=("sku", "barcode")))
    (update,) = actions[0].detail["updates"]
    assert (update["sku"], update["barcode"]) == ("NEW-M", "123")


def test_images_unchanged_are_not_uploaded_again():
    before = product(images=(Image("https://img/1.jpg"), Image("https://img/2.jpg")))
    link, vlinks = links_for(before, media=("m1", "m2"))
    after = product(images=(Image("https://img/2.jpg"), Image("https://img/3.jpg")))
    (action,) = plan(link, vlinks, after)
    assert action.kind == "images"
    assert action.detail["remove_media_ids"] == ["m1"]
    assert action.detail["add"] == [{"src": "https://img/3.jpg", "alt": None}]
    assert action.detail["kept"] == {"https://img/2.jpg": "m2"}


def test_new_vendor_variant_added_only_with_auto_variants():
    before = product()
    link, vlinks = links_for(before)
    after = product(variants=(*before.variants, variant("v3", "TEE-XL", "11.00", size="XL")))
    off = plan(link, vlinks, after)
    assert kinds(off) == ["diverged"] and off[0].write is False
    assert "auto_variants is off" in off[0].summary
    on = plan(link, vlinks, after, vs=VendorSettings(auto_variants=True, price_rule=PriceRule(percent=D(10))))
    assert kinds(on) == ["add_variants"]
    (draft,) = on[0].detail["variants"]
    assert draft["vendor_variant_id"] == "v3" and draft["price"] == "12.10" and draft["options"] == [["Size", "XL"]]


def test_deleted_vendor_variant_removed_only_with_auto_variants():
    before = product()
    link, vlinks = links_for(before)
    after = product(variants=before.variants[:1])
    off = plan(link, vlinks, after)
    assert kinds(off) == ["diverged"]
    on = plan(link, vlinks, after, vs=VendorSettings(auto_variants=True))
    assert kinds(on) == ["remove_variants"]
    assert on[0].detail["merchant_variant_ids"] == ["gid://shopify/ProductVariant/1"]


@pytest.mark.parametrize(("policy", "write"), [("draft", True), ("delete", True), ("keep", False)])
def test_vendor_deleted_product(policy, write):
    before = product()
    link, vlinks = links_for(before)
    (action,) = plan(link, vlinks, None, deleted=True, on_delete=policy)
    assert action.kind == "vendor_deleted" and action.detail["policy"] == policy and action.write is write


def test_already_marked_deletion_is_not_planned_again():
    before = product()
    link, vlinks = links_for(before)
    link = ProductLink(**{**link.__dict__, "state": "vendor_deleted"})
    assert plan(link, vlinks, None, deleted=True) == []


def test_missing_but_not_deleted_product_plans_nothing():
    before = product()
    link, vlinks = links_for(before)
    assert plan(link, vlinks, None, deleted=False) == []


def test_action_keys_are_deterministic():
    before = product()
    link, vlinks = links_for(before)
    after = product(title="New")
    assert plan(link, vlinks, after)[0].key == plan(link, vlinks, after)[0].key
    assert plan(link, vlinks, after)[0].key != plan(link, vlinks, product(title="Newer"))[0].key
