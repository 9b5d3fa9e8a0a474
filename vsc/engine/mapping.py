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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vsc.connectors.base import MAX_OPTIONS, MAX_VARIANTS, Connector, ListingDraft, Product, Variant
from vsc.engine import currency
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


def _refuse_across_currencies(ctx: Context, vendor: str, products: Sequence[Product]) -> None:
    """Linking keeps the merchant's prices, but the vendor's price edits would follow: refused
    across currencies while the vendor owns prices (`vsc.engine.currency`)."""
    if not currency.vendor_owns_prices(ctx, vendor):
        return
    found = currency.mismatch(ctx, vendor, products)
    if found is not None:
        raise UsageError(currency.explain(vendor, found, what="nothing was linked"))


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
            fingerprint=variant_values(vv),
            merchant_available=available.get(mv.id),
        )
    return link


def _start_cursor(ctx: Context, vendor: str, read_started: Any) -> None:
    if ctx.state.cursor(vendor, "catalog") is None:
        ctx.state.set_cursor(vendor, "catalog", read_started)


def publish(
    ctx: Context,
    vendor: str,
    product_ids: Sequence[str] = (),
    *,
    products: Sequence[Product] | None = None,
    on_product: Callable[[Product | str], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> MapResult:
    """Create merchant listings for vendor products and link every variant.

    Products are read by id, or given already read (`products`, from a selection).
    Each product stands alone: a failure is recorded in `problems` and the next one
    goes on. `on_product` is told of each product once it is finished (for progress),
    `on_status` of what a bulk operation is doing.

    From `bulk_publish_from` products on (a setting), or fewer large ones that would
    outrun the cost bucket, a merchant that can (Shopify) gets them through bulk
    operations (`vsc.engine.bulk_publish.worth_it`); a bulk publish a crash cut short is
    finished first, from the operation's own results.
    """
    from vsc.engine import bulk_publish

    ctx.vendor_row(vendor)
    merchant_name = ctx.merchant_row().name
    result = MapResult()
    read_started = ctx.clock()
    merchant = ctx.merchant()
    vs = ctx.settings.vendor(vendor)
    location = ctx.merchant_location(vendor)
    resumed = bulk_publish.resume(
        ctx, vendor, result, merchant=merchant, store=merchant_name, vs=vs, location=location, on_status=on_status
    )
    items: list[Product | str]
    if products is None:
        connector = ctx.connector(vendor)
        fetched = connector.get_products(list(product_ids))
        broken = connector.take_unreadable()
        by_id = {p.id: p for p in fetched.values()}
        items = []
        for wanted in product_ids:
            found = by_id.get(wanted) or next((p for p in by_id.values() if p.id.endswith(f"/{wanted}")), None)
            unreadable = next((e for i, e in broken.items() if wanted in (i, i.rsplit("/", 1)[-1])), None)
            if found is None and unreadable is not None:
                result.problems.append(f"cannot publish {wanted}: {unreadable}")
                continue
            items.append(found or wanted)
    else:
        items = list(products)
    ready: list[Product] = []
    for item in items:
        if isinstance(item, Product) and item.id in resumed:
            pass  # finished above, from the bulk operation a crash left
        elif isinstance(item, str):
            result.problems.append(f"{vendor} has no product {item}")
        elif ctx.state.product_link(vendor, item.id):
            result.skipped.append(f"{item.title!r} ({item.id}) is already linked")
        elif why := check_publishable(item):
            result.problems.append(f"cannot publish {why}")
        else:
            ready.append(item)
            continue
        if on_product is not None:
            on_product(item)
    if bulk_publish.worth_it(merchant, ready, ctx.settings.bulk_publish_from):
        bulk_publish.publish(
            ctx,
            vendor,
            ready,
            result,
            merchant=merchant,
            store=merchant_name,
            vs=vs,
            location=location,
            on_product=on_product,
            on_status=on_status,
        )
    else:
        for item in ready:
            _publish_one(ctx, vendor, item, result, vs=vs, location=location, merchant=merchant, store=merchant_name)
            if on_product is not None:
                on_product(item)
    _start_cursor(ctx, vendor, read_started)
    return result


def _publish_one(
    ctx: Context,
    vendor: str,
    product: Product,
    result: MapResult,
    *,
    vs: Any,
    location: str | None,
    merchant: Connector,
    store: str,
) -> None:
    if ctx.state.product_link(vendor, product.id):
        result.skipped.append(f"{product.title!r} ({product.id}) is already linked")
        return
    why = check_publishable(product)
    found = None if why else currency.mismatch(ctx, vendor, [product])
    if found is not None:
        why = f"{product.title!r} ({product.id}): " + currency.explain(vendor, found, what="it is not published")
    if why:
        result.problems.append(f"cannot publish {why}")
        return
    draft = listing_draft(ctx, vendor, product, vs=vs, location=location)
    handle = publish_handle(ctx, vendor, product)
    entry = begin_publish(ctx, vendor, product, handle, store=store, variants=len(draft.variants))
    try:
        created = merchant.create_listing(draft, handle=handle)
        record_published(
            ctx, vendor, product, created, draft, [img.id for img in created.images], entry, handle, result
        )
    except VscError as exc:
        ctx.state.journal_finish(entry, status="failed", error=str(exc))
        result.problems.append(f"publishing {product.title!r} ({product.id}) failed: {exc}")


def listing_draft(ctx: Context, vendor: str, product: Product, *, vs: Any, location: str | None) -> ListingDraft:
    """The merchant listing a vendor product becomes (prices by rule, stock at `location`)."""
    return ListingDraft(
        title=product.title,
        description_html=product.description_html,
        vendor=ctx.vendor_label(vendor),
        product_type=product.product_type,
        tags=product.tags,
        status=listing_status(product.status, vs.publish_status),
        options=product.options,
        variants=tuple(variant_draft(v, vs) for v in product.variants),
        images=product.images,
        location_id=location,
    )


def publish_handle(ctx: Context, vendor: str, product: Product) -> str:
    """The handle to publish `product` under: the one an unfinished earlier attempt used, if any.

    A publish cut short (a crash, a failed bulk line) left its handle in the journal; reusing
    it makes the retry upsert the listing the first attempt may have made.
    """
    key = f"publish:{vendor}:{product.id}"
    earlier = [e for e in ctx.state.journal(key_like=key) if e.key == key and e.status != "done"]
    handle = (earlier[-1].detail or {}).get("handle") if earlier else None
    return handle or listing_handle(vendor, product)


def begin_publish(ctx: Context, vendor: str, product: Product, handle: str, *, store: str, variants: int) -> int:
    """Journal one product's publish before anything is sent."""
    return ctx.state.journal_begin(
        pass_id=None,
        store=store,
        stream="catalog",
        kind="publish",
        key=f"publish:{vendor}:{product.id}",
        target=product.id,
        detail={"handle": handle, "title": product.title, "variants": variants},
    )


def record_published(
    ctx: Context,
    vendor: str,
    product: Product,
    created: Product,
    draft: ListingDraft,
    media_ids: Sequence[str | None],
    entry: int,
    handle: str,
    result: MapResult,
) -> None:
    """Link every variant of a listing just made, and close its journal entry, in one transaction."""
    pairs = _pair_created(product, created)
    available = {mv.id: d.available for (vv, mv), d in zip(pairs, draft.variants, strict=False)}
    with ctx.state.atomic():
        _record_links(
            ctx,
            vendor,
            product,
            created,
            pairs,
            mode="published",
            fingerprint=product_fingerprint(product, list(media_ids)),
            available=available,
        )
        ctx.state.journal_finish(entry, status="done", detail={"handle": handle, "merchant_product_id": created.id})
    result.linked.append(
        {
            "vendor_product_id": product.id,
            "merchant_product_id": created.id,
            "title": product.title,
            "variants": len(pairs),
        }
    )


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
    _refuse_across_currencies(ctx, vendor, [product])
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


@dataclass
class AutoMatch:
    """A vendor product whose unlinked variants pair, by key, with variants of one merchant product."""

    vendor_product: Product
    merchant_product: Product
    pairs: list[tuple[Variant, Variant]]

    @property
    def count_mismatch(self) -> bool:
        """The two products do not pair variant for variant (some variants stay unlinked)."""
        return not (len(self.pairs) == len(self.vendor_product.variants) == len(self.merchant_product.variants))

    def as_json(self) -> dict[str, Any]:
        return {
            "vendor_product_id": self.vendor_product.id,
            "title": self.vendor_product.title,
            "merchant_product_id": self.merchant_product.id,
            "merchant_title": self.merchant_product.title,
            "variants": len(self.pairs),
            "vendor_variants": len(self.vendor_product.variants),
            "merchant_variants": len(self.merchant_product.variants),
            "pairs": [
                {"vendor_variant_id": v.id, "merchant_variant_id": m.id, "sku": v.sku, "barcode": v.barcode}
                for v, m in self.pairs
            ],
        }


@dataclass
class AutoReview:
    """What `vsc map auto` would do, sorted for a person to review before anything is linked.

    `matched` are the unambiguous matches (the only ones `apply_auto` links);
    `ambiguous` are keys used more than once on a side, or vendor products whose variants
    match variants of several merchant products; `unmatched_vendor` / `unmatched_merchant`
    are unlinked variants with no counterpart (or no key); `mismatched` are matches whose
    products do not pair variant for variant. `problems` says all of it in sentences.
    """

    by: str
    matched: list[AutoMatch] = field(default_factory=list)
    ambiguous: list[dict[str, Any]] = field(default_factory=list)
    unmatched_vendor: list[dict[str, Any]] = field(default_factory=list)
    unmatched_merchant: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def mismatched(self) -> list[AutoMatch]:
        return [m for m in self.matched if m.count_mismatch]

    def as_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "matched": [m.as_json() for m in self.matched],
            "ambiguous": self.ambiguous,
            "unmatched_vendor": self.unmatched_vendor,
            "unmatched_merchant": self.unmatched_merchant,
            "variant_count_mismatches": [m.as_json() for m in self.mismatched],
        }


def review_auto(ctx: Context, vendor: str, by: str = "sku") -> AutoReview:
    """Pair the vendor's unlinked variants with the merchant's unlinked variants by SKU or barcode.

    Reads both catalogs and changes nothing. A key is used only when it is unique on both
    sides; a vendor product is matched only when all its paired variants sit in one
    merchant product.
    """
    if by not in ("sku", "barcode"):
        raise UsageError(f"--by must be sku or barcode, not {by!r}")
    ctx.vendor_row(vendor)
    review = AutoReview(by=by)
    vendor_products = list(ctx.connector(vendor).list_products(None))
    _refuse_across_currencies(ctx, vendor, vendor_products)
    merchant_products = list(ctx.merchant().list_products(None))
    linked_vendor = {v.vendor_variant_id for v in ctx.state.variant_links(vendor=vendor)}
    linked_products = {link.vendor_product_id for link in ctx.state.product_links(vendor)}
    linked_merchant = {v.merchant_variant_id for v in ctx.state.variant_links()}
    v_product = {v.id: p for p in vendor_products for v in p.variants}
    m_product = {v.id: p for p in merchant_products for v in p.variants}
    vendor_variants = [
        v for p in vendor_products if p.id not in linked_products for v in p.variants if v.id not in linked_vendor
    ]
    merchant_variants = [v for p in merchant_products for v in p.variants if v.id not in linked_merchant]
    matching = match_variants(vendor_variants, merchant_variants, by)
    review.problems += matching.problems

    def vrow(v: Variant, reason: str) -> dict[str, Any]:
        p = v_product[v.id]
        return {
            "vendor_product_id": p.id,
            "title": p.title,
            "vendor_variant_id": v.id,
            by: _key(v, by) or None,
            "reason": reason,
        }

    v_index: dict[str, list[Variant]] = defaultdict(list)
    m_index: dict[str, list[Variant]] = defaultdict(list)
    for v in vendor_variants:
        if _key(v, by):
            v_index[_key(v, by)].append(v)
        else:
            review.unmatched_vendor.append(vrow(v, f"no {by}"))
    for m in merchant_variants:
        if _key(m, by):
            m_index[_key(m, by)].append(m)
    for key, vs in v_index.items():
        ms = m_index.get(key, [])
        if len(vs) > 1 or len(ms) > 1:
            review.ambiguous.append(
                {
                    "key": key,
                    "reason": f"used by {len(vs)} vendor and {len(ms)} merchant variant(s)",
                    "vendor_variant_ids": [v.id for v in vs],
                    "merchant_variant_ids": [m.id for m in ms],
                }
            )
        elif not ms:
            review.unmatched_vendor.append(vrow(vs[0], f"no merchant variant has this {by}"))
    for key, ms in m_index.items():
        if key not in v_index:
            for m in ms:
                p = m_product[m.id]
                review.unmatched_merchant.append(
                    {"merchant_product_id": p.id, "title": p.title, "merchant_variant_id": m.id, by: key}
                )
    groups: dict[tuple[str, str], list[tuple[Variant, Variant]]] = defaultdict(list)
    targets: dict[str, set[str]] = defaultdict(set)
    for vv, mv in matching.pairs:
        groups[(v_product[vv.id].id, m_product[mv.id].id)].append((vv, mv))
        targets[v_product[vv.id].id].add(m_product[mv.id].id)
    by_id_v = {p.id: p for p in vendor_products}
    by_id_m = {p.id: p for p in merchant_products}
    split: set[str] = set()
    for (vpid, mpid), pairs in groups.items():
        vp = by_id_v[vpid]
        if len(targets[vpid]) > 1:
            if vpid not in split:
                split.add(vpid)
                review.problems.append(
                    f"{vp.title!r} ({vpid}) matches variants of {len(targets[vpid])} merchant products; link it with "
                    f"`vsc map add {vendor} {vpid} --to MERCHANT_PRODUCT_ID`"
                )
                review.ambiguous.append(
                    {
                        "key": None,
                        "reason": f"{vp.title!r} ({vpid}) matches variants of {len(targets[vpid])} merchant products",
                        "vendor_variant_ids": [v.id for p in groups if p[0] == vpid for v, _ in groups[p]],
                        "merchant_variant_ids": [m.id for p in groups if p[0] == vpid for _, m in groups[p]],
                    }
                )
            continue
        review.matched.append(AutoMatch(vp, by_id_m[mpid], pairs))
    return review


def apply_auto(ctx: Context, vendor: str, review: AutoReview) -> MapResult:
    """Link the unambiguous matches of a review (and nothing else)."""
    result = MapResult(problems=list(review.problems))
    read_started = ctx.clock()
    for match in review.matched:
        vp, mp = match.vendor_product, match.merchant_product
        if ctx.state.product_link(vendor, vp.id):
            result.skipped.append(f"{vp.title!r} ({vp.id}) was linked meanwhile")
            continue
        with ctx.state.atomic():
            _record_links(
                ctx, vendor, vp, mp, match.pairs, mode="linked", fingerprint=product_fingerprint(vp), available={}
            )
        result.linked.append(
            {"vendor_product_id": vp.id, "merchant_product_id": mp.id, "title": vp.title, "variants": len(match.pairs)}
        )
    if result.linked:
        _start_cursor(ctx, vendor, read_started)
    return result


def auto_link(ctx: Context, vendor: str, by: str = "sku", *, apply: bool = True) -> MapResult:
    """Link vendor variants to merchant variants with the same SKU or barcode, product by product."""
    review = review_auto(ctx, vendor, by)
    if apply:
        return apply_auto(ctx, vendor, review)
    result = MapResult(problems=list(review.problems))
    for m in review.matched:
        result.linked.append(
            {
                "vendor_product_id": m.vendor_product.id,
                "merchant_product_id": m.merchant_product.id,
                "title": m.vendor_product.title,
                "variants": len(m.pairs),
                "applied": False,
            }
        )
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
