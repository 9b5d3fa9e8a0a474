"""Shopify fulfillments: read a vendor's shipments, create and update them on the merchant's orders.

platforms/shopify.md §7.10 (read) and §7.11 (create, tracking edits). A
fulfillment is created against *fulfillment orders*, not the order: the
merchant's line item ids are mapped to the fulfillment-order line items that
can still ship them, and only those lines are sent, so another vendor's lines
on the same merchant order stay unfulfilled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from vsc.connectors.base import Fulfillment, TrackingInfo
from vsc.connectors.shopify.client import ShopifyClient
from vsc.errors import NotFound, PayloadError, UserErrors

# Fulfillment orders in these states accept new fulfillments (§7.11).
FULFILLABLE = ("OPEN", "IN_PROGRESS")
# A userErrors code vsc gives when nothing of the requested lines is left to ship.
NOTHING_TO_FULFILL = "NOTHING_TO_FULFILL"


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"Shopify sent a date vsc cannot read: {value!r}") from None


def parse_fulfillment(node: dict[str, Any], order_id: str) -> Fulfillment:
    """A Fulfillment node → `Fulfillment` (status lower-cased: success | cancelled | error | failure)."""
    if not isinstance(node, dict) or not node.get("id"):
        raise PayloadError(f"Shopify sent a fulfillment without an id: {node!r}")
    tracking = tuple(
        TrackingInfo(number=t.get("number") or None, company=t.get("company") or None, url=t.get("url") or None)
        for t in node.get("trackingInfo") or ()
        if t
    )
    lines = []
    for n in (node.get("fulfillmentLineItems") or {}).get("nodes") or ():
        item = (n or {}).get("lineItem") or {}
        if item.get("id"):
            lines.append((item["id"], int(n.get("quantity") or 0)))
    return Fulfillment(
        id=node["id"],
        order_id=order_id,
        status=str(node.get("status") or "SUCCESS").lower(),
        tracking=tracking,
        lines=tuple(lines),
        created_at=_dt(node.get("createdAt")),
        updated_at=_dt(node.get("updatedAt")),
    )


def tracking_input(tracking: TrackingInfo | None) -> dict[str, str] | None:
    """A `FulfillmentTrackingInput` with only the values that are set (None when there are none)."""
    if tracking is None:
        return None
    out = {k: v for k, v in (("number", tracking.number), ("company", tracking.company), ("url", tracking.url)) if v}
    return out or None


class FulfillmentMixin:
    """Fulfillment verbs of `ShopifyConnector` (platforms/shopify.md §7.10–7.11)."""

    client: ShopifyClient
    name: str

    def list_fulfillments(self, order_id: str) -> list[Fulfillment]:
        """An order's fulfillments (vendor shipments to copy, or the merchant's own after a lost
        response), oldest first; `NotFound` when the order does not exist."""
        order = self.client.execute("order_fulfillments", {"id": order_id}).get("order")
        if not order:
            raise NotFound(
                f"{self.name}: Shopify has no order {order_id}", store=self.name, platform="shopify", status=404
            )
        nodes = order.get("fulfillments") or []
        out = [parse_fulfillment(n, order_id) for n in nodes if n]
        return sorted(out, key=lambda f: (f.created_at is None, f.created_at or datetime.min, f.id))

    def _fulfillment_orders(self, order_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = None
        while True:
            order = self.client.execute("order_fulfillment_orders", {"id": order_id, "after": after}).get("order")
            if not order:
                raise NotFound(
                    f"{self.name}: Shopify has no order {order_id}", store=self.name, platform="shopify", status=404
                )
            conn = order["fulfillmentOrders"]
            for fo in conn["nodes"]:
                if ((fo.get("lineItems") or {}).get("pageInfo") or {}).get("hasNextPage"):
                    # Over 50 lines on one fulfillment order: better to stop than to ship a part.
                    raise PayloadError(
                        f"{self.name}: order {order_id} has a fulfillment order with more than 50 lines",
                        store=self.name,
                    )
                out.append(fo)
            if not conn["pageInfo"]["hasNextPage"]:
                return out
            after = conn["pageInfo"]["endCursor"]

    def fulfillment_plan(self, order_id: str, lines: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
        """`lineItemsByFulfillmentOrder` for these (merchant line item id, quantity): each line spread
        over the open fulfillment orders that can still ship it, capped at what remains."""
        wanted: dict[str, int] = {}
        for line_id, qty in lines:
            if qty > 0:
                wanted[line_id] = wanted.get(line_id, 0) + int(qty)
        groups: dict[str, list[dict[str, Any]]] = {}
        for fo in self._fulfillment_orders(order_id):
            actions = {a.get("action") for a in fo.get("supportedActions") or ()}
            if fo.get("status") not in FULFILLABLE or "CREATE_FULFILLMENT" not in actions:
                continue
            for item in (fo.get("lineItems") or {}).get("nodes") or ():
                line_id = (item.get("lineItem") or {}).get("id")
                need = wanted.get(line_id or "", 0)
                take = min(need, int(item.get("remainingQuantity") or 0))
                if take > 0:
                    groups.setdefault(fo["id"], []).append({"id": item["id"], "quantity": take})
                    wanted[line_id] = need - take  # type: ignore[index]
        return [{"fulfillmentOrderId": k, "fulfillmentOrderLineItems": v} for k, v in groups.items()]

    def create_fulfillment(
        self,
        order_id: str,
        lines: Sequence[tuple[str, int]],
        tracking: TrackingInfo | None,
        *,
        notify_customer: bool = False,
    ) -> str:
        """Fulfil these (merchant line item id, quantity) with tracking, as far as they remain
        unfulfilled; returns the new fulfillment's id. Raises `UserErrors` (code
        NOTHING_TO_FULFILL) when none of them is left to ship.

        Not idempotent: a lost response must be resolved (see `list_fulfillments`) before
        calling again."""
        groups = self.fulfillment_plan(order_id, lines)
        if not groups:
            raise UserErrors(
                f"{self.name}: nothing of lines {', '.join(i for i, _ in lines)} of order {order_id} "
                "is left to fulfil (already fulfilled, cancelled or not on an open fulfillment order)",
                errors=[{"field": None, "message": "nothing left to fulfil", "code": NOTHING_TO_FULFILL}],
                store=self.name,
                platform="shopify",
                code=NOTHING_TO_FULFILL,
            )
        fulfillment: dict[str, Any] = {"lineItemsByFulfillmentOrder": groups, "notifyCustomer": bool(notify_customer)}
        info = tracking_input(tracking)
        if info:
            fulfillment["trackingInfo"] = info
        result = self.client.execute("fulfillment_create", {"fulfillment": fulfillment}, mutation=True)[
            "fulfillmentCreate"
        ]
        self.client.check_user_errors(result, "fulfillmentCreate")
        created = result.get("fulfillment") or {}
        if not created.get("id"):
            raise PayloadError(f"{self.name}: fulfillmentCreate returned no fulfillment", store=self.name)
        return str(created["id"])

    def update_tracking(self, fulfillment_id: str, tracking: TrackingInfo, *, notify_customer: bool = False) -> None:
        """Replace a fulfillment's tracking (number, company, URL)."""
        info = tracking_input(tracking) or {"number": ""}
        result = self.client.execute(
            "fulfillment_tracking_update",
            {"fulfillmentId": fulfillment_id, "trackingInfoInput": info, "notifyCustomer": bool(notify_customer)},
            mutation=True,
            # Setting the same tracking twice leaves the fulfillment as it is.
            idempotent=True,
        )["fulfillmentTrackingInfoUpdate"]
        self.client.check_user_errors(result, "fulfillmentTrackingInfoUpdate")
