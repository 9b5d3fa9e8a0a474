"""Putting vendor products on the merchant store: publish, link onto existing listings, auto-link.

Every variant of a published or linked product is linked (`variant_links`),
and each link's fingerprint records the vendor values it was made from, so
that from then on only the vendor's *edits* flow (the catalog stream).

Matching never guesses: a duplicate, empty or unmatched key is reported by
name and left unlinked.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vsc.connectors.base import MAX_OPTIONS, MAX_VARIANTS, ListingDraft, Product, Variant
from vsc.engine.actions import digest
from vsc.engine.catalog import listing_status, product_fingerprint, variant_draft, variant_values
from vsc.engine.context import Context
from vsc.errors import UsageError, VscError


@dataclass
class MapResult:
    """The outcome of one mapping command: links made, and problems by product."""

    linked: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def slug(text: str, limit: int = 40) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
    return text[:limit].strip("-") or "product"


def listing_handle(vendor: str, product: Product) -> str:
    """A handle that names the listing after the product and is unique to (vendor, product)."""
    return f"{slug(product.title)}-{slug(vendor, 20)}-{digest([vendor, product.id], 6)}"


def check_publishable(product: Product) -> str | None:
    """Why Shopify could not take this product as it is, or None."""
    if len(product.options) > MAX_OPTIONS:
        return (
            f"{product.title!r} ({product.id}) has {len(product.options)} options "
            f"({', '.join(product.options)}); Shopify allows at most {MAX_OPTIONS}"
        )
    if len(product.variants) > MAX_VARIANTS:
        return f"{product.title!r} ({product.id}) has {len(product.variants)} variants; Shopify allows {MAX_VARIANTS}"
    if not product.variants:
        return f"{product.title!r} ({product.id}) has no variants to sell"
    seen = set()
    for v in product.variants:
        if v.options in seen:
            return f"{product.title!r} ({product.id}) has two variants with the options {dict(v.options)}"
        seen.add(v.options)
    return None


def _variant_fingerprint(variant: Variant) -> dict[str, Any]:
    return variant_values(variant)


def _record_links(
    ctx: Context,
    vendor: str,
    product: Product,
    merchant_product: Product,
    pairs: Sequence[tuple[Variant, Variant]],
    *,
    mode: str,
    fingerprint: dict[str, Any],
    available: dict[str, int | None],
) -> Any:
    state = ctx.state
    link = state.add_product_link(vendor, product.id, merchant_product.id, mode=mode, fingerprint=fingerprint)
    for vv, mv in pairs:
        state.add_variant_link(
            link,
            vendor_variant_id=vv.id,
            merchant_variant_id=mv.id,
            merchant_inventory_item_id=mv.inventory_item_id,
            sku=vv.sku,
            barcode=vv.barcode,
            fingerprint=_variant_fingerprint(vv),
            merchant_available=available.get(mv.id),
        )
    return link


def _start_cursor(ctx: Context, vendor: str, read_started: Any) -> None:
    if ctx.state.cursor(vendor, "catalog") is None:
        ctx.state.set_cursor(vendor, "catalog", read_started)


def publish(ctx: Context, vendor: str, product_ids: Sequence[str]) -> MapResult:
    """Create merchant listings for vendor products and link every variant."""
    ctx.vendor_row(vendor)
    merchant_name = ctx.merchant_row().name
    result = MapResult()
    read_started = ctx.clock()
    connector = ctx.connector(vendor)
    products = connector.get_products(list(product_ids))
    by_id = {p.id: p for p in products.values()}
    vs = ctx.settings.vendor(vendor)
    location = ctx.merchant_location(vendor)
    merchant = ctx.merchant()
    for wanted in product_ids:
        product = by_id.get(wanted) or next((p for p in by_id.values() if p.id.endswith(f"/{wanted}")), None)
        if product is None:
            result.problems.append(f"{vendor} has no product {wanted}")
            continue
        if ctx.state.product_link(vendor, product.id):
            result.skipped.append(f"{product.title!r} ({product.id}) is already linked")
            continue
        why = check_publishable(product)
        if why:
            result.problems.append(f"cannot publish {why}")
            continue
        drafts = [variant_draft(v, vs) for v in product.variants]
        draft = ListingDraft(
            title=product.title,
            description_html=product.description_html,
            vendor=ctx.vendor_label(vendor),
            product_type=product.product_type,
            tags=product.tags,
            status=listing_status(product.status, vs.publish_status),
            options=product.options,
            variants=tuple(drafts),
            images=product.images,
            location_id=location,
        )
        key = f"publish:{vendor}:{product.id}"
        # A publish cut short by a crash left its handle in the journal: reuse it, so the
        # retry upserts the listing the first attempt may have made.
        earlier = [e for e in ctx.state.journal(key_like=key) if e.key == key and e.status != "done"]
        handle = (earlier[-1].detail or {}).get("handle") if earlier else None
        handle = handle or listing_handle(vendor, product)
        entry = ctx.state.journal_begin(
            pass_id=None,
            store=merchant_name,
            stream="catalog",
            kind="publish",
            key=key,
            target=product.id,
            detail={"handle": handle, "title": product.title, "variants": len(drafts)},
        )
        try:
            created = merchant.create_listing(draft, handle=handle)
            pairs = _pair_created(product, created)
            available = {mv.id: d.available for (vv, mv), d in zip(pairs, drafts, strict=False)}
            media_ids = [img.id for img in created.images]
            with ctx.state.atomic():
                _record_links(
                    ctx,
                    vendor,
                    product,
                    created,
                    pairs,
                    mode="published",
                    fingerprint=product_fingerprint(product, media_ids),
                    available=available,
                )
                ctx.state.journal_finish(
                    entry, status="done", detail={"handle": handle, "merchant_product_id": created.id}
                )
        except VscError as exc:
            ctx.state.journal_finish(entry, status="failed", error=str(exc))
            result.problems.append(f"publishing {product.title!r} ({product.id}) failed: {exc}")
            continue
        result.linked.append(
            {
                "vendor_product_id": product.id,
                "merchant_product_id": created.id,
                "title": product.title,
                "variants": len(pairs),
            }
        )
    _start_cursor(ctx, vendor, read_started)
    return result


def _pair_created(product: Product, created: Product) -> list[tuple[Variant, Variant]]:
    """Pair the vendor's variants with those productSet made, by their options."""
    made = {v.options: v for v in created.variants}
    pairs = []
    for i, v in enumerate(product.variants):
        match = made.get(v.options)
        if match is None and i < len(created.variants):
            match = created.variants[i]
        if match is not None:
            pairs.append((v, match))
    return pairs


@dataclass
class Matching:
    """How vendor variants pair with merchant variants by one key."""

    pairs: list[tuple[Variant, Variant]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _key(variant: Variant, by: str) -> str:
    value = variant.sku if by == "sku" else variant.barcode
    return (value or "").strip()


def match_variants(
    vendor_variants: Sequence[Variant], merchant_variants: Sequence[Variant], by: str, what: str = ""
) -> Matching:
    """Pair variants whose `by` key (sku or barcode) is equal and unique on both sides."""
    out = Matching()
    v_index: dict[str, list[Variant]] = defaultdict(list)
    m_index: dict[str, list[Variant]] = defaultdict(list)
    for v in vendor_variants:
        key = _key(v, by)
        if not key:
            out.problems.append(f"vendor variant {v.id}{what} has no {by}")
        else:
            v_index[key].append(v)
    for m in merchant_variants:
        key = _key(m, by)
        if key:
            m_index[key].append(m)
    for key, vs in v_index.items():
        ms = m_index.get(key, [])
        if len(vs) > 1:
            out.problems.append(f"{by} {key!r} is used by {len(vs)} vendor variants ({', '.join(v.id for v in vs)})")
        elif len(ms) > 1:
            out.problems.append(f"{by} {key!r} is used by {len(ms)} merchant variants ({', '.join(m.id for m in ms)})")
        elif not ms:
            out.problems.append(f"no merchant variant has {by} {key!r} (vendor variant {vs[0].id})")
        else:
            out.pairs.append((vs[0], ms[0]))
    return out


def link_to(ctx: Context, vendor: str, product_id: str, merchant_product_id: str) -> MapResult:
    """Link a vendor product onto an existing merchant listing, variant by variant."""
    from vsc.connectors.shopify.connector import gid

    ctx.vendor_row(vendor)
    result = MapResult()
    read_started = ctx.clock()
    products = ctx.connector(vendor).get_products([product_id])
    product = next(iter(products.values()), None)
    if product is None:
        raise UsageError(f"{vendor} has no product {product_id}", hint=f"See `vsc products {vendor}`.")
    if ctx.state.product_link(vendor, product.id):
        raise UsageError(f"{product.title!r} ({product.id}) is already linked", hint="See `vsc map list`.")
    target = gid("Product", merchant_product_id)
    merchant_products = ctx.merchant().get_products([target])
    merchant_product = merchant_products.get(target)
    if merchant_product is None:
        raise UsageError(f"the merchant store has no product {merchant_product_id}")
    pairs: list[tuple[Variant, Variant]] = []
    if len(product.variants) == 1 and len(merchant_product.variants) == 1:
        pairs = [(product.variants[0], merchant_product.variants[0])]
    else:
        for by in ("sku", "barcode"):
            taken_v = {v.id for v, _ in pairs}
            taken_m = {m.id for _, m in pairs}
            m = match_variants(
                [v for v in product.variants if v.id not in taken_v],
                [v for v in merchant_product.variants if v.id not in taken_m],
                by,
            )
            pairs += m.pairs
            if by == "barcode":
                result.problems += [p for p in m.problems if "no barcode" not in p]
        taken_v = {v.id for v, _ in pairs}
        by_options = {mv.options: mv for mv in merchant_product.variants if mv.id not in {m.id for _, m in pairs}}
        for v in product.variants:
            if v.id not in taken_v and v.options and v.options in by_options:
                pairs.append((v, by_options.pop(v.options)))
        unmatched = [v for v in product.variants if v.id not in {p[0].id for p in pairs}]
        result.problems = [
            f"vendor variant {v.id} ({v.sku or 'no sku'}) matches no merchant variant by sku, barcode or options"
            for v in unmatched
        ]
    already = [mv.id for _, mv in pairs if ctx.state.variant_link_by_merchant_variant(mv.id)]
    if already:
        raise UsageError(f"merchant variant(s) {', '.join(already)} are already linked to another vendor variant")
    if not pairs:
        raise UsageError(
            f"no variant of {product.title!r} could be paired with {merchant_product.title!r}",
            hint="Give both sides the same SKUs or barcodes, then run the command again.",
        )
    with ctx.state.atomic():
        _record_links(
            ctx,
            vendor,
            product,
            merchant_product,
            pairs,
            mode="linked",
            fingerprint=product_fingerprint(product),
            available={},
        )
    result.linked.append(
        {
            "vendor_product_id": product.id,
            "merchant_product_id": merchant_product.id,
            "title": product.title,
            "variants": len(pairs),
        }
    )
    _start_cursor(ctx, vendor, read_started)
    return result


def auto_link(ctx: Context, vendor: str, by: str = "sku", *, apply: bool = True) -> MapResult:
    """Link vendor variants to merchant variants with the same SKU or barcode, product by product."""
    if by not in ("sku", "barcode"):
        raise UsageError(f"--by must be sku or barcode, not {by!r}")
    ctx.vendor_row(vendor)
    result = MapResult()
    read_started = ctx.clock()
    vendor_products = list(ctx.connector(vendor).list_products(None))
    merchant_products = list(ctx.merchant().list_products(None))
    linked_vendor = {v.vendor_variant_id for v in ctx.state.variant_links(vendor=vendor)}
    linked_merchant = {v.merchant_variant_id for v in ctx.state.variant_links()}
    v_product = {v.id: p for p in vendor_products for v in p.variants}
    m_product = {v.id: p for p in merchant_products for v in p.variants}
    matching = match_variants(
        [
            v
            for p in vendor_products
            if not ctx.state.product_link(vendor, p.id)
            for v in p.variants
            if v.id not in linked_vendor
        ],
        [v for p in merchant_products for v in p.variants if v.id not in linked_merchant],
        by,
    )
    result.problems += matching.problems
    groups: dict[tuple[str, str], list[tuple[Variant, Variant]]] = defaultdict(list)
    targets: dict[str, set[str]] = defaultdict(set)
    for vv, mv in matching.pairs:
        groups[(v_product[vv.id].id, m_product[mv.id].id)].append((vv, mv))
        targets[v_product[vv.id].id].add(m_product[mv.id].id)
    for (vpid, mpid), pairs in groups.items():
        vp = next(p for p in vendor_products if p.id == vpid)
        mp = next(p for p in merchant_products if p.id == mpid)
        if len(targets[vpid]) > 1:
            result.problems.append(
                f"{vp.title!r} ({vpid}) matches variants of {len(targets[vpid])} merchant products; link it with "
                f"`vsc map add {vendor} {vpid} --to MERCHANT_PRODUCT_ID`"
            )
            continue
        if not apply:
            result.linked.append(
                {
                    "vendor_product_id": vpid,
                    "merchant_product_id": mpid,
                    "title": vp.title,
                    "variants": len(pairs),
                    "applied": False,
                }
            )
            continue
        with ctx.state.atomic():
            _record_links(ctx, vendor, vp, mp, pairs, mode="linked", fingerprint=product_fingerprint(vp), available={})
        result.linked.append(
            {"vendor_product_id": vpid, "merchant_product_id": mpid, "title": vp.title, "variants": len(pairs)}
        )
    if apply and result.linked:
        _start_cursor(ctx, vendor, read_started)
    return result


def unlink(ctx: Context, vendor: str, product_id: str, *, delete_listing: bool = False) -> dict[str, Any]:
    """Remove a product's links; with `delete_listing`, delete the merchant listing too."""
    link = ctx.state.product_link(vendor, product_id)
    if link is None:
        matches = [x for x in ctx.state.product_links(vendor) if x.vendor_product_id.endswith(f"/{product_id}")]
        link = matches[0] if len(matches) == 1 else None
    if link is None:
        raise UsageError(f"{vendor} product {product_id} is not linked", hint=f"See `vsc map list {vendor}`.")
    if delete_listing:
        merchant = ctx.merchant_row().name
        entry = ctx.state.journal_begin(
            pass_id=None,
            store=merchant,
            stream="catalog",
            kind="delete_listing",
            key=f"delete:{vendor}:{link.vendor_product_id}",
            target=link.merchant_product_id,
        )
        try:
            ctx.merchant().delete_listing(link.merchant_product_id)
        except VscError as exc:
            ctx.state.journal_finish(entry, status="failed", error=str(exc))
            raise
        ctx.state.journal_finish(entry, status="done")
    ctx.state.remove_product_link(link.id)
    return {
        "vendor_product_id": link.vendor_product_id,
        "merchant_product_id": link.merchant_product_id,
        "listing_deleted": delete_listing,
    }
