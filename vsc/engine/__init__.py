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

import functools
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vsc import notify
from vsc.engine import brakes, catalog, gone, inventory, orders, tracking
from vsc.engine.actions import Action
from vsc.engine.context import Context
from vsc.engine.lock import PassLock
from vsc.engine.stores import refused
from vsc.errors import AuthError, UsageError, VscError

log = logging.getLogger("vsc.engine")

STREAMS = ("catalog", "inventory", "orders", "tracking")
AVAILABLE_STREAMS = ("catalog", "inventory", "orders", "tracking")
EXEC_ORDER = ("catalog", "orders", "inventory", "tracking")


@dataclass
class PassResult:
    """What one pass did: every action with its status, and every error."""

    dry_run: bool
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pass_id: int | None = None
    #: what the safety brakes found (vendors stopped, or that a dry run would stop)
    brakes: list[dict[str, Any]] = field(default_factory=list)
    #: the pass was asked to stop (Ctrl-C / SIGTERM under `--every`) before it covered everything
    stopped: bool = False
    #: what the e-mail outbox did at the end of the pass (vsc.notify.FlushReport.as_json())
    mail: dict[str, Any] = field(default_factory=dict)
    #: things a person should know that failed nothing (e.g. a vendor without an e-mail address)
    notices: list[str] = field(default_factory=list)

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
            "brakes": list(self.brakes),
            "stopped": self.stopped,
            "mail": dict(self.mail),
            "notices": list(self.notices),
        }


def execute(
    ctx: Context,
    action: Action,
    pass_id: int | None,
    apply: Callable[[Context, Action], None],
    *,
    prepare: Callable[[Context, Action], None] | None = None,
    on_error: Callable[[Context, Action, Exception], None] | None = None,
) -> None:
    """Apply one action under the journal: pending before the write, done/failed after.

    `prepare` runs after the journal entry and before the write, committed on its own (the
    orders stream records its push as pending there, so a crash during the vendor call leaves
    a trace to recover from); `on_error` runs, committed, after a failure.
    """
    entry = begin(ctx, action, pass_id, prepare=prepare, on_error=on_error)
    if entry is not None:
        finish(ctx, action, entry, apply, on_error=on_error)


def begin(
    ctx: Context,
    action: Action,
    pass_id: int | None,
    *,
    prepare: Callable[[Context, Action], None] | None = None,
    on_error: Callable[[Context, Action, Exception], None] | None = None,
) -> int | None:
    """The first half of `execute`: admit the action (safety brakes), journal it as pending and
    run `prepare`, each committed (or, inside a caller's transaction, with it: `orders.apply_plans`
    commits a round's pushes together before sending any). Returns the journal entry, or None
    when the action must not go ahead (refused by a brake, or `prepare` failed: the action is
    then failed)."""
    state = ctx.state
    refusal = brakes.admit(ctx, action)
    if refusal is not None:  # a safety brake stopped this vendor: nothing is sent, the change is retried
        action.status = "failed"
        action.error = refusal
        return None
    entry = state.journal_begin_action(
        pass_id=pass_id,
        store=action.store,
        vendor=action.vendor,
        stream=action.stream,
        kind=action.kind,
        key=action.key,
        target=action.target,
        detail={"summary": action.summary, **action.detail},
    )
    if prepare is not None:
        try:
            prepare(ctx, action)
        except Exception as exc:
            _fail(ctx, action, entry, exc, on_error)
            return None
    return entry


def finish(
    ctx: Context,
    action: Action,
    entry: int,
    apply: Callable[[Context, Action], None],
    *,
    on_error: Callable[[Context, Action, Exception], None] | None = None,
) -> None:
    """The second half of `execute`: `apply` and the journal's done (or failed) in one
    transaction. An `apply` that only records what a store already answered (sent on another
    thread) makes the pair `begin`, send, `finish`."""
    state = ctx.state
    try:
        with state.atomic():
            apply(ctx, action)
            action.status = "done" if action.write else "reported"
            state.journal_finish(entry, status=action.status, detail=_with_result(action))
    except Exception as exc:  # a malformed payload or a bug must not stop the other actions
        _fail(ctx, action, entry, exc, on_error)


def _fail(
    ctx: Context,
    action: Action,
    entry: int,
    exc: Exception,
    on_error: Callable[[Context, Action, Exception], None] | None,
) -> None:
    if not isinstance(exc, VscError):
        log.debug("action %s failed", action.key, exc_info=exc)
    action.status = "failed"
    action.error = str(exc) if isinstance(exc, VscError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, AuthError):
        action.error = refused(ctx.state, exc)
    ctx.state.journal_finish(entry, status="failed", error=action.error)
    if on_error is not None:
        on_error(ctx, action, exc)


def _with_result(action: Action) -> dict[str, Any] | None:
    if not action.result:
        return None
    return {"summary": action.summary, **action.detail, "result": action.result}


#: product links in these states are no longer followed by the catalog stream
_GONE_STATES = ("vendor_deleted", gone.MERCHANT_DELETED)


def _catalog_inputs(ctx: Context, vendor: str) -> tuple[set[str], datetime | None, datetime | None, bool]:
    """The vendor product ids of its live product links, its catalog cursor, where reads start,
    and whether the sweep is due (read once per pass: the prefetch and the run see the same)."""

    def load() -> tuple[set[str], datetime | None, datetime | None, bool]:
        state = ctx.state
        links = state.linked_product_ids(vendor, excluding=_GONE_STATES)
        old = state.cursor(vendor, catalog.STREAM)
        since = old - timedelta(seconds=ctx.settings.overlap_seconds) if old else None
        return links, old, since, catalog.sweep_due(ctx, vendor, ctx.now())

    return ctx.once(f"catalog-inputs:{vendor}", load)  # type: ignore[no-any-return]


def prefetch_catalog(ctx: Context, vendors: Sequence[str]) -> dict[str, Callable[[], Any]]:
    """Each vendor's catalog read, to run at the same time as the others'."""
    jobs: dict[str, Callable[[], Any]] = {}
    now = ctx.now()
    for vendor in vendors:
        linked, _, since, sweep = _catalog_inputs(ctx, vendor)
        if linked:
            jobs[f"catalog-read:{vendor}"] = functools.partial(
                catalog.read_vendor, ctx, vendor, linked, since=since, now=now, sweep=sweep
            )
    return jobs


@dataclass
class CatalogPlan:
    """One vendor's planned catalog writes, waiting to be sent in turn with the other vendors'."""

    vendor: str
    actions: list[Action]
    changed: dict[str, Any]
    by_link: dict[int, Any]
    old: datetime | None
    now: datetime
    swept: bool
    #: product link id → the digest of its product, whose plan came out empty this pass
    settled: dict[int, str] = field(default_factory=dict)


def plan_catalog(ctx: Context, vendor: str, dry_run: bool) -> CatalogPlan | None:
    """Read (or take the prefetched read of) one vendor's catalog and plan the merchant's writes."""
    state = ctx.state
    linked, old, since, sweep = _catalog_inputs(ctx, vendor)
    ctx.cache.pop(f"catalog-inputs:{vendor}", None)
    if not linked:
        return None
    merchant = ctx.merchant_row().name
    now = ctx.now()
    changed, deleted, swept = ctx.once(
        f"catalog-read:{vendor}", lambda: catalog.read_vendor(ctx, vendor, linked, since=since, now=now, sweep=sweep)
    )
    ctx.cache.pop(f"catalog-read:{vendor}", None)
    deleted = catalog.settle_read(ctx, vendor, changed, deleted)
    # Only the links of products that changed (all of them when some record came unreadable,
    # to name it): an idle vendor loads none.
    if ctx.cache.get(f"catalog-unreadable:{vendor}"):
        links = [link for link in state.product_links(vendor) if link.state not in _GONE_STATES]
    else:
        links = state.product_links_where(vendor, [*changed, *deleted], excluding=_GONE_STATES)
    # A product read again as it was when its plan last came out empty plans nothing (its links
    # unchanged since: see catalog.plan_digest); only the others load their variant links.
    vs = catalog.vendor_settings(ctx.settings, vendor)
    digests = {
        link.id: catalog.plan_digest(changed[link.vendor_product_id], vs, ctx.settings.on_vendor_delete)
        for link in links
        if link.vendor_product_id in changed and link.vendor_product_id not in deleted
    }
    known = state.plan_digests(digests)
    planned = [link for link in links if link.id not in digests or known.get(link.id) != digests[link.id]]
    touched = [link.id for link in planned if link.vendor_product_id in changed or link.vendor_product_id in deleted]
    vlinks: dict[int, list[Any]] = {}
    for v in state.variant_links_where("product_link_id", touched):
        vlinks.setdefault(v.product_link_id, []).append(v)
    actions = catalog.plan_vendor(ctx.settings, vendor, merchant, planned, vlinks, changed, deleted)
    acted = {a.link_id for a in actions}
    settled = {i: d for i, d in digests.items() if i not in acted and known.get(i) != d}
    actions += catalog.unreadable_actions(ctx, vendor, merchant, links)
    # Incremental reads legitimately return nothing; a full read (by id) that does is a brake.
    brakes.review(ctx, vendor, actions, stream=catalog.STREAM, empty_read=(since is None or swept) and not changed)
    return CatalogPlan(vendor, actions, changed, {link.id: link for link in links}, old, now, swept, settled)


def apply_catalog(ctx: Context, plans: Sequence[CatalogPlan], pass_id: int | None) -> None:
    """Send the vendors' catalog writes in turn, one of each vendor at a time, so that a large
    vendor's changes cannot hold the others' back when the merchant's budget runs short; then
    move each vendor's cursor past what went through."""
    queues = [list(p.actions) for p in plans]
    for i in range(max((len(q) for q in queues), default=0)):
        for q in queues:
            if i < len(q):
                execute(ctx, q[i], pass_id, catalog.apply_action)
    settled = [pair for p in plans for pair in p.settled.items()]
    if settled:
        with ctx.state.atomic():
            ctx.state.set_plan_digests(settled)
    for p in plans:  # (written together with the pass's other cursors: State.pass_cursors)
        failed_stamps = []
        for action in p.actions:
            if action.status == "failed":
                product = p.changed.get(p.by_link[action.link_id].vendor_product_id) if action.link_id else None
                failed_stamps.append(product.updated_at if product else None)
        ctx.state.set_cursor(p.vendor, catalog.STREAM, catalog.cursor_after(p.now, failed_stamps, p.old))
        if p.swept:
            ctx.state.set_cursor(p.vendor, "catalog-sweep", p.now)


#: streams planned vendor by vendor and written together: (plan one vendor, write all plans)
STAGED: dict[str, tuple[Callable[[Context, str, bool], Any], Callable[[Context, Any, int | None], None]]] = {
    "catalog": (plan_catalog, apply_catalog),
    "inventory": (inventory.plan_vendor, inventory.apply_plans),
    "orders": (orders.plan, orders.apply_plans),
}


#: streams run vendor by vendor, each vendor's writes right after its plan
RUNNERS: dict[str, Callable[[Context, str, int | None, bool], list[Action]]] = {
    "tracking": tracking.run,
}

#: each stream's reads of all the pass's vendors, run at the same time before the stream runs
#: (`Context.prefetch`); the stream then finds them with `Context.once`
PREFETCH: dict[str, Callable[[Context, Sequence[str]], dict[str, Callable[[], Any]]]] = {
    "catalog": prefetch_catalog,
    "orders": orders.prefetch,
    "inventory": inventory.prefetch,
    "tracking": tracking.prefetch,
}


def wanted_streams(streams: Sequence[str] | None) -> list[str]:
    """The streams a pass runs, in the order they run; `UsageError` names an unknown one."""
    # Orders run before inventory, so the stock plan counts every order already seen as pushed
    # or pending; tracking runs last, on orders pushed so far.
    wanted = sorted(streams or AVAILABLE_STREAMS, key=lambda s: EXEC_ORDER.index(s) if s in EXEC_ORDER else 99)
    for s in wanted:
        if s not in STREAMS:
            raise UsageError(f"unknown stream {s!r}", hint=f"Streams are: {', '.join(STREAMS)}.")
        if s not in AVAILABLE_STREAMS:
            raise UsageError(
                f"the {s} stream is not available in this version of vsc yet",
                hint=f"Available now: {', '.join(AVAILABLE_STREAMS)}.",
            )
    return wanted


def sync(
    ctx: Context,
    *,
    streams: Sequence[str] | None = None,
    vendor: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    lock_wait: float | None = None,
    progress: Callable[[str, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PassResult:
    """Run one pass over the given streams (all available ones by default) and vendors.

    The pass holds the database's pass lock (`vsc.engine.lock`) from start to end: when
    another pass holds it, this one waits up to `lock_wait` seconds (default: the
    `lock_wait_seconds` setting), then raises `LockHeld` (exit status 3). Bad arguments
    raise `UsageError` before anything is locked or recorded.

    Safety brakes (`vsc.engine.brakes`) stop a vendor whose plan looks like damage, and
    keep it stopped on later passes; `force` releases them for the vendors of this pass.
    `progress(vendor, stream)` is called before each step; `should_stop()` is asked before
    each step, so a scheduled run can stop cleanly between two steps.
    """
    wanted = wanted_streams(streams)
    ctx.merchant_row()
    vendors = [ctx.vendor_row(vendor)] if vendor else ctx.state.vendors()
    wait = float(ctx.settings.lock_wait_seconds) if lock_wait is None else lock_wait
    with PassLock(ctx.state.path, wait=wait):
        # Holding the lock, no other pass runs: a pass still marked running was killed.
        for pass_id in ctx.state.interrupt_stale_passes():
            log.warning("pass %s was interrupted (its process stopped mid-pass)", pass_id)
        return _run_pass(ctx, wanted, vendors, dry_run=dry_run, force=force, progress=progress, should_stop=should_stop)


def _run_pass(
    ctx: Context,
    wanted: list[str],
    vendors: list[Any],
    *,
    dry_run: bool,
    force: bool,
    progress: Callable[[str, str], None] | None,
    should_stop: Callable[[], bool] | None,
) -> PassResult:
    result = PassResult(dry_run=dry_run)
    ctx.begin_pass()  # reads are shared within one pass, never across passes
    result.pass_id = ctx.state.begin_pass(dry_run=dry_run)
    ctx.state.annotate_pass(
        result.pass_id,
        vendors=[r.name for r in vendors],
        streams=wanted,
        forced=int(force),
        pid=os.getpid(),
        host=socket.gethostname(),
    )
    stats_before = _store_stats(ctx)
    outcome: dict[str, str] = {}
    gate = brakes.Brakes(ctx, result.pass_id, force=force, dry_run=dry_run)
    brakes.install(ctx, gate)
    try:
        if force and not dry_run:
            for name in gate.release(r.name for r in vendors):
                log.warning("released the safety brake on %s (--force)", name)
        active: list[str] = []
        for row in vendors:
            held = None if force else gate.held(row.name)
            if held is not None:
                stop = brakes.BrakeEngaged(row.name, held["reason"])
                message = f"{stop} (since {held['engaged_at']}). {stop.hint}"
                result.brakes.append({"vendor": row.name, "reason": held["reason"], "held": True})
                result.errors.append(message if not dry_run else f"{message}; this plan is what --force would apply")
                outcome[row.name] = "stopped"
                if not dry_run:
                    continue
            active.append(row.name)
        # Stream by stream over all vendors: each stream's reads of every vendor run at the same
        # time (`concurrency` at once), then the stream plans and writes vendor by vendor.
        # Cursors are read once and written once per stream (State.pass_cursors).
        halted: set[str] = set()
        with ctx.state.pass_cursors():
            for stream in wanted:
                names = [n for n in active if n not in halted and n not in gate.stopped]
                if not names:
                    continue
                if should_stop is not None and should_stop():
                    result.stopped = True
                    break
                _prefetch(ctx, stream, names)
                plans: list[Any] = []
                for name in names:
                    if should_stop is not None and should_stop():
                        result.stopped = True
                        break
                    if name in gate.stopped:
                        continue
                    if progress is not None:
                        progress(name, stream)
                    try:
                        if stream in STAGED:
                            # Planned now, written below in turn with the other vendors' writes.
                            plan = STAGED[stream][0](ctx, name, dry_run)
                            actions = plan.actions if plan is not None else []
                            if plan is not None:
                                plans.append(plan)
                        else:
                            actions = RUNNERS[stream](ctx, name, result.pass_id, dry_run)
                    except brakes.BrakeEngaged as exc:
                        outcome[name] = "stopped"
                        result.errors.append(f"{exc}. {exc.hint}")
                        halted.add(name)
                        continue
                    except AuthError as exc:  # its credentials are gone: its other streams would only fail too
                        result.errors.append(f"{name} ({stream}): {refused(ctx.state, exc)}")
                        outcome[name] = "failed"
                        halted.add(name)
                        continue
                    except VscError as exc:
                        log.debug("%s/%s failed", name, stream, exc_info=True)
                        result.errors.append(f"{name} ({stream}): {exc}")
                        outcome.setdefault(name, "failed")
                        continue
                    result.actions += actions
                    if not dry_run and stream not in STAGED:
                        # A listing or variant deleted on the merchant store is marked, not retried.
                        gone.review(ctx, name, actions, result.pass_id)
                if plans and not dry_run:
                    STAGED[stream][1](ctx, plans, result.pass_id)
                    for plan in plans:
                        gone.review(ctx, plan.vendor, plan.actions, result.pass_id)
                if result.stopped:
                    break
                ctx.state.flush_cursors()
        for finding in gate.findings:
            result.brakes.append(finding)
            if finding.get("would_stop"):
                result.errors.append(f"{finding['vendor']}: a safety brake would stop this pass: {finding['reason']}")
        for name, message in gate.stopped.items():
            outcome[name] = "stopped"
            if not any(e.startswith(message) for e in result.errors):
                result.errors.append(message)
    finally:
        brakes.uninstall(ctx)
        ctx.end_pass(ok=not result.errors and not any(a.status == "failed" for a in result.actions))
    for a in result.actions:
        if a.status == "failed":
            result.errors.append(f"{a.vendor or a.store}: {a.summary}: {a.error}")
            outcome.setdefault(a.vendor or a.store, "failed")
        if a.result.get("mail") and a.result["mail"] != "queued":
            result.notices.append(f"{a.vendor or a.store}: {a.result['mail']}")
    if not dry_run:
        # Vendor e-mails go out last: a failed one never holds back a push, and is retried.
        report = notify.flush(ctx.state, ctx.settings)
        result.mail = report.as_json()
        for key, error in report.failed:
            result.errors.append(f"e-mail {key} not sent (retried next pass): {error}")
        result.notices += report.problems
    merchant = ctx.merchant_row().name
    after = _store_stats(ctx)
    stores = {}
    for name in [merchant, *(r.name for r in vendors)]:
        delta = after.get(name, Counter()) - stats_before.get(name, Counter())
        stores[name] = {
            "status": outcome.get(name, "ok"),
            "requests": delta["requests"],
            "writes": delta["writes"],
            "throttled": delta["throttled"],
            "http_429": delta["status_429"],
            "http_5xx": sum(n for k, n in delta.items() if k.startswith("status_5")),
            "cost_points": delta["cost_points"],
        }
    ctx.state.annotate_pass(result.pass_id, stores=stores)
    status = "ok" if result.ok else "failed"
    ctx.state.finish_pass(
        result.pass_id,
        status="stopped" if result.stopped and result.ok else status,
        counts=result.counts(),
        errors=result.errors,
    )
    if status == "ok" and not dry_run and not result.stopped:
        ctx.state.settle_cut_off(vendors=[r.name for r in vendors], streams=wanted, by_pass=result.pass_id)
    return result


def _prefetch(ctx: Context, stream: str, vendors: list[str]) -> None:
    """Run the stream's reads of these vendors at the same time. Connectors open here, on the
    pass's thread; a store that cannot be opened or read fails later, where its stream asks."""
    ready = []
    for name in vendors:
        try:
            ctx.connector(name)
            ready.append(name)
        except VscError:
            continue
    try:
        ctx.merchant()
        jobs = PREFETCH[stream](ctx, ready)
    except VscError as exc:
        log.debug("no reads ahead for %s: %s", stream, exc)
        return
    ctx.prefetch(jobs)


def _store_stats(ctx: Context) -> dict[str, Counter[str]]:
    # The request counters of the stores this command opened so far (each store's StoreSession).
    return {name: Counter(c.session.stats) for name, c in getattr(ctx, "_connectors", {}).items()}
