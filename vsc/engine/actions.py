"""Actions: what a pass decided to do, before (and after) it is done.

The planners return `Action`s and nothing else; the executor applies them,
journaling each under its deterministic `key` before the write is sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

#: Catalog kinds that delete or draft linked variants on the merchant store (a vendor_deleted
#: with policy keep deletes nothing there, but unlinks the product all the same).
REMOVING_KINDS = frozenset({"vendor_deleted", "remove_variants"})


@dataclass
class Action:
    """One planned write (or, with `write=False`, one finding to report).

    `store` is the store the write goes to, `target` the object it changes,
    `detail` a JSON-able description of the change, and `key` a deterministic
    name for it (the same change planned twice has the same key).
    """

    stream: str
    kind: str
    store: str
    target: str
    detail: dict[str, Any]
    summary: str
    vendor: str | None = None
    link_id: int | None = None
    write: bool = True
    status: str = "planned"  # planned | done | failed | reported | skipped
    error: str | None = None
    key: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    #: set by a planner on any other action that deletes, drafts or zeroes linked variants
    destructive: bool = False

    @property
    def is_destructive(self) -> bool:
        """Whether applying this deletes, drafts or zeroes linked variants on the merchant store.

        The safety brakes (`vsc.engine.brakes`) count these per vendor. Catalog kinds are known
        here; a `set_quantity` whose `detail["quantity"]` is 0 counts by itself; any other
        stream marks its own actions with `destructive=True`. The brakes count the variants in
        `detail["variant_link_ids"]` / `detail["variant_link_id"]`, else the product link's.
        """
        if self.destructive or self.kind in REMOVING_KINDS:
            return True
        return self.kind == "set_quantity" and self.detail.get("quantity") == 0

    def __post_init__(self) -> None:
        if not self.key:
            self.key = action_key(self.stream, self.kind, self.vendor or self.store, self.target, self.detail)

    def as_json(self) -> dict[str, Any]:
        out = {
            "stream": self.stream,
            "kind": self.kind,
            "store": self.store,
            "vendor": self.vendor,
            "target": self.target,
            "status": self.status,
            "summary": self.summary,
            "key": self.key,
            "detail": self.detail,
        }
        if self.error:
            out["error"] = self.error
        return out


def digest(value: Any, length: int = 16) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:length]


def action_key(stream: str, kind: str, owner: str, target: str, detail: Any) -> str:
    return f"{stream}:{kind}:{owner}:{target}:{digest(detail)}"
