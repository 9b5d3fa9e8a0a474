"""The WooCommerce connector: a vendor's store through the REST API `wc/v3`.

Facts about the platform come from ../shared/platforms/woocommerce.md (the "fact
sheet"); its source keys ([DOCS-intro], [CRUD], [STOCK]...) are cited where a quirk
shapes the code. In short:

- HTTP basic auth with the consumer key/secret over HTTPS [DOCS-auth]; a descriptive
  User-Agent, because hosts' firewalls block the default ones of HTTP libraries [PY-issues];
- lists page with `page`/`per_page` (100 at most) and an RFC 5988 `Link` header [DOCS-intro];
- incremental reads use `modified_after` + `dates_are_gmt=true`, an exclusive bound, which
  stores older than the filter silently ignore [CRUD] [ISS-30585]: the connector asks the
  route index once and filters by `date_modified_gmt` itself in any case;
- stock writes go through the `batch` endpoints, 100 items a request [RESTCTL];
- orders carry vsc's marker in `meta_data` (there is no idempotency key) and are created
  with `set_paid` so WooCommerce reduces stock itself [ORD3] [ISS-14988];
- tracking is not in core: the Shipment Tracking extension's endpoint, else the
  `_wc_shipment_tracking_items` order meta both tracking plugins write [ST-docs] [AST].

The `parse_*` functions turn payloads into records and are pure: they take the dicts
the API returns and raise `PayloadError` on what they cannot read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from vsc import USER_AGENT
from vsc.connectors.base import (
    Address,
    Connector,
    Fulfillment,
    Image,
    LineItem,
    Order,
    OrderDraft,
    Product,
    ProductFilter,
    StockLevel,
    StoreInfo,
    TrackingInfo,
    Variant,
    VariantRef,
    pass_memo,
)
from vsc.connectors.http import Response, StoreSession
from vsc.errors import ApiError, AuthError, NotFound, PayloadError, Unsupported, UserErrors

log = logging.getLogger("vsc.woocommerce")

API = "/wp-json/wc/v3"
TRACKING_API = "/wp-json/wc-shipment-tracking/v3"
MARKER_KEY = "_vsc_marker"
MERCHANT_ORDER_KEY = "_vsc_merchant_order"
TAGS_KEY = "_vsc_tags"
TRACKING_META_KEY = "_wc_shipment_tracking_items"
# Keys of the stock moves vsc made on a product or variation, written in the same request as the
# stock: WooCommerce has no idempotency key, so this is how a retry knows a move was made.
MOVES_KEY = "_vsc_moves"
MOVES_KEPT = 50  # the most recent only: a move is retried within a pass or two, never months later
STOCK_FIELDS = "id,manage_stock,stock_quantity,date_modified,date_modified_gmt"
# What `parse_product` and `parse_variation` read, asked for with `_fields` [RESTCTL
# get_fields_for_response]: a product or variation payload is mostly what vsc never reads
# (`_links`, `meta_data`, dimensions, downloads, permalinks; ~1.7 kB a variation in the sandbox,
# more on real stores), and a catalog read of a variable product fetches every variation. A
# store that ignored `_fields` would send everything, which parses the same.
PRODUCT_FIELDS = (
    "id,name,type,status,description,slug,sku,price,regular_price,sale_price,on_sale,global_unique_id,"
    "manage_stock,stock_quantity,date_modified,date_modified_gmt,attributes,variations,categories,tags,images"
)
VARIATION_FIELDS = (
    "id,sku,price,regular_price,sale_price,on_sale,global_unique_id,attributes,manage_stock,stock_quantity,"
    "date_modified,date_modified_gmt"
)
PAGE_SIZE = 100  # the most `per_page` allows [CRUD get_collection_params]
BATCH_SIZE = 100  # woocommerce_rest_batch_items_limit default [RESTCTL check_batch_limit]

# publish→active; the rest are not for sale. `trash` shows only when asked for.
STATUS_MAP = {
    "publish": "active",
    "draft": "draft",
    "pending": "draft",
    "private": "draft",
    "future": "draft",
    "trash": "archived",
}


# -- parsing ------------------------------------------------------------------------------------
def _need_dict(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise PayloadError(
            f"WooCommerce sent {type(payload).__name__} where {what} (an object) was expected", platform="woocommerce"
        )
    return payload


def _need_id(payload: Mapping[str, Any], what: str, key: str = "id") -> str:
    value = payload.get(key)
    if isinstance(value, bool) or value in (None, "", 0):
        raise PayloadError(f"WooCommerce sent {what} without an {key!r}", platform="woocommerce")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def parse_datetime(value: Any) -> datetime | None:
    """A WooCommerce date as aware UTC.

    Use it on the `*_gmt` fields: they are UTC written without a zone suffix
    ("2017-03-23T20:01:14") [DOCS-products]. A value with a zone is converted.
    """
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise PayloadError(f"WooCommerce sent the date {value!r}, which is not a string", platform="woocommerce")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"WooCommerce sent an unreadable date {value!r}", platform="woocommerce") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _gmt(payload: Mapping[str, Any], field: str) -> datetime | None:
    """`field_gmt` when present; a store that only sends the local twin gets it read as UTC."""
    gmt = payload.get(f"{field}_gmt")
    return parse_datetime(gmt if gmt not in (None, "") else payload.get(field))


def parse_money(value: Any) -> Decimal | None:
    """Money as Decimal: WooCommerce sends strings ("21.99"), "" when blank [DOCS-intro]."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise PayloadError(f"WooCommerce sent the amount {value!r}", platform="woocommerce")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise PayloadError(f"WooCommerce sent an unreadable amount {value!r}", platform="woocommerce")
    return amount


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _moves(payload: Mapping[str, Any]) -> list[str]:
    """The stock move keys vsc recorded on an item (`_vsc_moves` meta; [] when none)."""
    for meta in payload.get("meta_data") or []:
        if isinstance(meta, dict) and meta.get("key") == MOVES_KEY:
            value = meta.get("value")
            return [str(k) for k in value] if isinstance(value, list) else []
    return []


def _available(payload: Mapping[str, Any]) -> int | None:
    """Stock that WooCommerce counts, or None when it does not (`manage_stock: false`).

    A variation may say `manage_stock: "parent"`: its stock is the parent's, which WooCommerce
    reports in `stock_quantity` [STOCK get_stock_managed_by_id]. Negative stock is kept.
    """
    manage = payload.get("manage_stock")
    if manage in (False, None, "", "no", 0):
        return None
    qty = payload.get("stock_quantity")
    if qty is None or qty == "":
        return 0
    try:
        return int(Decimal(str(qty)))
    except InvalidOperation:
        raise PayloadError(f"WooCommerce sent the stock quantity {qty!r}", platform="woocommerce") from None


def variation_attribute_names(product: Mapping[str, Any]) -> tuple[str, ...]:
    """The names of the attributes a product's variations vary by, in the product's order."""
    attrs = product.get("attributes") or []
    if not isinstance(attrs, list):
        raise PayloadError("WooCommerce sent product attributes that are not a list", platform="woocommerce")
    chosen = [(i, a) for i, a in enumerate(attrs) if isinstance(a, dict) and a.get("variation") and a.get("name")]
    chosen.sort(key=lambda pair: (int(pair[1].get("position") or 0), pair[0]))
    return tuple(str(a["name"]) for _, a in chosen)


def _prices(payload: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None]:
    """(price, compare-at): on sale, the sale price with the regular price as compare-at."""
    regular = parse_money(payload.get("regular_price"))
    sale = parse_money(payload.get("sale_price"))
    current = parse_money(payload.get("price"))
    if payload.get("on_sale") and sale is not None:
        return sale, regular
    return (current if current is not None else regular), None


def parse_variation(variation: Mapping[str, Any], option_names: Sequence[str], position: int = 0) -> Variant:
    """A variation as a `Variant`; `options` pairs each of the product's variation attributes
    with this variation's value ("Any <name>" when the variation accepts any value)."""
    variation = _need_dict(variation, "a product variation")
    values: dict[str, str] = {}
    for attr in variation.get("attributes") or []:
        if isinstance(attr, dict) and attr.get("name") is not None:
            values[str(attr["name"]).lower()] = str(attr.get("option") or "")
    options = tuple((name, values.get(name.lower()) or f"Any {name}") for name in option_names)
    price, compare_at = _prices(variation)
    return Variant(
        id=_need_id(variation, "a product variation"),
        sku=_text(variation.get("sku")),
        price=price,
        compare_at_price=compare_at,
        barcode=_text(variation.get("global_unique_id")),
        options=options,
        available=_available(variation),
        title=" / ".join(v for _, v in options) or None,
        position=position,
        updated_at=_gmt(variation, "date_modified"),
    )


def parse_product(product: Mapping[str, Any], variations: Sequence[Mapping[str, Any]] | None = None) -> Product:
    """A product payload (and, for a variable product, its variations) as a `Product`.

    A simple product is its own single variant (`variant_id == product_id`). Variations are
    ordered as the product's `variations` id list orders them (menu order, then id).
    """
    product = _need_dict(product, "a product")
    product_id = _need_id(product, "a product")
    name = product.get("name")
    if not isinstance(name, str):
        raise PayloadError(f"WooCommerce sent product {product_id} without a name", platform="woocommerce")
    kind = product.get("type") or "simple"
    option_names = variation_attribute_names(product) if kind == "variable" else ()
    variants: list[Variant] = []
    if kind == "variable":
        order = {str(v): n for n, v in enumerate(product.get("variations") or [])}
        rows = sorted(
            (_need_dict(v, "a product variation") for v in variations or ()),
            key=lambda v: (order.get(str(v.get("id")), len(order)), str(v.get("id"))),
        )
        variants = [parse_variation(v, option_names, n) for n, v in enumerate(rows)]
    elif kind != "grouped":  # a grouped product sells other products, not itself
        price, compare_at = _prices(product)
        variants = [
            Variant(
                id=product_id,
                sku=_text(product.get("sku")),
                price=price,
                compare_at_price=compare_at,
                barcode=_text(product.get("global_unique_id")),
                available=_available(product),
                updated_at=_gmt(product, "date_modified"),
            )
        ]
    terms = [c for c in product.get("categories") or [] if isinstance(c, dict) and c.get("name")]
    categories = tuple(str(c["name"]) for c in terms)
    return Product(
        id=product_id,
        title=name,
        description_html=str(product.get("description") or ""),
        product_type=categories[0] if categories else None,
        tags=tuple(str(t["name"]) for t in product.get("tags") or [] if isinstance(t, dict) and t.get("name")),
        status=STATUS_MAP.get(str(product.get("status") or "publish"), "draft"),
        options=option_names,
        variants=tuple(variants),
        images=tuple(
            Image(src=str(i["src"]), alt=_text(i.get("alt")))
            for i in product.get("images") or []
            if isinstance(i, dict) and i.get("src")
        ),
        handle=_text(product.get("slug")),
        updated_at=_gmt(product, "date_modified"),
        collections=categories,
        collection_ids=tuple(str(c.get("id") or "") for c in terms),
    )


def _meta(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    meta = payload.get("meta_data") or []
    return [m for m in meta if isinstance(m, dict) and "key" in m] if isinstance(meta, list) else []


def _meta_value(payload: Mapping[str, Any], key: str) -> Any:
    return next((m.get("value") for m in _meta(payload) if m["key"] == key), None)


def parse_line_item(item: Mapping[str, Any]) -> LineItem:
    """An order line. `variant_id` is the variation id, or the product id of a simple product."""
    item = _need_dict(item, "an order line item")
    product_id = item.get("product_id")
    variation_id = item.get("variation_id")
    variant = variation_id if variation_id not in (None, 0, "0", "") else product_id
    quantity = item.get("quantity") or 0
    try:
        quantity = int(quantity)
    except (TypeError, ValueError):
        raise PayloadError(f"WooCommerce sent the line quantity {quantity!r}", platform="woocommerce") from None
    # `price` is a number (total / quantity) [DOCS-orders]; the subtotal gives the pre-discount price.
    subtotal = parse_money(item.get("subtotal"))
    if subtotal is not None and quantity:
        unit = subtotal / quantity
    else:
        unit = parse_money(item.get("price"))
    return LineItem(
        id=_need_id(item, "an order line item"),
        variant_id=str(variant) if variant not in (None, 0, "") else None,
        product_id=str(product_id) if product_id not in (None, 0, "") else None,
        sku=_text(item.get("sku")),
        title=_text(item.get("name")),
        quantity=quantity,
        unit_price=unit,
    )


def _address(payload: Any, phone: str | None = None) -> Address | None:
    if not isinstance(payload, dict) or not any(payload.get(k) for k in ("address_1", "city", "last_name")):
        return None
    return Address(
        first_name=_text(payload.get("first_name")),
        last_name=_text(payload.get("last_name")),
        company=_text(payload.get("company")),
        address1=_text(payload.get("address_1")),
        address2=_text(payload.get("address_2")),
        city=_text(payload.get("city")),
        province_code=_text(payload.get("state")),
        country_code=_text(payload.get("country")),
        zip=_text(payload.get("postcode")),
        phone=_text(payload.get("phone")) or phone,
    )


def parse_order(payload: Mapping[str, Any]) -> Order:
    """An order payload as an `Order`. The marker is the `_vsc_marker` meta, when present."""
    payload = _need_dict(payload, "an order")
    order_id = _need_id(payload, "an order")
    status = str(payload.get("status") or "pending")
    billing = payload.get("billing") if isinstance(payload.get("billing"), dict) else {}
    paid = _gmt(payload, "date_paid")
    if status == "refunded":
        financial = "refunded"
    elif paid is not None or status in ("processing", "completed"):
        financial = "paid"
    else:
        financial = "pending"
    fulfillment = {"completed": "fulfilled", "cancelled": "cancelled"}.get(status, "unfulfilled")
    metafields = []
    for m in _meta(payload):
        value = m.get("value")
        metafields.append((str(m["key"]), value if isinstance(value, str) else json.dumps(value)))
    marker = _meta_value(payload, MARKER_KEY)
    tags = _meta_value(payload, TAGS_KEY)
    lines = payload.get("line_items") or []
    if not isinstance(lines, list):
        raise PayloadError(
            f"WooCommerce sent order {order_id} with line_items that are not a list", platform="woocommerce"
        )
    updated = _gmt(payload, "date_modified")
    return Order(
        id=order_id,
        name=f"#{payload.get('number') or order_id}",
        created_at=_gmt(payload, "date_created"),
        updated_at=updated,
        # WooCommerce keeps no cancellation date; the last change is the closest it says.
        cancelled_at=updated if status == "cancelled" else None,
        financial_status=financial,
        fulfillment_status=fulfillment,
        currency=_text(payload.get("currency")),
        email=_text(billing.get("email")),
        phone=_text(billing.get("phone")),
        note=_text(payload.get("customer_note")),
        tags=tuple(t.strip() for t in tags.split(",") if t.strip()) if isinstance(tags, str) else (),
        customer_first_name=_text(billing.get("first_name")),
        customer_last_name=_text(billing.get("last_name")),
        shipping_address=_address(payload.get("shipping")),
        line_items=tuple(parse_line_item(li) for li in lines),
        metafields=tuple(metafields),
        marker=str(marker) if marker not in (None, "") else None,
    )


def _shipped_at(value: Any) -> datetime | None:
    """`date_shipped`: YYYY-MM-DD from the extension, a unix time in the meta, or the site's own
    `date_format` from Advanced Shipment Tracking [AST] — read leniently, None when unreadable."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        return datetime.fromtimestamp(int(value), UTC)
    if isinstance(value, str):
        try:
            return datetime.combine(date.fromisoformat(value.strip()[:10]), datetime.min.time(), UTC)
        except ValueError:
            return None
    return None


def parse_tracking_items(items: Any, order_id: str) -> list[Fulfillment]:
    """Tracking items — from the extension's endpoint or from `_wc_shipment_tracking_items` —
    as one `Fulfillment` each. WooCommerce does not say which lines a tracking number covers,
    so `lines` is empty: the whole order, as far as the platform tells."""
    if items in (None, ""):
        return []
    if isinstance(items, str):  # a serialized value some hosts return as text
        try:
            items = json.loads(items)
        except ValueError:
            raise PayloadError(
                f"WooCommerce sent unreadable tracking items for order {order_id}", platform="woocommerce"
            ) from None
    if isinstance(items, dict):
        items = list(items.values())
    if not isinstance(items, list):
        raise PayloadError(
            f"WooCommerce sent tracking items for order {order_id} that are not a list", platform="woocommerce"
        )
    out = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("tracking_number"):
            continue
        company = _text(item.get("custom_tracking_provider")) or _text(item.get("tracking_provider"))
        url = _text(item.get("tracking_link")) or _text(item.get("custom_tracking_link"))
        shipped = _shipped_at(item.get("date_shipped"))
        out.append(
            Fulfillment(
                id=str(item.get("tracking_id") or f"{order_id}:{n}"),
                order_id=order_id,
                tracking=(TrackingInfo(number=str(item["tracking_number"]), company=company, url=url),),
                created_at=shipped,
                updated_at=shipped,
            )
        )
    return out


# -- the connector ---------------------------------------------------------------------------------
class WooCommerceConnector(Connector):
    """A vendor's WooCommerce store.

    Build one with `WooCommerceConnector.open(name, url, key, secret)`, or pass a ready
    `StoreSession` whose auth is the consumer key and secret.
    """

    platform: ClassVar[str] = "woocommerce"
    stock_batch_size: ClassVar[int] = BATCH_SIZE
    # REST order creation never checks stock: with set_paid it reduces stock below zero [STOCK].
    refuses_oversold_orders = False
    # Stock is reduced when the order is paid (set_paid / a paid status), not before [STOCK].
    reduces_stock_unpaid = False
    can_cancel_orders: ClassVar[bool] = True
    can_update_orders: ClassVar[bool] = True
    collections_name: ClassVar[str | None] = "categories"
    # vsc publishes a product's first category as its product type
    has_product_types: ClassVar[bool] = True
    #: how far back `find_order` looks for a marker (a crash is resolved on the next pass)
    marker_lookback: ClassVar[timedelta] = timedelta(days=14)

    def __init__(self, name: str, session: StoreSession) -> None:
        super().__init__(name, session)
        self._modified_after: bool | None = None  # does the store honour `modified_after`?
        self._tracking_extension: bool | None = None  # is the Shipment Tracking extension there?

    @classmethod
    def open(cls, name: str, url: str, key: str, secret: str, **session_kw: Any) -> WooCommerceConnector:
        """A connector for the store at `url` with a Read/Write consumer key and secret.

        HTTP basic auth, which WooCommerce accepts over HTTPS [DOCS-auth] (plain http:// is
        refused by `StoreSession` except on loopback, where the sandbox stores run).
        """
        headers = dict(session_kw.pop("headers", None) or {})
        # Hosts' firewalls block library User-Agents such as WooCommerce-Python-REST-API [PY-issues].
        headers.setdefault("User-Agent", f"{USER_AGENT} woocommerce-rest-v3 connector")
        session = StoreSession(name, cls.platform, url, auth=(key, secret), headers=headers, **session_kw)
        return cls(name, session)

    # -- HTTP and errors ---------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        ok: Iterable[int] = (),
        safe: bool | None = None,
    ) -> Response:
        """Send one request; 2xx (and the statuses in `ok`) come back, the rest become errors.

        `safe=True` marks a write that cannot apply twice (an absolute stock level, a status, a
        field set to a value), which the session may then retry after a 5xx or a timeout.
        """
        response = self.session.request(method, path, params=params, json=json_body, safe=safe)
        if response.status_code < 300 or response.status_code in set(ok):
            return response
        raise self._error(response, method, path)

    def _error(self, response: Response, method: str, path: str) -> ApiError:
        """`{code, message, data: {status}}` [DOCS-intro] as vsc's typed errors, with the store's words."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        where = f"{method} {urlsplit(self.session.url(path)).path}"
        said = f"{code}: {message}" if code else (message or f"HTTP {status} (not a WooCommerce answer)")
        text = f"{self.name}: WooCommerce answered {status} to {where} ({said})"
        kw = {"store": self.name, "platform": self.platform, "status": status, "code": code, "body": body}
        if status in (401, 403):
            hint = (
                "Check the consumer key and secret (WooCommerce > Settings > Advanced > REST API); "
                "the key needs Read/Write permission."
            )
            if code is None:
                hint = (
                    "A firewall or the host refused the request before WooCommerce saw it; ask the host to "
                    "allow REST API calls to /wp-json/."
                )
            return AuthError(text, hint=hint, **kw)
        if status == 404 or (code or "").endswith("_invalid_id"):
            # Update of an unknown id is 400 `woocommerce_rest_<type>_invalid_id` [CRUD update_item].
            hint = None
            if code == "rest_no_route" or code is None:
                hint = (
                    "Is WooCommerce active, with pretty permalinks on (Settings > Permalinks)? "
                    "The REST API is not reachable at /wp-json/wc/v3."
                )
            return NotFound(text, hint=hint, **kw)
        if status == 400 and method != "GET":
            data = body.get("data") if isinstance(body, dict) else None
            params = data.get("params") if isinstance(data, dict) else None
            errors = (
                [{"field": k, "message": str(v), "code": code} for k, v in params.items()]
                if isinstance(params, dict)
                else [{"field": None, "message": message or text, "code": code}]
            )
            return UserErrors(text, errors=errors, **kw)
        return ApiError(text, **kw)

    def _json(self, response: Response) -> Any:
        try:
            return response.json()
        except ValueError:
            snippet = response.text[:120].replace("\n", " ")
            raise PayloadError(
                f"{self.name}: WooCommerce answered {response.request.method} {urlsplit(response.url).path} with "
                f"something that is not JSON ({snippet!r})",
                store=self.name,
                platform=self.platform,
                status=response.status_code,
            ) from None

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Every page of a collection, `per_page=100`, following the `Link: rel="next"` header.

        Only the page number is taken from the link: a site whose own URL differs from the one
        vsc was given (http vs https, www) must not receive the credentials elsewhere.
        """
        query = {"per_page": PAGE_SIZE, **params, "page": 1}
        while True:
            response = self._request("GET", path, params=query)
            page = self._json(response)
            if not isinstance(page, list):
                raise PayloadError(
                    f"{self.name}: WooCommerce sent {type(page).__name__} for the list {path}",
                    store=self.name,
                    platform=self.platform,
                )
            yield page
            nxt = response.links.get("next", {}).get("url")
            if not nxt or not page:
                return
            try:
                next_page = int(parse_qs(urlsplit(nxt).query).get("page", ["0"])[-1])
            except ValueError:
                next_page = 0
            if next_page <= query["page"]:
                return
            query["page"] = next_page

    # -- the store -----------------------------------------------------------------------------
    def check(self) -> StoreInfo:
        """One authenticated call (the store's currency), so bad keys show at once."""
        body = _need_dict(self._json(self._request("GET", f"{API}/data/currencies/current")), "a currency")
        return StoreInfo(
            name=self.name,
            url=self.session.base_url,
            currency=_text(body.get("code")),
            detail={"symbol": body.get("symbol"), "currency_name": body.get("name")},
        )

    def facts(self) -> dict[str, Any]:
        return {} if self._modified_after is None else {"modified_after": self._modified_after}

    def learn(self, facts: dict[str, Any]) -> None:
        if isinstance(facts.get("modified_after"), bool):
            self._modified_after = facts["modified_after"]

    def supports_modified_after(self) -> bool:
        """Whether the store honours `modified_after` (WC 5.8+, UNVERIFIED [ISS-30585]).

        Read once from the route index `GET /wp-json/wc/v3`, which lists each route's args.
        If the index cannot be read, assume yes: results are filtered by date anyway, and a
        store seen ignoring the filter is switched to client-side filtering.
        """
        if self._modified_after is None:
            try:
                index = self._json(self._request("GET", API))
                endpoints = index["routes"]["/wc/v3/products"]["endpoints"]
                self._modified_after = any(
                    "GET" in e.get("methods", []) and "modified_after" in (e.get("args") or {}) for e in endpoints
                )
            except (ApiError, KeyError, TypeError) as exc:
                log.debug("%s: route index unreadable (%s); trying modified_after", self.name, exc)
                self._modified_after = True
            if not self._modified_after:
                log.info(
                    "%s: this WooCommerce is too old for modified_after; reading everything and "
                    "filtering by date_modified_gmt",
                    self.name,
                )
        return self._modified_after

    def _since_params(self, since: datetime | None) -> tuple[dict[str, Any], datetime | None]:
        """(query args, floor) for a read of what changed at or after `since`.

        The server bound is exclusive and to the second [CRUD] (WP date_query), so ask for
        "after since−1 s" and keep `date_modified_gmt >= since` here.
        """
        if since is None:
            return {}, None
        floor = since.astimezone(UTC).replace(microsecond=0)
        if not self.supports_modified_after():
            return {}, floor
        after = (floor - timedelta(seconds=1)).replace(tzinfo=None).isoformat(timespec="seconds")
        return {"modified_after": after, "dates_are_gmt": "true"}, floor

    def _keep(self, payload: Mapping[str, Any], floor: datetime | None) -> bool:
        if floor is None:
            return True
        modified = _gmt(payload, "date_modified")
        if modified is None:
            return True
        if modified < floor - timedelta(seconds=1) and self._modified_after:
            log.info("%s: the store ignored modified_after; filtering by date from now on", self.name)
            self._modified_after = False
        return modified >= floor

    # -- catalog -------------------------------------------------------------------------------------
    def _variations(self, product: Mapping[str, Any]) -> list[dict[str, Any]]:
        if product.get("type") != "variable" or not product.get("variations"):
            return []
        out: list[dict[str, Any]] = []
        for page in self._pages(f"{API}/products/{product['id']}/variations", {"_fields": VARIATION_FIELDS}):
            out.extend(page)
        return out

    def _product(self, payload: Mapping[str, Any]) -> Product:
        return parse_product(payload, self._variations(payload))

    @pass_memo
    def list_products(self, since: datetime | None = None) -> Iterator[Product]:
        """Every product changed at or after `since` (all when None), with its variants.

        Ordered by id, which does not move while the list is paged. A variation's change saves
        its parent too, so the parent's `date_modified` covers its variations.
        """
        extra, floor = self._since_params(since)
        params = {"orderby": "id", "order": "asc", "_fields": PRODUCT_FIELDS, **extra}
        for page in self._pages(f"{API}/products", params):
            for payload in page:
                payload = _need_dict(payload, "a product")
                if self._keep(payload, floor):
                    product = self.parse_record(payload, lambda payload=payload: self._product(payload))
                    if product is not None:
                        yield product

    def list_products_matching(self, where: ProductFilter) -> Iterator[Product]:
        """`list_products`, with `status=publish` asked of the store when only active products
        are wanted; categories, tags and types are filtered by the caller (the REST filters for
        them take term ids, which would cost a lookup per name)."""
        if tuple(where.statuses) != ("active",):
            yield from self.list_products(where.since)
            return
        extra, floor = self._since_params(where.since)
        params = {"orderby": "id", "order": "asc", "status": "publish", "_fields": PRODUCT_FIELDS, **extra}
        for page in self._pages(f"{API}/products", params):
            for payload in page:
                payload = _need_dict(payload, "a product")
                if self._keep(payload, floor):
                    product = self.parse_record(payload, lambda payload=payload: self._product(payload))
                    if product is not None:
                        yield product

    def get_products(self, ids: Sequence[str]) -> dict[str, Product]:
        """The products with these ids, 100 a request with `include=`; missing ids are left out."""
        wanted = [str(i) for i in ids if str(i).isdigit()]
        out: dict[str, Product] = {}
        for start in range(0, len(wanted), PAGE_SIZE):
            chunk = wanted[start : start + PAGE_SIZE]
            query = {"include": ",".join(chunk), "orderby": "include", "_fields": PRODUCT_FIELDS}
            for page in self._pages(f"{API}/products", query):
                for payload in page:
                    payload = _need_dict(payload, "a product")
                    product = self.parse_record(payload, lambda payload=payload: self._product(payload))
                    if product is not None:
                        out[product.id] = product
        return out

    def list_deleted_product_ids(self, since: datetime) -> list[str] | None:
        """None: WooCommerce keeps no feed of deleted products.

        A product deleted for good simply stops being listed (and one moved to the trash
        leaves the default `status=any` list); neither shows up in `modified_after` reads.
        The engine therefore checks its linked products by id with `get_products`.
        """
        return None

    # -- stock -----------------------------------------------------------------------------------------
    def read_stock(self, refs: Iterable[VariantRef]) -> dict[VariantRef, StockLevel]:
        """Current stock of these variants: simple products 100 a request, variations per parent.

        `available` is None where WooCommerce does not count stock (`manage_stock: false`);
        negative stock is reported as it is. Refs that no longer exist are left out.
        """
        rows = self._stock_rows(refs, STOCK_FIELDS)
        return {ref: StockLevel(ref, _available(p), updated_at=_gmt(p, "date_modified")) for ref, p in rows.items()}

    def _stock_rows(self, refs: Iterable[VariantRef], fields: str) -> dict[VariantRef, dict[str, Any]]:
        """The `fields` of these products and variations, by ref (one `include` list per parent)."""
        refs = list(dict.fromkeys(refs))
        simple = [r for r in refs if r.variant_id == r.product_id]
        by_parent: dict[str, list[VariantRef]] = {}
        for r in refs:
            if r.variant_id != r.product_id:
                by_parent.setdefault(r.product_id, []).append(r)
        out: dict[VariantRef, dict[str, Any]] = {}

        def collect(path: str, group: list[VariantRef]) -> None:
            index = {r.variant_id: r for r in group}
            for start in range(0, len(group), PAGE_SIZE):
                chunk = [r.variant_id for r in group[start : start + PAGE_SIZE] if r.variant_id.isdigit()]
                if not chunk:
                    continue
                for page in self._pages(path, {"include": ",".join(chunk), "_fields": fields}):
                    for payload in page:
                        ref = index.get(_need_id(_need_dict(payload, "a stock row"), "a stock row"))
                        if ref is not None:
                            out[ref] = payload

        if simple:
            collect(f"{API}/products", simple)
        for parent, group in by_parent.items():
            try:
                collect(f"{API}/products/{parent}/variations", group)
            except NotFound:
                continue  # the parent product is gone, and its variations with it
        return out

    def changed_stock(self, since: datetime) -> dict[str, StockLevel]:
        """Stock that may have changed since `since`, by variant id.

        Two sources, because WooCommerce moves order stock with a direct postmeta UPDATE that
        leaves `date_modified` alone (WC_Product_Data_Store_CPT::update_product_stock): products
        saved since (admin edits) come with their stock; the items of orders changed since
        (sales, cancellations, refunds) are read again by id.
        """
        out: dict[str, StockLevel] = {}
        for product in self.list_products(since):
            for v in product.variants:
                ref = VariantRef(product.id, v.id)
                out[v.id] = StockLevel(ref, v.available, updated_at=v.updated_at or product.updated_at)
        refs = {
            VariantRef(line.product_id, line.variant_id)
            for order in self.list_orders(since)
            for line in order.line_items
            if line.product_id and line.variant_id and line.variant_id not in out
        }
        for ref, level in self.read_stock(refs).items():
            out[ref.variant_id] = level
        return out

    def _batch(self, path: str, updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST `{update: [...]}` to a batch endpoint, 100 items a request, and return every item's
        answer; failed items come back inline as `{id, error}` with HTTP 200 [RESTCTL batch_items]."""
        answers: list[dict[str, Any]] = []
        for start in range(0, len(updates), BATCH_SIZE):
            body = _need_dict(
                self._json(
                    self._request("POST", path, json_body={"update": updates[start : start + BATCH_SIZE]}, safe=True)
                ),
                "a batch answer",
            )
            answers.extend(a for a in body.get("update") or [] if isinstance(a, dict))
        return answers

    def _write_stock(
        self, levels: Sequence[tuple[VariantRef, int]], moves: Mapping[VariantRef, list[str]] | None = None
    ) -> dict[VariantRef, dict[str, Any]]:
        """Absolute stock writes through the batch endpoints; raises `UserErrors` for refused items
        after every batch has been sent (the others are applied: batch items stand alone).

        `moves`: the new `_vsc_moves` list of an item, saved by the same item update as its stock
        (WooCommerce applies `meta_data` and `stock_quantity` in one product save)."""
        by_path: dict[str, list[tuple[VariantRef, int]]] = {}
        for ref, qty in levels:
            path = (
                f"{API}/products/batch"
                if ref.variant_id == ref.product_id
                else f"{API}/products/{ref.product_id}/variations/batch"
            )
            by_path.setdefault(path, []).append((ref, int(qty)))
        errors: list[dict[str, Any]] = []
        results: dict[VariantRef, dict[str, Any]] = {}
        for path, items in by_path.items():
            index = {ref.variant_id: (ref, qty) for ref, qty in items}
            # manage_stock must be on for stock_quantity to be applied [DOCS-variations props].
            updates = [{"id": int(ref.variant_id), "manage_stock": True, "stock_quantity": qty} for ref, qty in items]
            for update, (ref, _) in zip(updates, items, strict=True):
                if moves and ref in moves:
                    update["meta_data"] = [{"key": MOVES_KEY, "value": moves[ref]}]
            try:
                answers = self._batch(path, updates)
            except NotFound as exc:  # the parent product of these variations is gone
                errors += [
                    {"field": f"{ref.product_id}/{ref.variant_id}", "message": exc.message, "code": exc.code}
                    for ref, _ in items
                ]
                continue
            for answer in answers:
                ref, qty = index.get(str(answer.get("id")), (None, None))
                if "error" in answer:
                    err = answer["error"] if isinstance(answer["error"], dict) else {}
                    field = f"{ref.product_id}/{ref.variant_id}" if ref else str(answer.get("id"))
                    errors.append(
                        {"field": field, "message": str(err.get("message") or "refused"), "code": err.get("code")}
                    )
                elif ref is not None:
                    results[ref] = answer
                    if _available(answer) != qty:
                        errors.append(
                            {
                                "field": f"{ref.product_id}/{ref.variant_id}",
                                "message": f"stock reads {answer.get('stock_quantity')!r} after setting {qty}",
                                "code": "vsc_stock_not_applied",
                            }
                        )
        if errors:
            raise UserErrors(
                f"{self.name}: WooCommerce refused {len(errors)} of {len(levels)} stock changes "
                f"(first: {errors[0]['field']}: {errors[0]['message']})",
                errors=errors,
                store=self.name,
                platform=self.platform,
                code=errors[0].get("code"),
            )
        return results

    def set_stock(self, levels: Sequence[tuple[VariantRef, int]], *, key: str) -> None:
        """Set absolute quantities through `products/batch` and `products/<id>/variations/batch`.

        Setting the same quantity twice is harmless, so `key` needs no platform support.
        An item WooCommerce refuses raises `UserErrors` listing each (`field` = "product/variant").
        """
        if levels:
            self._write_stock(levels)

    def adjust_stock(self, deltas: Sequence[tuple[VariantRef, int]], *, key: str) -> None:
        """Move quantities by deltas, once per `key`: read the current stock and the item's
        `_vsc_moves`, then write current + delta together with the key added to `_vsc_moves`.

        WooCommerce has no idempotency key, so the key travels in the item's own meta, saved by
        the same request as the stock: when vsc dies (or loses the answer) after WooCommerce
        applied a move, the retry reads the key back and moves nothing. Only the most recent
        `MOVES_KEPT` keys are kept on an item.

        The race: WooCommerce has no conditional write, so a sale landing between the read and
        the write is overwritten (the fact sheet: absolute set, not delta). The window is one
        round trip; the answer of the write is the store's state right after it, and it is
        checked to hold the value written. Variants whose stock is not counted are skipped.
        """
        totals: dict[VariantRef, int] = {}
        for ref, delta in deltas:
            totals[ref] = totals.get(ref, 0) + int(delta)
        rows = self._stock_rows(totals, f"{STOCK_FIELDS},meta_data")
        missing = [r for r in totals if r not in rows]
        if missing:
            raise NotFound(
                f"{self.name}: WooCommerce has no item {missing[0].product_id}/{missing[0].variant_id}",
                store=self.name,
                platform=self.platform,
            )
        levels: list[tuple[VariantRef, int]] = []
        moves: dict[VariantRef, list[str]] = {}
        for ref, d in totals.items():
            current, made = _available(rows[ref]), _moves(rows[ref])
            if current is None or not d:
                continue
            if key in made:
                log.info("%s: stock move %s on %s was made already", self.name, key, ref.variant_id)
                continue
            levels.append((ref, current + d))
            moves[ref] = [*made, key][-MOVES_KEPT:]
        if levels:
            self._write_stock(levels, moves)

    # -- orders ---------------------------------------------------------------------------------------
    @pass_memo
    def list_orders(self, since: datetime | None = None) -> Iterator[Order]:
        """Every order changed at or after `since` (all when None), any status but trash."""
        extra, floor = self._since_params(since)
        for page in self._pages(f"{API}/orders", {"orderby": "id", "order": "asc", **extra}):
            for payload in page:
                payload = _need_dict(payload, "an order")
                if self._keep(payload, floor):
                    yield parse_order(payload)

    def _order_payload(self, order_id: str) -> dict[str, Any] | None:
        if not str(order_id).isdigit():
            return None
        try:
            return _need_dict(self._json(self._request("GET", f"{API}/orders/{order_id}")), "an order")
        except NotFound:
            return None

    def get_order(self, order_id: str) -> Order | None:
        payload = self._order_payload(order_id)
        return parse_order(payload) if payload is not None else None

    @staticmethod
    def _address_body(address: Address | None) -> dict[str, str]:
        """An `Address` as a WooCommerce billing/shipping object (blank fields as "")."""
        if address is None:
            return {}
        body = {
            "first_name": address.first_name,
            "last_name": address.last_name,
            "company": address.company,
            "address_1": address.address1,
            "address_2": address.address2,
            "city": address.city,
            "state": address.province_code,
            "postcode": address.zip,
            "country": address.country_code,
        }
        if address.phone:
            # shipping.phone exists on newer stores only (UNVERIFIED [ORD2 schema]); billing.phone always.
            body["phone"] = address.phone
        return {k: v or "" for k, v in body.items()}

    def create_order(self, draft: OrderDraft) -> Order:
        """Create the vendor's copy of a merchant order.

        - vsc's marker goes in `meta_data` (`_vsc_marker`): WooCommerce has no idempotency key,
          so a lost response is resolved with `find_order` before anything is sent again;
        - `set_paid` per `draft.paid`: payment completes and WooCommerce reduces stock once
          (`_reduced_stock` on each line) [ORD3 save_object] [STOCK];
        - line `subtotal`/`total` are the draft's prices as strings, so the marketplace price
          holds rather than the catalog's [ORD2 prepare_line_items]; taxes are the store's.
        The store e-mails `billing.email` on payment unless the vendor turned that e-mail off [EMAIL].
        """
        lines = []
        for line in draft.lines:
            amount = format(line.unit_price * line.quantity, "f")
            item: dict[str, Any] = {
                "product_id": int(line.ref.product_id),
                "quantity": line.quantity,
                "subtotal": amount,
                "total": amount,
            }
            if line.ref.variant_id != line.ref.product_id:
                item["variation_id"] = int(line.ref.variant_id)
            lines.append(item)
        shipping = self._address_body(draft.shipping_address)
        billing = {
            **{k: v for k, v in shipping.items() if k != "phone"},
            "first_name": draft.customer_first_name or shipping.get("first_name", ""),
            "last_name": draft.customer_last_name or shipping.get("last_name", ""),
        }
        if draft.email:
            billing["email"] = draft.email
        phone = draft.phone or (draft.shipping_address.phone if draft.shipping_address else None)
        if phone:
            billing["phone"] = phone
        meta = [{"key": MARKER_KEY, "value": draft.marker}]
        if draft.merchant_order_name:
            meta.append({"key": MERCHANT_ORDER_KEY, "value": draft.merchant_order_name})
        if draft.tags:
            meta.append({"key": TAGS_KEY, "value": ", ".join(draft.tags)})
        body: dict[str, Any] = {
            "status": "pending",
            "set_paid": bool(draft.paid),
            "currency": draft.currency,
            "customer_id": 0,  # a guest order; a non-zero id must exist [ORD3 save_object]
            "customer_note": draft.note or "",
            "payment_method": "vsc",
            "payment_method_title": draft.channel_name,
            "billing": billing,
            "shipping": shipping,
            "line_items": lines,
            "meta_data": meta,
        }
        payload = self._json(self._request("POST", f"{API}/orders", json_body=body))
        order = parse_order(payload)
        if draft.paid:
            unreduced = [
                li["id"]
                for li in payload.get("line_items") or []
                if not any(m.get("key") == "_reduced_stock" for m in _meta(li))
            ]
            if unreduced:
                # Normal for items whose stock is not counted; otherwise see [ISS-51024].
                log.debug("%s: order %s lines %s carry no _reduced_stock", self.name, order.id, unreduced)
        return order

    def find_order(self, marker: str) -> Order | None:
        """The order carrying `marker`, or None.

        WooCommerce's `search=` does not look at meta, so this pages through the orders
        created in the last `marker_lookback` (newest first, id and meta only) and compares
        `_vsc_marker`. The orders list reads the database directly, with no search index to
        lag behind a write, so an order created just before a lost response is found.
        """
        cutoff = datetime.now(UTC) - self.marker_lookback
        params: dict[str, Any] = {
            "orderby": "date",
            "order": "desc",
            "after": cutoff.replace(tzinfo=None, microsecond=0).isoformat(),
            "dates_are_gmt": "true",
            "_fields": "id,date_created_gmt,meta_data",
        }
        for page in self._pages(f"{API}/orders", params):
            for payload in page:
                if not isinstance(payload, dict):
                    continue
                if str(_meta_value(payload, MARKER_KEY) or "") == marker:
                    return self.get_order(str(payload["id"]))
            created = [_gmt(p, "date_created") for p in page if isinstance(p, dict)]
            if created and all(c is not None and c < cutoff for c in created):
                return None  # a store that ignored `after` is now past the window
        return None

    def cancel_order(self, order_id: str, *, restock: bool = True) -> None:
        """Cancel: `status: cancelled`. WooCommerce gives back the stock the order had reduced
        (`_reduced_stock`) on its own [STOCK] [ISS-16154]; it cannot cancel without restocking."""
        if not restock:
            log.info("%s: WooCommerce restores reduced stock on every cancellation (order %s)", self.name, order_id)
        self._request("PUT", f"{API}/orders/{order_id}", json_body={"status": "cancelled"}, safe=True)

    def update_order(self, order_id: str, changes: dict[str, Any]) -> None:
        """Change an order's attributes. Keys: `email`, `phone` (billing), `note` (customer note),
        `shipping_address` (`Address`), `customer_first_name`/`customer_last_name`, `tags`
        (kept in `_vsc_tags` meta: WooCommerce orders have no tags), `metafields` (pairs or a
        mapping, written to `meta_data` by key). `accepts_marketing` has no WooCommerce field
        and is ignored. Posting addresses makes WooCommerce recompute taxes [ORD3].
        """
        body: dict[str, Any] = {}
        billing: dict[str, str] = {}
        meta: list[dict[str, Any]] = []
        for key, value in changes.items():
            if key == "email":
                billing["email"] = value or ""
            elif key == "phone":
                billing["phone"] = value or ""
            elif key == "customer_first_name":
                billing["first_name"] = value or ""
            elif key == "customer_last_name":
                billing["last_name"] = value or ""
            elif key == "note":
                body["customer_note"] = value or ""
            elif key == "shipping_address":
                body["shipping"] = (
                    self._address_body(value)
                    if value
                    else {
                        k: ""
                        for k in (
                            "first_name",
                            "last_name",
                            "company",
                            "address_1",
                            "address_2",
                            "city",
                            "state",
                            "postcode",
                            "country",
                        )
                    }
                )
            elif key == "tags":
                meta.append({"key": TAGS_KEY, "value": ", ".join(value or ())})
            elif key == "metafields":
                pairs = value.items() if isinstance(value, Mapping) else value
                meta.extend({"key": str(k), "value": v} for k, v in pairs)
            elif key == "accepts_marketing":
                continue
            else:
                raise Unsupported(self.platform, f"edit the order field {key!r}")
        if billing:
            body["billing"] = billing
        if meta:
            body["meta_data"] = meta
        if body:
            self._request("PUT", f"{API}/orders/{order_id}", json_body=body, safe=True)

    # -- tracking -------------------------------------------------------------------------------------
    def list_fulfillments(self, order_id: str) -> list[Fulfillment]:
        """What the vendor shipped for an order, newest knowledge first:

        1. the Shipment Tracking extension's endpoint, when installed [ST-docs];
        2. else the `_wc_shipment_tracking_items` order meta both tracking plugins write [AST];
        3. else, for a `completed` order, one fulfillment of every line without tracking
           (core WooCommerce knows no more). Otherwise `[]`.
        """
        items: list[Fulfillment] | None = None
        if self._tracking_extension is not False:
            response = self._request("GET", f"{TRACKING_API}/orders/{order_id}/shipment-trackings", ok=(404,))
            if response.status_code == 404:
                body = response.json() if "json" in response.headers.get("Content-Type", "") else None
                if isinstance(body, dict) and body.get("code") not in (None, "rest_no_route"):
                    raise NotFound(
                        f"{self.name}: WooCommerce has no order {order_id} ({body.get('message')})",
                        store=self.name,
                        platform=self.platform,
                        status=404,
                        code=body.get("code"),
                    )
                self._tracking_extension = False
            else:
                self._tracking_extension = True
                items = parse_tracking_items(self._json(response), str(order_id))
                if items:
                    return items
        payload = self._order_payload(order_id)
        if payload is None:
            raise NotFound(
                f"{self.name}: WooCommerce has no order {order_id}", store=self.name, platform=self.platform, status=404
            )
        if items is None:
            items = parse_tracking_items(_meta_value(payload, TRACKING_META_KEY), str(order_id))
            if items:
                return items
        if payload.get("status") == "completed":
            order = parse_order(payload)
            done = _gmt(payload, "date_completed") or order.updated_at
            return [
                Fulfillment(
                    id=f"{order.id}:completed",
                    order_id=order.id,
                    lines=tuple((li.id, li.quantity) for li in order.line_items),
                    created_at=done,
                    updated_at=done,
                )
            ]
        return []

    def add_tracking(self, order_id: str, tracking: TrackingInfo) -> Fulfillment:
        """Add a tracking number through the Shipment Tracking extension (a custom provider with
        its link). Raises `Unsupported` when the store does not have the extension."""
        if not tracking.number:
            raise ValueError("a tracking number is needed")
        body = {
            "tracking_number": tracking.number,
            "custom_tracking_provider": tracking.company or "",
            "custom_tracking_link": tracking.url or "",
        }
        response = self._request(
            "POST", f"{TRACKING_API}/orders/{order_id}/shipment-trackings", json_body=body, ok=(404,)
        )
        if response.status_code == 404:
            body404 = response.json() if "json" in response.headers.get("Content-Type", "") else None
            if isinstance(body404, dict) and body404.get("code") not in (None, "rest_no_route"):
                raise NotFound(
                    f"{self.name}: WooCommerce has no order {order_id}",
                    store=self.name,
                    platform=self.platform,
                    status=404,
                    code=body404.get("code"),
                )
            self._tracking_extension = False
            raise Unsupported(
                self.platform,
                "add tracking numbers without the Shipment Tracking extension",
                hint="Install the WooCommerce Shipment Tracking (or Advanced Shipment Tracking) plugin.",
            )
        self._tracking_extension = True
        return parse_tracking_items([self._json(response)], str(order_id))[0]
