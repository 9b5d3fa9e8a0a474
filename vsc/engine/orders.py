"""The orders stream: merchant orders → the vendors' stores, exactly once.

For every merchant order changed since a vendor's cursor that holds that
vendor's linked variants, `plan_order` decides (purely) what to do:

- push it into the vendor's store, with only that vendor's lines, once the
  order qualifies (`push_financial_statuses`, `push_test_orders`, not cancelled);
- follow a cancellation (Shopify `orderCancel` with restock and its job,
  WooCommerce status `cancelled`; Squarespace has no cancel API, so the vendor
  gets an e-mail asking for it and the link waits in `cancel_requested` until
  the vendor order shows CANCELED);
- follow edits of the order's attributes (email, phone, note, tags,
  metafields, shipping address; buyer-accepts-marketing cannot change on an
  existing Shopify order, so it is recorded and reported); a change to line
  items after the push is reported, never applied;
- with `order_push: false` for the vendor, move the vendor's stock directly
  instead: a sale and a cancellation each move it once per (order, line, event).

Exactly once: the `order_links` row is written `pending` (with the journal
entry) before the vendor call. A row found `pending` or `failed` at the next
pass may have reached the vendor store (a crash, a lost response), so vsc
first looks for its marker there and creates nothing if it finds it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from vsc import notify
from vsc.config import Settings
from vsc.connectors.base import Address, Order, OrderDraft, OrderLineDraft, VariantRef
from vsc.engine.actions import Action
from vsc.engine.context import Failed
from vsc.errors import Unsupported, UserErrors
from vsc.state import OrderLink, VariantLink, now_utc, parse_iso

log = logging.getLogger("vsc.engine.orders")

STREAM = "orders"
# Links in these states still owe the vendor's stock an order: the inventory stream holds
# their quantities back from the merchant store.
UNAPPLIED = ("waiting", "pending", "failed")


@dataclass
class OrdersPlan:
    """One vendor's planned orders actions, carried out with the other vendors' (`apply_plans`)."""

    vendor: str
    actions: list[Action]
    now: datetime


def order_number(order_id: str) -> str:
    return order_id.rsplit("/", 1)[-1]


def marker_for(merchant: str, order: Order) -> str:
    """vsc's reference to a merchant order, written where each platform keeps it."""
    return f"vsc-{merchant}-{order_number(order.id)}"


def qualifies(order: Order, settings: Settings) -> tuple[bool, str]:
    """Whether an order is to be pushed now, and why not."""
    if order.cancelled_at:
        return False, "cancelled"
    if order.test and not settings.push_test_orders:
        return False, "a test order (push_test_orders is off)"
    status = (order.financial_status or "").lower()
    if status not in settings.push_financial_statuses:
        return False, f"financial status {status or 'unknown'} (pushed: {', '.join(settings.push_financial_statuses)})"
    return True, ""


def _address(a: Address | None) -> dict[str, Any] | None:
    return {k: v for k, v in asdict(a).items() if v is not None} if a else None


def attributes(order: Order, settings: Settings) -> dict[str, Any]:
    """The order attributes vsc passes on to the vendor (and follows when they change)."""
    contact = settings.order_contact
    if contact == "customer":
        email, phone = order.email, order.phone
    elif contact == "marketplace":
        email, phone = settings.marketplace_email, settings.marketplace_phone
    else:
        email, phone = None, None
    return {
        "email": email,
        "phone": phone,
        "note": order.note,
        "tags": sorted(order.tags),
        "shipping_address": _address(order.shipping_address),
        "accepts_marketing": bool(order.accepts_marketing) if contact == "customer" else False,
        "metafields": sorted([list(m) for m in order.metafields]),
    }


def vendor_lines(
    order: Order, vlinks: dict[str, VariantLink], vendor: str, *, include_empty: bool = False
) -> list[dict[str, Any]]:
    """This vendor's lines of a merchant order (quantity left after removals), as stored on the link."""
    out = []
    for line in order.line_items:
        link = vlinks.get(line.variant_id or "")
        if link is None or link.vendor != vendor or (line.quantity <= 0 and not include_empty):
            continue
        out.append(
            {
                "merchant_line_id": line.id,
                "merchant_variant_id": line.variant_id,
                "vendor_product_id": link.vendor_product_id,
                "vendor_variant_id": link.vendor_variant_id,
                "sku": line.sku or link.sku,
                "title": line.title,
                "quantity": line.quantity,
                "unit_price": str(line.unit_price) if line.unit_price is not None else None,
                "vendor_price": link.fingerprint.get("price"),
            }
        )
    return out


def unlinked_lines(order: Order, vlinks: dict[str, VariantLink]) -> list[str]:
    return [
        f"{line.sku or line.title or line.id}" for line in order.line_items if (line.variant_id or "") not in vlinks
    ]


def draft_for(
    order: Order, lines: Sequence[dict[str, Any]], marker: str, settings: Settings, channel: str
) -> dict[str, Any]:
    """The vendor order to create, as JSON (it is journaled before it is sent)."""
    attrs = attributes(order, settings)
    out_lines = []
    for line in lines:
        price = line["unit_price"]
        if settings.order_price == "vendor" and line.get("vendor_price"):
            price = line["vendor_price"]
        out_lines.append(
            {
                "product_id": line["vendor_product_id"],
                "variant_id": line["vendor_variant_id"],
                "quantity": line["quantity"],
                "unit_price": price or "0.00",
                "sku": line.get("sku"),
                "title": line.get("title"),
            }
        )
    address = order.shipping_address
    return {
        "marker": marker,
        "lines": out_lines,
        "currency": order.currency or "USD",
        "email": attrs["email"],
        "phone": attrs["phone"],
        "note": order.note,
        "tags": list(order.tags),
        "customer_first_name": (address.first_name if address else None) or order.customer_first_name,
        "customer_last_name": (address.last_name if address else None) or order.customer_last_name,
        "accepts_marketing": attrs["accepts_marketing"],
        "shipping_address": attrs["shipping_address"],
        "paid": (order.financial_status or "").lower() in ("paid", "partially_refunded"),
        "channel_name": channel,
        "merchant_order_name": order.name,
        "created_at": order.created_at.isoformat() if order.created_at else None,
    }


def draft_from_json(data: dict[str, Any], key: str) -> OrderDraft:
    address = data.get("shipping_address")
    created = parse_iso(data.get("created_at")) if data.get("created_at") else None
    return OrderDraft(
        marker=data["marker"],
        key=key,
        lines=tuple(
            OrderLineDraft(
                ref=VariantRef(line["product_id"], line["variant_id"]),
                quantity=int(line["quantity"]),
                unit_price=Decimal(line["unit_price"]),
                sku=line.get("sku"),
                title=line.get("title"),
            )
            for line in data["lines"]
        ),
        currency=data["currency"],
        email=data.get("email"),
        phone=data.get("phone"),
        note=data.get("note"),
        tags=tuple(data.get("tags") or ()),
        customer_first_name=data.get("customer_first_name"),
        customer_last_name=data.get("customer_last_name"),
        accepts_marketing=data.get("accepts_marketing"),
        shipping_address=Address(**address) if address else None,
        paid=bool(data.get("paid")),
        channel_name=data.get("channel_name") or "vsc marketplace",
        merchant_order_name=data.get("merchant_order_name"),
        created_at=created,
    )


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {k: new[k] for k in new if k != "accepts_marketing" and old.get(k) != new[k]}


def plan_order(
    order: Order,
    link: OrderLink | None,
    *,
    vendor: str,
    merchant: str,
    vlinks: dict[str, VariantLink],
    settings: Settings,
    order_push: bool,
    can_cancel: bool,
    can_update: bool,
) -> list[Action]:
    """Decide what one merchant order means for one vendor. Pure: no I/O."""
    lines = vendor_lines(order, vlinks, vendor)
    if (
        link is None
        and not lines
        and not (order.cancelled_at and vendor_lines(order, vlinks, vendor, include_empty=True))
    ):
        return []
    label = f"order {order.name or order.id}"
    base: dict[str, Any] = {"stream": STREAM, "vendor": vendor, "target": order.id}
    if not order_push:
        if order.test and not settings.push_test_orders:
            return []
        # A cancelled Shopify order keeps its lines with quantity 0: the give-back reverses the sale.
        every_line = vendor_lines(order, vlinks, vendor, include_empty=True)
        return plan_stock_moves(order, link, every_line, vendor=vendor, base=base, label=label)
    marker = link.marker if link else marker_for(merchant, order)
    key = link.key if link else f"push:{order.id}:{vendor}"
    ok, why = qualifies(order, settings)
    actions: list[Action] = []
    if link is None or link.state in ("waiting", "pending", "failed"):
        if order.cancelled_at:
            if link is not None and link.state == "pending":
                # The push may have reached the vendor before the crash: look, then cancel there.
                actions.append(
                    Action(
                        kind="cancel",
                        store=vendor,
                        key=f"cancel:{order.id}:{vendor}",
                        detail={"link_id": link.id, "lookup": True, "marker": marker},
                        summary=f"{label} was cancelled before its push was confirmed: "
                        "cancel it at the vendor if it got there",
                        **base,
                    )
                )
            elif link is not None:
                actions.append(
                    Action(
                        kind="forget",
                        store=vendor,
                        write=False,
                        detail={"link_id": link.id, "state": "cancelled"},
                        summary=f"{label} was cancelled before it was pushed",
                        **base,
                    )
                )
            return actions
        if not ok:
            if link is None:
                actions.append(
                    Action(
                        kind="wait",
                        store=vendor,
                        write=False,
                        detail={"lines": lines, "marker": marker, "key": key, "name": order.name, "why": why},
                        summary=f"{label} is not pushed yet: {why}",
                        **base,
                    )
                )
            return actions
        missing = unlinked_lines(order, vlinks)
        actions.append(
            Action(
                kind="push",
                store=vendor,
                key=key,
                detail={
                    "link_id": link.id if link else None,
                    # pending: an earlier attempt's outcome is unknown (crash, lost response)
                    "lookup": link is not None and link.state == "pending",
                    "lines": lines,
                    "draft": draft_for(order, lines, marker, settings, channel=merchant[:30]),
                    "attributes": attributes(order, settings),
                    "name": order.name,
                    "unlinked": missing,
                },
                summary=f"push {label} to {vendor}: "
                + ", ".join(f"{x['quantity']}× {x['sku'] or x['vendor_variant_id']}" for x in lines)
                + (f" (not linked, not pushed: {', '.join(missing)})" if missing else ""),
                **base,
            )
        )
        return actions
    if link.state in ("cancelled", "vendor_cancelled", "skipped"):
        return []
    if link.state == "cancel_requested":
        return []  # watched by `watch_vendor_orders`
    # pushed: follow cancellations and attribute edits; report line changes.
    if order.cancelled_at:
        if can_cancel:
            actions.append(
                Action(
                    kind="cancel",
                    store=vendor,
                    key=f"cancel:{order.id}:{vendor}",
                    detail={
                        "link_id": link.id,
                        "vendor_order_id": link.vendor_order_id,
                        "lookup": False,
                        "marker": marker,
                    },
                    summary=f"{label} was cancelled: cancel vendor order "
                    f"{link.vendor_order_name or link.vendor_order_id} and restock",
                    **base,
                )
            )
        else:
            actions.append(
                Action(
                    kind="cancel_request",
                    store=vendor,
                    write=False,
                    key=f"cancel:{order.id}:{vendor}",
                    detail={"link_id": link.id, "vendor_order_id": link.vendor_order_id},
                    summary=f"{label} was cancelled; {vendor}'s platform has no cancel API: the vendor "
                    f"is asked by e-mail to cancel {link.vendor_order_name or link.vendor_order_id}",
                    **base,
                )
            )
        return actions
    now = attributes(order, settings)
    changes = _diff(link.fingerprint.get("attributes") or {}, now)
    if changes:
        detail = {
            "link_id": link.id,
            "vendor_order_id": link.vendor_order_id,
            "changes": changes,
            "attributes": now,
            "marker": marker,
        }
        if can_update:
            actions.append(
                Action(
                    kind="update_order",
                    store=vendor,
                    detail=detail,
                    summary=f"{label}: {', '.join(sorted(changes))} changed; update vendor order "
                    f"{link.vendor_order_name or link.vendor_order_id}",
                    **base,
                )
            )
        else:
            actions.append(
                Action(
                    kind="edit_request",
                    store=vendor,
                    write=False,
                    detail=detail,
                    summary=f"{label}: {', '.join(sorted(changes))} changed; {vendor}'s platform "
                    "cannot edit orders: the vendor is asked by e-mail",
                    **base,
                )
            )
    last_marketing = (link.fingerprint.get("attributes") or {}).get("accepts_marketing")
    if now["accepts_marketing"] != last_marketing and last_marketing is not None:
        actions.append(
            Action(
                kind="notice",
                store=vendor,
                write=False,
                detail={"link_id": link.id, "accepts_marketing": now["accepts_marketing"]},
                summary=f"{label}: buyer accepts marketing is now {now['accepts_marketing']}; an "
                "existing order cannot change it on the vendor's platform (recorded only)",
                **base,
            )
        )
    pushed_qty = {x["merchant_line_id"]: x["quantity"] for x in link.lines}
    now_qty = {x["merchant_line_id"]: x["quantity"] for x in lines}
    signature = sorted(now_qty.items())
    if now_qty != pushed_qty and link.fingerprint.get("lines_reported") != [list(s) for s in signature]:
        actions.append(
            Action(
                kind="lines_changed",
                store=vendor,
                write=False,
                detail={
                    "link_id": link.id,
                    "signature": [list(s) for s in signature],
                    "pushed": pushed_qty,
                    "now": now_qty,
                },
                summary=f"{label}: its line items changed after the push; vsc never changes pushed "
                "line items, so the vendor order keeps the original ones",
                **base,
            )
        )
    return actions


def plan_stock_moves(
    order: Order, link: OrderLink | None, lines: list[dict[str, Any]], *, vendor: str, base: dict[str, Any], label: str
) -> list[Action]:
    """Order push off: each sale lowers the vendor's stock once; a cancellation (restocked) gives
    back exactly what its sale took (the apply step reads the sale's own move)."""
    actions = []
    for line in lines:
        what = line["sku"] or line["vendor_variant_id"]
        ids = {"product_id": line["vendor_product_id"], "variant_id": line["vendor_variant_id"]}
        sale = f"move:{order.id}:{line['merchant_line_id']}:sale"
        if line["quantity"] > 0 and not order.cancelled_at:
            actions.append(
                Action(
                    kind="stock_move",
                    store=vendor,
                    key=sale,
                    detail={
                        "move": sale,
                        **ids,
                        "delta": -line["quantity"],
                        "merchant_variant_id": line["merchant_variant_id"],
                    },
                    summary=f"{label}: {line['quantity']}x {what} sold on the merchant: lower {vendor}'s stock",
                    **base,
                )
            )
        if order.cancelled_at:
            back = f"move:{order.id}:{line['merchant_line_id']}:cancel"
            actions.append(
                Action(
                    kind="stock_move",
                    store=vendor,
                    key=back,
                    detail={
                        "move": back,
                        "after": sale,
                        **ids,
                        "delta": None,
                        "merchant_variant_id": line["merchant_variant_id"],
                    },
                    summary=f"{label} was cancelled: give {what} back to {vendor}'s stock",
                    **base,
                )
            )
    return actions


# -- reading and applying ------------------------------------------------------------------


def merchant_orders(ctx: Any, since: datetime) -> dict[str, Order]:
    """The merchant's orders changed since `since`, read once per pass for all vendors."""
    key = "merchant-orders"

    def load(since: datetime = since) -> tuple[datetime, dict[str, Order]]:
        return since, {o.id: o for o in ctx.merchant().list_orders(since)}

    cached = ctx.once(key, load)
    if cached[0] <= since:
        return dict(cached[1])
    ctx.cache[key] = load()
    return dict(ctx.cache[key][1])


def _since(ctx: Any, vendor: str) -> datetime | None:
    """Where this vendor's orders reads start: its cursor (or its first link) minus the overlap."""
    old = ctx.state.cursor(vendor, STREAM) or ctx.state.first_link_time(vendor)
    return old - timedelta(seconds=ctx.settings.overlap_seconds) if old else None


def prefetch(ctx: Any, vendors: Sequence[str]) -> dict[str, Any]:
    """The reads of this stream, to run at the same time: the merchant's orders changed since
    the earliest vendor cursor (one read for all vendors), and the orders of each vendor that
    has pushed orders to watch."""
    jobs: dict[str, Any] = {}
    sinces = []
    for vendor in vendors:
        since = _since(ctx, vendor)
        if since is None:
            continue
        sinces.append(since)
        if ctx.settings.vendor(vendor).order_push and ctx.state.has_order_links(vendor, WATCHED):
            connector = ctx.connector(vendor)
            jobs[f"vendor-orders:{vendor}"] = lambda c=connector, s=since: list(c.list_orders(s))
    if sinces:
        since = min(sinces)
        merchant = ctx.merchant()
        jobs["merchant-orders"] = lambda: (since, {o.id: o for o in merchant.list_orders(since)})
    return jobs


def account_merchant_stock(state: Any, lines: Sequence[dict[str, Any]], sign: int) -> None:
    """Keep vsc's idea of the merchant's quantities in step with the orders it has seen: a
    checkout took the units (sign -1), a restocking cancellation gave them back (+1). The
    inventory stream's compare-and-set then fails only on sales vsc has not seen yet."""
    for line in lines:
        link = state.variant_link_by_merchant_variant(line.get("merchant_variant_id") or "")
        if link is not None and link.merchant_available is not None:
            state.update_variant_link(
                link.id, merchant_available=max(0, link.merchant_available + sign * int(line["quantity"]))
            )


def apply_action(ctx: Any, action: Action) -> None:
    """Carry out one orders action; state changes commit with the journal entry."""
    state = ctx.state
    d = action.detail
    vendor = action.vendor
    if action.kind == "wait":
        state.add_order_link(
            vendor=vendor,
            merchant_order_id=action.target,
            merchant_order_name=d["name"],
            key=d["key"],
            marker=d["marker"],
            state="waiting",
            lines=d["lines"],
            note=d["why"],
        )
        account_merchant_stock(state, d["lines"], -1)
        return
    if action.kind == "forget":
        link = state.order_link_by_id(d["link_id"])
        if d["state"] == "cancelled" and link.state in UNAPPLIED:
            account_merchant_stock(state, link.lines, +1)  # cancelled on the merchant before the push
        state.update_order_link(d["link_id"], state=d["state"])
        return
    if action.kind == "cancel":
        link = state.order_link_by_id(d["link_id"])
        connector = ctx.connector(vendor)
        vendor_order_id = link.vendor_order_id
        if d.get("lookup") and not vendor_order_id:
            found = connector.find_order(link.marker)
            vendor_order_id = found.id if found else None
        if vendor_order_id:
            connector.cancel_order(vendor_order_id, restock=True)
        state.update_order_link(link.id, state="cancelled", vendor_order_id=vendor_order_id)
        account_merchant_stock(state, link.lines, +1)
        return
    if action.kind == "cancel_request":
        link = state.order_link_by_id(d["link_id"])
        queued = notify.queue(
            state,
            ctx.settings,
            vendor,
            notify.cancellation_request(
                vendor,
                platform=ctx.state.store(vendor).platform,
                merchant_order_id=link.merchant_order_id,
                merchant_order_name=link.merchant_order_name,
                vendor_order_id=link.vendor_order_id or "",
                vendor_order_name=link.vendor_order_name,
                restock=True,
                lines=link.lines,
            ),
        )
        problem = queued.problem
        state.update_order_link(link.id, state="cancel_requested", note=problem)
        action.result = {"mail": problem or "queued"}
        return
    if action.kind == "update_order":
        link = state.order_link_by_id(d["link_id"])
        changes = dict(d["changes"])
        if "tags" in changes:
            changes["tags"] = [*changes["tags"], link.marker]
        if "shipping_address" in changes and changes["shipping_address"]:
            changes["shipping_address"] = Address(**changes["shipping_address"])
        if "metafields" in changes:
            changes["metafields"] = [tuple(m) for m in changes["metafields"]]
        ctx.connector(vendor).update_order(link.vendor_order_id, changes)
        state.update_order_link(link.id, fingerprint={**link.fingerprint, "attributes": d["attributes"]})
        return
    if action.kind == "edit_request":
        link = state.order_link_by_id(d["link_id"])
        old = link.fingerprint.get("attributes") or {}
        queued = notify.queue(
            state,
            ctx.settings,
            vendor,
            notify.edit_request(
                vendor,
                platform=ctx.state.store(vendor).platform,
                merchant_order_id=link.merchant_order_id,
                merchant_order_name=link.merchant_order_name,
                vendor_order_id=link.vendor_order_id or "",
                vendor_order_name=link.vendor_order_name,
                differences={k: (old.get(k), v) for k, v in d["changes"].items()},
            ),
        )
        problem = queued.problem
        state.update_order_link(link.id, fingerprint={**link.fingerprint, "attributes": d["attributes"]}, note=problem)
        return
    if action.kind == "notice":
        link = state.order_link_by_id(d["link_id"])
        attrs = {**(link.fingerprint.get("attributes") or {}), "accepts_marketing": d["accepts_marketing"]}
        state.update_order_link(link.id, fingerprint={**link.fingerprint, "attributes": attrs})
        return
    if action.kind == "stock_applied":
        link = state.order_link_by_id(d["link_id"])
        state.update_order_link(link.id, fingerprint={**link.fingerprint, "stock_pending": False})
        return
    if action.kind == "lines_changed":
        link = state.order_link_by_id(d["link_id"])
        state.update_order_link(link.id, fingerprint={**link.fingerprint, "lines_reported": d["signature"]})
        return
    if action.kind == "stock_move":
        apply_stock_move(ctx, action)
        return
    raise ValueError(f"unknown orders action {action.kind}")  # pragma: no cover


def prepare_push(ctx: Any, action: Action) -> None:
    """Record the push as pending (committed) before the vendor call: after a crash or a lost
    response, a pending link means "look for the marker before creating anything"."""
    state = ctx.state
    d = action.detail
    link = state.order_link(action.target, action.vendor)
    stamp = now_utc().isoformat()
    if link is None:
        link = state.add_order_link(
            vendor=action.vendor,
            merchant_order_id=action.target,
            merchant_order_name=d["name"],
            key=action.key,
            marker=d["draft"]["marker"],
            state="pending",
            lines=d["lines"],
            fingerprint={"attempt_at": stamp},
        )
        account_merchant_stock(state, d["lines"], -1)
    elif link.state != "pending":
        state.update_order_link(
            link.id, state="pending", lines=d["lines"], fingerprint={**link.fingerprint, "attempt_at": stamp}
        )
    d["link_id"] = link.id


def push_failed(ctx: Any, action: Action, exc: Exception) -> None:
    """A refusal (the store answered no) leaves nothing behind; anything else may have landed."""
    link_id = action.detail.get("link_id")
    if link_id is None:
        return
    if isinstance(exc, UserErrors) and not isinstance(exc, _Deferred):
        ctx.state.update_order_link(link_id, state="failed", note=str(exc))
    elif isinstance(exc, _Deferred):
        ctx.state.update_order_link(link_id, note=str(exc))


def send_push(connector: Any, action: Action, link: OrderLink, draft: OrderDraft) -> tuple[Order, bool]:
    """The vendor calls of one push: (the vendor order, whether an earlier attempt's order was
    found by its marker instead of created). No database access: it runs on a thread of its
    own, next to the other vendors' pushes (`apply_plans`)."""
    d = action.detail
    found = None
    if d.get("lookup"):
        found = connector.find_order(link.marker)
        if found is None:
            lag = float(getattr(connector, "search_lag_seconds", 0.0) or 0.0)
            since = parse_iso(link.fingerprint.get("attempt_at"))
            age = (now_utc() - since).total_seconds() if since else lag
            if lag and age < lag:
                raise _Deferred(
                    f"{action.vendor}: the earlier push of {d['name']} may still be indexing in the vendor's "
                    f"search; vsc looks for it again before pushing (until {int(lag - age)} s from now)"
                )
    if found is None and not connector.refuses_oversold_orders:
        check_stock(connector, draft)
    return found or connector.create_order(draft), found is not None


def record_push(ctx: Any, action: Action, draft: OrderDraft, created: Order, recovered: bool) -> None:
    """Record a push the vendor's store answered: the link pushed, the vendor's e-mail queued."""
    state = ctx.state
    d = action.detail
    vendor = action.vendor
    connector = ctx.connector(vendor)
    vendor_lines = list(created.line_items)
    lines = []
    for line in d["lines"]:
        match = next((v for v in vendor_lines if v.variant_id == line["vendor_variant_id"]), None)
        if match is not None:
            vendor_lines.remove(match)
        lines.append({**line, "vendor_line_id": match.id if match else None})
    state.update_order_link(
        d["link_id"],
        state="pushed",
        vendor_order_id=created.id,
        vendor_order_name=created.name,
        lines=lines,
        # An unpaid push that does not take the vendor's stock yet stays counted as pending.
        fingerprint={
            "attributes": d["attributes"],
            "stock_pending": not draft.paid and not connector.reduces_stock_unpaid,
        },
        note=None,
    )
    action.result = {"vendor_order_id": created.id, "recovered": recovered}
    queued = notify.queue(
        state,
        ctx.settings,
        vendor,
        notify.order_pushed(
            vendor,
            draft,
            merchant_order_id=action.target,
            vendor_order_id=created.id,
            vendor_order_name=created.name,
            marketplace=ctx.merchant_row().name,
        ),
    )
    problem = queued.problem
    if problem:
        action.result["mail"] = problem


def check_stock(connector: Any, draft: OrderDraft) -> None:
    """Refuse, as Shopify and Squarespace do, a push the vendor has no stock for (a race between
    two sales for the last units): it becomes a reported conflict, never a silent oversell."""
    levels = connector.read_stock([line.ref for line in draft.lines])
    short = [
        f"{line.sku or line.ref.variant_id}: {levels[line.ref].available} available, {line.quantity} ordered"
        for line in draft.lines
        if line.ref in levels and levels[line.ref].available is not None and levels[line.ref].available < line.quantity
    ]
    if short:
        raise UserErrors(
            f"{connector.name}: not enough stock for the pushed order ({'; '.join(short)})",
            errors=[{"code": "INSUFFICIENT_STOCK", "message": s, "field": None} for s in short],
            store=connector.name,
        )


class _Deferred(UserErrors):
    """Not a failure of the store: the push waits for the vendor's search index."""

    def __init__(self, message: str) -> None:
        super().__init__(message, errors=[{"code": "DEFERRED", "message": message}])


def prepare_stock_move(ctx: Any, action: Action) -> None:
    d = action.detail
    if ctx.state.stock_move(d["move"]) is None:
        sale = ctx.state.stock_move(d["after"]) if d.get("after") else None
        if not d.get("after") or (sale is not None and sale["state"] == "done"):
            line = {
                "merchant_variant_id": d.get("merchant_variant_id"),
                "quantity": abs(d["delta"] if d["delta"] is not None else (sale or {}).get("delta") or 0),
            }
            account_merchant_stock(ctx.state, [line], -1 if not d.get("after") else +1)
        ctx.state.add_stock_move(
            key=d["move"],
            vendor=action.vendor,
            vendor_product_id=d["product_id"],
            vendor_variant_id=d["variant_id"],
            delta=d["delta"] or 0,
        )


def stock_move_failed(ctx: Any, action: Action, exc: Exception) -> None:
    # A refusal moved nothing; anything else may have: the move stays pending, and the next
    # attempt reuses its key (Shopify @idempotent, Squarespace Idempotency-Key replay it).
    if isinstance(exc, UserErrors):
        ctx.state.update_stock_move(action.detail["move"], state="failed", error=str(exc))


def apply_stock_move(ctx: Any, action: Action) -> None:
    state = ctx.state
    d = action.detail
    delta = d["delta"]
    if d.get("after"):
        sale = state.stock_move(d["after"])
        if sale is None or sale["state"] != "done":
            # The sale never lowered the vendor's stock: nothing to give back.
            state.update_stock_move(d["move"], state="done", delta=0, error="nothing to give back")
            return
        delta = -int(sale["delta"])
        state.update_stock_move(d["move"], delta=delta)
    ref = VariantRef(d["product_id"], d["variant_id"])
    ctx.connector(action.vendor).adjust_stock([(ref, delta)], key=d["move"])
    state.update_stock_move(d["move"], state="done", error=None)


#: order links whose vendor orders are watched (a requested cancel done, a vendor's own cancel)
WATCHED = ("pushed", "cancel_requested")


def watch_vendor_orders(vendor: str, links: Sequence[OrderLink], vendor_orders: dict[str, Order]) -> list[Action]:
    """Vendor orders vsc waits on or follows: a cancellation request done, or a vendor cancelling a
    pushed order on its side (a conflict: the merchant order is still open). Pure."""
    actions: list[Action] = []
    for link in links:
        order = vendor_orders.get(link.vendor_order_id or "")
        if order is None:
            continue
        if link.fingerprint.get("stock_pending") and (order.financial_status or "") in ("paid", "partially_paid"):
            actions.append(
                Action(
                    stream=STREAM,
                    kind="stock_applied",
                    store=vendor,
                    vendor=vendor,
                    write=False,
                    target=link.merchant_order_id,
                    detail={"link_id": link.id},
                    summary=f"{vendor} took payment for order {link.vendor_order_name or link.vendor_order_id}: "
                    "its stock is now taken",
                )
            )
        if not (order.cancelled_at or order.fulfillment_status == "cancelled"):
            continue
        name = link.vendor_order_name or link.vendor_order_id
        if link.state == "cancel_requested":
            new_state, summary = "cancelled", f"{vendor} cancelled order {name} as requested"
        elif link.state == "pushed":
            new_state, summary = (
                "vendor_cancelled",
                f"conflict: {vendor} cancelled its order {name} for marketplace order "
                f"{link.merchant_order_name}, which is still open on the merchant store; the "
                "vendor's stock follows its own cancellation",
            )
        else:
            continue
        actions.append(
            Action(
                stream=STREAM,
                kind="forget",
                store=vendor,
                vendor=vendor,
                write=False,
                target=link.merchant_order_id,
                detail={"link_id": link.id, "state": new_state},
                summary=summary,
            )
        )
    return actions


def plan(ctx: Any, vendor: str, dry_run: bool) -> OrdersPlan | None:
    """Read (or take the prefetched reads of) one vendor's orders and plan what they mean."""
    state = ctx.state
    # Orders are followed from the moment the vendor's first product was linked; orders from
    # before that are never pushed.
    since = _since(ctx, vendor)
    if since is None:
        return None
    merchant = ctx.merchant_row().name
    now = ctx.now()
    orders = merchant_orders(ctx, since)
    vs = ctx.settings.vendor(vendor)
    connector = ctx.connector(vendor)
    concerns, linked = _concerns(ctx, orders)
    links = dict(linked.get(vendor, {}))
    mine = concerns.get(vendor, set()) | links.keys()
    open_links = {link.merchant_order_id: link for link in state.order_links(vendor=vendor, states=UNAPPLIED)}
    # Orders still owed a push that did not change lately are read by id (strongly consistent).
    for order_id, link in open_links.items():
        links.setdefault(order_id, link)
        mine.add(order_id)
        if order_id not in orders:
            got = ctx.merchant().get_order(order_id)
            if got is not None:
                orders[order_id] = got
    due = [
        order
        for order in sorted((orders[i] for i in mine if i in orders), key=lambda o: (o.updated_at or now, o.id))
        if not (order.updated_at and order.updated_at < since and order.id not in open_links)
    ]
    vlinks = _ordered_links(ctx, due)
    actions: list[Action] = []
    for order in due:
        actions += plan_order(
            order,
            links.get(order.id),
            vendor=vendor,
            merchant=merchant,
            vlinks=vlinks,
            settings=ctx.settings,
            order_push=vs.order_push,
            can_cancel=connector.can_cancel_orders,
            can_update=connector.can_update_orders,
        )
    if vs.order_push and state.has_order_links(vendor, WATCHED):
        vendor_orders = {
            o.id: o for o in ctx.once(f"vendor-orders:{vendor}", lambda: list(connector.list_orders(since)))
        }
        # Only the links of the vendor orders that changed: a vendor's pushed orders grow for ever.
        watched = state.order_links(vendor=vendor, states=WATCHED, vendor_order_ids=vendor_orders)
        actions += watch_vendor_orders(vendor, watched, vendor_orders)
    # A stock move is made once per (order, line, event): drop those already done.
    actions = [
        a
        for a in actions
        if a.kind != "stock_move" or (state.stock_move(a.detail["move"]) or {}).get("state") != "done"
    ]
    return OrdersPlan(vendor, actions, now)


def apply_plans(ctx: Any, plans: Sequence[OrdersPlan], pass_id: int | None) -> None:
    """Carry out the vendors' orders plans, then move each vendor's cursor if nothing failed.

    Pushes are the slow part (one or more vendor calls each), so they go out in rounds: each
    round takes the next push of every vendor, journals it and records it `pending` on the
    pass's thread, sends them all at the same time (one thread per vendor), and records what the
    stores answered back on the pass's thread. A vendor never has more than one push between
    `pending` and sent, so a crash leaves what it left with one push at a time: at most one
    pending link per vendor, whose marker is looked for next pass.
    The other actions (cancellations, edits, stock moves) are sent in turn, vendor by vendor.
    """
    from vsc.engine import begin, execute, finish

    ctx.cache.pop("orders-concerns", None)  # (order links change from here on)
    queues: dict[str, list[Action]] = {}
    for p in plans:
        for action in p.actions:
            if action.kind == "push":
                queues.setdefault(p.vendor, []).append(action)
            elif action.kind == "stock_move":
                execute(ctx, action, pass_id, apply_action, prepare=prepare_stock_move, on_error=stock_move_failed)
            else:
                execute(ctx, action, pass_id, apply_action)
    for n in range(max((len(q) for q in queues.values()), default=0)):
        ready: dict[str, tuple[Action, int, OrderLink, OrderDraft]] = {}
        # A round's pushes are journaled and marked pending in one transaction, committed before
        # any of them is sent; what the stores answered is recorded in one more (each push's
        # record in a savepoint of its own). A crash in between leaves what one commit per push
        # left: pending links, whose markers the next pass looks for. (~100 commits fewer in a
        # pass of 100 orders.)
        with ctx.state.atomic():
            for vendor, queue in queues.items():
                if n < len(queue):
                    action = queue[n]
                    entry = begin(ctx, action, pass_id, prepare=prepare_push, on_error=push_failed)
                    if entry is not None:
                        link = ctx.state.order_link_by_id(action.detail["link_id"])
                        ready[vendor] = (action, entry, link, draft_from_json(action.detail["draft"], action.key))
        answers = ctx.together(
            {
                vendor: functools.partial(send_push, ctx.connector(vendor), action, link, draft)
                for vendor, (action, _, link, draft) in ready.items()
            }
        )
        with ctx.state.atomic():
            for vendor, (action, entry, _, draft) in ready.items():
                record = functools.partial(_record, draft=draft, answer=answers[vendor])
                finish(ctx, action, entry, record, on_error=push_failed)
    for p in plans:  # (written together with the pass's other cursors: State.pass_cursors)
        if not any(a.status == "failed" for a in p.actions):
            ctx.state.set_cursor(p.vendor, STREAM, p.now)


def _record(ctx: Any, action: Action, *, draft: OrderDraft, answer: Any) -> None:
    """Record the answer `send_push` brought back from its thread; a failed send is raised here,
    so `finish` journals it as this push's failure."""
    if isinstance(answer, Failed):
        raise answer.error
    record_push(ctx, action, draft, *answer)


def _concerns(ctx: Any, orders: dict[str, Order]) -> tuple[dict[str, set[str]], dict[str, dict[str, OrderLink]]]:
    """Per vendor, the ids of the window's merchant orders that hold its linked variants, and its
    order links of the window's orders; worked out once for the planning of all vendors.

    Every vendor's plan looks at the same window of merchant orders, and nearly all of them are
    other vendors' (200 vendors x 100 orders: 20,000 plans, ~20 of them not empty). An order a
    vendor has a link for stays its own even when none of its lines maps to it any more (a
    variant unlinked since the push: a cancellation must still follow). Nothing writes order
    links while the vendors' plans are made; `apply_plans` forgets this before writing."""
    ids = frozenset(orders)
    cached = ctx.cache.get("orders-concerns")
    if cached is not None and cached[0] == ids:
        return cached[1], cached[2]
    vlinks = _ordered_links(ctx, orders.values())
    concerns: dict[str, set[str]] = {}
    for order in orders.values():
        for line in order.line_items:
            link = vlinks.get(line.variant_id or "")
            if link is not None:
                concerns.setdefault(link.vendor, set()).add(order.id)
    linked = ctx.state.order_links_by_vendor(ids)
    ctx.cache["orders-concerns"] = (ids, concerns, linked)
    return concerns, linked


def _ordered_links(ctx: Any, orders: Any) -> dict[str, VariantLink]:
    """The links of the merchant variants these orders hold, of every vendor (orders mix vendors'
    lines). Each variant is looked up once per pass, not the whole catalog on every pass."""
    known: dict[str, VariantLink | None] = ctx.cache.setdefault("orders-variant-links", {})
    ids = {line.variant_id for order in orders for line in order.line_items if line.variant_id}
    missing = ids - set(known)
    if missing:
        found = {v.merchant_variant_id: v for v in ctx.state.variant_links_where("merchant_variant_id", missing)}
        known.update({i: found.get(i) for i in missing})
    return {i: v for i in ids if (v := known.get(i)) is not None}


def unapplied_quantities(state: Any, vendor: str) -> dict[str, int]:
    """Per vendor variant id, the quantity of merchant orders not yet applied to the vendor's stock."""
    out: dict[str, int] = {}
    links = state.order_links(vendor=vendor, states=UNAPPLIED)
    links += state.order_links(vendor=vendor, states=("pushed",), stock_pending=True)
    for link in links:
        for line in link.lines:
            out[line["vendor_variant_id"]] = out.get(line["vendor_variant_id"], 0) + int(line["quantity"])
    for move in state.stock_moves(vendor=vendor):
        if move["delta"] < 0:
            out[move["vendor_variant_id"]] = out.get(move["vendor_variant_id"], 0) - int(move["delta"])
    return out


__all__ = ["plan", "apply_plans", "plan_order", "unapplied_quantities", "Unsupported"]
