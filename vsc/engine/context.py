"""What a command runs with: the state database, the settings, and open connectors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vsc.config import Settings
from vsc.connectors import open_connector
from vsc.connectors.base import Connector, Location
from vsc.errors import UsageError
from vsc.state import State, StoreRow, now_utc


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

    def connector(self, name: str) -> Connector:
        if name not in self._connectors:
            connector = self.opener(self.state.store(name), **self.session_kw)
            locations = self.settings.vendor(name).stock_locations
            if locations and hasattr(connector, "stock_locations"):
                connector.stock_locations = locations  # type: ignore[attr-defined]
            self._connectors[name] = connector
        return self._connectors[name]

    def once(self, key: str, load: Callable[[], Any]) -> Any:
        """The value of `load()`, read at most once per pass."""
        if key not in self.cache:
            self.cache[key] = load()
        return self.cache[key]

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
