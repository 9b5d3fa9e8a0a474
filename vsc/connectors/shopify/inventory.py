"""Shopify inventory: levels by location, compare-and-set writes, deltas, activation.

platforms/shopify.md §7.4–7.5 and §8. On 2026-04 every inventory mutation
carries `@idempotent(key:)` (a retry with the same key never applies twice) and
`inventorySetQuantities` needs `changeFromQuantity`, the quantity the caller
believes is there: a sale that landed in between makes the write fail with
`CHANGE_FROM_QUANTITY_STALE` instead of being overwritten.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vsc.connectors.base import StockLevel, VariantRef
from vsc.connectors.http import StoreSession
from vsc.connectors.shopify.client import CostTooHigh, ShopifyClient
from vsc.errors import UserErrors

# Shopify caps every input list at 250 items (§3).
BATCH = 250
# Variants per stock read: each costs ~35 points (ten locations), so 25 stay under the 1,000 cap.
STOCK_IDS = 25
# vsc's writes show in the merchant's inventory history with this reference (§7.4).
REFERENCE = "gid://vsc/SyncPass/{key}"


@dataclass(frozen=True)
class QuantityWrite:
    """One compare-and-set: make `item` at `location` hold `quantity`, if it holds `change_from`."""

    item_id: str
    location_id: str
    quantity: int
    change_from: int | None


def _key(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:48]


def _available(level: dict[str, Any] | None) -> int | None:
    if not level:
        return None
    for q in level.get("quantities") or []:
        if q.get("name") == "available":
            return int(q.get("quantity") or 0)
    return None


class InventoryMixin:
    """Inventory verbs of `ShopifyConnector`."""

    client: ShopifyClient
    session: StoreSession
    name: str
    #: the vendor's locations whose stock counts (names or ids); None: every active location
    stock_locations: tuple[str, ...] | None = None
    _stock_page = 20

    # -- reading ---------------------------------------------------------------------
    def _counts(self, location: dict[str, Any]) -> bool:
        if self.stock_locations is None:
            return bool(location.get("isActive", True))
        return location.get("id") in self.stock_locations or location.get("name") in self.stock_locations

    def _level_sum(self, item: dict[str, Any]) -> tuple[int | None, dict[str, int]]:
        per_location: dict[str, int] = {}
        for node in (item.get("inventoryLevels") or {}).get("nodes") or []:
            location = node.get("location") or {}
            if self._counts(location):
                per_location[location["id"]] = _available(node) or 0
        if not item.get("tracked", True):
            return None, per_location
        return sum(per_location.values()), per_location

    def read_stock(self, refs: Iterable[VariantRef]) -> dict[VariantRef, StockLevel]:
        """Available stock of variants, summed over the locations that count (untracked: None)."""
        wanted = {r.variant_id: r for r in refs}
        out: dict[VariantRef, StockLevel] = {}
        ids = list(wanted)
        # Every active location counts (the default): Shopify's own total is ten times cheaper
        # than reading each location's level.
        totals = self.stock_locations is None
        name, step = ("variant_totals", 100) if totals else ("variant_stock", STOCK_IDS)
        for i in range(0, len(ids), step):
            for node in self.client.execute(name, {"ids": ids[i : i + step]})["nodes"]:
                if not node or not node.get("inventoryItem"):
                    continue
                item = node["inventoryItem"]
                if totals:
                    total = node.get("inventoryQuantity") if item.get("tracked", True) else None
                else:
                    total, _ = self._level_sum(item)
                ref = wanted[node["id"]]
                out[ref] = StockLevel(ref, total, item["id"], _dt(item.get("updatedAt")))
        return out

    def changed_stock(self, since: datetime) -> dict[str, StockLevel]:
        """Stock of every variant whose inventory changed since `since`, by variant id."""
        query = f"updated_at:>='{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        out: dict[str, StockLevel] = {}
        after = None
        totals = self.stock_locations is None
        name = "inventory_totals_changed" if totals else "inventory_changed"
        while True:
            first = self._stock_page
            try:
                conn = self.client.execute(name, {"first": first, "after": after, "query": query})["inventoryItems"]
            except CostTooHigh:
                if first == 1:
                    raise
                self._stock_page = max(1, first // 2)
                continue
            requested = self.client._costs.get(name)
            if requested:
                self._stock_page = max(1, min(250, int(900 // max(requested / first, 1))))
            for item in conn["nodes"]:
                variant = item.get("variant") or {}
                if not variant.get("id"):
                    continue
                if totals:
                    total = variant.get("inventoryQuantity") if item.get("tracked", True) else None
                else:
                    total, _ = self._level_sum(item)
                ref = VariantRef((variant.get("product") or {}).get("id") or "", variant["id"])
                out[variant["id"]] = StockLevel(ref, total, item["id"], _dt(item.get("updatedAt")))
            if not conn["pageInfo"]["hasNextPage"]:
                return out
            after = conn["pageInfo"]["endCursor"]

    def changed_item_ids(self, since: datetime) -> dict[str, datetime | None]:
        """The inventory items whose quantities changed since `since`, with their `updatedAt`."""
        query = f"updated_at:>='{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        out: dict[str, datetime | None] = {}
        after = None
        while True:
            conn = self.client.execute("inventory_item_ids_changed", {"after": after, "query": query})["inventoryItems"]
            out.update((n["id"], _dt(n.get("updatedAt"))) for n in conn["nodes"] if n)
            if not conn["pageInfo"]["hasNextPage"]:
                return out
            after = conn["pageInfo"]["endCursor"]

    def available_at(self, item_ids: Sequence[str], location_id: str) -> dict[str, int | None]:
        """`available` of inventory items at one location; None where the item is not stocked there."""
        return {k: v for k, (v, _) in self.levels_at(item_ids, location_id).items()}

    def levels_at(self, item_ids: Sequence[str], location_id: str) -> dict[str, tuple[int | None, datetime | None]]:
        """`available` at one location (None: not stocked there) of inventory items, and their
        `updatedAt` when it is settled: earlier than the second the store answered in (Shopify
        stamps whole seconds, so a change in the very second of the read could follow unseen
        with the same stamp; None then, and the item is read again later)."""
        out: dict[str, tuple[int | None, datetime | None]] = {}
        ids = list(item_ids)
        for i in range(0, len(ids), 100):
            nodes = self.client.execute("inventory_at", {"ids": ids[i : i + 100], "locationId": location_id})["nodes"]
            answered = self.client.server_time
            for node in nodes:
                if node and node.get("id"):
                    updated = _dt(node.get("updatedAt"))
                    settled = updated if updated and answered and updated < answered.replace(microsecond=0) else None
                    out[node["id"]] = (_available(node.get("inventoryLevel")), settled)
        return out

    # -- writing -----------------------------------------------------------------------
    def activate(self, item_id: str, location_id: str, available: int | None = None) -> None:
        """Stock an item at a location (needed before quantities can be set there)."""
        result = self.client.execute(
            "inventory_activate",
            {
                "inventoryItemId": item_id,
                "locationId": location_id,
                "available": available,
                "key": _key("activate", item_id, location_id, available),
            },
            mutation=True,
            idempotent=True,
        )["inventoryActivate"]
        self.client.check_user_errors(result, "inventoryActivate")

    def set_available(self, writes: Sequence[QuantityWrite], *, key: str) -> list[QuantityWrite]:
        """Compare-and-set `available`, up to 250 a call. Returns the writes refused as stale (their
        batch changed nothing: re-read and plan them again); other refusals raise `UserErrors`."""
        stale: list[QuantityWrite] = []
        for i in range(0, len(writes), BATCH):
            batch = list(writes[i : i + BATCH])
            quantities = [
                {
                    "inventoryItemId": w.item_id,
                    "locationId": w.location_id,
                    "quantity": w.quantity,
                    "changeFromQuantity": w.change_from,
                }
                for w in batch
            ]
            batch_key = _key(key, i, quantities)
            result = self.client.execute(
                "inventory_set",
                {
                    "input": {
                        "name": "available",
                        "reason": "correction",
                        "referenceDocumentUri": REFERENCE.format(key=batch_key[:16]),
                        "quantities": quantities,
                    },
                    "key": batch_key,
                },
                mutation=True,
                idempotent=True,
            )["inventorySetQuantities"]
            try:
                self.client.check_user_errors(result, "inventorySetQuantities")
            except UserErrors as exc:
                if exc.codes <= {"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"}:
                    stale += batch
                    continue
                raise
        return stale

    def adjust_stock(self, deltas: Sequence[tuple[VariantRef, int]], *, key: str) -> None:
        """Move a vendor's stock by deltas once per `key`: a sale comes out of the counted location
        holding the most, a return goes back to the first counted one."""
        totals: dict[VariantRef, int] = {}
        for ref, delta in deltas:
            totals[ref] = totals.get(ref, 0) + int(delta)
        ids = [r.variant_id for r in totals]
        items: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), STOCK_IDS):
            for node in self.client.execute("variant_stock", {"ids": ids[i : i + STOCK_IDS]})["nodes"]:
                if node and node.get("inventoryItem"):
                    items[node["id"]] = node["inventoryItem"]
        changes = []
        for ref, delta in totals.items():
            item = items.get(ref.variant_id)
            if item is None or not delta or not item.get("tracked", True):
                continue
            _, per_location = self._level_sum(item)
            if not per_location:
                continue
            location = max(per_location, key=lambda loc: per_location[loc]) if delta < 0 else next(iter(per_location))
            changes.append({"inventoryItemId": item["id"], "locationId": location, "delta": delta})
        for i in range(0, len(changes), BATCH):
            batch = changes[i : i + BATCH]
            batch_key = _key(key, i)
            result = self.client.execute(
                "inventory_adjust",
                {
                    "input": {
                        "name": "available",
                        "reason": "correction",
                        "referenceDocumentUri": REFERENCE.format(key=batch_key[:16]),
                        "changes": batch,
                    },
                    "key": batch_key,
                },
                mutation=True,
                idempotent=True,
            )["inventoryAdjustQuantities"]
            try:
                self.client.check_user_errors(result, "inventoryAdjustQuantities")
            except UserErrors as exc:
                # The key was used before with other quantities: that earlier attempt applied.
                if "IDEMPOTENCY_KEY_PARAMETER_MISMATCH" not in exc.codes:
                    raise


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
