"""Safety brakes: stop a vendor before a pass does damage that looks like a mistake.

Two things stop a vendor (as vdirsyncer's `StorageEmpty` stops a sync whose one
side suddenly lists nothing):

- a full read of the vendor (its linked products by id, or its whole listing)
  comes back empty although products are linked: far more often an API or
  permission glitch than a vendor who deleted everything;
- the plan would delete, draft or zero the stock of more than `brake_share`
  percent (default 50, per vendor too) of the vendor's linked variants.

Incremental reads legitimately return nothing when nothing changed, so only
full reads count for the first rule. Both ignore passes touching fewer than
`brake_min_variants` linked variants. A stopped vendor has nothing written, is
recorded in the state (`brakes` table, journal entry `brake_engaged`) and stays
stopped on later passes until `vsc sync --force`. A dry run shows the brake in
its plan and stops nothing.

How streams plug in: a runner passes its whole plan to `review` before applying
any of it (the catalog runner does); `Action.is_destructive` says which actions
count. As a backstop for a runner that does not, the executor calls `admit` on
every action: destructive actions not reviewed are counted one by one there, so
a vendor is stopped at the action that would cross the share.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from vsc.engine.actions import Action
from vsc.engine.context import Context
from vsc.errors import VscError

log = logging.getLogger("vsc.engine.brakes")


class BrakeEngaged(VscError):
    """A safety brake stopped a vendor; nothing of it was written."""

    def __init__(self, vendor: str, reason: str) -> None:
        super().__init__(
            f"{vendor} is stopped by a safety brake: {reason}",
            hint=f"Nothing of {vendor} is written until you look: `vsc sync --dry-run --vendor {vendor}` "
            f"shows the plan; if it is right, `vsc sync --force --vendor {vendor}` applies it.",
        )
        self.vendor = vendor
        self.reason = reason


def affected_variants(action: Action, variants_of_link: dict[int, list[int]]) -> set[str]:
    """The linked variants a destructive action deletes, drafts or zeroes (as opaque keys);
    `variants_of_link`: the active variant link ids of each product link."""
    d = action.detail
    if d.get("variant_link_ids"):
        return {f"v{i}" for i in d["variant_link_ids"]}
    if d.get("variant_link_id") is not None:
        return {f"v{d['variant_link_id']}"}
    if action.link_id is not None:
        return {f"v{i}" for i in variants_of_link.get(action.link_id, [])} or {f"p{action.link_id}"}
    return {f"t{action.target}"}


@dataclass
class Brakes:
    """The brakes of one pass (installed on the pass's context by `engine.sync`)."""

    ctx: Context
    pass_id: int | None
    force: bool = False
    dry_run: bool = False
    #: vendors stopped in this pass → message
    stopped: dict[str, str] = field(default_factory=dict)
    #: what the brakes found, for the pass result (`brakes` in `vsc sync --json`)
    findings: list[dict[str, Any]] = field(default_factory=list)
    _counted: dict[str, set[str]] = field(default_factory=dict)
    _approved: set[int] = field(default_factory=set)
    #: the brakes earlier passes left engaged, read at the first `held` (once, not per vendor)
    _held: dict[str, dict[str, Any]] | None = None

    def held(self, vendor: str) -> dict[str, Any] | None:
        """The brake an earlier pass left engaged on this vendor, if any."""
        if self._held is None:
            self._held = self.ctx.state.brakes()
        return self._held.get(vendor)

    def release(self, vendors: Iterable[str]) -> list[str]:
        """`--force`: release the brakes held on these vendors (journaled)."""
        released = []
        state = self.ctx.state
        for vendor in vendors:
            held = state.brakes().get(vendor)
            if held is None:
                continue
            with state.atomic():
                state.release_brake(vendor)
                entry = state.journal_begin_action(
                    pass_id=self.pass_id,
                    store=vendor,
                    vendor=vendor,
                    stream="brakes",
                    kind="brake_released",
                    key=f"brake:{vendor}:{held['engaged_at']}:released",
                    target=vendor,
                    detail={"summary": f"brake released with --force (was: {held['reason']})", "brake": held},
                )
                state.journal_finish(entry, status="done")
            released.append(vendor)
        return released

    def review(self, vendor: str, actions: Sequence[Action], *, stream: str = "", empty_read: bool = False) -> None:
        """Check a vendor's plan (or, from `admit`, one more action) before any of it is applied.

        Raises `BrakeEngaged` when a brake stops the vendor (in a dry run the finding is
        only recorded, so the plan still shows).
        """
        if self.force or (not empty_read and not any(a.is_destructive for a in actions)):
            # (Nothing destructive: what was counted for this vendor so far is unchanged, and was
            # already found within bounds.)
            self._approved.update(id(a) for a in actions)
            return
        settings = self.ctx.settings
        share = settings.vendor(vendor).brake_share
        floor = settings.brake_min_variants
        # Ids only: a pass that zeroes some stock asks this of every such vendor, and whole links
        # of a large catalog cost ten times as much to build.
        by_link = self.ctx.state.active_variant_ids(vendor)
        total = sum(len(vs) for vs in by_link.values())
        affected = set(self._counted.get(vendor, set()))
        for a in actions:
            if a.is_destructive:
                affected |= affected_variants(a, by_link)
        reason = None
        if empty_read and total >= floor:
            reason = (
                f"a full read of its linked products came back empty, although {len(by_link)} product(s) "
                f"with {total} variant(s) are linked"
            )
        elif total and len(affected) >= floor and Decimal(len(affected) * 100) > share * total:
            pct = round(len(affected) * 100 / total)
            reason = (
                f"this pass would delete, draft or zero the stock of {len(affected)} of its {total} linked "
                f"variants ({pct} %, more than brake_share {share} %)"
            )
        if reason is None:
            self._counted[vendor] = affected
            self._approved.update(id(a) for a in actions)
            return
        self._engage(vendor, stream or (actions[0].stream if actions else ""), reason, len(affected), total)

    def _engage(self, vendor: str, stream: str, reason: str, affected: int, total: int) -> None:
        finding = {"vendor": vendor, "stream": stream, "reason": reason, "affected": affected, "total": total}
        if self.dry_run:
            finding["would_stop"] = True
            self.findings.append(finding)
            return
        exc = BrakeEngaged(vendor, reason)
        self.stopped[vendor] = str(exc)
        self.findings.append(finding)
        state = self.ctx.state
        log.info("%s", exc)
        with state.atomic():
            state.engage_brake(vendor, reason=reason, detail=finding, pass_id=self.pass_id)
            entry = state.journal_begin_action(
                pass_id=self.pass_id,
                store=vendor,
                vendor=vendor,
                stream=stream or "brakes",
                kind="brake_engaged",
                key=f"brake:{vendor}:{self.pass_id}",
                target=vendor,
                detail={"summary": str(exc), **finding},
            )
            state.journal_finish(entry, status="reported")
        raise exc

    def admit(self, action: Action) -> str | None:
        """The executor's check before one write: None to go ahead, or why it must not."""
        vendor = action.vendor
        if vendor is None:
            return None
        if vendor in self.stopped:
            return self.stopped[vendor]
        if action.is_destructive and id(action) not in self._approved and not self.force:
            try:
                self.review(vendor, [action])
            except BrakeEngaged as exc:
                return str(exc)
        return None


# Brakes of the passes running now, by context. A plain dict keyed by id: a Context is an
# unhashable dataclass, and `engine.sync` always removes its entry when the pass ends.
_ACTIVE: dict[int, Brakes] = {}


def install(ctx: Context, brakes: Brakes) -> None:
    _ACTIVE[id(ctx)] = brakes


def uninstall(ctx: Context) -> None:
    _ACTIVE.pop(id(ctx), None)


def current(ctx: Context) -> Brakes | None:
    return _ACTIVE.get(id(ctx))


def review(ctx: Context, vendor: str, actions: Sequence[Action], *, stream: str = "", empty_read: bool = False) -> None:
    """Check a vendor's whole plan before applying it (a no-op outside `engine.sync`)."""
    brakes = current(ctx)
    if brakes is not None:
        brakes.review(vendor, actions, stream=stream, empty_read=empty_read)


def admit(ctx: Context, action: Action) -> str | None:
    """None when `action` may be applied; otherwise the reason it must not (a brake)."""
    brakes = current(ctx)
    return None if brakes is None else brakes.admit(action)
