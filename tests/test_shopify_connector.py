"""The Shopify connector against the sandbox: cost pacing, THROTTLED, retries only where safe, typed errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from vsc.connectors.base import ListingDraft, VariantDraft
from vsc.connectors.shopify import ShopifyConnector
from vsc.errors import RetriableError, UserErrors
from vsc.sandbox.base import Fault
from vsc.sandbox.shopify import ShopifySandbox


@pytest.fixture
def shop():
    s = ShopifySandbox(shop="mall").start()
    yield s
    s.stop()


def connector(shop, **kw) -> ShopifyConnector:
    sleeps: list[float] = []
    c = ShopifyConnector.open("mall", shop.url, shop.token, sleep=sleeps.append, **kw)
    c.sleeps = sleeps  # type: ignore[attr-defined]
    return c


def test_pages_are_sized_to_the_cost_cap(shop):
    for i in range(30):
        shop.add_product(f"P{i}", variants=[{"sku": f"S{i}", "price": "1.00"}])
    c = connector(shop)
    products = list(c.list_products(None))
    assert len(products) == 30
    costs = [r for r in shop.requests if r.operation == "products"]
    assert costs and c._page >= 1


def test_throttled_answers_are_waited_out_and_retried(shop):
    shop.add_product("Mug", variants=[{"sku": "M", "price": "5.00"}])
    shop.inject(Fault("throttle", times=2))
    c = connector(shop)
    assert c.check().currency == "USD"
    assert c.session.stats["throttled"] == 2
    assert len(c.sleeps) >= 2 and all(s > 0 for s in c.sleeps)


def test_a_small_bucket_paces_requests_instead_of_failing(shop):
    for i in range(12):
        shop.add_product(f"P{i}", variants=[{"sku": f"S{i}", "price": "1.00"}])
    slow = ShopifySandbox(shop="slow", maximum_available=300, restore_rate=50).start()
    try:
        for i in range(12):
            slow.add_product(f"P{i}", variants=[{"sku": f"S{i}", "price": "1.00"}])
        c = ShopifyConnector.open("slow", slow.url, slow.token)
        assert len(list(c.list_products(None))) == 12
        assert len(list(c.list_products(None))) == 12
        assert c.limiter.maximum == 300 and c.limiter.restore_rate == 50
    finally:
        slow.stop()


def test_queries_are_retried_after_5xx_but_plain_mutations_are_not(shop):
    shop.inject(Fault("status", status=502, times=1))
    c = connector(shop)
    assert c.check().name == "mall"
    shop.inject(Fault("status", status=503, times=1, match=shop.is_write))
    draft = ListingDraft(title="Tee", variants=(VariantDraft(sku="T", price=Decimal("5")),))
    with pytest.raises(RetriableError):
        c.create_listing(draft)
    assert shop.products() == []


def test_upserting_publish_survives_a_lost_response(shop):
    shop.inject(Fault("cut_after", times=1, match=shop.is_write))
    c = connector(shop)
    draft = ListingDraft(title="Tee", variants=(VariantDraft(sku="T", price=Decimal("5")),))
    product = c.create_listing(draft, handle="tee-acme-1")
    assert [p["id"] for p in shop.products()] == [product.id]


def test_user_errors_become_typed_errors(shop):
    c = connector(shop)
    draft = ListingDraft(
        title="Tee",
        options=("A", "B", "C", "D"),
        variants=(VariantDraft(sku="T", price=Decimal("5"), options=(("A", "1"), ("B", "1"), ("C", "1"), ("D", "1"))),),
    )
    with pytest.raises(UserErrors) as caught:
        c.create_listing(draft)
    assert "OPTIONS_OVER_LIMIT" in caught.value.codes


def test_orders_are_listed_25_lines_each_and_longer_ones_completed_by_id(shop):
    """A page of orders carries 25 lines an order (a quarter of the points of 100, so ~4x the
    orders a page); an order with more has the rest read by its id, none lost."""
    made = shop.add_product(
        "Many",
        options={"N": [f"V{i}" for i in range(130)]},
        variants=[{"sku": f"M{i}", "price": "1.00", "options": {"N": f"V{i}"}, "available": 5} for i in range(130)],
    )
    ids = [v["id"] for v in made["variants"]]
    big = shop.place_order([(vid, 1) for vid in ids])
    small = shop.place_order([(ids[0], 2)])
    c = connector(shop)
    shop.reset_requests()
    orders = {o.id: o for o in c.list_orders(None)}
    assert len(orders[big["id"]].line_items) == 130 and len(orders[small["id"]].line_items) == 1
    assert {li.variant_id for li in orders[big["id"]].line_items} == set(ids)
    # one page of orders, then the big order's lines 26-125 and 126-130 by id
    assert [r.operation for r in shop.requests] == ["orders", "order", "order"]
    shop.reset_requests()
    assert len(c.get_order(big["id"]).line_items) == 130  # by id: 100 a page
    assert [r.operation for r in shop.requests] == ["order", "order"]
