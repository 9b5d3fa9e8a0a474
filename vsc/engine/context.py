"""What a command runs with: the state database, the settings, and open connectors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vsc.config import Settings
from vsc.connectors import open_connector
from vsc.connectors.base import Connector, Location
from vsc.errors import UsageError
from vsc.state import State, StoreRow, now_utc

log = logging.getLogger("vsc.engine")

#: how long what vsc learnt about a store (its locations, its API's abilities) is trusted
FACTS_MAX_AGE = timedelta(hours=1)


@dataclass(frozen=True)
class Failed:
    """A job of `together` that raised (a prefetched read: `once` raises it again where the
    stream asks for it)."""

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
    #: what is known of each open store from earlier runs (`State.store_facts`)
    _facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: when the running pass started: every stream's cursor moves to this time
    pass_started: datetime | None = None

    def now(self) -> datetime:
        """The pass's start time during a pass (the cursor every stream moves to), else the clock.

        One time for the whole pass is conservative (it is earlier than any read of the pass),
        and it lets streams that read the same feed since the same cursor share that read."""
        return self.pass_started or self.clock()

    def connector(self, name: str) -> Connector:
        if name not in self._connectors:
            # As many kept-alive connections as threads can use the store at once: the pass's
            # readers and the pass itself.
            kw = {"pool_size": self.settings.concurrency + 1, **self.session_kw}
            connector = self.opener(self.store_row(name), **kw)
            locations = self.settings.vendor(name).stock_locations
            if locations and hasattr(connector, "stock_locations"):
                connector.stock_locations = locations  # type: ignore[attr-defined]
            self._facts[name] = self.state.store_facts(name, max_age=FACTS_MAX_AGE)
            connector.learn(self._facts[name])
            if self.pass_started is not None:
                connector.begin_pass()
            self._connectors[name] = connector
        return self._connectors[name]

    def begin_pass(self) -> None:
        """Start a pass: one time for all its cursors; reads kept for the pass only."""
        self.cache.clear()
        self.pass_started = self.clock()
        for c in self._connectors.values():
            c.begin_pass()

    def end_pass(self, *, ok: bool = True) -> None:
        """End a pass. What was learnt about the stores is kept for the next runs; after a pass
        that failed anything it is forgotten, so the next pass asks the stores again."""
        self.pass_started = None
        self.cache.clear()
        for name, c in self._connectors.items():
            c.end_pass()
            known = self._facts.get(name, {})
            facts = {**known, **c.facts()}
            if name in self._locations:
                facts["locations"] = [asdict(loc) for loc in self._locations[name]]
            if not ok:
                self.state.forget_store_facts(name)
                self._locations.pop(name, None)
                self._facts[name] = {}
            elif facts != known:
                self.state.set_store_facts(name, facts)
                self._facts[name] = facts

    def once(self, key: str, load: Callable[[], Any]) -> Any:
        """The value of `load()`, read at most once per pass (or already read by `prefetch`)."""
        if key not in self.cache:
            self.cache[key] = load()
        value = self.cache[key]
        if isinstance(value, Failed):
            del self.cache[key]  # asked again later in the pass, it is read again
            raise value.error
        return value

    def failed(self, key: str) -> bool:
        """Whether a prefetched read failed (asking for it with `once` would raise, and a second
        ask would read again)."""
        return isinstance(self.cache.get(key), Failed)

    def prefetch(self, jobs: dict[str, Callable[[], Any]]) -> None:
        """Run reads at the same time, `concurrency` at once, and keep their results for `once`.

        Each job must only read over the network (no database access: the database belongs
        to the thread running the pass) and use one store's connector, which no other job of
        the same call uses. A job that raises keeps its error, raised where `once` asks."""
        self.cache.update(self.together({k: job for k, job in jobs.items() if k not in self.cache}))

    def together(self, jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
        """Run jobs at the same time, `concurrency` at once; each job's result by its key, or
        its error kept as a `Failed` (`once` raises it; `failed` tells it).

        The rules of `prefetch` hold: no database access in a job, and each job uses its own
        store's connector (the orders stream sends each vendor's pushes this way)."""
        if len(jobs) <= 1 or self.settings.concurrency <= 1:
            return {key: _run(job) for key, job in jobs.items()}
        workers = min(self.settings.concurrency, len(jobs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vsc-store") as pool:
            futures = {key: pool.submit(_run, job) for key, job in jobs.items()}
            return {key: future.result() for key, future in futures.items()}

    def merchant_row(self) -> StoreRow:
        # Asked for by every vendor's every stream: read once per pass (stores do not change
        # during one), each time outside a pass.
        row = self.cache.get("merchant-row") if self.pass_started is not None else None
        if row is None:
            row = self.state.merchant()
            if self.pass_started is not None:
                self.cache["merchant-row"] = row
        if row is None:
            raise UsageError(
                "no merchant store is connected",
                hint="Connect it with `vsc connect shopify NAME --role merchant --shop SHOP --token-env VAR`.",
            )
        return row

    def merchant(self) -> Connector:
        return self.connector(self.merchant_row().name)

    def store_row(self, name: str) -> StoreRow:
        """A store's row; during a pass every store's, read at once (stores do not change
        during a pass, and a pass opens hundreds)."""
        if self.pass_started is None:
            return self.state.store(name)
        rows = self.cache.get("store-rows")
        if rows is None:
            rows = self.cache["store-rows"] = {r.name: r for r in self.state.stores()}
        return rows[name] if name in rows else self.state.store(name)

    def vendor_row(self, name: str) -> StoreRow:
        row = self.store_row(name)
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
            self.merchant()
            known = self._facts.get(merchant, {}).get("locations")
            if isinstance(known, list) and known:
                self._locations[merchant] = [Location(**loc) for loc in known]
            else:
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
        return Failed(exc)
