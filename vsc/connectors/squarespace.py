"""The Squarespace connector: Commerce APIs (products v2, inventory, orders) over `StoreSession`.

Facts come from ../shared/platforms/squarespace.md (the "fact sheet"); the
bracketed keys in comments ([SQ-inv-adjust], [OAS-orders]...) are its sources.

What this platform can and cannot do, in short:

- read products (v2, cursor paging, `modifiedAfter`/`modifiedBefore` as a pair) and
  stock (inventory by variant id, 50 a call);
- write stock with adjustments (≤50 operations, each variant once, `Idempotency-Key`);
- import orders from a third-party channel (`externalOrderReference`, `Idempotency-Key`,
  `inventoryBehavior: DEDUCT`), read them back with their shipments;
- no deletion feed, no order cancel and no order edit: those raise `Unsupported`
  (or return None) and the engine falls back to asking the vendor.

The parsers (`parse_product`, `parse_order`, ...) are pure functions from payload
to records: they accept `null`, `[]`, missing and unknown keys alike and raise
`PayloadError` only when a payload cannot be read at all.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlsplit

from vsc.connectors.base import (
    Address,
    Connector,
    Fulfillment,
    Image,
    LineItem,
    Order,
    OrderDraft,
    Product,
    StockLevel,
    StoreInfo,
    TrackingInfo,
    Variant,
    VariantRef,
    pass_memo,
)
from vsc.connectors.http import Response, StoreSession
from vsc.errors import ApiError, AuthError, NotFound, PayloadError, RetriableError, Unsupported, UserErrors

API_URL = "https://api.squarespace.com"
PRODUCTS = "/v2/commerce/products"  # v2, not 2.0 [SQ-changelog]
INVENTORY = "/1.0/commerce/inventory"
ADJUSTMENTS = "/1.0/commerce/inventory/adjustments"
ORDERS = "/1.0/commerce/orders"
STORE_PAGES = "/1.0/commerce/store_pages"

MAX_IDS = 50  # specific products / inventory ids per call [OAS-products] [SQ-inv-specific]
MAX_ADJUST_OPS = 50  # operations per adjustments request [OAS-inventory]
CHANNEL_NAME_MAX = 30  # [OAS-orders CreateOrderRequest]
# Every payment state, so a pushed order is found whatever state Squarespace gives
# an imported order (the default filter leaves some out) [OAS-orders].
ALL_PAYMENT_STATES = "NOT_CHARGED,AUTHORIZED,PAID,REFUNDED,PENDING,FAILED,REFUND_PENDING,REFUND_FAILED,PARTIALLY_PAID"
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "HUF", "TWD", "UGX", "XAF", "XOF"})


# -- pacing -------------------------------------------------------------------------


class SquarespaceLimiter:
    """Paces one store's requests to Squarespace's limits: it makes callers wait, never fails.

    - 300 requests per minute per key, with a one-minute cool-down after a 429 [SQ-rate].
      A token bucket of `burst` tokens refilled at `(requests_per_minute - burst) / 60`
      per second never sends more than `requests_per_minute` in any 60 s window,
      which is what a sliding-window server counts.
    - 100 Create Order requests per hour per website with an API key [SQ-rate]
      [SQ-order-create], a separate budget kept as a log of the last hour's creates.
    - No Retry-After is documented, so after any 429 the next request waits out
      the full cool-down [SQ-rate] [SSSHARP].

    `clock` and `sleep` are injectable (tests use a fake clock). A limit of None
    disables that budget.
    """

    def __init__(
        self,
        requests_per_minute: int | None = 300,
        order_creates_per_hour: int | None = 100,
        *,
        burst: int = 20,
        cool_down: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.order_creates_per_hour = order_creates_per_hour
        self.burst = max(1, min(burst, requests_per_minute or burst))
        self.cool_down = cool_down
        self.clock = clock
        self.sleep = sleep
        self.waited = 0.0
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._stamp: float | None = None
        self._blocked_until = 0.0
        self._creates: deque[float] = deque()

    @property
    def rate(self) -> float:
        """Tokens per second."""
        if self.requests_per_minute is None:
            return float("inf")
        return max(self.requests_per_minute - self.burst, 1) / 60.0

    @staticmethod
    def is_order_create(method: str, url: str) -> bool:
        return method.upper() == "POST" and urlsplit(url).path.rstrip("/").endswith(ORDERS)

    def acquire(self, method: str, url: str, *, cost: float = 1.0) -> None:
        """Wait until a request may go out; the slot is reserved before sleeping, so
        concurrent callers queue in order instead of racing."""
        with self._lock:
            now = self.clock()
            start = max(now, self._blocked_until)
            if self.order_creates_per_hour is not None and self.is_order_create(method, url):
                while self._creates and self._creates[0] <= now - 3600.0:
                    self._creates.popleft()
                if len(self._creates) >= self.order_creates_per_hour:
                    # the slot frees an hour after the create it replaces
                    start = max(start, self._creates[-self.order_creates_per_hour] + 3600.0)
                self._creates.append(start)
            if self.requests_per_minute is not None:
                if self._stamp is None:
                    self._stamp = now
                self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                self._tokens -= 1.0
                if self._tokens < 0:
                    start = max(start, now + (-self._tokens) / self.rate)
            wait = start - now
        if wait > 0:
            self.waited += wait
            self.sleep(wait)

    def observe(self, response: Response) -> None:
        """After a 429 every request waits out the one-minute cool-down [SQ-rate]."""
        if response.status_code == 429:
            with self._lock:
                self._blocked_until = max(self._blocked_until, self.clock() + self.cool_down)
                self._tokens = min(self._tokens, 0.0)


# -- small readers --------------------------------------------------------------------


def _iso(dt: datetime) -> str:
    """UTC ISO 8601 with millis and Z, as the API prints and expects [SQ-orders-list]."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(value: Any, what: str = "timestamp") -> datetime | None:
    """`"2016-12-23T15:58:07.187Z"` → aware UTC datetime; None/"" → None."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise PayloadError(f"Squarespace sent a {what} that is not a string: {value!r}", platform="squarespace")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"Squarespace sent an unreadable {what}: {value!r}", platform="squarespace") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def parse_money(value: Any, what: str = "amount") -> Decimal | None:
    """`{"currency": "USD", "value": "12.95"}` → Decimal("12.95"); null → None.

    The value is a decimal string in real payloads; a number is accepted too (the
    published OpenAPI types it so) [SQ-orders-list] [OAS-orders].
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = value.get("value")
        if value is None:
            return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise PayloadError(f"Squarespace sent an unreadable {what}: {value!r}", platform="squarespace")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise PayloadError(f"Squarespace sent an unreadable {what}: {value!r}", platform="squarespace") from None
    if not amount.is_finite():
        raise PayloadError(f"Squarespace sent an unreadable {what}: {value!r}", platform="squarespace")
    return amount


def _currency(value: Any) -> str | None:
    if isinstance(value, Mapping):
        cur = value.get("currency")
        if isinstance(cur, str):
            return cur
        if isinstance(cur, Mapping) and isinstance(cur.get("currencyCode"), str):
            return cur["currencyCode"]  # the OpenAPI's generator shape [OAS-orders]
    return None


def _list(value: Any, what: str) -> list[Any]:
    """Empty arrays arrive as null or [] [SQ-errors]: both are empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(
            f"Squarespace sent {what} that is not a list: {type(value).__name__}", platform="squarespace"
        )
    return value


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"Squarespace sent {what} that is not an object: {value!r:.80}", platform="squarespace")
    return value


def _id(payload: Mapping[str, Any], key: str, what: str) -> str:
    value = payload.get(key)
    if value is None or value == "" or isinstance(value, bool | dict | list):
        raise PayloadError(f"Squarespace sent {what} without an {key}", platform="squarespace")
    return str(value)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise PayloadError(f"Squarespace sent a non-integer {what}: {value!r}", platform="squarespace")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PayloadError(f"Squarespace sent a non-integer {what}: {value!r}", platform="squarespace") from None


# -- parsers ----------------------------------------------------------------------------


def parse_variant(
    payload: Any, attribute_order: Sequence[str] = (), *, position: int = 0, updated_at: datetime | None = None
) -> Variant:
    """A v2 product variant → `Variant`.

    Options follow the product's `variantAttributes` order (attributes not listed
    there come after, in payload order). Price is `basePrice`, or `salePrice` when
    `onSale`, with `basePrice` then the compare-at price. `stock.unlimited` →
    `available=None` [OAS-products].
    """
    v = _obj(payload, "a variant")
    vid = _id(v, "id", "a variant")
    attrs = v.get("attributes") or {}
    if not isinstance(attrs, Mapping):
        raise PayloadError(f"Squarespace sent variant {vid} with unreadable attributes", platform="squarespace")
    names = [a for a in attribute_order if a in attrs] + [a for a in attrs if a not in attribute_order]
    options = tuple((str(a), str(attrs[a])) for a in names if attrs[a] is not None)
    pricing = v.get("pricing") or {}
    if not isinstance(pricing, Mapping):
        raise PayloadError(f"Squarespace sent variant {vid} with unreadable pricing", platform="squarespace")
    base = parse_money(pricing.get("basePrice"), f"basePrice of variant {vid}")
    sale = parse_money(pricing.get("salePrice"), f"salePrice of variant {vid}")
    if pricing.get("onSale") and sale is not None:
        price, compare_at = sale, base
    else:
        price, compare_at = base, None
    stock = v.get("stock")
    available: int | None
    if stock is None:
        available = None  # no stock object: not a stock-keeping variant (e.g. digital)
    else:
        stock = _obj(stock, f"the stock of variant {vid}")
        available = None if stock.get("unlimited") else _int(stock.get("quantity"), f"quantity of variant {vid}")
    return Variant(
        id=vid,
        sku=_str(v.get("sku")) or None,
        price=price,
        compare_at_price=compare_at,
        barcode=_str(v.get("gtin")) or None,
        options=options,
        available=available,
        inventory_item_id=vid,  # inventory items are keyed by variantId [SQ-inv-list]
        title=" / ".join(value for _, value in options) or None,
        position=position,
        updated_at=updated_at,
    )


def parse_product(payload: Any) -> Product:
    """A v2 Product → `Product`; `options` are its `variantAttributes`; visible → active, else draft."""
    p = _obj(payload, "a product")
    pid = _id(p, "id", "a product")
    attribute_order = [str(a) for a in _list(p.get("variantAttributes"), f"variantAttributes of {pid}")]
    updated = parse_time(p.get("modifiedOn"), f"modifiedOn of product {pid}")
    variants = tuple(
        parse_variant(v, attribute_order, position=i + 1, updated_at=updated)
        for i, v in enumerate(_list(p.get("variants"), f"variants of product {pid}"))
    )
    raw_images = [_obj(i, f"an image of product {pid}") for i in _list(p.get("images"), f"images of {pid}")]
    raw_images.sort(key=lambda i: i.get("orderIndex") if isinstance(i.get("orderIndex"), int) else 0)
    images = tuple(Image(src=str(i["url"]), alt=_str(i.get("altText"))) for i in raw_images if i.get("url"))
    currencies = {
        _currency((v.get("pricing") or {}).get("basePrice"))
        for v in _list(p.get("variants"), f"variants of product {pid}")
        if isinstance(v, Mapping) and isinstance(v.get("pricing"), Mapping)
    } - {None}
    return Product(
        id=pid,
        title=str(p.get("name") or ""),
        description_html=str(p.get("description") or ""),
        tags=tuple(str(t) for t in _list(p.get("tags"), f"tags of {pid}")),
        status="active" if p.get("isVisible") else "draft",
        options=tuple(attribute_order),
        variants=variants,
        images=images,
        handle=_str(p.get("urlSlug")),
        updated_at=updated,
        currency=currencies.pop() if len(currencies) == 1 else None,
    )


def inventory_values(payload: Any) -> tuple[str, int | None]:
    """(variant id, available) of an InventoryItem. `isUnlimited` → None: the `quantity` beside
    it is only the last known amount and must be ignored [SQ-inv-list] [OAS-inventory]."""
    item = _obj(payload, "an inventory item")
    vid = _id(item, "variantId", "an inventory item")
    if item.get("isUnlimited"):
        return vid, None
    quantity = item.get("quantity")
    # (a plain int is the common case: a pass reads every linked variant's, tens of thousands)
    return vid, quantity if type(quantity) is int else _int(quantity, f"quantity of {vid}")


def parse_inventory_item(payload: Any, product_id: str = "") -> StockLevel:
    """An InventoryItem → `StockLevel` (see `inventory_values`)."""
    vid, available = inventory_values(payload)
    return StockLevel(ref=VariantRef(product_id, vid), available=available, inventory_item_id=vid)


def parse_address(payload: Any) -> Address | None:
    """An order address (firstName, ..., countryCode, postalCode, phone) → `Address`."""
    if payload is None:
        return None
    a = _obj(payload, "an address")
    return Address(
        first_name=_str(a.get("firstName")),
        last_name=_str(a.get("lastName")),
        address1=_str(a.get("address1")),
        address2=_str(a.get("address2")),
        city=_str(a.get("city")),
        province_code=_str(a.get("state")),
        country_code=_str(a.get("countryCode")),
        zip=_str(a.get("postalCode")),
        phone=_str(a.get("phone")),
    )


def parse_line_item(payload: Any) -> LineItem:
    """An order line → `LineItem` (variantId may be null on pre-2019 and CUSTOM items) [OAS-orders]."""
    li = _obj(payload, "a line item")
    lid = _id(li, "id", "a line item")
    return LineItem(
        id=lid,
        variant_id=_str(li.get("variantId")),
        product_id=_str(li.get("productId")),
        sku=_str(li.get("sku")),
        title=_str(li.get("productName")),
        quantity=_int(li.get("quantity"), f"quantity of line {lid}"),
        unit_price=parse_money(li.get("unitPricePaid"), f"unitPricePaid of line {lid}"),
    )


_FULFILLMENT_STATUS = {"PENDING": "unfulfilled", "FULFILLED": "fulfilled", "CANCELED": "cancelled"}


def parse_order(payload: Any) -> Order:
    """An Order → `Order`. `marker` is `externalOrderReference` (vsc's reference to the
    merchant order); CANCELED orders have no cancel time, so `cancelled_at` is their
    `modifiedOn` (the closest the API tells) [SQ-orders-list]."""
    o = _obj(payload, "an order")
    oid = _id(o, "id", "an order")
    status = _str(o.get("fulfillmentStatus"))
    updated = parse_time(o.get("modifiedOn"), f"modifiedOn of order {oid}")
    shipping = parse_address(o.get("shippingAddress"))
    billing = parse_address(o.get("billingAddress"))
    person = billing or shipping
    notes = [
        str(n.get("content"))
        for n in _list(o.get("internalNotes"), f"internalNotes of {oid}")
        if isinstance(n, Mapping) and n.get("content")
    ]
    payment = _str(o.get("paymentState"))
    return Order(
        id=oid,
        name=_str(o.get("orderNumber")),
        created_at=parse_time(o.get("createdOn"), f"createdOn of order {oid}"),
        updated_at=updated,
        cancelled_at=updated if status == "CANCELED" else None,
        test=bool(o.get("testmode")),
        financial_status=payment.lower() if payment else None,
        fulfillment_status=_FULFILLMENT_STATUS.get(status or "", status.lower() if status else None),
        currency=_currency(o.get("grandTotal")) or _currency(o.get("subtotal")),
        email=_str(o.get("customerEmail")),
        phone=(shipping.phone if shipping else None) or (billing.phone if billing else None),
        note="\n".join(notes) or None,
        customer_first_name=person.first_name if person else None,
        customer_last_name=person.last_name if person else None,
        shipping_address=shipping,
        line_items=tuple(parse_line_item(li) for li in _list(o.get("lineItems"), f"lineItems of {oid}")),
        marker=_str(o.get("externalOrderReference")),
    )


def parse_fulfillments(payload: Any) -> list[Fulfillment]:
    """An order's `fulfillments[]` shipments → `Fulfillment`s [SQ-orders-list].

    Squarespace shipments have no id and are not tied to lines; they only ever get
    appended [SQ-fulfill], so their position is their id (`"{order id}:{index}"`).
    """
    o = _obj(payload, "an order")
    oid = _id(o, "id", "an order")
    result = []
    for i, raw in enumerate(_list(o.get("fulfillments"), f"fulfillments of {oid}")):
        s = _obj(raw, f"a shipment of order {oid}")
        shipped = parse_time(s.get("shipDate"), f"shipDate of order {oid}")
        tracking = TrackingInfo(
            number=_str(s.get("trackingNumber")),
            company=_str(s.get("carrierName")),
            url=_str(s.get("trackingUrl")),
        )
        result.append(
            Fulfillment(id=f"{oid}:{i}", order_id=oid, tracking=(tracking,), created_at=shipped, updated_at=shipped)
        )
    return result


def parse_page(payload: Any, items_key: str) -> tuple[list[Any], str | None]:
    """A list response → (items, next cursor or None) [SQ-orders-list] [SQ-inv-list]."""
    body = _obj(payload, "a list response")
    items = _list(body.get(items_key), items_key)
    pagination = body.get("pagination") or {}
    if not isinstance(pagination, Mapping):
        raise PayloadError("Squarespace sent unreadable pagination", platform="squarespace")
    cursor = pagination.get("nextPageCursor")
    if pagination.get("hasNextPage") and cursor:
        return items, str(cursor)
    return items, None


def parse_error(payload: Any) -> dict[str, Any]:
    """The standard error body {type, subtype, message, details, contextId} [SQ-errors];
    tolerant of a non-JSON or partial body (a 429 may be HTML [SSSHARP])."""
    if not isinstance(payload, Mapping):
        return {"type": None, "subtype": None, "message": None, "contextId": None}
    return {k: _str(payload.get(k)) for k in ("type", "subtype", "message", "contextId")}


# -- the connector ----------------------------------------------------------------------


def idempotency_key(key: str, purpose: str, index: int = 0) -> str:
    """A deterministic `Idempotency-Key` (≤64 chars of [A-Za-z0-9_-]) [SQ-idem] for batch
    `index` of the write `key`: a retry of the same write sends the same keys."""
    digest = hashlib.sha256(f"{purpose}\x00{key}\x00{index}".encode()).hexdigest()[:40]
    return f"vsc-{purpose}-{digest}"[:64]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SquarespaceConnector(Connector):
    """A vendor's Squarespace store, through its Commerce APIs with an API key [SQ-auth].

    `now` returns the current UTC time (injectable for tests); it bounds the
    `modifiedBefore` side of incremental reads. `find_lookback` is how far back
    `find_order` scans for a pushed order.
    """

    platform: ClassVar[str] = "squarespace"
    stock_batch_size: ClassVar[int] = MAX_ADJUST_OPS
    can_write_listings: ClassVar[bool] = False
    can_cancel_orders: ClassVar[bool] = False
    can_update_orders: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        session: StoreSession,
        *,
        now: Callable[[], datetime] | None = None,
        find_lookback: timedelta = timedelta(days=30),
        clock_skew: timedelta = timedelta(minutes=1),
    ) -> None:
        super().__init__(name, session)
        self.now = now or (lambda: datetime.now(UTC))
        self.find_lookback = find_lookback
        self.clock_skew = clock_skew

    @classmethod
    def open(
        cls,
        name: str,
        api_key: str,
        api_url: str = API_URL,
        *,
        limiter: Any = None,
        now: Callable[[], datetime] | None = None,
        **session_kw: Any,
    ) -> SquarespaceConnector:
        """Build the connector and its `StoreSession`: Bearer auth, vsc's descriptive
        User-Agent (required [SQ-making]; StoreSession sets it) and a `SquarespaceLimiter`."""
        session = StoreSession(
            name,
            cls.platform,
            api_url,
            headers={"Authorization": f"Bearer {api_key}"},
            # The session's `sleep` (tests make it instant) paces the limiter too, as on Shopify.
            limiter=limiter if limiter is not None else SquarespaceLimiter(sleep=session_kw.get("sleep") or time.sleep),
            **session_kw,
        )
        return cls(name, session, now=now)

    # -- HTTP ------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        what: str,
    ) -> Response:
        response = self.session.request(method, path, params=params, json=json, headers=headers)
        if response.status_code in ok:
            return response
        raise self._error(response, what)

    def _error(self, response: Response, what: str) -> ApiError:
        """The standard error body → a typed error naming the store, the platform's
        message and its contextId (to quote to Squarespace support) [SQ-errors]."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        err = parse_error(body)
        status = response.status_code
        code = err["subtype"] or err["type"]
        detail = err["message"] or (response.text[:200].strip() if body is None else "") or f"HTTP {status}"
        context = f" (contextId {err['contextId']})" if err["contextId"] else ""
        message = f"{self.name}: Squarespace refused to {what}: {detail}{context}"
        kw: dict[str, Any] = {
            "store": self.name,
            "platform": self.platform,
            "status": status,
            "code": code,
            "body": body,
        }
        if status in (401, 403) or err["type"] == "AUTHORIZATION_ERROR":
            return AuthError(
                message,
                hint="Check the vendor's Squarespace API key: it must be valid and have Products, Inventory "
                "and Orders read/write permission (Settings > Developer Tools > Developer API Keys).",
                **kw,
            )
        if err["type"] == "WEBSITE_EXPIRED":
            return AuthError(message, hint="The vendor's Squarespace site subscription has expired.", **kw)
        if status == 404:
            return NotFound(message, **kw)
        if status == 409 and code in ("CONFLICT", "CONCURRENT_MODIFICATION"):
            # A request with this Idempotency-Key (or on this order / these items) is still
            # in progress [SQ-idem] [OAS-inventory]: the same call may succeed a little later.
            return RetriableError(message, **kw)
        if status in (400, 409, 422):
            return UserErrors(message, errors=[{"field": None, "message": detail, "code": code}], **kw)
        return ApiError(message, **kw)

    def _json(self, response: Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise PayloadError(
                f"{self.name}: Squarespace answered {what} with something that is not JSON",
                store=self.name,
                platform=self.platform,
                status=response.status_code,
            ) from None

    def _paged(self, path: str, items_key: str, params: Mapping[str, Any], what: str) -> Iterator[Any]:
        """First request with the filters, then `cursor` alone until no next page
        (a cursor cannot be combined with other params) [SQ-orders-list]."""
        query: Mapping[str, Any] = params
        while True:
            body = self._json(self._call("GET", path, params=query or None, what=what), what)
            items, cursor = parse_page(body, items_key)
            yield from items
            if cursor is None:
                return
            query = {"cursor": cursor}

    def _window(self, since: datetime) -> dict[str, str]:
        """`modifiedAfter` and `modifiedBefore`, always together and before > after
        [SQ-orders-list] [OAS-orders]. One millisecond is taken off `since` so a record
        modified exactly then is included; `modifiedBefore` is now plus a small skew
        allowance (the engine's overlap window covers late records anyway)."""
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        after = since - timedelta(milliseconds=1)
        before = max(self.now() + self.clock_skew, after + timedelta(seconds=1))
        return {"modifiedAfter": _iso(after), "modifiedBefore": _iso(before)}

    # -- the store ------------------------------------------------------------------
    def check(self) -> StoreInfo:
        """One call to the store pages list [SQ-prod-create-1.0]; a bad key raises `AuthError`."""
        body = self._json(self._call("GET", STORE_PAGES, what="list store pages"), "store pages")
        pages = [p for p in _list(_obj(body, "store pages").get("storePages"), "storePages") if isinstance(p, Mapping)]
        return StoreInfo(
            name=self.name,
            url=self.session.base_url,
            currency=None,  # not told by this call; orders and prices carry it
            detail={"store_pages": [{"id": p.get("id"), "title": p.get("title")} for p in pages]},
        )

    # -- catalog ---------------------------------------------------------------------
    @pass_memo
    def list_products(self, since: datetime | None = None) -> Iterator[Product]:
        """Physical products changed since `since` (all when None), 50 a page (v2 [OAS-products])."""
        params: dict[str, Any] = self._window(since) if since is not None else {}
        # Physical goods only: SERVICE, GIFT_CARD and DIGITAL products have nothing to ship.
        params["type"] = "PHYSICAL"
        for payload in self._paged(PRODUCTS, "products", params, "list products"):
            product = self.parse_record(payload, lambda payload=payload: parse_product(payload))
            if product is not None:
                yield product

    def get_products(self, ids: Sequence[str]) -> dict[str, Product]:
        """Products by id, 50 a call; the API answers 404 if any id is missing
        [OAS-products], so such a batch is split until the missing ids are isolated."""
        result: dict[str, Product] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), MAX_IDS):
            for payload in self._fetch_by_ids(PRODUCTS, "products", chunk, "read products"):
                product = self.parse_record(payload, lambda payload=payload: parse_product(payload))
                if product is not None:
                    result[product.id] = product
        return result

    def _fetch_by_ids(self, path: str, key: str, ids: Sequence[str], what: str) -> list[Any]:
        response = self.session.request("GET", f"{path}/{','.join(ids)}")
        if response.status_code == 200:
            return _list(_obj(self._json(response, what), what).get(key), key)
        if response.status_code == 404:
            if len(ids) == 1:
                return []  # this one no longer exists
            mid = len(ids) // 2
            return self._fetch_by_ids(path, key, ids[:mid], what) + self._fetch_by_ids(path, key, ids[mid:], what)
        raise self._error(response, what)

    def list_deleted_product_ids(self, since: datetime) -> list[str] | None:
        """Squarespace has no deletion feed (lists show only live products) [OAS-products]:
        None, so the engine checks linked products by id."""
        return None

    # -- stock -------------------------------------------------------------------------
    def read_stock(self, refs: Iterable[VariantRef]) -> dict[VariantRef, StockLevel]:
        """Stock by variant id, 50 a call [SQ-inv-specific]; unknown ids (404 for the whole
        call) are isolated by splitting the batch, and left out of the result."""
        by_variant: dict[str, list[VariantRef]] = {}
        for ref in refs:
            by_variant.setdefault(ref.variant_id, []).append(ref)
        result: dict[VariantRef, StockLevel] = {}
        for chunk in _chunks(list(by_variant), MAX_IDS):
            for payload in self._fetch_by_ids(INVENTORY, "inventory", chunk, "read stock"):
                vid, available = inventory_values(payload)
                for ref in by_variant.get(vid, ()):
                    result[ref] = StockLevel(ref, available, vid)
        return result

    def set_stock(self, levels: Sequence[tuple[VariantRef, int]], *, key: str) -> None:
        """Absolute quantities with `setFiniteOperations` [SQ-inv-adjust]: ≤50 a request, each
        variant once (the last level given for a variant wins), one deterministic
        Idempotency-Key per batch so a retried call re-sends the same keys."""
        last: dict[str, int] = {}
        for ref, quantity in levels:
            last[ref.variant_id] = max(0, int(quantity))  # a stock level is never negative
        ops = [{"variantId": vid, "quantity": q} for vid, q in last.items()]
        for index, chunk in enumerate(_chunks(ops, MAX_ADJUST_OPS)):
            self._adjust({"setFiniteOperations": list(chunk)}, idempotency_key(key, "set", index), "set stock")

    def adjust_stock(self, deltas: Sequence[tuple[VariantRef, int]], *, key: str) -> None:
        """Relative moves with increment/decrement operations (a variant's deltas are summed:
        it may appear once per request) [OAS-inventory]. A decrement below zero is refused
        with 409 INSUFFICIENT_STOCK → `UserErrors` (code INSUFFICIENT_STOCK); batches
        already sent stay applied and replay harmlessly when the same `key` is retried.
        Unlimited variants have nothing to move: a STOCK_NOT_TRACKED refusal drops them
        and sends the rest again."""
        total: dict[str, int] = {}
        for ref, delta in deltas:
            total[ref.variant_id] = total.get(ref.variant_id, 0) + int(delta)
        moves = [(vid, d) for vid, d in total.items() if d]
        for index, chunk in enumerate(_chunks(moves, MAX_ADJUST_OPS)):
            body = self._moves_body(chunk)
            try:
                self._adjust(body, idempotency_key(key, "adjust", index), "adjust stock")
            except UserErrors as exc:
                if "STOCK_NOT_TRACKED" not in exc.codes:
                    raise
                levels = self.read_stock(VariantRef("", vid) for vid, _ in chunk)
                tracked = [
                    (vid, d) for vid, d in chunk if levels.get(VariantRef("", vid), _UNTRACKED).available is not None
                ]
                if tracked:
                    self._adjust(
                        self._moves_body(tracked), idempotency_key(key, "adjust-tracked", index), "adjust stock"
                    )

    @staticmethod
    def _moves_body(moves: Iterable[tuple[str, int]]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        inc = [{"variantId": vid, "quantity": d} for vid, d in moves if d > 0]
        dec = [{"variantId": vid, "quantity": -d} for vid, d in moves if d < 0]
        if inc:
            body["incrementOperations"] = inc
        if dec:
            body["decrementOperations"] = dec
        return body

    def _adjust(self, body: dict[str, Any], idem: str, what: str) -> None:
        # 204 No Content [SQ-inv-adjust]; the Idempotency-Key makes the session retry it safely.
        self._call("POST", ADJUSTMENTS, json=body, headers={"Idempotency-Key": idem}, ok=(200, 204), what=what)

    # -- orders and tracking -----------------------------------------------------------
    @pass_memo
    def list_orders(self, since: datetime | None = None) -> Iterator[Order]:
        """Orders changed since `since` (all when None), in every payment state."""
        for payload in self._paged(ORDERS, "result", self._order_params(since), "list orders"):
            yield parse_order(payload)

    def _order_params(self, since: datetime | None) -> dict[str, Any]:
        params: dict[str, Any] = self._window(since) if since is not None else {}
        params["paymentStates"] = ALL_PAYMENT_STATES
        return params

    def get_order(self, order_id: str) -> Order | None:
        payload = self._get_order_payload(order_id)
        return None if payload is None else parse_order(payload)

    def _get_order_payload(self, order_id: str) -> Any:
        response = self.session.request("GET", f"{ORDERS}/{order_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response, f"read order {order_id}")
        return self._json(response, "an order")

    def create_order(self, draft: OrderDraft) -> Order:
        """Import the order [SQ-order-create]: `externalOrderReference` = `draft.marker`,
        `Idempotency-Key` from `draft.key`, `inventoryBehavior: DEDUCT` (Squarespace takes
        the stock, or refuses with 409 INSUFFICIENT_STOCK and creates nothing), totals
        computed explicitly (subtotal = Σ price × quantity = grand total; no shipping, tax
        or discount is charged to the vendor side), money as decimal strings.

        If the same key comes back with a different body (a retry after a crash sends a
        new `createdOn`), the order already exists: it is looked up by its marker."""
        currency = draft.currency
        lines = []
        subtotal = Decimal(0)
        for line in draft.lines:
            price = _quantize(line.unit_price, currency)
            subtotal += price * line.quantity
            lines.append(
                {
                    "lineItemType": "PHYSICAL_PRODUCT",
                    "variantId": line.ref.variant_id,
                    "quantity": int(line.quantity),
                    "unitPricePaid": _money(price, currency),
                }
            )
        created = getattr(draft, "created_at", None) or self.now()
        body: dict[str, Any] = {
            "channelName": (draft.channel_name or "vsc")[:CHANNEL_NAME_MAX],
            "externalOrderReference": draft.marker,
            "createdOn": _iso(created),
            "lineItems": lines,
            "priceTaxInterpretation": "EXCLUSIVE",
            "inventoryBehavior": "DEDUCT",  # one stock mechanism only [design note]
            # The merchant tells the shopper about shipping; the vendor store stays quiet.
            "shopperFulfillmentNotificationBehavior": "SKIP",
            "fulfillmentStatus": "PENDING",
            "fulfillments": [],  # required; [] when PENDING [OAS-orders]
            "subtotal": _money(subtotal, currency),
            "shippingTotal": _money(Decimal(0), currency),
            "discountTotal": _money(Decimal(0), currency),
            "taxTotal": _money(Decimal(0), currency),
            "grandTotal": _money(subtotal, currency),
        }
        if draft.email:
            body["customerEmail"] = draft.email
        if draft.shipping_address is not None:
            body["shippingAddress"] = _address_body(draft.shipping_address, draft)
        headers = {"Idempotency-Key": idempotency_key(draft.key, "order")}
        response = self.session.request("POST", ORDERS, json=body, headers=headers)
        if response.status_code in (200, 201):
            return parse_order(self._json(response, "the created order"))
        error = self._error(response, f"create the order for {draft.marker}")
        if response.status_code == 400:
            found = self.find_order(draft.marker)
            if found is not None:
                return found
        raise error

    def find_order(self, marker: str) -> Order | None:
        """The order whose `externalOrderReference` is `marker`, among the orders modified
        within `find_lookback`. The Orders API has no reference filter, so recent orders
        are listed (a plain listing, no search index to lag behind) [OAS-orders]."""
        since = self.now() - self.find_lookback
        for order in self.list_orders(since):
            if order.marker == marker:
                return order
        return None

    def update_order(self, order_id: str, changes: dict[str, Any]) -> None:
        """Always `Unsupported`: the Orders API has only list, retrieve, create and fulfill;
        no field of an order can be edited (fact sheet, "Cancelling / editing orders —
        NOT supported by the API" [SQ-forum-cancel] [OAS-orders])."""
        raise Unsupported(
            self.platform,
            "edit orders",
            hint="Ask the vendor to make the change in Squarespace (Orders > the order).",
        )

    def cancel_order(self, order_id: str, *, restock: bool = True) -> None:
        """Always `Unsupported`: "It isn't possible to cancel a pending order via our API"
        (Squarespace staff, [SQ-forum-cancel]). The vendor cancels in the UI, leaving
        "Restock Inventory" checked unless vsc restores the stock itself [SQ-help-cancel]."""
        raise Unsupported(
            self.platform,
            "cancel orders",
            hint="Ask the vendor to cancel it in Squarespace (Orders > the order > Cancel Order) "
            + ("with 'Restock Inventory' checked." if restock else "with 'Restock Inventory' unchecked."),
        )

    def list_fulfillments(self, order_id: str) -> list[Fulfillment]:
        """The order's shipments with tracking [SQ-orders-list]; `NotFound` if the order is gone."""
        payload = self._get_order_payload(order_id)
        if payload is None:
            raise NotFound(
                f"{self.name}: Squarespace order {order_id} does not exist",
                store=self.name,
                platform=self.platform,
                status=404,
            )
        return parse_fulfillments(payload)


_UNTRACKED = StockLevel(VariantRef("", ""), None)


def _quantize(amount: Decimal, currency: str) -> Decimal:
    exponent = Decimal(1) if currency.upper() in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")
    return Decimal(amount).quantize(exponent)


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    """`{"currency", "value"}` with value a decimal string [SQ-orders-list]."""
    return {"currency": currency, "value": str(_quantize(amount, currency))}


def _address_body(address: Address, draft: OrderDraft) -> dict[str, Any]:
    return {
        "firstName": address.first_name or draft.customer_first_name,
        "lastName": address.last_name or draft.customer_last_name,
        "address1": address.address1,
        "address2": address.address2,
        "city": address.city,
        "state": address.province_code,
        "countryCode": address.country_code,
        "postalCode": address.zip,
        "phone": address.phone or draft.phone,
    }
