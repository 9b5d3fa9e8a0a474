"""A large first publish to a Shopify merchant in two bulk operations instead of one call per product.

Per product, publishing costs a productSet (its requested cost grows with the variants it
reads back: several hundred points for a product of 250 variants) and a publishablePublish,
paced by the merchant's bucket (2,000 points restored at 100 a second on the Standard plan):
hundreds of products take many minutes of waiting. A bulk operation costs a handful of calls
whatever it carries (platforms/shopify.md §6; `vsc.connectors.shopify.bulk`).

1. Every product is journaled as a `publish` entry under the same handle the per-product path
   would use (`mapping.publish_handle`), then one `publish_bulk` entry lists them in line order.
2. One bulk productSet makes the listings; its id is written to the `publish_bulk` entry at
   once, so a crash from here on resumes the same operation (`resume`) instead of starting
   another. A crash before the id was written finds the run among the store's recent bulk
   operations, by its document and by the handles its result lines carry.
3. One bulk publishablePublish puts them on the Online Store and reads back their media ids
   (the bulk productSet may select only one connection: the variants).
4. Each listing's links and its `publish` entry are written together, exactly as the
   per-product path writes them (`mapping.record_published`).
5. A line that failed (a userError, an internal error, a line the operation never reached)
   falls back to the per-product path, under the same handle: productSet by handle is an
   upsert, so nothing is ever made twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vsc.connectors.base import Connector, ListingDraft, Product
from vsc.engine.context import Context
from vsc.engine.mapping import (
    MapResult,
    _publish_one,
    begin_publish,
    listing_draft,
    publish_handle,
    record_published,
)
from vsc.errors import RetriableError, VscError

Status = Callable[[str], None] | None


def can_bulk(merchant: Connector) -> bool:
    """Whether the merchant's platform offers bulk mutations (Shopify does)."""
    return callable(getattr(merchant, "bulk_listings", None))


def worth_it(merchant: Connector, products: Sequence[Product], threshold: int) -> bool:
    """Whether to publish `products` in bulk: from `threshold` products on (the
    `bulk_publish_from` setting), or earlier when one by one they would outrun the
    merchant's cost bucket (large products). A single product always goes alone."""
    if not can_bulk(merchant) or len(products) < 2:
        return False
    if len(products) >= threshold:
        return True
    return bool(merchant.bulk_pays([(len(p.variants), len(p.images)) for p in products]))  # type: ignore[attr-defined]


@dataclass
class Line:
    """One product of a bulk publish, at its line number in the operation's file."""

    product: Product | None  # None: the vendor no longer has it (a resumed run)
    product_id: str
    handle: str
    entry: int
    draft: ListingDraft | None


def publish(
    ctx: Context,
    vendor: str,
    products: Sequence[Product],
    result: MapResult,
    *,
    merchant: Any,
    store: str,
    vs: Any,
    location: str | None,
    on_product: Callable[[Product | str], None] | None = None,
    on_status: Status = None,
) -> None:
    """Publish `products` (checked publishable, none linked) through bulk operations: one
    pair of runs for as many products as fit in one file of variables (20 MiB)."""
    from vsc.connectors.shopify.bulk import MAX_FILE_BYTES

    group: list[tuple[Product, ListingDraft, str]] = []
    size = 0
    for product in products:
        draft = listing_draft(ctx, vendor, product, vs=vs, location=location)
        handle = publish_handle(ctx, vendor, product)
        n = merchant.bulk_line_bytes(merchant.listing_line(draft, handle))
        if group and size + n > MAX_FILE_BYTES * 0.95:
            _publish_group(ctx, vendor, group, result, merchant, store, vs, location, on_product, on_status)
            group, size = [], 0
        group.append((product, draft, handle))
        size += n
    if group:
        _publish_group(ctx, vendor, group, result, merchant, store, vs, location, on_product, on_status)


def _publish_group(
    ctx: Context,
    vendor: str,
    group: Sequence[tuple[Product, ListingDraft, str]],
    result: MapResult,
    merchant: Any,
    store: str,
    vs: Any,
    location: str | None,
    on_product: Callable[[Product | str], None] | None,
    on_status: Status,
) -> None:
    lines = []
    for product, draft, handle in group:
        entry = begin_publish(ctx, vendor, product, handle, store=store, variants=len(draft.variants))
        lines.append(Line(product, product.id, handle, entry, draft))
    detail: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "lines": [[ln.product_id, ln.handle, ln.entry] for ln in lines],
        "operation": None,
        "publish_operation": None,
    }
    bulk_entry = ctx.state.journal_begin(
        pass_id=None,
        store=store,
        vendor=vendor,
        stream="catalog",
        kind="publish_bulk",
        key=f"publish_bulk:{vendor}",
        target=None,
        detail=detail,
    )
    _say(on_status, f"uploading {len(lines)} product(s) for one bulk operation")
    try:
        run = merchant.bulk_listings([(ln.draft, ln.handle) for ln in lines])
    except VscError as exc:
        run = None
        if isinstance(exc, RetriableError):
            # The answer to the run was lost: it may have started. Look for it by its results.
            try:
                run = _find_run(merchant, detail, lines)
            except VscError:
                run = None
        if run is None:
            # Nothing is known to have started: every product goes the per-product way.
            ctx.state.journal_finish(bulk_entry, status="failed", detail=detail, error=str(exc))
            failed = {i: str(exc) for i in range(len(lines))}
            _fallback(ctx, vendor, lines, failed, result, merchant, store, vs, location)
            _tell(on_product, lines)
            return
    _note(ctx, bulk_entry, detail, operation=run.id)
    _finish(ctx, vendor, lines, run, (bulk_entry, detail), result, merchant, store, vs, location, on_product, on_status)


def resume(
    ctx: Context,
    vendor: str,
    result: MapResult,
    *,
    merchant: Any,
    store: str,
    vs: Any,
    location: str | None,
    on_status: Status = None,
) -> set[str]:
    """Finish the bulk publishes a crash cut short for `vendor`; return the vendor product ids
    they covered (linked now, or reported)."""
    key = f"publish_bulk:{vendor}"
    entries = [e for e in ctx.state.journal(key_like=key, status="pending") if e.key == key]
    covered: set[str] = set()
    if not entries or not can_bulk(merchant):
        return covered
    for e in entries:
        detail = e.detail or {}
        ids = [str(x[0]) for x in detail.get("lines") or []]
        todo = [pid for pid in ids if not ctx.state.product_link(vendor, pid)]
        if not todo:
            ctx.state.journal_finish(e.id, status="done", detail=detail)
            continue
        _say(on_status, f"resuming the bulk publish of {len(todo)} product(s) a crash cut short")
        fetched = ctx.connector(vendor).get_products(todo)
        lines = []
        for pid, handle, entry in detail["lines"]:
            product = fetched.get(pid) if pid in todo else None
            draft = listing_draft(ctx, vendor, product, vs=vs, location=location) if product else None
            lines.append(Line(product, pid, handle, entry, draft))
        try:
            run = _find_run(merchant, detail, lines)
        except VscError as exc:
            # Left pending: the next run of the command tries again.
            result.problems.append(f"the bulk publish a crash cut short could not be picked up yet: {exc}")
            covered |= set(todo)
            continue
        if run is None:
            # It never started: the products are still unpublished, under their journaled handles.
            for ln in lines:
                if ln.product_id in todo:
                    ctx.state.journal_finish(ln.entry, status="failed", error="the bulk operation never started")
            ctx.state.journal_finish(e.id, status="failed", error="the bulk operation never started")
            continue
        _note(ctx, e.id, detail, operation=run.id)
        covered |= {ln.product_id for ln in lines if ln.product is not None}
        _finish(ctx, vendor, lines, run, (e.id, detail), result, merchant, store, vs, location, None, on_status)
    return covered


def _find_run(merchant: Any, detail: dict[str, Any], lines: Sequence[Line]) -> Any:
    """The bulk productSet run a journaled bulk publish started, or None if it never started."""
    if detail.get("operation"):
        return merchant.bulk_get(detail["operation"])
    # The run's answer was never recorded: look for it among the store's recent runs.
    for candidate in merchant.bulk_candidates("bulk_product_set", datetime.fromisoformat(detail["started"])):
        candidate = merchant.bulk_wait(candidate)
        if _ours(merchant.bulk_results(candidate), lines):
            return candidate
    return None


def _ours(results: dict[int, dict[str, Any]], lines: Sequence[Line]) -> bool:
    """Whether bulk productSet results carry the handles of `lines` (some other publish's run does not)."""
    seen = 0
    for n, line in results.items():
        product = (((line.get("data") or {}).get("productSet") or {}).get("product")) or {}
        if product.get("handle"):
            if n >= len(lines) or product["handle"] != lines[n].handle:
                return False
            seen += 1
    return seen > 0


def _finish(
    ctx: Context,
    vendor: str,
    lines: list[Line],
    run: Any,
    journal: tuple[int, dict[str, Any]],
    result: MapResult,
    merchant: Any,
    store: str,
    vs: Any,
    location: str | None,
    on_product: Callable[[Product | str], None] | None,
    on_status: Status,
) -> None:
    total = len(lines)
    bulk_entry, detail = journal

    def progress(what: str) -> Callable[[Any], None]:
        return lambda r: _say(on_status, f"{what}: {r.status.lower()}, {r.object_count}/{total}")

    failed: dict[int, str] = {}
    created: dict[int, Product] = {}
    try:
        run = merchant.bulk_wait(run, progress("bulk productSet"))
        results = merchant.bulk_results(run)
    except VscError as exc:
        ctx.state.journal_finish(bulk_entry, status="pending", detail=detail, error=str(exc))
        result.problems.append(f"the bulk publish did not finish ({exc}); run the command again to pick it up")
        _tell(on_product, lines)
        return
    for i, ln in enumerate(lines):
        if ln.product is None or ctx.state.product_link(vendor, ln.product_id):
            continue
        try:
            made = merchant.listing_from_line(results.get(i))
        except VscError as exc:
            failed[i] = str(exc)
            continue
        if made.handle and made.handle != ln.handle:
            failed[i] = f"the bulk line made {made.handle}, not {ln.handle}"
        else:
            created[i] = made
    media = _publish_created(ctx, journal, lines, created, failed, merchant, progress)
    for i, made in created.items():
        ln = lines[i]
        assert ln.product is not None and ln.draft is not None
        try:
            record_published(ctx, vendor, ln.product, made, ln.draft, media[i], ln.entry, ln.handle, result)
        except VscError as exc:
            failed[i] = str(exc)
    for ln in lines:
        if ln.product is None and not ctx.state.product_link(vendor, ln.product_id):
            ctx.state.journal_finish(ln.entry, status="failed", error="the vendor no longer has this product")
            result.problems.append(f"{vendor} no longer has product {ln.product_id}; it was not linked")
    _fallback(ctx, vendor, lines, failed, result, merchant, store, vs, location)
    ctx.state.journal_finish(
        bulk_entry,
        status="done",
        detail={
            **detail,
            "status": run.status,
            "error_code": run.error_code,
            "linked": len(created) - len([i for i in created if i in failed]),
            "fell_back": len(failed),
        },
    )
    _tell(on_product, lines)


def _publish_created(
    ctx: Context,
    journal: tuple[int, dict[str, Any]],
    lines: Sequence[Line],
    created: dict[int, Product],
    failed: dict[int, str],
    merchant: Any,
    progress: Callable[[str], Callable[[Any], None]],
) -> dict[int, list[str | None]]:
    """Put the new listings on the Online Store in one bulk run; their media ids by line.
    Lines the run did not do are published one by one; a listing that cannot be is moved to `failed`."""
    order = sorted(created)
    media: dict[int, list[str | None]] = {}
    results: dict[int, dict[str, Any]] = {}
    ran = False
    if order:
        try:
            earlier = journal[1].get("publish_operation")
            run = merchant.bulk_get(earlier) if earlier else merchant.bulk_publish([created[i].id for i in order])
            if run is not None:
                _note(ctx, journal[0], journal[1], publish_operation=run.id)
                run = merchant.bulk_wait(run, progress("bulk publish"))
                results = merchant.bulk_results(run)
                ran = True
        except VscError:
            results = {}
    for k, i in enumerate(order):
        try:
            if ran:
                media[i] = [img.id for img in merchant.media_from_line(results.get(k))]
                continue
        except VscError:
            pass
        try:
            merchant.publish_listing(created[i].id)
            vendor_images = (lines[i].product.images if lines[i].product else ()) or ()
            media[i] = list(merchant._media_ids(created[i].id)) if vendor_images else []
        except VscError as exc:
            failed[i] = str(exc)
    for i in list(created):
        if i in failed:
            del created[i]
    return media


def _fallback(
    ctx: Context,
    vendor: str,
    lines: Sequence[Line],
    failed: dict[int, str],
    result: MapResult,
    merchant: Any,
    store: str,
    vs: Any,
    location: str | None,
) -> None:
    """Publish the products whose bulk line failed one by one, under the handle they were journaled with."""
    for i in sorted(failed):
        ln = lines[i]
        if ln.product is None:
            continue
        ctx.state.journal_finish(ln.entry, status="failed", error=f"bulk line {i}: {failed[i]}")
        _publish_one(ctx, vendor, ln.product, result, vs=vs, location=location, merchant=merchant, store=store)


def _note(ctx: Context, entry: int, detail: dict[str, Any], **values: Any) -> None:
    """Write what a bulk publish learnt into its (still pending) journal entry at once."""
    detail.update(values)
    ctx.state.journal_finish(entry, status="pending", detail=detail)


def _say(on_status: Status, text: str) -> None:
    if on_status is not None:
        on_status(text)


def _tell(on_product: Callable[[Product | str], None] | None, lines: Sequence[Line]) -> None:
    if on_product is not None:
        for ln in lines:
            on_product(ln.product or ln.product_id)
