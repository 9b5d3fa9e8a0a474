"""Shopify as a merchant or a vendor store, through the Admin GraphQL API 2026-04."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from vsc.connectors.base import (
    Connector,
    Image,
    ListingDraft,
    Location,
    Product,
    ProductFilter,
    StoreInfo,
    Variant,
    VariantDraft,
    VariantUpdate,
    pass_memo,
)
from vsc.connectors.http import StoreSession, validate_store_url
from vsc.connectors.shopify.bulk import BulkMixin
from vsc.connectors.shopify.client import CostLimiter, CostTooHigh, ShopifyClient
from vsc.connectors.shopify.fulfillment import FulfillmentMixin
from vsc.connectors.shopify.inventory import InventoryMixin
from vsc.connectors.shopify.orders import OrdersMixin
from vsc.errors import PayloadError, UsageError

# Shopify caps every input list at 250 items (platforms/shopify.md §3).
INPUT_LIST_CAP = 250
_DEFAULT_OPTION = ("Title", "Default Title")


def shop_url(shop: str) -> str:
    """`name`, `name.myshopify.com` or a full URL → the store's base URL."""
    shop = shop.strip()
    if "://" not in shop:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*(\.myshopify\.com)?", shop):
            raise UsageError(
                f"{shop!r} is not a Shopify shop",
                hint="Give name.myshopify.com, a full https:// URL, or an http:// URL on 127.0.0.1 for a sandbox.",
            )
        if not shop.endswith(".myshopify.com"):
            shop += ".myshopify.com"
        shop = "https://" + shop
    return validate_store_url(shop, what="shop address")


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"Shopify sent a date vsc cannot read: {value!r}") from None


def _money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        raise PayloadError(f"Shopify sent an amount vsc cannot read: {value!r}") from None


def parse_variant(node: dict[str, Any], option_names: Sequence[str] = ()) -> Variant:
    """A ProductVariant node → `Variant`."""
    if not isinstance(node, dict) or not node.get("id"):
        raise PayloadError(f"Shopify sent a variant without an id: {node!r}")
    item = node.get("inventoryItem") or {}
    tracked = item.get("tracked", True)
    selected = {o["name"]: o["value"] for o in node.get("selectedOptions") or [] if o}
    names = list(option_names) or list(selected)
    options = tuple((n, selected[n]) for n in names if n in selected)
    if options == (_DEFAULT_OPTION,):
        options = ()
    quantity = node.get("inventoryQuantity")
    return Variant(
        id=node["id"],
        sku=node.get("sku") or None,
        price=_money(node.get("price")),
        compare_at_price=_money(node.get("compareAtPrice")),
        barcode=node.get("barcode") or None,
        options=options,
        available=(int(quantity) if quantity is not None else None) if tracked else None,
        inventory_item_id=item.get("id"),
        title=node.get("title"),
        position=int(node.get("position") or 0),
        updated_at=_dt(node.get("updatedAt")),
    )


def _images(media: dict[str, Any] | None) -> list[Image]:
    out = []
    for m in (media or {}).get("nodes") or []:
        if m and (m.get("image") or {}).get("url"):
            out.append(Image(src=m["image"]["url"], alt=m.get("alt") or None, id=m.get("id")))
    return out


def parse_product(
    node: dict[str, Any], variants: Sequence[dict[str, Any]] | None = None, media: Sequence[Image] | None = None
) -> Product:
    """A Product node (with its variants and media) → `Product`."""
    if not isinstance(node, dict) or not node.get("id"):
        raise PayloadError(f"Shopify sent a product without an id: {node!r}")
    options = [o["name"] for o in sorted(node.get("options") or [], key=lambda o: o.get("position") or 0)]
    if options == [_DEFAULT_OPTION[0]]:
        options = []
    variant_nodes = variants if variants is not None else (node.get("variants") or {}).get("nodes") or []
    collections = [c for c in (node.get("collections") or {}).get("nodes") or [] if c and c.get("id")]
    return Product(
        id=node["id"],
        title=node.get("title") or "",
        description_html=node.get("descriptionHtml") or "",
        vendor=node.get("vendor") or None,
        product_type=node.get("productType") or None,
        tags=tuple(node.get("tags") or ()),
        status=str(node.get("status") or "ACTIVE").lower(),
        options=tuple(options),
        variants=tuple(parse_variant(v, options) for v in variant_nodes),
        images=tuple(media if media is not None else _images(node.get("media"))),
        handle=node.get("handle"),
        updated_at=_dt(node.get("updatedAt")),
        collections=tuple(str(c.get("title") or "") for c in collections),
        collection_ids=tuple(str(c["id"]) for c in collections),
    )


def _search_value(value: str) -> str:
    """A value for a `query:` term, quoted so spaces and colons stay inside it."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def gid(kind: str, value: str) -> str:
    """Accept a GID or its numeric tail (as users copy ids from the admin)."""
    value = str(value).strip()
    if value.startswith("gid://"):
        return value
    if value.isdigit():
        return f"gid://shopify/{kind}/{value}"
    raise UsageError(f"{value!r} is not a Shopify {kind} id", hint=f"Use gid://shopify/{kind}/123 or 123.")


class ShopifyConnector(OrdersMixin, FulfillmentMixin, InventoryMixin, BulkMixin, Connector):
    """A Shopify store (merchant or vendor)."""

    platform = "shopify"
    stock_batch_size = INPUT_LIST_CAP
    can_write_listings = True
    can_cancel_orders = True
    can_update_orders = True
    collections_name = "collections"
    has_product_types = True

    def __init__(self, name: str, session: StoreSession, limiter: CostLimiter | None = None) -> None:
        super().__init__(name, session)
        self.limiter = limiter or (session.limiter if isinstance(session.limiter, CostLimiter) else CostLimiter())
        self.client = ShopifyClient(session, self.limiter)
        self._page = 8  # products per page; adapted to the cost Shopify reports
        self._online_store: str | None = None
        #: deletions read along with `list_products(since)`, by that since
        self._deletions: dict[datetime, list[str]] = {}

    @classmethod
    def open(cls, name: str, shop: str, token: str, **session_kw: Any) -> ShopifyConnector:
        limiter = CostLimiter(sleep=session_kw.get("sleep") or __import__("time").sleep)
        session = StoreSession(
            name,
            "shopify",
            shop_url(shop),
            headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json"},
            limiter=limiter,
            **session_kw,
        )
        return cls(name, session, limiter)

    # -- the store ---------------------------------------------------------------
    def check(self) -> StoreInfo:
        shop = self.client.execute("shop")["shop"]
        return StoreInfo(
            name=shop.get("name") or self.name,
            url=self.session.base_url,
            currency=shop.get("currencyCode"),
            detail={"domain": shop.get("myshopifyDomain"), "id": shop.get("id")},
        )

    def list_locations(self) -> list[Location]:
        out: list[Location] = []
        after = None
        while True:
            conn = self.client.execute("locations", {"after": after})["locations"]
            for n in conn["nodes"]:
                out.append(
                    Location(
                        id=n["id"],
                        name=n["name"],
                        active=bool(n.get("isActive")),
                        primary=bool(n.get("isPrimary")),
                        fulfills_online_orders=bool(n.get("fulfillsOnlineOrders")),
                    )
                )
            if not conn["pageInfo"]["hasNextPage"]:
                return out
            after = conn["pageInfo"]["endCursor"]

    # -- catalog: reads ------------------------------------------------------------
    def _complete(self, node: dict[str, Any]) -> Product:
        """Fetch the variants and images past the first page, then parse."""
        variants = list((node.get("variants") or {}).get("nodes") or [])
        page = (node.get("variants") or {}).get("pageInfo") or {}
        after = page.get("endCursor")
        while page.get("hasNextPage"):
            conn = self.client.execute("product_variants", {"id": node["id"], "after": after})["product"]["variants"]
            variants += conn["nodes"]
            page = conn["pageInfo"]
            after = page.get("endCursor")
        media = None
        if ((node.get("media") or {}).get("pageInfo") or {}).get("hasNextPage"):
            media, after, more = [], None, True
            while more:
                conn = self.client.execute("product_media", {"id": node["id"], "after": after})["product"]["media"]
                media += _images(conn)
                more, after = conn["pageInfo"]["hasNextPage"], conn["pageInfo"]["endCursor"]
        return parse_product(node, variants, media)

    def _fit_page(self, requested: float | None) -> None:
        # Aim each page at ~90 % of the 1,000-point cap (or half the bucket, on stores with a
        # small one), whatever the store's cost model.
        if requested:
            per_item = requested / max(1, self._page)
            target = min(900.0, self.limiter.maximum / 2)
            self._page = max(1, min(50, int(target // max(per_item, 1))))

    @pass_memo
    def list_products(self, since: datetime | None = None) -> Iterator[Product]:
        """Products changed since `since` (all when None). A read since a time also fetches the
        product deletions since then in its first request, for `list_deleted_product_ids`."""
        query = None
        if since is not None:
            # Dates in search queries must be quoted (platforms/shopify.md §4).
            query = f"updated_at:>='{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        return self._list_products(query, with_collections=False, deletions_since=since)

    def list_products_matching(self, where: ProductFilter) -> Iterator[Product]:
        """Products by Shopify's own search (`tag:`, `product_type:`, `status:`, `collection_id:`,
        `updated_at:`); collection names (not ids) are matched by the caller, so collections are
        read with the products whenever the filter names any."""
        terms = []
        if where.since is not None:
            terms.append(f"updated_at:>='{where.since.strftime('%Y-%m-%dT%H:%M:%SZ')}'")
        for field, values in (("tag", where.tags), ("product_type", where.product_types)):
            if values:
                terms.append("(" + " OR ".join(f"{field}:{_search_value(v)}" for v in values) + ")")
        if where.statuses:
            terms.append("(" + " OR ".join(f"status:{s}" for s in where.statuses) + ")")
        numbers = [c.rsplit("/", 1)[-1] for c in where.collections]
        if where.collections and all(n.isdigit() for n in numbers):
            terms.append("(" + " OR ".join(f"collection_id:{n}" for n in numbers) + ")")
        return self._list_products(" ".join(terms) or None, with_collections=bool(where.collections))

    def _list_products(
        self, query: str | None, *, with_collections: bool, deletions_since: datetime | None = None
    ) -> Iterator[Product]:
        after = None
        while True:
            variables: dict[str, Any] = {
                "first": self._page,
                "after": after,
                "query": query,
                "withCollections": with_collections,
            }
            if deletions_since is not None and after is None:
                variables["withDeletions"] = True
                variables["deletionsQuery"] = _occurred_since(deletions_since)
            try:
                conn = self.client.execute("products_changed", variables)
            except CostTooHigh:
                if self._page == 1:
                    raise
                self._page = max(1, self._page // 2)
                continue
            self._fit_page(self.client._costs.get("products_changed"))
            deletions = conn.get("deletions")
            if deletions is not None and deletions_since is not None:
                ids = [n["subjectId"] for n in deletions["nodes"]]
                more = deletions["pageInfo"]["endCursor"] if deletions["pageInfo"]["hasNextPage"] else None
                self._deletions[deletions_since] = ids + (self._deletion_pages(deletions_since, more) if more else [])
            products = conn["products"]
            for node in products["nodes"]:
                product = self.parse_record(node, lambda node=node: self._complete(node))
                if product is not None:
                    yield product
            if not products["pageInfo"]["hasNextPage"]:
                return
            after = products["pageInfo"]["endCursor"]

    def get_products(self, ids: Sequence[str]) -> dict[str, Product]:
        out: dict[str, Product] = {}
        pending = [gid("Product", i) for i in ids]
        while pending:
            chunk, rest = pending[: self._page], pending[self._page :]
            try:
                nodes = self.client.execute("products_by_id", {"ids": chunk, "withCollections": False})["nodes"]
            except CostTooHigh:
                if self._page == 1:
                    raise
                self._page = max(1, self._page // 2)
                continue
            for node in nodes:
                if node and node.get("id"):
                    product = self.parse_record(node, lambda node=node: self._complete(node))
                    if product is not None:
                        out[product.id] = product
            pending = rest
        return out

    def list_deleted_product_ids(self, since: datetime) -> list[str] | None:
        """Products deleted since `since` (already read by `list_products(since)` when it ran)."""
        if since in self._deletions:
            return self._deletions.pop(since)
        return self._deletion_pages(since, None)

    def _deletion_pages(self, since: datetime, after: str | None) -> list[str]:
        query = _occurred_since(since)
        out: list[str] = []
        while True:
            conn = self.client.execute("deletion_events", {"after": after, "query": query})["deletionEvents"]
            out += [n["subjectId"] for n in conn["nodes"]]
            if not conn["pageInfo"]["hasNextPage"]:
                return out
            after = conn["pageInfo"]["endCursor"]

    # -- catalog: writes (merchant) -----------------------------------------------
    def online_store_publication(self) -> str | None:
        if self._online_store is None:
            nodes = self.client.execute("publications")["publications"]["nodes"]
            match = [n["id"] for n in nodes if (n.get("name") or "").lower() == "online store"]
            self._online_store = match[0] if match else ""
        return self._online_store or None

    @staticmethod
    def _option_values(options: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        pairs = options or (_DEFAULT_OPTION,)
        return [{"optionName": n, "name": v} for n, v in pairs]

    def listing_input(self, draft: ListingDraft, handle: str | None) -> dict[str, Any]:
        """The `ProductSetInput` that makes `draft` a listing (per product, or one bulk line)."""
        names = list(draft.options) or [_DEFAULT_OPTION[0]]
        values: dict[str, list[str]] = {n: [] for n in names}
        for v in draft.variants:
            for n, val in v.options or (_DEFAULT_OPTION,):
                if val not in values.setdefault(n, []):
                    values[n].append(val)
        variants = []
        for i, v in enumerate(draft.variants):
            entry: dict[str, Any] = {
                "optionValues": self._option_values(v.options),
                "price": str(v.price if v.price is not None else Decimal("0")),
                "position": i + 1,
                "inventoryPolicy": "DENY",
                "inventoryItem": {"sku": v.sku, "tracked": v.available is not None},
            }
            if v.compare_at_price is not None:
                entry["compareAtPrice"] = str(v.compare_at_price)
            if v.barcode:
                entry["barcode"] = v.barcode
            if v.available is not None and draft.location_id:
                entry["inventoryQuantities"] = [
                    {"locationId": draft.location_id, "name": "available", "quantity": max(0, v.available)}
                ]
            variants.append(entry)
        product_input: dict[str, Any] = {
            "title": draft.title,
            "descriptionHtml": draft.description_html,
            "vendor": draft.vendor,
            "productType": draft.product_type or "",
            "tags": list(draft.tags),
            "status": draft.status.upper(),
            "productOptions": [
                {"name": n, "position": i + 1, "values": [{"name": val} for val in values[n]]}
                for i, n in enumerate(names)
            ],
            "files": [
                {"originalSource": img.src, "alt": img.alt or "", "contentType": "IMAGE"} for img in draft.images
            ],
            "variants": variants,
        }
        if handle:
            product_input["handle"] = handle
        return product_input

    def create_listing(self, draft: ListingDraft, *, handle: str | None = None) -> Product:
        product_input = self.listing_input(draft, handle)
        result = self.client.execute(
            "product_set",
            {"input": product_input, "identifier": {"handle": handle} if handle else None},
            mutation=True,
            # With a handle the call is an upsert: repeating it cannot make a second listing.
            idempotent=bool(handle),
        )["productSet"]
        self.client.check_user_errors(result, "productSet")
        node = result.get("product")
        if not node:
            raise PayloadError(f"{self.name}: productSet returned no product", store=self.name)
        product = parse_product(node)
        self.publish_listing(product.id)
        return product

    def publish_listing(self, product_id: str) -> None:
        """Put a listing on the Online Store (a no-op on stores without one)."""
        publication = self.online_store_publication()
        if publication:
            published = self.client.execute(
                "publishable_publish",
                {"id": product_id, "input": [{"publicationId": publication}]},
                mutation=True,
                idempotent=True,
            )["publishablePublish"]
            self.client.check_user_errors(published, "publishablePublish")

    def update_listing(self, product_id: str, fields: dict[str, Any]) -> None:
        names = {
            "title": "title",
            "description_html": "descriptionHtml",
            "vendor": "vendor",
            "product_type": "productType",
            "tags": "tags",
            "status": "status",
        }
        product: dict[str, Any] = {"id": product_id}
        for key, value in fields.items():
            if key not in names:
                raise ValueError(f"not a listing field: {key}")
            if key == "status":
                value = str(value).upper()
            elif key == "tags":
                value = list(value)
            elif key == "product_type":
                value = value or ""
            product[names[key]] = value
        result = self.client.execute(
            "product_update", {"product": product, "media": None}, mutation=True, idempotent=True
        )["productUpdate"]
        self.client.check_user_errors(result, "productUpdate")

    def add_images(self, product_id: str, images: Sequence[Image]) -> list[str]:
        before = self._media_ids(product_id)
        media = [{"originalSource": i.src, "alt": i.alt or "", "mediaContentType": "IMAGE"} for i in images]
        result = self.client.execute("product_update", {"product": {"id": product_id}, "media": media}, mutation=True)[
            "productUpdate"
        ]
        self.client.check_user_errors(result, "productUpdate")
        after = [m["id"] for m in ((result.get("product") or {}).get("media") or {}).get("nodes") or [] if m]
        return [m for m in after if m not in before]

    def _media_ids(self, product_id: str) -> list[str]:
        conn = self.client.execute("product_media", {"id": product_id, "after": None})["product"]
        return [m["id"] for m in ((conn or {}).get("media") or {}).get("nodes") or [] if m]

    def remove_images(self, product_id: str, media_ids: Sequence[str]) -> None:
        if not media_ids:
            return
        files = [{"id": m, "referencesToRemove": [product_id]} for m in media_ids]
        for i in range(0, len(files), INPUT_LIST_CAP):
            result = self.client.execute(
                "file_update", {"files": files[i : i + INPUT_LIST_CAP]}, mutation=True, idempotent=True
            )["fileUpdate"]
            self.client.check_user_errors(result, "fileUpdate")

    def update_variants(self, product_id: str, updates: Sequence[VariantUpdate]) -> None:
        entries = []
        for u in updates:
            entry: dict[str, Any] = {"id": u.variant_id}
            if u.price is not None:
                entry["price"] = str(u.price)
            if u.compare_at_price is not None:
                entry["compareAtPrice"] = str(u.compare_at_price)
            elif u.clear_compare_at_price:
                entry["compareAtPrice"] = None
            if u.barcode is not None:
                entry["barcode"] = u.barcode
            if u.sku is not None:
                # SKU lives on the inventory item (platforms/shopify.md §7.2).
                entry["inventoryItem"] = {"sku": u.sku}
            entries.append(entry)
        for i in range(0, len(entries), INPUT_LIST_CAP):
            result = self.client.execute(
                "variants_bulk_update",
                {"productId": product_id, "variants": entries[i : i + INPUT_LIST_CAP]},
                mutation=True,
                idempotent=True,
            )["productVariantsBulkUpdate"]
            self.client.check_user_errors(result, "productVariantsBulkUpdate")

    def add_variants(self, product_id: str, drafts: Sequence[VariantDraft], location_id: str | None) -> list[Variant]:
        entries = []
        for d in drafts:
            entry: dict[str, Any] = {
                "optionValues": self._option_values(d.options),
                "price": str(d.price if d.price is not None else Decimal("0")),
                "inventoryPolicy": "DENY",
                "inventoryItem": {"sku": d.sku, "tracked": d.available is not None},
            }
            if d.compare_at_price is not None:
                entry["compareAtPrice"] = str(d.compare_at_price)
            if d.barcode:
                entry["barcode"] = d.barcode
            if d.available is not None and location_id:
                entry["inventoryQuantities"] = [{"locationId": location_id, "availableQuantity": max(0, d.available)}]
            entries.append(entry)
        created: list[Variant] = []
        for i in range(0, len(entries), INPUT_LIST_CAP):
            result = self.client.execute(
                "variants_bulk_create",
                {"productId": product_id, "variants": entries[i : i + INPUT_LIST_CAP]},
                mutation=True,
            )["productVariantsBulkCreate"]
            self.client.check_user_errors(result, "productVariantsBulkCreate")
            created += [parse_variant(v) for v in result.get("productVariants") or []]
        return created

    def remove_variants(self, product_id: str, variant_ids: Sequence[str]) -> None:
        ids = list(variant_ids)
        for i in range(0, len(ids), INPUT_LIST_CAP):
            result = self.client.execute(
                "variants_bulk_delete",
                {"productId": product_id, "variantsIds": ids[i : i + INPUT_LIST_CAP]},
                mutation=True,
                idempotent=True,
            )["productVariantsBulkDelete"]
            self.client.check_user_errors(result, "productVariantsBulkDelete")

    def delete_listing(self, product_id: str) -> None:
        result = self.client.execute("product_delete", {"id": product_id}, mutation=True, idempotent=True)[
            "productDelete"
        ]
        self.client.check_user_errors(result, "productDelete")


def _occurred_since(since: datetime) -> str:
    return f"occurred_at:>='{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
