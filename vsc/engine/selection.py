"""Choosing vendor products by filter: `vsc map add VENDOR --all | --tag | --type | --collection ...`.

A `Selection` says which products the user wants; `select()` asks the vendor's
connector for them (the connector lets the platform filter what it can, see
`ProductFilter`), filters again here so every platform means the same thing,
and sorts what came back into products to publish, products already linked,
and products Shopify could not hold (named, with the reason).

Within one filter the values are alternatives (`--tag a --tag b`: either tag);
different filters must all hold (`--tag a --status active`: both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from vsc.connectors.base import Connector, Product, ProductFilter
from vsc.engine.context import Context
from vsc.errors import UsageError

STATUSES = ("active", "draft", "archived")
PLATFORM_NAMES = {"shopify": "Shopify", "woocommerce": "WooCommerce", "squarespace": "Squarespace"}


@dataclass(frozen=True)
class Selection:
    """Which vendor products a command means. Empty filters select nothing unless `all` is set."""

    all: bool = False
    tags: tuple[str, ...] = ()
    product_types: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    updated_since: datetime | None = None

    @property
    def filtered(self) -> bool:
        """True when any filter (beyond `--all`) is given."""
        return bool(
            self.tags or self.product_types or self.collections or self.statuses or self.updated_since is not None
        )

    @property
    def given(self) -> bool:
        return self.all or self.filtered

    def as_filter(self) -> ProductFilter:
        return ProductFilter(
            since=self.updated_since,
            tags=self.tags,
            product_types=self.product_types,
            collections=self.collections,
            statuses=self.wanted_statuses(),
        )

    def wanted_statuses(self) -> tuple[str, ...]:
        # Archived products are put away on purpose: only an explicit --status archived selects them.
        return self.statuses or ("active", "draft")

    def describe(self) -> str:
        """The filters in words, for messages ("tag summer, status active")."""
        parts = []
        for label, values in (
            ("tag", self.tags),
            ("type", self.product_types),
            ("collection", self.collections),
            ("status", self.statuses),
        ):
            if values:
                parts.append(f"{label} {' or '.join(values)}")
        if self.updated_since is not None:
            parts.append(f"updated since {self.updated_since.strftime('%Y-%m-%d %H:%M')} UTC")
        return ", ".join(parts) or "all products"


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`2024-05-01`, `2024-05-01T10:00`, an ISO time with offset, or an age such as `7d`, `12h`, `30m`."""
    raw = text.strip()
    m = re.fullmatch(r"(\d+)\s*([smhdw])", raw.lower())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: int(m.group(1))})
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--updated-since {text!r} is not a date",
            hint="Give a date (2024-05-01), a time (2024-05-01T10:00:00Z) or an age (7d, 12h, 30m).",
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def check_supported(connector: Connector, selection: Selection, vendor: str) -> None:
    """Refuse filters the vendor's platform has nothing to match with, naming the platform."""
    platform = PLATFORM_NAMES.get(connector.platform, connector.platform)
    if selection.collections and not connector.collections_name:
        raise UsageError(
            f"{vendor} is a {platform} store, and {platform} products have no collections or categories "
            "vsc can read, so --collection cannot select any",
            hint="Select by --tag, --status or --updated-since, or give product ids.",
        )
    if selection.product_types and not connector.has_product_types:
        raise UsageError(
            f"{vendor} is a {platform} store, and {platform} products have no product type, "
            "so --type cannot select any",
            hint="Select by --tag, --status or --updated-since, or give product ids.",
        )
    bad = [s for s in selection.statuses if s not in STATUSES]
    if bad:
        raise UsageError(f"--status {bad[0]!r} is not one of {', '.join(STATUSES)}")


def _fold(text: str | None) -> str:
    return (text or "").strip().casefold()


def _collection_keys(product: Product) -> set[str]:
    keys = {_fold(c) for c in product.collections}
    for cid in product.collection_ids:
        keys.add(_fold(cid))
        keys.add(_fold(cid.rsplit("/", 1)[-1]))  # a Shopify GID's numeric tail
    return keys


def matches(product: Product, selection: Selection) -> bool:
    """Whether the product passes every filter (tags, types, names: case-insensitive)."""
    if product.status not in selection.wanted_statuses():
        return False
    if selection.tags and not {_fold(t) for t in product.tags} & {_fold(t) for t in selection.tags}:
        return False
    if selection.product_types and _fold(product.product_type) not in {_fold(t) for t in selection.product_types}:
        return False
    if selection.collections and not _collection_keys(product) & {
        _fold(c.rsplit("/", 1)[-1] if c.startswith("gid://") else c) for c in selection.collections
    }:
        return False
    if selection.updated_since is not None and product.updated_at is not None:
        return product.updated_at >= selection.updated_since
    return True


@dataclass
class SelectionPlan:
    """What a selection found on the vendor's store, sorted by what publishing would do."""

    to_publish: list[Product] = field(default_factory=list)
    already_linked: list[Product] = field(default_factory=list)
    unpublishable: list[tuple[Product, str]] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return len(self.to_publish) + len(self.already_linked) + len(self.unpublishable)

    @property
    def variants(self) -> int:
        """Variants that publishing `to_publish` creates."""
        return sum(len(p.variants) for p in self.to_publish)


def select(ctx: Context, vendor: str, selection: Selection) -> SelectionPlan:
    """Read the vendor's products that `selection` picks and sort them (no write)."""
    from vsc.engine.mapping import check_publishable

    ctx.vendor_row(vendor)
    connector = ctx.connector(vendor)
    check_supported(connector, selection, vendor)
    linked = {link.vendor_product_id for link in ctx.state.product_links(vendor)}
    plan = SelectionPlan()
    for product in connector.list_products_matching(selection.as_filter()):
        if not matches(product, selection):
            continue
        if product.id in linked:
            plan.already_linked.append(product)
        elif why := check_publishable(product):
            plan.unpublishable.append((product, why))
        else:
            plan.to_publish.append(product)
    return plan
