"""What a command runs with: the state database, the settings, and open connectors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vsc.config import Settings
from vsc.connectors import open_connector
from vsc.connectors.base import Connector, Location
from vsc.errors import UsageError
from vsc.state import State, StoreRow, now_utc

log = logging.getLogger("vsc.engine")


@dataclass(frozen=True)
class _Failed:
    """A prefetched read that raised: `once` raises it again where the stream asks for it."""

    error: BaseException


@dataclass
class Context:
    """The state, settings and connectors of one command.

    Connectors are opened on first use and kept for the command's lifetime, so
    each store has one HTTP session and one rate limiter shared by all streams.
    `session_kw` reaches every `StoreSession` (tests shorten backoffs with it).
    """

    state: State
    settings: Settings
    session_kw: dict[str, Any] = field(default_factory=dict)
    clock: Callable[[], datetime] = now_utc
    opener: Callable[..., Connector] = open_connector
    _connectors: dict[str, Connector] = field(default_factory=dict)
    #: reads shared by the streams of one pass (e.g. the merchant's changed orders)
    cache: dict[str, Any] = field(default_factory=dict)
    _locations: dict[str, list[Location]] = field(default_factory=dict)
    #: when the running pass started: every stream's cursor moves to this time
    pass_started: datetime | None = None

    def now(self) -> datetime:
        """The pass's start time during a pass (the cursor every stream moves to), else the clock.

        One time for the whole pass is conservative (it is earlier than any read of the pass),
        and it lets streams that read the same feed since the same cursor share that read."""
        return self.pass_started or self.clock()

    def connector(self, name: str) -> Connector:
        if name not in self._connectors:
            connector = self.opener(self.state.store(name), **self.session_kw)
            locations = self.settings.vendor(name).stock_locations
            if locations and hasattr(connector, "stock_locations"):
                connector.stock_locations = locations  # type: ignore[attr-defined]
            self._connectors[name] = connector
        return self._connectors[name]

    def once(self, key: str, load: Callable[[], Any]) -> Any:
        """The value of `load()`, read at most once per pass (or already read by `prefetch`)."""
        if key not in self.cache:
            self.cache[key] = load()
        value = self.cache[key]
        if isinstance(value, _Failed):
            del self.cache[key]  # asked again later in the pass, it is read again
            raise value.error
        return value

    def prefetch(self, jobs: dict[str, Callable[[], Any]]) -> None:
        """Run reads at the same time, `concurrency` at once, and keep their results for `once`.

        Each job must only read over the network (no database access: the database belongs
        to the thread running the pass) and use one store's connector, which no other job of
        the same call uses. A job that raises keeps its error, raised where `once` asks."""
        todo = {k: job for k, job in jobs.items() if k not in self.cache}
        if not todo:
            return
        if len(todo) == 1 or self.settings.concurrency <= 1:
            for key, job in todo.items():
                self.cache[key] = _run(job)
            return
        workers = min(self.settings.concurrency, len(todo))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vsc-read") as pool:
            futures = {key: pool.submit(_run, job) for key, job in todo.items()}
            for key, future in futures.items():
                self.cache[key] = future.result()

    def open_connectors(self, names: list[str]) -> None:
        """Open these stores' connectors now, on this thread (before reads run on others)."""
        for name in names:
            self.connector(name)

    def merchant_row(self) -> StoreRow:
        row = self.state.merchant()
        if row is None:
            raise UsageError(
                "no merchant store is connected",
                hint="Connect it with `vsc connect shopify NAME --role merchant --shop SHOP --token-env VAR`.",
            )
        return row

    def merchant(self) -> Connector:
        return self.connector(self.merchant_row().name)

    def vendor_row(self, name: str) -> StoreRow:
        row = self.state.store(name)
        if row.role != "vendor":
            raise UsageError(f"{name!r} is the merchant store, not a vendor", hint="See `vsc stores`.")
        return row

    def vendor_label(self, vendor: str) -> str:
        """The name shown as the product's vendor on merchant listings."""
        return self.settings.vendor(vendor).vendor_name or vendor

    def merchant_location(self, vendor: str) -> str | None:
        """The merchant location that holds this vendor's stock (vendor setting, global, or primary)."""
        merchant = self.merchant_row().name
        if merchant not in self._locations:
            self._locations[merchant] = self.merchant().list_locations()
        locations = [loc for loc in self._locations[merchant] if loc.active]
        wanted = self.settings.vendor(vendor).location
        if wanted:
            for loc in locations:
                if wanted in (loc.id, loc.name):
                    return loc.id
            names = ", ".join(loc.name for loc in locations) or "none"
            raise UsageError(
                f"the merchant has no active location {wanted!r} (set for {vendor})",
                hint=f"Use one of: {names}.",
            )
        primary = [loc for loc in locations if loc.primary] or locations
        return primary[0].id if primary else None

    def close(self) -> None:
        self.cache.clear()
        for c in self._connectors.values():
            c.session.close()
        self._connectors.clear()


def _run(job: Callable[[], Any]) -> Any:
    try:
        return job()
    except Exception as exc:  # kept and raised where the stream asks for the value
        log.debug("a prefetched read failed", exc_info=True)
        return _Failed(exc)
