"""The inventory stream: the vendor's stock is the truth, and nothing oversells.

For every linked variant the merchant's available quantity is

    max(0, vendor_available - pending - buffer)

where `pending` is the quantity of merchant orders for that variant not yet
applied to the vendor's stock (orders waiting to be pushed, pushes not yet
confirmed, direct stock moves not yet made) and `buffer` the `stock_buffer`
setting. Writes to the merchant are compare-and-set (`changeFromQuantity` =
the quantity vsc last saw there) and idempotent (`@idempotent(key:)`), 250 a
call. A write refused as stale means a sale landed in between: vsc re-reads
those items and plans them again in the same pass, holding back what was sold
so the merchant never shows stock the vendor does not have.

Defined behaviour for stock the vendor does not count:

- untracked (WooCommerce `manage_stock: false`, Shopify `tracked: false`) and
  unlimited (Squarespace `isUnlimited`): the merchant's quantity is left as it
  is, or set to `untracked_quantity` when that setting is a number;
- negative vendor stock (backorders) counts as 0.

Reads are incremental: Shopify vendors by inventory levels updated since the
cursor; WooCommerce by products saved and orders changed since the cursor (an
order's stock move saves the product or variation holding the stock, but the
changed orders are what name the variants it moved); Squarespace has no change
feed for inventory, so its linked variants are read by id, 50 a call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vsc.config import Settings, VendorSettings
from vsc.connectors.base import StockLevel, VariantRef
from vsc.engine import brakes
from vsc.engine.actions import Action
from vsc.errors import VscError
from vsc.state import StockRef, VariantLink, iso, parse_iso

STREAM = "inventory"


@dataclass(frozen=True)
class VendorStock:
    """What vsc knows of one vendor variant's stock: `seen` False means never read."""

    seen: bool
    available: int | None


def target_quantity(vendor_available: int | None, pending: int, buffer: int, untracked: int | None) -> int | None:
    """The merchant quantity for a vendor quantity, or None to leave the merchant's as it is."""
    if vendor_available is None:
        return untracked
    return max(0, max(0, vendor_available) - pending - buffer)


def plan(
    vlinks: Sequence[VariantLink],
    stock: dict[str, VendorStock],
    pending: dict[str, int],
    merchant_now: dict[str, int | None],
    *,
    vendor: str,
    merchant: str,
    location: str,
    vs: VendorSettings,
    settings: Settings,
) -> list[Action]:
    """The merchant stock writes for one vendor. Pure: no I/O.

    `merchant_now` holds fresh merchant quantities (None: not stocked at `location`) for the
    items whose merchant quantity vsc does not know; the others use what vsc last saw.
    """
    actions: list[Action] = []
    for link in vlinks:
        if link.state != "active" or not link.merchant_inventory_item_id:
            continue
        known = stock.get(link.vendor_variant_id)
        if known is None or not known.seen:
            continue
        waiting = pending.get(link.vendor_variant_id, 0)
        want = target_quantity(known.available, waiting, vs.stock_buffer, settings.untracked_quantity)
        if want is None:
            continue
        item = link.merchant_inventory_item_id
        fresh = link.merchant_location_id != location or link.merchant_available is None
        current = merchant_now.get(item) if fresh else link.merchant_available
        if not fresh and merchant_now.get(item) is not None:
            # The merchant's quantity changed since vsc last looked. Less than vsc expects: sales
            # it has not seen as orders yet, held back. More: a hand edit, and the vendor rules.
            actual = merchant_now[item]
            assert actual is not None and current is not None
            if actual < current:
                want = max(0, want - (current - actual))
            current = actual
        detail = {
            "item": item,
            "location": location,
            "quantity": want,
            "change_from": current,
            "variant_link_id": link.id,
            "vendor_available": known.available,
            "pending": waiting,
            "buffer": vs.stock_buffer,
            "sku": link.sku,
        }
        if fresh and current is None:
            actions.append(
                Action(
                    stream=STREAM,
                    kind="activate",
                    store=merchant,
                    vendor=vendor,
                    target=item,
                    detail=detail,
                    summary=f"stock {link.sku or link.merchant_variant_id} at the merchant location: {want}",
                    key=f"stock:{item}:activate:{want}",
                )
            )
        elif current != want:
            actions.append(
                Action(
                    stream=STREAM,
                    kind="set_quantity",
                    store=merchant,
                    vendor=vendor,
                    target=item,
                    detail=detail,
                    summary=f"{link.sku or link.merchant_variant_id}: {current} → {want} (vendor {known.available}"
                    + (f", {waiting} pending" if waiting else "")
                    + (f", {vs.stock_buffer} held back" if vs.stock_buffer else "")
                    + ")",
                    key=f"stock:{item}:{want}:{current}",
                )
            )
    return actions


def restale(action: Action, actual: int | None) -> int:
    """Plan a write again after a stale refusal: whatever was sold on the merchant in between
    comes off the target too (the order is not yet counted as pending), so the merchant never
    shows more than the vendor has; the next pass, counting that order, confirms the value."""
    d = action.detail
    sold = max(0, (d["change_from"] or 0) - (actual or 0))
    return max(0, d["quantity"] - sold)


# -- reading and applying ------------------------------------------------------------------


def read_vendor_stock(ctx: Any, vendor: str, refs: Sequence[StockRef], since: Any) -> dict[str, StockLevel]:
    """The vendor's stock by vendor variant id: what changed since `since` on a platform with a
    change feed (linked or not: the plan keeps the linked) plus the variants of `refs` vsc never
    read; without a feed or a cursor, every variant of `refs`."""
    connector = ctx.connector(vendor)
    fresh: dict[str, StockLevel] = {}
    if _has_feed(connector, since):
        fresh = dict(connector.changed_stock(since))
        missing = [
            VariantRef(r.vendor_product_id, r.vendor_variant_id) for r in refs if r.vendor_variant_id not in fresh
        ]
    else:
        missing = [VariantRef(r.vendor_product_id, r.vendor_variant_id) for r in refs]
    if missing:
        for ref, level in connector.read_stock(missing).items():
            fresh[ref.variant_id] = level
    return fresh


def _has_feed(connector: Any, since: Any) -> bool:
    """Whether the vendor's stock changes since a cursor can be listed (Squarespace has no such
    feed: its linked variants are read by id every pass)."""
    return since is not None and getattr(connector, "changed_stock", None) is not None


@dataclass
class StockPlan:
    """One vendor's planned merchant stock writes, waiting to be sent with the other vendors'."""

    vendor: str
    actions: list[Action]
    now: datetime
    #: what was read of the vendor and the merchant, to record on its links before any write
    #: (one transaction for all vendors: a commit each cost a 1 % pass ~0.1 s)
    seen: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class _Inputs:
    """What one vendor's stock pass starts from (read once per pass: the prefetch and the plan
    of one pass see the same)."""

    #: the linked variants to read by id: all of them, or with a change feed those never read
    refs: list[StockRef]
    since: datetime | None
    linked: bool
    #: whether the vendor's stock changes since `since` can be listed (see `_has_feed`)
    feed: bool


def _inputs(ctx: Any, vendor: str) -> _Inputs:
    def load() -> _Inputs:
        old = ctx.state.cursor(vendor, STREAM)
        since = old - timedelta(seconds=ctx.settings.overlap_seconds) if old else None
        feed = _has_feed(ctx.connector(vendor), since)
        refs = ctx.state.stock_refs(vendor, unseen_only=feed)
        return _Inputs(refs, since, bool(refs) or ctx.state.has_stock_links(vendor), feed)

    return ctx.once(f"inventory-inputs:{vendor}", load)  # type: ignore[no-any-return]


def prefetch(ctx: Any, vendors: Sequence[str]) -> dict[str, Callable[[], Any]]:
    """The reads of this stage, to run at the same time: each vendor's stock, and the merchant
    items changed since the earliest of the vendors' cursors (one read for all vendors)."""
    jobs: dict[str, Callable[[], Any]] = {}
    sinces = []
    planned: list[str] = []
    ctx.cache["inventory-vendors"] = planned  # (whose merchant quantities are read together)
    for vendor in vendors:
        got = _inputs(ctx, vendor)
        if not got.linked:
            continue
        jobs[f"inventory-read:{vendor}"] = lambda vendor=vendor, got=got: read_vendor_stock(
            ctx, vendor, got.refs, got.since
        )
        planned.append(vendor)
        if got.since is not None:
            sinces.append(got.since)
    if sinces:
        since = min(sinces)
        ctx.cache["inventory-merchant-since"] = since
        merchant = ctx.merchant()
        jobs["inventory-merchant-changed"] = lambda: merchant.changed_item_ids(since)
    return jobs


def _merchant_changed(ctx: Any, since: datetime) -> dict[str, datetime | None]:
    """Merchant items changed since the earliest vendor cursor of the pass (read once)."""
    shared = ctx.cache.get("inventory-merchant-since")
    if shared is None or shared > since:
        ctx.cache["inventory-merchant-since"] = since
        ctx.cache.pop("inventory-merchant-changed", None)
        shared = since
    return ctx.once("inventory-merchant-changed", lambda: ctx.merchant().changed_item_ids(shared))  # type: ignore[no-any-return]


def _echo(link: VariantLink, changed_at: datetime | None) -> bool:
    """Whether a merchant item listed as changed shows nothing vsc has not already read: its
    `updatedAt` is no later than the one vsc recorded when it last read the quantity back.

    vsc records it only from reads, never from its own writes: Shopify's times are whole seconds,
    so a hand edit in the very second of vsc's write would look like vsc's echo. An item vsc
    wrote is therefore read back once on the next pass (a later second), which sees any such
    edit; after that its echoes cost nothing."""
    if changed_at is None or not link.merchant_stock_at:
        return False
    seen = parse_iso(link.merchant_stock_at)
    return seen is not None and changed_at <= seen


@dataclass(frozen=True)
class _Gathered:
    """What one vendor's stock plan needs but the merchant's current quantities."""

    location: str
    feed: bool
    fresh: dict[str, StockLevel]
    pending: dict[str, int]
    vlinks: list[VariantLink]
    #: merchant items whose quantity vsc must read before planning
    unknown: list[str]


def _gather(ctx: Any, vendor: str) -> _Gathered | None:
    """Only the links that can need a write are loaded (`State.stock_links`): those whose vendor
    stock changed or has orders pending, whose merchant quantity changed, and those whose
    recorded quantities do not agree yet."""
    from vsc.engine import orders

    state = ctx.state
    got = _inputs(ctx, vendor)
    since = got.since
    if not got.linked:
        return None
    location = ctx.merchant_location(vendor)
    if location is None:
        return None
    fresh = ctx.once(f"inventory-read:{vendor}", lambda: read_vendor_stock(ctx, vendor, got.refs, since))
    # What vsc recorded of the linked variants read (a change feed lists unlinked ones too;
    # without one, the refs read are all of them).
    feed = got.feed
    recorded = {r.vendor_variant_id: r for r in (state.stock_refs(vendor, variant_ids=fresh) if feed else got.refs)}
    fresh = {vid: level for vid, level in fresh.items() if vid in recorded}
    moved = [
        vid
        for vid, level in fresh.items()
        if not recorded[vid].stock_seen or recorded[vid].vendor_available != level.available
    ]
    pending = orders.unapplied_quantities(state, vendor)
    changed_here = _merchant_changed(ctx, since) if since is not None else {}
    vlinks = state.stock_links(
        vendor,
        variant_ids=[*moved, *pending],
        items=_own_items(ctx, vendor, changed_here),
        location=location,
        buffer=ctx.settings.vendor(vendor).stock_buffer,
        untracked=ctx.settings.untracked_quantity,
    )
    unknown = [
        v.merchant_inventory_item_id
        for v in vlinks
        if v.merchant_inventory_item_id
        and (
            v.merchant_available is None
            or v.merchant_location_id != location
            or (
                v.merchant_inventory_item_id in changed_here
                and not _echo(v, changed_here[v.merchant_inventory_item_id])
            )
        )
    ]
    return _Gathered(location, feed, fresh, pending, vlinks, unknown)


def _own_items(ctx: Any, vendor: str, changed: dict[str, datetime | None]) -> list[str]:
    """The merchant's changed items (those of every vendor, read once a pass) that are this
    vendor's, matched to their vendors once a pass (`State.vendors_of_items`)."""
    if not changed:
        return []
    cached = ctx.cache.get("inventory-items-by-vendor")
    if cached is None or cached[0] is not changed:  # (a vendor with an older cursor reads again)
        cached = (changed, ctx.state.vendors_of_items(changed))
        ctx.cache["inventory-items-by-vendor"] = cached
    return cached[1].get(vendor, [])  # type: ignore[no-any-return]


def _gathered(ctx: Any, vendor: str) -> _Gathered | None:
    return ctx.once(f"inventory-gathered:{vendor}", lambda: _gather(ctx, vendor))  # type: ignore[no-any-return]


_MISSING = object()


def _read_levels_ahead(ctx: Any) -> dict[tuple[str, str], Any]:
    """At the first vendor's plan of a pass: the merchant quantities all the vendors' plans
    need, read together (100 items a request) instead of vendor by vendor; after a pass with
    orders spread over many vendors that is one or two requests, not one per vendor. Whatever
    cannot be read here is read (and its failure reported) by the vendor's own plan."""
    if "inventory-levels" in ctx.cache:
        return ctx.cache["inventory-levels"]  # type: ignore[no-any-return]
    ahead: dict[tuple[str, str], Any] = {}
    ctx.cache["inventory-levels"] = ahead
    wanted: dict[str, set[str]] = {}
    if ctx.failed("inventory-merchant-changed"):
        return ahead
    for vendor in ctx.cache.get("inventory-vendors", ()):
        if ctx.failed(f"inventory-read:{vendor}"):
            continue  # its plan reports the failure
        try:
            got = _gathered(ctx, vendor)
        except VscError:
            continue
        if got is not None and got.unknown:
            wanted.setdefault(got.location, set()).update(got.unknown)
    for location, items in wanted.items():
        try:
            levels = ctx.merchant().levels_at(sorted(items), location)
        except VscError:
            continue
        ahead.update({(location, item): levels.get(item, _MISSING) for item in items})
    return ahead


def plan_vendor(ctx: Any, vendor: str, dry_run: bool) -> StockPlan | None:
    """Read (or take the prefetched read of) one vendor's stock and plan its merchant writes.

    What was read is recorded with the plan's writes (`apply_plans`, before any write is
    sent), so later passes plan from it."""
    ahead = _read_levels_ahead(ctx)  # (gathers every vendor's inputs, once)
    got = _gathered(ctx, vendor)
    for key in ("inputs", "read", "gathered"):  # links change once writes are made
        ctx.cache.pop(f"inventory-{key}:{vendor}", None)
    if got is None:
        return None
    location, fresh, vlinks = got.location, got.fresh, got.vlinks
    now = ctx.now()
    vs = ctx.settings.vendor(vendor)
    stock = {
        v.vendor_variant_id: VendorStock(True, fresh[v.vendor_variant_id].available)
        if v.vendor_variant_id in fresh
        else VendorStock(v.stock_seen, v.vendor_available)
        for v in vlinks
    }
    levels = {i: ahead[(location, i)] for i in got.unknown if ahead.get((location, i), _MISSING) is not _MISSING}
    rest = [i for i in got.unknown if (location, i) not in ahead]
    if rest:
        levels.update(ctx.merchant().levels_at(rest, location))
    merchant_now = {item: available for item, (available, _) in levels.items()}
    actions = plan(
        vlinks,
        stock,
        got.pending,
        merchant_now,
        vendor=vendor,
        merchant=ctx.merchant_row().name,
        location=location,
        vs=vs,
        settings=ctx.settings,
    )
    # A vendor whose full read came back with nothing, or whose plan would zero too much of its
    # stock, is stopped here, before any write (vsc.engine.brakes).
    brakes.review(ctx, vendor, actions, stream=STREAM, empty_read=not got.feed and not fresh)
    if dry_run:
        return StockPlan(vendor, actions, now)
    # What vsc read of the vendor is kept, so later passes plan from it without reading again.
    updates: list[tuple[int, dict[str, Any]]] = []
    for v in vlinks:
        level = fresh.get(v.vendor_variant_id)
        if level is not None and (v.vendor_available != level.available or not v.stock_seen):
            updates.append((v.id, {"vendor_available": level.available, "stock_seen": 1}))
    # Merchant quantities read fresh and already right are remembered too: the next pass
    # compares against them, so a sale in between shows up as a stale write, never lost.
    planned = {a.detail["variant_link_id"] for a in actions}
    for v in vlinks:
        item = v.merchant_inventory_item_id
        if item in merchant_now and merchant_now[item] is not None and v.id not in planned:
            seen_at = levels[item][1]  # only a settled stamp (see levels_at)
            values = {"merchant_available": merchant_now[item], "merchant_location_id": location}
            updates.append((v.id, values | ({"merchant_stock_at": iso(seen_at)} if seen_at else {})))
    return StockPlan(vendor, actions, now, updates)


def apply_plans(ctx: Any, plans: Sequence[StockPlan], pass_id: int | None) -> None:
    """Send every vendor's planned writes: activations one by one, quantities 250 a call with
    items of all vendors mixed (so the merchant's writes are at their floor however the changes
    spread over vendors), journaled per item; each vendor whose writes all went through moves
    its cursor. What the plans read is recorded first."""
    seen = [update for p in plans for update in p.seen]
    if seen:
        with ctx.state.atomic():
            ctx.state.update_variant_links(seen)
    failed = apply_all(ctx, [a for p in plans for a in p.actions], pass_id)
    for p in plans:  # (written together with the pass's other cursors: State.pass_cursors)
        if p.vendor not in failed:
            ctx.state.set_cursor(p.vendor, STREAM, p.now)


def apply_all(ctx: Any, actions: list[Action], pass_id: int | None) -> set[str]:
    """Send the stock writes: activations one by one, quantities 250 a call, journaled per item.
    Returns the vendors with a write that failed."""
    from vsc.connectors.shopify.inventory import QuantityWrite

    state = ctx.state
    merchant = ctx.merchant()
    failed: set[str] = set()
    for action in [a for a in actions if a.kind == "activate"]:
        from vsc.engine import execute

        def activate(ctx: Any, a: Action) -> None:
            d = a.detail
            merchant.activate(d["item"], d["location"], d["quantity"])
            state.update_variant_link(
                d["variant_link_id"], merchant_available=d["quantity"], merchant_location_id=d["location"]
            )

        execute(ctx, action, pass_id, activate)
        if action.status == "failed":
            failed.add(action.vendor or "")
    sets = _interleave([a for a in actions if a.kind == "set_quantity"])
    for start in range(0, len(sets), 250):
        batch = sets[start : start + 250]
        with state.atomic():  # one commit for the batch's pending entries, all made before it is sent
            entries = {
                a.key: state.journal_begin(
                    vendor=a.vendor,
                    pass_id=pass_id,
                    store=a.store,
                    stream=STREAM,
                    kind=a.kind,
                    key=a.key,
                    target=a.target,
                    detail={"summary": a.summary, **a.detail},
                )
                for a in batch
            }
        writes = {
            a.key: QuantityWrite(a.detail["item"], a.detail["location"], a.detail["quantity"], a.detail["change_from"])
            for a in batch
        }
        try:
            first = merchant.set_available(list(writes.values()), key=f"pass:{pass_id}")
            stale = {w.item_id for w in first}
            retry = [a for a in batch if a.detail["item"] in stale]
            still: set[str] = set()
            for location in sorted({a.detail["location"] for a in retry}):
                here = [a for a in retry if a.detail["location"] == location]
                actual = merchant.available_at([a.detail["item"] for a in here], location)
                for a in here:
                    a.detail["quantity"] = restale(a, actual.get(a.detail["item"]))
                    a.detail["change_from"] = actual.get(a.detail["item"])
                    a.detail["stale"] = True
                second = merchant.set_available(
                    [
                        QuantityWrite(
                            a.detail["item"], a.detail["location"], a.detail["quantity"], a.detail["change_from"]
                        )
                        for a in here
                    ],
                    key=f"pass:{pass_id}:again:{location}",
                )
                still |= {w.item_id for w in second}
        except Exception as exc:  # the store failed this batch: each of its items is reported
            message = str(exc)
            for a in batch:
                a.status, a.error = "failed", message
                failed.add(a.vendor or "")
            with state.atomic():
                state.journal_finish_many([(entries[a.key], "failed", None, message) for a in batch])
            continue
        finished: list[tuple[int, str, dict[str, Any] | None, str | None]] = []
        written: list[tuple[int, dict[str, Any]]] = []
        for a in batch:
            d = a.detail
            if d["item"] in still:
                a.status = "failed"
                a.error = "the merchant's quantity kept changing under vsc (sales in progress); next pass"
                finished.append((entries[a.key], "failed", None, a.error))
                failed.add(a.vendor or "")
                continue
            a.status = "done"
            # merchant_stock_at: not the write's time, as a hand edit in that same second would
            # share it. The next pass reads the item back once (it shows as changed) and records
            # the updatedAt it then has, which is final for that second.
            written.append(
                (
                    d["variant_link_id"],
                    {
                        "merchant_available": d["quantity"],
                        "merchant_location_id": d["location"],
                        "merchant_stock_at": None,
                    },
                )
            )
            finished.append((entries[a.key], "done", {"summary": a.summary, **d}, None))
        with state.atomic():  # (the batch's links and journal entries, a statement or three each)
            state.update_variant_links(written)
            state.journal_finish_many(finished)
    return failed


def _interleave(actions: list[Action]) -> list[Action]:
    """The vendors' writes in turn (one of each vendor, then the next of each...), so that when
    the merchant's budget runs short every vendor's changes are on their way, not one vendor's."""
    queues: dict[str, list[Action]] = {}
    for a in actions:
        queues.setdefault(a.vendor or "", []).append(a)
    out: list[Action] = []
    lists = list(queues.values())
    for i in range(max((len(q) for q in lists), default=0)):
        out += [q[i] for q in lists if i < len(q)]
    return out
