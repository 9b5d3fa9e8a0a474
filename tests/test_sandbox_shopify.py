"""The Shopify sandbox store, driven over real HTTP as a client of the Admin GraphQL API would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import graphql
import pytest
import requests

from vsc.sandbox.base import Fault
from vsc.sandbox.shopify import GRAPHQL_PATH, ShopifySandbox, parse_search, query_cost, shopify_schema

SHARED = Path(__file__).parents[1] / ".." / "shared"
REPO = Path(__file__).parents[1]


class Clock:
    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock):
    s = ShopifySandbox(shop="vendor-one")
    s.clock = clock
    s.start()
    yield s
    s.stop()


class Client:
    def __init__(self, store: ShopifySandbox) -> None:
        self.store = store
        self.url = store.url + GRAPHQL_PATH

    def post(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> requests.Response:
        headers = {"X-Shopify-Access-Token": token if token is not None else self.store.token}
        return requests.post(self.url, json={"query": query, "variables": variables or {}}, headers=headers, timeout=5)

    def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.post(query, variables)
        assert r.status_code == 200, r.text
        return r.json()

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture
def gql(store: ShopifySandbox) -> Client:
    return Client(store)


def shirt(store: ShopifySandbox, **kw: Any) -> dict[str, Any]:
    return store.add_product(
        kw.pop("title", "Linen Shirt"),
        options={"Size": ["S", "M"], "Color": ["Blue"]},
        variants=[
            {"sku": kw.pop("sku_s", "LS-S"), "price": "20", "options": {"Size": "S", "Color": "Blue"}, "available": 5},
            {
                "sku": kw.pop("sku_m", "LS-M"),
                "price": "21.5",
                "options": {"Size": "M", "Color": "Blue"},
                "available": 2,
            },
        ],
        images=["https://cdn.example/ls-1.jpg", "https://cdn.example/ls-2.jpg"],
        tags=kw.pop("tags", ["linen", "summer"]),
        vendor=kw.pop("vendor", "Acme"),
        product_type="Shirts",
        **kw,
    )


# -- transport --------------------------------------------------------------------------------


def test_wrong_or_missing_token_is_401(gql: Client):
    for token in ("shpat_wrong", ""):
        r = gql.post("{ shop { name } }", token=token)
        assert r.status_code == 401
        assert r.json() == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


def test_other_paths_are_404(store: ShopifySandbox):
    r = requests.post(
        store.url + "/admin/api/2024-01/graphql.json",
        json={"query": "{ shop { name } }"},
        headers={"X-Shopify-Access-Token": store.token},
        timeout=5,
    )
    assert r.status_code == 404


def test_unknown_field_is_a_validation_error_like_shopify(gql: Client, store: ShopifySandbox):
    body = gql("{ shop { name nickname } }")
    (error,) = body["errors"]
    assert error["message"] == "Field 'nickname' doesn't exist on type 'Shop'"
    assert error["extensions"]["code"] == "undefinedField"
    assert error["locations"] == [{"line": 1, "column": 15}]
    assert "data" not in body
    body = gql("{ products(first: 1, colour: RED) { nodes { id } } }")
    assert body["errors"][0]["extensions"]["code"] == "argumentNotAccepted"


def test_shop_and_locations(gql: Client, store: ShopifySandbox):
    store.add_location("Warehouse")
    data = gql.data(
        "{ shop { id name myshopifyDomain currencyCode url } "
        "locations(first: 10) { nodes { id name isActive isPrimary fulfillsOnlineOrders legacyResourceId } }"
        " publications(first: 5) { nodes { id name } } }"
    )
    assert data["shop"]["myshopifyDomain"] == "vendor-one.myshopify.com"
    assert data["shop"]["currencyCode"] == "USD"
    names = [(n["name"], n["isPrimary"]) for n in data["locations"]["nodes"]]
    assert names == [("Shop location", True), ("Warehouse", False)]
    assert data["locations"]["nodes"][0]["legacyResourceId"] == data["locations"]["nodes"][0]["id"].rsplit("/", 1)[1]
    assert [p["name"] for p in data["publications"]["nodes"]] == ["Online Store"]


def test_writes_are_counted_by_operation(gql: Client, store: ShopifySandbox):
    product = shirt(store)
    gql("query($id: ID!) { product(id: $id) { id } }", {"id": product["id"]})
    gql('mutation($id: ID!) { tagsAdd(id: $id, tags: ["x"]) { userErrors { message } } }', {"id": product["id"]})
    assert store.count(write=False) == 1
    assert [(r.operation, r.write) for r in store.writes] == [("tagsAdd", True)]


def test_two_stores_never_share_ids():
    a, b = ShopifySandbox(), ShopifySandbox()
    assert a.add_product("A")["id"] != b.add_product("B")["id"]


# -- cost and throttling ----------------------------------------------------------------------


def test_every_response_carries_cost_and_unused_points_are_refunded(gql: Client, store: ShopifySandbox):
    shirt(store)
    body = gql("{ products(first: 50) { nodes { id title } } }")
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 52  # 2 + 50 x 1
    assert cost["actualQueryCost"] == 3  # one product came back
    assert cost["throttleStatus"] == {"maximumAvailable": 2000.0, "currentlyAvailable": 1997, "restoreRate": 100.0}


def test_nested_connections_multiply_and_a_query_over_1000_is_refused(store: ShopifySandbox):
    schema = shopify_schema()
    doc = graphql.parse(
        "{ products(first: 100) { edges { node { variants(first: 100) { edges { node { id } } } } } } }"
    )
    op = doc.definitions[0]
    assert query_cost(doc, op, {}) == 10302  # 2 + 100 x (1 + 2 + 100), Shopify's own figure
    assert not graphql.validate(schema, doc)
    body = Client(store)(graphql.print_ast(doc))
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert "exceeds the single query max cost limit (1000)" in body["errors"][0]["message"]


def test_mutations_cost_ten_plus_their_selection(gql: Client, store: ShopifySandbox):
    product = shirt(store)
    body = gql(
        'mutation($id: ID!) { tagsAdd(id: $id, tags: ["x"]) { node { id } userErrors { field } } }',
        {"id": product["id"]},
    )
    assert body["extensions"]["cost"]["requestedQueryCost"] == 12


def test_throttled_when_the_bucket_is_empty_then_restores(clock: Clock):
    with ShopifySandbox(maximum_available=60, restore_rate=10) as store:
        store.clock = clock
        gql = Client(store)
        query = "{ products(first: 50) { nodes { id } } }"  # requests 52
        assert "errors" not in gql(query)  # costs 2 after the refund: 58 left
        heavy = "{ a: products(first: 25) { nodes { id } } b: products(first: 30) { nodes { id } } }"  # 27 + 32
        body = gql(heavy)
        assert body["errors"] == [
            {
                "message": "Throttled",
                "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
            }
        ]
        assert body["extensions"]["cost"]["requestedQueryCost"] == 59
        assert body["extensions"]["cost"]["actualQueryCost"] is None
        assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 58
        clock.advance(0.2)  # +2 points
        assert "errors" not in gql(heavy)


def test_injected_throttle_looks_like_a_real_one(gql: Client, store: ShopifySandbox):
    store.inject(Fault(kind="throttle", times=1))
    r = gql.post("{ products(first: 10) { nodes { id } } }")
    assert r.status_code == 200
    body = r.json()
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 12
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert "errors" not in gql("{ products(first: 10) { nodes { id } } }")


def test_input_arrays_are_capped_at_250(gql: Client):
    ids = [f"gid://shopify/Product/{i}" for i in range(251)]
    body = gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})
    assert body["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"


# -- reading ----------------------------------------------------------------------------------


def test_pagination_with_opaque_cursors(gql: Client, store: ShopifySandbox, clock: Clock):
    ids = []
    for i in range(5):
        clock.advance(60)
        ids.append(store.add_product(f"P{i}")["id"])
    query = (
        "query($after: String, $rev: Boolean) { products(first: 2, after: $after, reverse: $rev) { "
        "edges { cursor node { id } } pageInfo { hasNextPage endCursor hasPreviousPage startCursor } } }"
    )
    seen, after = [], None
    while True:
        page = gql.data(query, {"after": after})["products"]
        seen += [e["node"]["id"] for e in page["edges"]]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        assert page["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ids
    first = gql.data(query, {"rev": True})["products"]
    assert [e["node"]["id"] for e in first["edges"]] == ids[::-1][:2]
    body = gql("{ products(first: 251) { nodes { id } } }")
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST" and body["data"] is None
    body = gql("{ products { nodes { id } } }")
    assert body["errors"][0]["message"] == "you must provide one of first or last"


def test_product_fields_and_nodes(gql: Client, store: ShopifySandbox):
    p = shirt(store, description_html="<p>Cool &amp; <b>light</b></p>")
    data = gql.data(
        """query($id: ID!, $ids: [ID!]!) {
      product(id: $id) { id legacyResourceId title handle description descriptionHtml vendor productType tags status
        createdAt updatedAt totalInventory variantsCount { count }
        options { name position values optionValues { name hasVariants } }
        media(first: 5) { nodes { ... on MediaImage { id alt image { url } } } }
        variants(first: 10) { nodes { id title sku price compareAtPrice position selectedOptions { name value }
          inventoryQuantity inventoryPolicy product { id } inventoryItem { id sku tracked
          inventoryLevels(first: 5) { nodes { location { id } quantities(names: ["available", "on_hand", "committed"])
            { name quantity } } } } } } }
      nodes(ids: $ids) { id ... on Product { title } } }""",
        {"id": p["id"], "ids": [p["id"], "gid://shopify/Product/1"]},
    )
    prod = data["product"]
    assert prod["description"] == "Cool & light"
    assert prod["tags"] == ["linen", "summer"] and prod["vendor"] == "Acme"
    assert prod["createdAt"].endswith("Z") and prod["totalInventory"] == 7
    assert prod["options"][0] == {
        "name": "Size",
        "position": 1,
        "values": ["S", "M"],
        "optionValues": [{"name": "S", "hasVariants": True}, {"name": "M", "hasVariants": True}],
    }
    assert [m["image"]["url"] for m in prod["media"]["nodes"]] == [
        "https://cdn.example/ls-1.jpg",
        "https://cdn.example/ls-2.jpg",
    ]
    v = prod["variants"]["nodes"][1]
    assert (v["title"], v["sku"], v["price"], v["position"]) == ("M / Blue", "LS-M", "21.50", 2)
    assert v["inventoryItem"]["sku"] == "LS-M"
    q = {x["name"]: x["quantity"] for x in v["inventoryItem"]["inventoryLevels"]["nodes"][0]["quantities"]}
    assert q == {"available": 2, "on_hand": 2, "committed": 0}
    assert data["nodes"] == [{"id": p["id"], "title": "Linen Shirt"}, None]


def test_search_syntax_parses_shopify_queries():
    tree = parse_search("updated_at:>='2024-01-01T00:00:00Z' AND (tag:a OR -tag:\"b c\") NOT status:draft sku:X*")
    assert tree[0] == "and"
    assert tree[1][0] == ("term", "updated_at", ">=", "2024-01-01T00:00:00Z", True)
    assert tree[1][1] == ("or", [("term", "tag", ":", "a", False), ("not", ("term", "tag", ":", "b c", True))])
    assert tree[1][2] == ("not", ("term", "status", ":", "draft", False))


def test_search_filters_products_variants_and_inventory(gql: Client, store: ShopifySandbox, clock: Clock):
    old = shirt(store, title="Old Shirt", sku_s="OLD-S", sku_m="OLD-M", tags=["archive"])
    clock.advance(3600)
    new = shirt(store, title="New Shirt", sku_s="NEW-S", sku_m="NEW-M", tags=["Summer Sale"], vendor="Bolt")
    store.update_product(old["id"], status="DRAFT")  # a change moves updatedAt
    clock.advance(10)

    def products(q: str) -> list[str]:
        return [
            n["title"]
            for n in gql.data(
                "query($q: String) { products(first: 10, query: $q, sortKey: TITLE) { nodes { title } } }", {"q": q}
            )["products"]["nodes"]
        ]

    assert products("updated_at:>'2026-01-01T00:30:00Z'") == ["New Shirt", "Old Shirt"]
    assert products("created_at:<'2026-01-01T00:30:00Z'") == ["Old Shirt"]
    assert products("tag:'summer sale'") == ["New Shirt"]
    assert products("sku:OLD-M") == ["Old Shirt"]
    assert products("status:active") == ["New Shirt"]
    assert products("vendor:Bolt OR tag:archive") == ["New Shirt", "Old Shirt"]
    assert products("-vendor:Bolt") == ["Old Shirt"]
    assert products("NOT (vendor:Bolt OR status:draft)") == []
    assert products(f"id:{new['id'].rsplit('/', 1)[1]}") == ["New Shirt"]
    assert products("title:new") == ["New Shirt"]
    assert products("product_type:shirts status:active,draft") == ["New Shirt", "Old Shirt"]
    body = gql('{ products(first: 5, query: "colour:red") { nodes { id } } }')
    assert body["extensions"]["search"][0]["warnings"][0]["field"] == "colour"

    variants = gql.data('{ productVariants(first: 10, query: "sku:NEW-S OR barcode:none") { nodes { sku } } }')
    assert variants["productVariants"]["nodes"] == [{"sku": "NEW-S"}]
    pid = old["id"].rsplit("/", 1)[1]
    variants = gql.data(f'{{ productVariants(first: 10, query: "product_id:{pid}") {{ nodes {{ sku }} }} }}')
    assert [n["sku"] for n in variants["productVariants"]["nodes"]] == ["OLD-S", "OLD-M"]
    items = gql.data('{ inventoryItems(first: 10, query: "sku:NEW-M") { nodes { id sku } } }')
    assert items["inventoryItems"]["nodes"][0]["sku"] == "NEW-M"


# -- catalog writes ---------------------------------------------------------------------------

PRODUCT_SET = """mutation($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {
  productSet(input: $input, identifier: $identifier, synchronous: true) {
    product { id title vendor tags updatedAt options { name values }
      media(first: 10) { nodes { id ... on MediaImage { image { url } } } }
      variants(first: 50) { nodes { id sku price selectedOptions { name value } inventoryItem { id tracked } } } }
    userErrors { field message code } } }"""


def set_input(store: ShopifySandbox, sizes: list[str], **extra: Any) -> dict[str, Any]:
    loc = store.primary_location_id
    return {
        "title": "Trail Cap",
        "productOptions": [{"name": "Size", "values": [{"name": s} for s in sizes]}],
        "variants": [
            {
                "optionValues": [{"optionName": "Size", "name": s}],
                "price": "15.00",
                "inventoryItem": {"sku": f"CAP-{s}", "tracked": True},
                "inventoryQuantities": [{"locationId": loc, "name": "available", "quantity": 3}],
            }
            for s in sizes
        ],
        **extra,
    }


def test_product_set_replaces_lists_and_keeps_omitted_scalars(gql: Client, store: ShopifySandbox, clock: Clock):
    inp = set_input(
        store,
        ["S", "M", "L"],
        vendor="Acme",
        tags=["caps"],
        files=[{"originalSource": "https://cdn.example/cap.png", "alt": "cap"}],
    )
    created = gql.data(PRODUCT_SET, {"input": inp})["productSet"]
    assert created["userErrors"] == []
    product = created["product"]
    assert [v["sku"] for v in product["variants"]["nodes"]] == ["CAP-S", "CAP-M", "CAP-L"]
    assert store.available(product["variants"]["nodes"][0]["id"]) == 3
    keep = {v["sku"]: v["id"] for v in product["variants"]["nodes"]}

    clock.advance(30)
    update = set_input(store, ["S", "L"])
    del update["title"]
    update["variants"][0]["price"] = "16.00"
    update["variants"][1]["id"] = keep["CAP-L"]
    updated = gql.data(PRODUCT_SET, {"input": update, "identifier": {"id": product["id"]}})["productSet"]
    after = updated["product"]
    assert after["title"] == "Trail Cap" and after["vendor"] == "Acme" and after["tags"] == ["caps"]  # unchanged
    assert [(v["sku"], v["price"]) for v in after["variants"]["nodes"]] == [("CAP-S", "16.00"), ("CAP-L", "15.00")]
    assert [v["id"] for v in after["variants"]["nodes"]] == [keep["CAP-S"], keep["CAP-L"]]  # M was deleted
    assert after["options"] == [{"name": "Size", "values": ["S", "L"]}]
    assert len(after["media"]["nodes"]) == 1  # no files list given: the files stay
    assert after["updatedAt"] > product["updatedAt"]
    assert store.variant(keep["CAP-M"]) is None
    update["files"] = []
    updated = gql.data(PRODUCT_SET, {"input": update, "identifier": {"id": product["id"]}})["productSet"]
    assert updated["product"]["media"]["nodes"] == []  # an empty list deletes them all


def test_product_set_by_handle_upserts(gql: Client, store: ShopifySandbox):
    inp = set_input(store, ["S"])
    first = gql.data(PRODUCT_SET, {"input": inp, "identifier": {"handle": "trail-cap-v1"}})["productSet"]["product"]
    again = gql.data(PRODUCT_SET, {"input": inp, "identifier": {"handle": "trail-cap-v1"}})["productSet"]["product"]
    assert first["id"] == again["id"] and len(store.products()) == 1
    assert first["variants"]["nodes"][0]["id"] == again["variants"]["nodes"][0]["id"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            lambda i: i["productOptions"].extend({"name": n, "values": [{"name": "x"}]} for n in "ABC"),
            "OPTIONS_OVER_LIMIT",
        ),
        (lambda i: i["variants"][0]["optionValues"][0].update(name="XXL"), "OPTION_VALUE_DOES_NOT_EXIST"),
        (lambda i: i["variants"][0]["optionValues"][0].update(optionName="Fit"), "OPTION_DOES_NOT_EXIST"),
        (lambda i: i.pop("productOptions"), "PRODUCT_OPTIONS_INPUT_MISSING"),
        (lambda i: i["variants"].append(dict(i["variants"][0])), "INVALID_VARIANT"),
    ],
)
def test_product_set_rejects_bad_input_with_real_codes(gql: Client, store: ShopifySandbox, change, code):
    inp = set_input(store, ["S", "M"])
    change(inp)
    result = gql.data(PRODUCT_SET, {"input": inp})["productSet"]
    assert result["product"] is None
    assert code in [e["code"] for e in result["userErrors"]]
    assert store.products() == []


def test_variant_bulk_mutations(gql: Client, store: ShopifySandbox):
    p = store.add_product("Mug")  # one "Default Title" variant
    loc = store.primary_location_id
    create = """mutation($pid: ID!, $v: [ProductVariantsBulkInput!]!) {
      productVariantsBulkCreate(productId: $pid, variants: $v, strategy: REMOVE_STANDALONE_VARIANT) {
        productVariants { id sku title } product { options { name values } }
        userErrors { field message code } } }"""
    variants = [
        {
            "optionValues": [{"optionName": "Color", "name": c}],
            "price": "9",
            "inventoryItem": {"sku": f"MUG-{c}"},
            "inventoryQuantities": [{"locationId": loc, "availableQuantity": 4}],
        }
        for c in ("Red", "Blue")
    ]
    out = gql.data(create, {"pid": p["id"], "v": variants})["productVariantsBulkCreate"]
    assert out["userErrors"] == []
    assert [v["title"] for v in out["productVariants"]] == ["Red", "Blue"]
    assert out["product"]["options"] == [{"name": "Color", "values": ["Red", "Blue"]}]
    red, blue = (v["id"] for v in out["productVariants"])
    assert store.available(red, loc) == 4

    update = """mutation($pid: ID!, $v: [ProductVariantsBulkInput!]!) {
      productVariantsBulkUpdate(productId: $pid, variants: $v) { productVariants { sku price }
        userErrors { field code } } }"""
    out = gql.data(update, {"pid": p["id"], "v": [{"id": red, "price": "10.5", "inventoryItem": {"sku": "MUG-R"}}]})
    assert out["productVariantsBulkUpdate"]["productVariants"] == [{"sku": "MUG-R", "price": "10.50"}]
    out = gql.data(
        update,
        {"pid": p["id"], "v": [{"id": red, "inventoryQuantities": [{"locationId": loc, "availableQuantity": 1}]}]},
    )
    assert out["productVariantsBulkUpdate"]["userErrors"][0]["code"] == "NO_INVENTORY_QUANTITIES_ON_VARIANTS_UPDATE"

    delete = """mutation($pid: ID!, $ids: [ID!]!) { productVariantsBulkDelete(productId: $pid, variantsIds: $ids) {
      product { variants(first: 5) { nodes { id } } } userErrors { code } } }"""
    out = gql.data(delete, {"pid": p["id"], "ids": [blue]})["productVariantsBulkDelete"]
    assert out["product"]["variants"]["nodes"] == [{"id": red}]
    out = gql.data(delete, {"pid": p["id"], "ids": [red]})["productVariantsBulkDelete"]
    assert out["userErrors"][0]["code"] == "CANNOT_DELETE_LAST_VARIANT"


def test_product_update_media_publish_and_file_update(gql: Client, store: ShopifySandbox, clock: Clock):
    p = store.add_product("Lamp", published=False)
    assert not store.online_store_published(p["id"])
    clock.advance(5)
    data = gql.data(
        """mutation($p: ProductUpdateInput!, $m: [CreateMediaInput!]) { productUpdate(product: $p, media: $m) {
        product { title tags updatedAt } userErrors { field message } } }""",
        {
            "p": {"id": p["id"], "title": "Desk Lamp", "tags": ["light"]},
            "m": [{"originalSource": "https://cdn.example/lamp.jpg", "mediaContentType": "IMAGE"}],
        },
    )
    assert data["productUpdate"]["product"]["title"] == "Desk Lamp"
    assert data["productUpdate"]["product"]["updatedAt"] > p["updatedAt"]
    (image,) = store.product(p["id"])["images"]
    pub = gql.data("{ publications(first: 1) { nodes { id } } }")["publications"]["nodes"][0]["id"]
    gql.data(
        "mutation($id: ID!, $pub: ID!) { publishablePublish(id: $id, input: [{publicationId: $pub}]) "
        "{ userErrors { message } } }",
        {"id": p["id"], "pub": pub},
    )
    assert store.online_store_published(p["id"])
    out = gql.data(
        "mutation($f: [FileUpdateInput!]!) { fileUpdate(files: $f) { userErrors { code } } }",
        {"f": [{"id": image["id"], "referencesToRemove": [p["id"]]}]},
    )
    assert out["fileUpdate"]["userErrors"] == []
    assert store.product(p["id"])["images"] == []
    missing = gql.data(
        'mutation { productUpdate(product: {id: "gid://shopify/Product/1", title: "x"}) '
        "{ product { id } userErrors { field message } } }"
    )
    assert missing["productUpdate"]["userErrors"] == [{"field": ["id"], "message": "Product does not exist"}]


def test_deleted_products_are_deletion_events(gql: Client, store: ShopifySandbox, clock: Clock):
    a, b = store.add_product("A"), store.add_product("B")
    clock.advance(100)
    store.delete_product(a["id"])
    clock.advance(100)
    out = gql.data(
        "mutation($id: ID!) { productDelete(input: {id: $id}) { deletedProductId userErrors { message } } }",
        {"id": b["id"]},
    )
    assert out["productDelete"]["deletedProductId"] == b["id"]
    q = """query($q: String) { deletionEvents(first: 10, subjectTypes: [PRODUCT], sortKey: CREATED_AT, query: $q) {
      nodes { subjectId subjectType occurredAt } } }"""
    events = gql.data(q)["deletionEvents"]["nodes"]
    assert [(e["subjectId"], e["subjectType"]) for e in events] == [(a["id"], "PRODUCT"), (b["id"], "PRODUCT")]
    later = gql.data(q, {"q": "occurred_at:>'2026-01-01T00:02:00Z'"})["deletionEvents"]["nodes"]
    assert [e["subjectId"] for e in later] == [b["id"]]
    assert gql.data("query($id: ID!) { product(id: $id) { id } }", {"id": b["id"]})["product"] is None


# -- inventory (2026-04 rules) ------------------------------------------------------------------

SET_QTY = """mutation($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { reason referenceDocumentUri changes { name delta quantityAfterChange } }
    userErrors { field message code } } }"""


def qty_input(item: str, loc: str, quantity: int, **cas: Any) -> dict[str, Any]:
    return {
        "name": "available",
        "reason": "correction",
        "referenceDocumentUri": "gid://vendor-sync/SyncRun/1",
        "quantities": [{"inventoryItemId": item, "locationId": loc, "quantity": quantity, **cas}],
    }


def test_inventory_set_is_idempotent_by_key(gql: Client, store: ShopifySandbox):
    p = shirt(store)
    item, loc = p["variants"][0]["inventoryItemId"], store.primary_location_id
    inp = qty_input(item, loc, 9, changeFromQuantity=5)
    first = gql.data(SET_QTY, {"input": inp, "key": "k-1"})["inventorySetQuantities"]
    assert first["userErrors"] == []
    assert first["inventoryAdjustmentGroup"]["changes"][0] == {
        "name": "available",
        "delta": 4,
        "quantityAfterChange": 9,
    }
    replay = gql.data(SET_QTY, {"input": inp, "key": "k-1"})["inventorySetQuantities"]
    assert replay == first and store.available(item, loc) == 9  # applied once
    other = gql.data(SET_QTY, {"input": qty_input(item, loc, 1, changeFromQuantity=9), "key": "k-1"})
    assert other["inventorySetQuantities"]["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    assert store.available(item, loc) == 9


def test_inventory_set_needs_the_directive_and_change_from_quantity(gql: Client, store: ShopifySandbox):
    p = shirt(store)
    item, loc = p["variants"][0]["inventoryItemId"], store.primary_location_id
    no_key = SET_QTY.replace(" @idempotent(key: $key)", "").replace(", $key: String!", "")
    body = gql(no_key, {"input": qty_input(item, loc, 1, changeFromQuantity=5)})
    assert "@idempotent" in body["errors"][0]["message"]
    assert store.available(item, loc) == 5
    missing = gql.data(SET_QTY, {"input": qty_input(item, loc, 1), "key": "k-2"})["inventorySetQuantities"]
    assert missing["userErrors"][0]["field"] == ["input", "quantities", "0", "changeFromQuantity"]
    stale = gql.data(SET_QTY, {"input": qty_input(item, loc, 1, changeFromQuantity=4), "key": "k-3"})
    assert stale["inventorySetQuantities"]["userErrors"][0]["code"] == "CHANGE_FROM_QUANTITY_STALE"
    assert stale["inventorySetQuantities"]["inventoryAdjustmentGroup"] is None
    forced = gql.data(SET_QTY, {"input": qty_input(item, loc, 1, changeFromQuantity=None), "key": "k-4"})
    assert forced["inventorySetQuantities"]["userErrors"] == [] and store.available(item, loc) == 1


def test_inventory_not_stocked_then_activated_then_adjusted(gql: Client, store: ShopifySandbox):
    p = shirt(store)
    item = p["variants"][0]["inventoryItemId"]
    depot = store.add_location("Depot")["id"]
    out = gql.data(SET_QTY, {"input": qty_input(item, depot, 3, changeFromQuantity=0), "key": "a"})
    assert out["inventorySetQuantities"]["userErrors"][0]["code"] == "ITEM_NOT_STOCKED_AT_LOCATION"
    act = gql.data(
        """mutation($i: ID!, $l: ID!) { inventoryActivate(inventoryItemId: $i, locationId: $l, available: 6)
      @idempotent(key: "act-1") { inventoryLevel { location { id } quantities(names: ["available"]) { quantity } }
      userErrors { message } } }""",
        {"i": item, "l": depot},
    )["inventoryActivate"]
    assert act["inventoryLevel"]["quantities"] == [{"quantity": 6}]
    adjust = """mutation($input: InventoryAdjustQuantitiesInput!) { inventoryAdjustQuantities(input: $input)
      @idempotent(key: "adj-1") { inventoryAdjustmentGroup { changes { name delta quantityAfterChange } }
      userErrors { code } } }"""
    change = {"inventoryItemId": item, "locationId": depot, "delta": -2}
    out = gql.data(adjust, {"input": {"name": "available", "reason": "correction", "changes": [change]}})
    assert out["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"]["changes"][0]["quantityAfterChange"] == 4
    assert store.available(item) == 5 + 4
    level = gql.data(
        """query($l: ID!) { location(id: $l) { inventoryLevels(first: 5, query: "updated_at:>='2026-01-01'")
      { nodes { item { id } } } } }""",
        {"l": depot},
    )
    assert level["location"]["inventoryLevels"]["nodes"] == [{"item": {"id": item}}]


# -- orders ---------------------------------------------------------------------------------------

ORDER_CREATE = """mutation($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput) {
  orderCreate(order: $order, options: $options) { order { id name displayFinancialStatus tags sourceIdentifier
    lineItems(first: 10) { nodes { id sku quantity variant { id } originalUnitPriceSet { shopMoney { amount } } } } }
    userErrors { field message code } } }"""


def test_order_create_claims_stock_only_when_asked(gql: Client, store: ShopifySandbox):
    p = shirt(store)
    small = p["variants"][0]["id"]
    order = {
        "lineItems": [{"variantId": small, "quantity": 2}],
        "email": "a@b.c",
        "tags": ["mkt-order-1"],
        "sourceIdentifier": "merchant-1001",
        "financialStatus": "PAID",
    }
    out = gql.data(ORDER_CREATE, {"order": order})["orderCreate"]
    assert out["userErrors"] == [] and store.available(small) == 5  # BYPASS is the default
    assert out["order"]["lineItems"]["nodes"][0]["originalUnitPriceSet"]["shopMoney"]["amount"] == "20.00"
    out = gql.data(ORDER_CREATE, {"order": order, "options": {"inventoryBehaviour": "DECREMENT_OBEYING_POLICY"}})
    assert store.available(small) == 3
    assert store.quantity(small, store.primary_location_id, "committed") == 2
    order["lineItems"][0]["quantity"] = 4
    out = gql.data(ORDER_CREATE, {"order": order, "options": {"inventoryBehaviour": "DECREMENT_OBEYING_POLICY"}})
    assert out["orderCreate"]["order"] is None
    assert out["orderCreate"]["userErrors"][0]["code"] == "INVENTORY_CLAIM_FAILED"
    found = gql.data(
        '{ orders(first: 5, query: "source_identifier:merchant-1001 AND tag:mkt-order-1") { nodes { id } } }'
    )
    assert len(found["orders"]["nodes"]) == 2


def test_order_cancel_is_async_and_restocks(gql: Client, store: ShopifySandbox):
    p = shirt(store)
    small = p["variants"][0]["id"]
    order = store.place_order([(small, 2)], email="buyer@example.com")
    assert store.available(small) == 3
    out = gql.data(
        """mutation($id: ID!) { orderCancel(orderId: $id, reason: CUSTOMER, restock: true,
        notifyCustomer: false, refundMethod: {originalPaymentMethodsRefund: true}) {
        job { id done } orderCancelUserErrors { field message code } } }""",
        {"id": order["id"]},
    )["orderCancel"]
    assert out["orderCancelUserErrors"] == [] and out["job"]["done"] is False
    job = gql.data("query($id: ID!) { job(id: $id) { id done } }", {"id": out["job"]["id"]})["job"]
    assert job["done"] is True
    o = gql.data(
        "query($id: ID!) { order(id: $id) { cancelledAt cancelReason displayFinancialStatus "
        "lineItems(first: 5) { nodes { quantity currentQuantity } } } }",
        {"id": order["id"]},
    )["order"]
    assert o["cancelledAt"] and o["cancelReason"] == "CUSTOMER" and o["displayFinancialStatus"] == "REFUNDED"
    assert o["lineItems"]["nodes"] == [{"quantity": 2, "currentQuantity": 0}]
    assert store.available(small) == 5
    again = gql.data(
        "mutation($id: ID!) { orderCancel(orderId: $id, reason: OTHER, restock: false) "
        "{ orderCancelUserErrors { code } } }",
        {"id": order["id"]},
    )
    assert again["orderCancel"]["orderCancelUserErrors"][0]["code"] == "INVALID"


def test_fulfillment_with_tracking_then_tracking_update(gql: Client, store: ShopifySandbox):
    p = shirt(store)
    small, medium = p["variants"][0]["id"], p["variants"][1]["id"]
    order = store.place_order([(small, 2), (medium, 1)])
    fos = gql.data(
        """query($id: ID!) { order(id: $id) { fulfillmentOrders(first: 5) { nodes { id status
        supportedActions { action } assignedLocation { location { id } }
        lineItems(first: 10) { nodes { id remainingQuantity lineItem { id sku variant { id } } } } } } } }""",
        {"id": order["id"]},
    )["order"]["fulfillmentOrders"]["nodes"]
    (fo,) = fos
    assert {"action": "CREATE_FULFILLMENT"} in fo["supportedActions"]
    small_line = next(li for li in fo["lineItems"]["nodes"] if li["lineItem"]["sku"] == "LS-S")
    create = """mutation($f: FulfillmentInput!) { fulfillmentCreate(fulfillment: $f) { fulfillment { id status
        trackingInfo { number company url } } userErrors { field message } } }"""
    f = {
        "lineItemsByFulfillmentOrder": [
            {"fulfillmentOrderId": fo["id"], "fulfillmentOrderLineItems": [{"id": small_line["id"], "quantity": 1}]}
        ],
        "trackingInfo": {"number": "1Z999", "company": "UPS", "url": "https://ups.example/1Z999"},
    }
    out = gql.data(create, {"f": f})["fulfillmentCreate"]
    assert out["userErrors"] == []
    assert out["fulfillment"]["trackingInfo"] == [
        {"number": "1Z999", "company": "UPS", "url": "https://ups.example/1Z999"}
    ]
    state = gql.data(
        "query($id: ID!) { order(id: $id) { displayFulfillmentStatus fulfillments { id status } } }",
        {"id": order["id"]},
    )["order"]
    assert state["displayFulfillmentStatus"] == "PARTIALLY_FULFILLED" and len(state["fulfillments"]) == 1
    assert store.quantity(small, store.primary_location_id, "committed") == 1
    f["lineItemsByFulfillmentOrder"][0]["fulfillmentOrderLineItems"][0]["quantity"] = 5
    too_many = gql.data(create, {"f": f})["fulfillmentCreate"]
    assert too_many["fulfillment"] is None and too_many["userErrors"]
    upd = gql.data(
        """mutation($id: ID!, $t: FulfillmentTrackingInput!) { fulfillmentTrackingInfoUpdate(
        fulfillmentId: $id, trackingInfoInput: $t) { fulfillment { trackingInfo { number company } }
        userErrors { message } } }""",
        {"id": out["fulfillment"]["id"], "t": {"number": "1Z000", "company": "UPS"}},
    )
    assert upd["fulfillmentTrackingInfoUpdate"]["fulfillment"]["trackingInfo"] == [
        {"number": "1Z000", "company": "UPS"}
    ]
    rest = store.fulfill_order(order["id"], tracking={"number": "2", "company": "DHL"})
    assert sum(line["quantity"] for line in rest["lines"]) == 2
    assert store.order(order["id"])["displayFulfillmentStatus"] == "FULFILLED"


def test_order_attributes_tags_metafields_and_lookup_by_custom_id(gql: Client, store: ShopifySandbox):
    p = shirt(store)
    order = store.place_order([(p["variants"][0]["id"], 1)], email="old@example.com")
    out = gql.data(
        """mutation($in: OrderInput!) { orderUpdate(input: $in) { order { email note tags customAttributes
        { key value } shippingAddress { city countryCodeV2 } } userErrors { message } } }""",
        {
            "in": {
                "id": order["id"],
                "email": "new@example.com",
                "note": "leave at door",
                "tags": ["vip"],
                "customAttributes": [{"key": "gift", "value": "yes"}],
                "shippingAddress": {"city": "Lyon", "countryCode": "FR"},
            }
        },
    )["orderUpdate"]["order"]
    assert out == {
        "email": "new@example.com",
        "note": "leave at door",
        "tags": ["vip"],
        "customAttributes": [{"key": "gift", "value": "yes"}],
        "shippingAddress": {"city": "Lyon", "countryCodeV2": "FR"},
    }
    gql.data(
        'mutation($id: ID!) { tagsAdd(id: $id, tags: ["mkt-1", "vip"]) { userErrors { message } } }',
        {"id": order["id"]},
    )
    mf = gql.data(
        """mutation($m: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $m) { metafields { key value }
        userErrors { code } } }""",
        {
            "m": [
                {
                    "ownerId": order["id"],
                    "namespace": "vendor_sync",
                    "key": "merchant_order",
                    "type": "id",
                    "value": "gid://shopify/Order/42",
                }
            ]
        },
    )
    assert mf["metafieldsSet"]["metafields"] == [{"key": "merchant_order", "value": "gid://shopify/Order/42"}]
    found = gql.data("""{ orderByIdentifier(identifier: {customId: {namespace: "vendor_sync", key: "merchant_order",
        value: "gid://shopify/Order/42"}}) { id tags } }""")["orderByIdentifier"]
    assert found == {"id": order["id"], "tags": ["vip", "mkt-1"]}


# -- contracts ------------------------------------------------------------------------------------


def test_connector_documents_run_against_the_sandbox_schema():
    schema = shopify_schema()
    for path in sorted((REPO / "vsc" / "connectors" / "shopify").rglob("*.graphql")):
        errors = graphql.validate(schema, graphql.parse(path.read_text()))
        assert not errors, (path.name, [e.message for e in errors])


@pytest.mark.skipif(not (SHARED / "tools" / "check-graphql").exists(), reason="../shared is not present")
def test_every_graphql_file_agrees_with_shopifys_real_schema():
    # The connector's documents must validate, and the sandbox's SDL must be a true subset.
    out = subprocess.run(
        [sys.executable, str(SHARED / "tools" / "check-graphql"), str(REPO / "vsc")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("0 problems")
    summary = out.stdout.strip().splitlines()[-1]
    assert int(summary.split()[1]) >= 18 and " 1 schema files" in summary


# -- bulk mutations ---------------------------------------------------------------------------------

STAGE = """mutation($i: [StagedUploadInput!]!) { stagedUploadsCreate(input: $i) {
    stagedTargets { url resourceUrl parameters { name value } } userErrors { field message } } }"""
RUN = """mutation($m: String!, $p: String!) { bulkOperationRunMutation(mutation: $m, stagedUploadPath: $p) {
    bulkOperation { id status } userErrors { field message code } } }"""
POLL = "query($id: ID!) { bulkOperation(id: $id) { id status objectCount url partialDataUrl errorCode } }"
SET = """mutation($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {
    productSet(input: $input, identifier: $identifier) { product { id handle } userErrors { field message code } } }"""


def stage(gql: Client, body: bytes) -> str:
    """stagedUploadsCreate, then the multipart upload; returns the stagedUploadPath."""
    spec = {
        "resource": "BULK_MUTATION_VARIABLES",
        "filename": "v.jsonl",
        "mimeType": "text/jsonl",
        "httpMethod": "POST",
    }
    (target,) = gql.data(STAGE, {"i": [spec]})["stagedUploadsCreate"]["stagedTargets"]
    form = {p["name"]: p["value"] for p in target["parameters"]}
    r = requests.post(target["url"], data=form, files={"file": ("v.jsonl", body, "text/jsonl")}, timeout=5)
    assert r.status_code == 201 and "<PostResponse>" in r.text, r.text
    return form["key"]


def product_lines(n: int) -> bytes:
    lines = [
        {"input": {"title": f"Bulk {i}", "handle": f"bulk-{i}"}, "identifier": {"handle": f"bulk-{i}"}}
        for i in range(n)
    ]
    return "".join(__import__("json").dumps(x) + "\n" for x in lines).encode()


def test_staged_upload_form_is_signed_and_needs_the_file(gql: Client):
    spec = {
        "resource": "BULK_MUTATION_VARIABLES",
        "filename": "v.jsonl",
        "mimeType": "text/jsonl",
        "httpMethod": "POST",
    }
    body = gql(STAGE, {"i": [spec]})
    assert body["extensions"]["cost"]["requestedQueryCost"] >= 10  # a mutation
    (target,) = body["data"]["stagedUploadsCreate"]["stagedTargets"]
    form = {p["name"]: p["value"] for p in target["parameters"]}
    assert {"key", "policy", "x-goog-signature", "success_action_status"} <= set(form)
    forged = dict(form, **{"x-goog-signature": "0" * 64})
    r = requests.post(target["url"], data=forged, files={"file": ("v.jsonl", b"{}\n")}, timeout=5)
    assert r.status_code == 403 and "AccessDenied" in r.text
    r = requests.post(target["url"], data=form, files={"other": ("v.jsonl", b"{}\n")}, timeout=5)
    assert r.status_code == 400
    put = dict(spec, httpMethod="PUT")
    errors = gql.data(STAGE, {"i": [put]})["stagedUploadsCreate"]["userErrors"]
    assert errors and errors[0]["field"] == ["input", "0", "httpMethod"]


def test_bulk_mutations_run_line_by_line_five_at_a_time(gql: Client, store: ShopifySandbox):
    store.bulk_lines_per_request = 1  # each request to the store runs one more line of each
    ops = []
    for _ in range(5):
        body = gql(RUN, {"m": SET, "p": stage(gql, product_lines(12))})
        assert body["extensions"]["cost"]["requestedQueryCost"] >= 10
        ops.append(body["data"]["bulkOperationRunMutation"]["bulkOperation"])
    assert [op["status"] for op in ops] == ["CREATED"] * 5
    # From API version 2026-01 five bulk mutations run at once per shop; one more is refused.
    refused = gql.data(RUN, {"m": SET, "p": stage(gql, product_lines(1))})["bulkOperationRunMutation"]
    assert refused["bulkOperation"] is None and refused["userErrors"][0]["code"] == "LIMIT_REACHED"
    op = ops[0]
    seen = []
    while True:
        polled = gql.data(POLL, {"id": op["id"]})["bulkOperation"]
        seen.append((polled["status"], polled["objectCount"]))
        if polled["status"] == "COMPLETED":
            break
    # The ten requests since the first run started ran ten of its lines; each poll runs one more.
    assert seen == [("RUNNING", "11"), ("COMPLETED", "12")]
    lines = [__import__("json").loads(x) for x in requests.get(polled["url"], timeout=5).text.splitlines()]
    assert [x["__lineNumber"] for x in lines] == list(range(12))
    assert [x["data"]["productSet"]["product"]["handle"] for x in lines] == [f"bulk-{i}" for i in range(12)]
    assert all(x["data"]["productSet"]["userErrors"] == [] for x in lines)
    listed = gql.data(
        """query($id: ID!) { bulkOperations(first: 5, query: "operation_type:mutation status:completed") {
        nodes { id } } currentBulkOperation(type: MUTATION) { id status } node(id: $id) { id } }""",
        {"id": op["id"]},
    )
    assert listed["bulkOperations"]["nodes"] == [{"id": op["id"]}]  # the others are still running
    assert listed["currentBulkOperation"]["id"] == ops[-1]["id"] and listed["node"] == {"id": op["id"]}
    # Lines run on Shopify's side: the bucket paid for the 14 calls (about 160 points), not for
    # the 61 productSet lines (at least 10 points each).
    assert store.throttle_status()["currentlyAvailable"] > 2000 - 200


@pytest.mark.parametrize(
    ("mutation", "upload", "code"),
    [
        (
            SET.replace("handle }", "handle variants(first: 5) { nodes { id } } media(first: 5) { nodes { id } } }"),
            True,
            "INVALID_MUTATION",
        ),
        ("mutation { shop { id } }", True, "INVALID_MUTATION"),
        ("mutation($id: ID!) { productDelete(input: {id: $id}) { deletedProductId } }", True, "INVALID_MUTATION"),
        (SET, False, "NO_SUCH_FILE"),
        (SET, b"not json\n", "INVALID_STAGED_UPLOAD_FILE"),
    ],
)
def test_bulk_mutation_refusals_use_the_real_codes(gql: Client, store: ShopifySandbox, mutation, upload, code):
    if upload is False:
        path = "tmp/1/bulk/none/v.jsonl"
    else:
        path = stage(gql, upload if isinstance(upload, bytes) else product_lines(1))
    result = gql.data(RUN, {"m": mutation, "p": path})["bulkOperationRunMutation"]
    assert result["bulkOperation"] is None and result["userErrors"][0]["code"] == code
    assert store.bulk_operations == {}


def test_failed_lines_and_failed_operations_keep_what_ran(gql: Client, store: ShopifySandbox):
    store.bulk_failing_lines = {1}
    op = gql.data(RUN, {"m": SET, "p": stage(gql, product_lines(3))})["bulkOperationRunMutation"]["bulkOperation"]
    done = gql.data(POLL, {"id": op["id"]})["bulkOperation"]
    lines = [__import__("json").loads(x) for x in requests.get(done["url"], timeout=5).text.splitlines()]
    assert lines[1]["data"] == {"productSet": None}
    assert lines[1]["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert lines[0]["data"]["productSet"]["product"] and lines[2]["data"]["productSet"]["product"]
    store.bulk_failing_lines = set()
    store.bulk_fail_with = "INTERNAL_SERVER_ERROR"
    op = gql.data(RUN, {"m": SET, "p": stage(gql, product_lines(4))})["bulkOperationRunMutation"]["bulkOperation"]
    failed = gql.data(POLL, {"id": op["id"]})["bulkOperation"]
    assert failed["status"] == "FAILED" and failed["errorCode"] == "INTERNAL_SERVER_ERROR" and failed["url"] is None
    partial = requests.get(failed["partialDataUrl"], timeout=5).text.splitlines()
    assert len(partial) == 2
