"""A local WooCommerce store: the REST API `wc/v3` (products, variations, orders, notes),
the Shipment Tracking extension, and the WordPress route index, over real HTTP.

It is held to the real platform by ../shared/platforms/woocommerce.md (the "fact
sheet"; its source keys such as [CRUD] or [STOCK] are cited in comments below) and by
the payloads in ../shared/contracts/woocommerce/: every response carries at least the
keys those payloads have, with the same quirks (money as strings but
`line_items[].price` a number, `stock_quantity` null when stock is not managed, dates
without a zone plus `_gmt` twins, `variations` as a list of ids).

Switches that emulate differences between real stores:

- `shipment_tracking=False`: the Shipment Tracking extension is not installed, so its
  routes answer 404 `rest_no_route` (tracking written by other plugins may still sit
  in the order's `_wc_shipment_tracking_items` meta);
- `supports_modified_after=False`: a store older than the `modified_after` filter
  (WC < 5.8, UNVERIFIED), which silently ignores it and leaves it out of the route index;
- `permissions="read"`: a read-only API key;
- `batch_limit`: the `woocommerce_rest_batch_items_limit` filter (100 by default).

Time comes from `self.clock` (epoch seconds, settable; see `advance`/`set_time`), and
like WordPress the store keeps it to the second.
"""

from __future__ import annotations

import base64
import copy
import html
import re
import secrets
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from vsc.sandbox.base import SandboxRequest, SandboxResponse, SandboxStore

WC_PREFIX = "/wp-json/wc/v3"

PRODUCT_STATUSES = ("draft", "pending", "private", "publish")
PRODUCT_TYPES = ("simple", "grouped", "external", "variable")
STOCK_STATUSES = ("instock", "outofstock", "onbackorder")
BACKORDERS = ("no", "notify", "yes")
ORDER_STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "trash")
ORDER_STATUS_LABELS = {
    "pending": "Pending payment",
    "processing": "Processing",
    "on-hold": "On hold",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "refunded": "Refunded",
    "failed": "Failed",
    "trash": "Trash",
}
# [CRUD] get_collection_params: the orderby enum of current core (products add price/popularity/rating).
ORDERBY = ("date", "id", "include", "title", "slug", "modified")
PRODUCT_ORDERBY = ORDERBY + ("price", "popularity", "rating")

# A few providers of the Shipment Tracking extension, as its providers endpoint lists them
# ([ST-docs]: name -> URL template with %1$s = number, %2$s = postcode).
TRACKING_PROVIDERS: dict[str, dict[str, str]] = {
    "United States": {
        "USPS": "https://tools.usps.com/go/TrackConfirmAction_input?qtc_tLabels1=%1$s",
        "UPS": "https://www.ups.com/track?loc=en_US&tracknum=%1$s",
        "Fedex": "https://www.fedex.com/apps/fedextrack/?action=track&action=track&tracknumbers=%1$s",
        "DHL US": "https://www.logistics.dhl/us-en/home/tracking/tracking-ecommerce.html?tracking-id=%1$s",
    },
    "United Kingdom": {
        "Royal Mail": "https://www.royalmail.com/track-your-item#/tracking-results/%1$s",
        "DPD.co.uk": "https://www.dpd.co.uk/apps/tracking/?reference=%1$s&postcode=%2$s",
    },
}


class RestError(Exception):
    """A WP_Error on its way out: `{code, message, data: {status, ...}}`."""

    def __init__(self, status: int, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": {"status": self.status, **self.data}}


def _invalid_param(name: str, reason: str) -> RestError:
    # WP REST argument validation (rest_invalid_param), as the fact sheet's per_page example.
    return RestError(400, "rest_invalid_param", f"Invalid parameter(s): {name}", params={name: reason})


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _money(value: Any) -> str:
    """WooCommerce money: a decimal string, '' when blank ([DOCS-intro])."""
    if value is None or value == "":
        return ""
    try:
        return str(Decimal(str(value)))
    except InvalidOperation:
        raise _invalid_param("price", "must be a decimal number") from None


def _dec(value: Any) -> Decimal:
    if value in (None, ""):
        return Decimal("0")
    return Decimal(str(value))


def _fmt2(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "item"


def _parse_param_date(value: str, name: str) -> datetime:
    """A date-time query argument, as a naive datetime (UTC when it carries a zone)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise _invalid_param(name, "Invalid date.") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _ids_arg(req: SandboxRequest, name: str) -> list[int] | None:
    values = req.query.get(name, []) + req.query.get(f"{name}[]", [])
    if not values:
        return None
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit():
                raise _invalid_param(name, f"{name}[0] is not of type integer.")
            out.append(int(part))
    return out


def _list_arg(req: SandboxRequest, name: str) -> list[str] | None:
    values = req.query.get(name, []) + req.query.get(f"{name}[]", [])
    if not values:
        return None
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def _apply_fields(payload: dict[str, Any], fields: list[str] | None, *, keep_id: bool = True) -> dict[str, Any]:
    """`_fields=a,b.c`: keep only those keys; `id` is always kept ([RESTCTL get_fields_for_response])."""
    if not fields:
        return payload
    out: dict[str, Any] = {}
    for field in fields + (["id"] if keep_id else []):
        top, _, rest = field.partition(".")
        if top not in payload:
            continue
        if rest and isinstance(payload[top], dict):
            sub = _apply_fields(payload[top], [rest], keep_id=False)
            existing = out.get(top)
            out[top] = {**existing, **sub} if isinstance(existing, dict) else sub
        else:
            out[top] = payload[top]
    return out


class WooCommerceSandbox(SandboxStore):
    """An emulated WooCommerce store. See the module docstring for the switches.

    Tests drive it over HTTP through a connector, and directly through the Python API:
    `add_product`, `add_variation`, `update_product`, `update_variation`,
    `delete_product`, `set_stock`, `stock`, `place_order`, `add_tracking`,
    `complete_order`, `products`, `orders`, `advance`, `set_time`.
    """

    platform = "woocommerce"

    def __init__(
        self,
        *,
        consumer_key: str | None = None,
        consumer_secret: str | None = None,
        permissions: str = "read_write",
        shipment_tracking: bool = True,
        supports_modified_after: bool = True,
        batch_limit: int = 100,
        currency: str = "USD",
        utc_offset_hours: float = -3.0,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
    ) -> None:
        super().__init__(host=host, port=port, seed=seed)
        self.consumer_key = consumer_key or "ck_" + secrets.token_hex(20)
        self.consumer_secret = consumer_secret or "cs_" + secrets.token_hex(20)
        self.permissions = permissions
        self.shipment_tracking = shipment_tracking
        self.supports_modified_after = supports_modified_after
        self.batch_limit = batch_limit
        self.currency = currency
        # Non-_gmt dates are in the site's timezone ([DOCS-products]); the docs' examples are UTC-3.
        self.utc_offset = timedelta(hours=utc_offset_hours)
        self._switches = {
            "permissions": permissions,
            "shipment_tracking": shipment_tracking,
            "supports_modified_after": supports_modified_after,
            "batch_limit": batch_limit,
            "currency": currency,
        }
        self._empty()

    def _empty(self) -> None:
        self._products: dict[int, dict[str, Any]] = {}
        self._variations: dict[int, dict[str, Any]] = {}
        self._orders: dict[int, dict[str, Any]] = {}
        self._notes: dict[int, list[dict[str, Any]]] = {}
        self._terms: dict[str, dict[str, dict[str, Any]]] = {"tag": {}, "cat": {}}
        # Products, variations and orders are all posts: one id sequence, as in WordPress.
        self._next_post_id = 10
        self._next_meta_id = 1000
        self._next_item_id = 100
        self._next_note_id = 500
        self._next_term_id = 20
        self._next_media_id = 700

    def reset(self) -> None:
        """Empty the store and put the clock, switches, faults and request records back as new,
        keeping the server (and its URL and keys) running: cheaper than a new sandbox per test."""
        with self.lock:
            self._empty()
            for name, value in self._switches.items():
                setattr(self, name, value)
            self.clock = time.time
            self.faults.clear()
            self.requests.clear()

    # -- time -------------------------------------------------------------------
    def now(self) -> datetime:
        """The store's current time, UTC, whole seconds (WordPress stores DATETIME to the second)."""
        return datetime.fromtimestamp(int(self.clock()), UTC)

    def set_time(self, when: datetime | float) -> None:
        """Freeze the store's clock at `when` (aware datetime or epoch seconds)."""
        stamp = when.timestamp() if isinstance(when, datetime) else float(when)
        self.clock = lambda: stamp

    def advance(self, seconds: float) -> None:
        """Freeze the clock `seconds` after its current reading."""
        self.set_time(self.clock() + seconds)

    def _local(self, dt: datetime | None) -> str | None:
        if dt is None:
            return None
        return (dt + self.utc_offset).replace(tzinfo=None).isoformat(timespec="seconds")

    @staticmethod
    def _gmt(dt: datetime | None) -> str | None:
        if dt is None:
            return None
        return dt.replace(tzinfo=None).isoformat(timespec="seconds")

    def _dates(self, prefix: str, dt: datetime | None) -> dict[str, str | None]:
        return {prefix: self._local(dt), f"{prefix}_gmt": self._gmt(dt)}

    # -- ids ----------------------------------------------------------------------
    def _post_id(self) -> int:
        self._next_post_id += 1
        return self._next_post_id

    def _meta_id(self) -> int:
        self._next_meta_id += 1
        return self._next_meta_id

    def _item_id(self) -> int:
        self._next_item_id += 1
        return self._next_item_id

    # -- the Python API -------------------------------------------------------------
    def add_product(
        self,
        name: str,
        *,
        sku: str = "",
        price: str | Decimal | None = "10.00",
        sale_price: str | Decimal | None = "",
        stock: int | None = None,
        status: str = "publish",
        description: str = "",
        short_description: str = "",
        tags: Sequence[str] = (),
        categories: Sequence[str] = (),
        images: Sequence[str] = (),
        attributes: Sequence[Mapping[str, Any]] | None = None,
        variations: Sequence[Mapping[str, Any]] | None = None,
        backorders: str = "no",
        meta_data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a product as the vendor would in wp-admin and return its REST payload.

        A simple product unless `attributes` are given: then a variable product whose
        `attributes` are `{"name", "options", "id"=0, "variation"=True, "visible"=True}`
        and whose `variations` are `{"attributes": {name: option}, "sku", "price",
        "sale_price", "stock"}`. `stock=None` means stock is not managed.
        """
        with self.lock:
            body: dict[str, Any] = {
                "name": name,
                "type": "variable" if attributes else "simple",
                "status": status,
                "description": description,
                "short_description": short_description,
                "sku": sku,
                "backorders": backorders,
                "tags": [{"name": t} for t in tags],
                "categories": [{"name": c} for c in categories],
                "images": [{"src": s} for s in images],
                "meta_data": [{"key": k, "value": v} for k, v in (meta_data or {}).items()],
            }
            if attributes:
                body["attributes"] = [
                    {
                        "id": a.get("id", 0),
                        "name": a["name"],
                        "options": list(a["options"]),
                        "variation": a.get("variation", True),
                        "visible": a.get("visible", True),
                        "position": a.get("position", i),
                    }
                    for i, a in enumerate(attributes)
                ]
            else:
                body["regular_price"] = "" if price is None else str(price)
                body["sale_price"] = "" if sale_price is None else str(sale_price)
                body["manage_stock"] = stock is not None
                if stock is not None:
                    body["stock_quantity"] = stock
            product = self._create_product(body)
            for spec in variations or ():
                self.add_variation(
                    product["id"],
                    attributes=spec["attributes"],
                    sku=spec.get("sku", ""),
                    price=spec.get("price", "10.00"),
                    sale_price=spec.get("sale_price", ""),
                    stock=spec.get("stock"),
                )
            return self._render_product(self._products[product["id"]])

    def add_variation(
        self,
        product_id: int,
        *,
        attributes: Mapping[str, str],
        sku: str = "",
        price: str | Decimal | None = "10.00",
        sale_price: str | Decimal | None = "",
        stock: int | None = None,
    ) -> dict[str, Any]:
        """Add a variation to a variable product; `attributes` maps attribute name to option."""
        with self.lock:
            body: dict[str, Any] = {
                "attributes": [{"name": k, "option": v} for k, v in attributes.items()],
                "sku": sku,
                "regular_price": "" if price is None else str(price),
                "sale_price": "" if sale_price is None else str(sale_price),
                "manage_stock": stock is not None,
            }
            if stock is not None:
                body["stock_quantity"] = stock
            return self._create_variation(self._product_or_404(product_id), body)

    def update_product(self, product_id: int, **fields: Any) -> dict[str, Any]:
        """Change a product with REST field names (`name`, `regular_price`, `tags=[{"name"}]`...)."""
        with self.lock:
            return self._update_product(int(product_id), fields)

    def update_variation(self, product_id: int, variation_id: int, **fields: Any) -> dict[str, Any]:
        """Change a variation with REST field names."""
        with self.lock:
            parent = self._product_or_404(int(product_id))
            return self._update_variation(parent, int(variation_id), fields)

    def delete_product(self, product_id: int) -> None:
        """Delete a product for good (with its variations), as `?force=true` does."""
        with self.lock:
            product = self._products.pop(int(product_id))
            for vid in product["variations"]:
                self._variations.pop(vid, None)

    def delete_variation(self, product_id: int, variation_id: int) -> None:
        """Delete one variation of a variable product, as the vendor would in wp-admin."""
        with self.lock:
            self._delete_variation_rec(self._products[int(product_id)], int(variation_id))

    def set_stock(self, item_id: int, quantity: int | None) -> None:
        """Set a product's or variation's stock; None stops managing it."""
        with self.lock:
            rec = self._stock_owner(int(item_id))
            rec["manage_stock"] = quantity is not None
            rec["stock_quantity"] = quantity
            self._sync_stock_status(rec)
            self._touch(rec)

    def stock(self, item_id: int) -> int | None:
        """A product's or variation's stock quantity, None when stock is not managed."""
        with self.lock:
            rec = self._stock_owner(int(item_id))
            return rec["stock_quantity"] if rec["manage_stock"] else None

    def place_order(
        self,
        lines: Iterable[tuple[int, int]],
        *,
        email: str = "shopper@example.com",
        first_name: str = "Sam",
        last_name: str = "Shopper",
    ) -> dict[str, Any]:
        """A storefront sale: `lines` are (product or variation id, quantity). Paid, so stock drops."""
        with self.lock:
            line_items = []
            for item_id, qty in lines:
                owner = self._stock_owner(item_id)
                if owner["manage_stock"] and owner["backorders"] == "no" and (owner["stock_quantity"] or 0) < qty:
                    # The storefront refuses to sell what is not there (REST-created orders do not check).
                    raise ValueError(f"not enough stock of {item_id}: {owner['stock_quantity']} < {qty}")
                if item_id in self._variations:
                    line_items.append(
                        {"product_id": self._variations[item_id]["parent_id"], "variation_id": item_id, "quantity": qty}
                    )
                else:
                    line_items.append({"product_id": item_id, "quantity": qty})
            body = {
                "set_paid": True,
                "payment_method": "cod",
                "payment_method_title": "Cash on delivery",
                "billing": {"first_name": first_name, "last_name": last_name, "email": email},
                "shipping": {"first_name": first_name, "last_name": last_name},
                "line_items": line_items,
            }
            return self._create_order(body, created_via="checkout")

    def add_tracking(
        self,
        order_id: int,
        number: str,
        provider: str = "",
        link: str = "",
        *,
        date_shipped: datetime | None = None,
    ) -> dict[str, Any]:
        """Record a tracking number the way the Shipment Tracking plugins do: in the order's
        `_wc_shipment_tracking_items` meta ([AST]); works with the extension off too."""
        with self.lock:
            order = self._order_or_404(int(order_id))
            return self._add_tracking_item(
                order,
                {
                    "tracking_number": number,
                    "tracking_provider": provider if provider and not link else "",
                    "custom_tracking_provider": provider if link else "",
                    "custom_tracking_link": link,
                    "date_shipped": int((date_shipped or self.now()).timestamp()),
                },
            )

    def complete_order(self, order_id: int) -> dict[str, Any]:
        """Mark an order completed, as the vendor does when it ships."""
        with self.lock:
            return self._update_order(int(order_id), {"status": "completed"})

    def products(self) -> list[dict[str, Any]]:
        """Every product's REST payload (a snapshot)."""
        with self.lock:
            return [self._render_product(p) for p in self._products.values()]

    def product(self, product_id: int) -> dict[str, Any]:
        with self.lock:
            return self._render_product(self._product_or_404(int(product_id)))

    def variation(self, variation_id: int) -> dict[str, Any]:
        with self.lock:
            return self._render_variation(self._variations[int(variation_id)])

    def orders(self) -> list[dict[str, Any]]:
        """Every order's REST payload (a snapshot)."""
        with self.lock:
            return [self._render_order(o) for o in self._orders.values()]

    def order(self, order_id: int) -> dict[str, Any]:
        with self.lock:
            return self._render_order(self._order_or_404(int(order_id)))

    def notes(self, order_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [self._render_note(int(order_id), n) for n in self._notes.get(int(order_id), [])]

    # -- SandboxStore hooks -------------------------------------------------------------
    def is_write(self, req: SandboxRequest) -> bool:
        return req.method in ("POST", "PUT", "PATCH", "DELETE")

    def operation_name(self, req: SandboxRequest) -> str | None:
        match = self._route(req)
        return match[0] if match else None

    def fault_body(self, status: int) -> Any:
        if status in (502, 503, 504):
            # Gateway errors come from the web server or proxy in front of WordPress, as HTML.
            reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}[status]
            return (
                f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
                f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            ).encode()
        if status == 500:
            # WordPress's fatal-error handler answers REST requests in the REST error shape.
            return {
                "code": "internal_server_error",
                "message": "<p>There has been a critical error on this website.</p>",
                "data": {"status": 500},
                "additional_errors": [],
            }
        return {"code": "http_error", "message": f"injected HTTP {status}", "data": {"status": status}}

    def handle(self, req: SandboxRequest) -> SandboxResponse:
        try:
            return self._handle(req)
        except RestError as err:
            headers = {}
            if err.code == "woocommerce_rest_authentication_error":
                # [WC_REST_Authentication::send_unauthorized_headers] on basic-auth failures.
                headers["WWW-Authenticate"] = (
                    'Basic realm="WooCommerce API. Use a consumer key in the username field and a '
                    'consumer secret in the password field."'
                )
            return SandboxResponse(err.status, err.body(), headers)

    # -- routing ---------------------------------------------------------------------------
    def _routes(self) -> list[tuple[str, str, str, Callable[..., SandboxResponse], str]]:
        """(method, route, operation name, handler, permission) for every route.

        Routes are written as WordPress prints them in its index, `(?P<id>[\\d]+)` and all.
        """
        pid = r"(?P<product_id>[\d]+)"
        oid = r"(?P<order_id>[\d]+)"
        i = r"(?P<id>[\d]+)"
        routes: list[tuple[str, str, str, Callable[..., SandboxResponse], str]] = [
            ("GET", "/wc/v3", "index", self._get_index, "public"),
            ("GET", "/wc/v3/data/currencies/current", "currencies.current", self._get_currency, "view"),
            ("GET", "/wc/v3/products", "products.list", self._list_products, "list"),
            ("POST", "/wc/v3/products", "products.create", self._post_product, "create"),
            ("POST", "/wc/v3/products/batch", "products.batch", self._batch_products, "batch"),
            ("GET", f"/wc/v3/products/{i}", "products.get", self._get_product, "view"),
            ("PUT", f"/wc/v3/products/{i}", "products.update", self._put_product, "edit"),
            ("PATCH", f"/wc/v3/products/{i}", "products.update", self._put_product, "edit"),
            ("POST", f"/wc/v3/products/{i}", "products.update", self._put_product, "edit"),
            ("DELETE", f"/wc/v3/products/{i}", "products.delete", self._delete_product, "delete"),
            ("GET", f"/wc/v3/products/{pid}/variations", "variations.list", self._list_variations, "list"),
            ("POST", f"/wc/v3/products/{pid}/variations", "variations.create", self._post_variation, "create"),
            ("POST", f"/wc/v3/products/{pid}/variations/batch", "variations.batch", self._batch_variations, "batch"),
            ("GET", f"/wc/v3/products/{pid}/variations/{i}", "variations.get", self._get_variation, "view"),
            ("PUT", f"/wc/v3/products/{pid}/variations/{i}", "variations.update", self._put_variation, "edit"),
            ("PATCH", f"/wc/v3/products/{pid}/variations/{i}", "variations.update", self._put_variation, "edit"),
            ("POST", f"/wc/v3/products/{pid}/variations/{i}", "variations.update", self._put_variation, "edit"),
            ("DELETE", f"/wc/v3/products/{pid}/variations/{i}", "variations.delete", self._delete_variation, "delete"),
            ("GET", "/wc/v3/orders", "orders.list", self._list_orders, "list"),
            ("POST", "/wc/v3/orders", "orders.create", self._post_order, "create"),
            ("POST", "/wc/v3/orders/batch", "orders.batch", self._batch_orders, "batch"),
            ("GET", f"/wc/v3/orders/{i}", "orders.get", self._get_order, "view"),
            ("PUT", f"/wc/v3/orders/{i}", "orders.update", self._put_order, "edit"),
            ("PATCH", f"/wc/v3/orders/{i}", "orders.update", self._put_order, "edit"),
            ("POST", f"/wc/v3/orders/{i}", "orders.update", self._put_order, "edit"),
            ("DELETE", f"/wc/v3/orders/{i}", "orders.delete", self._delete_order, "delete"),
            ("GET", f"/wc/v3/orders/{oid}/notes", "order_notes.list", self._list_notes, "list"),
            ("POST", f"/wc/v3/orders/{oid}/notes", "order_notes.create", self._post_note, "create"),
        ]
        if self.shipment_tracking:
            st = "/wc-shipment-tracking/v3"
            t = r"(?P<id>[\w-]+)"
            routes += [
                ("GET", st, "shipment_trackings.index", self._get_st_index, "public"),
                (
                    "GET",
                    f"{st}/orders/{oid}/shipment-trackings",
                    "shipment_trackings.list",
                    self._list_trackings,
                    "list",
                ),
                (
                    "POST",
                    f"{st}/orders/{oid}/shipment-trackings",
                    "shipment_trackings.create",
                    self._post_tracking,
                    "create",
                ),
                (
                    "GET",
                    f"{st}/orders/{oid}/shipment-trackings/{t}",
                    "shipment_trackings.get",
                    self._get_tracking,
                    "view",
                ),
                (
                    "DELETE",
                    f"{st}/orders/{oid}/shipment-trackings/{t}",
                    "shipment_trackings.delete",
                    self._delete_tracking,
                    "delete",
                ),
                (
                    "GET",
                    f"{st}/shipment-trackings/providers",
                    "shipment_trackings.providers",
                    self._get_providers,
                    "public",
                ),
            ]
        return routes

    def _route(self, req: SandboxRequest) -> tuple[str, Callable[..., SandboxResponse], tuple[str, ...], str] | None:
        path = req.path.rstrip("/")
        if not path.startswith("/wp-json/"):
            return None
        path = path[len("/wp-json") :]
        for method, route, op, handler, perm in self._routes():
            if method == req.method and (m := re.fullmatch(route, path)):
                return op, handler, m.groups(), perm
        return None

    def _handle(self, req: SandboxRequest) -> SandboxResponse:
        path = req.path.rstrip("/")
        if path == "/wp-json":
            return SandboxResponse(200, self._site_index())
        if not path.startswith("/wp-json/"):
            # Outside the REST API WordPress answers with the theme's HTML page.
            page = b"<!DOCTYPE html><html><head><title>Page not found</title></head><body>Not found</body></html>"
            return SandboxResponse(404, raw=page, headers={"Content-Type": "text/html; charset=UTF-8"})
        namespace_request = path.startswith(("/wp-json/wc/", "/wp-json/wc-"))
        user_ok = self._authenticate(req) if namespace_request else False
        match = self._route(req)
        if match is None:
            # WP answers the same 404 for an unknown path and an unsupported method
            # (contracts/woocommerce/error_rest_no_route.json).
            raise RestError(404, "rest_no_route", "No route was found matching the URL and request method")
        _op, handler, groups, perm = match
        if perm != "public":
            if not user_ok:
                raise self._permission_error(perm)
            write = req.method in ("POST", "PUT", "PATCH", "DELETE")
            if write and self.permissions not in ("write", "read_write"):
                raise RestError(
                    401,
                    "woocommerce_rest_authentication_error",
                    "The API key provided does not have write permissions.",
                )
            if not write and self.permissions not in ("read", "read_write"):
                raise RestError(
                    401, "woocommerce_rest_authentication_error", "The API key provided does not have read permissions."
                )
        return handler(req, *[int(g) if g.isdigit() else g for g in groups])

    def _authenticate(self, req: SandboxRequest) -> bool:
        """WC_REST_Authentication, basic-auth path: query-string keys first, then the header.

        A real store takes basic auth over HTTPS only (OAuth 1.0a over plain HTTP, [DOCS-auth]);
        the sandbox is plain HTTP on loopback and takes basic auth there too.
        An unknown key is not an error by itself: the request goes on unauthenticated and
        fails the route's permission check (401 `woocommerce_rest_cannot_*`); a known key
        with a wrong secret is 401 "Consumer secret is invalid." (class-wc-rest-authentication.php).
        """
        key = req.arg("consumer_key")
        secret = req.arg("consumer_secret")
        if not (key and secret):
            key = secret = None
            header = req.header("Authorization") or ""
            if header.lower().startswith("basic "):
                try:
                    decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
                except (ValueError, UnicodeDecodeError):
                    decoded = ""
                key, _, secret = decoded.partition(":")
        if not key or not secret:
            return False
        if not secrets.compare_digest(key, self.consumer_key):
            return False
        if not secrets.compare_digest(secret, self.consumer_secret):
            raise RestError(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.")
        return True

    @staticmethod
    def _permission_error(perm: str) -> RestError:
        # The permission callbacks of the CRUD controllers; 401 = rest_authorization_required_code()
        # for a request that is not authenticated [CRUD].
        messages = {
            "list": ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
            "view": ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."),
            "create": ("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."),
            "edit": ("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."),
            "delete": ("woocommerce_rest_cannot_delete", "Sorry, you are not allowed to delete this resource."),
            "batch": ("woocommerce_rest_cannot_batch", "Sorry, you are not allowed to batch manipulate this resource."),
        }
        code, message = messages[perm]
        return RestError(401, code, message)

    # -- indexes ------------------------------------------------------------------------------
    def _site_index(self) -> dict[str, Any]:
        namespaces = ["wp/v2", "wc/v1", "wc/v2", "wc/v3"]
        if self.shipment_tracking:
            namespaces.append("wc-shipment-tracking/v3")
        return {"name": "Sandbox Store", "url": self.url, "home": self.url, "namespaces": namespaces}

    def _collection_args(self, product: bool) -> dict[str, Any]:
        def arg(type_: str, description: str, **extra: Any) -> dict[str, Any]:
            return {"description": description, "type": type_, "required": False, **extra}

        args: dict[str, Any] = {
            "context": arg("string", "Scope under which the request is made.", enum=["view", "edit"], default="view"),
            "page": arg("integer", "Current page of the collection.", default=1, minimum=1),
            "per_page": arg(
                "integer", "Maximum number of items to be returned in result set.", default=10, minimum=1, maximum=100
            ),
            "search": arg("string", "Limit results to those matching a string."),
            "after": arg(
                "string",
                "Limit response to resources published after a given ISO8601 compliant date.",
                format="date-time",
            ),
            "before": arg(
                "string",
                "Limit response to resources published before a given ISO8601 compliant date.",
                format="date-time",
            ),
            "dates_are_gmt": arg(
                "boolean",
                "Whether to consider GMT post dates when limiting response by published or modified date.",
                default=False,
            ),
            "exclude": arg("array", "Ensure result set excludes specific IDs.", items={"type": "integer"}, default=[]),
            "include": arg("array", "Limit result set to specific ids.", items={"type": "integer"}, default=[]),
            "offset": arg("integer", "Offset the result set by a specific number of items."),
            "order": arg(
                "string", "Order sort attribute ascending or descending.", enum=["asc", "desc"], default="desc"
            ),
            "orderby": arg(
                "string",
                "Sort collection by object attribute.",
                enum=list(PRODUCT_ORDERBY if product else ORDERBY),
                default="date",
            ),
            "status": arg("string" if product else "array", "Limit result set to resources with a specific status."),
        }
        if self.supports_modified_after:
            args["modified_after"] = arg(
                "string",
                "Limit response to resources modified after a given ISO8601 compliant date.",
                format="date-time",
            )
            args["modified_before"] = arg(
                "string",
                "Limit response to resources modified before a given ISO8601 compliant date.",
                format="date-time",
            )
        else:
            del args["dates_are_gmt"]
        if product:
            args["sku"] = arg("string", "Limit result set to products with specific SKU(s).")
            args["type"] = arg(
                "string", "Limit result set to products assigned a specific type.", enum=list(PRODUCT_TYPES)
            )
        return args

    def _get_index(self, req: SandboxRequest) -> SandboxResponse:
        """`GET /wp-json/wc/v3`: the namespace index WordPress serves, with each route's args."""
        routes: dict[str, Any] = {}
        for method, route, _op, _h, _p in self._routes():
            if not route.startswith("/wc/v3"):
                continue
            entry = routes.setdefault(route, {"namespace": "wc/v3", "methods": [], "endpoints": []})
            if method in entry["methods"]:
                continue
            entry["methods"].append(method)
            args: dict[str, Any] = {}
            if method == "GET" and route in ("/wc/v3/products", "/wc/v3/orders"):
                args = self._collection_args(product=route.endswith("products"))
            entry["endpoints"].append({"methods": [method], "args": args})
        body = {"namespace": "wc/v3", "routes": routes, "_links": {"up": [{"href": f"{self.url}/wp-json/"}]}}
        return SandboxResponse(200, body)

    def _get_st_index(self, req: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(200, {"namespace": "wc-shipment-tracking/v3", "routes": {}})

    def _get_currency(self, req: SandboxRequest) -> SandboxResponse:
        names = {
            "USD": ("United States (US) dollar", "&#36;"),
            "EUR": ("Euro", "&euro;"),
            "GBP": ("Pound sterling", "&pound;"),
        }
        name, symbol = names.get(self.currency, (self.currency, self.currency))
        return SandboxResponse(
            200,
            {
                "code": self.currency,
                "name": name,
                "symbol": symbol,
                "_links": {"self": [{"href": f"{self.url}{WC_PREFIX}/data/currencies/{self.currency}"}]},
            },
        )

    # -- collections --------------------------------------------------------------------------
    def _paging(self, req: SandboxRequest) -> tuple[int, int, int]:
        def integer(name: str, default: int) -> int:
            raw = req.arg(name)
            if raw is None or raw == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise _invalid_param(name, f"{name} is not of type integer.") from None

        per_page = integer("per_page", 10)
        if not 1 <= per_page <= 100:
            # [CRUD get_collection_params] min 1, max 100; WP's validation message.
            raise _invalid_param("per_page", "per_page must be between 1 (inclusive) and 100 (inclusive)")
        page = integer("page", 1)
        if page < 1:
            raise _invalid_param("page", "page must be greater than or equal to 1")
        offset = integer("offset", -1)
        return page, per_page, offset

    def _date_filters(self, req: SandboxRequest, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """after/before (creation) and modified_after/modified_before, as [CRUD] prepare_objects_query.

        The bounds are exclusive (WP date_query). Without `dates_are_gmt=true` they compare
        with the site-local date. A store without `modified_after` ignores it silently.
        """
        gmt = _truthy(req.arg("dates_are_gmt", "false")) if self.supports_modified_after else False
        shift = timedelta(0) if gmt else self.utc_offset
        bounds = [("after", "date_created", 1), ("before", "date_created", -1)]
        if self.supports_modified_after:
            bounds += [("modified_after", "date_modified", 1), ("modified_before", "date_modified", -1)]
        for name, field, sign in bounds:
            raw = req.arg(name)
            if not raw:
                continue
            bound = _parse_param_date(raw, name)
            if sign > 0:
                items = [i for i in items if (i[field] + shift).replace(tzinfo=None) > bound]
            else:
                items = [i for i in items if (i[field] + shift).replace(tzinfo=None) < bound]
        return items

    def _sort(
        self, req: SandboxRequest, items: list[dict[str, Any]], allowed: Sequence[str], title_key: str = "name"
    ) -> list[dict[str, Any]]:
        orderby = req.arg("orderby", "date") or "date"
        if orderby not in allowed:
            raise _invalid_param("orderby", f"orderby is not one of {', '.join(allowed)}.")
        order = (req.arg("order", "desc") or "desc").lower()
        if order not in ("asc", "desc"):
            raise _invalid_param("order", "order is not one of asc and desc.")
        reverse = order == "desc"
        include = _ids_arg(req, "include")
        # [CRUD prepare_objects_query] date and modified get ID appended as a tiebreaker.
        keys: dict[str, Callable[[dict[str, Any]], Any]] = {
            "date": lambda i: (i["date_created"], i["id"]),
            "modified": lambda i: (i["date_modified"], i["id"]),
            "id": lambda i: i["id"],
            "title": lambda i: (str(i.get(title_key, "")).lower(), i["id"]),
            "slug": lambda i: (str(i.get("slug", "")), i["id"]),
            "price": lambda i: (_dec(self._effective_price(i)), i["id"]),
            "popularity": lambda i: (i.get("total_sales", 0), i["id"]),
            "rating": lambda i: (0, i["id"]),
        }
        if orderby == "include":
            pos = {v: n for n, v in enumerate(include or [])}
            return sorted(items, key=lambda i: pos.get(i["id"], len(pos)))
        return sorted(items, key=keys[orderby], reverse=reverse)

    def _collection(
        self, req: SandboxRequest, items: list[dict[str, Any]], render: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> SandboxResponse:
        """One page plus X-WP-Total, X-WP-TotalPages and the RFC 5988 Link header ([DOCS-intro])."""
        page, per_page, offset = self._paging(req)
        total = len(items)
        pages = (total + per_page - 1) // per_page
        start = offset if offset >= 0 else (page - 1) * per_page
        chunk = items[start : start + per_page]
        fields = _list_arg(req, "_fields")
        body = [_apply_fields(render(i), fields) for i in chunk]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        query = [
            (k, v) for k, vs in req.query.items() for v in vs if k not in ("page", "consumer_key", "consumer_secret")
        ]
        links = []
        base = f"{self.url}{req.path}"
        if page > 1 and pages > 0:
            links.append(f'<{base}?{urlencode(query + [("page", str(min(page - 1, pages)))])}>; rel="prev"')
        if page < pages:
            links.append(f'<{base}?{urlencode(query + [("page", str(page + 1))])}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return SandboxResponse(200, body, headers)

    def _single(
        self, req: SandboxRequest, payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
    ) -> SandboxResponse:
        return SandboxResponse(status, _apply_fields(payload, _list_arg(req, "_fields")), headers or {})

    def _body(self, req: SandboxRequest) -> dict[str, Any]:
        try:
            data = req.json()
        except ValueError:
            raise RestError(400, "rest_invalid_json", "Invalid JSON body passed.") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise RestError(400, "rest_invalid_json", "Invalid JSON body passed.")
        return data

    # -- products: storage and rendering -------------------------------------------------------
    def _product_or_404(self, product_id: int) -> dict[str, Any]:
        product = self._products.get(product_id)
        if product is None:
            raise RestError(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        return product

    def _stock_owner(self, item_id: int) -> dict[str, Any]:
        if item_id in self._variations:
            return self._variations[item_id]
        return self._product_or_404(item_id)

    def _touch(self, rec: dict[str, Any]) -> None:
        """Record a save: date_modified moves on. A variation's save also saves its parent
        (WC_Product_Variable::sync runs after a variation changes, and every product save
        updates post_modified: own reading of the product data store, not in the fact sheet)."""
        now = self.now()
        rec["date_modified"] = now
        parent_id = rec.get("parent_id")
        if parent_id and parent_id in self._products:
            self._products[parent_id]["date_modified"] = now

    @staticmethod
    def _sync_stock_status(rec: dict[str, Any]) -> None:
        if not rec["manage_stock"]:
            return
        qty = rec["stock_quantity"] or 0
        if qty > 0:
            rec["stock_status"] = "instock"
        else:
            rec["stock_status"] = "onbackorder" if rec["backorders"] != "no" else "outofstock"

    def _term(self, taxonomy: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        terms = self._terms[taxonomy]
        if "id" in spec and spec["id"]:
            for term in terms.values():
                if term["id"] == int(spec["id"]):
                    return dict(term)
            raise RestError(400, "woocommerce_rest_term_invalid", "Resource doesn't exist.")
        name = str(spec.get("name", "")).strip()
        if not name:
            raise _invalid_param(f"{taxonomy}s", "a term needs an id or a name")
        if name not in terms:
            self._next_term_id += 1
            terms[name] = {"id": self._next_term_id, "name": name, "slug": _slugify(name)}
        return dict(terms[name])

    def _image(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        if spec.get("id") and not spec.get("src"):
            return {
                "id": int(spec["id"]),
                "src": f"{self.url}/wp-content/uploads/media-{spec['id']}.jpg",
                "name": spec.get("name", ""),
                "alt": spec.get("alt", ""),
                "date": self.now(),
            }
        src = str(spec.get("src") or "")
        if not src:
            raise RestError(400, "woocommerce_product_image_upload_error", "Error getting remote image .")
        self._next_media_id += 1
        return {
            "id": self._next_media_id,
            "src": src,
            "name": spec.get("name") or src.rsplit("/", 1)[-1],
            "alt": spec.get("alt", ""),
            "date": self.now(),
        }

    def _render_image(self, img: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": img["id"],
            **self._dates("date_created", img["date"]),
            **self._dates("date_modified", img["date"]),
            "src": img["src"],
            "name": img["name"],
            "alt": img["alt"],
        }

    def _meta_update(self, meta: list[dict[str, Any]], updates: Any, field: str = "meta_data") -> None:
        """meta_data writes: by `id` to target one row, else by `key` (update the first, or add) ([ORD3])."""
        if not isinstance(updates, list):
            raise _invalid_param(field, f"{field} is not of type array.")
        for entry in updates:
            if not isinstance(entry, dict) or "key" not in entry:
                continue
            key, value = str(entry["key"]), copy.deepcopy(entry.get("value"))
            target = None
            if entry.get("id"):
                target = next((m for m in meta if m["id"] == int(entry["id"])), None)
            if target is None:
                target = next((m for m in meta if m["key"] == key), None)
            if value is None:
                if target is not None:
                    meta.remove(target)
                continue
            if target is None:
                meta.append({"id": self._meta_id(), "key": key, "value": value})
            else:
                target["key"], target["value"] = key, value

    def _check_sku(self, sku: str, own_id: int | None) -> None:
        if not sku:
            return
        for rec in list(self._products.values()) + list(self._variations.values()):
            if rec["sku"] == sku and rec["id"] != own_id:
                # WC_Product::set_sku via the REST save ([Errors] in the fact sheet, UNVERIFIED code).
                raise RestError(
                    400, "product_invalid_sku", "Invalid or duplicated SKU.", resource_id=rec["id"], unique_sku=sku
                )

    def _apply_stock_fields(self, rec: dict[str, Any], body: Mapping[str, Any]) -> None:
        if "backorders" in body:
            if body["backorders"] not in BACKORDERS:
                raise _invalid_param("backorders", f"backorders is not one of {', '.join(BACKORDERS)}.")
            rec["backorders"] = body["backorders"]
        if "manage_stock" in body:
            rec["manage_stock"] = _truthy(body["manage_stock"])
            if not rec["manage_stock"]:
                rec["stock_quantity"] = None
        for name in ("stock_quantity", "inventory_delta"):
            if name in body and body[name] is not None and not isinstance(body[name], int | float | str):
                raise _invalid_param(name, f"{name} is not of type integer.")
        # [CRUD]/products v2 prepare_object_for_database: the quantity only applies while stock is
        # managed; `inventory_delta` (undocumented) moves it relative to the stored value.
        if rec["manage_stock"]:
            try:
                if body.get("stock_quantity") is not None:
                    rec["stock_quantity"] = int(Decimal(str(body["stock_quantity"])))
                elif body.get("inventory_delta") is not None:
                    rec["stock_quantity"] = int(rec["stock_quantity"] or 0) + int(Decimal(str(body["inventory_delta"])))
            except InvalidOperation:
                raise _invalid_param("stock_quantity", "stock_quantity is not of type integer.") from None
            if rec["stock_quantity"] is None:
                rec["stock_quantity"] = 0
            self._sync_stock_status(rec)
        elif "stock_status" in body:
            if body["stock_status"] not in STOCK_STATUSES:
                raise _invalid_param("stock_status", f"stock_status is not one of {', '.join(STOCK_STATUSES)}.")
            rec["stock_status"] = body["stock_status"]

    def _create_product(self, body: Mapping[str, Any]) -> dict[str, Any]:
        now = self.now()
        rec: dict[str, Any] = {
            "id": 0,
            "name": "",
            "slug": "",
            "type": "simple",
            "status": "publish",
            "featured": False,
            "catalog_visibility": "visible",
            "description": "",
            "short_description": "",
            "sku": "",
            "regular_price": "",
            "sale_price": "",
            "total_sales": 0,
            "manage_stock": False,
            "stock_quantity": None,
            "stock_status": "instock",
            "backorders": "no",
            "weight": "",
            "dimensions": {"length": "", "width": "", "height": ""},
            "categories": [],
            "tags": [],
            "images": [],
            "attributes": [],
            "default_attributes": [],
            "variations": [],
            "menu_order": 0,
            "meta_data": [],
            "date_created": now,
            "date_modified": now,
            "parent_id": 0,
        }
        self._apply_product_fields(rec, body, creating=True)
        rec["id"] = self._post_id()
        if not rec["slug"]:
            rec["slug"] = self._unique_slug(rec["name"] or "product")
        self._products[rec["id"]] = rec
        return self._render_product(rec)

    def _unique_slug(self, name: str) -> str:
        base = _slugify(name)
        taken = {p["slug"] for p in self._products.values()}
        slug, n = base, 2
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
        return slug

    def _apply_product_fields(self, rec: dict[str, Any], body: Mapping[str, Any], *, creating: bool) -> None:
        if "type" in body:
            if body["type"] not in PRODUCT_TYPES:
                raise _invalid_param("type", f"type is not one of {', '.join(PRODUCT_TYPES)}.")
            rec["type"] = body["type"]
        if "status" in body:
            if body["status"] not in PRODUCT_STATUSES + ("future",):
                raise _invalid_param("status", f"status is not one of {', '.join(PRODUCT_STATUSES)}.")
            rec["status"] = body["status"]
        for key in ("name", "description", "short_description", "slug", "weight"):
            if key in body and body[key] is not None:
                rec[key] = str(body[key])
        if "sku" in body:
            sku = str(body["sku"] or "")
            self._check_sku(sku, rec["id"] or None)
            rec["sku"] = sku
        for key in ("regular_price", "sale_price"):
            if key in body:
                rec[key] = _money(body[key])
        if "menu_order" in body:
            rec["menu_order"] = int(body["menu_order"])
        if "featured" in body:
            rec["featured"] = _truthy(body["featured"])
        if "catalog_visibility" in body:
            rec["catalog_visibility"] = str(body["catalog_visibility"])
        if "dimensions" in body and isinstance(body["dimensions"], dict):
            rec["dimensions"].update({k: str(v) for k, v in body["dimensions"].items() if k in rec["dimensions"]})
        if "categories" in body:
            rec["categories"] = [self._term("cat", c) for c in body["categories"] or []]
        if "tags" in body:
            rec["tags"] = [self._term("tag", t) for t in body["tags"] or []]
        if "images" in body:
            rec["images"] = [self._image(i) for i in body["images"] or []]
        if "attributes" in body:
            attrs = []
            for i, a in enumerate(body["attributes"] or []):
                attr_id = int(a.get("id") or 0)
                name = a.get("name") or (f"pa_attr_{attr_id}" if attr_id else "")
                attrs.append(
                    {
                        "id": attr_id,
                        "name": name,
                        "position": int(a.get("position", i)),
                        "visible": bool(a.get("visible", False)),
                        "variation": bool(a.get("variation", False)),
                        "options": [str(o) for o in a.get("options", [])],
                    }
                )
            rec["attributes"] = attrs
        if "default_attributes" in body:
            rec["default_attributes"] = [
                {"id": int(d.get("id") or 0), "name": d.get("name", ""), "option": d.get("option", "")}
                for d in body["default_attributes"] or []
            ]
        if "meta_data" in body:
            self._meta_update(rec["meta_data"], body["meta_data"])
        if rec["type"] != "variable":
            self._apply_stock_fields(rec, body)
        elif "manage_stock" in body or "stock_quantity" in body:
            self._apply_stock_fields(rec, body)

    def _effective_price(self, rec: dict[str, Any]) -> str:
        if rec.get("type") == "variable":
            prices = [
                _dec(self._effective_price(self._variations[v]))
                for v in rec["variations"]
                if v in self._variations and self._effective_price(self._variations[v]) != ""
            ]
            return str(min(prices)) if prices else ""
        return rec["sale_price"] if rec["sale_price"] != "" else rec["regular_price"]

    def _price_html(self, price: str) -> str:
        if price == "":
            return ""
        symbol = "&#36;" if self.currency == "USD" else html.escape(self.currency)
        return (
            f'<span class="woocommerce-Price-amount amount"><span class="woocommerce-Price-currencySymbol">'
            f"{symbol}</span>{_fmt2(_dec(price))}</span>"
        )

    def _links(self, path: str, collection: str, up: str | None = None) -> dict[str, Any]:
        links: dict[str, Any] = {
            "self": [{"href": f"{self.url}{path}"}],
            "collection": [{"href": f"{self.url}{collection}"}],
        }
        if up:
            links["up"] = [{"href": f"{self.url}{up}"}]
        return links

    def _render_product(self, rec: dict[str, Any]) -> dict[str, Any]:
        variable = rec["type"] == "variable"
        price = self._effective_price(rec)
        stock_status = rec["stock_status"]
        if variable and not rec["manage_stock"]:
            children = [self._variations[v] for v in rec["variations"] if v in self._variations]
            if children:
                stock_status = "instock" if any(c["stock_status"] == "instock" for c in children) else "outofstock"
        manage = rec["manage_stock"]
        return {
            "id": rec["id"],
            "name": rec["name"],
            "slug": rec["slug"],
            "permalink": f"{self.url}/product/{rec['slug']}/",
            **self._dates("date_created", rec["date_created"]),
            **self._dates("date_modified", rec["date_modified"]),
            "type": rec["type"],
            "status": rec["status"],
            "featured": rec["featured"],
            "catalog_visibility": rec["catalog_visibility"],
            "description": rec["description"],
            "short_description": rec["short_description"],
            "sku": rec["sku"],
            "price": price,
            "regular_price": "" if variable else rec["regular_price"],
            "sale_price": "" if variable else rec["sale_price"],
            "date_on_sale_from": None,
            "date_on_sale_from_gmt": None,
            "date_on_sale_to": None,
            "date_on_sale_to_gmt": None,
            "price_html": self._price_html(price),
            "on_sale": (not variable) and rec["sale_price"] != "",
            "purchasable": price != "" and rec["status"] == "publish",
            "total_sales": rec["total_sales"],
            "virtual": False,
            "downloadable": False,
            "downloads": [],
            "download_limit": -1,
            "download_expiry": -1,
            "external_url": "",
            "button_text": "",
            "tax_status": "taxable",
            "tax_class": "",
            "manage_stock": manage,
            # null when stock is not managed ([DOCS-intro], contracts README).
            "stock_quantity": rec["stock_quantity"] if manage else None,
            "stock_status": stock_status,
            "backorders": rec["backorders"],
            "backorders_allowed": rec["backorders"] != "no",
            "backordered": manage and (rec["stock_quantity"] or 0) < 0 and rec["backorders"] != "no",
            "sold_individually": False,
            "weight": rec["weight"],
            "dimensions": dict(rec["dimensions"]),
            "shipping_required": True,
            "shipping_taxable": True,
            "shipping_class": "",
            "shipping_class_id": 0,
            "reviews_allowed": True,
            "average_rating": "0.00",
            "rating_count": 0,
            "related_ids": [],
            "upsell_ids": [],
            "cross_sell_ids": [],
            "parent_id": 0,
            "purchase_note": "",
            "categories": [dict(c) for c in rec["categories"]],
            "tags": [dict(t) for t in rec["tags"]],
            "images": [self._render_image(i) for i in rec["images"]],
            "attributes": [copy.deepcopy(a) for a in rec["attributes"]],
            "default_attributes": [dict(d) for d in rec["default_attributes"]],
            # Ordered by menu_order, then ID, like WC_Product_Variable::get_children.
            "variations": [
                v
                for v in sorted(rec["variations"], key=lambda v: (self._variations[v]["menu_order"], v))
                if v in self._variations
            ],
            "grouped_products": [],
            "menu_order": rec["menu_order"],
            "meta_data": copy.deepcopy(rec["meta_data"]),
            "_links": self._links(f"{WC_PREFIX}/products/{rec['id']}", f"{WC_PREFIX}/products"),
        }

    def _update_product(self, product_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        rec = self._products.get(product_id)
        if rec is None:
            # [CRUD update_item] an unknown id on update is 400, not 404.
            raise RestError(400, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        staged = copy.deepcopy(rec)
        self._apply_product_fields(staged, body, creating=False)
        rec.clear()
        rec.update(staged)
        self._touch(rec)
        return self._render_product(rec)

    # -- products: HTTP -----------------------------------------------------------------------
    def _list_products(self, req: SandboxRequest) -> SandboxResponse:
        items = list(self._products.values())
        status = req.arg("status", "any") or "any"
        if status == "any":
            items = [p for p in items if p["status"] != "trash"]
        else:
            wanted = set(status.split(","))
            items = [p for p in items if p["status"] in wanted]
        if (sku := req.arg("sku")) is not None and sku != "":
            skus = {s.strip() for s in sku.split(",")}
            items = [p for p in items if p["sku"] in skus]
        if (type_ := req.arg("type")) is not None:
            items = [p for p in items if p["type"] == type_]
        if (include := _ids_arg(req, "include")) is not None:
            items = [p for p in items if p["id"] in set(include)]
        if (exclude := _ids_arg(req, "exclude")) is not None:
            items = [p for p in items if p["id"] not in set(exclude)]
        if search := req.arg("search"):
            items = [p for p in items if search.lower() in p["name"].lower()]
        items = self._date_filters(req, items)
        items = self._sort(req, items, PRODUCT_ORDERBY)
        return self._collection(req, items, self._render_product)

    def _post_product(self, req: SandboxRequest) -> SandboxResponse:
        product = self._create_product(self._body(req))
        return self._single(req, product, 201, {"Location": f"{self.url}{WC_PREFIX}/products/{product['id']}"})

    def _get_product(self, req: SandboxRequest, product_id: int) -> SandboxResponse:
        return self._single(req, self._render_product(self._product_or_404(product_id)))

    def _put_product(self, req: SandboxRequest, product_id: int) -> SandboxResponse:
        return self._single(req, self._update_product(product_id, self._body(req)))

    def _delete_product_rec(self, product_id: int, force: bool) -> dict[str, Any]:
        rec = self._product_or_404(product_id)
        payload = self._render_product(rec)
        if force:
            del self._products[product_id]
            for vid in rec["variations"]:
                self._variations.pop(vid, None)
        else:
            if rec["status"] == "trash":
                raise RestError(410, "woocommerce_rest_already_trashed", "The product has already been deleted.")
            rec["status"] = "trash"
            self._touch(rec)
            payload = self._render_product(rec)
        return payload

    def _delete_product(self, req: SandboxRequest, product_id: int) -> SandboxResponse:
        return self._single(req, self._delete_product_rec(product_id, _truthy(req.arg("force", "false"))))

    def _batch(
        self,
        req: SandboxRequest,
        create: Callable[[dict[str, Any]], dict[str, Any]],
        update: Callable[[dict[str, Any]], dict[str, Any]],
        delete: Callable[[int], dict[str, Any]],
    ) -> SandboxResponse:
        """[RESTCTL batch_items]: ≤ limit items in all; each item answered on its own, errors inline."""
        body = self._body(req)
        groups = {k: body.get(k) or [] for k in ("create", "update", "delete")}
        total = sum(len(v) for v in groups.values() if isinstance(v, list))
        if total > self.batch_limit:
            raise RestError(
                413,
                "woocommerce_rest_request_entity_too_large",
                f"Unable to accept more than {self.batch_limit} items for this request.",
            )
        out: dict[str, list[Any]] = {}

        def attempt(kind: str, item_id: Any, fn: Callable[[], dict[str, Any]]) -> None:
            try:
                out.setdefault(kind, []).append(fn())
            except RestError as err:
                out.setdefault(kind, []).append(
                    {
                        "id": item_id,
                        "error": {"code": err.code, "message": err.message, "data": {"status": err.status, **err.data}},
                    }
                )

        for item in groups["create"]:
            attempt("create", 0, lambda item=item: create(item))
        for item in groups["update"]:
            item_id = item.get("id") if isinstance(item, dict) else None
            attempt("update", item_id, lambda item=item: update(item))
        for raw in groups["delete"]:
            item_id = int(raw) if str(raw).isdigit() else 0
            if item_id == 0:
                continue
            attempt("delete", item_id, lambda item_id=item_id: delete(item_id))
        return SandboxResponse(200, out)

    def _batch_products(self, req: SandboxRequest) -> SandboxResponse:
        def update(item: dict[str, Any]) -> dict[str, Any]:
            return self._update_product(int(item.get("id") or 0), item)

        return self._batch(req, self._create_product, update, lambda i: self._delete_product_rec(i, True))

    # -- variations -----------------------------------------------------------------------------
    def _variation_or_404(self, parent: dict[str, Any], variation_id: int, status: int = 404) -> dict[str, Any]:
        rec = self._variations.get(variation_id)
        if rec is None or rec["parent_id"] != parent["id"]:
            raise RestError(status, "woocommerce_rest_product_variation_invalid_id", "Invalid ID.")
        return rec

    def _apply_variation_fields(self, parent: dict[str, Any], rec: dict[str, Any], body: Mapping[str, Any]) -> None:
        for key in ("description", "weight"):
            if key in body and body[key] is not None:
                rec[key] = str(body[key])
        if "status" in body:
            if body["status"] not in PRODUCT_STATUSES:
                raise _invalid_param("status", f"status is not one of {', '.join(PRODUCT_STATUSES)}.")
            rec["status"] = body["status"]
        if "sku" in body:
            sku = str(body["sku"] or "")
            self._check_sku(sku, rec["id"] or None)
            rec["sku"] = sku
        for key in ("regular_price", "sale_price"):
            if key in body:
                rec[key] = _money(body[key])
        if "menu_order" in body:
            rec["menu_order"] = int(body["menu_order"])
        if "dimensions" in body and isinstance(body["dimensions"], dict):
            rec["dimensions"].update({k: str(v) for k, v in body["dimensions"].items() if k in rec["dimensions"]})
        if "image" in body:
            rec["image"] = self._image(body["image"]) if body["image"] else None
        if "attributes" in body:
            attrs = []
            for a in body["attributes"] or []:
                parent_attr = None
                for pa in parent["attributes"]:
                    if (a.get("id") and pa["id"] == int(a["id"])) or (
                        a.get("name") and pa["name"].lower() == str(a["name"]).lower()
                    ):
                        parent_attr = pa
                if parent_attr is None or not parent_attr["variation"]:
                    continue  # WC drops attributes the parent does not use for variations
                attrs.append({"id": parent_attr["id"], "name": parent_attr["name"], "option": str(a.get("option", ""))})
            rec["attributes"] = attrs
        if "meta_data" in body:
            self._meta_update(rec["meta_data"], body["meta_data"])
        self._apply_stock_fields(rec, body)

    def _create_variation(self, parent: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        if parent["type"] != "variable":
            raise RestError(
                400, "woocommerce_rest_invalid_product_id", "Variations can only be created for variable products."
            )
        now = self.now()
        rec: dict[str, Any] = {
            "id": 0,
            "parent_id": parent["id"],
            "description": "",
            "sku": "",
            "regular_price": "",
            "sale_price": "",
            "status": "publish",
            "manage_stock": False,
            "stock_quantity": None,
            "stock_status": "instock",
            "backorders": "no",
            "weight": "",
            "dimensions": {"length": "", "width": "", "height": ""},
            "image": None,
            "attributes": [],
            "menu_order": 0,
            "meta_data": [],
            "date_created": now,
            "date_modified": now,
            "total_sales": 0,
        }
        self._apply_variation_fields(parent, rec, body)
        rec["id"] = self._post_id()
        self._variations[rec["id"]] = rec
        parent["variations"].append(rec["id"])
        self._touch(rec)
        return self._render_variation(rec)

    def _update_variation(self, parent: dict[str, Any], variation_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        rec = self._variation_or_404(parent, variation_id, status=400)
        staged = copy.deepcopy(rec)
        self._apply_variation_fields(parent, staged, body)
        rec.clear()
        rec.update(staged)
        self._touch(rec)
        return self._render_variation(rec)

    def _render_variation(self, rec: dict[str, Any]) -> dict[str, Any]:
        parent = self._products.get(rec["parent_id"], {"slug": "product", "attributes": []})
        price = self._effective_price(rec)
        manage = rec["manage_stock"]
        query = "&".join(
            f"attribute_{'pa_' + _slugify(a['name']) if a['id'] else _slugify(a['name'])}={_slugify(a['option'])}"
            for a in rec["attributes"]
        )
        image = rec["image"]
        placeholder = {
            "id": 0,
            "src": f"{self.url}/wp-content/plugins/woocommerce/assets/images/placeholder.png",
            "name": "Placeholder",
            "alt": "Placeholder",
            "date": rec["date_created"],
        }
        return {
            "id": rec["id"],
            **self._dates("date_created", rec["date_created"]),
            **self._dates("date_modified", rec["date_modified"]),
            "description": rec["description"],
            "permalink": f"{self.url}/product/{parent['slug']}/" + (f"?{query}" if query else ""),
            "sku": rec["sku"],
            "price": price,
            "regular_price": rec["regular_price"],
            "sale_price": rec["sale_price"],
            "date_on_sale_from": None,
            "date_on_sale_from_gmt": None,
            "date_on_sale_to": None,
            "date_on_sale_to_gmt": None,
            "on_sale": rec["sale_price"] != "",
            "status": rec["status"],
            "purchasable": price != "",
            "virtual": False,
            "downloadable": False,
            "downloads": [],
            "download_limit": -1,
            "download_expiry": -1,
            "tax_status": "taxable",
            "tax_class": "",
            "manage_stock": manage,
            "stock_quantity": rec["stock_quantity"] if manage else None,
            "stock_status": rec["stock_status"],
            "backorders": rec["backorders"],
            "backorders_allowed": rec["backorders"] != "no",
            "backordered": manage and (rec["stock_quantity"] or 0) < 0 and rec["backorders"] != "no",
            "weight": rec["weight"],
            "dimensions": dict(rec["dimensions"]),
            "shipping_class": "",
            "shipping_class_id": 0,
            "image": self._render_image(image or placeholder),
            "attributes": [dict(a) for a in rec["attributes"]],
            "menu_order": rec["menu_order"],
            "meta_data": copy.deepcopy(rec["meta_data"]),
            "_links": self._links(
                f"{WC_PREFIX}/products/{rec['parent_id']}/variations/{rec['id']}",
                f"{WC_PREFIX}/products/{rec['parent_id']}/variations",
                f"{WC_PREFIX}/products/{rec['parent_id']}",
            ),
        }

    def _list_variations(self, req: SandboxRequest, product_id: int) -> SandboxResponse:
        parent = self._product_or_404(product_id)
        items = [self._variations[v] for v in parent["variations"] if v in self._variations]
        if (include := _ids_arg(req, "include")) is not None:
            items = [v for v in items if v["id"] in set(include)]
        if (sku := req.arg("sku")) is not None and sku != "":
            items = [v for v in items if v["sku"] in {s.strip() for s in sku.split(",")}]
        status = req.arg("status", "any") or "any"
        if status != "any":
            items = [v for v in items if v["status"] in set(status.split(","))]
        items = self._date_filters(req, items)
        items = self._sort(req, items, ORDERBY + ("menu_order",), title_key="sku")
        return self._collection(req, items, self._render_variation)

    def _post_variation(self, req: SandboxRequest, product_id: int) -> SandboxResponse:
        parent = self._product_or_404(product_id)
        variation = self._create_variation(parent, self._body(req))
        return self._single(req, variation, 201)

    def _get_variation(self, req: SandboxRequest, product_id: int, variation_id: int) -> SandboxResponse:
        parent = self._product_or_404(product_id)
        return self._single(req, self._render_variation(self._variation_or_404(parent, variation_id)))

    def _put_variation(self, req: SandboxRequest, product_id: int, variation_id: int) -> SandboxResponse:
        parent = self._product_or_404(product_id)
        return self._single(req, self._update_variation(parent, variation_id, self._body(req)))

    def _delete_variation_rec(self, parent: dict[str, Any], variation_id: int) -> dict[str, Any]:
        rec = self._variation_or_404(parent, variation_id)
        payload = self._render_variation(rec)
        del self._variations[variation_id]
        parent["variations"].remove(variation_id)
        self._touch(parent)
        return payload

    def _delete_variation(self, req: SandboxRequest, product_id: int, variation_id: int) -> SandboxResponse:
        parent = self._product_or_404(product_id)
        # Variations do not support trashing: without force → 501 woocommerce_rest_trash_not_supported [CRUD].
        if not _truthy(req.arg("force", "false")):
            raise RestError(501, "woocommerce_rest_trash_not_supported", "Resource does not support trashing.")
        return self._single(req, self._delete_variation_rec(parent, variation_id))

    def _batch_variations(self, req: SandboxRequest, product_id: int) -> SandboxResponse:
        parent = self._product_or_404(product_id)

        def update(item: dict[str, Any]) -> dict[str, Any]:
            return self._update_variation(parent, int(item.get("id") or 0), item)

        return self._batch(
            req,
            lambda item: self._create_variation(parent, item),
            update,
            lambda i: self._delete_variation_rec(parent, i),
        )

    # -- orders: storage ----------------------------------------------------------------------------
    def _order_or_404(self, order_id: int, status: int = 404) -> dict[str, Any]:
        order = self._orders.get(order_id)
        if order is None:
            raise RestError(status, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return order

    def _add_note(
        self, order: dict[str, Any], note: str, *, customer_note: bool = False, author: str = "system"
    ) -> dict[str, Any]:
        self._next_note_id += 1
        entry = {
            "id": self._next_note_id,
            "author": author,
            "date": self.now(),
            "note": note,
            "customer_note": customer_note,
        }
        self._notes.setdefault(order["id"], []).insert(0, entry)
        return entry

    def _render_note(self, order_id: int, note: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": note["id"],
            "author": note["author"],
            **self._dates("date_created", note["date"]),
            "note": note["note"],
            "customer_note": note["customer_note"],
            "_links": self._links(
                f"{WC_PREFIX}/orders/{order_id}/notes/{note['id']}",
                f"{WC_PREFIX}/orders/{order_id}/notes",
                f"{WC_PREFIX}/orders/{order_id}",
            ),
        }

    def _resolve_line_product(self, line: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """[ORD2 get_product_id]: SKU first, then variation_id, then product_id."""
        sku = line.get("sku")
        if sku:
            for variation in self._variations.values():
                if variation["sku"] == sku:
                    return self._products[variation["parent_id"]], variation
            for product in self._products.values():
                if product["sku"] == sku:
                    return product, None
            raise RestError(400, "woocommerce_rest_invalid_product_id", "Invalid product ID.")
        variation_id = int(line.get("variation_id") or 0)
        product_id = int(line.get("product_id") or 0)
        if not variation_id and not product_id:
            raise RestError(400, "woocommerce_rest_required_product_reference", "Product ID or SKU is required.")
        if variation_id:
            variation = self._variations.get(variation_id)
            if variation is None:
                raise RestError(400, "woocommerce_rest_invalid_product_id", "Invalid product ID.")
            return self._products[variation["parent_id"]], variation
        product = self._products.get(product_id)
        if product is None:
            raise RestError(400, "woocommerce_rest_invalid_product_id", "Invalid product ID.")
        if product_id in self._variations:  # a variation id given as product_id
            variation = self._variations[product_id]
            return self._products[variation["parent_id"]], variation
        return product, None

    def _make_line(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        product, variation = self._resolve_line_product(spec)
        try:
            qty = int(spec.get("quantity", 1))
        except (TypeError, ValueError):
            raise _invalid_param("line_items", "quantity is not of type integer.") from None
        item = variation or product
        unit = _dec(self._effective_price(item))
        # [ORD2 prepare_line_items]: without posted totals the line costs catalog price × qty.
        subtotal = _dec(spec["subtotal"]) if spec.get("subtotal") not in (None, "") else unit * qty
        total = _dec(spec["total"]) if spec.get("total") not in (None, "") else subtotal
        name = product["name"]
        meta: list[dict[str, Any]] = []
        if variation is not None:
            name = f"{product['name']} - {', '.join(a['option'] for a in variation['attributes'])}"
            for a in variation["attributes"]:
                key = f"pa_{_slugify(a['name'])}" if a["id"] else a["name"].lower()
                meta.append({"id": self._meta_id(), "key": key, "value": a["option"]})
        for extra in spec.get("meta_data") or []:
            if isinstance(extra, dict) and "key" in extra:
                meta.append({"id": self._meta_id(), "key": str(extra["key"]), "value": extra.get("value")})
        return {
            "id": self._item_id(),
            "name": name,
            "product_id": product["id"],
            "variation_id": variation["id"] if variation else 0,
            "quantity": qty,
            "subtotal": subtotal,
            "total": total,
            "meta_data": meta,
        }

    def _order_totals(self, order: dict[str, Any]) -> None:
        lines = sum((li["total"] for li in order["line_items"]), Decimal("0"))
        shipping = sum((s["total"] for s in order["shipping_lines"]), Decimal("0"))
        fees = sum((f["total"] for f in order["fee_lines"]), Decimal("0"))
        order["shipping_total"] = shipping
        order["total"] = lines + shipping + fees

    def _reduce_stock(self, order: dict[str, Any]) -> None:
        """[STOCK] wc_maybe_reduce_stock_levels: once per order, once per line (`_reduced_stock`),
        only for items whose stock is managed; leaves an order note."""
        if order["stock_reduced"]:
            return
        changes = []
        for li in order["line_items"]:
            if any(m["key"] == "_reduced_stock" for m in li["meta_data"]):
                continue
            owner = self._variations.get(li["variation_id"]) or self._products.get(li["product_id"])
            if owner is None or not owner["manage_stock"]:
                continue
            old = owner["stock_quantity"] or 0
            owner["stock_quantity"] = old - li["quantity"]
            # No _touch: WooCommerce moves order stock with a direct postmeta UPDATE
            # (WC_Product_Data_Store_CPT::update_product_stock), so date_modified stays as it was
            # and `modified_after` does not see stock that orders moved.
            self._sync_stock_status(owner)
            li["meta_data"].append({"id": self._meta_id(), "key": "_reduced_stock", "value": str(li["quantity"])})
            changes.append(f"{li['name']} ({owner['sku'] or owner['id']}) {old}&rarr;{owner['stock_quantity']}")
        order["stock_reduced"] = True
        self._meta_update(order["meta_data"], [{"key": "_order_stock_reduced", "value": "yes"}])
        if changes:
            self._add_note(order, "Stock levels reduced: " + ", ".join(changes))

    def _restore_stock(self, order: dict[str, Any]) -> None:
        """[STOCK] wc_maybe_increase_stock_levels: gives back only what was reduced."""
        if not order["stock_reduced"]:
            return
        changes = []
        for li in order["line_items"]:
            reduced = next((m for m in li["meta_data"] if m["key"] == "_reduced_stock"), None)
            if reduced is None:
                continue
            owner = self._variations.get(li["variation_id"]) or self._products.get(li["product_id"])
            li["meta_data"].remove(reduced)
            if owner is None or not owner["manage_stock"]:
                continue
            old = owner["stock_quantity"] or 0
            owner["stock_quantity"] = old + int(reduced["value"])
            self._sync_stock_status(owner)  # direct postmeta UPDATE, as above: no date_modified
            changes.append(f"{li['name']} ({owner['sku'] or owner['id']}) {old}&rarr;{owner['stock_quantity']}")
        order["stock_reduced"] = False
        self._meta_update(order["meta_data"], [{"key": "_order_stock_reduced", "value": None}])
        if changes:
            self._add_note(order, "Stock levels increased: " + ", ".join(changes))

    def _transition(self, order: dict[str, Any], old: str | None, new: str) -> None:
        if old == new:
            return
        order["status"] = new
        if old is not None:
            self._add_note(
                order,
                f"Order status changed from {ORDER_STATUS_LABELS.get(old, old)} to "
                f"{ORDER_STATUS_LABELS.get(new, new)}.",
            )
            # [STOCK]: reduction hooked on transitions to processing/completed/on-hold; restoring on
            # cancelled and pending. A brand-new order has no transition [ISS-18468].
            if new in ("processing", "completed", "on-hold"):
                self._reduce_stock(order)
            elif new in ("cancelled", "pending"):
                self._restore_stock(order)
        if new == "completed" and order["date_completed"] is None:
            order["date_completed"] = self.now()

    def _apply_order_fields(self, order: dict[str, Any], body: Mapping[str, Any], *, creating: bool) -> None:
        if "customer_id" in body and int(body["customer_id"] or 0) != 0:
            # [ORD3 save_object]: a non-zero customer must exist; the sandbox has no customers.
            raise RestError(400, "woocommerce_rest_invalid_customer_id", "Customer ID is invalid.")
        for key in ("customer_note", "payment_method", "payment_method_title", "transaction_id"):
            if key in body and body[key] is not None:
                order[key] = str(body[key])
        if "currency" in body and body["currency"]:
            order["currency"] = str(body["currency"])
        for address in ("billing", "shipping"):
            if address in body and isinstance(body[address], dict):
                # Partial objects are fine: only posted keys change [ORD3].
                for k, v in body[address].items():
                    if k in order[address]:
                        order[address][k] = "" if v is None else str(v)
        if "meta_data" in body:
            self._meta_update(order["meta_data"], body["meta_data"])
        if "line_items" in body:
            for spec in body["line_items"] or []:
                if spec.get("id"):
                    existing = next((li for li in order["line_items"] if li["id"] == int(spec["id"])), None)
                    if existing is None:
                        raise RestError(
                            400,
                            "woocommerce_rest_invalid_item_id",
                            "Order item ID provided is not associated with order.",
                        )
                    if int(spec.get("quantity", existing["quantity"])) == 0 or (
                        "product_id" in spec and spec["product_id"] is None
                    ):
                        order["line_items"].remove(existing)
                    else:
                        existing["quantity"] = int(spec.get("quantity", existing["quantity"]))
                        for k in ("subtotal", "total"):
                            if spec.get(k) not in (None, ""):
                                existing[k] = _dec(spec[k])
                    continue
                order["line_items"].append(self._make_line(spec))
        if "shipping_lines" in body:
            for spec in body["shipping_lines"] or []:
                if not spec.get("method_id"):
                    raise RestError(400, "woocommerce_rest_invalid_shipping_item", "Shipping method ID is required.")
                order["shipping_lines"].append(
                    {
                        "id": self._item_id(),
                        "method_title": spec.get("method_title", ""),
                        "method_id": spec["method_id"],
                        "total": _dec(spec.get("total")),
                    }
                )
        if "fee_lines" in body:
            for spec in body["fee_lines"] or []:
                if not spec.get("name"):
                    raise RestError(400, "woocommerce_rest_invalid_fee_item", "Fee name is required.")
                order["fee_lines"].append(
                    {"id": self._item_id(), "name": spec["name"], "total": _dec(spec.get("total"))}
                )
        self._order_totals(order)

    def _create_order(self, body: Mapping[str, Any], *, created_via: str = "rest-api") -> dict[str, Any]:
        status = body.get("status", "pending") or "pending"
        if status not in ORDER_STATUSES:
            raise _invalid_param("status", f"status is not one of {', '.join(ORDER_STATUSES)}.")
        now = self.now()
        blank_billing = dict.fromkeys(
            (
                "first_name",
                "last_name",
                "company",
                "address_1",
                "address_2",
                "city",
                "state",
                "postcode",
                "country",
                "email",
                "phone",
            ),
            "",
        )
        blank_shipping = dict.fromkeys(
            (
                "first_name",
                "last_name",
                "company",
                "address_1",
                "address_2",
                "city",
                "state",
                "postcode",
                "country",
                "phone",
            ),
            "",
        )
        order: dict[str, Any] = {
            "id": 0,
            "created_via": created_via,
            "status": status,
            "currency": self.currency,
            "date_created": now,
            "date_modified": now,
            "date_paid": None,
            "date_completed": None,
            "customer_note": "",
            "billing": blank_billing,
            "shipping": blank_shipping,
            "payment_method": "",
            "payment_method_title": "",
            "transaction_id": "",
            "meta_data": [],
            "line_items": [],
            "shipping_lines": [],
            "fee_lines": [],
            "stock_reduced": False,
            "shipping_total": Decimal("0"),
            "total": Decimal("0"),
            "order_key": "wc_order_"
            + "".join(self.random.choice(string.ascii_letters + string.digits) for _ in range(13)),
        }
        self._apply_order_fields(order, body, creating=True)
        order["id"] = self._post_id()
        self._orders[order["id"]] = order
        if _truthy(body.get("set_paid", False)):
            self._payment_complete(order)
        return self._render_order(order)

    def _payment_complete(self, order: dict[str, Any]) -> None:
        """[ORDER payment_complete]: from pending/on-hold/failed/cancelled → processing, date_paid,
        and stock reduced through woocommerce_payment_complete [ORD3 save_object] [ISS-14988]."""
        if order["status"] not in ("pending", "on-hold", "failed", "cancelled"):
            return
        order["date_paid"] = order["date_paid"] or self.now()
        self._transition(order, order["status"], "processing")
        self._reduce_stock(order)

    def _update_order(self, order_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        order = self._order_or_404(order_id, status=400)  # [CRUD update_item]: unknown id → 400
        staged = copy.deepcopy(order)
        self._apply_order_fields(staged, body, creating=False)
        new_status = body.get("status")
        if new_status is not None and new_status not in ORDER_STATUSES:
            raise _invalid_param("status", f"status is not one of {', '.join(ORDER_STATUSES)}.")
        order.clear()
        order.update(staged)
        if new_status:
            self._transition(order, order["status"], str(new_status))
        if _truthy(body.get("set_paid", False)):
            self._payment_complete(order)
        order["date_modified"] = self.now()
        return self._render_order(order)

    def _render_line(self, li: dict[str, Any]) -> dict[str, Any]:
        product = self._products.get(li["product_id"])
        variation = self._variations.get(li["variation_id"])
        item = variation or product
        qty = li["quantity"]
        price = li["total"] / qty if qty else Decimal("0")
        image = (variation or {}).get("image") or ((product or {}).get("images") or [None])[0]
        return {
            "id": li["id"],
            "name": li["name"],
            "product_id": li["product_id"],
            "variation_id": li["variation_id"],
            "quantity": qty,
            "tax_class": "",
            "subtotal": _fmt2(li["subtotal"]),
            "subtotal_tax": "0.00",
            "total": _fmt2(li["total"]),
            "total_tax": "0.00",
            "taxes": [],
            "meta_data": [{**m, "display_key": m["key"], "display_value": m["value"]} for m in li["meta_data"]],
            "sku": item["sku"] if item else None,
            # A number, total / quantity ([DOCS-orders example] [ORD2 get_order_item_data]).
            "price": int(price) if price == price.to_integral_value() else float(price),
            "image": {"id": image["id"], "src": image["src"]} if image else {"id": "", "src": ""},
            "parent_name": product["name"] if variation is not None and product else None,
        }

    def _render_order(self, order: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": order["id"],
            "parent_id": 0,
            "number": str(order["id"]),
            "order_key": order["order_key"],
            "created_via": order["created_via"],
            "version": "9.4.0",
            "status": order["status"],
            "currency": order["currency"],
            **self._dates("date_created", order["date_created"]),
            **self._dates("date_modified", order["date_modified"]),
            "discount_total": "0.00",
            "discount_tax": "0.00",
            "shipping_total": _fmt2(order["shipping_total"]),
            "shipping_tax": "0.00",
            "cart_tax": "0.00",
            "total": _fmt2(order["total"]),
            "total_tax": "0.00",
            "prices_include_tax": False,
            "customer_id": 0,
            "customer_ip_address": "",
            "customer_user_agent": "",
            "customer_note": order["customer_note"],
            "billing": dict(order["billing"]),
            "shipping": dict(order["shipping"]),
            "payment_method": order["payment_method"],
            "payment_method_title": order["payment_method_title"],
            "transaction_id": order["transaction_id"],
            **self._dates("date_paid", order["date_paid"]),
            **self._dates("date_completed", order["date_completed"]),
            "cart_hash": "",
            "meta_data": copy.deepcopy(order["meta_data"]),
            "line_items": [self._render_line(li) for li in order["line_items"]],
            "tax_lines": [],
            "shipping_lines": [
                {
                    "id": s["id"],
                    "method_title": s["method_title"],
                    "method_id": s["method_id"],
                    "total": _fmt2(s["total"]),
                    "total_tax": "0.00",
                    "taxes": [],
                    "meta_data": [],
                }
                for s in order["shipping_lines"]
            ],
            "fee_lines": [
                {
                    "id": f["id"],
                    "name": f["name"],
                    "tax_class": "",
                    "tax_status": "taxable",
                    "total": _fmt2(f["total"]),
                    "total_tax": "0.00",
                    "taxes": [],
                    "meta_data": [],
                }
                for f in order["fee_lines"]
            ],
            "coupon_lines": [],
            "refunds": [],
            "_links": self._links(f"{WC_PREFIX}/orders/{order['id']}", f"{WC_PREFIX}/orders"),
        }

    # -- orders: HTTP -------------------------------------------------------------------------------
    def _list_orders(self, req: SandboxRequest) -> SandboxResponse:
        items = list(self._orders.values())
        statuses = _list_arg(req, "status") or ["any"]
        for s in statuses:
            if s not in ORDER_STATUSES + ("any",):
                raise _invalid_param("status", f"status[0] is not one of any, {', '.join(ORDER_STATUSES)}.")
        if "any" in statuses:
            items = [o for o in items if o["status"] != "trash"]
        else:
            items = [o for o in items if o["status"] in statuses]
        if (include := _ids_arg(req, "include")) is not None:
            items = [o for o in items if o["id"] in set(include)]
        if (exclude := _ids_arg(req, "exclude")) is not None:
            items = [o for o in items if o["id"] not in set(exclude)]
        if (product := req.arg("product")) is not None and product.isdigit():
            items = [o for o in items if any(li["product_id"] == int(product) for li in o["line_items"])]
        if search := req.arg("search"):
            # Order search looks at addresses, e-mail and item names, not at arbitrary meta.
            def haystack(o: dict[str, Any]) -> str:
                parts = list(o["billing"].values()) + list(o["shipping"].values())
                parts += [li["name"] for li in o["line_items"]]
                return " ".join(parts).lower()

            items = [o for o in items if search.lower() in haystack(o)]
        items = self._date_filters(req, items)
        items = self._sort(req, items, ORDERBY, title_key="number")
        return self._collection(req, items, self._render_order)

    def _post_order(self, req: SandboxRequest) -> SandboxResponse:
        order = self._create_order(self._body(req))
        # [CRUD create_item]: 201 + Location.
        return self._single(req, order, 201, {"Location": f"{self.url}{WC_PREFIX}/orders/{order['id']}"})

    def _get_order(self, req: SandboxRequest, order_id: int) -> SandboxResponse:
        return self._single(req, self._render_order(self._order_or_404(order_id)))

    def _put_order(self, req: SandboxRequest, order_id: int) -> SandboxResponse:
        return self._single(req, self._update_order(order_id, self._body(req)))

    def _delete_order_rec(self, order_id: int, force: bool) -> dict[str, Any]:
        order = self._order_or_404(order_id)
        if force:
            payload = self._render_order(order)
            del self._orders[order_id]
            return payload
        if order["status"] == "trash":
            raise RestError(410, "woocommerce_rest_already_trashed", "The order has already been deleted.")
        order["status"] = "trash"
        order["date_modified"] = self.now()
        return self._render_order(order)

    def _delete_order(self, req: SandboxRequest, order_id: int) -> SandboxResponse:
        return self._single(req, self._delete_order_rec(order_id, _truthy(req.arg("force", "false"))))

    def _batch_orders(self, req: SandboxRequest) -> SandboxResponse:
        return self._batch(
            req,
            lambda item: self._create_order(item),
            lambda item: self._update_order(int(item.get("id") or 0), item),
            lambda i: self._delete_order_rec(i, True),
        )

    def _list_notes(self, req: SandboxRequest, order_id: int) -> SandboxResponse:
        self._order_or_404(order_id)
        notes = [self._render_note(order_id, n) for n in self._notes.get(order_id, [])]
        return SandboxResponse(200, notes)

    def _post_note(self, req: SandboxRequest, order_id: int) -> SandboxResponse:
        order = self._order_or_404(order_id)
        body = self._body(req)
        if not body.get("note"):
            raise RestError(400, "rest_missing_callback_param", "Missing parameter(s): note", params=["note"])
        author = "WooCommerce" if not _truthy(body.get("added_by_user", False)) else "admin"
        note = self._add_note(
            order, str(body["note"]), customer_note=_truthy(body.get("customer_note", False)), author=author
        )
        return SandboxResponse(201, self._render_note(order_id, note))

    # -- shipment tracking ------------------------------------------------------------------------------
    def _tracking_items(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        meta = next((m for m in order["meta_data"] if m["key"] == "_wc_shipment_tracking_items"), None)
        return meta["value"] if meta and isinstance(meta["value"], list) else []

    def _add_tracking_item(self, order: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        items = copy.deepcopy(self._tracking_items(order))
        item = {**item, "tracking_id": secrets.token_hex(16)}
        items.append(item)
        self._meta_update(order["meta_data"], [{"key": "_wc_shipment_tracking_items", "value": items}])
        order["date_modified"] = self.now()
        return self._render_tracking(order["id"], item)

    def _render_tracking(self, order_id: int, item: dict[str, Any]) -> dict[str, Any]:
        provider = item.get("custom_tracking_provider") or item.get("tracking_provider") or ""
        link = item.get("custom_tracking_link") or ""
        if not link and item.get("tracking_provider"):
            for providers in TRACKING_PROVIDERS.values():
                if item["tracking_provider"] in providers:
                    link = providers[item["tracking_provider"]].replace("%1$s", item["tracking_number"])
        shipped = item.get("date_shipped")
        date_shipped = datetime.fromtimestamp(int(shipped), UTC).date().isoformat() if shipped else ""
        base = f"/wp-json/wc-shipment-tracking/v3/orders/{order_id}/shipment-trackings"
        return {
            "tracking_id": item["tracking_id"],
            "tracking_provider": provider,
            "tracking_link": link,
            "tracking_number": item["tracking_number"],
            "date_shipped": date_shipped,
            "_links": self._links(f"{base}/{item['tracking_id']}", base, f"{WC_PREFIX}/orders/{order_id}"),
        }

    def _tracking_order(self, order_id: int) -> dict[str, Any]:
        order = self._orders.get(order_id)
        if order is None:
            raise RestError(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
        return order

    def _list_trackings(self, req: SandboxRequest, order_id: int) -> SandboxResponse:
        order = self._tracking_order(order_id)
        return SandboxResponse(200, [self._render_tracking(order_id, i) for i in self._tracking_items(order)])

    def _post_tracking(self, req: SandboxRequest, order_id: int) -> SandboxResponse:
        order = self._tracking_order(order_id)
        body = self._body(req)
        if not body.get("tracking_number"):
            raise RestError(
                400, "rest_missing_callback_param", "Missing parameter(s): tracking_number", params=["tracking_number"]
            )
        shipped = body.get("date_shipped")
        try:
            when = datetime.fromisoformat(str(shipped)).replace(tzinfo=UTC) if shipped else self.now()
        except ValueError:
            when = self.now()
        rendered = self._add_tracking_item(
            order,
            {
                "tracking_number": str(body["tracking_number"]),
                "tracking_provider": str(body.get("tracking_provider") or ""),
                "custom_tracking_provider": str(body.get("custom_tracking_provider") or ""),
                "custom_tracking_link": str(body.get("custom_tracking_link") or ""),
                "date_shipped": int(when.timestamp()),
            },
        )
        return SandboxResponse(201, rendered, {"Location": f"{self.url}{rendered['_links']['self'][0]['href']}"})

    def _get_tracking(self, req: SandboxRequest, order_id: int, tracking_id: str) -> SandboxResponse:
        order = self._tracking_order(order_id)
        for item in self._tracking_items(order):
            if item["tracking_id"] == tracking_id:
                return SandboxResponse(200, self._render_tracking(order_id, item))
        raise RestError(404, "woocommerce_rest_invalid_tracking_id", "Invalid tracking ID.")

    def _delete_tracking(self, req: SandboxRequest, order_id: int, tracking_id: str) -> SandboxResponse:
        order = self._tracking_order(order_id)
        items = self._tracking_items(order)
        for item in items:
            if item["tracking_id"] == tracking_id:
                rendered = self._render_tracking(order_id, item)
                rest = [i for i in items if i is not item]
                self._meta_update(order["meta_data"], [{"key": "_wc_shipment_tracking_items", "value": rest}])
                order["date_modified"] = self.now()
                return SandboxResponse(200, rendered)
        raise RestError(404, "woocommerce_rest_invalid_tracking_id", "Invalid tracking ID.")

    def _get_providers(self, req: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(200, copy.deepcopy(TRACKING_PROVIDERS))
