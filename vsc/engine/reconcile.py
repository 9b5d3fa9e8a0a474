"""`vsc reconcile`: compare every link on both sides, report the drift, repair it through the planner.

A pass only looks at what changed since its cursor, trusting the fingerprints of
what it last applied. Reconciling reads every linked object on both stores and
compares what the merchant shows with what it should show (the vendor's values
through the merchant's rules), so drift that no change feed reports becomes
visible: a merchant-side edit of a vendor-owned field, a lost write, a listing or
variant deleted by hand.

Each stream registers a `Reconciler`: a `check` that reads one vendor's links
and appends `Drift`s to the report, and a `fix` that repairs them *in the state
only*, so the stream's own planner plans the write in the pass that follows
(journaled like any other): for the catalog, the fingerprint of a drifted field
is reset and the vendor's products are read again in full. Streams still to
come (inventory, orders, tracking) add theirs with `register`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from vsc.config import VendorSettings
from vsc.engine import catalog
from vsc.engine.context import Context
from vsc.state import now_utc

log = logging.getLogger("vsc.engine.reconcile")

#: Never equal to a value read from a store: a fingerprint field set to it is planned again.
DRIFTED = "(reconcile: drifted)"


@dataclass
class Drift:
    """One difference between what the merchant shows and what it should show.

    `expected` is what vsc would have the merchant show (the vendor's value through the
    rules), `merchant` what it shows (None when the object is missing). `fix` says what
    `--fix` does about it; None means a person must decide (the hint says how).
    """

    stream: str
    vendor: str
    kind: str  # field | image | price | missing
    what: str
    vendor_product_id: str | None = None
    merchant_product_id: str | None = None
    variant: str | None = None
    expected: Any = None
    merchant: Any = None
    fix: str | None = None
    hint: str | None = None
    link_id: int | None = None
    variant_link_id: int | None = None
    fixed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}

    @property
    def subject(self) -> str:
        where = self.variant or self.vendor_product_id or self.merchant_product_id or ""
        return f"{self.vendor} {where}".strip()


@dataclass
class Report:
    """What a reconcile run found: drifts, how many links were compared, and stores that failed."""

    drifts: list[Drift] = field(default_factory=list)
    checked: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, drift: Drift) -> None:
        self.drifts.append(drift)

    def as_json(self) -> dict[str, Any]:
        return {
            "in_step": not self.drifts and not self.errors,
            "checked": dict(self.checked),
            "drifts": [d.as_json() for d in self.drifts],
            "errors": list(self.errors),
        }


@dataclass(frozen=True)
class Reconciler:
    """One stream's comparison (`check`) and state repair (`fix`) for one vendor."""

    stream: str
    check: Callable[[Context, str, Report], None]
    fix: Callable[[Context, str, list[Drift]], None] | None = None


RECONCILERS: dict[str, Reconciler] = {}


def register(stream: str, check: Callable[..., None], fix: Callable[..., None] | None = None) -> Reconciler:
    """Add (or replace) a stream's reconciler; streams plug in here."""
    rec = Reconciler(stream, check, fix)
    RECONCILERS[stream] = rec
    return rec


def check(
    ctx: Context,
    vendors: Sequence[str],
    *,
    streams: Iterable[str] | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> Report:
    """Compare the links of these vendors for every registered stream (or the given ones)."""
    from vsc.errors import VscError

    report = Report()
    wanted = [s for s in (streams or RECONCILERS) if s in RECONCILERS]
    for vendor in vendors:
        for stream in wanted:
            if progress is not None:
                progress(vendor, stream)
            try:
                RECONCILERS[stream].check(ctx, vendor, report)
            except VscError as exc:
                report.errors.append(f"{vendor} ({stream}): {exc}")
    return report


def repair(ctx: Context, report: Report) -> set[str]:
    """Repair the fixable drifts in the state, journaled; returns the streams whose pass applies them."""
    streams: set[str] = set()
    by_key: dict[tuple[str, str], list[Drift]] = {}
    for d in report.drifts:
        if d.fix is not None:
            by_key.setdefault((d.stream, d.vendor), []).append(d)
    for (stream, vendor), drifts in by_key.items():
        rec = RECONCILERS.get(stream)
        if rec is None or rec.fix is None:
            continue
        rec.fix(ctx, vendor, drifts)
        streams.add(stream)
    return streams


def _journal(ctx: Context, vendor: str, kind: str, target: str, summary: str, **detail: Any) -> None:
    state = ctx.state
    entry = state.journal_begin_action(
        pass_id=None,
        store=ctx.merchant_row().name,
        vendor=vendor,
        stream="reconcile",
        kind=kind,
        key=f"reconcile:{kind}:{vendor}:{target}:{now_utc().timestamp()}",
        target=target,
        detail={"summary": summary, **detail},
    )
    state.journal_finish(entry, status="done")


# -- the catalog ---------------------------------------------------------------------------

# vendor_owns name → fingerprint key, and how to read it from a product (merchant or vendor)
_FIELDS: dict[str, Callable[[Any], Any]] = {
    "title": lambda p: p.title or "",
    "description": lambda p: (p.description_html or "").strip(),
    "tags": lambda p: sorted(p.tags),
    "product_type": lambda p: p.product_type or "",
}


def _vendor_settings(ctx: Context, vendor: str) -> VendorSettings:
    vs = ctx.settings.vendor(vendor)
    return VendorSettings(**{**vs.__dict__, "auto_variants": ctx.settings.auto_variants})


def check_catalog(ctx: Context, vendor: str, report: Report) -> None:
    """Listing fields the vendor owns, images vsc placed, variant prices through the price rule,
    and whether every linked product and variant still exists on both sides."""
    state = ctx.state
    links = [link for link in state.product_links(vendor) if link.state != "vendor_deleted"]
    if not links:
        return
    vs = _vendor_settings(ctx, vendor)
    owns = set(vs.vendor_owns)
    vendor_products = ctx.connector(vendor).get_products([link.vendor_product_id for link in links])
    merchant_products = ctx.merchant().get_products([link.merchant_product_id for link in links])
    vlinks: dict[int, list[Any]] = {}
    for v in state.variant_links(vendor=vendor):
        vlinks.setdefault(v.product_link_id, []).append(v)
    again = "read it again in full: the pass applies on_vendor_delete and marks the link vendor_deleted"
    for link in links:
        report.checked["products"] += 1
        base = {
            "stream": catalog.STREAM,
            "vendor": vendor,
            "vendor_product_id": link.vendor_product_id,
            "merchant_product_id": link.merchant_product_id,
            "link_id": link.id,
        }
        vp = vendor_products.get(link.vendor_product_id)
        mp = merchant_products.get(link.merchant_product_id)
        if vp is None:
            report.add(Drift(kind="missing", what="vendor product", expected=link.vendor_product_id, fix=again, **base))
        if mp is None:
            report.add(
                Drift(
                    kind="missing",
                    what="merchant listing",
                    expected=link.merchant_product_id,
                    hint=f"Publish it again: `vsc map remove {vendor} {link.vendor_product_id}` then "
                    f"`vsc map add {vendor} {link.vendor_product_id}`.",
                    **base,
                )
            )
        if vp is None or mp is None:
            continue
        for name, read in _FIELDS.items():
            if name in owns and read(vp) != read(mp):
                report.add(
                    Drift(
                        kind="field",
                        what=name,
                        expected=read(vp),
                        merchant=read(mp),
                        fix="write the vendor's value",
                        **base,
                    )
                )
        if "status" in owns:
            want = catalog.listing_status(vp.status, vs.publish_status)
            if want != mp.status:
                report.add(
                    Drift(kind="field", what="status", expected=want, merchant=mp.status, fix="write it", **base)
                )
        if "images" in owns:
            vendor_srcs = {img.src for img in vp.images}
            merchant_ids = {img.id for img in mp.images if img.id}
            merchant_srcs = {img.src for img in mp.images}
            for entry in link.fingerprint.get("images") or []:
                src, media_id = entry[0], entry[2] if len(entry) > 2 else None
                if src not in vendor_srcs:
                    continue  # the vendor dropped it: an ordinary change the next pass applies
                if not ((media_id and media_id in merchant_ids) or src in merchant_srcs):
                    report.add(
                        Drift(kind="image", what="image", expected=src, merchant=None, fix="add it again", **base)
                    )
        by_vendor = {v.id: v for v in vp.variants}
        by_merchant = {v.id: v for v in mp.variants}
        for vl in vlinks.get(link.id, []):
            if vl.state != "active":
                continue
            report.checked["variants"] += 1
            vbase = {**base, "variant": vl.sku or vl.vendor_variant_id, "variant_link_id": vl.id}
            vv = by_vendor.get(vl.vendor_variant_id)
            mv = by_merchant.get(vl.merchant_variant_id)
            if vv is None:
                report.add(
                    Drift(
                        kind="missing",
                        what="vendor variant",
                        expected=vl.vendor_variant_id,
                        fix="read the product again: the pass removes the variant (auto_variants) or reports it",
                        **vbase,
                    )
                )
            if mv is None:
                report.add(
                    Drift(
                        kind="missing",
                        what="merchant variant",
                        expected=vl.merchant_variant_id,
                        fix="unlink it, so the pass adds it again" if vs.auto_variants else None,
                        hint=None if vs.auto_variants else "Turn auto_variants on to have --fix add it again.",
                        **vbase,
                    )
                )
            if vv is None or mv is None:
                continue
            for name in ("price", "compare_at_price"):
                if name not in owns:
                    continue
                want = vs.price_rule.apply(getattr(vv, name))
                have = getattr(mv, name)
                if want != have and not (name == "compare_at_price" and not want and not have):
                    report.add(
                        Drift(
                            kind="price",
                            what=name.replace("_", "-"),
                            expected=want,
                            merchant=have,
                            fix="write the vendor's price through the price rule",
                            **vbase,
                        )
                    )


def fix_catalog(ctx: Context, vendor: str, drifts: list[Drift]) -> None:
    """Reset what vsc remembers of the drifted values, so the catalog planner plans their writes,
    and make the next pass read the vendor's linked products in full."""
    state = ctx.state
    with state.atomic():
        for d in drifts:
            if d.kind in ("field", "image") and d.link_id is not None:
                link = state.product_link_by_id(d.link_id)
                fp = dict(link.fingerprint)
                if d.kind == "image":
                    fp["images"] = [e for e in fp.get("images") or [] if e[0] != d.expected]
                else:
                    fp[d.what] = DRIFTED
                state.update_product_link(link.id, fingerprint=fp)
                _journal(ctx, vendor, "reset_fingerprint", link.merchant_product_id, f"{d.what} drifted: write again")
            elif d.kind == "price" and d.variant_link_id is not None:
                vl = next(v for v in state.variant_links(vendor=vendor) if v.id == d.variant_link_id)
                key = d.what.replace("-", "_")
                state.update_variant_link(vl.id, fingerprint={**vl.fingerprint, key: DRIFTED})
                _journal(ctx, vendor, "reset_fingerprint", vl.merchant_variant_id, f"{d.what} drifted: write again")
            elif d.kind == "missing" and d.what == "merchant variant" and d.variant_link_id is not None:
                state.remove_variant_link(d.variant_link_id)
                _journal(
                    ctx, vendor, "unlink_variant", str(d.expected), "merchant variant gone: unlinked to add it again"
                )
            d.fixed = True
        state.clear_cursor(vendor, catalog.STREAM)


register(catalog.STREAM, check_catalog, fix_catalog)
