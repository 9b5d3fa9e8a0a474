"""Shopify orders: read merchant orders, push orders into a vendor's Shopify store, cancel, edit.

platforms/shopify.md §7.6–7.9 and §7.12. The push (`orderCreate`) has no
idempotency key, so every pushed order carries vsc's marker three ways
(`sourceIdentifier`, a tag and a custom attribute) and `find_order` looks it up
before anything is sent twice. That lookup goes through search, which lags
behind writes (§10): a miss right after a lost response proves nothing, so
`find_order` reports how sure it is through `search_lag_seconds`, and the
orders stream waits that long before it decides an attempt was lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from vsc.connectors.base import Address, LineItem, Order, OrderDraft, pass_memo
from vsc.connectors.http import StoreSession
from vsc.connectors.shopify.client import CostTooHigh, ShopifyClient
from vsc.errors import ApiError, PayloadError, UserErrors

# How long Shopify's search may miss a fresh order. Shopify publishes no figure (§10); ten
# minutes is the conservative end of what integrators report.
SEARCH_LAG_SECONDS = 600.0
MARKER_ATTRIBUTE = "vsc_marker"


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def parse_address(node: dict[str, Any] | None) -> Address | None:
    if not node:
        return None
    return Address(
        first_name=node.get("firstName"),
        last_name=node.get("lastName"),
        company=node.get("company"),
        address1=node.get("address1"),
        address2=node.get("address2"),
        city=node.get("city"),
        province_code=node.get("provinceCode"),
        country_code=node.get("countryCodeV2") or node.get("countryCode"),
        zip=node.get("zip"),
        phone=node.get("phone"),
    )


def address_input(a: Address | None) -> dict[str, Any] | None:
    if a is None:
        return None
    out = {
        "firstName": a.first_name,
        "lastName": a.last_name,
        "company": a.company,
        "address1": a.address1,
        "address2": a.address2,
        "city": a.city,
        "provinceCode": a.province_code,
        "countryCode": a.country_code,
        "zip": a.zip,
        "phone": a.phone,
    }
    return {k: v for k, v in out.items() if v is not None}


def parse_order(node: dict[str, Any]) -> Order:
    """An Order node → `Order`."""
    if not isinstance(node, dict) or not node.get("id"):
        raise PayloadError(f"Shopify sent an order without an id: {node!r}")
    lines = []
    for n in (node.get("lineItems") or {}).get("nodes") or []:
        price = ((n.get("discountedUnitPriceSet") or {}).get("shopMoney") or {}).get("amount")
        lines.append(
            LineItem(
                id=n["id"],
                variant_id=(n.get("variant") or {}).get("id"),
                sku=n.get("sku") or None,
                title=n.get("title"),
                quantity=int(
                    n.get("currentQuantity") if n.get("currentQuantity") is not None else n.get("quantity") or 0
                ),
                unit_price=Decimal(str(price)) if price is not None else None,
            )
        )
    attributes = {a["key"]: a["value"] for a in node.get("customAttributes") or [] if a}
    customer = node.get("customer") or {}
    fulfillment = str(node.get("displayFulfillmentStatus") or "").lower() or None
    return Order(
        id=node["id"],
        name=node.get("name"),
        created_at=_dt(node.get("createdAt")),
        updated_at=_dt(node.get("updatedAt")),
        cancelled_at=_dt(node.get("cancelledAt")),
        test=bool(node.get("test")),
        financial_status=str(node.get("displayFinancialStatus") or "").lower() or None,
        fulfillment_status="cancelled" if node.get("cancelledAt") else fulfillment,
        currency=node.get("currencyCode"),
        email=node.get("email"),
        phone=node.get("phone"),
        note=node.get("note"),
        tags=tuple(node.get("tags") or ()),
        customer_first_name=customer.get("firstName"),
        customer_last_name=customer.get("lastName"),
        accepts_marketing=node.get("customerAcceptsMarketing"),
        shipping_address=parse_address(node.get("shippingAddress")),
        line_items=tuple(lines),
        metafields=tuple(
            (f"{m['namespace']}.{m['key']}", m["value"]) for m in (node.get("metafields") or {}).get("nodes") or [] if m
        ),
        marker=attributes.get(MARKER_ATTRIBUTE) or node.get("sourceIdentifier"),
    )


class OrdersMixin:
    """Order verbs of `ShopifyConnector`."""

    client: ShopifyClient
    session: StoreSession
    name: str
    search_lag_seconds = SEARCH_LAG_SECONDS

    _order_page = 2

    def _orders(self, query: str | None) -> Iterator[Order]:
        after = None
        while True:
            first = self._order_page
            try:
                conn = self.client.execute("orders_changed", {"first": first, "after": after, "query": query})["orders"]
            except CostTooHigh:
                if first == 1:
                    raise
                self._order_page = max(1, first // 2)
                continue
            # An order with its 100 lines costs ~450 points: size pages from what Shopify reports.
            requested = self.client._costs.get("orders_changed")
            if requested:
                self._order_page = max(1, min(50, int(900 // max(requested / first, 1))))
            for node in conn["nodes"]:
                yield parse_order(self._all_lines(node))
            if not conn["pageInfo"]["hasNextPage"]:
                return
            after = conn["pageInfo"]["endCursor"]

    @pass_memo
    def list_orders(self, since: datetime | None = None) -> Iterator[Order]:
        query = f"updated_at:>='{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'" if since else None
        return self._orders(query)

    def get_order(self, order_id: str) -> Order | None:
        node = self.client.execute("order_by_id", {"id": order_id})["order"]
        return parse_order(self._all_lines(node)) if node else None

    def _all_lines(self, node: dict[str, Any]) -> dict[str, Any]:
        """The order node with every line item: pages after the first are read by the order's id
        (lists fetch 25 lines an order so that a page of orders stays cheap)."""
        lines = node.get("lineItems") if isinstance(node, dict) else None
        page = (lines or {}).get("pageInfo") or {}
        if not page.get("hasNextPage"):
            return node
        nodes = list(lines.get("nodes") or [])  # type: ignore[union-attr]
        after = page.get("endCursor")
        while after:
            order = self.client.execute("order_line_items", {"id": node["id"], "after": after})["order"] or {}
            more = order.get("lineItems") or {}
            nodes += more.get("nodes") or []
            page = more.get("pageInfo") or {}
            after = page.get("endCursor") if page.get("hasNextPage") else None
        return {**node, "lineItems": {"nodes": nodes}}

    def find_order(self, marker: str) -> Order | None:
        # Search by the sourceIdentifier vsc set; quoted, as search values with ':' must be.
        for order in self._orders(f"source_identifier:'{marker}'"):
            if order.marker == marker:
                return order
        return None

    def create_order(self, draft: OrderDraft) -> Order:
        tags = [*draft.tags, draft.marker]  # the marker is also a tag (filter `tag:`)
        line_items = []
        for line in draft.lines:
            line_items.append(
                {
                    "variantId": line.ref.variant_id,
                    "quantity": line.quantity,
                    "priceSet": {"shopMoney": {"amount": str(line.unit_price), "currencyCode": draft.currency}},
                }
            )
        order: dict[str, Any] = {
            "lineItems": line_items,
            "currency": draft.currency,
            "email": draft.email,
            "phone": draft.phone,
            "note": draft.note,
            "tags": tags,
            "sourceIdentifier": draft.marker,
            "customAttributes": [{"key": MARKER_ATTRIBUTE, "value": draft.marker}],
            "financialStatus": "PAID" if draft.paid else "PENDING",
            "buyerAcceptsMarketing": bool(draft.accepts_marketing),
        }
        if draft.merchant_order_name:
            order["poNumber"] = draft.merchant_order_name
        if draft.shipping_address:
            order["shippingAddress"] = address_input(draft.shipping_address)
        if draft.customer_first_name or draft.customer_last_name:
            order["shippingAddress"] = {
                "firstName": draft.customer_first_name,
                "lastName": draft.customer_last_name,
                **(order.get("shippingAddress") or {}),
            }
        if draft.created_at is not None:
            order["processedAt"] = draft.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        order = {k: v for k, v in order.items() if v is not None}
        result = self.client.execute(
            "order_create",
            {
                "order": order,
                # The vendor's stock drops through the order itself; no receipts to the shopper.
                "options": {
                    "inventoryBehaviour": "DECREMENT_OBEYING_POLICY",
                    "sendReceipt": False,
                    "sendFulfillmentReceipt": False,
                },
            },
            mutation=True,
        )["orderCreate"]
        self.client.check_user_errors(result, "orderCreate")
        node = result.get("order")
        if not node:
            raise PayloadError(f"{self.name}: orderCreate returned no order", store=self.name)
        # The mutation answers with what recording the push needs (id, name, each line's id and
        # variant); reading the order back cost a request a push. Only an order with more lines
        # than that answer holds (100) is read back whole.
        if len((node.get("lineItems") or {}).get("nodes") or []) < len(draft.lines):
            created = self.get_order(node["id"])
            if created is not None:
                return created
        return parse_order({**node, "sourceIdentifier": draft.marker})

    def cancel_order(self, order_id: str, *, restock: bool = True) -> None:
        result = self.client.execute(
            "order_cancel",
            {
                "orderId": order_id,
                "reason": "OTHER",
                "restock": restock,
                "notifyCustomer": False,
                "staffNote": "Cancelled by the marketplace (vsc)",
            },
            mutation=True,
        )["orderCancel"]
        try:
            self.client.check_user_errors(result, "orderCancel", key="orderCancelUserErrors")
        except UserErrors:
            # A cancellation cut off after Shopify applied it (vsc killed, or the answer lost) is
            # refused when sent again, "already cancelled": a cancelled order is what was asked.
            current = self.get_order(order_id)
            if current is not None and current.cancelled_at is not None:
                return
            raise
        job = result.get("job") or {}
        # The cancellation runs as a job: follow it to the end before calling the order cancelled.
        for attempt in range(20):
            if job.get("done"):
                return
            if attempt:
                self.session.sleep(min(0.05 * (2**attempt), 2.0))
            job = self.client.execute("job", {"id": job["id"]})["job"] or {}
        raise ApiError(
            f"{self.name}: the cancellation of {order_id} did not finish in time; vsc checks again next pass",
            store=self.name,
            platform="shopify",
        )

    def update_order(self, order_id: str, changes: dict[str, Any]) -> None:
        """Apply attribute changes: email, phone, note, tags, shipping_address, metafields.

        `accepts_marketing` cannot change on an existing Shopify order (§7.9): it is ignored
        here, and the orders stream records and reports it.
        """
        data: dict[str, Any] = {"id": order_id}
        for key, value in changes.items():
            if key in ("email", "phone", "note"):
                data[key] = value
            elif key == "tags":
                data["tags"] = list(value)
            elif key == "shipping_address":
                data["shippingAddress"] = address_input(value) if isinstance(value, Address) else value
            elif key == "metafields":
                data["metafields"] = [
                    {
                        "namespace": k.split(".", 1)[0],
                        "key": k.split(".", 1)[1],
                        "value": v,
                        "type": "single_line_text_field",
                    }
                    for k, v in value
                ]
        result = self.client.execute("order_update", {"input": data}, mutation=True, idempotent=True)["orderUpdate"]
        self.client.check_user_errors(result, "orderUpdate")
