"""Running vsc for real: `vsc status`, `vsc log`, `vsc why`, `vsc reconcile`, `vsc schedule systemd|cron`."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from vsc.cli import (
    OPTS,
    app,
    emit_json,
    err,
    load_settings,
    new_table,
    open_context,
    out,
    pass_progress,
    settings_path,
)
from vsc.errors import ExitStatus, UsageError
from vsc.state import JournalRecord, State, StoreRow, now_utc, parse_iso

schedule_app = typer.Typer(
    help="Print what a systemd timer or cron needs to run `vsc sync` unattended.", no_args_is_help=True
)
app.add_typer(schedule_app, name="schedule")


#: the cursors `vsc status` shows (others are bookkeeping: sweeps, vsc's own changes)
STREAM_CURSORS = ("catalog", "orders", "inventory", "tracking")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _short(at: str | None) -> str:
    when = parse_iso(at)
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else "-"


# -- status ------------------------------------------------------------------------------------


def _covers(p: dict[str, Any], store: StoreRow) -> bool:
    if p.get("stores"):
        return store.name in p["stores"]
    if p.get("vendors") is not None:
        return store.is_merchant or store.name in p["vendors"]
    return True  # a pass from before 0003 says nothing of its stores: it covered them all


def _entry_json(e: JournalRecord) -> dict[str, Any]:
    detail = e.detail or {}
    return {
        "id": e.id,
        "pass_id": e.pass_id,
        "at": e.at,
        "store": e.store,
        "vendor": e.vendor,
        "stream": e.stream,
        "kind": e.kind,
        "key": e.key,
        "target": e.target,
        "status": e.status,
        "summary": detail.get("summary"),
        "detail": detail,
        "error": e.error,
    }


def _links_needing_attention(state: State, vendor: str) -> list[dict[str, Any]]:
    """Links vsc stopped syncing, wholly or partly, because their merchant side was deleted
    by hand (`vsc.engine.gone`): a person decides whether to publish them again."""
    from vsc.engine.gone import MERCHANT_DELETED, what_to_do

    out = []
    for link in state.product_links(vendor):
        gone = [v for v in state.variant_links(product_link_id=link.id) if v.state == MERCHANT_DELETED]
        if link.state != MERCHANT_DELETED and not gone:
            continue
        whole = link.state == MERCHANT_DELETED
        out.append(
            {
                "vendor_product_id": link.vendor_product_id,
                "merchant_product_id": link.merchant_product_id,
                "state": link.state,
                "merchant_deleted_skus": [v.sku or v.vendor_variant_id for v in gone],
                "note": link.note,
                "what_to_do": what_to_do(vendor, link.vendor_product_id, whole=whole),
            }
        )
    return out


def store_status(state: State, now: datetime) -> dict[str, Any]:
    """Everything `vsc status` shows, as one JSON-able document."""
    from vsc.engine.lock import holder

    passes = state.passes(limit=500)
    real = [p for p in passes if not p["dry_run"]]
    brakes = state.brakes()
    stores = []
    for s in state.stores():
        last = next((p for p in real if _covers(p, s)), None)
        last_pass = None
        if last is not None:
            mine = (last.get("stores") or {}).get(s.name) or {}
            last_pass = {
                "id": last["id"],
                "started_at": last["started_at"],
                "finished_at": last["finished_at"],
                "status": last["status"],
                "result": mine.get("status") or last["status"],
                "requests": mine.get("requests"),
                "writes": mine.get("writes"),
            }
        cursors = []
        for c in state.cursors():
            if c["store"] != s.name:
                continue
            value = parse_iso(c["value"])
            lag = (now - value).total_seconds() if value else None
            cursors.append({"stream": c["stream"], "value": c["value"], "lag_seconds": lag})
        throttle = None
        for p in passes:
            mine = (p.get("stores") or {}).get(s.name) or {}
            if mine.get("throttled") or mine.get("http_429"):
                throttle = {
                    "pass_id": p["id"],
                    "at": p["started_at"],
                    "throttled": mine.get("throttled", 0),
                    "http_429": mine.get("http_429", 0),
                }
                break
        failed = state.failed_actions(store=s.name)
        unfinished = state.unfinished_writes(store=s.name)
        if s.is_merchant:  # catalog writes go to the merchant store; they are shown under their vendor
            failed = [e for e in failed if not e.vendor or e.vendor == s.name]
            unfinished = [e for e in unfinished if not e.vendor or e.vendor == s.name]
        pending = [] if s.is_merchant else state.order_links(vendor=s.name, states=("pending", "failed"))
        cancels = [] if s.is_merchant else state.order_links(vendor=s.name, states=("cancel_requested",))
        brake = brakes.get(s.name)
        attention = [] if s.is_merchant else _links_needing_attention(state, s.name)
        stores.append(
            {
                "name": s.name,
                "platform": s.platform,
                "role": s.role,
                "check_status": s.check_status,
                "tls": {"verify": not s.insecure_tls, "ca_bundle": s.ca_bundle},
                "last_pass": last_pass,
                "cursors": cursors,
                "pending_pushes": [
                    {"merchant_order": o.merchant_order_name or o.merchant_order_id, "state": o.state, "note": o.note}
                    for o in pending
                ],
                "failed_actions": [_entry_json(e) for e in failed],
                "unfinished_writes": [_entry_json(e) for e in unfinished],
                "cancel_requests": [
                    {"merchant_order": o.merchant_order_name or o.merchant_order_id, "vendor_order": o.vendor_order_id}
                    for o in cancels
                ],
                "last_rate_limit": throttle,
                "links_needing_attention": attention,
                "brake": (
                    {"reason": brake["reason"], "engaged_at": brake["engaged_at"], "pass_id": brake["pass_id"]}
                    if brake
                    else None
                ),
            }
        )
    running = holder(state.path)
    return {
        "now": now.isoformat(),
        "running": running,
        "last_pass": ({k: real[0][k] for k in ("id", "started_at", "finished_at", "status")} if real else None),
        "stores": stores,
    }


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Per store: the last pass and its result, cursor lag, pending pushes, failed actions, open requests."""
    state = State.open(OPTS.db)
    try:
        data = store_status(state, now_utc())
    finally:
        state.close()
    if as_json:
        emit_json(data)
        return
    if not data["stores"]:
        err.print("No stores yet. Connect one with `vsc connect shopify|woocommerce|squarespace ...`.")
        return
    table = new_table(
        "store", "role", "last pass", "result", "cursor lag", "pending pushes", "failed", "cancel requests", "throttled"
    )
    for s in data["stores"]:
        last = s["last_pass"]
        result = last["result"] if last else "never"
        style = {"ok": "green", "failed": "red", "stopped": "red", "interrupted": "yellow"}.get(result, "")
        lag = ", ".join(
            f"{c['stream']} {_ago(c['lag_seconds'])}" for c in s["cursors"] if c["stream"] in STREAM_CURSORS
        )
        throttle = s["last_rate_limit"]
        table.add_row(
            s["name"],
            s["role"],
            f"#{last['id']} {_short(last['started_at'])}" if last else "-",
            f"[{style}]{result}[/]" if style else result,
            lag or "-",
            str(len(s["pending_pushes"])),
            str(len(s["failed_actions"])),
            str(len(s["cancel_requests"])),
            f"{_short(throttle['at'])} ({throttle['throttled']}x)" if throttle else "-",
        )
    out.print(table)
    for s in data["stores"]:
        if not s["tls"]["verify"]:
            err.print(
                f"[bold red]WARNING: {s['name']}: TLS certificate verification is OFF[/] "
                f"(--insecure-skip-tls-verify); turn it back on with `vsc stores tls {s['name']} --ca-bundle PATH` "
                "(or --default).",
                highlight=False,
            )
        if s["brake"]:
            err.print(
                f"[red]{s['name']} is stopped by a safety brake[/] since {_short(s['brake']['engaged_at'])}: "
                f"{s['brake']['reason']}. See `vsc sync --dry-run --vendor {s['name']}`, then "
                f"`vsc sync --force --vendor {s['name']}`.",
                highlight=False,
            )
        for e in s["failed_actions"]:
            err.print(f"[yellow]{s['name']}: waiting for retry:[/] {e['summary']} ({e['error']})", highlight=False)
        for a in s.get("links_needing_attention") or []:
            err.print(f"[yellow]{s['name']}: not synced:[/] {a['note']}. {a['what_to_do']}.", highlight=False)
        if s["unfinished_writes"]:
            err.print(
                f"[yellow]{s['name']}: {len(s['unfinished_writes'])} write(s) were cut off by a stopped pass[/] "
                "(see `vsc log`).",
                highlight=False,
            )
    if data["running"]:
        r = data["running"]
        err.print(f"A pass is running now (pid {r.get('pid')} on {r.get('host')}, since {r.get('started_at')}).")


# -- log and why -------------------------------------------------------------------------------


def _mention(ident: str) -> re.Pattern[str]:
    # An id counts only as a whole token: order 12 must not match order 123 or a price 0.12.
    return re.compile(r"(?<![\w.\-])" + re.escape(ident) + r"(?![\w\-])")


def _mentions(entry: JournalRecord, idents: set[str]) -> bool:
    text = " ".join([entry.key or "", entry.target or "", json.dumps(entry.detail or {}, default=str)])
    return any(_mention(i).search(text) for i in idents)


def _tail(ident: str) -> str:
    return ident.rsplit("/", 1)[-1]


def order_idents(state: State, order: str) -> tuple[set[str], list[Any]]:
    """Every id an order is known by (merchant id, name, vendor order, link key and marker)."""
    order = order.strip()
    links = [
        o
        for o in state.order_links()
        if order
        in {
            o.merchant_order_id,
            _tail(o.merchant_order_id),
            o.merchant_order_name or "",
            (o.merchant_order_name or "").lstrip("#"),
            o.vendor_order_id or "",
            _tail(o.vendor_order_id or "") if o.vendor_order_id else "",
            o.vendor_order_name or "",
        }
    ]
    # A bare number alone would match every quantity and position in the journal: without a
    # known order, look for it as a Shopify order id only.
    idents = set() if links else ({f"gid://shopify/Order/{order}"} if order.isdigit() else {order})
    for o in links:
        idents |= {o.merchant_order_id, o.key, o.marker}
        if o.vendor_order_id:
            idents.add(o.vendor_order_id)
    return {i for i in idents if i}, links


def sku_idents(state: State, sku: str) -> tuple[set[str], list[Any]]:
    """Every id a variant is known by: SKU, vendor and merchant variant ids, inventory item, listing."""
    sku = sku.strip()
    links = [
        v
        for v in state.variant_links()
        if sku in {v.sku or "", v.vendor_variant_id, v.merchant_variant_id, _tail(v.merchant_variant_id)}
    ]
    idents = {sku}
    for v in links:
        idents |= {v.vendor_variant_id, v.merchant_variant_id, v.merchant_product_id}
        if v.merchant_inventory_item_id:
            idents.add(v.merchant_inventory_item_id)
        if v.sku:
            idents.add(v.sku)
    return {i for i in idents if i}, links


@app.command("log")
def log_(
    store: Annotated[str | None, typer.Option("--store", help="Only writes to, or about, this store.")] = None,
    order: Annotated[
        str | None, typer.Option("--order", help="Only this order (merchant or vendor id, #name).")
    ] = None,
    sku: Annotated[str | None, typer.Option("--sku", help="Only this variant (SKU, or a variant id).")] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="WHEN", help="ISO date/time (UTC unless given) or 30m, 2h, 3d ago.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many entries, the newest (0: all).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The journal: every write vsc planned and sent, with its result, oldest first."""
    from vsc.engine.schedule import parse_when

    when = parse_when(since) if since else None
    if limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    state = State.open(OPTS.db)
    try:
        if store:
            state.store(store)
        filters = []
        if order:
            filters.append(order_idents(state, order)[0])
        if sku:
            filters.append(sku_idents(state, sku)[0])
        prefilter = tuple(sorted(filters[0])) if filters else ()
        entries = state.journal_search(store=store, since=when, contains=prefilter, limit=None if filters else limit)
        entries = [e for e in entries if all(_mentions(e, f) for f in filters)]
        if limit and len(entries) > limit:
            entries = entries[-limit:]
    finally:
        state.close()
    if as_json:
        emit_json([_entry_json(e) for e in entries])
        return
    if not entries:
        err.print("No journal entries match.")
        return
    table = new_table("at", "pass", "store", "vendor", "stream", "kind", "status", "what")
    styles = {"done": "green", "failed": "red", "pending": "yellow", "reported": "yellow", "interrupted": "dim"}
    for e in entries:
        style = styles.get(e.status, "")
        what = (e.detail or {}).get("summary") or e.target or ""
        if e.error:
            what += f" [red]({e.error})[/]"
        table.add_row(
            _short(e.at),
            str(e.pass_id or "-"),
            e.store,
            e.vendor or "",
            e.stream,
            e.kind,
            f"[{style}]{e.status}[/]" if style else e.status,
            what,
        )
    out.print(table)


_WRITTEN_KEYS = ("price", "compare_at_price", "sku", "barcode")


def explain(entry: JournalRecord, focus: set[str]) -> dict[str, Any]:
    """One journal entry as read → decided → written."""
    d = dict(entry.detail or {})
    read: Any = d.get("fingerprint") or d.get("read") or {}
    written: Any = {}
    if entry.kind == "update_listing":
        written = d.get("fields") or {}
    elif entry.kind == "update_variants":
        updates = [u for u in d.get("updates") or [] if u.get("merchant_variant_id") in focus] or d.get("updates") or []
        read = [{k: v for k, v in (u.get("fingerprint") or {}).items() if k != "options"} for u in updates]
        written = [
            {"variant": u.get("merchant_variant_id"), **{k: u[k] for k in _WRITTEN_KEYS if k in u}} for u in updates
        ]
    elif entry.kind == "images":
        read = {"images": [i[0] for i in d.get("images") or []]}
        written = {"add": [a.get("src") for a in d.get("add") or []], "remove_media_ids": d.get("remove_media_ids")}
    elif entry.kind == "add_variants":
        read = [{k: v.get(k) for k in ("vendor_variant_id", "sku", "vendor_price")} for v in d.get("variants") or []]
        written = [{k: v.get(k) for k in ("sku", "price", "available")} for v in d.get("variants") or []]
    else:
        written = {k: v for k, v in d.items() if k not in ("summary", "fingerprint", "read")}
    return {
        "id": entry.id,
        "at": entry.at,
        "pass_id": entry.pass_id,
        "stream": entry.stream,
        "kind": entry.kind,
        "store": entry.store,
        "vendor": entry.vendor,
        "target": entry.target,
        "status": entry.status,
        "read": read,
        "decided": d.get("summary"),
        "written": written,
        "error": entry.error,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items() if v not in (None, [], {}, "")) or "-"
    if isinstance(value, list):
        return "; ".join(_fmt(v) for v in value) or "-"
    return str(value)


@app.command()
def why(
    subject: Annotated[
        str, typer.Argument(metavar="ORDER|SKU", help="A merchant or vendor order (id or #name), or a SKU.")
    ],
    limit: Annotated[int, typer.Option("--limit", help="How many of the last changes to explain.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Explain the last changes to one order or variant: what was read, what was decided, what was written."""
    state = State.open(OPTS.db)
    try:
        idents, orders = order_idents(state, subject)
        kind = "order"
        variants: list[Any] = []
        products: dict[int, Any] = {}
        if not orders:
            idents, variants = sku_idents(state, subject)
            kind = "variant"
            for v in variants:
                products[v.product_link_id] = state.product_link_by_id(v.product_link_id)
        if not orders and not variants:
            entries = [e for e in state.journal_search(contains=(subject,)) if _mentions(e, {subject})]
            if not entries:
                raise UsageError(
                    f"vsc knows no order or SKU {subject!r}",
                    hint="Linked SKUs are in `vsc map list`; pushed orders in `vsc status` and `vsc log`.",
                )
            kind = "unknown"
        entries = [e for e in state.journal_search(contains=tuple(sorted(idents))) if _mentions(e, idents)]
        focus = {v.merchant_variant_id for v in variants}
        changes = [explain(e, focus) for e in reversed(entries)][: max(1, limit)]
        fulfillments = {o.id: state.fulfillment_links(o.id) for o in orders}
    finally:
        state.close()
    data: dict[str, Any] = {"subject": subject, "kind": kind, "changes": changes}
    if orders:
        data["orders"] = [
            {
                "vendor": o.vendor,
                "merchant_order_id": o.merchant_order_id,
                "merchant_order_name": o.merchant_order_name,
                "vendor_order_id": o.vendor_order_id,
                "vendor_order_name": o.vendor_order_name,
                "state": o.state,
                "note": o.note,
                "lines": o.lines,
                "last_applied": o.fingerprint,
                "fulfillments": [
                    {"vendor": f.vendor_fulfillment_id, "merchant": f.merchant_fulfillment_id, "state": f.state}
                    for f in fulfillments.get(o.id, [])
                ],
            }
            for o in orders
        ]
    if variants:
        data["variants"] = [
            {
                "vendor": v.vendor,
                "sku": v.sku,
                "vendor_product_id": v.vendor_product_id,
                "vendor_variant_id": v.vendor_variant_id,
                "merchant_product_id": v.merchant_product_id,
                "merchant_variant_id": v.merchant_variant_id,
                "state": v.state,
                "link_state": products[v.product_link_id].state,
                "last_read_from_vendor": {k: x for k, x in v.fingerprint.items() if k != "options"},
                "listing_last_applied": {
                    k: x for k, x in products[v.product_link_id].fingerprint.items() if k != "images"
                },
                "merchant_available": v.merchant_available,
                "vendor_available": v.vendor_available,
            }
            for v in variants
        ]
    if as_json:
        emit_json(data)
        return
    for o in data.get("orders", []):
        out.print(
            f"Order {o['merchant_order_name'] or o['merchant_order_id']} → {o['vendor']}: {o['state']}"
            + (f" as {o['vendor_order_name'] or o['vendor_order_id']}" if o["vendor_order_id"] else "")
            + (f" ({o['note']})" if o["note"] else ""),
            highlight=False,
        )
        for line in o["lines"]:
            out.print(f"  line: {line.get('sku') or line.get('vendor_variant_id')} x{line.get('quantity')}")
    for v in data.get("variants", []):
        out.print(
            f"SKU {v['sku'] or '-'}: {v['vendor']} variant {v['vendor_variant_id']} (product {v['vendor_product_id']})"
            f" ↔ merchant {v['merchant_variant_id']} ({v['state']}, listing {v['link_state']})",
            highlight=False,
        )
        out.print(f"  last read from the vendor: {_fmt(v['last_read_from_vendor'])}", highlight=False)
        out.print(f"  listing as last applied: {_fmt(v['listing_last_applied'])}", highlight=False)
        if v["merchant_available"] is not None or v["vendor_available"] is not None:
            out.print(f"  stock: vendor {v['vendor_available']}, merchant {v['merchant_available']}")
    if not changes:
        out.print("No change was journaled for it yet.")
    for c in changes:
        style = {"done": "green", "failed": "red"}.get(c["status"], "yellow")
        out.print(
            f"\n{_short(c['at'])}  pass {c['pass_id'] or '-'}  {c['stream']} {c['kind']}  [{style}]{c['status']}[/]",
            highlight=False,
        )
        out.print(f"  read:    {_fmt(c['read'])}", highlight=False)
        out.print(f"  decided: {c['decided'] or '-'}", highlight=False)
        out.print(f"  wrote:   {_fmt(c['written'])} → {c['target']} on {c['store']}", highlight=False)
        if c["error"]:
            out.print(f"  [red]error:[/] {c['error']}", highlight=False)


# -- reconcile ---------------------------------------------------------------------------------


@app.command()
def reconcile(
    fix: Annotated[
        bool, typer.Option("--fix", help="Repair the drift through the normal planner and journal.")
    ] = False,
    vendor: Annotated[str | None, typer.Option("--vendor", help="Only this vendor.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare every link on both stores and report the drift; --fix repairs it with a pass."""
    from vsc import engine
    from vsc.engine import reconcile as rec
    from vsc.engine.lock import PassLock

    c = open_context()
    try:
        c.merchant_row()
        vendors = [c.vendor_row(vendor).name] if vendor else [v.name for v in c.state.vendors()]
        steps = len(vendors) * len(rec.RECONCILERS)
        result = None
        after = None
        if not fix:
            with pass_progress(not as_json, steps) as progress:
                report = rec.check(c, vendors, progress=progress)
        else:
            # Repairs change the state the planner reads: no pass may run in between.
            with PassLock(c.state.path, wait=float(c.settings.lock_wait_seconds)):
                with pass_progress(not as_json, steps) as progress:
                    report = rec.check(c, vendors, progress=progress)
                streams = rec.repair(c, report)
                streams &= set(engine.AVAILABLE_STREAMS)
                if streams:
                    result = engine.sync(c, streams=sorted(streams), vendor=vendor)
                    after = rec.check(c, vendors)
    finally:
        c.close()
    data = report.as_json()
    data["fixed"] = bool(fix and result is not None)
    data["pass"] = result.as_json() if result is not None else None
    data["remaining"] = [d.as_json() for d in after.drifts] if after is not None else None
    if as_json:
        emit_json(data)
    else:
        _render_report(report, fix, result, after)
    if report.errors or (result is not None and not result.ok):
        raise typer.Exit(ExitStatus.ACTIONS_FAILED)


def _render_report(report: Any, fix: bool, result: Any, after: Any) -> None:
    checked = f"{report.checked.get('products', 0)} product(s), {report.checked.get('variants', 0)} variant(s)"
    if not report.drifts:
        out.print(f"In step: {checked} compared, no drift.")
    else:
        table = new_table("vendor", "product", "variant", "what", "merchant shows", "should show", "fix")
        for d in report.drifts:
            table.add_row(
                d.vendor,
                d.vendor_product_id or "-",
                d.variant or "",
                f"{d.what} ({d.kind})",
                _fmt(d.merchant) if d.merchant is not None else "[red]missing[/]",
                _fmt(d.expected),
                d.fix or f"[yellow]by hand[/] {d.hint or ''}",
            )
        out.print(table)
        fixable = sum(1 for d in report.drifts if d.fix)
        out.print(f"{len(report.drifts)} drift(s) in {checked} compared; {fixable} can be repaired.")
        if not fix and fixable:
            out.print("Run `vsc reconcile --fix` to repair them through a normal pass (journaled).")
    for e in report.errors:
        err.print(f"[red]error:[/] {e}", highlight=False)
    if result is not None:
        done = sum(1 for a in result.actions if a.status == "done")
        out.print(f"Repair pass {result.pass_id}: {done} write(s) done.")
        for e in result.errors:
            err.print(f"[red]error:[/] {e}", highlight=False)
    if after is not None:
        out.print(f"After the repair: {len(after.drifts)} drift(s) left.")


# -- schedule ----------------------------------------------------------------------------------


def _schedule_inputs(every: str, env_file: Path | None) -> tuple[Any, Path | None, Any, list[Any], list[str], Path]:
    from vsc.engine.schedule import parse_duration, secret_vars

    interval = parse_duration(every, what="--every duration")
    state = State.open(OPTS.db)
    try:
        stores = state.stores()
    finally:
        state.close()
    settings = load_settings()
    cfg = settings_path()
    config = cfg if (OPTS.config_path is not None or cfg.exists()) else None
    variables, keyring = secret_vars(stores, settings)
    env = (env_file or OPTS.db.parent / "vsc.env").expanduser()
    return interval, config, settings, variables, keyring, env.absolute()


def _print_files(files: dict[str, str], as_json: bool) -> None:
    if as_json:
        emit_json(files)
        return
    # Plain text, not rich: unit files are full of [Sections] that must reach the file as they are.
    for i, (name, text) in enumerate(files.items()):
        if i:
            sys.stdout.write("\n")
        sys.stdout.write(f"# ==== {name} ====\n{text}")


@schedule_app.command("systemd")
def schedule_systemd(
    every: Annotated[str, typer.Option("--every", metavar="DURATION", help="How often (30s, 5m, 1h).")] = "5m",
    user: Annotated[bool, typer.Option("--user", help="User units (systemctl --user) instead of system ones.")] = False,
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="Where the secrets' variables go (default: vsc.env beside the db)."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Name of the service and timer.")] = "vsc-sync",
    as_json: Annotated[bool, typer.Option("--json", help="Print the files as JSON: {file name: text}.")] = False,
) -> None:
    """Print a systemd service and timer that run `vsc sync`, and the environment file they read."""
    from vsc.engine.schedule import systemd_units

    if not re.fullmatch(r"[A-Za-z0-9_.@-]+", name):
        raise UsageError(f"{name!r} is not a usable unit name", hint="Use letters, digits, '-', '_', '.' or '@'.")
    interval, config, _settings, variables, keyring, env = _schedule_inputs(every, env_file)
    files = systemd_units(
        db=OPTS.db.absolute(),
        config=config,
        interval=interval,
        variables=variables,
        keyring=keyring,
        env_file=env,
        user=user,
        name=name,
    )
    _print_files(files, as_json)


@schedule_app.command("cron")
def schedule_cron(
    every: Annotated[
        str, typer.Option("--every", metavar="DURATION", help="How often (whole minutes: 5m, 1h).")
    ] = "5m",
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="Where the secrets' variables go (default: vsc.env beside the db)."),
    ] = None,
    log_file: Annotated[
        Path | None,
        typer.Option("--log-file", help="Where each run's output goes (default: vsc-sync.log beside the db)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the files as JSON: {file name: text}.")] = False,
) -> None:
    """Print a crontab line that runs `vsc sync`, and the environment file it reads."""
    from vsc.engine.schedule import crontab

    interval, config, _settings, variables, keyring, env = _schedule_inputs(every, env_file)
    files = crontab(
        db=OPTS.db.absolute(),
        config=config,
        interval=interval,
        variables=variables,
        keyring=keyring,
        env_file=env,
        log_file=(log_file or OPTS.db.parent / "vsc-sync.log").expanduser().absolute(),
    )
    _print_files(files, as_json)
