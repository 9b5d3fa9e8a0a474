"""The mapping as a CSV file: `vsc map export` writes it, `vsc map import` reads it back.

One row per vendor variant. The columns are `COLUMNS`; import reads only
`action`, `vendor`, `vendor_product_id`, `vendor_variant_id`,
`merchant_product_id` and `merchant_variant_id`, and the rest (SKU, barcode,
titles, state) are there for the person editing the file.

What a row asks for, by its `action`:

- `link` (or empty, with a merchant variant id): link this vendor variant to
  this merchant variant: added if the variant is not linked, changed if it is
  linked to another merchant variant, nothing if it already is;
- `unlink`: remove this vendor variant's link (its product's link goes when
  its last variant does);
- `skip` (or empty, without a merchant variant id): nothing.

A row left out of the file changes nothing: removing a link always takes an
explicit `unlink`, so a truncated or filtered file cannot remove links by
accident. Every row is validated (ids looked up on both stores) before any
change, and every problem is reported with its row number (the header is row
1, as a spreadsheet numbers them); one problem and nothing changes.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from vsc.connectors.base import Product, Variant
from vsc.engine.catalog import product_fingerprint, variant_values
from vsc.engine.context import Context
from vsc.errors import UsageError, VscError

COLUMNS = [
    "action",
    "vendor",
    "vendor_product_id",
    "vendor_variant_id",
    "sku",
    "barcode",
    "vendor_title",
    "vendor_variant_title",
    "merchant_product_id",
    "merchant_variant_id",
    "merchant_title",
    "merchant_variant_title",
    "state",
]
REQUIRED = ["vendor", "vendor_product_id", "vendor_variant_id", "merchant_product_id", "merchant_variant_id"]
ACTIONS = ("link", "unlink", "skip")


# -- export -------------------------------------------------------------------------------------


def _fetch(ctx: Context, store: str, ids: Iterable[str], warnings: list[str]) -> dict[str, Product]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    try:
        return ctx.connector(store).get_products(wanted)
    except VscError as exc:
        # Titles are for reading only: an unreachable store still lets the links be exported.
        warnings.append(f"could not read titles from {store} ({exc}); their columns are left as vsc last saw them")
        return {}


def export_rows(
    ctx: Context, vendor: str | None = None, *, unlinked: bool = False
) -> tuple[list[dict[str, str]], list[str]]:
    """Every link (of one vendor, or all) as CSV rows, with titles read from both stores.

    With `unlinked`, the vendor's variants that have no link are added too (action and
    merchant columns empty), ready to be filled in. Returns (rows, warnings).
    """
    warnings: list[str] = []
    vendors = [ctx.vendor_row(vendor).name] if vendor else [s.name for s in ctx.state.vendors()]
    merchant_links = [link for v in vendors for link in ctx.state.product_links(v)]
    merchant = _fetch(ctx, ctx.merchant_row().name, [link.merchant_product_id for link in merchant_links], warnings)
    rows: list[dict[str, str]] = []
    for name in vendors:
        links = ctx.state.product_links(name)
        if unlinked:
            try:
                catalog = {p.id: p for p in ctx.connector(name).list_products(None)}
            except VscError as exc:
                raise UsageError(f"could not read {name}'s catalog for --unlinked: {exc}") from exc
            missing = [link.vendor_product_id for link in links if link.vendor_product_id not in catalog]
            catalog.update(_fetch(ctx, name, missing, warnings))
        else:
            catalog = _fetch(ctx, name, [link.vendor_product_id for link in links], warnings)
        seen: set[str] = set()
        for link in links:
            vp = catalog.get(link.vendor_product_id)
            mp = merchant.get(link.merchant_product_id)
            for vl in ctx.state.variant_links(product_link_id=link.id):
                seen.add(vl.vendor_variant_id)
                vv = vp.variant(vl.vendor_variant_id) if vp else None
                mv = mp.variant(vl.merchant_variant_id) if mp else None
                rows.append(
                    {
                        "action": "link",
                        "vendor": name,
                        "vendor_product_id": link.vendor_product_id,
                        "vendor_variant_id": vl.vendor_variant_id,
                        "sku": (vv.sku if vv else vl.sku) or "",
                        "barcode": (vv.barcode if vv else vl.barcode) or "",
                        "vendor_title": vp.title if vp else str(link.fingerprint.get("title") or ""),
                        "vendor_variant_title": (vv.title if vv else None) or "",
                        "merchant_product_id": link.merchant_product_id,
                        "merchant_variant_id": vl.merchant_variant_id,
                        "merchant_title": mp.title if mp else "",
                        "merchant_variant_title": (mv.title if mv else None) or "",
                        "state": vl.state if vl.state != "active" else link.state,
                    }
                )
        if unlinked:
            for p in catalog.values():
                for v in p.variants:
                    # archived products are put away on purpose (as with `map add --all`)
                    if v.id in seen or p.status == "archived":
                        continue
                    rows.append(
                        {
                            "action": "",
                            "vendor": name,
                            "vendor_product_id": p.id,
                            "vendor_variant_id": v.id,
                            "sku": v.sku or "",
                            "barcode": v.barcode or "",
                            "vendor_title": p.title,
                            "vendor_variant_title": v.title or "",
                            "merchant_product_id": "",
                            "merchant_variant_id": "",
                            "merchant_title": "",
                            "merchant_variant_title": "",
                            "state": "unlinked",
                        }
                    )
    return rows, warnings


def write_csv(rows: list[dict[str, str]], stream: TextIO) -> None:
    writer = csv.DictWriter(stream, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


# -- import -------------------------------------------------------------------------------------


@dataclass
class Row:
    number: int
    action: str
    vendor: str
    vendor_product_id: str
    vendor_variant_id: str
    merchant_product_id: str
    merchant_variant_id: str


@dataclass
class Change:
    """One variant link the import adds, changes or removes."""

    kind: str  # add | change | remove
    row: int
    vendor: str
    vendor_product_id: str
    vendor_variant_id: str
    sku: str | None
    merchant_product_id: str
    merchant_variant_id: str
    old_merchant_variant_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ImportPlan:
    """What an import would change, or the problems that stop it (then nothing changes)."""

    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    ignored: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # what apply needs: per (vendor, vendor product) the final {vendor variant: merchant variant}
    _final: dict[tuple[str, str], tuple[str | None, dict[str, str]]] = field(default_factory=dict)
    _vendor_products: dict[tuple[str, str], Product] = field(default_factory=dict)
    _merchant_variants: dict[str, Variant] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": not self.problems,
            "problems": self.problems,
            "changes": [c.as_json() for c in self.changes],
            "counts": {
                "add": self.count("add"),
                "change": self.count("change"),
                "remove": self.count("remove"),
                "unchanged": self.unchanged,
                "ignored": self.ignored,
            },
            "notes": self.notes,
        }


def read_rows(path: Path, problems: list[str]) -> list[Row]:
    """The file's rows, with syntax problems (header, actions, empty ids) added to `problems`."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise UsageError(
                f"{path} has no column {', '.join(missing)} (row 1 must name the columns)",
                hint="Start from a file written by `vsc map export --csv FILE`.",
            )
        rows: list[Row] = []
        try:
            for raw in reader:
                number = reader.line_num
                values = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
                if not any(values.values()):
                    continue
                action = values.get("action", "").lower()
                if action not in ("", *ACTIONS):
                    problems.append(f"row {number}: action {values['action']!r} is not link, unlink or skip")
                    continue
                if not action:
                    action = "link" if values.get("merchant_variant_id") else "skip"
                row = Row(
                    number,
                    action,
                    values.get("vendor", ""),
                    values.get("vendor_product_id", ""),
                    values.get("vendor_variant_id", ""),
                    values.get("merchant_product_id", ""),
                    values.get("merchant_variant_id", ""),
                )
                if action == "skip":
                    rows.append(row)
                    continue
                needed = ["vendor", "vendor_product_id", "vendor_variant_id"]
                if action == "link":
                    needed += ["merchant_product_id", "merchant_variant_id"]
                empty = [n for n in needed if not getattr(row, n)]
                if empty:
                    problems.append(f"row {number}: {', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty")
                    continue
                rows.append(row)
        except csv.Error as exc:
            problems.append(f"row {reader.line_num}: not valid CSV ({exc})")
    return rows


def plan_import(ctx: Context, path: Path) -> ImportPlan:
    """Validate every row of the file against the state and both stores; say what would change."""
    from vsc.connectors.shopify.connector import gid

    plan = ImportPlan()
    rows = read_rows(path, plan.problems)
    merchant_name = ctx.merchant_row().name
    live = [r for r in rows if r.action != "skip"]
    plan.ignored = len(rows) - len(live)

    # Ids as the platforms print them: Shopify numeric tails become GIDs.
    platforms: dict[str, str] = {}
    good: list[Row] = []
    for r in live:
        if r.vendor not in platforms:
            try:
                row = ctx.state.store(r.vendor)
            except UsageError:
                platforms[r.vendor] = ""
            else:
                platforms[r.vendor] = row.platform if row.role == "vendor" else "merchant"
        platform = platforms[r.vendor]
        if not platform:
            plan.problems.append(f"row {r.number}: there is no vendor store named {r.vendor!r}")
            continue
        if platform == "merchant":
            plan.problems.append(f"row {r.number}: {r.vendor!r} is the merchant store, not a vendor")
            continue
        try:
            if platform == "shopify":
                r.vendor_product_id = gid("Product", r.vendor_product_id)
                r.vendor_variant_id = gid("ProductVariant", r.vendor_variant_id)
            if r.action == "link":
                r.merchant_product_id = gid("Product", r.merchant_product_id)
                r.merchant_variant_id = gid("ProductVariant", r.merchant_variant_id)
        except UsageError as exc:
            plan.problems.append(f"row {r.number}: {exc.message}")
            continue
        good.append(r)

    # Duplicate keys: a vendor variant on two rows, a merchant variant linked on two rows.
    first_v: dict[tuple[str, str], int] = {}
    first_m: dict[str, int] = {}
    rows_ok: list[Row] = []
    for r in good:
        key = (r.vendor, r.vendor_variant_id)
        if key in first_v:
            plan.problems.append(
                f"row {r.number}: {r.vendor} variant {r.vendor_variant_id} is already on row {first_v[key]} "
                "(each vendor variant may appear once)"
            )
            continue
        first_v[key] = r.number
        if r.action == "link":
            if r.merchant_variant_id in first_m:
                plan.problems.append(
                    f"row {r.number}: merchant variant {r.merchant_variant_id} is also linked on row "
                    f"{first_m[r.merchant_variant_id]} (a merchant variant can be linked to one vendor variant)"
                )
                continue
            first_m[r.merchant_variant_id] = r.number
        rows_ok.append(r)

    # Unknown ids on either side: look every product up on its store.
    links = [r for r in rows_ok if r.action == "link"]
    by_vendor: dict[str, set[str]] = defaultdict(set)
    for r in links:
        by_vendor[r.vendor].add(r.vendor_product_id)
    vendor_products: dict[tuple[str, str], Product] = {}
    merchant_products: dict[str, Product] = {}
    for name, ids in by_vendor.items():
        try:
            for p in ctx.connector(name).get_products(sorted(ids)).values():
                vendor_products[(name, p.id)] = p
        except VscError as exc:
            raise UsageError(f"could not look the file's products up on {name}: {exc}; nothing was changed") from exc
    if links:
        try:
            merchant_products = ctx.merchant().get_products(sorted({r.merchant_product_id for r in links}))
        except VscError as exc:
            raise UsageError(
                f"could not look the file's products up on {merchant_name}: {exc}; nothing was changed"
            ) from exc
    checked: list[Row] = []
    for r in rows_ok:
        if r.action == "link":
            vp = vendor_products.get((r.vendor, r.vendor_product_id))
            mp = merchant_products.get(r.merchant_product_id)
            bad = []
            if vp is None:
                bad.append(f"{r.vendor} has no product {r.vendor_product_id}")
            elif vp.variant(r.vendor_variant_id) is None:
                bad.append(f"{r.vendor} product {r.vendor_product_id} has no variant {r.vendor_variant_id}")
            if mp is None:
                bad.append(f"the merchant store ({merchant_name}) has no product {r.merchant_product_id}")
            elif mp.variant(r.merchant_variant_id) is None:
                bad.append(f"merchant product {r.merchant_product_id} has no variant {r.merchant_variant_id}")
            if bad:
                plan.problems += [f"row {r.number}: {b}" for b in bad]
                continue
            plan._merchant_variants[r.merchant_variant_id] = mp.variant(r.merchant_variant_id)  # type: ignore[union-attr]
            plan._vendor_products[(r.vendor, r.vendor_product_id)] = vp  # type: ignore[assignment]
        checked.append(r)

    # The end state, product by product, checked as a whole before anything is written.
    by_product: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in checked:
        by_product[(r.vendor, r.vendor_product_id)].append(r)
    final_owner: dict[str, tuple[str, str, int | None]] = {}  # merchant variant → (vendor, vendor variant, row)
    for vl in ctx.state.variant_links():
        final_owner[vl.merchant_variant_id] = (vl.vendor, vl.vendor_variant_id, None)
    for (name, vpid), prow in by_product.items():
        link = ctx.state.product_link(name, vpid)
        current = {vl.vendor_variant_id: vl for vl in ctx.state.variant_links(product_link_id=link.id)} if link else {}
        targets = {r.merchant_product_id for r in prow if r.action == "link"}
        if len(targets) > 1:
            numbers = ", ".join(str(r.number) for r in prow if r.action == "link")
            plan.problems.append(
                f"rows {numbers}: {name} product {vpid} is linked into {len(targets)} merchant products "
                f"({', '.join(sorted(targets))}); all its variants must go to one merchant product"
            )
            continue
        target = next(iter(targets), link.merchant_product_id if link else None)
        final = {vv: vl.merchant_variant_id for vv, vl in current.items()}
        if link and target != link.merchant_product_id:
            listed = {r.vendor_variant_id for r in prow}
            left = sorted(set(current) - listed)
            if left:
                plan.problems.append(
                    f"row {prow[0].number}: {name} product {vpid} is linked to merchant product "
                    f"{link.merchant_product_id}; to move it to {target}, give rows for all its linked variants "
                    f"(missing: {', '.join(left)})"
                )
                continue
        for r in prow:
            if r.action == "unlink":
                if r.vendor_variant_id not in current:
                    plan.notes.append(f"row {r.number}: {name} variant {r.vendor_variant_id} is not linked")
                    plan.unchanged += 1
                    continue
                old = final.pop(r.vendor_variant_id)
                if final_owner.get(old, (None, None))[:2] == (name, r.vendor_variant_id):
                    del final_owner[old]
                plan.changes.append(
                    Change(
                        "remove",
                        r.number,
                        name,
                        vpid,
                        r.vendor_variant_id,
                        current[r.vendor_variant_id].sku,
                        current[r.vendor_variant_id].merchant_product_id,
                        old,
                    )
                )
        for r in prow:
            if r.action != "link":
                continue
            old = final.get(r.vendor_variant_id)
            if old == r.merchant_variant_id and link and link.merchant_product_id == target:
                plan.unchanged += 1
                continue
            if old is not None and final_owner.get(old, (None, None))[:2] == (name, r.vendor_variant_id):
                del final_owner[old]
            final[r.vendor_variant_id] = r.merchant_variant_id
            vv = plan._vendor_products[(name, vpid)].variant(r.vendor_variant_id)
            plan.changes.append(
                Change(
                    "add" if old is None else "change",
                    r.number,
                    name,
                    vpid,
                    r.vendor_variant_id,
                    vv.sku if vv else None,
                    r.merchant_product_id,
                    r.merchant_variant_id,
                    old,
                )
            )
        plan._final[(name, vpid)] = (target, final)
    # A merchant variant may end up with one vendor variant only.
    for c in plan.changes:
        if c.kind == "remove":
            continue
        owner = final_owner.get(c.merchant_variant_id)
        if owner and owner[:2] != (c.vendor, c.vendor_variant_id):
            plan.problems.append(
                f"row {c.row}: merchant variant {c.merchant_variant_id} is already linked to {owner[0]} variant "
                f"{owner[1]}; add an unlink row for that variant (or link it elsewhere) in the same file"
            )
        else:
            final_owner[c.merchant_variant_id] = (c.vendor, c.vendor_variant_id, c.row)
    plan.problems.sort(key=_row_order)
    return plan


def _row_order(problem: str) -> int:
    head = problem.split(":", 1)[0].replace("rows ", "").replace("row ", "").split(",")[0]
    return int(head) if head.strip().isdigit() else 0


def apply_import(ctx: Context, plan: ImportPlan) -> None:
    """Write a validated plan's changes, all in one transaction."""
    if plan.problems:
        raise UsageError("the file has problems; nothing was changed")
    touched = sorted({(c.vendor, c.vendor_product_id) for c in plan.changes})
    read_started = ctx.clock()
    with ctx.state.atomic():
        # First take away every link that goes or changes, then make the new ones: links may
        # swap merchant variants (within a product or across products), and a merchant variant
        # is never linked twice, not even for a moment.
        kept: dict[tuple[str, str], dict[str, Any]] = {}
        for key in touched:
            name, vpid = key
            target, final = plan._final[key]
            link = ctx.state.product_link(name, vpid)
            if link is not None and (not final or link.merchant_product_id != target):
                ctx.state.remove_product_link(link.id)
                link = None
            kept[key] = {}
            if link is None:
                continue
            for vl in ctx.state.variant_links(product_link_id=link.id):
                if final.get(vl.vendor_variant_id) == vl.merchant_variant_id:
                    kept[key][vl.vendor_variant_id] = vl
                else:
                    ctx.state.remove_variant_link(vl.id)
        for key in touched:
            name, vpid = key
            target, final = plan._final[key]
            if not final:
                continue
            vp = plan._vendor_products.get(key)
            link = ctx.state.product_link(name, vpid)
            if link is None:
                fingerprint = product_fingerprint(vp) if vp else {}
                link = ctx.state.add_product_link(name, vpid, str(target), mode="linked", fingerprint=fingerprint)
            for vv_id, mv_id in final.items():
                if vv_id in kept[key]:
                    continue
                mv = plan._merchant_variants.get(mv_id)
                vv = vp.variant(vv_id) if vp else None
                ctx.state.add_variant_link(
                    link,
                    vendor_variant_id=vv_id,
                    merchant_variant_id=mv_id,
                    merchant_inventory_item_id=mv.inventory_item_id if mv else None,
                    sku=vv.sku if vv else None,
                    barcode=vv.barcode if vv else None,
                    fingerprint=variant_values(vv) if vv else {},
                )
        for name in sorted({v for v, _ in touched}):
            if ctx.state.cursor(name, "catalog") is None:
                ctx.state.set_cursor(name, "catalog", read_started)
