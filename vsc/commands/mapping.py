"""`vsc products` and `vsc map ...`: choosing vendor products and linking them to merchant listings."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vsc.cli import OPTS, MatchKey, app, emit_json, err, map_app, new_table, open_context, out, real_console
from vsc.errors import ExitStatus, UsageError
from vsc.state import State

if TYPE_CHECKING:
    from rich.table import Table

# -- products and mapping ----------------------------------------------------------------


@app.command()
def products(
    vendor: Annotated[str, typer.Argument(help="The vendor store.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The vendor's catalog, with what is linked to the merchant store."""
    c = open_context()
    c.vendor_row(vendor)
    linked_v = {v.vendor_variant_id for v in c.state.variant_links(vendor=vendor)}
    linked_p = {p.vendor_product_id for p in c.state.product_links(vendor)}
    rows = []
    connector = c.connector(vendor)
    for p in connector.list_products(None):
        rows.append(
            {
                "id": p.id,
                "title": p.title,
                "status": p.status,
                "linked": p.id in linked_p,
                "options": list(p.options),
                "variants": [
                    {
                        "id": v.id,
                        "sku": v.sku,
                        "barcode": v.barcode,
                        "price": str(v.price) if v.price is not None else None,
                        "available": v.available,
                        "options": dict(v.options),
                        "linked": v.id in linked_v,
                    }
                    for v in p.variants
                ],
            }
        )
    unreadable = connector.take_unreadable()
    if as_json:
        emit_json(rows)
    else:
        table = new_table("id", "title", "status", "variants", "linked")
        for r in rows:
            table.add_row(r["id"], r["title"], r["status"], str(len(r["variants"])), "yes" if r["linked"] else "")
        out.print(table)
    for problem in unreadable.values():  # left out of the list above: say so, never drop them silently
        err.print(f"[red]error:[/] {problem} (left out of this list)", highlight=False)
    if unreadable:
        raise typer.Exit(ExitStatus.ACTIONS_FAILED)


def _print_map_result(result: Any, as_json: bool, verb: str, *, quiet_skips: bool = False) -> None:
    if as_json:
        emit_json({"ok": result.ok, "linked": result.linked, "skipped": result.skipped, "problems": result.problems})
    else:
        for item in result.linked:
            out.print(
                f"{verb} {item['title']!r} ({item['vendor_product_id']}) → {item['merchant_product_id']}, "
                f"{item['variants']} variant(s)"
            )
        if quiet_skips and result.skipped:
            err.print(f"skipped {len(result.skipped)} product(s) already linked")
        else:
            for s in result.skipped:
                err.print(f"skipped: {s}")
        for p in result.problems:
            err.print(f"[red]problem:[/] {p}")
    if not result.ok:
        raise typer.Exit(ExitStatus.USAGE if not result.linked else ExitStatus.ACTIONS_FAILED)


class Status(StrEnum):
    active = "active"
    draft = "draft"
    archived = "archived"


def _can_ask() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def _confirm(question: str, *, what: str, hint: str) -> None:
    """Ask on the terminal; anywhere else refuse (exit 2, nothing changed) and name the flag to use."""
    if not _can_ask():
        raise UsageError(
            f"vsc asks before it {what}, and cannot ask here (not a terminal); nothing was changed", hint=hint
        )
    if not typer.confirm(question, default=False, err=True):
        err.print("Nothing was changed.")
        raise typer.Exit(ExitStatus.USAGE)


def _publish_with_progress(c: Any, vendor: str, products: list[Any], as_json: bool) -> Any:
    """Publish, showing a progress bar on stderr when it is a terminal (never with --json)."""
    from vsc.engine import mapping

    if as_json or not err.is_terminal or len(products) < 2:
        return mapping.publish(c, vendor, products=products)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("publishing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=real_console(err),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=len(products))

        def done(product: Any) -> None:
            bar.update(task, advance=1, description=getattr(product, "title", str(product))[:40])

        def status(text: str) -> None:
            # A bulk publish: what the bulk operation is doing while the bar waits for it.
            bar.update(task, description=text[:60])

        return mapping.publish(c, vendor, products=products, on_product=done, on_status=status)


def _selection_table(products: list[Any], limit: int | None) -> Table:
    table = new_table("id", "title", "status", "variants", "type", "tags")
    shown = products if limit is None else products[:limit]
    for p in shown:
        table.add_row(p.id, p.title, p.status, str(len(p.variants)), p.product_type or "", ", ".join(p.tags))
    if limit is not None and len(products) > limit:
        table.add_row("…", f"and {len(products) - limit} more (--dry-run lists them all)", "", "", "", "")
    return table


@map_app.command("add")
def map_add(
    vendor: Annotated[str, typer.Argument(help="The vendor store.")],
    product_ids: Annotated[
        list[str] | None, typer.Argument(help="Vendor product ids, as the vendor's platform prints them.")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Link to this existing merchant product instead of publishing.")
    ] = None,
    select_all: Annotated[
        bool, typer.Option("--all", help="Every product (archived ones only with --status).")
    ] = False,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Products with this tag (repeat: any of them).")
    ] = None,
    product_type: Annotated[
        list[str] | None, typer.Option("--type", help="Products of this product type (repeat: any of them).")
    ] = None,
    collection: Annotated[
        list[str] | None,
        typer.Option(
            "--collection",
            help="Products in this collection (Shopify) or category (WooCommerce), by id or name (repeat: any).",
        ),
    ] = None,
    status: Annotated[
        list[Status] | None, typer.Option("--status", help="Products with this status (default: active and draft).")
    ] = None,
    updated_since: Annotated[
        str | None, typer.Option("--updated-since", help="Products changed since: 2024-05-01, an ISO time, or 7d/12h.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Publish what the filters select without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what the filters select and stop.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Publish vendor products to the merchant store: by id, or every product a filter selects.

    Ids publish at once. Filters (--all, --tag, --type, --collection, --status,
    --updated-since) show how many products and variants they select and ask before
    publishing (--yes: do not ask; not on a terminal, --yes is required).
    """
    from vsc.engine import mapping, selection

    sel = selection.Selection(
        all=select_all,
        tags=tuple(tag or ()),
        product_types=tuple(product_type or ()),
        collections=tuple(collection or ()),
        statuses=tuple(s.value for s in status or ()),
        updated_since=selection.parse_since(updated_since) if updated_since else None,
    )
    c = open_context()
    if to:
        if len(product_ids or []) != 1 or sel.given:
            raise UsageError("--to links exactly one vendor product, given by id")
        result = mapping.link_to(c, vendor, (product_ids or [])[0], to)
        _print_map_result(result, as_json, "linked")
        return
    if product_ids and sel.given:
        raise UsageError(
            "give product ids or filters, not both", hint="Filters (--all, --tag, ...) select the products themselves."
        )
    if not product_ids and not sel.given:
        raise UsageError(
            "say which products to publish",
            hint=f"Give product ids (see `vsc products {vendor}`), a filter such as --tag TAG, or --all.",
        )
    if product_ids:
        if dry_run:
            raise UsageError("--dry-run goes with filters; with ids, see `vsc products VENDOR`")
        result = mapping.publish(c, vendor, product_ids)
        _print_map_result(result, as_json, "published")
        return

    plan = selection.select(c, vendor, sel)
    summary = {
        "matched": plan.matched,
        "to_publish": len(plan.to_publish),
        "variants": plan.variants,
        "already_linked": len(plan.already_linked),
        "unpublishable": [why for _, why in plan.unpublishable],
    }
    if plan.matched == 0:
        raise UsageError(
            f"no product of {vendor} matches {sel.describe()}; nothing was changed",
            hint=f"See `vsc products {vendor}`.",
        )
    if not as_json:
        out.print(
            f"{vendor}: {plan.matched} product(s) match {sel.describe()}: "
            f"{len(plan.to_publish)} to publish ({plan.variants} variant(s)), "
            f"{len(plan.already_linked)} already linked, {len(plan.unpublishable)} cannot be published."
        )
        for _, why in plan.unpublishable:
            err.print(f"[yellow]cannot publish:[/] {why}", highlight=False)
        if plan.to_publish:
            out.print(_selection_table(plan.to_publish, None if dry_run else 15))
    if dry_run or not plan.to_publish:
        if as_json:
            emit_json(
                {"ok": True, "dry_run": dry_run, "selected": summary, "linked": [], "skipped": [], "problems": []}
            )
        elif not plan.to_publish:
            out.print("Nothing to publish.")
        return
    if not yes:
        if as_json:
            raise UsageError(
                "--json does not ask before publishing; nothing was changed", hint="Add --yes to publish the selection."
            )
        _confirm(
            f"Publish {len(plan.to_publish)} product(s) ({plan.variants} variant(s)) to {c.merchant_row().name}?",
            what=f"publishes {len(plan.to_publish)} product(s)",
            hint="Add --yes to publish them, or --dry-run to list them.",
        )
    result = _publish_with_progress(c, vendor, plan.to_publish, as_json)
    result.problems = [f"cannot publish {why}" for _, why in plan.unpublishable] + result.problems
    result.skipped += [f"{p.title!r} ({p.id}) is already linked" for p in plan.already_linked]
    if as_json:
        emit_json(
            {
                "ok": result.ok,
                "dry_run": False,
                "selected": summary,
                "linked": result.linked,
                "skipped": result.skipped,
                "problems": result.problems,
            }
        )
        if not result.ok:
            raise typer.Exit(ExitStatus.USAGE if not result.linked else ExitStatus.ACTIONS_FAILED)
        return
    # The unpublishable were named before asking; say the rest, and let them count for the exit code.
    shown = mapping.MapResult(
        linked=result.linked, skipped=result.skipped, problems=result.problems[len(plan.unpublishable) :]
    )
    _print_map_result(shown, as_json, "published", quiet_skips=True)
    if not result.ok:
        raise typer.Exit(ExitStatus.USAGE if not result.linked else ExitStatus.ACTIONS_FAILED)


def _review_table(review: Any, limit: int = 20) -> Table:
    """One row per finding: matches first, then what is ambiguous, then what matched nothing."""
    by = review.by
    table = new_table("result", "vendor", "merchant", "variants", "detail", title=f"map auto by {by}: review")
    for m in review.matched:
        v, mp = m.vendor_product, m.merchant_product
        detail = ""
        if m.count_mismatch:
            detail = (
                f"variant counts differ: vendor {len(v.variants)}, merchant {len(mp.variants)}, {len(m.pairs)} paired"
            )
        table.add_row(
            "[green]matched[/]" if not m.count_mismatch else "[yellow]matched*[/]",
            f"{v.title} ({v.id})",
            f"{mp.title} ({mp.id})",
            str(len(m.pairs)),
            detail,
        )
    for a in review.ambiguous:
        table.add_row(
            "[red]ambiguous[/]",
            ", ".join(a["vendor_variant_ids"]),
            ", ".join(a["merchant_variant_ids"]),
            "",
            (f"{by} {a['key']!r}: " if a["key"] else "") + a["reason"],
        )
    for u in review.unmatched_vendor[:limit]:
        table.add_row(
            "unmatched (vendor)",
            f"{u['title']} ({u['vendor_variant_id']})",
            "",
            "",
            f"{by} {u[by]!r}: {u['reason']}" if u[by] else u["reason"],
        )
    if len(review.unmatched_vendor) > limit:
        table.add_row("unmatched (vendor)", f"… {len(review.unmatched_vendor) - limit} more (see --json)", "", "", "")
    for u in review.unmatched_merchant[:limit]:
        table.add_row("unmatched (merchant)", "", f"{u['title']} ({u['merchant_variant_id']})", "", f"{by} {u[by]!r}")
    if len(review.unmatched_merchant) > limit:
        table.add_row(
            "unmatched (merchant)", "", f"… {len(review.unmatched_merchant) - limit} more (see --json)", "", ""
        )
    return table


@map_app.command("auto")
def map_auto(
    vendor: Annotated[str, typer.Argument(help="The vendor store.")],
    by: Annotated[MatchKey, typer.Option(help="The key both stores share.")] = MatchKey.sku,
    apply: Annotated[bool, typer.Option("--apply", "--yes", "-y", help="Link the matches without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the review; link nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Review, then link vendor variants to merchant variants with the same SKU or barcode.

    The review lists matches, ambiguous keys, what matched nothing on either side and
    products whose variant counts differ; only unambiguous matches are ever linked.
    On a terminal vsc asks before linking (--apply: do not ask); --dry-run only reviews;
    elsewhere (scripts, cron) it links the matches, as it always has.
    """
    from vsc.engine import mapping

    if apply and dry_run:
        raise UsageError("give --apply or --dry-run, not both")
    c = open_context()
    review = mapping.review_auto(c, vendor, by.value)
    variants = sum(len(m.pairs) for m in review.matched)
    if not as_json:
        out.print(_review_table(review))
        out.print(
            f"{len(review.matched)} product(s) matched ({variants} variant(s)), {len(review.mismatched)} with "
            f"differing variant counts; {len(review.ambiguous)} ambiguous; unmatched: "
            f"{len(review.unmatched_vendor)} vendor and {len(review.unmatched_merchant)} merchant variant(s)."
        )
    go = not dry_run and bool(review.matched)
    if go and not apply and not as_json and _can_ask() and sys.stdout.isatty():
        go = typer.confirm(f"Link the {len(review.matched)} matched product(s) ({variants} variant(s))?", err=True)
    result = mapping.apply_auto(c, vendor, review) if go else mapping.MapResult(problems=list(review.problems))
    if as_json:
        emit_json(
            {
                "ok": result.ok,
                "applied": go,
                "linked": result.linked,
                "problems": result.problems,
                "review": review.as_json(),
            }
        )
        return
    for item in result.linked:
        out.print(
            f"linked {item['title']!r} ({item['vendor_product_id']}) → {item['merchant_product_id']}, "
            f"{item['variants']} variant(s)"
        )
    for p in result.problems:
        err.print(f"not linked: {p}", highlight=False)
    if dry_run:
        err.print("Dry run: nothing was linked. Link the matches with --apply.")
    elif not result.linked:
        err.print(f"No variants linked by {by.value}.")


@map_app.command("export")
def map_export(
    vendor: Annotated[str | None, typer.Argument(help="Only this vendor (default: every vendor).")] = None,
    csv_path: Annotated[Path, typer.Option("--csv", help="The CSV file to write ('-': standard output).")] = Path("-"),
    unlinked: Annotated[
        bool, typer.Option("--unlinked", help="Add a row for every vendor variant with no link, to fill in.")
    ] = False,
) -> None:
    """Write every link as CSV: vendor, ids on both sides, SKU, barcode, titles, state."""
    from vsc.engine import csvmap

    c = open_context()
    rows, warnings = csvmap.export_rows(c, vendor, unlinked=unlinked)
    for w in warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    if str(csv_path) == "-":
        csvmap.write_csv(rows, sys.stdout)
    else:
        with csv_path.open("w", encoding="utf-8", newline="") as f:
            csvmap.write_csv(rows, f)
        err.print(f"Wrote {len(rows)} row(s) to {csv_path}.")


@map_app.command("import")
def map_import(
    csv_path: Annotated[Path, typer.Argument(help="A CSV file in the format `vsc map export` writes.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and print the changes; change nothing.")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="Validate, then make the changes.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Add, change and remove links from a CSV file (action column: link, unlink, skip).

    Every row is validated first, ids looked up on both stores; any problem is
    reported with its row number and nothing changes (exit 2).
    """
    from vsc.engine import csvmap

    if dry_run == apply:
        raise UsageError("give --dry-run (to see the changes) or --apply (to make them)")
    c = open_context()
    plan = csvmap.plan_import(c, csv_path)
    if plan.problems:
        if as_json:
            emit_json(plan.as_json())
        else:
            for p in plan.problems:
                err.print(f"[red]{p}[/]", highlight=False)
            err.print(f"{len(plan.problems)} problem(s) in {csv_path}; nothing was changed. Fix them and run again.")
        raise typer.Exit(ExitStatus.USAGE)
    if apply:
        csvmap.apply_import(c, plan)
    if as_json:
        data = plan.as_json()
        data["applied"] = apply
        emit_json(data)
        return
    if plan.changes:
        table = new_table("row", "change", "vendor", "vendor variant", "sku", "merchant variant")
        for ch in plan.changes:
            target = ch.merchant_variant_id
            if ch.kind == "change":
                target = f"{ch.old_merchant_variant_id} → {ch.merchant_variant_id}"
            table.add_row(str(ch.row), ch.kind, ch.vendor, ch.vendor_variant_id, ch.sku or "", target)
        out.print(table)
    for n in plan.notes:
        err.print(f"note: {n}", highlight=False)
    counts = plan.as_json()["counts"]
    verb = "Done" if apply else "Dry run, nothing changed"
    out.print(
        f"{verb}: {counts['add']} to add, {counts['change']} to change, {counts['remove']} to remove, "
        f"{counts['unchanged']} unchanged, {counts['ignored']} ignored."
        if not apply
        else f"{verb}: {counts['add']} added, {counts['change']} changed, {counts['remove']} removed, "
        f"{counts['unchanged']} unchanged, {counts['ignored']} ignored."
    )


@map_app.command("pick")
def map_pick(
    vendor: Annotated[str, typer.Argument(help="The vendor store.")],
) -> None:
    """Choose products to publish in an interactive terminal picker (search, select, page through).

    Keys: ↑/↓ move, ←/→ or PgUp/PgDn page, space selects, a selects all shown, / searches,
    Enter publishes the selection (after asking), q quits.
    """
    from vsc.commands import picker
    from vsc.engine import mapping

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "vsc map pick needs a terminal (it reads keys and draws the screen)",
            hint=f"In scripts use `vsc map add {vendor} --tag TAG --yes` (or ids), or `vsc map import FILE --apply`.",
        )
    c = open_context()
    c.vendor_row(vendor)
    c.merchant_row()
    err.print(f"Reading {vendor}'s catalog…")
    linked = {link.vendor_product_id for link in c.state.product_links(vendor)}
    # Archived products are put away on purpose; `map add --status archived` still reaches them.
    catalog = [p for p in c.connector(vendor).list_products(None) if p.status != "archived"]
    chosen = picker.run(catalog, linked, title=f"{vendor}: choose products to publish")
    if not chosen:
        err.print("Nothing selected; nothing was changed.")
        return
    problems = {p.id: why for p in chosen if (why := mapping.check_publishable(p))}
    for why in problems.values():
        err.print(f"[yellow]cannot publish:[/] {why}", highlight=False)
    chosen = [p for p in chosen if p.id not in problems]
    if not chosen:
        raise typer.Exit(ExitStatus.USAGE)
    variants = sum(len(p.variants) for p in chosen)
    if not typer.confirm(
        f"Publish {len(chosen)} product(s) ({variants} variant(s)) to {c.merchant_row().name}?", err=True
    ):
        err.print("Nothing was changed.")
        raise typer.Exit(ExitStatus.USAGE)
    result = _publish_with_progress(c, vendor, chosen, False)
    _print_map_result(result, False, "published")


@map_app.command("list")
def map_list(
    vendor: Annotated[str | None, typer.Argument(help="Only this vendor.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The links between vendor products and merchant listings."""
    state = State.open(OPTS.db)
    if vendor:
        state.store(vendor)
    rows = []
    for link in state.product_links(vendor):
        rows.append(
            {
                "vendor": link.vendor,
                "vendor_product_id": link.vendor_product_id,
                "merchant_product_id": link.merchant_product_id,
                "mode": link.mode,
                "state": link.state,
                "note": link.note,
                "title": link.fingerprint.get("title"),
                "variants": [
                    {
                        "vendor_variant_id": v.vendor_variant_id,
                        "merchant_variant_id": v.merchant_variant_id,
                        "sku": v.sku,
                        "state": v.state,
                    }
                    for v in state.variant_links(product_link_id=link.id)
                ],
            }
        )
    if as_json:
        emit_json(rows)
        return
    if not rows:
        err.print("No links yet. Publish with `vsc map add VENDOR PRODUCT_ID` or link with `vsc map auto VENDOR`.")
        return
    table = new_table("vendor", "vendor product", "merchant product", "title", "variants", "state")
    for r in rows:
        table.add_row(
            r["vendor"],
            r["vendor_product_id"],
            r["merchant_product_id"],
            r["title"] or "",
            str(len(r["variants"])),
            r["state"] + (f": {r['note']}" if r["note"] else ""),
        )
    out.print(table)


@map_app.command("remove")
def map_remove(
    vendor: Annotated[str, typer.Argument(help="The vendor store.")],
    product_id: Annotated[str, typer.Argument(help="The vendor product id.")],
    delete_listing: Annotated[bool, typer.Option("--delete-listing", help="Also delete the merchant listing.")] = False,
) -> None:
    """Stop syncing a vendor product (and, with --delete-listing, delete its merchant listing)."""
    from vsc.engine import mapping

    c = open_context()
    done = mapping.unlink(c, vendor, product_id, delete_listing=delete_listing)
    out.print(
        f"Unlinked {done['vendor_product_id']} from {done['merchant_product_id']}"
        + (" and deleted the listing." if delete_listing else ".")
    )
