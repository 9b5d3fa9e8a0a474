"""The tracking stream: vendors' shipments → fulfillments with tracking on the merchant's orders.

For every order vsc pushed into a vendor's store (an `order_link` in state
`pushed`), the vendor's fulfillments are read and each one becomes one
fulfillment on the merchant's order, on that vendor's lines only, with its
tracking number, company and URL. Partial shipments and several shipments each
become their own merchant fulfillment; a shipment that does not say which
lines it holds (WooCommerce tracking items, Squarespace shipments) covers the
vendor's lines that are still unfulfilled. Later tracking edits follow with
`update_tracking`; fingerprints of what was last applied make echoes and
repeated passes no-ops.

Exactly once: before the merchant is asked to create a fulfillment, a
`fulfillment_link` (order link, vendor fulfillment id) is committed in state
`pending` with the lines it will fulfil, and the write is journaled under
`fulfil:{merchant order}:{vendor}:{vendor fulfillment}`. If the answer is lost
(a crash, a cut connection), the next pass finds the link still pending and
first looks at the merchant order's fulfillments for one that matches (tracking
number, lines) and no other link claims; only when there is none does it
create one.

A shipment of an order the merchant cancelled (link `cancelled` or
`cancel_requested`) is a conflict: it is reported (an action with
write=False), never copied, and the vendor is e-mailed once.

Planning (`plan`) is pure and tested with tables of cases; `run` reads,
plans and applies through the journal like every stream.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from vsc import notify
from vsc.config import Settings
from vsc.connectors.base import Fulfillment, LineItem, TrackingInfo
from vsc.engine.actions import Action, digest
from vsc.errors import Unsupported, UserErrors, VscError
from vsc.state import FulfillmentLink, OrderLink, iso, now_utc

STREAM = "tracking"
# Order links whose vendor orders are read for shipments: pushed ones are copied, the
# cancelled ones only watched for conflicts.
COPY_STATES = ("pushed",)
CANCELLED_STATES = ("cancelled", "cancel_requested")
READ_STATES = COPY_STATES + CANCELLED_STATES
# Vendor fulfillment statuses that mean nothing was (or is any longer) shipped.
DEAD_STATUSES = ("cancelled", "canceled", "error", "failure")
# Fulfillment link states after which nothing more is planned for that vendor fulfillment.
TERMINAL_STATES = ("conflict", "skipped", "unfulfillable", "vendor_cancelled")
# Without a changed-orders feed, fully shipped orders are still read this long for tracking edits.
EDIT_WINDOW = timedelta(days=14)


# -- fingerprints and line mapping -------------------------------------------------------------


def tracking_values(f: Fulfillment) -> list[list[str | None]]:
    """The tracking of a fulfillment as stored in a fingerprint."""
    return [[t.number, t.company, t.url] for t in f.tracking]


def first_tracking(values: Sequence[Sequence[str | None]]) -> dict[str, str | None] | None:
    """The tracking vsc copies: the first entry with anything in it (Shopify's single
    `trackingInfo` input on create and update)."""
    for number, company, url in values:
        if number or company or url:
            return {"number": number, "company": company, "url": url}
    return None


def tracking_info(data: Mapping[str, Any] | None) -> TrackingInfo | None:
    if not data:
        return None
    return TrackingInfo(number=data.get("number"), company=data.get("company"), url=data.get("url"))


def allocated(links: Iterable[FulfillmentLink]) -> dict[str, int]:
    """Quantities per merchant line already fulfilled (or being fulfilled) by vsc."""
    used: dict[str, int] = {}
    for link in links:
        if link.state in ("done", "pending"):
            for line_id, qty in link.fingerprint.get("lines") or ():
                used[line_id] = used.get(line_id, 0) + int(qty)
    return used


def _candidates(
    order_link: OrderLink, vendor_line: str, vendor_lines: Mapping[str, LineItem] | None
) -> list[dict[str, Any]]:
    """The order link's lines a vendor fulfillment line (a vendor line item id, or a variant id)
    stands for: by vendor line id, then variant id, then through the vendor order's line
    (its variant, then its SKU)."""
    lines = order_link.lines
    found = [x for x in lines if x.get("vendor_line_id") and str(x["vendor_line_id"]) == vendor_line]
    if found:
        return found
    found = [x for x in lines if str(x.get("vendor_variant_id") or "") == vendor_line]
    if found:
        return found
    item = (vendor_lines or {}).get(vendor_line)
    if item is None:
        return []
    if item.variant_id:
        found = [x for x in lines if str(x.get("vendor_variant_id") or "") == item.variant_id]
        if found:
            return found
    if item.sku:
        return [x for x in lines if x.get("sku") and x["sku"] == item.sku]
    return []


def map_lines(
    order_link: OrderLink,
    fulfillment: Fulfillment,
    used: Mapping[str, int],
    vendor_lines: Mapping[str, LineItem] | None = None,
) -> tuple[list[list[Any]], list[list[Any]]]:
    """The merchant lines a vendor fulfillment ships: ([[merchant line id, quantity]],
    [[unmapped vendor line, quantity]]), capped at what is not yet fulfilled.

    A fulfillment without lines covers every line of this vendor still unfulfilled."""
    left = {
        x["merchant_line_id"]: int(x.get("quantity") or 0) - used.get(x["merchant_line_id"], 0)
        for x in order_link.lines
    }
    out: dict[str, int] = {}
    unmapped: list[list[Any]] = []
    if not fulfillment.lines:
        for x in order_link.lines:
            mid = x["merchant_line_id"]
            if left[mid] > 0:
                out[mid] = out.get(mid, 0) + left[mid]
                left[mid] = 0
    for vendor_line, qty in fulfillment.lines:
        need = int(qty)
        for x in _candidates(order_link, str(vendor_line), vendor_lines):
            mid = x["merchant_line_id"]
            take = min(need, max(0, left[mid]))
            if take:
                out[mid] = out.get(mid, 0) + take
                left[mid] -= take
                need -= take
        if need > 0 and not _candidates(order_link, str(vendor_line), vendor_lines):
            unmapped.append([str(vendor_line), need])
    return [[mid, qty] for mid, qty in out.items()], unmapped


def needs_vendor_lines(order_link: OrderLink, fulfillments: Iterable[Fulfillment]) -> bool:
    """Whether some fulfillment line cannot be mapped without the vendor order's lines."""
    for f in fulfillments:
        for vendor_line, _ in f.lines:
            if not _candidates(order_link, str(vendor_line), None):
                return True
    return False


def is_complete(order_link: OrderLink, links: Iterable[FulfillmentLink]) -> bool:
    """Every line of this vendor is fulfilled on the merchant order by vsc."""
    used = allocated(links)
    return all(used.get(x["merchant_line_id"], 0) >= int(x.get("quantity") or 0) for x in order_link.lines)


# -- planning ----------------------------------------------------------------------------------


def _order_label(link: OrderLink) -> str:
    return link.merchant_order_name or link.merchant_order_id


def _ship_label(f: Fulfillment) -> str:
    t = first_tracking(tracking_values(f))
    if t and t.get("number"):
        return f"shipment {t['number']}" + (f" ({t['company']})" if t.get("company") else "")
    return f"shipment {f.id}"


def fulfil_key(order_link: OrderLink, vendor_fulfillment_id: str) -> str:
    return f"fulfil:{order_link.merchant_order_id}:{order_link.vendor}:{vendor_fulfillment_id}"


def plan(
    order_link: OrderLink,
    vendor_fulfillments: Sequence[Fulfillment],
    fulfillment_links: Sequence[FulfillmentLink],
    settings: Settings,
    *,
    merchant: str = "merchant",
    vendor_lines: Mapping[str, LineItem] | None = None,
) -> list[Action]:
    """Plan the tracking actions for one pushed (or cancelled) order. Pure: no I/O.

    `vendor_fulfillments` is everything the vendor store lists for the order now,
    `fulfillment_links` what vsc recorded for it, and `vendor_lines` (optional) the
    vendor order's lines by id, for fulfillment lines the link cannot map by itself.

    Kinds: `fulfil` (create a merchant fulfillment, or resolve a pending one),
    `update_tracking`, and findings with write=False: `conflict` (shipped after the
    merchant cancelled), `not_copied` (nothing of it left to fulfil, or lines vsc cannot
    map), `vendor_cancelled` (the vendor cancelled a shipment vsc had copied).
    """
    vendor = order_link.vendor
    notify_customer = bool(getattr(settings, "tracking_notify_customer", False))
    base: dict[str, Any] = {"stream": STREAM, "store": merchant, "vendor": vendor, "link_id": order_link.id}
    by_vendor_id = {link.vendor_fulfillment_id: link for link in fulfillment_links}
    used = allocated(fulfillment_links)
    cancelled = order_link.state in CANCELLED_STATES
    label = _order_label(order_link)
    present = {f.id for f in vendor_fulfillments}
    # A copied shipment the vendor store no longer lists was replaced (WooCommerce tracking
    # items are edited by deleting and adding one): its merchant fulfillment takes the new one.
    vanished = [
        link
        for link in fulfillment_links
        if link.state == "done" and link.merchant_fulfillment_id and link.vendor_fulfillment_id not in present
    ]
    # Oldest first; the store's own order breaks ties (WooCommerce ship dates are whole days).
    ordered = [
        f
        for _, f in sorted(
            enumerate(vendor_fulfillments),
            key=lambda p: (p[1].created_at is None, p[1].created_at or datetime.min.replace(tzinfo=UTC), p[0]),
        )
    ]
    actions: list[Action] = []
    for f in ordered:
        link = by_vendor_id.get(f.id)
        tracking = tracking_values(f)
        dead = f.status.lower() in DEAD_STATUSES
        if dead:
            if link is not None and link.state == "done":
                actions.append(
                    Action(
                        kind="vendor_cancelled",
                        target=link.merchant_fulfillment_id or order_link.merchant_order_id,
                        detail={"fulfillment_link_id": link.id, "vendor_fulfillment_id": f.id, "status": f.status},
                        summary=f"{label}: {vendor} cancelled {_ship_label(f)}, which vsc had copied to the "
                        "merchant order; the merchant fulfillment is left as it is",
                        write=False,
                        key=f"vendor_cancelled:{order_link.merchant_order_id}:{vendor}:{f.id}",
                        **base,
                    )
                )
            continue
        if link is not None and link.state in TERMINAL_STATES:
            continue
        if link is not None and link.state == "done":
            if link.merchant_fulfillment_id and tracking != link.fingerprint.get("tracking"):
                info = first_tracking(tracking)
                if info is None or info == first_tracking(link.fingerprint.get("tracking") or []):
                    # Nothing vsc copies changed (e.g. a second number, or tracking removed): record it only.
                    actions.append(_refingerprint(order_link, link, f, base))
                    continue
                actions.append(
                    Action(
                        kind="update_tracking",
                        target=link.merchant_fulfillment_id,
                        detail={
                            "fulfillment_link_id": link.id,
                            "merchant_order_id": order_link.merchant_order_id,
                            "vendor_fulfillment_id": f.id,
                            "tracking": info,
                            "fingerprint": {**link.fingerprint, "tracking": tracking},
                            "notify_customer": notify_customer,
                        },
                        summary=f"{label}: {vendor} changed the tracking of {_ship_label(f)}",
                        key=f"tracking:{link.merchant_fulfillment_id}:{digest(tracking)}",
                        **base,
                    )
                )
            continue
        if link is not None and link.state == "pending":
            # A create whose answer was lost (or that failed): resolve it before anything else.
            lines = [list(x) for x in link.fingerprint.get("lines") or ()]
            actions.append(
                _fulfil(order_link, f, lines, [], tracking, notify_customer, base, recover=True, create=not cancelled)
            )
            continue
        if cancelled:
            actions.append(
                Action(
                    kind="conflict",
                    target=order_link.merchant_order_id,
                    detail={
                        "vendor_fulfillment_id": f.id,
                        "vendor_order_id": order_link.vendor_order_id,
                        "order_state": order_link.state,
                        "tracking": first_tracking(tracking),
                        "fingerprint": {"tracking": tracking, "lines": []},
                    },
                    summary=f"{label}: {vendor} shipped its order "
                    f"{order_link.vendor_order_name or order_link.vendor_order_id} ({_ship_label(f)}) "
                    "although the merchant cancelled it; not copied",
                    write=False,
                    key=f"conflict:{fulfil_key(order_link, f.id)}",
                    **base,
                )
            )
            continue
        lines, unmapped = map_lines(order_link, f, used, vendor_lines)
        if not lines:
            if not f.lines and vanished:
                old = vanished.pop(0)
                info = first_tracking(tracking)
                actions.append(
                    Action(
                        kind="update_tracking",
                        target=old.merchant_fulfillment_id or "",
                        detail={
                            "fulfillment_link_id": old.id,
                            "merchant_order_id": order_link.merchant_order_id,
                            "vendor_fulfillment_id": f.id,
                            "replaces": old.vendor_fulfillment_id,
                            "tracking": info,
                            "fingerprint": {**old.fingerprint, "tracking": tracking},
                            "notify_customer": notify_customer,
                            "send": info is not None and info != first_tracking(old.fingerprint.get("tracking") or []),
                        },
                        summary=f"{label}: {vendor} replaced the tracking of a shipment by {_ship_label(f)}",
                        key=f"tracking:{old.merchant_fulfillment_id}:{digest(tracking)}",
                        **base,
                    )
                )
                continue
            why = (
                f"its lines ({', '.join(f'{q}× {v}' for v, q in unmapped)}) are not lines vsc pushed"
                if unmapped
                else "every line of this vendor is already fulfilled on the merchant order"
            )
            actions.append(
                Action(
                    kind="not_copied",
                    target=order_link.merchant_order_id,
                    detail={
                        "vendor_fulfillment_id": f.id,
                        "unmapped": unmapped,
                        "tracking": first_tracking(tracking),
                        "fingerprint": {"tracking": tracking, "lines": []},
                    },
                    summary=f"{label}: {vendor}'s {_ship_label(f)} was not copied: {why}",
                    write=False,
                    key=f"not_copied:{fulfil_key(order_link, f.id)}",
                    **base,
                )
            )
            continue
        for mid, qty in lines:
            used[mid] = used.get(mid, 0) + qty
        actions.append(_fulfil(order_link, f, lines, unmapped, tracking, notify_customer, base))
    return actions


def _fulfil(
    order_link: OrderLink,
    f: Fulfillment,
    lines: list[list[Any]],
    unmapped: list[list[Any]],
    tracking: list[list[str | None]],
    notify_customer: bool,
    base: dict[str, Any],
    *,
    recover: bool = False,
    create: bool = True,
) -> Action:
    count = sum(int(q) for _, q in lines)
    summary = f"{_order_label(order_link)}: copy {order_link.vendor}'s {_ship_label(f)} ({count} item(s))"
    if recover:
        summary += " — resolving an earlier attempt first"
    if unmapped:
        summary += f"; not vsc's lines: {', '.join(f'{q}× {v}' for v, q in unmapped)}"
    return Action(
        kind="fulfil",
        target=order_link.merchant_order_id,
        detail={
            "merchant_order_id": order_link.merchant_order_id,
            "vendor_order_id": order_link.vendor_order_id,
            "vendor_fulfillment_id": f.id,
            "lines": lines,
            "unmapped": unmapped,
            "tracking": first_tracking(tracking),
            "fingerprint": {"tracking": tracking, "lines": lines, "whole": not f.lines},
            "notify_customer": notify_customer,
            "recover": recover,
            "create": create,
        },
        summary=summary,
        key=fulfil_key(order_link, f.id),
        **base,
    )


def _refingerprint(order_link: OrderLink, link: FulfillmentLink, f: Fulfillment, base: dict[str, Any]) -> Action:
    return Action(
        kind="tracking_noted",
        target=link.merchant_fulfillment_id or order_link.merchant_order_id,
        detail={"fulfillment_link_id": link.id, "fingerprint": {**link.fingerprint, "tracking": tracking_values(f)}},
        summary=f"{_order_label(order_link)}: {order_link.vendor} changed {_ship_label(f)} in a way the merchant "
        "order does not show (only its first tracking number is copied)",
        write=False,
        key=f"noted:{link.id}:{digest(tracking_values(f))}",
        **base,
    )


# -- applying ----------------------------------------------------------------------------------


def _link(state: Any, order_link_id: int, vendor_fulfillment_id: str) -> FulfillmentLink | None:
    return next(
        (x for x in state.fulfillment_links(order_link_id) if x.vendor_fulfillment_id == vendor_fulfillment_id),
        None,
    )


def prepare(state: Any, order_link: OrderLink, action: Action) -> None:
    """Commit the pending fulfillment link of a `fulfil` action before the merchant is called
    (outside the action's transaction, so it survives a crash or a failed call)."""
    d = action.detail
    if action.kind != "fulfil" or d.get("recover"):
        return
    if _link(state, order_link.id, d["vendor_fulfillment_id"]) is None:
        state.add_fulfillment_link(
            order_link,
            vendor_fulfillment_id=d["vendor_fulfillment_id"],
            merchant_fulfillment_id=None,
            state="pending",
            fingerprint={**d["fingerprint"], "attempt_at": iso(now_utc())},
        )


def claimed_merchant_fulfillments(state: Any, merchant_order_id: str) -> set[str]:
    """Merchant fulfillment ids some fulfillment link (of any vendor) already stands for."""
    out: set[str] = set()
    for olink in state.order_links(merchant_order_id=merchant_order_id):
        for flink in state.fulfillment_links(olink.id):
            if flink.merchant_fulfillment_id:
                out.add(flink.merchant_fulfillment_id)
    return out


def find_match(
    merchant_fulfillments: Sequence[Fulfillment],
    lines: Sequence[Sequence[Any]],
    tracking: Mapping[str, Any] | None,
    claimed: set[str],
) -> Fulfillment | None:
    """The merchant fulfillment an earlier, lost create made: not claimed by any link, not
    cancelled, on (a part of) the planned lines, with the planned tracking number. An exact
    match of the lines wins over a partial one (a create ships what remained)."""
    wanted = {str(mid): int(q) for mid, q in lines}
    number = (tracking or {}).get("number")
    best: Fulfillment | None = None
    for f in merchant_fulfillments:
        if f.id in claimed or f.status.lower() in DEAD_STATUSES:
            continue
        have = {lid: q for lid, q in f.lines}
        if not have or not set(have) <= set(wanted):
            continue
        numbers = {t.number for t in f.tracking if t.number}
        if number and number not in numbers:
            continue
        if not number and numbers:
            continue
        if have == wanted:
            return f
        best = best or f
    return best


def apply_action(ctx: Any, action: Action) -> None:
    """Send one tracking action to the merchant (or record one finding) and keep the state.

    Called under `engine.execute`: journaled before, and its state changes commit with the
    journal's result."""
    state = ctx.state
    d = action.detail
    order_link = state.order_link_by_id(action.link_id)
    if action.kind == "fulfil":
        _apply_fulfil(ctx, action, order_link)
    elif action.kind == "update_tracking":
        if d.get("send", True):
            ctx.merchant().update_tracking(
                action.target, tracking_info(d["tracking"]), notify_customer=bool(d.get("notify_customer"))
            )
        else:
            action.write = False
        values: dict[str, Any] = {"fingerprint": d["fingerprint"]}
        if d.get("replaces"):
            values["vendor_fulfillment_id"] = d["vendor_fulfillment_id"]
        state.update_fulfillment_link(d["fulfillment_link_id"], **values)
    elif action.kind == "tracking_noted":
        state.update_fulfillment_link(d["fulfillment_link_id"], fingerprint=d["fingerprint"])
    elif action.kind == "vendor_cancelled":
        state.update_fulfillment_link(d["fulfillment_link_id"], state="vendor_cancelled")
    elif action.kind in ("conflict", "not_copied"):
        _record(state, order_link, d, "conflict" if action.kind == "conflict" else "skipped")
        if action.kind == "conflict":
            action.result = {"mail": _conflict_mail(ctx, order_link, action)}
    else:  # pragma: no cover - the planner makes no other kinds
        raise ValueError(f"unknown tracking action {action.kind}")


def _record(state: Any, order_link: OrderLink, d: Mapping[str, Any], link_state: str) -> None:
    existing = _link(state, order_link.id, d["vendor_fulfillment_id"])
    if existing is None:
        state.add_fulfillment_link(
            order_link,
            vendor_fulfillment_id=d["vendor_fulfillment_id"],
            merchant_fulfillment_id=None,
            state=link_state,
            fingerprint=d.get("fingerprint") or {},
        )
    else:
        state.update_fulfillment_link(existing.id, state=link_state)


def _conflict_mail(ctx: Any, order_link: OrderLink, action: Action) -> str:
    t = action.detail.get("tracking") or {}
    details = (
        [f"Tracking: {' / '.join(v for v in (t.get('number'), t.get('company'), t.get('url')) if v)}"] if t else []
    )
    mail = notify.conflict(
        order_link.vendor,
        key=action.key,
        title=f"You shipped order {order_link.vendor_order_name or order_link.vendor_order_id}, "
        "which the marketplace customer had cancelled",
        details=[
            *details,
            "vsc has not copied this shipment to the marketplace order, because that order is cancelled.",
        ],
        merchant_order_name=order_link.merchant_order_name or order_link.merchant_order_id,
        vendor_order_name=order_link.vendor_order_name or order_link.vendor_order_id,
        advice="Please contact the marketplace about the parcel (to stop it, or to settle payment).",
    )
    queued = notify.queue(ctx.state, ctx.settings, order_link.vendor, mail)
    return "queued" if queued.ok else str(queued.problem)


def _apply_fulfil(ctx: Any, action: Action, order_link: OrderLink) -> None:
    state = ctx.state
    d = action.detail
    link = _link(state, order_link.id, d["vendor_fulfillment_id"])
    if link is None:  # `prepare` was skipped (a caller applying a plan by itself)
        prepare(state, order_link, action)
        link = _link(state, order_link.id, d["vendor_fulfillment_id"])
    assert link is not None
    merchant = ctx.merchant()
    lines = [(str(mid), int(q)) for mid, q in d["lines"]]
    fingerprint = {k: v for k, v in d["fingerprint"].items() if k != "attempt_at"}
    if d.get("recover"):
        found = find_match(
            merchant.list_fulfillments(d["merchant_order_id"]),
            lines,
            d.get("tracking"),
            claimed_merchant_fulfillments(state, d["merchant_order_id"]),
        )
        if found is not None:
            state.update_fulfillment_link(
                link.id,
                state="done",
                merchant_fulfillment_id=found.id,
                fingerprint={**fingerprint, "lines": [[lid, q] for lid, q in found.lines]},
            )
            action.write = False
            action.result = {"merchant_fulfillment_id": found.id, "recovered": True}
            action.summary += f": it was already on the merchant order ({found.id})"
            return
        if not d.get("create", True):
            state.update_fulfillment_link(link.id, state="conflict")
            action.write = False
            action.summary += ": not on the merchant order, and the order is cancelled now; not copied"
            return
    try:
        fulfillment_id = merchant.create_fulfillment(
            d["merchant_order_id"], lines, tracking_info(d.get("tracking")), notify_customer=bool(d["notify_customer"])
        )
    except UserErrors as exc:
        if "NOTHING_TO_FULFILL" not in exc.codes and exc.code != "NOTHING_TO_FULFILL":
            raise
        # The merchant fulfilled or removed these lines by hand: nothing to copy, ever.
        state.update_fulfillment_link(link.id, state="unfulfillable")
        action.write = False
        action.summary += ": nothing of it is left to fulfil on the merchant order; not copied"
        action.result = {"error": str(exc)}
        return
    state.update_fulfillment_link(
        link.id, state="done", merchant_fulfillment_id=fulfillment_id, fingerprint=fingerprint
    )
    action.result = {"merchant_fulfillment_id": fulfillment_id}


# -- reading and running -----------------------------------------------------------------------


def candidate_links(state: Any, vendor: str) -> list[OrderLink]:
    """Every order link of the vendor the stream could read (for stores without a change feed)."""
    return [link for link in state.order_links(vendor=vendor, states=READ_STATES) if link.vendor_order_id]


def select_links(ctx: Any, vendor: str, since: datetime | None) -> tuple[list[OrderLink], dict[str, datetime | None]]:
    """The links whose vendor orders are read this pass, and the vendor orders' update times.

    With a cursor and a platform that lists changed orders, only orders changed since (plus
    links vsc itself changed since, and pending ones), looked up by those ids: a vendor's pushed
    orders grow for ever, and a pass must not load them all. Otherwise every open link, and
    shipped ones for `EDIT_WINDOW` after vsc last touched them."""
    state = ctx.state
    if since is not None:
        try:
            changed = ctx.once(f"tracking-changed:{vendor}", lambda: _changed_orders(ctx.connector(vendor), since))
        except Unsupported:
            changed = None
        if changed is not None:
            # vsc's own changes are dated by its own clock: no overlap window for them, only
            # what changed since this stream last looked (a pushed order is read once here).
            looked = state.cursor(vendor, LOOKED)
            chosen = {
                link.id: link
                for link in state.order_links(vendor=vendor, states=READ_STATES, vendor_order_ids=changed)
                if link.vendor_order_id
            }
            for link in state.touched_order_links(vendor, READ_STATES, looked or since):
                chosen.setdefault(link.id, link)
            return sorted(chosen.values(), key=lambda link: link.id), changed
    recent = {
        link.id for link in state.touched_order_links(vendor, READ_STATES, ctx.clock() - EDIT_WINDOW, shipments=True)
    }
    chosen_links = [
        link
        for link in candidate_links(state, vendor)
        if link.id in recent
        # a requested cancel may be answered by a shipment at any time; a done one only soon after
        or link.state == "cancel_requested"
        or not is_complete(link, state.fulfillment_links(link.id))
    ]
    return chosen_links, {}


#: the cursor of vsc's own changes to order links: when the tracking stream last read them
LOOKED = "tracking-looked"


def _changed_orders(connector: Any, since: datetime) -> dict[str, datetime | None]:
    return {o.id: o.updated_at for o in connector.list_orders(since)}


def _since(ctx: Any, vendor: str) -> datetime | None:
    old = ctx.state.cursor(vendor, STREAM)
    return old - timedelta(seconds=ctx.settings.overlap_seconds) if old else None


def prefetch(ctx: Any, vendors: Sequence[str]) -> dict[str, Any]:
    """The reads of this stream, at the same time for all vendors: first each vendor's orders
    changed since its cursor; then (the jobs returned) the shipments of the orders chosen from
    them, each vendor's read in turn on a thread of its own."""
    watched = [vendor for vendor in vendors if ctx.state.has_order_links(vendor, READ_STATES)]
    changed: dict[str, Any] = {}
    for vendor in watched:
        since = _since(ctx, vendor)
        if since is not None:
            connector = ctx.connector(vendor)
            changed[f"tracking-changed:{vendor}"] = lambda c=connector, s=since: _changed_orders(c, s)
    ctx.prefetch(changed)
    jobs: dict[str, Any] = {}
    for vendor in watched:
        if ctx.failed(f"tracking-changed:{vendor}"):
            continue  # (a failed read is reported where `run` asks for it)
        looked_at = ctx.clock()
        chosen, stamps = select_links(ctx, vendor, _since(ctx, vendor))
        ctx.cache[f"tracking-chosen:{vendor}"] = (chosen, stamps, looked_at)
        jobs[f"tracking-shipments:{vendor}"] = functools.partial(read_shipments, ctx.connector(vendor), chosen)
    return jobs


def read_shipments(connector: Any, links: Sequence[OrderLink]) -> dict[int, Any]:
    """Per link id: (the vendor order's shipments, its lines by id when the shipments need them,
    else None), or the `VscError` its read raised. Network only: runs on a reader thread."""
    out: dict[int, Any] = {}
    for link in links:
        try:
            shipments = connector.list_fulfillments(link.vendor_order_id)
            vendor_lines = None
            if needs_vendor_lines(link, shipments):
                try:
                    order = connector.get_order(link.vendor_order_id)
                except Unsupported:
                    order = None
                vendor_lines = {li.id: li for li in order.line_items} if order else None
            out[link.id] = (shipments, vendor_lines)
        except VscError as exc:
            out[link.id] = exc
    return out


def run(ctx: Any, vendor: str, pass_id: int | None, dry_run: bool) -> list[Action]:
    """One pass of the tracking stream for one vendor."""
    from vsc.engine import catalog, execute

    state = ctx.state
    if not state.has_order_links(vendor, READ_STATES):
        return []
    merchant = ctx.merchant_row().name
    old = state.cursor(vendor, STREAM)
    now = ctx.now()
    # The links chosen and their shipments read by `prefetch`, or chosen and read now.
    chosen_at = ctx.cache.pop(f"tracking-chosen:{vendor}", None)
    if chosen_at is None:
        looked_at = ctx.clock()
        chosen, stamps = select_links(ctx, vendor, _since(ctx, vendor))
    else:
        chosen, stamps, looked_at = chosen_at
    connector = ctx.connector(vendor)
    reads = ctx.once(f"tracking-shipments:{vendor}", lambda: read_shipments(connector, chosen))
    ctx.cache.pop(f"tracking-shipments:{vendor}", None)
    actions: list[Action] = []
    failed_stamps: list[datetime | None] = []
    for link in chosen:
        read = reads[link.id]
        if isinstance(read, VscError):
            failed = Action(
                stream=STREAM,
                kind="read_failed",
                store=vendor,
                target=link.vendor_order_id or "",
                detail={"merchant_order_id": link.merchant_order_id},
                summary=f"{_order_label(link)}: could not read the shipments of {vendor}'s order "
                f"{link.vendor_order_name or link.vendor_order_id}",
                vendor=vendor,
                link_id=link.id,
                write=False,
                status="failed",
                error=str(read),
            )
            actions.append(failed)
            failed_stamps.append(stamps.get(link.vendor_order_id or ""))
            continue
        shipments, vendor_lines = read
        flinks = state.fulfillment_links(link.id)
        planned = plan(link, shipments, flinks, ctx.settings, merchant=merchant, vendor_lines=vendor_lines)
        actions += planned
        if dry_run:
            continue
        for action in planned:
            prepare(state, link, action)
            execute(ctx, action, pass_id, apply_action)
            if action.status == "failed":
                failed_stamps.append(stamps.get(link.vendor_order_id or ""))
    if not dry_run and not (old is None and None in failed_stamps):
        # (A failure on an order whose change time is unknown keeps a first pass from setting a
        # cursor at all: the next pass reads everything again.)
        state.set_cursor(vendor, STREAM, catalog.cursor_after(now, failed_stamps, old))
        if not failed_stamps:
            state.set_cursor(vendor, LOOKED, looked_at)
    return actions
