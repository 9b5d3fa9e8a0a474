"""Actions: what a pass decided to do, before (and after) it is done.

The planners return `Action`s and nothing else; the executor applies them,
journaling each under its deterministic `key` before the write is sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


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
