"""The sync engine: each pass reads, plans (pure) and applies through the journal.

`sync` is the one entry point of a pass. For every vendor and stream it reads
what changed since the stream's cursor (minus the overlap window), plans the
smallest set of actions, and — unless it is a dry run — applies them one by
one: each write is journaled as pending before it is sent and marked done (or
failed) after, together with the state change it causes. A store that fails
fails alone: its actions are reported and retried next pass, and the other
vendors go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from vsc.engine import catalog
from vsc.engine.actions import Action
from vsc.engine.context import Context
from vsc.errors import UsageError, VscError

log = logging.getLogger("vsc.engine")

STREAMS = ("catalog", "inventory", "orders", "tracking")
AVAILABLE_STREAMS = ("catalog",)


@dataclass
class PassResult:
    """What one pass did: every action with its status, and every error."""

    dry_run: bool
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pass_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and all(a.status != "failed" for a in self.actions)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STREAMS}
        for a in self.actions:
            if a.write:
                out[a.stream] = out.get(a.stream, 0) + 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "pass_id": self.pass_id,
            "actions": [a.as_json() for a in self.actions],
            "counts": self.counts(),
            "errors": list(self.errors),
        }


def execute(ctx: Context, action: Action, pass_id: int | None, apply: Callable[[Context, Action], None]) -> None:
    """Apply one action under the journal: pending before the write, done/failed after."""
    state = ctx.state
    entry = state.journal_begin(
        pass_id=pass_id,
        store=action.store,
        stream=action.stream,
        kind=action.kind,
        key=action.key,
        target=action.target,
        detail={"summary": action.summary, **action.detail},
    )
    try:
        with state.atomic():
            apply(ctx, action)
            action.status = "done" if action.write else "reported"
            state.journal_finish(entry, status=action.status)
    except VscError as exc:
        action.status = "failed"
        action.error = str(exc)
        state.journal_finish(entry, status="failed", error=str(exc))
    except Exception as exc:  # a malformed payload or a bug must not stop the other actions
        log.debug("action %s failed", action.key, exc_info=True)
        action.status = "failed"
        action.error = f"{type(exc).__name__}: {exc}"
        state.journal_finish(entry, status="failed", error=action.error)


def run_catalog(ctx: Context, vendor: str, pass_id: int | None, dry_run: bool) -> list[Action]:
    state = ctx.state
    links = [link for link in state.product_links(vendor) if link.state != "vendor_deleted"]
    if not links:
        return []
    merchant = ctx.merchant_row().name
    old = state.cursor(vendor, catalog.STREAM)
    now = ctx.clock()
    since = old - timedelta(seconds=ctx.settings.overlap_seconds) if old else None
    changed, deleted, swept = catalog.read_vendor(ctx, vendor, links, since=since, now=now)
    vlinks: dict[int, list[Any]] = {}
    for v in state.variant_links(vendor=vendor):
        vlinks.setdefault(v.product_link_id, []).append(v)
    actions = catalog.plan_vendor(ctx.settings, vendor, merchant, links, vlinks, changed, deleted)
    if dry_run:
        return actions
    failed_stamps = []
    by_link = {link.id: link for link in links}
    for action in actions:
        execute(ctx, action, pass_id, catalog.apply_action)
        if action.status == "failed":
            product = changed.get(by_link[action.link_id].vendor_product_id) if action.link_id else None
            failed_stamps.append(product.updated_at if product else None)
    state.set_cursor(vendor, catalog.STREAM, catalog.cursor_after(now, failed_stamps, old))
    if swept:
        state.set_cursor(vendor, "catalog-sweep", now)
    return actions


RUNNERS: dict[str, Callable[[Context, str, int | None, bool], list[Action]]] = {"catalog": run_catalog}


def sync(
    ctx: Context,
    *,
    streams: Sequence[str] | None = None,
    vendor: str | None = None,
    dry_run: bool = False,
) -> PassResult:
    """Run one pass over the given streams (all available ones by default) and vendors."""
    wanted = list(streams or AVAILABLE_STREAMS)
    for s in wanted:
        if s not in STREAMS:
            raise UsageError(f"unknown stream {s!r}", hint=f"Streams are: {', '.join(STREAMS)}.")
        if s not in AVAILABLE_STREAMS:
            raise UsageError(
                f"the {s} stream is not available in this version of vsc yet",
                hint=f"Available now: {', '.join(AVAILABLE_STREAMS)}.",
            )
    ctx.merchant_row()
    vendors = [ctx.vendor_row(vendor)] if vendor else ctx.state.vendors()
    result = PassResult(dry_run=dry_run)
    result.pass_id = ctx.state.begin_pass(dry_run=dry_run)
    for row in vendors:
        for stream in wanted:
            try:
                actions = RUNNERS[stream](ctx, row.name, result.pass_id, dry_run)
            except VscError as exc:
                log.debug("%s/%s failed", row.name, stream, exc_info=True)
                result.errors.append(f"{row.name} ({stream}): {exc}")
                continue
            result.actions += actions
    for a in result.actions:
        if a.status == "failed":
            result.errors.append(f"{a.vendor or a.store}: {a.summary}: {a.error}")
    ctx.state.finish_pass(
        result.pass_id,
        status="ok" if result.ok else "failed",
        counts=result.counts(),
        errors=result.errors,
    )
    return result
