"""The catalog stream: vendor listing edits → the merchant's listings.

Planning is pure: `plan_product` compares a vendor product with what vsc last
applied from it (the link fingerprints) and returns the smallest set of
actions. Fields the merchant owns (everything not in `vendor_owns`) are never
planned. A value the vendor did not change since the last pass plans nothing,
so vsc's own writes never come back as work, and an unchanged pass writes
nothing.

`run` reads what changed on one vendor since its cursor (minus the overlap),
plans, applies through the journal and moves the cursor only past what was
applied.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from vsc.config import Settings, VendorSettings
from vsc.connectors.base import Image, Product, Variant, VariantDraft, VariantUpdate
from vsc.engine.actions import Action
from vsc.errors import PayloadError
from vsc.state import ProductLink, VariantLink

STREAM = "catalog"
# How often a vendor platform without a deletion feed is swept for deleted products.
SWEEP_SECONDS = 3600

# vendor_owns name → (record attribute, merchant update field)
PRODUCT_FIELDS = {
    "title": ("title", "title"),
    "description": ("description_html", "description_html"),
    "tags": ("tags", "tags"),
    "product_type": ("product_type", "product_type"),
    "status": ("status", "status"),
}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def listing_status(vendor_status: str, publish_status: str) -> str:
    """The merchant status of a listing: fixed by the setting, or following the vendor."""
    if publish_status in ("active", "draft"):
        return publish_status
    return "active" if vendor_status == "active" else "draft"


def product_values(product: Product) -> dict[str, Any]:
    """The vendor's listing-level values as they are stored in a link fingerprint."""
    return {
        "title": product.title,
        "description": product.description_html,
        "tags": sorted(product.tags),
        "product_type": product.product_type or "",
        "status": product.status,
    }


def variant_values(variant: Variant) -> dict[str, Any]:
    """The vendor's variant values as stored in a variant link fingerprint."""
    return {
        "price": _text(variant.price),
        "compare_at_price": _text(variant.compare_at_price),
        "sku": variant.sku or "",
        "barcode": variant.barcode or "",
        "options": [list(o) for o in variant.options],
    }


def image_entries(images: Sequence[Image], media_ids: Sequence[str | None] = ()) -> list[list[Any]]:
    ids = list(media_ids) + [None] * (len(images) - len(media_ids))
    return [[img.src, img.alt or "", mid] for img, mid in zip(images, ids, strict=False)]


def product_fingerprint(product: Product, media_ids: Sequence[str | None] = ()) -> dict[str, Any]:
    fp = product_values(product)
    fp["images"] = image_entries(product.images, media_ids)
    return fp


def variant_draft(variant: Variant, vs: VendorSettings) -> VariantDraft:
    available = None if variant.available is None else max(0, variant.available - vs.stock_buffer)
    return VariantDraft(
        sku=variant.sku,
        price=vs.price_rule.apply(variant.price),
        compare_at_price=vs.price_rule.apply(variant.compare_at_price),
        barcode=variant.barcode,
        options=variant.options,
        available=available,
    )


def draft_json(d: VariantDraft, variant: Variant) -> dict[str, Any]:
    return {
        "vendor_variant_id": variant.id,
        "vendor_price": _text(variant.price),
        "vendor_compare_at_price": _text(variant.compare_at_price),
        "sku": d.sku,
        "price": _text(d.price),
        "compare_at_price": _text(d.compare_at_price),
        "barcode": d.barcode,
        "options": [list(o) for o in d.options],
        "available": d.available,
    }


def draft_from_json(data: dict[str, Any]) -> VariantDraft:
    return VariantDraft(
        sku=data.get("sku"),
        price=Decimal(data["price"]) if data.get("price") is not None else None,
        compare_at_price=Decimal(data["compare_at_price"]) if data.get("compare_at_price") is not None else None,
        barcode=data.get("barcode"),
        options=tuple(tuple(o) for o in data.get("options") or ()),  # type: ignore[misc]
        available=data.get("available"),
    )


def _label(product: Product) -> str:
    return f"{product.title!r} ({product.id})"


def plan_variant_update(vlink: VariantLink, variant: Variant, vs: VendorSettings) -> dict[str, Any] | None:
    """The merchant variant fields to change for one linked variant, or None."""
    now = variant_values(variant)
    last = vlink.fingerprint
    owns = set(vs.vendor_owns)
    change: dict[str, Any] = {}
    # A price the store did not send (missing or null) is unknown, not "no price": never copied.
    if "price" in owns and variant.price is not None and now["price"] != last.get("price"):
        change["price"] = _text(vs.price_rule.apply(variant.price))
    if "compare_at_price" in owns and now["compare_at_price"] != last.get("compare_at_price"):
        merchant = vs.price_rule.apply(variant.compare_at_price)
        change["compare_at_price"] = _text(merchant)
    if "sku" in owns and now["sku"] != last.get("sku", ""):
        change["sku"] = now["sku"]
    if "barcode" in owns and now["barcode"] != last.get("barcode", ""):
        change["barcode"] = now["barcode"]
    if not change:
        return None
    change["merchant_variant_id"] = vlink.merchant_variant_id
    change["variant_link_id"] = vlink.id
    change["fingerprint"] = {**last, **{k: now[k] for k in now if k in change or k == "options"}}
    return change


def plan_product(
    link: ProductLink,
    vlinks: Sequence[VariantLink],
    product: Product | None,
    *,
    deleted: bool,
    vs: VendorSettings,
    on_vendor_delete: str,
    merchant: str,
) -> list[Action]:
    """Plan the catalog actions for one linked product. Pure: no I/O.

    `product` is the vendor's current product (None when it is gone) and
    `deleted` says the vendor store reported it deleted.
    """
    base = {"stream": STREAM, "store": merchant, "vendor": link.vendor, "link_id": link.id}
    target = link.merchant_product_id
    actions: list[Action] = []
    if product is None:
        if not deleted or link.state == "vendor_deleted":
            return []
        policy = on_vendor_delete
        summary = {
            "draft": "vendor deleted the product: set the merchant listing to draft",
            "delete": "vendor deleted the product: delete the merchant listing",
            "keep": "vendor deleted the product: merchant listing kept as it is",
        }[policy]
        return [
            Action(
                kind="vendor_deleted",
                target=target,
                detail={"policy": policy, "vendor_product_id": link.vendor_product_id},
                summary=f"{link.fingerprint.get('title', '')!r} ({link.vendor_product_id}): {summary}",
                write=policy != "keep",
                **base,
            )
        ]

    owns = set(vs.vendor_owns)
    last = link.fingerprint
    now = product_values(product)
    fields: dict[str, Any] = {}
    for name, (_attr, update_field) in PRODUCT_FIELDS.items():
        if name not in owns or now[name] == last.get(name):
            continue
        value: Any = now[name]
        if name == "status":
            value = listing_status(product.status, vs.publish_status)
        elif name == "tags":
            value = list(product.tags)
        fields[update_field] = value
    if fields:
        changed = [k for k in PRODUCT_FIELDS if k in owns and now[k] != last.get(k)]
        actions.append(
            Action(
                kind="update_listing",
                target=target,
                detail={"fields": fields, "fingerprint": {k: now[k] for k in changed}},
                summary=f"{', '.join(changed)} of {_label(product)} changed",
                **base,
            )
        )

    if "images" in owns:
        last_images = last.get("images") or []
        now_pairs = [[img.src, img.alt or ""] for img in product.images]
        if [e[:2] for e in last_images] != now_pairs:
            kept = {e[0]: e[2] for e in last_images if e[2]}
            wanted_srcs = {img.src for img in product.images}
            remove = [mid for src, mid in kept.items() if src not in wanted_srcs]
            add = [{"src": img.src, "alt": img.alt} for img in product.images if img.src not in kept]
            actions.append(
                Action(
                    kind="images",
                    target=target,
                    detail={
                        "remove_media_ids": remove,
                        "add": add,
                        "images": now_pairs,
                        "kept": {src: mid for src, mid in kept.items() if src in wanted_srcs},
                    },
                    summary=f"images of {_label(product)} changed ({len(add)} to add, {len(remove)} to remove)",
                    **base,
                )
            )

    by_vendor_id = {v.vendor_variant_id: v for v in vlinks}
    updates = []
    for variant in product.variants:
        vlink = by_vendor_id.get(variant.id)
        if vlink is None or vlink.state != "active":
            continue
        change = plan_variant_update(vlink, variant, vs)
        if change:
            updates.append(change)
    if updates:
        actions.append(
            Action(
                kind="update_variants",
                target=target,
                detail={"updates": updates},
                summary=f"{len(updates)} variant(s) of {_label(product)} changed",
                **base,
            )
        )

    current_ids = {v.id for v in product.variants}
    added = [v for v in product.variants if v.id not in by_vendor_id]
    gone = [v for v in vlinks if v.vendor_variant_id not in current_ids and v.state == "active"]
    if added:
        names = ", ".join(v.sku or v.title or v.id for v in added)
        if vs.auto_variants:
            drafts = [draft_json(variant_draft(v, vs), v) for v in added]
            actions.append(
                Action(
                    kind="add_variants",
                    target=target,
                    detail={"variants": drafts},
                    summary=f"add {len(added)} new variant(s) of {_label(product)}: {names}",
                    **base,
                )
            )
        else:
            actions.append(
                Action(
                    kind="diverged",
                    target=target,
                    detail={"added_vendor_variants": [v.id for v in added]},
                    summary=f"{_label(product)} has {len(added)} new variant(s) ({names}) "
                    "not added because auto_variants is off",
                    write=False,
                    **base,
                )
            )
    if gone:
        names = ", ".join(v.sku or v.vendor_variant_id for v in gone)
        if vs.auto_variants:
            actions.append(
                Action(
                    kind="remove_variants",
                    target=target,
                    detail={
                        "merchant_variant_ids": [v.merchant_variant_id for v in gone],
                        "variant_link_ids": [v.id for v in gone],
                    },
                    summary=f"remove {len(gone)} variant(s) the vendor deleted from {_label(product)}: {names}",
                    **base,
                )
            )
        else:
            actions.append(
                Action(
                    kind="diverged",
                    target=target,
                    detail={
                        "removed_vendor_variants": [v.vendor_variant_id for v in gone],
                        "variant_link_ids": [v.id for v in gone],
                    },
                    summary=f"vendor deleted {len(gone)} variant(s) of {_label(product)} "
                    f"({names}); kept on the merchant because auto_variants is off",
                    write=False,
                    **base,
                )
            )
    return actions


# -- reading, applying, cursors -----------------------------------------------


@dataclass
class StreamResult:
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reads: int = 0


def apply_action(ctx: Any, action: Action) -> None:
    """Send one catalog action to the merchant and record its effect in the state.

    The caller journals the action before and after; state changes made here
    commit in the same transaction as the journal's `done`.
    """
    if action.kind == "unreadable":  # journaled as failed, with the store's and the product's names
        raise PayloadError(action.detail["error"], store=action.vendor)
    state = ctx.state
    merchant = ctx.merchant()
    link = state.product_link_by_id(action.link_id)
    d = action.detail
    if action.kind == "update_listing":
        merchant.update_listing(action.target, d["fields"])
        with state.atomic():
            state.update_product_link(link.id, fingerprint={**link.fingerprint, **d["fingerprint"]}, state="active")
    elif action.kind == "images":
        if d["remove_media_ids"]:
            merchant.remove_images(action.target, d["remove_media_ids"])
        new_ids = (
            merchant.add_images(action.target, [Image(a["src"], a.get("alt")) for a in d["add"]]) if d["add"] else []
        )
        added = dict(zip([a["src"] for a in d["add"]], new_ids, strict=False))
        entries = [[src, alt, d["kept"].get(src) or added.get(src)] for src, alt in d["images"]]
        action.result = {"media_ids": new_ids}
        with state.atomic():
            state.update_product_link(link.id, fingerprint={**link.fingerprint, "images": entries})
    elif action.kind == "update_variants":
        updates = [
            VariantUpdate(
                variant_id=u["merchant_variant_id"],
                price=Decimal(u["price"]) if u.get("price") is not None else None,
                compare_at_price=Decimal(u["compare_at_price"]) if u.get("compare_at_price") else None,
                clear_compare_at_price="compare_at_price" in u and not u["compare_at_price"],
                sku=u.get("sku"),
                barcode=u.get("barcode"),
            )
            for u in d["updates"]
        ]
        merchant.update_variants(action.target, updates)
        with state.atomic():
            for u in d["updates"]:
                state.update_variant_link(
                    u["variant_link_id"],
                    fingerprint=u["fingerprint"],
                    sku=u["fingerprint"].get("sku") or None,
                    barcode=u["fingerprint"].get("barcode") or None,
                )
    elif action.kind == "add_variants":
        drafts = [draft_from_json(v) for v in d["variants"]]
        location = ctx.merchant_location(link.vendor)
        created = merchant.add_variants(action.target, drafts, location)
        by_options = {v.options: v for v in created}
        with state.atomic():
            for data, draft, fallback in zip(d["variants"], drafts, created, strict=False):
                made = by_options.get(draft.options) or fallback
                state.add_variant_link(
                    link,
                    vendor_variant_id=data["vendor_variant_id"],
                    merchant_variant_id=made.id,
                    merchant_inventory_item_id=made.inventory_item_id,
                    sku=draft.sku,
                    barcode=draft.barcode,
                    fingerprint={
                        "price": None,
                        "compare_at_price": None,
                        "sku": draft.sku or "",
                        "barcode": draft.barcode or "",
                        "options": data["options"],
                    }
                    | _vendor_prices(data),
                    merchant_available=draft.available,
                )
            state.update_product_link(link.id, state="active", note=None)
    elif action.kind == "remove_variants":
        merchant.remove_variants(action.target, d["merchant_variant_ids"])
        with state.atomic():
            for vid in d["variant_link_ids"]:
                state.remove_variant_link(vid)
    elif action.kind == "vendor_deleted":
        if d["policy"] == "draft":
            merchant.update_listing(action.target, {"status": "draft"})
        elif d["policy"] == "delete":
            merchant.delete_listing(action.target)
        with state.atomic():
            state.update_product_link(link.id, state="vendor_deleted", note=action.summary)
    elif action.kind == "diverged":
        with state.atomic():
            for vid in d.get("variant_link_ids") or []:
                state.update_variant_link(vid, state="vendor_deleted")
            state.update_product_link(link.id, state="diverged", note=action.summary)
    else:  # pragma: no cover - the planner makes no other kinds
        raise ValueError(f"unknown catalog action {action.kind}")


def _vendor_prices(data: dict[str, Any]) -> dict[str, Any]:
    # The fingerprint holds the vendor's own prices; the draft carries merchant prices.
    return {"price": data.get("vendor_price"), "compare_at_price": data.get("vendor_compare_at_price")}


def sweep_due(ctx: Any, vendor: str, now: datetime) -> bool:
    """Whether the hourly check of linked products by id is due (platforms without a deletion feed)."""
    last_sweep = ctx.state.cursor(vendor, "catalog-sweep")
    return last_sweep is None or (now - last_sweep).total_seconds() >= SWEEP_SECONDS


def read_vendor(
    ctx: Any,
    vendor: str,
    linked: set[str],
    *,
    since: datetime | None,
    now: datetime,
    sweep: bool | None = None,
) -> tuple[dict[str, Product], set[str], bool]:
    """What changed on the vendor: (changed linked products, deleted linked ids, swept?).

    `linked`: the vendor product ids of its live links. Network reads only when `sweep` is
    given (so it can run on a reader thread)."""
    connector = ctx.connector(vendor)
    if since is None:
        products = connector.get_products(sorted(linked))
        return products, linked - set(products), True
    changed = {p.id: p for p in connector.list_products(since) if p.id in linked}
    deleted_ids = connector.list_deleted_product_ids(since)
    swept = False
    if deleted_ids is None:
        if sweep if sweep is not None else sweep_due(ctx, vendor, now):
            present = connector.get_products(sorted(linked - set(changed)))
            changed.update({pid: p for pid, p in present.items() if pid not in changed})
            deleted = linked - set(changed)
            swept = True
        else:
            deleted = set()
    else:
        deleted = {i for i in deleted_ids if i in linked} - set(changed)
    return changed, deleted, swept


def unreadable_actions(ctx: Any, vendor: str, merchant: str, links: Sequence[ProductLink]) -> list[Action]:
    """One failed finding per linked product whose record the vendor's store sent unreadable in
    this pass: reported (journaled as failed, so `vsc status` shows it) and read again next pass,
    while the vendor's other products go on."""
    from vsc.connectors.base import UNKNOWN_ID

    broken: dict[str, str] = ctx.cache.get(f"catalog-unreadable:{vendor}") or {}
    by_id = {link.vendor_product_id: link for link in links}
    out = []
    for ident, error in sorted(broken.items()):
        link = by_id.get(ident) or next((x for x in links if x.vendor_product_id.endswith(f"/{ident}")), None)
        if link is None and ident != UNKNOWN_ID:
            continue  # not a linked product: nothing of the merchant's depends on it
        title = link.fingerprint.get("title") if link is not None else None
        label = f"{title!r} ({ident})" if title else f"product {ident}"
        out.append(
            Action(
                stream=STREAM,
                kind="unreadable",
                store=merchant,
                vendor=vendor,
                link_id=link.id if link is not None else None,
                target=link.merchant_product_id if link is not None else ident,
                detail={"vendor_product_id": ident, "error": error},
                summary=f"{label} could not be read (read again next pass; if this persists, look at the product "
                f"on {vendor}'s store)",
                write=False,
            )
        )
    return out


def settle_read(ctx: Any, vendor: str, changed: dict[str, Product], deleted: set[str]) -> set[str]:
    """Checks on a vendor's catalog read, made on the pass's own thread once the read is in.

    Raises `CurrencyMismatch` when the pass would copy prices across currencies
    (`vsc.engine.currency`); returns `deleted` without the products whose records could not
    be read.
    """
    from vsc.connectors.base import UNKNOWN_ID
    from vsc.engine import currency

    currency.check_pass(ctx, vendor, changed.values())
    # Records the connector could not read are not deleted products: they are reported instead
    # (`unreadable_actions`) and read again next pass.
    broken = ctx.connector(vendor).take_unreadable()
    ctx.cache[f"catalog-unreadable:{vendor}"] = broken
    if UNKNOWN_ID in broken:
        return set()  # a record without an id could be any of them: nothing counts as deleted
    return deleted - set(broken)


def vendor_settings(settings: Settings, vendor: str) -> VendorSettings:
    """The settings a vendor's catalog is planned with (`auto_variants` is the merchant's)."""
    vs = settings.vendor(vendor)
    return VendorSettings(**{**vs.__dict__, "auto_variants": settings.auto_variants})


def plan_digest(product: Product, vs: VendorSettings, on_vendor_delete: str) -> str:
    """A digest of everything `plan_product` reads of a vendor product and of the settings.

    Recorded on a product link when its plan came out empty (`State.set_plan_digests`); the same
    product read again with the same settings then plans nothing without its variant links being
    loaded, as long as the links did not change either (a change to them clears the digest:
    migration 0008). A WooCommerce product is read again whenever its stock moves, and every
    hour for the deletion sweep: this keeps those reads from costing a plan each."""
    data = [
        product.id,
        product_values(product),
        [[img.src, img.alt] for img in product.images],
        # (not `available`: the planner reads it only for variants without a link, and with the
        # same variant ids and unchanged links there are none, as when the plan came out empty)
        [[v.id, v.title, variant_values(v)] for v in product.variants],
        repr(vs),
        on_vendor_delete,
    ]
    text = json.dumps(data, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def plan_vendor(
    settings: Settings,
    vendor: str,
    merchant: str,
    links: Sequence[ProductLink],
    vlinks_by_link: dict[int, list[VariantLink]],
    changed: dict[str, Product],
    deleted: set[str],
) -> list[Action]:
    """Plan every linked product of one vendor. Pure."""
    vs = vendor_settings(settings, vendor)
    actions: list[Action] = []
    for link in links:
        product = changed.get(link.vendor_product_id)
        is_deleted = link.vendor_product_id in deleted
        if product is None and not is_deleted:
            continue
        actions += plan_product(
            link,
            vlinks_by_link.get(link.id, []),
            product,
            deleted=is_deleted,
            vs=vs,
            on_vendor_delete=settings.on_vendor_delete,
            merchant=merchant,
        )
    return actions


def cursor_after(read_started: datetime, failed_updates: Sequence[datetime | None], old: datetime | None) -> datetime:
    """Where the cursor may move: to the start of the read, but never past a change whose
    write failed (it must be read again next pass)."""
    stamps = [t for t in failed_updates if t is not None]
    if len(stamps) < len(failed_updates):
        return old or read_started - timedelta(seconds=1)
    new = min([read_started, *[t - timedelta(seconds=1) for t in stamps]])
    return max(new, old) if old else new
