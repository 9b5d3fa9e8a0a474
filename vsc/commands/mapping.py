"""`vsc products` and `vsc map ...`: choosing vendor products and linking them to merchant listings."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from vsc.cli import OPTS, MatchKey, app, emit_json, err, map_app, open_context, out
from vsc.errors import ExitStatus, UsageError
from vsc.state import State

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
    for p in c.connector(vendor).list_products(None):
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
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "title", "status", "variants", "linked")
    for r in rows:
        table.add_row(r["id"], r["title"], r["status"], str(len(r["variants"])), "yes" if r["linked"] else "")
    out.print(table)


def _print_map_result(result: Any, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json({"ok": result.ok, "linked": result.linked, "skipped": result.skipped, "problems": result.problems})
    else:
        for item in result.linked:
            out.print(
                f"{verb} {item['title']!r} ({item['vendor_product_id']}) → {item['merchant_product_id']}, "
                f"{item['variants']} variant(s)"
            )
        for s in result.skipped:
            err.print(f"skipped: {s}")
        for p in result.problems:
            err.print(f"[red]problem:[/] {p}")
    if not result.ok:
        raise typer.Exit(ExitStatus.USAGE if not result.linked else ExitStatus.ACTIONS_FAILED)


@map_app.command("add")
def map_add(
    vendor: Annotated[str, typer.Argument(help="The vendor store.")],
    product_ids: Annotated[list[str], typer.Argument(help="Vendor product ids, as the vendor's platform prints them.")],
    to: Annotated[
        str | None, typer.Option("--to", help="Link to this existing merchant product instead of publishing.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Publish vendor products to the merchant store (or link one to an existing listing with --to)."""
    from vsc.engine import mapping

    c = open_context()
    if to:
        if len(product_ids) != 1:
            raise UsageError("--to links exactly one vendor product")
        result = mapping.link_to(c, vendor, product_ids[0], to)
        _print_map_result(result, as_json, "linked")
    else:
        result = mapping.publish(c, vendor, product_ids)
        _print_map_result(result, as_json, "published")


@map_app.command("auto")
def map_auto(
    vendor: Annotated[str, typer.Argument(help="The vendor store.")],
    by: Annotated[MatchKey, typer.Option(help="The key both stores share.")] = MatchKey.sku,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Link vendor variants to merchant variants that carry the same SKU or barcode."""
    from vsc.engine import mapping

    c = open_context()
    result = mapping.auto_link(c, vendor, by.value)
    if as_json:
        emit_json({"ok": result.ok, "linked": result.linked, "problems": result.problems})
        return
    for item in result.linked:
        out.print(
            f"linked {item['title']!r} ({item['vendor_product_id']}) → {item['merchant_product_id']}, "
            f"{item['variants']} variant(s)"
        )
    for p in result.problems:
        err.print(f"not linked: {p}")
    if not result.linked:
        err.print(f"No variants linked by {by.value}.")


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
    table = Table("vendor", "vendor product", "merchant product", "title", "variants", "state")
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
