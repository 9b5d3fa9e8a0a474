"""The Squarespace connector against the Squarespace sandbox over real HTTP, and the
parsers against the real payloads in ../shared/contracts/squarespace (skipped when
that folder is absent)."""

from __future__ import annotations

import http.client
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from vsc.connectors.base import Address, OrderDraft, OrderLineDraft, VariantRef
from vsc.connectors.http import StoreSession
from vsc.connectors.squarespace import (
    SquarespaceConnector,
    SquarespaceLimiter,
    idempotency_key,
    parse_error,
    parse_fulfillments,
    parse_inventory_item,
    parse_order,
    parse_page,
    parse_product,
)
from vsc.errors import AuthError, PayloadError, RetriableError, Unsupported, UserErrors
from vsc.sandbox.base import Fault
from vsc.sandbox.squarespace import SquarespaceSandbox

CONTRACTS = Path(__file__).resolve().parents[1].parent / "shared" / "contracts" / "squarespace"
needs_contracts = pytest.mark.skipif(not CONTRACTS.is_dir(), reason="../shared/contracts/squarespace is absent")

# Order fields documented in [OAS-orders] Order but absent from the (older) docs example.
NEWER_ORDER_FIELDS = {"customerId", "paymentState"}


def contract(name: str) -> Any:
    return json.loads((CONTRACTS / name).read_text())


class FakeClock:
    """One clock for the sandbox and the limiter; sleeping moves it forward."""

    def __init__(self, start: float = 1_760_000_000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += max(0.0, seconds)


@pytest.fixture(scope="module")
def _server():
    # One server for the module (stopping one costs half a second); `reset` between tests.
    with SquarespaceSandbox(seed=7) as store:
        yield store


@pytest.fixture
def sandbox(_server):
    _server.reset()
    _server.requests_per_minute = _server.order_creates_per_hour = None
    _server.empty_lists = "alternate"
    return _server


def connect(store: SquarespaceSandbox, *, api_key: str | None = None, **kw: Any) -> SquarespaceConnector:
    kw.setdefault("limiter", SquarespaceLimiter(None, None))
    kw.setdefault("sleep", lambda s: None)
    return SquarespaceConnector.open("vendor-sq", api_key or store.api_key, store.url, **kw)


@pytest.fixture
def conn(sandbox):
    connector = connect(sandbox)
    yield connector
    connector.session.close()


def ops(store: SquarespaceSandbox, name: str) -> list:
    return [r for r in store.requests if r.operation == name]


def tee(store: SquarespaceSandbox, quantity: int = 5, sku: str = "TEE") -> dict:
    return store.add_product(
        "Tee",
        [
            {"sku": f"{sku}-S", "price": "20.00", "attributes": {"Size": "S", "Color": "Red"}, "quantity": quantity},
            {"sku": f"{sku}-M", "price": "20.00", "attributes": {"Size": "M", "Color": "Red"}, "unlimited": True},
        ],
        variant_attributes=["Size", "Color"],
    )


def draft_for(variant_id: str, quantity: int, marker: str = "merchant#1001", price: str = "20.00") -> OrderDraft:
    return OrderDraft(
        marker=marker,
        key=f"push:{marker}:vendor-sq",
        lines=(OrderLineDraft(VariantRef("p", variant_id), quantity, Decimal(price)),),
        currency="USD",
        email="shopper@example.com",
        shipping_address=Address(first_name="Bob", last_name="Loblaw", address1="459 Broadway", country_code="US"),
        channel_name="vsc marketplace with a very long channel name",
    )


# -- contract payloads --------------------------------------------------------------------


@needs_contracts
def test_orders_contract_parses():
    items, cursor = parse_page(contract("orders_list.json"), "result")
    assert cursor == "b342f5367c664d3c99aa56f44f95ab0a"
    order = parse_order(items[0])
    assert order.id == "585d498fdee9f31a60284a37" and order.name == "3"
    assert order.created_at == datetime(2016, 12, 23, 15, 58, 7, 187000, tzinfo=UTC)
    assert order.marker == "TEST-123456" and order.currency == "USD" and order.test
    assert order.fulfillment_status == "unfulfilled"
    assert order.shipping_address is not None and order.shipping_address.address2 is None
    assert order.note == "First note\nSecond note"
    (line,) = order.line_items
    assert (line.sku, line.variant_id, line.unit_price, line.quantity) == (
        "SQ3381024",
        "88c16ee4-547b-445e-a392-bded9991ae30",
        Decimal("55.00"),
        1,
    )
    shipments = parse_fulfillments(items[0])  # shipments exist although PENDING
    assert [f.tracking[0].company for f in shipments] == ["USPS", "FedEx"]
    assert shipments[1].tracking[0].number == "103932814692659"


@needs_contracts
@pytest.mark.parametrize("name", ["inventory_list.json", "inventory_specific.json"])
def test_inventory_contract_parses(name):
    items, _ = parse_page(contract(name), "inventory")
    levels = [parse_inventory_item(i) for i in items]
    assert levels[0].available == 34
    assert levels[1].available is None  # isUnlimited with a stale quantity of 50


@needs_contracts
def test_error_contract_parses():
    assert parse_error(contract("error.json")) == {
        "type": "INVALID_REQUEST_ERROR",
        "subtype": "MISSING_ARGUMENT",
        "message": "An expiration date is required.",
        "contextId": "RUPSUSPOW",
    }


@needs_contracts
def test_request_contracts_accepted_by_sandbox(sandbox, conn):
    """The documented request bodies go through the sandbox unchanged (product, adjustments, fulfill)."""
    body = contract("product_create_request.json")
    body["storePageId"] = sandbox.store_pages[0]["id"]
    resp = conn.session.request("POST", "/v2/commerce/products", json=body)
    assert resp.status_code == 201
    product = parse_product(resp.json())
    assert product.title == "Artisanal Steak Dry Rub" and product.options == ("flavor",)
    assert product.variants[0].price == Decimal("12.95") and product.variants[0].available == 10

    adjust = contract("inventory_adjustments_request.json")
    ids = {k: (v[0] if isinstance(v[0], str) else v[0]["variantId"]) for k, v in adjust.items()}
    sandbox.add_product(
        "Contract",
        [
            {"id": ids["incrementOperations"], "sku": "A", "attributes": {"n": "1"}, "quantity": 1},
            {"id": ids["decrementOperations"], "sku": "B", "attributes": {"n": "2"}, "quantity": 1},
            {"id": ids["setFiniteOperations"], "sku": "C", "attributes": {"n": "3"}, "quantity": 1},
            {"id": ids["setUnlimitedOperations"], "sku": "D", "attributes": {"n": "4"}, "quantity": 1},
        ],
        variant_attributes=["n"],
    )
    resp = conn.session.request(
        "POST", "/1.0/commerce/inventory/adjustments", json=adjust, headers={"Idempotency-Key": "contract-1"}
    )
    assert resp.status_code == 204
    assert [sandbox.stock(ids[k]) for k in adjust] == [2, 0, 40, None]

    order = sandbox.place_order([(ids["incrementOperations"], 1)])
    resp = conn.session.request(
        "POST", f"/1.0/commerce/orders/{order['id']}/fulfillments", json=contract("fulfill_order_request.json")
    )
    assert resp.status_code == 204
    (shipment,) = conn.list_fulfillments(order["id"])
    assert shipment.tracking[0].number == "9400109699939624119857"


@needs_contracts
def test_sandbox_payload_keys_match_contracts(sandbox, conn):
    product = tee(sandbox)
    order = sandbox.place_order([(product["variants"][0]["id"], 1)], shipping_address={"firstName": "A"})
    sandbox.fulfill(order["id"], [{"carrier": "UPS", "tracking_number": "1Z"}])
    real = contract("orders_list.json")
    got = conn.session.request("GET", "/1.0/commerce/orders").json()
    assert set(got) == set(real) and set(got["pagination"]) == set(real["pagination"])
    mine, theirs = got["result"][0], real["result"][0]
    assert set(theirs) <= set(mine) and set(mine) - set(theirs) <= NEWER_ORDER_FIELDS
    assert set(mine["lineItems"][0]) == set(theirs["lineItems"][0])
    assert set(mine["shippingAddress"]) == set(theirs["shippingAddress"])
    assert set(mine["fulfillments"][0]) == set(theirs["fulfillments"][0])
    assert set(mine["grandTotal"]) == {"currency", "value"} and isinstance(mine["grandTotal"]["value"], str)
    assert mine["modifiedOn"].endswith("Z") and len(mine["modifiedOn"]) == 24

    inv = conn.session.request("GET", "/1.0/commerce/inventory").json()
    real_inv = contract("inventory_list.json")
    assert set(inv) == set(real_inv) and set(inv["inventory"][0]) == set(real_inv["inventory"][0])
    vid = product["variants"][0]["id"]
    specific = conn.session.request("GET", f"/1.0/commerce/inventory/{vid}").json()
    assert set(specific) == set(contract("inventory_specific.json"))
    assert specific["inventory"][0]["descriptor"] == "Tee [S, Red]"

    bad = requests.get(f"{sandbox.url}/1.0/commerce/orders", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and set(bad.json()) == set(contract("error.json"))


# -- parsers ---------------------------------------------------------------------------------


def test_product_parser_options_prices_status_and_nulls():
    payload = {
        "id": "a" * 24,
        "name": "Mug",
        "isVisible": False,
        "variantAttributes": ["Size", "Color"],
        "tags": None,
        "images": [
            {"id": "i2", "url": "https://img/2.jpg", "altText": None, "orderIndex": 1},
            {"id": "i1", "url": "https://img/1.jpg", "altText": "front", "orderIndex": 0},
        ],
        "variants": [
            {
                "id": "185db2da-c3cf-47f3-8aff-0485082792a5",
                "sku": "MUG-L-B",
                "pricing": {
                    "basePrice": {"currency": "USD", "value": "12.95"},
                    "salePrice": {"currency": "USD", "value": "9.95"},
                    "onSale": True,
                },
                "stock": {"quantity": 4, "unlimited": False},
                "attributes": {"Color": "Blue", "Size": "L"},
                "unknownNewField": 1,
            }
        ],
        "modifiedOn": "2025-01-02T03:04:05.678Z",
    }
    product = parse_product(payload)
    assert product.status == "draft" and product.tags == () and product.options == ("Size", "Color")
    (v,) = product.variants
    assert v.options == (("Size", "L"), ("Color", "Blue")) and v.title == "L / Blue"
    assert (v.price, v.compare_at_price, v.available) == (Decimal("9.95"), Decimal("12.95"), 4)
    assert [i.src for i in product.images] == ["https://img/1.jpg", "https://img/2.jpg"]
    with pytest.raises(PayloadError, match="without an id"):
        parse_product({"name": "x"})
    with pytest.raises(PayloadError, match="not a list"):
        parse_product({"id": "b" * 24, "variants": {"x": 1}})
    with pytest.raises(PayloadError, match="basePrice"):
        parse_product({"id": "c" * 24, "variants": [{"id": "v", "pricing": {"basePrice": {"value": "abc"}}}]})


def test_empty_lists_as_null_are_read(sandbox, conn):
    sandbox.empty_lists = "null"
    tee(sandbox)
    (product,) = conn.list_products()
    assert product.images == () and product.tags == ()
    sandbox.empty_lists = "list"
    assert list(conn.list_products())[0].tags == ()


# -- paging ------------------------------------------------------------------------------------


def test_products_paged_at_fifty_with_cursor_alone(sandbox, conn):
    for i in range(120):
        sandbox.add_product(f"P{i}", [{"sku": f"SKU{i}", "price": "5", "quantity": i}])
    products = list(conn.list_products())
    assert len(products) == 120 and len({p.id for p in products}) == 120
    calls = ops(sandbox, "products.list")
    assert len(calls) == 3
    assert "cursor" not in calls[0].query
    assert all(set(c.query) == {"cursor"} for c in calls[1:])

    sandbox.reset_requests()
    since = datetime.now(UTC) - timedelta(hours=1)
    assert len(list(conn.list_products(since))) == 120
    calls = ops(sandbox, "products.list")
    assert len(calls) == 3
    assert {"modifiedAfter", "modifiedBefore"} <= set(calls[0].query)
    assert all(set(c.query) == {"cursor"} for c in calls[1:])

    assert list(conn.list_products(datetime.now(UTC) + timedelta(hours=1))) == []


def test_list_products_since_returns_only_changed(sandbox, conn):
    sandbox.set_time(1_700_000_000)
    old = sandbox.add_product("Old", [{"sku": "OLD", "price": "1"}])
    sandbox.advance(3600)
    new = sandbox.add_product("New", [{"sku": "NEW", "price": "1"}])
    conn.now = lambda: datetime.fromtimestamp(sandbox.clock() + 10, UTC)
    since = datetime.fromtimestamp(1_700_000_000 + 1800, UTC)
    assert [p.id for p in conn.list_products(since)] == [new["id"]]
    sandbox.advance(60)
    sandbox.update_product(old["id"], name="Old, renamed")
    conn.now = lambda: datetime.fromtimestamp(sandbox.clock() + 10, UTC)
    assert [p.title for p in conn.list_products(since)] == ["New", "Old, renamed"]


def test_sandbox_list_parameter_rules(sandbox, conn):
    def get(path: str, **params: str) -> requests.Response:
        return conn.session.request("GET", path, params=params)

    for path in ("/v2/commerce/products", "/1.0/commerce/orders"):
        assert get(path, modifiedAfter="2025-01-01T00:00:00.000Z").status_code == 400
        assert get(path, modifiedBefore="2025-01-01T00:00:00.000Z").status_code == 400
        same = "2025-01-01T00:00:00.000Z"
        assert get(path, modifiedAfter=same, modifiedBefore=same).status_code == 400
        assert get(path, modifiedAfter=same, modifiedBefore="2025-01-02T00:00:00.000Z").status_code == 200
    for i in range(51):
        sandbox.add_product(f"P{i}", [{"sku": f"S{i}", "price": "1"}])
    cursor = get("/v2/commerce/products").json()["pagination"]["nextPageCursor"]
    resp = get("/v2/commerce/products", cursor=cursor, type="PHYSICAL")
    assert resp.status_code == 400 and resp.json()["subtype"] == "INVALID_ARGUMENT"
    assert get("/v2/commerce/products", cursor="garbage!").status_code == 400
    assert len(get("/v2/commerce/products", cursor=cursor).json()["products"]) == 1
    assert get("/1.0/commerce/orders", fulfillmentStatus="LOST").status_code == 400
    assert get("/1.0/commerce/orders", paymentStates="PAID,NOPE").status_code == 400


def test_get_products_by_ids_isolates_missing(sandbox, conn):
    ids = [sandbox.add_product(f"P{i}", [{"sku": f"S{i}", "price": "1"}])["id"] for i in range(60)]
    gone = ids[7]
    sandbox.delete_product(gone)
    got = conn.get_products(ids + ["f" * 24])
    assert set(got) == set(ids) - {gone}
    assert all(len(r.path.rsplit("/", 1)[1].split(",")) <= 50 for r in ops(sandbox, "products.get"))


# -- stock ---------------------------------------------------------------------------------------


def many_variants(store: SquarespaceSandbox, n: int) -> list[str]:
    ids = []
    for p in range(n // 3):
        product = store.add_product(
            f"P{p}",
            [{"sku": f"P{p}-{k}", "price": "1", "attributes": {"k": str(k)}, "quantity": 100} for k in range(3)],
            variant_attributes=["k"],
        )
        ids += [v["id"] for v in product["variants"]]
    return ids


def test_set_stock_batches_of_fifty_each_variant_once(sandbox, conn):
    ids = many_variants(sandbox, 120)
    levels = [(VariantRef("p", vid), i) for i, vid in enumerate(ids)]
    levels.append((VariantRef("p", ids[0]), 77))  # a later level for the same variant wins
    conn.set_stock(levels, key="stock:batch")
    calls = ops(sandbox, "inventory.adjustments")
    assert len(calls) == 3 and all(c.status == 204 for c in calls)
    for call in calls:
        variant_ids = [op["variantId"] for op in call.body["setFiniteOperations"]]
        assert len(variant_ids) <= 50 and len(set(variant_ids)) == len(variant_ids)
    assert sandbox.stock(ids[0]) == 77 and sandbox.stock(ids[119]) == 119

    levels = conn.read_stock(VariantRef("p", vid) for vid in ids)
    assert len(levels) == 120 and levels[VariantRef("p", ids[5])].available == 5
    assert len(ops(sandbox, "inventory.get")) == 3


def test_adjust_stock_batched_and_idempotent(sandbox, conn):
    ids = many_variants(sandbox, 120)
    deltas = [(VariantRef("p", vid), -1) for vid in ids] + [(VariantRef("p", ids[0]), -2)]
    conn.adjust_stock(deltas, key="order:1:sold")
    calls = ops(sandbox, "inventory.adjustments")
    assert len(calls) == 3
    assert sandbox.stock(ids[0]) == 97 and sandbox.stock(ids[1]) == 99
    conn.adjust_stock(deltas, key="order:1:sold")  # same key: replayed, not applied again
    assert sandbox.stock(ids[0]) == 97 and sandbox.stock(ids[1]) == 99
    conn.adjust_stock(deltas, key="order:2:sold")
    assert sandbox.stock(ids[1]) == 98


def test_idempotency_key_rules_on_the_wire(sandbox, conn):
    vid = tee(sandbox)["variants"][0]["id"]
    url = "/1.0/commerce/inventory/adjustments"
    body = {"incrementOperations": [{"variantId": vid, "quantity": 3}]}
    for _ in range(2):
        assert conn.session.request("POST", url, json=body, headers={"Idempotency-Key": "k1"}).status_code == 204
    assert sandbox.stock(vid) == 8
    other = {"incrementOperations": [{"variantId": vid, "quantity": 4}]}
    assert conn.session.request("POST", url, json=other, headers={"Idempotency-Key": "k1"}).status_code == 400
    assert conn.session.request("POST", url, json=body).status_code == 400  # key required
    assert conn.session.request("POST", url, json=body, headers={"Idempotency-Key": "bad key!"}).status_code == 400
    twice = {
        "incrementOperations": [{"variantId": vid, "quantity": 1}],
        "setFiniteOperations": [{"variantId": vid, "quantity": 1}],
    }
    assert conn.session.request("POST", url, json=twice, headers={"Idempotency-Key": "k2"}).status_code == 400
    key = idempotency_key("x" * 500, "adjust", 3)
    assert len(key) <= 64 and key == idempotency_key("x" * 500, "adjust", 3)


def test_adjust_stock_insufficient_and_untracked(sandbox, conn):
    product = tee(sandbox, quantity=2)
    finite, unlimited = (v["id"] for v in product["variants"])
    with pytest.raises(UserErrors) as exc:
        conn.adjust_stock([(VariantRef("p", finite), -3)], key="over")
    assert exc.value.codes == {"INSUFFICIENT_STOCK"} and exc.value.status == 409
    assert "vendor-sq" in str(exc.value) and "contextId" in str(exc.value)
    assert sandbox.stock(finite) == 2
    # An unlimited variant has nothing to move: it is dropped, the rest applied.
    conn.adjust_stock([(VariantRef("p", finite), -1), (VariantRef("p", unlimited), -1)], key="mixed")
    assert sandbox.stock(finite) == 1 and sandbox.stock(unlimited) is None


def test_read_stock_unlimited_and_unknown_ids(sandbox, conn):
    product = tee(sandbox, quantity=4)
    finite, unlimited = (v["id"] for v in product["variants"])
    sandbox.set_stock(unlimited, 9)
    sandbox.set_unlimited(unlimited)  # quantity 9 stays, stale
    unknown = "00000000-0000-4000-8000-000000000000"
    refs = [VariantRef("p1", finite), VariantRef("p1", unlimited), VariantRef("p1", unknown)]
    levels = conn.read_stock(refs)
    assert set(levels) == {refs[0], refs[1]}  # the unknown id is left out, the rest kept
    assert levels[refs[0]].available == 4 and levels[refs[1]].available is None
    assert [r.status for r in ops(sandbox, "inventory.get")] == [404, 200, 404, 200, 404]  # split to isolate it
    assert conn.read_stock([]) == {}


# -- pacing ----------------------------------------------------------------------------------------


def test_limiter_queues_requests_per_minute():
    clock = FakeClock()
    limiter = SquarespaceLimiter(300, None, clock=clock, sleep=clock.sleep)
    start = clock()
    stamps = []
    for _ in range(900):
        limiter.acquire("GET", "https://api.squarespace.com/1.0/commerce/inventory")
        stamps.append(clock())
    # never more than 300 in any 60-second window, and no error raised
    for i in range(300, 900):
        assert stamps[i] - stamps[i - 300] >= 60.0 - 1e-6
    assert clock() - start < 200


def test_limiter_queues_order_creates_per_hour():
    clock = FakeClock()
    limiter = SquarespaceLimiter(None, 100, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        limiter.acquire("POST", "https://api.squarespace.com/1.0/commerce/orders")
    assert clock.slept == []
    limiter.acquire("GET", "https://api.squarespace.com/1.0/commerce/orders")  # reads are not counted
    limiter.acquire("POST", "https://api.squarespace.com/1.0/commerce/orders")
    assert clock.slept == [pytest.approx(3600.0)]


def test_limiter_keeps_the_sandbox_from_answering_429(sandbox):
    clock = FakeClock()
    sandbox.clock = clock
    vid = tee(sandbox)["variants"][0]["id"]
    sandbox.requests_per_minute = 10
    limiter = SquarespaceLimiter(10, None, burst=2, clock=clock, sleep=clock.sleep)
    conn = connect(sandbox, limiter=limiter)
    for _ in range(30):
        conn.read_stock([VariantRef("p", vid)])
    assert conn.session.stats["status_429"] == 0 and limiter.waited > 0


def test_a_429_cools_down_for_a_minute_then_succeeds(sandbox):
    clock = FakeClock()
    sandbox.clock = clock
    vid = tee(sandbox)["variants"][0]["id"]
    sandbox.requests_per_minute = 5
    limiter = SquarespaceLimiter(1000, None, clock=clock, sleep=clock.sleep)  # too generous on purpose
    conn = connect(sandbox, limiter=limiter, sleep=clock.sleep)
    for _ in range(8):
        assert conn.read_stock([VariantRef("p", vid)])
    assert conn.session.stats["status_429"] >= 1  # answered with an HTML body
    assert limiter.waited >= 55  # the one-minute cool-down was waited out, not failed


def test_the_default_limiter_sleeps_through_the_sessions_sleep(sandbox):
    """`vsc sync` opens connectors with the session's keywords only: the cool-down after a 429
    must go through the same `sleep` as the session's retries (tests make it instant)."""
    vid = tee(sandbox)["variants"][0]["id"]
    slept: list[float] = []
    conn = SquarespaceConnector.open("vendor-sq", sandbox.api_key, sandbox.url, sleep=slept.append)
    sandbox.inject(Fault("throttle", operation="inventory.get", times=1))
    assert conn.read_stock([VariantRef("p", vid)])
    assert conn.session.stats["status_429"] == 1 and max(slept) >= 55  # the cool-down, through `sleep`


def test_sandbox_order_create_hourly_limit(sandbox, conn):
    vid = tee(sandbox, quantity=100)["variants"][0]["id"]
    sandbox.order_creates_per_hour = 2
    conn.session.max_retries = 0
    conn.create_order(draft_for(vid, 1, "m1"))
    conn.create_order(draft_for(vid, 1, "m2"))
    with pytest.raises(RetriableError):
        conn.create_order(draft_for(vid, 1, "m3"))


# -- orders ----------------------------------------------------------------------------------------------


def test_create_order_deducts_stock(sandbox, conn):
    product = tee(sandbox, quantity=5)
    vid = product["variants"][0]["id"]
    order = conn.create_order(draft_for(vid, 2))
    assert sandbox.stock(vid) == 3
    assert order.marker == "merchant#1001" and order.fulfillment_status == "unfulfilled"
    (line,) = order.line_items
    assert (line.variant_id, line.sku, line.quantity, line.unit_price) == (vid, "TEE-S", 2, Decimal("20.00"))
    raw = sandbox.order(order.id)
    assert raw["channelName"] == "vsc marketplace with a very lo"  # ≤30 chars
    assert raw["grandTotal"] == {"currency": "USD", "value": "40.00"}
    (call,) = ops(sandbox, "orders.create")
    assert call.body["inventoryBehavior"] == "DEDUCT" and call.body["subtotal"]["value"] == "40.00"
    assert conn.get_order(order.id) == order
    assert conn.get_order("0" * 24) is None


def test_create_order_insufficient_stock(sandbox, conn):
    vid = tee(sandbox, quantity=1)["variants"][0]["id"]
    with pytest.raises(UserErrors) as exc:
        conn.create_order(draft_for(vid, 2))
    assert exc.value.codes == {"INSUFFICIENT_STOCK"}
    assert sandbox.orders() == [] and sandbox.stock(vid) == 1


def test_create_order_retried_after_a_lost_response(sandbox, conn):
    vid = tee(sandbox, quantity=5)["variants"][0]["id"]
    # The session retries a cut response itself: the Idempotency-Key replays the order.
    sandbox.inject(Fault("cut_after", match=lambda r: r.method == "POST", times=1))
    first = conn.create_order(draft_for(vid, 1, "m-cut"))
    assert len(sandbox.orders()) == 1 and sandbox.stock(vid) == 4

    # A response lost for good: the caller finds the order by its marker...
    conn.session.max_retries = 0
    sandbox.inject(Fault("cut_after", match=lambda r: r.method == "POST", times=1))
    with pytest.raises(RetriableError):
        conn.create_order(draft_for(vid, 1, "m-lost"))
    found = conn.find_order("m-lost")
    assert found is not None and found.marker == "m-lost"
    # ...and a retried create with the same key never makes a second order.
    again = conn.create_order(draft_for(vid, 1, "m-lost"))
    assert again.id == found.id != first.id
    assert len(sandbox.orders()) == 2 and sandbox.stock(vid) == 3
    assert conn.find_order("never-pushed") is None


def test_cancel_and_edit_are_unsupported(sandbox, conn):
    assert not conn.can_cancel_orders and not conn.can_update_orders
    with pytest.raises(Unsupported, match="squarespace cannot cancel orders"):
        conn.cancel_order("a" * 24)
    with pytest.raises(Unsupported, match="edit orders"):
        conn.update_order("a" * 24, {"email": "x@example.com"})
    vid = tee(sandbox)["variants"][0]["id"]
    oid = sandbox.place_order([(vid, 1)])["id"]
    # as on the real API: no such routes
    assert conn.session.request("POST", f"/1.0/commerce/orders/{oid}/cancel", json={}).status_code == 404
    resp = conn.session.request("DELETE", f"/1.0/commerce/orders/{oid}")
    assert resp.status_code == 405 and resp.json()["type"] == "METHOD_NOT_ALLOWED"
    assert conn.list_deleted_product_ids(datetime.now(UTC)) is None


def test_fulfillments_and_vendor_cancel_read_back(sandbox, conn):
    vid = tee(sandbox, quantity=5)["variants"][0]["id"]
    order = conn.create_order(draft_for(vid, 2))
    assert conn.list_fulfillments(order.id) == []
    sandbox.fulfill(order.id, [{"carrier": "USPS", "tracking_number": "9400", "tracking_url": "https://t/9400"}])
    sandbox.fulfill(order.id, [{"carrier": "FedEx", "tracking_number": "7777"}])
    shipments = conn.list_fulfillments(order.id)
    assert [(f.id, f.tracking[0].company, f.tracking[0].number) for f in shipments] == [
        (f"{order.id}:0", "USPS", "9400"),
        (f"{order.id}:1", "FedEx", "7777"),
    ]
    assert shipments[0].tracking[0].url == "https://t/9400" and shipments[1].tracking[0].url is None
    assert conn.get_order(order.id).fulfillment_status == "fulfilled"

    other = conn.create_order(draft_for(vid, 1, "m-2"))
    assert sandbox.stock(vid) == 2
    sandbox.cancel_order(other.id)  # the vendor, in the UI, with "Restock Inventory"
    assert sandbox.stock(vid) == 3
    back = conn.get_order(other.id)
    assert back.fulfillment_status == "cancelled" and back.cancelled_at is not None
    since = datetime.now(UTC) - timedelta(hours=1)
    assert {o.id for o in conn.list_orders(since)} == {order.id, other.id}


def test_storefront_orders_and_order_paging(sandbox, conn):
    vid = tee(sandbox, quantity=200)["variants"][0]["id"]
    for _ in range(55):
        sandbox.place_order([(vid, 1)])
    orders = list(conn.list_orders())
    assert len(orders) == 55 and all(o.marker is None for o in orders)
    assert len(ops(sandbox, "orders.list")) == 2
    assert sandbox.stock(vid) == 145


# -- auth and headers ----------------------------------------------------------------------------------


def test_auth_failure(sandbox):
    bad = connect(sandbox, api_key="wrong-key")
    with pytest.raises(AuthError) as exc:
        bad.check()
    message = str(exc.value)
    assert "vendor-sq" in message and "API key" in message and "contextId" in message
    assert exc.value.code == "AUTHORIZATION_ERROR" and exc.value.status == 401
    assert connect(sandbox).check().detail["store_pages"][0]["title"] == "Shop"


def test_user_agent_is_required(sandbox):
    conn = http.client.HTTPConnection(sandbox.host, sandbox.port)
    conn.putrequest("GET", "/1.0/commerce/inventory", skip_accept_encoding=True)
    conn.putheader("Authorization", f"Bearer {sandbox.api_key}")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 400 and json.loads(resp.read())["subtype"] == "MISSING_ARGUMENT"
    conn.close()
    session = StoreSession("s", "squarespace", sandbox.url, headers={"Authorization": f"Bearer {sandbox.api_key}"})
    assert session.request("GET", "/1.0/commerce/inventory").status_code == 200


# -- sandbox product writes -------------------------------------------------------------------------------


def test_sandbox_variant_rules(sandbox, conn):
    product = tee(sandbox)
    pid, vid = product["id"], product["variants"][0]["id"]
    base = f"/v2/commerce/products/{pid}/variants"
    resp = conn.session.request("POST", f"{base}/{vid}", json={"stock": {"quantity": 1, "unlimited": False}})
    assert resp.status_code == 400  # stock only through the Inventory API
    price = {"basePrice": {"currency": "USD", "value": "25.00"}, "onSale": False}
    assert conn.session.request("POST", f"{base}/{vid}", json={"pricing": price}).status_code == 200
    new = {"sku": "TEE-L", "pricing": price, "attributes": {"Size": "L", "Color": "Red"}}
    assert conn.session.request("POST", base, json=new).status_code == 201
    assert conn.session.request("POST", base, json=new).status_code == 409  # SKU taken
    single = sandbox.add_product("Single", [{"sku": "ONE", "price": "1"}])
    only = single["variants"][0]["id"]
    resp = conn.session.request("DELETE", f"/v2/commerce/products/{single['id']}/variants/{only}")
    assert resp.status_code == 409
    assert conn.session.request("DELETE", f"{base}/{vid}").status_code == 204
    (fresh,) = conn.get_products([pid]).values()
    assert [v.sku for v in fresh.variants] == ["TEE-M", "TEE-L"] and fresh.variants[1].price == Decimal("25.00")
    assert conn.session.request("DELETE", f"/v2/commerce/products/{pid}").status_code == 204
    assert conn.get_products([pid]) == {}


def test_sandbox_inventory_paging_and_image_upload(sandbox, conn):
    ids = many_variants(sandbox, 120)
    seen, cursor, calls = [], None, 0
    while True:
        resp = conn.session.request("GET", "/1.0/commerce/inventory", params={"cursor": cursor} if cursor else None)
        items, cursor = parse_page(resp.json(), "inventory")
        seen += [i["variantId"] for i in items]
        calls += 1
        if cursor is None:
            break
    assert calls == 3 and sorted(seen) == sorted(ids)
    too_many = ",".join(ids[:51])
    assert conn.session.request("GET", f"/1.0/commerce/inventory/{too_many}").status_code == 400

    pid = sandbox.products()[0]["id"]
    headers = {"Authorization": f"Bearer {sandbox.api_key}", "User-Agent": "vsc-tests"}
    files = {"file": ("a.jpg", b"\xff\xd8fake", "image/jpeg")}
    resp = requests.post(f"{sandbox.url}/v2/commerce/products/{pid}/images", headers=headers, files=files)
    assert resp.status_code == 202
    image_id = resp.json()["imageId"]
    status = conn.session.request("GET", f"/v2/commerce/products/{pid}/images/{image_id}/status").json()
    assert status["status"] == "READY"
    (product,) = conn.get_products([pid]).values()
    assert len(product.images) == 1 and product.images[0].src.startswith("https://")
