"""The Connector protocol and the platform-neutral records every connector speaks.

A connector is vsc's only way into one store. Every platform offers the same
verbs with the same records, whatever its API looks like underneath, so the
engine never branches on the platform. What a platform cannot do raises
`vsc.errors.Unsupported` naming the platform and the operation; the engine
records it and falls back (for example: e-mail the vendor instead of
cancelling a Squarespace order).

Conventions for every record and verb:

- ids are strings, exactly as the platform prints them (Shopify GIDs,
  WooCommerce integers as text, Squarespace hex ids and variant UUIDs);
- money is `Decimal` in the store's currency (`StoreInfo.currency`);
- time is timezone-aware UTC `datetime`;
- `available is None` means the store does not count that variant's stock
  (WooCommerce `manage_stock: false`, Squarespace `isUnlimited`, Shopify
  `tracked: false`);
- a variant is addressed by `VariantRef(product_id, variant_id)`, because some
  platforms (WooCommerce) need the parent id in the path. A WooCommerce simple
  product is its own single variant: `variant_id == product_id`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

from vsc.errors import PayloadError, Unsupported

if TYPE_CHECKING:
    from vsc.connectors.http import StoreSession

T = TypeVar("T")
#: the key `Connector.take_unreadable` uses for a broken record that did not even carry an id
UNKNOWN_ID = "?"

# Shopify's own limits, which every listing published to the merchant must fit.
MAX_OPTIONS = 3
MAX_VARIANTS = 2048


class VariantRef(NamedTuple):
    product_id: str
    variant_id: str


@dataclass(frozen=True)
class StoreInfo:
    """What one verified call tells about a store."""

    name: str
    url: str
    currency: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Location:
    id: str
    name: str
    active: bool = True
    primary: bool = False
    fulfills_online_orders: bool = True


@dataclass(frozen=True)
class Image:
    """An image; `id` is the platform's media id where it has one."""

    src: str
    alt: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class Variant:
    """One sellable variant. `options` pairs (option name, value) in the product's option order."""

    id: str
    sku: str | None = None
    price: Decimal | None = None
    compare_at_price: Decimal | None = None
    barcode: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    available: int | None = None
    inventory_item_id: str | None = None
    title: str | None = None
    position: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Product:
    """A product with all its variants and images."""

    id: str
    title: str
    description_html: str = ""
    vendor: str | None = None
    product_type: str | None = None
    tags: tuple[str, ...] = ()
    status: str = "active"  # active | draft | archived
    options: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()
    images: tuple[Image, ...] = ()
    handle: str | None = None
    updated_at: datetime | None = None
    #: names of the collections (Shopify) or categories (WooCommerce) holding the product
    collections: tuple[str, ...] = ()
    #: their ids, in the same order (empty where the connector did not read them)
    collection_ids: tuple[str, ...] = ()
    #: the currency of its prices where the payload says (Squarespace); else the store's
    #: (`StoreInfo.currency`, recorded when the store is connected or checked)
    currency: str | None = None

    def variant(self, variant_id: str) -> Variant | None:
        return next((v for v in self.variants if v.id == variant_id), None)


@dataclass(frozen=True)
class ProductFilter:
    """What a caller of `Connector.list_products_matching` will keep: a hint for the store.

    Each field narrows (empty: no condition); values within a field are alternatives.
    A connector pushes to the platform whatever its list endpoint filters cheaply and
    may return more than asked; it must never leave out a product that matches. The
    caller filters the result again (`vsc.engine.selection`).
    """

    since: datetime | None = None
    tags: tuple[str, ...] = ()
    product_types: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()  # ids or names
    statuses: tuple[str, ...] = ()  # active | draft | archived


@dataclass(frozen=True)
class VariantDraft:
    """A variant to create on the merchant store (already priced by the merchant's rule)."""

    sku: str | None
    price: Decimal | None
    compare_at_price: Decimal | None = None
    barcode: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    available: int | None = None  # None: create untracked


@dataclass(frozen=True)
class ListingDraft:
    """A listing to create on the merchant store."""

    title: str
    description_html: str = ""
    vendor: str | None = None
    product_type: str | None = None
    tags: tuple[str, ...] = ()
    status: str = "active"
    options: tuple[str, ...] = ()
    variants: tuple[VariantDraft, ...] = ()
    images: tuple[Image, ...] = ()
    location_id: str | None = None


@dataclass(frozen=True)
class VariantUpdate:
    """Fields to change on one existing merchant variant; None leaves a field as it is."""

    variant_id: str
    price: Decimal | None = None
    compare_at_price: Decimal | None = None
    clear_compare_at_price: bool = False
    sku: str | None = None
    barcode: str | None = None


@dataclass(frozen=True)
class StockLevel:
    """A variant's sellable quantity. `available is None` means untracked or unlimited."""

    ref: VariantRef
    available: int | None
    inventory_item_id: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Address:
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province_code: str | None = None
    country_code: str | None = None
    zip: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class LineItem:
    id: str
    variant_id: str | None
    product_id: str | None = None
    sku: str | None = None
    title: str | None = None
    quantity: int = 0
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class Order:
    """An order on either side. `marker` is vsc's reference to the merchant order, when present."""

    id: str
    name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    cancelled_at: datetime | None = None
    test: bool = False
    financial_status: str | None = None  # paid | pending | authorized | refunded | ...
    fulfillment_status: str | None = None  # unfulfilled | partial | fulfilled | cancelled
    currency: str | None = None
    email: str | None = None
    phone: str | None = None
    note: str | None = None
    tags: tuple[str, ...] = ()
    customer_first_name: str | None = None
    customer_last_name: str | None = None
    accepts_marketing: bool | None = None
    shipping_address: Address | None = None
    line_items: tuple[LineItem, ...] = ()
    metafields: tuple[tuple[str, str], ...] = ()
    marker: str | None = None


@dataclass(frozen=True)
class TrackingInfo:
    number: str | None = None
    company: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Fulfillment:
    """A shipment of some of an order's lines; `lines` pairs (line item id, quantity)."""

    id: str
    order_id: str
    status: str = "success"
    tracking: tuple[TrackingInfo, ...] = ()
    lines: tuple[tuple[str, int], ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class OrderLineDraft:
    ref: VariantRef
    quantity: int
    unit_price: Decimal
    sku: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class OrderDraft:
    """An order to create in a vendor store on behalf of a merchant order.

    `marker` is the unique reference to the merchant order (written where the
    platform keeps it: Shopify sourceIdentifier/tag/attribute, WooCommerce
    meta_data, Squarespace externalOrderReference) so the order can be found
    again after a crash; `key` is the deterministic idempotency key of the push.
    """

    marker: str
    key: str
    lines: tuple[OrderLineDraft, ...]
    currency: str
    email: str | None = None
    phone: str | None = None
    note: str | None = None
    tags: tuple[str, ...] = ()
    customer_first_name: str | None = None
    customer_last_name: str | None = None
    accepts_marketing: bool | None = None
    shipping_address: Address | None = None
    paid: bool = True
    channel_name: str = "vsc marketplace"
    merchant_order_name: str | None = None
    #: when the merchant order was placed; fixed, so a retried push sends the same body
    created_at: datetime | None = None


def pass_memo(method: Callable[..., Any]) -> Callable[..., Any]:
    """Keep the result of a `list_*(since)` read for the rest of the pass.

    The streams of one pass move their cursors to the same time, so they read a change feed
    since the same moment: the catalog and inventory streams of a WooCommerce vendor both list
    its changed products, the orders, inventory and tracking streams its changed orders. The
    second asks get the first answer instead of a request, unless vsc wrote to the store in
    between. A full read (`since` None) is never kept, and nothing is kept outside a pass
    (`Connector.begin_pass` / `end_pass`).
    """

    @functools.wraps(method)
    def wrapper(self: Connector, since: datetime | None = None) -> Iterator[Any]:
        memo = self.__dict__.get("_pass_memo")
        if since is None or memo is None:
            return iter(method(self, since))
        # A write to the store since the last read makes it stale (vsc's own push shows in the
        # store's order feed): the key holds the store's write count.
        key = (method.__name__, since, self.session.stats["writes"])
        if key not in memo:
            memo[key] = list(method(self, since))
        return iter(memo[key])

    return wrapper


class Connector:
    """One store, reached through its platform's API.

    Subclasses set `platform` and the capability flags and override the verbs
    their platform supports. A verb left alone raises `Unsupported`, which is
    the honest answer for a platform that cannot do it.

    `session` is the store's `StoreSession`: every request goes through it, so
    retries, pacing, request counting and redaction are the same for all.
    """

    platform: ClassVar[str] = "unknown"
    #: the largest number of stock changes one write request may carry
    stock_batch_size: ClassVar[int] = 1
    can_write_listings: ClassVar[bool] = False
    can_cancel_orders: ClassVar[bool] = False
    can_update_orders: ClassVar[bool] = False
    #: whether creating an order refuses lines the store has no stock for (WooCommerce does not:
    #: its stock just goes negative, so vsc checks first)
    refuses_oversold_orders: ClassVar[bool] = True
    #: whether a pushed order that is not paid still takes the stock (WooCommerce: only once paid)
    reduces_stock_unpaid: ClassVar[bool] = True
    #: what the platform calls groups of products ("collections", "categories"); None: it has none
    collections_name: ClassVar[str | None] = None
    #: whether products carry a product type the merchant can filter by
    has_product_types: ClassVar[bool] = False

    def __init__(self, name: str, session: StoreSession) -> None:
        self.name = name
        self.session = session
        self._unreadable: dict[str, str] = {}

    # -- records that cannot be read ------------------------------------------
    def parse_record(self, payload: Any, parse: Callable[[], T], what: str = "product") -> T | None:
        """`parse()`, or None when the record is unreadable (`PayloadError`).

        One broken record must not hide the others: product readers skip it and note it
        (by the id the payload gives, if any) for `take_unreadable`, so the engine reports
        that product as failed instead of taking it for deleted.
        """
        try:
            return parse()
        except PayloadError as exc:
            raw = payload.get("id") if isinstance(payload, dict) else None
            ident = str(raw) if raw not in (None, "") else UNKNOWN_ID
            detail = str(exc).removeprefix(f"{self.name}: ")
            self._unreadable[ident] = f"{self.name}: {what} {ident}: {detail}"
            return None

    def take_unreadable(self) -> dict[str, str]:
        """Product id (or `UNKNOWN_ID`) → what was wrong with its record, for the records the
        readers skipped since the last call."""
        out, self._unreadable = self._unreadable, {}
        return out

    def facts(self) -> dict[str, Any]:
        """What this connector learnt about its store that is worth keeping between runs (e.g.
        which filters its API honours); handed back through `learn` next time."""
        return {}

    def learn(self, facts: dict[str, Any]) -> None:
        """Take back what `facts` returned on an earlier run."""

    def begin_pass(self) -> None:
        """Keep change-feed reads for the rest of this pass (`pass_memo`)."""
        self.__dict__["_pass_memo"] = {}

    def end_pass(self) -> None:
        """Forget the reads kept for the pass."""
        self.__dict__.pop("_pass_memo", None)

    def _unsupported(self, operation: str) -> Unsupported:
        return Unsupported(self.platform, operation)

    # -- the store ---------------------------------------------------------
    def check(self) -> StoreInfo:
        """Verify the credentials with one call and describe the store."""
        raise self._unsupported("check credentials")

    def list_locations(self) -> list[Location]:
        raise self._unsupported("list locations")

    # -- catalog -----------------------------------------------------------
    def list_products(self, since: datetime | None = None) -> Iterator[Product]:
        """Every product changed at or after `since` (all products when None), with variants."""
        raise self._unsupported("list products")

    def list_products_matching(self, where: ProductFilter) -> Iterator[Product]:
        """The products `where` asks for, and possibly more (see `ProductFilter`).

        The default reads everything changed since `where.since`; connectors override it to
        let the platform filter what it can, and to read `collections` when asked for them.
        """
        return self.list_products(where.since)

    def get_products(self, ids: Sequence[str]) -> dict[str, Product]:
        """The products with these ids; ids that no longer exist are left out."""
        raise self._unsupported("read products")

    def list_deleted_product_ids(self, since: datetime) -> list[str] | None:
        """Ids of products deleted at or after `since`, or None when the platform
        cannot say (the engine then checks linked products by id)."""
        return None

    def create_listing(self, draft: ListingDraft, *, handle: str | None = None) -> Product:
        """Create a listing, published to the online store. With `handle`, a repeated call
        updates the listing the first one made instead of creating another."""
        raise self._unsupported("create listings")

    def update_listing(self, product_id: str, fields: dict[str, Any]) -> None:
        """Change product-level fields: title, description_html, vendor, product_type, tags, status."""
        raise self._unsupported("update listings")

    def add_images(self, product_id: str, images: Sequence[Image]) -> list[str]:
        """Attach images by URL; returns the new media ids in the same order."""
        raise self._unsupported("add images")

    def remove_images(self, product_id: str, media_ids: Sequence[str]) -> None:
        raise self._unsupported("remove images")

    def update_variants(self, product_id: str, updates: Sequence[VariantUpdate]) -> None:
        raise self._unsupported("update variants")

    def add_variants(self, product_id: str, drafts: Sequence[VariantDraft], location_id: str | None) -> list[Variant]:
        raise self._unsupported("add variants")

    def remove_variants(self, product_id: str, variant_ids: Sequence[str]) -> None:
        raise self._unsupported("remove variants")

    def delete_listing(self, product_id: str) -> None:
        raise self._unsupported("delete listings")

    # -- stock ---------------------------------------------------------------
    def read_stock(self, refs: Iterable[VariantRef]) -> dict[VariantRef, StockLevel]:
        raise self._unsupported("read stock")

    def set_stock(self, levels: Sequence[tuple[VariantRef, int]], *, key: str) -> None:
        """Set absolute quantities, at most `stock_batch_size` a request."""
        raise self._unsupported("set stock")

    def adjust_stock(self, deltas: Sequence[tuple[VariantRef, int]], *, key: str) -> None:
        """Move quantities by deltas (negative: sold), applied once per `key`."""
        raise self._unsupported("adjust stock")

    # -- orders and tracking -------------------------------------------------
    def create_order(self, draft: OrderDraft) -> Order:
        raise self._unsupported("create orders")

    def find_order(self, marker: str) -> Order | None:
        """The order carrying vsc's `marker`, looked up in a way the platform answers consistently."""
        raise self._unsupported("find orders by reference")

    def update_order(self, order_id: str, changes: dict[str, Any]) -> None:
        raise self._unsupported("edit orders")

    def list_orders(self, since: datetime | None = None) -> Iterator[Order]:
        raise self._unsupported("list orders")

    def get_order(self, order_id: str) -> Order | None:
        raise self._unsupported("read orders")

    def cancel_order(self, order_id: str, *, restock: bool = True) -> None:
        raise self._unsupported("cancel orders")

    def list_fulfillments(self, order_id: str) -> list[Fulfillment]:
        """What the store shipped for an order (vendor side of the tracking stream)."""
        raise self._unsupported("read fulfillments")

    def create_fulfillment(
        self,
        order_id: str,
        lines: Sequence[tuple[str, int]],
        tracking: TrackingInfo | None,
        *,
        notify_customer: bool = False,
    ) -> str:
        """Fulfil these (line item id, quantity) of an order with tracking; returns the fulfillment id
        (merchant side of the tracking stream)."""
        raise self._unsupported("create fulfillments")

    def update_tracking(self, fulfillment_id: str, tracking: TrackingInfo, *, notify_customer: bool = False) -> None:
        raise self._unsupported("update tracking")
