"""The WooCommerce connector against the WooCommerce sandbox, over real HTTP on loopback,
and the parsers against the real payloads kept in ../shared/contracts/woocommerce/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
import requests

from vsc.connectors.base import Address, OrderDraft, OrderLineDraft, TrackingInfo, VariantRef
from vsc.connectors.woocommerce import (
    WooCommerceConnector,
    parse_datetime,
    parse_line_item,
    parse_money,
    parse_order,
    parse_product,
    parse_tracking_items,
    parse_variation,
)
from vsc.errors import AuthError, NotFound, PayloadError, RetriableError, Unsupported, UserErrors
from vsc.sandbox.base import Fault
from vsc.sandbox.woocommerce import WooCommerceSandbox

CONTRACTS = Path(__file__).resolve().parents[1].parent / "shared" / "contracts" / "woocommerce"
needs_contracts = pytest.mark.skipif(not CONTRACTS.is_dir(), reason="../shared/contracts/woocommerce is absent")


def contract(name: str) -> Any:
    return json.loads((CONTRACTS / name).read_text())


def connect(store: WooCommerceSandbox, key: str | None = None, secret: str | None = None) -> WooCommerceConnector:
    return WooCommerceConnector.open(
        "acme",
        store.url,
        key or store.consumer_key,
        secret or store.consumer_secret,
        max_retries=2,
        backoff=0.0,
        sleep=lambda _s: None,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[WooCommerceSandbox]:
    with WooCommerceSandbox(seed=1) as sandbox:
        yield sandbox  # type: ignore[misc]


@pytest.fixture
def store(server: WooCommerceSandbox) -> WooCommerceSandbox:
    """One server for the module (stopping one takes half a second), emptied for each test."""
    server.reset()
    return server


@pytest.fixture
def wc(store: WooCommerceSandbox) -> WooCommerceConnector:
    return connect(store)


def ops(store: WooCommerceSandbox, name: str) -> list[Any]:
    return [r for r in store.requests if r.operation == name]


def raw(store: WooCommerceSandbox, method: str, path: str, **kw: Any) -> requests.Response:
    kw.setdefault("auth", (store.consumer_key, store.consumer_secret))
    return requests.request(method, store.url + path, timeout=10, **kw)


def tee_shirt(store: WooCommerceSandbox, **kw: Any) -> dict[str, Any]:
    return store.add_product(
        "Ship Your Idea",
        attributes=[{"name": "Color", "options": ["Black", "Green"]}, {"name": "Size", "options": ["S", "M"]}],
        variations=[
            {"attributes": {"Color": "Black", "Size": "S"}, "sku": "SYI-B-S", "price": "20.00", "stock": 4},
            {"attributes": {"Color": "Green", "Size": "M"}, "sku": "SYI-G-M", "price": "22.00"},
        ],
        **kw,
    )


def draft(marker: str, *lines: OrderLineDraft, paid: bool = True) -> OrderDraft:
    return OrderDraft(
        marker=marker,
        key=f"push:{marker}",
        lines=lines,
        currency="USD",
        email="buyer@example.com",
        phone="+1 555 0100",
        note="leave at door",
        customer_first_name="Ada",
        customer_last_name="Lovelace",
        shipping_address=Address(
            first_name="Ada",
            last_name="Lovelace",
            address1="1 Main St",
            city="Springfield",
            province_code="IL",
            country_code="US",
            zip="62701",
        ),
        paid=paid,
        merchant_order_name="#1001",
    )


# -- parsers on the real payloads --------------------------------------------------------------
@needs_contracts
def test_every_contract_response_parses() -> None:
    simple = parse_product(contract("product_simple.json"))
    assert simple.id == "794" and simple.status == "active" and simple.handle == "premium-quality-19"
    assert [v.id for v in simple.variants] == ["794"]  # a simple product is its own variant
    assert simple.variants[0].price == Decimal("21.99") and simple.variants[0].available is None
    assert simple.updated_at == datetime(2017, 3, 23, 20, 1, 14, tzinfo=UTC)  # the _gmt twin
    assert simple.images[0].src.endswith("T_2_front-4.jpg") and simple.collections == ("Clothing", "T-shirts")

    variable = parse_product(contract("product_variable.json"), [])
    assert variable.options == ("Color", "Size") and variable.variants == ()

    listed = [parse_product(p, contract("product_variations_list.json")) for p in contract("products_list.json")]
    ship = listed[0]
    # The listed product names no variation ids yet ("variations": []): ordered by id then.
    assert [(v.id, v.options) for v in ship.variants] == [
        ("732", (("Color", "Black"), ("Size", "Any Size"))),
        ("733", (("Color", "Green"), ("Size", "Any Size"))),
    ]
    for kind in ("create", "update", "delete"):
        for payload in contract("products_batch_response.json")[kind]:
            parse_product(payload, [])
        for payload in contract("product_variations_batch_response.json")[kind]:
            parse_variation(payload, ("Color",))

    variation = parse_variation(contract("product_variation.json"), ("Color",))
    assert variation.id == "732" and variation.sku is None and variation.options == (("Color", "Black"),)
    assert variation.price == Decimal("9.00") and variation.available is None

    order = parse_order(contract("order_created_paid.json"))
    assert order.id == "727" and order.name == "#727" and order.financial_status == "paid"
    assert order.email == "john.doe@example.com" and order.phone == "(555) 555-5555"
    assert order.created_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=UTC)
    assert [(li.variant_id, li.product_id, li.quantity, li.unit_price) for li in order.line_items] == [
        ("93", "93", 2, Decimal("3")),
        ("23", "22", 1, Decimal("12")),
    ]
    assert order.shipping_address is not None and order.shipping_address.zip == "94103"
    assert order.marker is None and ("_download_permissions_granted", "yes") in order.metafields

    orders = [parse_order(o) for o in contract("orders_list.json")]
    assert [o.fulfillment_status for o in orders] == ["unfulfilled", "fulfilled"]

    (shipment,) = parse_tracking_items(contract("shipment_trackings_list.json"), "198")
    assert shipment.id == "b1b94eecb1eb1c1edf3fa041efffd015" and shipment.lines == ()
    assert shipment.tracking == (
        TrackingInfo(
            "345645674567", "USPS", "https://tools.usps.com/go/TrackConfirmAction_input?qtc_tLabels1=345645674567"
        ),
    )
    assert shipment.created_at == datetime(2019, 2, 15, tzinfo=UTC)
    assert all(n["note"] for n in contract("order_notes_list.json"))


def test_parsers_tolerate_missing_and_reject_unreadable() -> None:
    product = parse_product({"id": 5, "name": "Bare"})
    assert product.variants[0].id == "5" and product.variants[0].price is None and product.tags == ()
    assert parse_order({"id": 9}).line_items == ()
    assert parse_line_item(
        {"id": 1, "product_id": 3, "variation_id": 0, "quantity": 2, "price": 2.5}
    ).unit_price == Decimal("2.5")
    assert parse_datetime("2024-05-01T10:00:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_datetime("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_money("") is None and parse_money(3) == Decimal("3")
    for bad in (
        lambda: parse_product([]),
        lambda: parse_product({"name": "no id"}),
        lambda: parse_product({"id": 1, "name": "x", "date_modified_gmt": "yesterday"}),
        lambda: parse_money("ten"),
        lambda: parse_order({"id": 1, "line_items": {"a": 1}}),
        lambda: parse_money("NaN"),
        lambda: parse_product({"id": 1, "name": "x", "manage_stock": True, "stock_quantity": "many"}),
    ):
        with pytest.raises(PayloadError):
            bad()
    negative = parse_product({"id": 1, "name": "x", "manage_stock": True, "stock_quantity": -3})
    assert negative.variants[0].available == -3  # reported as is; the engine decides
    parent_managed = parse_variation({"id": 2, "manage_stock": "parent", "stock_quantity": 7}, ())
    assert parent_managed.available == 7


# -- the sandbox is held to the contracts ------------------------------------------------------------
@needs_contracts
def test_sandbox_payloads_have_every_contract_key(store: WooCommerceSandbox) -> None:
    simple = store.add_product("Premium Quality", price="21.99", stock=3, images=["https://e.test/a.jpg"])
    variable = tee_shirt(store)
    order = raw(
        store,
        "POST",
        "/wp-json/wc/v3/orders",
        json=contract("request_create_order.json")
        | {
            "line_items": [
                {"product_id": simple["id"], "quantity": 2},
                {"product_id": variable["id"], "variation_id": variable["variations"][0], "quantity": 1},
            ]
        },
    ).json()
    store.add_tracking(order["id"], "345645674567", "USPS")

    def same_keys(contract_payload: dict[str, Any], ours: dict[str, Any], what: str) -> None:
        missing = set(contract_payload) - set(ours)
        assert not missing, f"{what} lacks {sorted(missing)}"

    got_simple = raw(store, "GET", f"/wp-json/wc/v3/products/{simple['id']}").json()
    got_variable = raw(store, "GET", f"/wp-json/wc/v3/products/{variable['id']}").json()
    got_variation = raw(
        store, "GET", f"/wp-json/wc/v3/products/{variable['id']}/variations/{variable['variations'][0]}"
    ).json()
    got_order = raw(store, "GET", f"/wp-json/wc/v3/orders/{order['id']}").json()
    got_listed = raw(store, "GET", "/wp-json/wc/v3/orders").json()[0]
    got_tracking = raw(store, "GET", f"/wp-json/wc-shipment-tracking/v3/orders/{order['id']}/shipment-trackings").json()
    got_notes = raw(store, "GET", f"/wp-json/wc/v3/orders/{order['id']}/notes").json()

    same_keys(contract("product_simple.json"), got_simple, "product")
    same_keys(contract("product_variable.json"), got_variable, "variable product")
    same_keys(contract("product_simple.json")["images"][0], got_simple["images"][0], "product image")
    same_keys(contract("product_variable.json")["attributes"][0], got_variable["attributes"][0], "attribute")
    same_keys(contract("product_variation.json"), got_variation, "variation")
    same_keys(contract("product_variation.json")["image"], got_variation["image"], "variation image")
    same_keys(contract("product_variation.json")["attributes"][0], got_variation["attributes"][0], "variation attr")
    for name in ("order_created_paid.json",):
        c = contract(name)
        same_keys(c, got_order, "order")
        same_keys(c["billing"], got_order["billing"], "billing")
        same_keys(c["shipping"], got_order["shipping"], "shipping")
        same_keys(c["line_items"][1], got_order["line_items"][1], "line item")
        same_keys(c["line_items"][1]["meta_data"][0], got_order["line_items"][1]["meta_data"][0], "line meta")
        same_keys(c["shipping_lines"][0], got_order["shipping_lines"][0], "shipping line")
    same_keys(contract("orders_list.json")[0], got_listed, "listed order")
    same_keys(contract("shipment_trackings_list.json")[0], got_tracking[0], "tracking item")
    same_keys(contract("order_notes_list.json")[0], got_notes[0], "order note")

    # The quirks: money strings, line price a number, null stock when unmanaged, zone-less dates.
    assert isinstance(got_simple["price"], str) and got_simple["stock_quantity"] == 1  # 3 - 2 sold
    assert got_variable["variations"] == variable["variations"] and got_variable["price"] == "20.00"
    assert isinstance(got_order["line_items"][0]["price"], int | float) and isinstance(got_order["total"], str)
    assert (
        raw(store, "GET", f"/wp-json/wc/v3/products/{variable['id']}/variations/{variable['variations'][1]}").json()[
            "stock_quantity"
        ]
        is None
    )
    assert "+" not in got_order["date_created_gmt"] and not got_order["date_created_gmt"].endswith("Z")
    assert got_order["status"] == "processing" and got_order["date_paid_gmt"]


@needs_contracts
def test_error_shapes(store: WooCommerceSandbox) -> None:
    assert raw(store, "GET", "/wp-json/wc/v3/nothing-here").json() == contract("error_rest_no_route.json")
    assert raw(store, "DELETE", "/wp-json/wc/v3/orders").status_code == 404  # known path, wrong method
    bad_secret = raw(store, "GET", "/wp-json/wc/v3/products", auth=(store.consumer_key, "cs_wrong"))
    assert bad_secret.status_code == 401 and "WWW-Authenticate" in bad_secret.headers
    assert bad_secret.json() == {
        "code": "woocommerce_rest_authentication_error",
        "message": "Consumer secret is invalid.",
        "data": {"status": 401},
    }
    unknown_key = raw(store, "POST", "/wp-json/wc/v3/orders", auth=("ck_nobody", "cs_x"), json={})
    assert unknown_key.json()["code"] == "woocommerce_rest_cannot_create" and unknown_key.status_code == 401
    too_many = raw(store, "GET", "/wp-json/wc/v3/products", params={"per_page": 101})
    assert too_many.status_code == 400 and too_many.json()["code"] == "rest_invalid_param"
    assert raw(store, "PUT", "/wp-json/wc/v3/orders/999", json={"status": "cancelled"}).json() == {
        "code": "woocommerce_rest_shop_order_invalid_id",
        "message": "Invalid ID.",
        "data": {"status": 400},
    }
    assert raw(store, "GET", "/wp-json/wc/v3/orders/999").status_code == 404
    big = raw(store, "POST", "/wp-json/wc/v3/products/batch", json={"update": [{"id": i} for i in range(101)]})
    assert big.status_code == 413 and big.json()["code"] == "woocommerce_rest_request_entity_too_large"


# -- the store ---------------------------------------------------------------------------------
def test_check_and_auth_failures(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    info = wc.check()
    assert info.currency == "USD" and info.url == store.url
    assert ops(store, "currencies.current")[0].query == {}  # one call, credentials in the header

    with pytest.raises(AuthError) as bad:
        connect(store, secret="cs_wrong").check()
    assert "Consumer secret is invalid." in str(bad.value) and bad.value.store == "acme"
    with pytest.raises(AuthError, match="woocommerce_rest_cannot_view"):
        connect(store, key="ck_unknown").check()

    store.permissions = "read"  # a read-only key
    item = store.add_product("Mug", stock=2)
    assert wc.read_stock([VariantRef(str(item["id"]), str(item["id"]))])
    with pytest.raises(AuthError, match="does not have write permissions"):
        wc.set_stock([(VariantRef(str(item["id"]), str(item["id"])), 5)], key="k")


def test_not_found_errors_name_the_store(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    with pytest.raises(NotFound) as err:
        wc.cancel_order("424242")
    assert "acme" in str(err.value) and "Invalid ID." in str(err.value)
    assert wc.get_order("424242") is None
    wrong_path = WooCommerceConnector.open("acme", store.url + "/blog", store.consumer_key, store.consumer_secret)
    with pytest.raises(NotFound) as html:
        wrong_path.check()
    assert html.value.hint and "permalinks" in html.value.hint


# -- catalog --------------------------------------------------------------------------------------
def test_paging_at_the_ceiling(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    for n in range(250):
        store.add_product(f"Item {n}", sku=f"SKU-{n}", price="5.00", stock=n)
    products = list(wc.list_products())
    assert len(products) == 250 and len({p.id for p in products}) == 250
    listing = ops(store, "products.list")
    assert len(listing) == 3
    assert [r.query["page"] for r in listing] == [["1"], ["2"], ["3"]]
    assert all(r.query["per_page"] == ["100"] for r in listing)


def test_variable_products_come_with_their_variations(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    shirt = tee_shirt(store, tags=["summer"], categories=["Shirts"], images=["https://e.test/s.jpg"])
    simple = store.add_product("Mug", price="7.50", sale_price="6.00", stock=None, status="draft")
    got = wc.get_products([str(shirt["id"]), str(simple["id"]), "999999", "not-a-number"])
    assert set(got) == {str(shirt["id"]), str(simple["id"])}
    product = got[str(shirt["id"])]
    assert product.options == ("Color", "Size") and product.tags == ("summer",) and product.product_type == "Shirts"
    assert [(v.sku, v.options, v.available, v.price) for v in product.variants] == [
        ("SYI-B-S", (("Color", "Black"), ("Size", "S")), 4, Decimal("20.00")),
        ("SYI-G-M", (("Color", "Green"), ("Size", "M")), None, Decimal("22.00")),
    ]
    mug = got[str(simple["id"])]
    assert mug.status == "draft" and mug.variants[0].price == Decimal("6.00")
    assert mug.variants[0].compare_at_price == Decimal("7.50") and mug.variants[0].available is None


def test_product_reads_ask_only_for_what_vsc_parses(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    """Product and variation reads send `_fields`, and what comes back parses exactly as the full
    payloads do: the field lists hold everything `parse_product` and `parse_variation` read."""
    shirt = store.add_product(
        "Ship Your Idea",
        description="<p>Soft</p>",
        tags=["summer"],
        categories=["Shirts"],
        images=["https://e.test/s.jpg"],
        attributes=[{"name": "Color", "options": ["Black", "Green"]}, {"name": "Size", "options": ["S", "M"]}],
        variations=[
            {"attributes": {"Color": "Black", "Size": "S"}, "sku": "SYI-B-S", "price": "20.00", "stock": 4},
            {"attributes": {"Color": "Green", "Size": "M"}, "sku": "SYI-G-M", "price": "22.00", "sale_price": "19.00"},
        ],
    )
    mug = store.add_product("Mug", sku="MUG", price="7.50", sale_price="6.00", stock=3, status="draft")
    full = {
        str(p["id"]): parse_product(
            raw(store, "GET", f"/wp-json/wc/v3/products/{p['id']}").json(),
            raw(store, "GET", f"/wp-json/wc/v3/products/{p['id']}/variations").json(),
        )
        for p in (shirt, mug)
    }
    store.requests.clear()
    assert wc.get_products(list(full)) == full
    assert {p.id: p for p in wc.list_products()} == full
    reads = [r for r in store.requests if r.method == "GET"]
    assert reads and all(r.query.get("_fields") for r in reads)
    assert {r.path.endswith("/variations") for r in reads} == {True, False}


def test_incremental_reads_use_modified_after(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    store.set_time(t0)
    old = store.add_product("Old", stock=1)
    changed = store.add_product("Changed", stock=1)
    shirt = tee_shirt(store)
    store.set_time(t0 + timedelta(hours=1))
    store.update_product(changed["id"], name="Changed again")
    store.update_variation(shirt["id"], shirt["variations"][0], stock_quantity=9)  # saves the parent too
    since = t0 + timedelta(hours=1)

    got = {p.id: p for p in wc.list_products(since=since)}
    assert set(got) == {str(changed["id"]), str(shirt["id"])}  # "at or after since", old one left out
    assert got[str(shirt["id"])].variants[0].available == 9
    (listing,) = ops(store, "products.list")
    assert listing.query["modified_after"] == [(since - timedelta(seconds=1)).replace(tzinfo=None).isoformat()]
    assert listing.query["dates_are_gmt"] == ["true"]
    assert len(ops(store, "index")) == 1  # feature detection, once
    list(wc.list_products(since=since))
    assert len(ops(store, "index")) == 1
    assert str(old["id"]) not in got


def test_old_store_without_modified_after(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    store.supports_modified_after = False  # ignores the filter and leaves it out of the route index
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    store.set_time(t0)
    for n in range(5):
        store.add_product(f"Item {n}")
    store.set_time(t0 + timedelta(hours=1))
    touched = store.add_product("New")
    got = [p.id for p in wc.list_products(since=t0 + timedelta(minutes=30))]
    assert got == [str(touched["id"])]
    assert wc.supports_modified_after() is False
    (listing,) = ops(store, "products.list")
    assert "modified_after" not in listing.query  # not sent to a store that would ignore it


def test_a_store_seen_ignoring_modified_after_is_filtered_by_date(store: WooCommerceSandbox) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    store.set_time(t0)
    store.add_product("Old")
    wc = connect(store)
    assert wc.supports_modified_after() is True
    store.supports_modified_after = False  # the index said yes, the store ignores it anyway
    assert list(wc.list_products(since=t0 + timedelta(hours=1))) == []
    assert wc.supports_modified_after() is False


# -- stock ------------------------------------------------------------------------------------------
def test_stock_writes_go_out_in_batches_of_100(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    items = [store.add_product(f"Item {n}", stock=1) for n in range(150)]
    shirt = tee_shirt(store)
    levels = [(VariantRef(str(p["id"]), str(p["id"])), 10 + n) for n, p in enumerate(items)]
    levels += [(VariantRef(str(shirt["id"]), str(v)), 3) for v in shirt["variations"]]
    store.reset_requests()
    wc.set_stock(levels, key="stock:test")
    assert len(ops(store, "products.batch")) == 2 and len(ops(store, "variations.batch")) == 1
    assert [len(r.body["update"]) for r in ops(store, "products.batch")] == [100, 50]
    assert store.stock(items[149]["id"]) == 159
    assert [store.stock(v) for v in shirt["variations"]] == [3, 3]  # the unmanaged one now counts
    assert store.count(write=True) == 3


def test_absolute_stock_writes_are_retried_after_a_5xx(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    mug = store.add_product("Mug", stock=1)
    store.inject(Fault("status", status=503, match=lambda r: r.path.endswith("/products/batch"), times=1))
    wc.set_stock([(VariantRef(str(mug["id"]), str(mug["id"])), 6)], key="stock:mug:6")
    assert store.stock(mug["id"]) == 6
    assert [r.status for r in store.requests if r.path.endswith("/products/batch")] == [503, 200]


def test_batch_item_errors_raise_user_errors(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    mug = store.add_product("Mug", stock=1)
    good = VariantRef(str(mug["id"]), str(mug["id"]))
    with pytest.raises(UserErrors) as err:
        wc.set_stock([(good, 8), (VariantRef("99999", "99999"), 1)], key="k")
    assert store.stock(mug["id"]) == 8  # the other item of the batch was applied
    assert err.value.errors == [
        {"field": "99999/99999", "message": "Invalid ID.", "code": "woocommerce_rest_product_invalid_id"}
    ]
    assert "acme" in str(err.value)
    shirt = tee_shirt(store)
    with pytest.raises(UserErrors) as variation_err:
        wc.set_stock([(VariantRef(str(shirt["id"]), "88888"), 1)], key="k")
    assert variation_err.value.codes == {"woocommerce_rest_product_variation_invalid_id"}


def test_read_and_adjust_stock(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    mug = store.add_product("Mug", stock=5)
    free = store.add_product("Ebook", stock=None)
    shirt = tee_shirt(store)
    store.set_stock(mug["id"], -2)  # oversold on the vendor's side
    refs = {
        "mug": VariantRef(str(mug["id"]), str(mug["id"])),
        "free": VariantRef(str(free["id"]), str(free["id"])),
        "black": VariantRef(str(shirt["id"]), str(shirt["variations"][0])),
        "green": VariantRef(str(shirt["id"]), str(shirt["variations"][1])),
    }
    levels = wc.read_stock([*refs.values(), VariantRef("777777", "777777")])
    assert {k: levels[r].available for k, r in refs.items()} == {"mug": -2, "free": None, "black": 4, "green": None}
    assert VariantRef("777777", "777777") not in levels

    wc.adjust_stock([(refs["mug"], 3), (refs["black"], -1), (refs["black"], -1), (refs["free"], -1)], key="adj:1")
    assert store.stock(mug["id"]) == 1 and store.stock(shirt["variations"][0]) == 2 and store.stock(free["id"]) is None


def moves_meta(payload: dict[str, Any]) -> list[str]:
    (value,) = [m["value"] for m in payload["meta_data"] if m["key"] == "_vsc_moves"]
    return value


def test_a_stock_move_is_made_once_per_key(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    mug = store.add_product("Mug", stock=5, meta_data={"_vsc_moves": [f"old:{i}" for i in range(50)]})
    shirt = tee_shirt(store)
    mug_ref = VariantRef(str(mug["id"]), str(mug["id"]))
    black = VariantRef(str(shirt["id"]), str(shirt["variations"][0]))
    store.reset_requests()
    wc.adjust_stock([(mug_ref, -2), (black, -1)], key="move:1")
    # The key rides in the same item update as the stock: one write per endpoint, nothing else.
    writes = store.writes
    assert [w.path for w in writes] == [
        "/wp-json/wc/v3/products/batch",
        f"/wp-json/wc/v3/products/{shirt['id']}/variations/batch",
    ]
    assert all(item["meta_data"] == [{"key": "_vsc_moves", "value": ANY}] for w in writes for item in w.body["update"])
    assert store.stock(mug["id"]) == 3 and store.stock(shirt["variations"][0]) == 3
    kept = moves_meta(store.product(mug["id"]))
    assert len(kept) == 50 and kept[-1] == "move:1" and "old:0" not in kept  # recent keys only
    assert moves_meta(store.variation(shirt["variations"][0])) == ["move:1"]
    store.reset_requests()
    wc.adjust_stock([(mug_ref, -2), (black, -1)], key="move:1")  # a retry after a lost answer
    assert store.count(write=True) == 0
    assert store.stock(mug["id"]) == 3 and store.stock(shirt["variations"][0]) == 3
    wc.adjust_stock([(mug_ref, 2)], key="move:2")
    assert store.stock(mug["id"]) == 5 and moves_meta(store.product(mug["id"]))[-2:] == ["move:1", "move:2"]


# -- orders -------------------------------------------------------------------------------------------
def test_create_order_with_set_paid_reduces_stock_once(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    mug = store.add_product("Mug", price="9.00", stock=5)
    shirt = tee_shirt(store)
    black = shirt["variations"][0]
    order = wc.create_order(
        draft(
            "vsc:gid-1",
            OrderLineDraft(VariantRef(str(mug["id"]), str(mug["id"])), 2, Decimal("7.25")),
            OrderLineDraft(VariantRef(str(shirt["id"]), str(black)), 1, Decimal("18.00")),
        )
    )
    assert order.marker == "vsc:gid-1" and order.financial_status == "paid"
    assert [(li.variant_id, li.quantity, li.unit_price) for li in order.line_items] == [
        (str(mug["id"]), 2, Decimal("7.25")),
        (str(black), 1, Decimal("18.00")),
    ]
    assert store.stock(mug["id"]) == 3 and store.stock(black) == 3
    payload = store.order(int(order.id))
    assert payload["status"] == "processing" and payload["total"] == "32.50" and payload["date_paid_gmt"]
    assert all(any(m["key"] == "_reduced_stock" for m in li["meta_data"]) for li in payload["line_items"])
    assert payload["billing"]["email"] == "buyer@example.com" and payload["shipping"]["city"] == "Springfield"
    assert ("_vsc_merchant_order", "#1001") in order.metafields

    unpaid = wc.create_order(
        draft("vsc:gid-2", OrderLineDraft(VariantRef(str(mug["id"]), str(mug["id"])), 1, Decimal("9")), paid=False)
    )
    assert unpaid.financial_status == "pending" and store.stock(mug["id"]) == 3


def test_find_order_after_a_lost_response(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    mug = store.add_product("Mug", price="9.00", stock=5)
    store.add_product("Other")
    store.place_order([(mug["id"], 1)])  # a storefront sale in between
    store.inject(Fault("cut_after", match=lambda r: r.method == "POST" and r.path.endswith("/orders"), times=1))
    line = OrderLineDraft(VariantRef(str(mug["id"]), str(mug["id"])), 2, Decimal("9"))
    with pytest.raises(RetriableError):
        wc.create_order(draft("vsc:lost-1", line))
    assert len(ops(store, "orders.create")) == 1  # a POST is never retried blindly
    found = wc.find_order("vsc:lost-1")
    assert found is not None and found.marker == "vsc:lost-1"
    assert wc.find_order("vsc:never-pushed") is None
    assert len(store.orders()) == 2 and store.stock(mug["id"]) == 2  # 5 - 1 - 2, reduced once


def test_cancel_restores_reduced_stock(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    mug = store.add_product("Mug", stock=5)
    free = store.add_product("Ebook", stock=None)
    order = wc.create_order(
        draft(
            "vsc:c-1",
            OrderLineDraft(VariantRef(str(mug["id"]), str(mug["id"])), 2, Decimal("3")),
            OrderLineDraft(VariantRef(str(free["id"]), str(free["id"])), 1, Decimal("3")),
        )
    )
    assert store.stock(mug["id"]) == 3
    wc.cancel_order(order.id)
    assert store.stock(mug["id"]) == 5 and store.stock(free["id"]) is None
    cancelled = wc.get_order(order.id)
    assert cancelled is not None and cancelled.fulfillment_status == "cancelled" and cancelled.cancelled_at
    wc.cancel_order(order.id)  # again: nothing more to give back
    assert store.stock(mug["id"]) == 5
    assert any("Stock levels increased" in n["note"] for n in store.notes(int(order.id)))


def test_update_order_attributes(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    mug = store.add_product("Mug", stock=5)
    order = wc.create_order(
        draft("vsc:u-1", OrderLineDraft(VariantRef(str(mug["id"]), str(mug["id"])), 1, Decimal("3")))
    )
    wc.update_order(
        order.id,
        {
            "email": "new@example.com",
            "phone": "+1 555 0199",
            "note": "ring twice",
            "tags": ["vip", "gift"],
            "shipping_address": Address(
                first_name="Ada",
                last_name="L",
                address1="2 Side St",
                city="Shelbyville",
                country_code="US",
                zip="62565",
            ),
            "metafields": {"gift_message": "Enjoy"},
            "accepts_marketing": True,
        },
    )
    got = wc.get_order(order.id)
    assert got is not None
    assert (got.email, got.phone, got.note, got.tags) == (
        "new@example.com",
        "+1 555 0199",
        "ring twice",
        ("vip", "gift"),
    )
    assert got.shipping_address is not None and got.shipping_address.city == "Shelbyville"
    assert ("gift_message", "Enjoy") in got.metafields and got.marker == "vsc:u-1"
    with pytest.raises(Unsupported):
        wc.update_order(order.id, {"line_items": []})
    with pytest.raises(NotFound):
        wc.update_order("999999", {"note": "x"})


def test_list_orders_since(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    mug = store.add_product("Mug", stock=50)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    store.set_time(t0)
    first = store.place_order([(mug["id"], 1)])
    second = store.place_order([(mug["id"], 1)])
    store.set_time(t0 + timedelta(hours=1))
    store.complete_order(second["id"])
    assert [o.id for o in wc.list_orders()] == [str(first["id"]), str(second["id"])]
    (recent,) = wc.list_orders(since=t0 + timedelta(minutes=30))
    assert recent.id == str(second["id"]) and recent.fulfillment_status == "fulfilled"


# -- tracking -------------------------------------------------------------------------------------------
def test_tracking_from_the_extension(store: WooCommerceSandbox, wc: WooCommerceConnector) -> None:
    mug = store.add_product("Mug", stock=5)
    order = store.place_order([(mug["id"], 2)])
    assert wc.list_fulfillments(str(order["id"])) == []
    store.add_tracking(order["id"], "1Z999", "UPS")
    store.reset_requests()
    added = wc.add_tracking(str(order["id"]), TrackingInfo("LX123", "Acme Post", "https://track.test/LX123"))
    fulfillments = wc.list_fulfillments(str(order["id"]))
    assert [f.tracking[0] for f in fulfillments] == [
        TrackingInfo("1Z999", "UPS", "https://www.ups.com/track?loc=en_US&tracknum=1Z999"),
        TrackingInfo("LX123", "Acme Post", "https://track.test/LX123"),
    ]
    assert fulfillments[1].id == added.id and fulfillments[0].order_id == str(order["id"])
    assert ops(store, "shipment_trackings.list") and not ops(store, "orders.get")
    with pytest.raises(NotFound):
        wc.list_fulfillments("999999")


def test_tracking_from_meta_and_completed_without_the_extension(
    store: WooCommerceSandbox, wc: WooCommerceConnector
) -> None:
    store.shipment_tracking = False  # its routes answer 404 rest_no_route
    mug = store.add_product("Mug", stock=5)
    tracked = store.place_order([(mug["id"], 1)])
    shipped = store.place_order([(mug["id"], 2)])
    waiting = store.place_order([(mug["id"], 1)])
    store.add_tracking(tracked["id"], "RR123456789GB", "Royal Mail", "https://track.test/RR123456789GB")
    store.complete_order(shipped["id"])

    (meta,) = wc.list_fulfillments(str(tracked["id"]))
    assert meta.tracking == (TrackingInfo("RR123456789GB", "Royal Mail", "https://track.test/RR123456789GB"),)
    (done,) = wc.list_fulfillments(str(shipped["id"]))
    assert done.tracking == () and done.lines == ((str(shipped["line_items"][0]["id"]), 2),)
    assert wc.list_fulfillments(str(waiting["id"])) == []
    assert len(ops(store, "shipment_trackings.list")) == 0  # 404 rest_no_route once, then not asked
    assert sum(1 for r in store.requests if "shipment-trackings" in r.path) == 1
    with pytest.raises(Unsupported):
        wc.add_tracking(str(tracked["id"]), TrackingInfo("X1", "Acme", None))


def test_list_deleted_product_ids_is_unknown(wc: WooCommerceConnector) -> None:
    assert wc.list_deleted_product_ids(datetime.now(UTC)) is None
