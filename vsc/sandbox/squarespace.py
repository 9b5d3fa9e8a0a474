"""A Squarespace Commerce store over real HTTP: products v2, inventory, orders, store pages.

Faithful to ../shared/platforms/squarespace.md (the "fact sheet"; bracketed keys
such as [SQ-inv-adjust] are its sources) and to the payloads in
../shared/contracts/squarespace/. What the fact sheet marks UNVERIFIED is
emulated the most plausible way and says so in a comment.

Wire behaviour emulated:

- `Authorization: Bearer <api key>` (401 AUTHORIZATION_ERROR otherwise) and a
  required `User-Agent` [SQ-auth] [SQ-making];
- the standard error body `{type, subtype, message, details: null, contextId}` [SQ-errors];
- list paging: up to 50 items ordered by `modifiedOn`, dynamic cursors that cannot
  be combined with other parameters, `modifiedAfter`/`modifiedBefore` only as a pair
  [SQ-orders-list] [OAS-products];
- `Idempotency-Key` on stock adjustments and order creation: replayed for 48 h,
  400 when reused with another body [SQ-idem];
- 300 requests/minute with a one-minute cool-down (429, non-JSON body by default)
  and 100 order creations/hour [SQ-rate] [SSSHARP];
- empty arrays come back as `null` or `[]` [SQ-errors]: by default the choice
  alternates deterministically by object id so clients must handle both;
- `isUnlimited` inventory keeps its stale `quantity` [SQ-inv-list];
- there is no endpoint to cancel or edit an order [SQ-forum-cancel]: such paths
  answer 404 (unknown route) or 405 METHOD_NOT_ALLOWED (known route, wrong method).

The Python-side API (`add_product`, `place_order`, `fulfill`, `cancel_order`...) acts
as the vendor would in the Squarespace UI or storefront, for tests, demo and bench.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
import time
import uuid
import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from vsc.sandbox.base import SandboxRequest, SandboxResponse, SandboxStore

PAGE_SIZE = 50  # "up to 50" per page, no page-size parameter [SQ-orders-list] [SQ-inv-list]
MAX_IDS = 50  # specific products / inventory by ids [OAS-products] [SQ-inv-specific]
MAX_ADJUST_OPS = 50  # [OAS-inventory]
MAX_VARIANTS = 250  # [OAS-products]
MAX_ATTRIBUTES = 6  # [SQ-prod-attrs]
MAX_PRICE = Decimal("1000000")  # [SQ-prod-create-1.0]
MAX_LINE_QUANTITY = 1_000_000  # [OAS-orders CreateLineItemRequest]
IDEMPOTENCY_TTL = 48 * 3600.0  # [SQ-idem]
COOL_DOWN = 60.0  # [SQ-rate]
IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # [SQ-idem]
HEX24_RE = re.compile(r"^[0-9a-f]{24}$")
PAYMENT_STATES = (
    "NOT_CHARGED", "AUTHORIZED", "PAID", "REFUNDED", "PENDING", "FAILED",
    "REFUND_PENDING", "REFUND_FAILED", "PARTIALLY_PAID",
)  # fmt: skip
DEFAULT_PAYMENT_STATES = ("NOT_CHARGED", "AUTHORIZED", "PAID", "REFUNDED")  # [OAS-orders]
FULFILLMENT_STATUSES = ("PENDING", "FULFILLED", "CANCELED")
PRODUCT_TYPES = ("PHYSICAL", "SERVICE", "GIFT_CARD", "DIGITAL")

# HTTP status → the error `type` the platform uses for it [OAS-orders StandardErrorPayload].
ERROR_TYPES = {
    400: "INVALID_REQUEST_ERROR",
    401: "AUTHORIZATION_ERROR",
    403: "AUTHORIZATION_ERROR",
    404: "INVALID_REQUEST_ERROR",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    429: "TOO_MANY_REQUESTS",
    500: "SERVER_ERROR",
    502: "SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

RATE_LIMIT_HTML = (
    b"<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>"
)


class _Reject(Exception):
    """Raised inside a handler to answer with a standard error body."""

    def __init__(self, status: int, message: str, subtype: str | None = None, type_: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.subtype = subtype
        self.type = type_ or ERROR_TYPES.get(status, "INVALID_REQUEST_ERROR")


@dataclass
class _Variant:
    id: str
    sku: str
    base_price: Decimal
    sale_price: Decimal = Decimal("0")
    on_sale: bool = False
    quantity: int = 0
    unlimited: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    measurements: dict[str, Any] | None = None
    image_id: str | None = None
    gtin: str | None = None
    mpn: str | None = None


@dataclass
class _Product:
    id: str
    name: str
    description: str
    url_slug: str
    tags: list[str]
    is_visible: bool
    variant_attributes: list[str]
    variants: list[_Variant]
    images: list[dict[str, Any]]
    created_ms: int
    modified_ms: int
    seo: dict[str, Any] = field(default_factory=lambda: {"title": None, "description": None})
    type: str = "PHYSICAL"


@dataclass
class _Order:
    payload: dict[str, Any]
    modified_ms: int


@dataclass
class _Idempotent:
    fingerprint: str
    response: SandboxResponse
    expires: float


def _iso(ms: int) -> str:
    """Milliseconds since the epoch → `2016-12-23T15:58:07.187Z` [SQ-orders-list]."""
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _parse_iso(value: str, name: str) -> int:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise _Reject(400, f"{name} is not a valid ISO 8601 UTC date and time string", "INVALID_ARGUMENT") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(round(dt.timestamp() * 1000))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "product"


def _price(value: Any, name: str, currency: str) -> Decimal:
    """Read a request's `{currency, value}` money object (value a decimal string)."""
    if not isinstance(value, Mapping) or "value" not in value:
        raise _Reject(400, f"{name} must be an object with currency and value", "INVALID_ARGUMENT")
    if value.get("currency") not in (None, currency):
        raise _Reject(400, f"{name} is not in the store currency {currency}", "CURRENCY_MISMATCH")
    try:
        amount = Decimal(str(value["value"]))
    except (InvalidOperation, ValueError):
        raise _Reject(400, f"{name}.value is not a decimal amount", "INVALID_ARGUMENT") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_PRICE:
        raise _Reject(400, f"{name}.value must be between 0 and {MAX_PRICE}", "INVALID_ARGUMENT")
    return amount


def _encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise _Reject(400, "The cursor parameter contains an invalid value.", "INVALID_ARGUMENT") from None
    if not isinstance(data, dict) or not isinstance(data.get("k"), list):
        raise _Reject(400, "The cursor parameter contains an invalid value.", "INVALID_ARGUMENT")
    return data


class SquarespaceSandbox(SandboxStore):
    """An emulated Squarespace Commerce site, served over HTTP on 127.0.0.1.

    `api_key` is the Bearer token it accepts (random when not given).
    `requests_per_minute` and `order_creates_per_hour` are the platform limits
    (None disables one); time comes from `self.clock()` (see `set_time`).
    `empty_lists` is "alternate" (null or [] chosen per object id), "null" or "list".
    `rate_limit_body` is "html" (like the real 429 seen by clients) or "json".
    """

    platform = "squarespace"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        currency: str = "USD",
        site: str = "vendor-sandbox",
        requests_per_minute: int | None = 300,
        order_creates_per_hour: int | None = 100,
        empty_lists: str = "alternate",
        rate_limit_body: str = "html",
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
    ) -> None:
        super().__init__(host=host, port=port, seed=seed)
        if empty_lists not in ("alternate", "null", "list"):
            raise ValueError("empty_lists must be 'alternate', 'null' or 'list'")
        self.api_key = api_key or uuid.UUID(int=self.random.getrandbits(128), version=4).hex
        self.currency = currency
        self.site = site
        self.requests_per_minute = requests_per_minute
        self.order_creates_per_hour = order_creates_per_hour
        self.empty_lists = empty_lists
        self.rate_limit_body = rate_limit_body
        self.store_pages: list[dict[str, Any]] = [
            {"id": self._hex_id(), "title": "Shop", "isEnabled": True},
        ]
        self._products: dict[str, _Product] = {}
        self._orders: dict[str, _Order] = {}
        self._idempotency: dict[str, _Idempotent] = {}
        self._recent: deque[float] = deque()
        self._recent_creates: deque[float] = deque()
        self._cool_down_until = 0.0
        self._last_ms = 0
        self._order_number = 0
        self._frozen: float | None = None

    def reset(self) -> None:
        """Forget every product, order, idempotency key, rate count, fault and request
        record (the server keeps running: cheaper than a new store between tests)."""
        with self.lock:
            self._products.clear()
            self._orders.clear()
            self._idempotency.clear()
            self._recent.clear()
            self._recent_creates.clear()
            self._cool_down_until = 0.0
            self._order_number = 0
            self._last_ms = 0
            self._frozen = None
            self.clock = time.time
            self.faults.clear()
            self.requests.clear()

    # -- time ------------------------------------------------------------------
    def set_time(self, when: datetime | float) -> None:
        """Freeze the store's clock at `when` (a datetime or epoch seconds)."""
        self._frozen = when.timestamp() if isinstance(when, datetime) else float(when)
        self.clock = self._frozen_clock

    def advance(self, seconds: float) -> None:
        """Move a frozen clock forward (freezing it at the current time first)."""
        if self._frozen is None:
            self.set_time(self.clock())
        assert self._frozen is not None
        self._frozen += seconds

    def _frozen_clock(self) -> float:
        assert self._frozen is not None
        return self._frozen

    def _stamp(self) -> int:
        # Strictly increasing milliseconds, so ordering by modifiedOn is total and
        # deterministic even under a frozen clock.
        ms = max(int(self.clock() * 1000), self._last_ms + 1)
        self._last_ms = ms
        return ms

    # -- ids ---------------------------------------------------------------------
    def _hex_id(self) -> str:
        return f"{self.random.getrandbits(96):024x}"  # 24-hex ids [SQ-orders-list]

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))  # variant ids [SQ-inv-list]

    def _empty(self, obj_id: str, items: list[Any] | None) -> list[Any] | None:
        """An empty list as `null` or `[]` [SQ-errors], deterministic per object."""
        if items:
            return items
        if self.empty_lists == "null":
            return None
        if self.empty_lists == "list":
            return []
        return None if zlib.crc32(obj_id.encode()) % 2 else []

    def _money(self, amount: Decimal) -> dict[str, str]:
        return {"currency": self.currency, "value": f"{amount:.2f}"}

    # -- rendering -----------------------------------------------------------------
    def _render_image(self, image: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in image.items() if not k.startswith("_")}

    def _render_variant(self, product: _Product, v: _Variant) -> dict[str, Any]:
        image = next((i for i in product.images if i["id"] == v.image_id), None)
        return {
            "id": v.id,
            "sku": v.sku,
            "pricing": {
                "basePrice": self._money(v.base_price),
                "salePrice": self._money(v.sale_price),
                "onSale": v.on_sale,
            },
            "stock": {"quantity": v.quantity, "unlimited": v.unlimited},
            "attributes": dict(v.attributes),
            "shippingMeasurements": copy.deepcopy(v.measurements),
            "image": self._render_image(image) if image else None,
            "gtin": v.gtin,
            "mpn": v.mpn,
        }

    def _render_product(self, p: _Product) -> dict[str, Any]:
        # Synthetic shape: no real Product response example exists (contracts README,
        # "Not found"); fields per the fact sheet's Products section [OAS-products] [GOCOM].
        page = self.store_pages[0]
        return {
            "id": p.id,
            "type": p.type,
            "storePageId": page["id"],
            "name": p.name,
            "description": p.description,
            "url": f"https://{self.site}.squarespace.com/{_slug(page['title'])}/p/{p.url_slug}",
            "urlSlug": p.url_slug,
            "tags": self._empty(p.id, list(p.tags)),
            "isVisible": p.is_visible,
            "seoOptions": dict(p.seo),
            "variantAttributes": self._empty(p.id, list(p.variant_attributes)),
            "variants": [self._render_variant(p, v) for v in p.variants],
            "images": self._empty(p.id, [self._render_image(i) for i in p.images]),
            "createdOn": _iso(p.created_ms),
            "modifiedOn": _iso(p.modified_ms),
        }

    def _descriptor(self, p: _Product, v: _Variant) -> str:
        # "Product name [attr values]" [SQ-inv-list]
        values = [v.attributes[a] for a in p.variant_attributes if a in v.attributes]
        return f"{p.name} [{', '.join(values)}]" if values else p.name

    def _render_inventory(self, p: _Product, v: _Variant) -> dict[str, Any]:
        return {
            "variantId": v.id,
            "sku": v.sku,
            "descriptor": self._descriptor(p, v),
            "isUnlimited": v.unlimited,
            "quantity": v.quantity,  # stale when isUnlimited [SQ-inv-list]
        }

    def _render_order(self, o: _Order) -> dict[str, Any]:
        body = copy.deepcopy(o.payload)
        oid = body["id"]
        for key in ("internalNotes", "shippingLines", "discountLines", "fulfillments"):
            body[key] = self._empty(oid, body[key])
        for item in body["lineItems"]:
            item["variantOptions"] = self._empty(item["id"], item["variantOptions"])
            item["customizations"] = self._empty(item["id"], item["customizations"])
        return body

    # -- lookups --------------------------------------------------------------------
    def _find_variant(self, variant_id: str) -> tuple[_Product, _Variant] | None:
        for p in self._products.values():
            for v in p.variants:
                if v.id == variant_id:
                    return p, v
        return None

    def _variant_or_fail(self, variant_id: str) -> tuple[_Product, _Variant]:
        found = self._find_variant(variant_id)
        if found is None:
            raise KeyError(f"no variant {variant_id}")
        return found

    def _sku_taken(self, sku: str, *, but: str | None = None) -> bool:
        return any(v.sku == sku and v.id != but for p in self._products.values() for v in p.variants)

    # -- Python-side API (the vendor in the Squarespace UI) --------------------------
    def add_product(
        self,
        name: str,
        variants: Sequence[Mapping[str, Any]] | None = None,
        *,
        variant_attributes: Sequence[str] = (),
        tags: Sequence[str] = (),
        description: str = "",
        images: Sequence[str | Mapping[str, Any]] = (),
        is_visible: bool = True,
        url_slug: str | None = None,
    ) -> dict[str, Any]:
        """Create a PHYSICAL product; returns its API payload.

        Each variant is a dict with `sku`, `price`, optional `sale_price`/`on_sale`,
        `attributes` ({name: value}), and `quantity` or `unlimited=True`; an `id`
        (UUID) may be given to reproduce a contract payload.
        """
        with self.lock:
            body = {
                "type": "PHYSICAL",
                "storePageId": self.store_pages[0]["id"],
                "name": name,
                "description": description,
                "tags": list(tags),
                "isVisible": is_visible,
                "variantAttributes": list(variant_attributes),
                "variants": [self._variant_body(v, i) for i, v in enumerate(variants or [{}])],
            }
            if url_slug:
                body["urlSlug"] = url_slug
            ids = [v.get("id") for v in (variants or [{}])]
            product = self._create_product(body, variant_ids=ids)
            for i, image in enumerate(images):
                img = {"url": image} if isinstance(image, str) else dict(image)
                product.images.append(self._new_image(img.get("url", ""), img.get("alt"), i))
            return self._render_product(product)

    def _variant_body(self, v: Mapping[str, Any], index: int) -> dict[str, Any]:
        price = Decimal(str(v.get("price", "10.00")))
        return {
            "sku": v.get("sku") or f"SQ{self.random.getrandbits(24):07d}",
            "pricing": {
                "basePrice": self._money(price),
                "onSale": bool(v.get("on_sale", False)),
                "salePrice": self._money(Decimal(str(v.get("sale_price", "0")))),
            },
            "stock": {"quantity": int(v.get("quantity", 0)), "unlimited": bool(v.get("unlimited", False))},
            "attributes": dict(v.get("attributes") or {}),
        }

    def _new_image(self, url: str, alt: str | None, index: int) -> dict[str, Any]:
        image_id = self._hex_id()
        return {
            "id": image_id,
            "altText": alt,
            "url": url or f"https://images.squarespace-cdn.com/content/{image_id}/image.jpg",
            "originalSize": {"width": 1000, "height": 1000},
            "availableFormats": ["100w", "300w", "500w", "750w", "1000w"],
            "orderIndex": index,
        }

    def update_product(self, product_id: str, **fields: Any) -> dict[str, Any]:
        """Change name, description, tags, is_visible, variant_attributes or url_slug."""
        names = {"is_visible": "isVisible", "variant_attributes": "variantAttributes", "url_slug": "urlSlug"}
        with self.lock:
            product = self._products[product_id]
            self._update_product(product, {names.get(k, k): v for k, v in fields.items()})
            return self._render_product(product)

    def update_variant(
        self,
        variant_id: str,
        *,
        sku: str | None = None,
        price: Decimal | str | None = None,
        sale_price: Decimal | str | None = None,
        on_sale: bool | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Change a variant's SKU, prices or attributes (bumps the product's modifiedOn)."""
        with self.lock:
            product, v = self._variant_or_fail(variant_id)
            if sku is not None:
                v.sku = sku
            if price is not None:
                v.base_price = Decimal(str(price))
            if sale_price is not None:
                v.sale_price = Decimal(str(sale_price))
            if on_sale is not None:
                v.on_sale = on_sale
            if attributes is not None:
                v.attributes = dict(attributes)
            product.modified_ms = self._stamp()
            return self._render_variant(product, v)

    def add_variant(
        self, product_id: str, sku: str, price: Decimal | str, attributes: Mapping[str, str], quantity: int = 0
    ) -> dict[str, Any]:
        """Add a variant to a product (its attributes must match the product's)."""
        with self.lock:
            product = self._products[product_id]
            body = self._variant_body({"sku": sku, "price": price, "attributes": attributes, "quantity": quantity}, 0)
            return self._create_variant(product, body)

    def delete_variant(self, variant_id: str) -> None:
        with self.lock:
            product, v = self._variant_or_fail(variant_id)
            product.variants.remove(v)
            product.modified_ms = self._stamp()

    def delete_product(self, product_id: str) -> None:
        with self.lock:
            del self._products[product_id]

    def set_stock(self, variant_id: str, quantity: int) -> None:
        """Set a finite stock level (as the vendor would in the inventory panel)."""
        with self.lock:
            _, v = self._variant_or_fail(variant_id)
            v.quantity, v.unlimited = int(quantity), False

    def set_unlimited(self, variant_id: str) -> None:
        """Mark a variant unlimited; its last quantity stays (stale) [SQ-inv-list]."""
        with self.lock:
            _, v = self._variant_or_fail(variant_id)
            v.unlimited = True

    def stock(self, variant_id: str) -> int | None:
        """The variant's stock, None when unlimited."""
        with self.lock:
            _, v = self._variant_or_fail(variant_id)
            return None if v.unlimited else v.quantity

    def place_order(
        self,
        lines: Sequence[tuple[str, int]],
        *,
        email: str | None = "shopper@example.com",
        shipping_address: Mapping[str, Any] | None = None,
        payment_state: str = "PAID",
    ) -> dict[str, Any]:
        """A storefront sale: decrements stock (ValueError when short), channelName "Squarespace"."""
        with self.lock:
            self._check_stock([(vid, q) for vid, q in lines])
            for vid, q in lines:
                _, v = self._variant_or_fail(vid)
                if not v.unlimited:
                    v.quantity -= q
            now = self._stamp()
            items = [self._line_item(vid, q, self._variant_or_fail(vid)[1].base_price) for vid, q in lines]
            subtotal = sum((Decimal(i["unitPricePaid"]["value"]) * i["quantity"] for i in items), Decimal(0))
            order = self._new_order(
                created_ms=now,
                items=items,
                totals={"subtotal": subtotal, "grandTotal": subtotal},
                email=email,
                shipping=shipping_address,
                # real storefront orders: channelName "Squarespace", no reference [SQ-orders-list]
                channel_name="Squarespace",
                reference=None,
                payment_state=payment_state,
            )
            return self._render_order(order)

    def _check_stock(self, lines: Iterable[tuple[str, int]]) -> None:
        need: dict[str, int] = {}
        for vid, q in lines:
            need[vid] = need.get(vid, 0) + q
        for vid, q in need.items():
            found = self._find_variant(vid)
            if found is None:
                raise KeyError(f"no variant {vid}")
            v = found[1]
            if not v.unlimited and v.quantity < q:
                raise ValueError(f"insufficient stock for {v.sku}: {v.quantity} < {q}")

    def fulfill(self, order_id: str, shipments: Sequence[Mapping[str, Any]], *, notify: bool = False) -> None:
        """Add shipments (`carrier`/`carrierName`, `tracking_number`/`trackingNumber`, ...)."""
        with self.lock:
            converted = [
                {
                    "shipDate": s.get("shipDate") or s.get("ship_date") or _iso(int(self.clock() * 1000)),
                    "carrierName": s.get("carrierName") or s.get("carrier"),
                    "service": s.get("service"),
                    "trackingNumber": s.get("trackingNumber") or s.get("tracking_number"),
                    "trackingUrl": s.get("trackingUrl") or s.get("tracking_url"),
                }
                for s in shipments
            ]
            self._fulfill(self._orders[order_id], {"shouldSendNotification": notify, "shipments": converted})

    def cancel_order(self, order_id: str, *, restock: bool = True) -> dict[str, Any]:
        """Cancel as the vendor does in the UI ("Restock Inventory" checked by default) [SQ-help-cancel]."""
        with self.lock:
            order = self._orders[order_id]
            if order.payload["fulfillmentStatus"] == "CANCELED":
                raise ValueError("order is already canceled")  # can't un-cancel either [SQ-help-cancel]
            if restock:
                for item in order.payload["lineItems"]:
                    found = self._find_variant(item["variantId"] or "")
                    if found is not None and not found[1].unlimited:
                        found[1].quantity += item["quantity"]
            order.payload["fulfillmentStatus"] = "CANCELED"
            order.payload["refundedTotal"] = dict(order.payload["grandTotal"])
            self._touch(order)
            return self._render_order(order)

    def add_internal_note(self, order_id: str, content: str) -> None:
        with self.lock:
            order = self._orders[order_id]
            order.payload["internalNotes"].append({"content": content})
            self._touch(order)

    def products(self) -> list[dict[str, Any]]:
        """Snapshot of every product payload, ordered by modifiedOn."""
        with self.lock:
            ordered = sorted(self._products.values(), key=lambda p: (p.modified_ms, p.id))
            return [self._render_product(p) for p in ordered]

    def orders(self) -> list[dict[str, Any]]:
        """Snapshot of every order payload, ordered by modifiedOn."""
        with self.lock:
            ordered = sorted(self._orders.values(), key=lambda o: (o.modified_ms, o.payload["id"]))
            return [self._render_order(o) for o in ordered]

    def order(self, order_id: str) -> dict[str, Any]:
        with self.lock:
            return self._render_order(self._orders[order_id])

    def product(self, product_id: str) -> dict[str, Any]:
        with self.lock:
            return self._render_product(self._products[product_id])

    # -- base-class hooks ---------------------------------------------------------------
    def fault_body(self, status: int) -> Any:
        return self._error_body(status, ERROR_TYPES.get(status, "SERVER_ERROR"), None, f"injected HTTP {status}")

    def throttle_response(self, req: SandboxRequest) -> SandboxResponse:
        return self._too_many()

    def operation_name(self, req: SandboxRequest) -> str | None:
        return _operation(req.method, req.path)

    # -- HTTP ------------------------------------------------------------------------------
    def _error_body(self, status: int, type_: str, subtype: str | None, message: str) -> dict[str, Any]:
        return {
            "type": type_,
            "subtype": subtype,
            "message": message,
            "details": None,  # "reserved for future use; always null" [SQ-errors]
            "contextId": f"{self.random.getrandbits(40):010X}",
        }

    def _error(
        self, status: int, message: str, subtype: str | None = None, type_: str | None = None
    ) -> SandboxResponse:
        return SandboxResponse(
            status,
            self._error_body(status, type_ or ERROR_TYPES.get(status, "INVALID_REQUEST_ERROR"), subtype, message),
        )

    def _too_many(self) -> SandboxResponse:
        # No Retry-After is documented and the body may not be JSON [SQ-rate] [SSSHARP].
        if self.rate_limit_body == "html":
            return SandboxResponse(429, raw=RATE_LIMIT_HTML, headers={"Content-Type": "text/html"})
        return self._error(429, "Too many requests.", None, "TOO_MANY_REQUESTS")

    def _rate_limited(self, req: SandboxRequest) -> SandboxResponse | None:
        now = self.clock()
        if now < self._cool_down_until:
            return self._too_many()
        if self.requests_per_minute is not None:
            while self._recent and self._recent[0] <= now - 60.0:
                self._recent.popleft()
            if len(self._recent) >= self.requests_per_minute:
                self._cool_down_until = now + COOL_DOWN  # one-minute cool-down [SQ-rate]
                return self._too_many()
            self._recent.append(now)
        if (
            self.order_creates_per_hour is not None
            and req.method == "POST"
            and req.path.rstrip("/") == "/1.0/commerce/orders"
        ):
            # A separate 100 requests/hour budget for Create Order with an API key [SQ-rate].
            while self._recent_creates and self._recent_creates[0] <= now - 3600.0:
                self._recent_creates.popleft()
            if len(self._recent_creates) >= self.order_creates_per_hour:
                return self._error(429, "Create Order rate limit exceeded.", None, "TOO_MANY_REQUESTS")
            self._recent_creates.append(now)
        return None

    def handle(self, req: SandboxRequest) -> SandboxResponse:
        # "All requests must include the User-Agent HTTP header. Requests without one
        # will be rejected." [SQ-making]; the status is not documented: 400 here (UNVERIFIED).
        if not (req.header("User-Agent") or "").strip():
            return self._error(400, "A User-Agent header is required.", "MISSING_ARGUMENT")
        if req.header("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "The API key is missing, invalid or revoked.", None, "AUTHORIZATION_ERROR")
        limited = self._rate_limited(req)
        if limited is not None:
            return limited
        try:
            return self._route(req)
        except _Reject as exc:
            return self._error(exc.status, str(exc), exc.subtype, exc.type)

    def _route(self, req: SandboxRequest) -> SandboxResponse:
        path = req.path.rstrip("/")
        m = req.method
        routes: list[tuple[str, dict[str, Any]]] = [
            (r"/1\.0/commerce/store_pages", {"GET": self._get_store_pages}),
            (r"/v2/commerce/products", {"GET": self._list_products, "POST": self._post_product}),
            (r"/v2/commerce/products/([^/]+)/variants", {"POST": self._post_variant}),
            (
                r"/v2/commerce/products/([^/]+)/variants/([^/]+)",
                {"POST": self._update_variant_route, "DELETE": self._delete_variant_route},
            ),
            (r"/v2/commerce/products/([^/]+)/images", {"POST": self._upload_image}),
            (r"/v2/commerce/products/([^/]+)/images/([^/]+)/status", {"GET": self._image_status}),
            (r"/v2/commerce/products/([^/]+)/images/([^/]+)", {"DELETE": self._delete_image}),
            (
                r"/v2/commerce/products/([^/]+)",
                {"GET": self._get_products, "POST": self._update_product_route, "DELETE": self._delete_product_route},
            ),
            (r"/1\.0/commerce/inventory", {"GET": self._list_inventory}),
            (r"/1\.0/commerce/inventory/adjustments", {"POST": self._adjust_inventory}),
            (r"/1\.0/commerce/inventory/([^/]+)", {"GET": self._get_inventory}),
            (r"/1\.0/commerce/orders", {"GET": self._list_orders, "POST": self._create_order}),
            (r"/1\.0/commerce/orders/([^/]+)", {"GET": self._get_order}),
            (r"/1\.0/commerce/orders/([^/]+)/fulfillments", {"POST": self._fulfill_route}),
        ]
        allowed_elsewhere = False
        for pattern, methods in routes:
            match = re.fullmatch(pattern, path)
            if not match:
                continue
            handler = methods.get(m)
            if handler is None:
                # A later pattern may own this method (inventory/adjustments vs inventory/{ids}).
                allowed_elsewhere = True
                continue
            if m == "POST":
                ctype = (req.header("Content-Type") or "").lower()
                if handler != self._upload_image and not ctype.startswith("application/json"):
                    raise _Reject(400, "Content-Type must be application/json", "INVALID_CONTENT_TYPE")
            return handler(req, *match.groups())
        if allowed_elsewhere:
            return self._error(405, f"{m} is not allowed on {path}.", None, "METHOD_NOT_ALLOWED")
        # An unknown route (e.g. an order cancel or edit endpoint, which does not exist
        # [SQ-forum-cancel]); the real body for unknown routes is UNVERIFIED.
        return self._error(404, f"No resource at {path}.", None, "INVALID_REQUEST_ERROR")

    # -- idempotency ----------------------------------------------------------------
    def _idempotent(self, req: SandboxRequest, apply: Any) -> SandboxResponse:
        key = req.header("Idempotency-Key")
        if key is None:
            raise _Reject(400, "The Idempotency-Key header is required.", "MISSING_ARGUMENT")
        if not IDEMPOTENCY_KEY_RE.match(key):
            raise _Reject(400, "The Idempotency-Key header is invalid.", "INVALID_ARGUMENT")
        now = self.clock()
        for k in [k for k, rec in self._idempotency.items() if rec.expires <= now]:
            del self._idempotency[k]
        try:
            canonical = json.dumps(req.json(), sort_keys=True)
        except ValueError:
            canonical = req.body.decode("utf-8", "replace")
        fingerprint = hashlib.sha256(f"{req.method} {req.path}\n{canonical}".encode()).hexdigest()
        seen = self._idempotency.get(key)
        if seen is not None:
            if seen.fingerprint != fingerprint:
                raise _Reject(
                    400,
                    "The provided Idempotency-Key has already been used by another request bearing a different body.",
                    "INVALID_ARGUMENT",
                )
            return copy.deepcopy(seen.response)  # same response, not applied again [SQ-idem]
        response = apply()
        # Only successes are remembered: a refused request applied nothing, so sending it
        # again (e.g. after a restock) may rightly succeed. (Whether the real API also
        # replays errors is UNVERIFIED.)
        if response.status < 300:
            self._idempotency[key] = _Idempotent(fingerprint, copy.deepcopy(response), now + IDEMPOTENCY_TTL)
        return response

    # -- list helpers ----------------------------------------------------------------
    def _page(
        self,
        req: SandboxRequest,
        items_key: str,
        base_path: str,
        allowed: Sequence[str],
        select: Any,
    ) -> SandboxResponse:
        """Cursor paging over `select(filters) -> [(modified_ms, id, payload)]`."""
        params = {k: v[-1] for k, v in req.query.items()}
        unknown = set(params) - set(allowed) - {"cursor"}
        if unknown:
            raise _Reject(400, f"Unknown parameter(s): {', '.join(sorted(unknown))}", "INVALID_ARGUMENT")
        if "cursor" in params:
            if len(params) > 1:
                # "cursor cannot be combined with other params" [SQ-orders-list]
                raise _Reject(400, "The cursor parameter cannot be used with other parameters.", "INVALID_ARGUMENT")
            state = _decode_cursor(params["cursor"])
            filters = state.get("f") or {}
            after_key = tuple(state["k"])
        else:
            filters = self._filters(params)
            after_key = None
        rows = sorted(select(filters), key=lambda r: (r[0], r[1]))
        if after_key is not None:
            rows = [r for r in rows if (r[0], r[1]) > (after_key[0], after_key[1])]
        page, rest = rows[:PAGE_SIZE], rows[PAGE_SIZE:]
        cursor = _encode_cursor({"k": [page[-1][0], page[-1][1]], "f": filters}) if rest else None
        return SandboxResponse(
            200,
            {
                items_key: [r[2] for r in page],
                "pagination": {
                    "hasNextPage": bool(rest),
                    "nextPageCursor": cursor,
                    "nextPageUrl": f"https://api.squarespace.com{base_path}?cursor={cursor}" if cursor else None,
                },
            },
        )

    def _filters(self, params: Mapping[str, str]) -> dict[str, Any]:
        filters: dict[str, Any] = {}
        has_after, has_before = "modifiedAfter" in params, "modifiedBefore" in params
        if has_after != has_before:
            # "must be passed together" [SQ-orders-list] [OAS-orders]
            raise _Reject(400, "modifiedAfter and modifiedBefore must be specified together.", "MISSING_ARGUMENT")
        if has_after:
            after = _parse_iso(params["modifiedAfter"], "modifiedAfter")
            before = _parse_iso(params["modifiedBefore"], "modifiedBefore")
            if before <= after:
                raise _Reject(400, "modifiedBefore must be after modifiedAfter.", "INVALID_ARGUMENT")
            filters["after"], filters["before"] = after, before
        if "type" in params:
            types = [t.strip() for t in params["type"].split(",") if t.strip()]
            if not types or any(t not in PRODUCT_TYPES for t in types):
                raise _Reject(400, "type is not a valid product type list.", "INVALID_ARGUMENT")
            filters["type"] = types
        if "query" in params:
            filters["query"] = params["query"]
        if "fulfillmentStatus" in params:
            if params["fulfillmentStatus"] not in FULFILLMENT_STATUSES:
                raise _Reject(400, "fulfillmentStatus is not one of the recognized values.", "INVALID_ARGUMENT")
            filters["fulfillmentStatus"] = params["fulfillmentStatus"]
        if "paymentStates" in params:
            states = [s.strip() for s in params["paymentStates"].split(",") if s.strip()]
            if not states or any(s not in PAYMENT_STATES for s in states):
                raise _Reject(400, "paymentStates is not a valid value.", "INVALID_ARGUMENT")
            filters["paymentStates"] = states
        if "customerId" in params:
            filters["customerId"] = params["customerId"]
        return filters

    @staticmethod
    def _in_window(ms: int, filters: Mapping[str, Any]) -> bool:
        if "after" not in filters:
            return True
        return filters["after"] < ms < filters["before"]

    # -- store pages -------------------------------------------------------------------
    def _get_store_pages(self, req: SandboxRequest) -> SandboxResponse:
        # {"storePages": [{id, title, isEnabled}], "pagination"} [GOCOM products/types.go]
        return SandboxResponse(
            200,
            {
                "storePages": copy.deepcopy(self.store_pages),
                "pagination": {"hasNextPage": False, "nextPageCursor": None, "nextPageUrl": None},
            },
        )

    # -- products ------------------------------------------------------------------------
    def _list_products(self, req: SandboxRequest) -> SandboxResponse:
        def select(filters: Mapping[str, Any]) -> list[tuple[int, str, Any]]:
            rows = []
            for p in self._products.values():
                if not self._in_window(p.modified_ms, filters):
                    continue
                if "type" in filters and p.type not in filters["type"]:
                    continue
                if "query" in filters and filters["query"].lower() not in p.name.lower():
                    continue
                rows.append((p.modified_ms, p.id, self._render_product(p)))
            return rows

        return self._page(
            req, "products", "/v2/commerce/products", ("modifiedAfter", "modifiedBefore", "type", "query"), select
        )

    def _ids(self, csv: str, *, uuid_ids: bool) -> list[str]:
        ids = [i for i in csv.split(",") if i]
        if not ids:
            raise _Reject(400, "At least one id is required.", "MISSING_ARGUMENT")
        if len(ids) > MAX_IDS:
            raise _Reject(400, f"At most {MAX_IDS} ids may be requested at once.", "INVALID_ARGUMENT")
        for i in ids:
            valid = bool(HEX24_RE.match(i)) if not uuid_ids else _is_uuid(i)
            if not valid:
                raise _Reject(400, f"{i!r} is not a valid id.", "INVALID_ARGUMENT")
        return ids

    def _get_products(self, req: SandboxRequest, csv: str) -> SandboxResponse:
        ids = self._ids(csv, uuid_ids=False)
        missing = [i for i in ids if i not in self._products]
        if missing:
            raise _Reject(404, f"Product(s) not found: {', '.join(missing)}")  # 404 if any missing [OAS-products]
        return SandboxResponse(200, {"products": [self._render_product(self._products[i]) for i in dict.fromkeys(ids)]})

    def _product_or_404(self, product_id: str) -> _Product:
        product = self._products.get(product_id)
        if product is None:
            raise _Reject(404, f"Product {product_id} not found.")
        return product

    def _post_product(self, req: SandboxRequest) -> SandboxResponse:
        body = _body(req)
        return SandboxResponse(201, self._render_product(self._create_product(body)))

    def _create_product(self, body: Mapping[str, Any], variant_ids: Sequence[str | None] = ()) -> _Product:
        if body.get("type") != "PHYSICAL":
            # DIGITAL cannot be created [SQ-changelog]; the sandbox emulates PHYSICAL only.
            raise _Reject(400, "The sandbox creates PHYSICAL products only.", "OPERATION_NOT_ALLOWED_FOR_PRODUCT_TYPE")
        if not body.get("storePageId"):
            raise _Reject(400, "storePageId is required.", "MISSING_ARGUMENT")
        if body["storePageId"] not in {p["id"] for p in self.store_pages}:
            raise _Reject(400, "Store page not found.", "STORE_PAGE_NOT_FOUND")
        name = body.get("name") or ""
        if len(name) > 200:
            raise _Reject(400, "name is limited to 200 characters.", "INVALID_ARGUMENT")
        attributes = list(body.get("variantAttributes") or [])
        if len(attributes) > MAX_ATTRIBUTES:
            raise _Reject(400, "At most 6 variant attributes are allowed.", "INVALID_ARGUMENT")
        raw_variants = body.get("variants") or []
        if not raw_variants:
            raise _Reject(400, "A product needs at least one variant.", "INSUFFICIENT_PRODUCT_VARIANTS")
        if len(raw_variants) > 1 and not attributes:
            # attributes are required once a product has ≥2 variants [SQ-prod-attrs]
            raise _Reject(400, "variantAttributes are required for more than one variant.", "INVALID_ARGUMENT")
        slug = body.get("urlSlug") or _slug(name)
        if body.get("urlSlug"):
            if any(p.url_slug == slug for p in self._products.values()):
                raise _Reject(409, "The provided URL slug is already in use.", "URL_SLUG_UNAVAILABLE")
        else:
            base, n = slug, 1
            while any(p.url_slug == slug for p in self._products.values()):
                n += 1
                slug = f"{base}-{n}"
        now = self._stamp()
        product = _Product(
            id=self._hex_id(),
            name=name,
            description=body.get("description") or "",
            url_slug=slug,
            tags=list(body.get("tags") or []),
            is_visible=bool(body.get("isVisible", False)),
            variant_attributes=attributes,
            variants=[],
            images=[],
            created_ms=now,
            modified_ms=now,
        )
        seen_skus: set[str] = set()
        for i, raw in enumerate(raw_variants):
            v = self._build_variant(product, raw, variant_id=variant_ids[i] if i < len(variant_ids) else None)
            if v.sku in seen_skus:
                raise _Reject(409, f"SKU {v.sku} is already in use.", "SKU_UNAVAILABLE")
            seen_skus.add(v.sku)
            product.variants.append(v)
        self._products[product.id] = product
        return product

    def _build_variant(self, product: _Product, raw: Any, *, variant_id: str | None = None) -> _Variant:
        if not isinstance(raw, Mapping):
            raise _Reject(400, "A variant must be an object.", "INVALID_ARGUMENT")
        sku = str(raw.get("sku") or "").strip()  # unique, trimmed, ≤60 [OAS-products]
        if not sku or len(sku) > 60:
            raise _Reject(400, "sku is required (at most 60 characters).", "INVALID_ARGUMENT")
        if self._sku_taken(sku):
            raise _Reject(409, f"SKU {sku} is already in use.", "SKU_UNAVAILABLE")
        pricing = raw.get("pricing")
        if not isinstance(pricing, Mapping) or "basePrice" not in pricing:
            raise _Reject(400, "pricing.basePrice is required.", "MISSING_ARGUMENT")
        attributes = raw.get("attributes") or {}
        self._check_attributes(product, attributes, but=None)
        stock = raw.get("stock") or {}
        quantity = stock.get("quantity", 0)
        if not isinstance(quantity, int) or quantity < 0:
            raise _Reject(400, "stock.quantity must be a non-negative integer.", "INVALID_ARGUMENT")
        return _Variant(
            id=variant_id or self._uuid(),
            sku=sku,
            base_price=_price(pricing["basePrice"], "basePrice", self.currency),
            sale_price=_price(pricing.get("salePrice") or {"value": "0"}, "salePrice", self.currency),
            on_sale=bool(pricing.get("onSale", False)),
            quantity=quantity,
            unlimited=bool(stock.get("unlimited", False)),
            attributes={str(k): str(v) for k, v in attributes.items()},
            measurements=copy.deepcopy(raw.get("shippingMeasurements")),
            gtin=raw.get("gtin"),
            mpn=raw.get("mpn"),
        )

    def _check_attributes(self, product: _Product, attributes: Any, *, but: str | None) -> None:
        # Keys must equal the product's variantAttributes; each combination unique [SQ-prod-attrs].
        if not isinstance(attributes, Mapping):
            raise _Reject(400, "attributes must be an object.", "INVALID_ARGUMENT")
        if set(attributes) != set(product.variant_attributes):
            raise _Reject(400, "Variant attributes must match the product's variantAttributes.", "INVALID_ARGUMENT")
        if any(len(str(k)) > 100 or len(str(v)) > 100 for k, v in attributes.items()):
            raise _Reject(400, "Attribute names and values are limited to 100 characters.", "INVALID_ARGUMENT")
        combo = {str(k): str(v) for k, v in attributes.items()}
        if product.variant_attributes and any(v.attributes == combo and v.id != but for v in product.variants):
            raise _Reject(400, "Each variant must have a unique combination of attributes.", "INVALID_ARGUMENT")

    def _update_product_route(self, req: SandboxRequest, product_id: str) -> SandboxResponse:
        if not HEX24_RE.match(product_id):
            raise _Reject(400, f"{product_id!r} is not a valid id.", "INVALID_ARGUMENT")
        product = self._product_or_404(product_id)
        self._update_product(product, _body(req))
        return SandboxResponse(200, self._render_product(product))

    def _update_product(self, product: _Product, body: Mapping[str, Any]) -> None:
        # Partial update; variants and images cannot be changed here [OAS-products] [SQ-prod-update].
        allowed = {"name", "description", "urlSlug", "tags", "isVisible", "seoOptions", "variantAttributes"}
        extra = set(body) - allowed
        if extra:
            raise _Reject(400, f"Cannot update {', '.join(sorted(extra))} here.", "INVALID_ARGUMENT")
        if "urlSlug" in body and any(
            p.url_slug == body["urlSlug"] and p.id != product.id for p in self._products.values()
        ):
            raise _Reject(409, "The provided URL slug is already in use.", "URL_SLUG_UNAVAILABLE")
        if "variantAttributes" in body:
            names = list(body["variantAttributes"] or [])
            if len(names) > MAX_ATTRIBUTES:
                raise _Reject(400, "At most 6 variant attributes are allowed.", "INVALID_ARGUMENT")
            if len(product.variants) > 1 and not names:
                raise _Reject(400, "variantAttributes are required for more than one variant.", "INVALID_ARGUMENT")
            # Sending the list replaces it; a removed attribute is deleted from all variants
            # [SQ-prod-attrs]. A new one gets an empty value on existing variants (sandbox choice).
            for v in product.variants:
                v.attributes = {n: v.attributes.get(n, "") for n in names}
            product.variant_attributes = names
        if "name" in body:
            product.name = str(body["name"])
        if "description" in body:
            product.description = str(body["description"] or "")
        if "urlSlug" in body:
            product.url_slug = str(body["urlSlug"])
        if "tags" in body:
            product.tags = list(body["tags"] or [])
        if "isVisible" in body:
            product.is_visible = bool(body["isVisible"])
        if "seoOptions" in body:
            product.seo = dict(body["seoOptions"] or {})
        product.modified_ms = self._stamp()

    def _delete_product_route(self, req: SandboxRequest, product_id: str) -> SandboxResponse:
        self._product_or_404(product_id)
        del self._products[product_id]
        return SandboxResponse(204)

    def _post_variant(self, req: SandboxRequest, product_id: str) -> SandboxResponse:
        product = self._product_or_404(product_id)
        return SandboxResponse(201, self._create_variant(product, _body(req)))

    def _create_variant(self, product: _Product, body: Mapping[str, Any]) -> dict[str, Any]:
        if not product.variant_attributes:
            # "requires that the product already has at least one attribute" [OAS-products]
            raise _Reject(400, "The product has no variant attributes.", "INVALID_ARGUMENT")
        if len(product.variants) >= MAX_VARIANTS:
            raise _Reject(409, "The product has reached its limit of 250 variants.", "ENTITY_LIMIT_REACHED")
        variant = self._build_variant(product, body)
        product.variants.append(variant)
        product.modified_ms = self._stamp()
        return self._render_variant(product, variant)

    def _variant_in(self, product: _Product, variant_id: str) -> _Variant:
        v = next((v for v in product.variants if v.id == variant_id), None)
        if v is None:
            raise _Reject(404, f"Variant {variant_id} not found.", "PRODUCT_VARIANT_NOT_FOUND")
        return v

    def _update_variant_route(self, req: SandboxRequest, product_id: str, variant_id: str) -> SandboxResponse:
        product = self._product_or_404(product_id)
        v = self._variant_in(product, variant_id)
        body = _body(req)
        if "stock" in body:
            # "stock can only be changed via the Inventory API" [SQ-prod-variant-update]
            raise _Reject(400, "stock cannot be updated here; use the Inventory API.", "INVALID_ARGUMENT")
        extra = set(body) - {"sku", "pricing", "attributes", "shippingMeasurements", "gtin", "mpn"}
        if extra:
            raise _Reject(400, f"Cannot update {', '.join(sorted(extra))}.", "INVALID_ARGUMENT")
        if "sku" in body:
            sku = str(body["sku"] or "").strip()
            if not sku or len(sku) > 60:
                raise _Reject(400, "sku must be 1 to 60 characters.", "INVALID_ARGUMENT")
            if self._sku_taken(sku, but=v.id):
                raise _Reject(409, f"SKU {sku} is already in use.", "SKU_UNAVAILABLE")
            v.sku = sku
        if "pricing" in body:
            pricing = body["pricing"] or {}
            if "basePrice" in pricing:
                v.base_price = _price(pricing["basePrice"], "basePrice", self.currency)
            if "salePrice" in pricing:
                v.sale_price = _price(pricing["salePrice"], "salePrice", self.currency)
            if "onSale" in pricing:
                v.on_sale = bool(pricing["onSale"])
        if "attributes" in body:
            self._check_attributes(product, body["attributes"], but=v.id)
            v.attributes = {str(k): str(x) for k, x in body["attributes"].items()}
        if "shippingMeasurements" in body:
            v.measurements = copy.deepcopy(body["shippingMeasurements"])
        for key in ("gtin", "mpn"):
            if key in body:
                setattr(v, key, body[key])
        product.modified_ms = self._stamp()
        return SandboxResponse(200, self._render_variant(product, v))

    def _delete_variant_route(self, req: SandboxRequest, product_id: str, variant_id: str) -> SandboxResponse:
        product = self._product_or_404(product_id)
        v = self._variant_in(product, variant_id)
        if len(product.variants) == 1:
            raise _Reject(409, "A product must keep at least one variant.", "INSUFFICIENT_PRODUCT_VARIANTS")
        product.variants.remove(v)
        product.modified_ms = self._stamp()
        return SandboxResponse(204)

    def _upload_image(self, req: SandboxRequest, product_id: str) -> SandboxResponse:
        # Multipart upload → 202 {"imageId"}, processed asynchronously [OAS-products].
        # The sandbox keeps no bytes: the image is "ready" at once.
        product = self._product_or_404(product_id)
        if not (req.header("Content-Type") or "").startswith("multipart/form-data") or not req.body:
            raise _Reject(400, "Expected a multipart/form-data upload.", "INVALID_CONTENT_TYPE")
        if len(product.images) >= 100:
            raise _Reject(409, "The product has reached its limit of 100 images.", "IMAGE_LIMIT_REACHED")
        image = self._new_image("", None, len(product.images))
        product.images.append(image)
        product.modified_ms = self._stamp()
        return SandboxResponse(202, {"imageId": image["id"]})

    def _image_status(self, req: SandboxRequest, product_id: str, image_id: str) -> SandboxResponse:
        product = self._product_or_404(product_id)
        if not any(i["id"] == image_id for i in product.images):
            raise _Reject(404, f"Image {image_id} not found.", "PRODUCT_IMAGE_NOT_FOUND")
        # processing/ready/error [OAS-products]; exact casing UNVERIFIED.
        return SandboxResponse(200, {"id": image_id, "status": "READY"})

    def _delete_image(self, req: SandboxRequest, product_id: str, image_id: str) -> SandboxResponse:
        product = self._product_or_404(product_id)
        image = next((i for i in product.images if i["id"] == image_id), None)
        if image is None:
            raise _Reject(404, f"Image {image_id} not found.", "PRODUCT_IMAGE_NOT_FOUND")
        product.images.remove(image)
        product.modified_ms = self._stamp()
        return SandboxResponse(204)

    # -- inventory ------------------------------------------------------------------------
    def _all_inventory(self) -> list[tuple[_Product, _Variant]]:
        # Only physical and service variants have inventory items [SQ-inv-list].
        return [(p, v) for p in self._products.values() if p.type in ("PHYSICAL", "SERVICE") for v in p.variants]

    def _list_inventory(self, req: SandboxRequest) -> SandboxResponse:
        # Cursor only, no modified filter [SQ-inv-list]; stable order by (creation, id).
        def select(filters: Mapping[str, Any]) -> list[tuple[int, str, Any]]:
            return [(p.created_ms, v.id, self._render_inventory(p, v)) for p, v in self._all_inventory()]

        return self._page(req, "inventory", "/1.0/commerce/inventory", (), select)

    def _get_inventory(self, req: SandboxRequest, csv: str) -> SandboxResponse:
        ids = self._ids(csv, uuid_ids=True)
        items = {v.id: (p, v) for p, v in self._all_inventory()}
        missing = [i for i in ids if i not in items]
        if missing:
            # 404 if any id is unknown [SQ-inv-specific]
            raise _Reject(404, f"Inventory item(s) not found: {', '.join(missing)}", "INVENTORY_ITEM_NOT_FOUND")
        return SandboxResponse(200, {"inventory": [self._render_inventory(*items[i]) for i in dict.fromkeys(ids)]})

    def _adjust_inventory(self, req: SandboxRequest) -> SandboxResponse:
        return self._idempotent(req, lambda: self._apply_adjustments(_body(req)))

    def _apply_adjustments(self, body: Mapping[str, Any]) -> SandboxResponse:
        # [SQ-inv-adjust] [OAS-inventory]: ≤50 operations, each variant once, 204.
        ops: list[tuple[str, str, int | None]] = []
        for kind in ("incrementOperations", "decrementOperations", "setFiniteOperations"):
            for op in body.get(kind) or []:
                if not isinstance(op, Mapping) or not isinstance(op.get("variantId"), str):
                    raise _Reject(400, f"{kind} entries need a variantId.", "INVALID_ARGUMENT")
                q = op.get("quantity")
                low = 0 if kind == "setFiniteOperations" else 1
                if not isinstance(q, int) or isinstance(q, bool) or q < low:
                    raise _Reject(400, f"Invalid quantity in {kind}.", "INVALID_ARGUMENT")
                ops.append((kind, op["variantId"], q))
        for vid in body.get("setUnlimitedOperations") or []:
            if not isinstance(vid, str):
                raise _Reject(400, "setUnlimitedOperations holds variant ids.", "INVALID_ARGUMENT")
            ops.append(("setUnlimitedOperations", vid, None))
        if not ops:
            raise _Reject(400, "At least one operation is required.", "MISSING_ARGUMENT")
        if len(ops) > MAX_ADJUST_OPS:
            raise _Reject(400, f"At most {MAX_ADJUST_OPS} operations per request.", "INVALID_ARGUMENT")
        ids = [vid for _, vid, _ in ops]
        if len(set(ids)) != len(ids):
            raise _Reject(400, "A variant may appear in only one operation per request.", "INVALID_ARGUMENT")
        resolved = []
        for kind, vid, q in ops:
            found = self._find_variant(vid)
            if found is None:
                raise _Reject(400, f"Unknown variant {vid}.", "INVENTORY_ITEM_NOT_FOUND")
            resolved.append((kind, found[1], q))
        # Validate everything before applying anything: the request is all or nothing.
        for kind, v, q in resolved:
            if kind in ("incrementOperations", "decrementOperations") and v.unlimited:
                raise _Reject(409, f"Stock of {v.sku} is not tracked (unlimited).", "STOCK_NOT_TRACKED")
            if kind == "decrementOperations" and q is not None and v.quantity < q:
                # rejected, not clamped [OAS-inventory]
                raise _Reject(409, f"Insufficient stock for {v.sku}.", "INSUFFICIENT_STOCK")
        for kind, v, q in resolved:
            assert q is not None or kind == "setUnlimitedOperations"
            if kind == "incrementOperations":
                v.quantity += q or 0
            elif kind == "decrementOperations":
                v.quantity -= q or 0
            elif kind == "setFiniteOperations":
                v.quantity, v.unlimited = q or 0, False
            else:
                v.unlimited = True
        return SandboxResponse(204)

    # -- orders --------------------------------------------------------------------------
    def _list_orders(self, req: SandboxRequest) -> SandboxResponse:
        def select(filters: Mapping[str, Any]) -> list[tuple[int, str, Any]]:
            states = filters.get("paymentStates") or DEFAULT_PAYMENT_STATES
            rows = []
            for o in self._orders.values():
                body = o.payload
                if not self._in_window(o.modified_ms, filters):
                    continue
                if "fulfillmentStatus" in filters and body["fulfillmentStatus"] != filters["fulfillmentStatus"]:
                    continue
                if body["paymentState"] not in states:
                    continue
                if "customerId" in filters and body["customerId"] != filters["customerId"]:
                    continue
                rows.append((o.modified_ms, body["id"], self._render_order(o)))
            return rows

        allowed = ("modifiedAfter", "modifiedBefore", "fulfillmentStatus", "paymentStates", "customerId")
        return self._page(req, "result", "/1.0/commerce/orders", allowed, select)

    def _get_order(self, req: SandboxRequest, order_id: str) -> SandboxResponse:
        if not HEX24_RE.match(order_id):
            raise _Reject(400, "The id is not in the expected format.", "INVALID_ARGUMENT")
        order = self._orders.get(order_id)
        if order is None:
            raise _Reject(404, f"Order {order_id} not found.")
        return SandboxResponse(200, self._render_order(order))

    def _line_item(self, variant_id: str, quantity: int, unit_price: Decimal) -> dict[str, Any]:
        product, v = self._variant_or_fail(variant_id)
        options = [{"value": v.attributes[a], "optionName": a} for a in product.variant_attributes if a in v.attributes]
        dims = (v.measurements or {}).get("dimensions") or {}
        weight = (v.measurements or {}).get("weight") or {}
        return {
            "id": self._hex_id(),
            "variantId": v.id,
            "sku": v.sku,
            "weight": float(weight.get("value") or 0.0),  # 0.0 if unset [OAS-orders]
            "width": float(dims.get("width") or 0.0),
            "length": float(dims.get("length") or 0.0),
            "height": float(dims.get("height") or 0.0),
            "productId": product.id,
            "productName": product.name,
            "quantity": quantity,
            "unitPricePaid": self._money(unit_price),
            "variantOptions": options,
            "customizations": [],
            "imageUrl": product.images[0]["url"] + "?format=300w" if product.images else None,
            "lineItemType": "PHYSICAL_PRODUCT",
        }

    def _address(self, raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if raw is None:
            return None
        keys = ("firstName", "lastName", "address1", "address2", "city", "state", "countryCode", "postalCode", "phone")
        return {k: raw.get(k) for k in keys}

    def _new_order(
        self,
        *,
        created_ms: int,
        items: list[dict[str, Any]],
        totals: Mapping[str, Decimal],
        email: str | None,
        shipping: Mapping[str, Any] | None,
        channel_name: str | None,
        reference: str | None,
        payment_state: str,
        billing: Mapping[str, Any] | None = None,
        shipping_lines: list[dict[str, Any]] | None = None,
        discount_lines: list[dict[str, Any]] | None = None,
        fulfillments: list[dict[str, Any]] | None = None,
        fulfillment_status: str = "PENDING",
        fulfilled_on: str | None = None,
        tax_interpretation: str = "EXCLUSIVE",
    ) -> _Order:
        self._order_number += 1
        modified = self._stamp()
        zero = Decimal(0)
        payload = {
            # the keys of contracts/squarespace/orders_list.json, plus customerId and
            # paymentState (documented in [OAS-orders] Order; needed for the filters)
            "id": self._hex_id(),
            "orderNumber": str(self._order_number),
            "createdOn": _iso(created_ms),
            "modifiedOn": _iso(modified),
            "channel": "web",
            "testmode": False,
            "customerEmail": email,
            "customerId": None,
            "billingAddress": self._address(billing or shipping),
            "shippingAddress": self._address(shipping),
            "fulfillmentStatus": fulfillment_status,
            "lineItems": items,
            "internalNotes": [],
            "shippingLines": shipping_lines or [],
            "discountLines": discount_lines or [],
            "formSubmission": None,
            "fulfillments": fulfillments or [],
            "subtotal": self._money(totals.get("subtotal", zero)),
            "shippingTotal": self._money(totals.get("shippingTotal", zero)),
            "discountTotal": self._money(totals.get("discountTotal", zero)),
            "taxTotal": self._money(totals.get("taxTotal", zero)),
            "refundedTotal": self._money(zero),
            "grandTotal": self._money(totals.get("grandTotal", zero)),
            "channelName": channel_name,
            "externalOrderReference": reference,
            "fulfilledOn": fulfilled_on,
            "priceTaxInterpretation": tax_interpretation,
            "paymentState": payment_state,
        }
        order = _Order(payload, modified)
        self._orders[payload["id"]] = order
        return order

    def _touch(self, order: _Order) -> None:
        order.modified_ms = self._stamp()
        order.payload["modifiedOn"] = _iso(order.modified_ms)

    def _create_order(self, req: SandboxRequest) -> SandboxResponse:
        return self._idempotent(req, lambda: self._import_order(_body(req)))

    def _import_order(self, body: Mapping[str, Any]) -> SandboxResponse:
        # Required fields per [OAS-orders CreateOrderRequest] / [SQ-order-create].
        for name in (
            "channelName", "externalOrderReference", "createdOn", "lineItems",
            "grandTotal", "priceTaxInterpretation", "fulfillments",
        ):  # fmt: skip
            if body.get(name) is None:
                raise _Reject(400, f"{name} is required.", "MISSING_ARGUMENT")
        channel, reference = body["channelName"], body["externalOrderReference"]
        if not isinstance(channel, str) or not channel or len(channel) > 30:
            raise _Reject(400, "channelName must be 1 to 30 characters.", "INVALID_ARGUMENT")
        if not isinstance(reference, str) or not reference or len(reference) > 200:
            raise _Reject(400, "externalOrderReference must be 1 to 200 characters.", "INVALID_ARGUMENT")
        created_ms = _parse_iso(body["createdOn"], "createdOn")
        interpretation = body["priceTaxInterpretation"]
        if interpretation not in ("EXCLUSIVE", "INCLUSIVE"):
            raise _Reject(400, "priceTaxInterpretation must be EXCLUSIVE or INCLUSIVE.", "INVALID_ARGUMENT")
        behavior = body.get("inventoryBehavior", "SKIP")  # default SKIP [OAS-orders]
        if behavior not in ("DEDUCT", "SKIP"):
            raise _Reject(400, "inventoryBehavior must be DEDUCT or SKIP.", "INVALID_ARGUMENT")
        status = body.get("fulfillmentStatus", "PENDING")
        if status not in ("PENDING", "FULFILLED"):
            raise _Reject(400, "fulfillmentStatus must be PENDING or FULFILLED.", "INVALID_ARGUMENT")
        if status == "FULFILLED" and not body.get("fulfilledOn"):
            raise _Reject(400, "fulfilledOn is required when fulfillmentStatus is FULFILLED.", "MISSING_ARGUMENT")
        if body.get("fulfilledOn"):
            _parse_iso(body["fulfilledOn"], "fulfilledOn")
        raw_items = body["lineItems"]
        if not isinstance(raw_items, list) or not raw_items:
            raise _Reject(400, "lineItems cannot be empty.", "INVALID_ARGUMENT")
        items: list[dict[str, Any]] = []
        deduct: list[tuple[str, int]] = []
        subtotal = Decimal(0)
        for raw in raw_items:
            if not isinstance(raw, Mapping):
                raise _Reject(400, "lineItems entries must be objects.", "INVALID_ARGUMENT")
            q = raw.get("quantity")
            if not isinstance(q, int) or isinstance(q, bool) or not 1 <= q <= MAX_LINE_QUANTITY:
                raise _Reject(400, "quantity must be between 1 and 1,000,000.", "INVALID_ARGUMENT")
            if "unitPricePaid" not in raw:
                raise _Reject(400, "unitPricePaid is required.", "MISSING_ARGUMENT")
            price = _price(raw["unitPricePaid"], "unitPricePaid", self.currency)
            subtotal += price * q
            kind = raw.get("lineItemType")
            if kind == "PHYSICAL_PRODUCT":
                vid = raw.get("variantId")
                if not isinstance(vid, str) or self._find_variant(vid) is None:
                    # variants must already exist in the store, else 400 [SQ-order-create]
                    raise _Reject(400, f"Unknown variantId {vid!r}.", "PRODUCT_VARIANT_NOT_FOUND")
                items.append(self._line_item(vid, q, price))
                deduct.append((vid, q))
            elif kind == "CUSTOM":
                title = raw.get("title")
                if not title:
                    raise _Reject(400, "title is required for CUSTOM line items.", "MISSING_ARGUMENT")
                items.append(
                    {
                        "id": self._hex_id(), "variantId": None, "sku": None, "weight": 0.0, "width": 0.0,
                        "length": 0.0, "height": 0.0, "productId": None, "productName": str(title),
                        "quantity": q, "unitPricePaid": self._money(price), "variantOptions": [],
                        "customizations": [], "imageUrl": None, "lineItemType": "CUSTOM",
                    }
                )  # fmt: skip
            else:
                raise _Reject(400, "lineItemType must be PHYSICAL_PRODUCT or CUSTOM.", "INVALID_ARGUMENT")
        shipping_lines = body.get("shippingLines") or []
        if len(shipping_lines) > 1:
            raise _Reject(400, "Only one shipping line is accepted.", "INVALID_ARGUMENT")  # [OAS-orders]
        totals = {
            name: _price(body[name], name, self.currency)
            for name in ("subtotal", "shippingTotal", "discountTotal", "taxTotal", "grandTotal")
            if body.get(name) is not None
        }
        # Totals must be consistent. The exact rules are UNVERIFIED [OAS-orders]; the
        # sandbox is strict so a connector that computes them loosely fails here first.
        zero = Decimal(0)
        totals.setdefault("subtotal", subtotal)
        if totals["subtotal"] != subtotal:
            raise _Reject(400, "subtotal does not equal the sum of the line items.", "INVALID_ARGUMENT")
        expected = totals["subtotal"] + totals.get("shippingTotal", zero) - totals.get("discountTotal", zero)
        if interpretation == "EXCLUSIVE":
            expected += totals.get("taxTotal", zero)
        if totals["grandTotal"] != expected:
            raise _Reject(400, f"grandTotal should be {expected:.2f}.", "INVALID_ARGUMENT")
        fulfillments = [self._shipment(s) for s in body["fulfillments"]]
        if behavior == "DEDUCT":
            try:
                self._check_stock(deduct)
            except ValueError as exc:
                # 409 INSUFFICIENT_STOCK, order not created [OAS-orders]
                raise _Reject(409, str(exc), "INSUFFICIENT_STOCK") from None
            for vid, q in deduct:
                _, v = self._variant_or_fail(vid)
                if not v.unlimited:
                    v.quantity -= q
        order = self._new_order(
            created_ms=created_ms,
            items=items,
            totals=totals,
            email=body.get("customerEmail"),
            shipping=body.get("shippingAddress"),
            billing=body.get("billingAddress"),
            channel_name=channel,
            reference=reference,
            # No payment is processed for imported orders [SQ-order-create]; the state
            # they show is UNVERIFIED (PAID here, inside the default list filter).
            payment_state="PAID",
            shipping_lines=[
                {"method": s.get("method"), "amount": self._money(_price(s.get("amount"), "amount", self.currency))}
                for s in shipping_lines
            ],
            discount_lines=[
                {
                    "description": d.get("name"),
                    "name": d.get("name"),
                    "amount": self._money(_price(d.get("amount"), "amount", self.currency)),
                    "promoCode": d.get("promoCode"),
                }
                for d in body.get("discountLines") or []
            ],
            fulfillments=fulfillments,
            fulfillment_status=status,
            fulfilled_on=body.get("fulfilledOn"),
            tax_interpretation=interpretation,
        )
        return SandboxResponse(201, self._render_order(order))

    def _shipment(self, raw: Any) -> dict[str, Any]:
        # carrier/service/trackingNumber ≤100 chars; trackingUrl a valid URL [SQ-fulfill]
        if not isinstance(raw, Mapping):
            raise _Reject(400, "A shipment must be an object.", "INVALID_ARGUMENT")
        for name in ("shipDate", "carrierName", "trackingNumber"):
            if not raw.get(name):
                raise _Reject(400, f"{name} is required.", "MISSING_ARGUMENT")
        _parse_iso(raw["shipDate"], "shipDate")
        for name in ("carrierName", "service", "trackingNumber"):
            if raw.get(name) is not None and len(str(raw[name])) > 100:
                raise _Reject(400, f"{name} is limited to 100 characters.", "INVALID_ARGUMENT")
        url = raw.get("trackingUrl")
        if url is not None:
            parts = urlsplit(str(url))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise _Reject(400, "trackingUrl is invalid.", "INVALID_ARGUMENT")
        return {
            "shipDate": raw["shipDate"],
            "carrierName": raw["carrierName"],
            "service": raw.get("service"),
            "trackingNumber": raw["trackingNumber"],
            "trackingUrl": url,
        }

    def _fulfill_route(self, req: SandboxRequest, order_id: str) -> SandboxResponse:
        order = self._orders.get(order_id)
        if order is None:
            raise _Reject(404, f"Order {order_id} not found.")
        self._fulfill(order, _body(req))
        return SandboxResponse(204)

    def _fulfill(self, order: _Order, body: Mapping[str, Any]) -> None:
        shipments = body.get("shipments")
        if not isinstance(shipments, list):
            raise _Reject(400, "shipments is required.", "MISSING_ARGUMENT")
        if order.payload["fulfillmentStatus"] == "CANCELED":
            # Not documented either way (UNVERIFIED); a canceled order is final [SQ-help-cancel].
            raise _Reject(400, "The order is canceled.", "INVALID_ARGUMENT")
        converted = [self._shipment(s) for s in shipments]
        # Sets FULFILLED; more shipments may be added later [SQ-fulfill].
        order.payload["fulfillments"].extend(converted)
        order.payload["fulfillmentStatus"] = "FULFILLED"
        self._touch(order)
        if not order.payload["fulfilledOn"]:
            order.payload["fulfilledOn"] = order.payload["modifiedOn"]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _body(req: SandboxRequest) -> dict[str, Any]:
    try:
        body = req.json()
    except ValueError:
        raise _Reject(400, "The request body is not valid JSON.", "INVALID_ARGUMENT") from None
    if not isinstance(body, dict):
        raise _Reject(400, "The request body must be a JSON object.", "INVALID_ARGUMENT")
    return body


_OPERATIONS: list[tuple[str, str, str]] = [
    ("GET", r"/1\.0/commerce/store_pages", "store_pages.list"),
    ("GET", r"/v2/commerce/products", "products.list"),
    ("POST", r"/v2/commerce/products", "products.create"),
    ("POST", r"/v2/commerce/products/[^/]+/variants", "variants.create"),
    ("POST", r"/v2/commerce/products/[^/]+/variants/[^/]+", "variants.update"),
    ("DELETE", r"/v2/commerce/products/[^/]+/variants/[^/]+", "variants.delete"),
    ("POST", r"/v2/commerce/products/[^/]+/images", "images.upload"),
    ("GET", r"/v2/commerce/products/[^/]+/images/[^/]+/status", "images.status"),
    ("DELETE", r"/v2/commerce/products/[^/]+/images/[^/]+", "images.delete"),
    ("GET", r"/v2/commerce/products/[^/]+", "products.get"),
    ("POST", r"/v2/commerce/products/[^/]+", "products.update"),
    ("DELETE", r"/v2/commerce/products/[^/]+", "products.delete"),
    ("GET", r"/1\.0/commerce/inventory", "inventory.list"),
    ("POST", r"/1\.0/commerce/inventory/adjustments", "inventory.adjustments"),
    ("GET", r"/1\.0/commerce/inventory/[^/]+", "inventory.get"),
    ("GET", r"/1\.0/commerce/orders", "orders.list"),
    ("POST", r"/1\.0/commerce/orders", "orders.create"),
    ("GET", r"/1\.0/commerce/orders/[^/]+", "orders.get"),
    ("POST", r"/1\.0/commerce/orders/[^/]+/fulfillments", "orders.fulfill"),
]


def _operation(method: str, path: str) -> str | None:
    path = path.rstrip("/")
    for m, pattern, name in _OPERATIONS:
        if m == method and re.fullmatch(pattern, path):
            return name
    return None
