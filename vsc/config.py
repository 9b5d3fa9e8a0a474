"""The settings file: load, validate as a whole, fill in defaults.

Every problem in the file is reported at once (unknown keys included, with a
"did you mean" where one is close), so a user fixes the file in one go.
`config.example.yaml` at the repository root documents every key; `vsc init`
writes the same text next to the database.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from vsc.errors import SettingsError

# Listing fields a vendor may own on the merchant's listing (`vendor_owns`).
LISTING_FIELDS = (
    "title",
    "description",
    "images",
    "tags",
    "product_type",
    "vendor",
    "status",
    "price",
    "compare_at_price",
    "sku",
    "barcode",
)
DEFAULT_VENDOR_OWNS = ("title", "description", "images", "tags", "product_type", "price")
PUBLISH_STATUSES = ("active", "draft", "vendor")
ON_VENDOR_DELETE = ("draft", "delete", "keep")
ROUNDINGS = ("cents", "whole", "ending")
STREAMS = ("catalog", "inventory", "orders", "tracking")
ORDER_PRICES = ("merchant", "vendor")
ORDER_CONTACTS = ("customer", "marketplace", "none")
FINANCIAL_STATUSES = (
    "pending",
    "authorized",
    "partially_paid",
    "paid",
    "partially_refunded",
    "refunded",
    "voided",
    "expired",
)


@dataclass(frozen=True)
class PriceRule:
    """Merchant price = vendor price × (1 + percent/100) + amount, then rounded.

    rounding: `cents` (to the cent), `whole` (up to a whole unit) or `ending`
    (up to the next price whose cents are `ending`, e.g. 0.99 → 12.99).
    """

    percent: Decimal = Decimal("0")
    amount: Decimal = Decimal("0")
    rounding: str = "cents"
    ending: Decimal = Decimal("0.99")

    def apply(self, price: Decimal | None) -> Decimal | None:
        if price is None:
            return None
        value = price * (Decimal(1) + self.percent / Decimal(100)) + self.amount
        if value <= 0:
            return Decimal("0.00")
        if self.rounding == "whole":
            return value.quantize(Decimal(1), rounding=ROUND_CEILING).quantize(Decimal("0.01"))
        if self.rounding == "ending":
            base = value.quantize(Decimal(1), rounding=ROUND_CEILING) - 1 + self.ending
            if base < value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP):
                base += 1
            return base.quantize(Decimal("0.01"))
        return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    starttls: bool = True
    ssl: bool = False
    user: str | None = None
    password_env: str | None = None
    sender: str = "vsc@localhost"
    timeout: float = 30.0

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None


@dataclass(frozen=True)
class VendorSettings:
    """Settings of one vendor: the global ones with that vendor's overrides applied."""

    order_push: bool = True
    email: str | None = None
    stock_buffer: int = 0
    price_rule: PriceRule = field(default_factory=PriceRule)
    publish_status: str = "vendor"
    location: str | None = None
    vendor_name: str | None = None
    vendor_owns: tuple[str, ...] = DEFAULT_VENDOR_OWNS
    auto_variants: bool = False
    brake_share: Decimal = Decimal(50)
    #: the vendor's own locations whose stock counts (Shopify vendors); None: every active one
    stock_locations: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Settings:
    auto_variants: bool = False
    order_push: bool = True
    publish_status: str = "vendor"
    on_vendor_delete: str = "draft"
    vendor_owns: tuple[str, ...] = DEFAULT_VENDOR_OWNS
    price_rule: PriceRule = field(default_factory=PriceRule)
    stock_buffer: int = 0
    merchant_location: str | None = None
    overlap_seconds: int = 300
    lock_wait_seconds: Decimal = Decimal(10)
    #: how many vendor stores a pass reads at the same time
    concurrency: int = 8
    brake_share: Decimal = Decimal(50)
    brake_min_variants: int = 3
    tracking_notify_customer: bool = False
    smtp: SmtpSettings | None = None
    vendors: dict[str, dict[str, Any]] = field(default_factory=dict)
    order_price: str = "merchant"
    order_contact: str = "customer"
    marketplace_email: str | None = None
    marketplace_phone: str | None = None
    push_financial_statuses: tuple[str, ...] = ("paid",)
    push_test_orders: bool = False
    untracked_quantity: int | None = None
    # From this many products on, a first publish goes through Shopify bulk operations (the
    # measurement behind it: bench/RESULTS.md, "First publish").
    bulk_publish_from: int = 20
    source: str | None = None

    def vendor(self, name: str) -> VendorSettings:
        """This vendor's effective settings (made once per vendor: a pass asks for them often)."""
        made: dict[str, VendorSettings] = self.__dict__.setdefault("_vendor_settings", {})
        if name not in made:
            made[name] = self._vendor(name)
        return made[name]

    def _vendor(self, name: str) -> VendorSettings:
        raw = self.vendors.get(name, {})
        base = VendorSettings(
            order_push=self.order_push,
            stock_buffer=self.stock_buffer,
            price_rule=self.price_rule,
            publish_status=self.publish_status,
            location=self.merchant_location,
            vendor_owns=self.vendor_owns,
            auto_variants=self.auto_variants,
            brake_share=self.brake_share,
        )
        return replace(base, **raw)


# -- validation ----------------------------------------------------------------


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, where: str, text: str) -> None:
        self.problems.append(f"{where}: {text}" if where else text)

    def keys(self, where: str, data: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(allowed)})"
                self.problem(_join(where, str(key)), f"unknown key{hint}")

    def boolean(self, where: str, value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        self.problem(where, f"must be true or false, not {value!r}")
        return None

    def integer(self, where: str, value: Any, *, minimum: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(where, f"must be a whole number, not {value!r}")
            return None
        if minimum is not None and value < minimum:
            self.problem(where, f"must be at least {minimum}, not {value}")
            return None
        return value

    def decimal(self, where: str, value: Any) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.problem(where, f"must be a number, not {value!r}")
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation:
            self.problem(where, f"must be a number, not {value!r}")
            return None

    def string(self, where: str, value: Any) -> str | None:
        if isinstance(value, str) and value.strip():
            return value
        self.problem(where, f"must be a non-empty text, not {value!r}")
        return None

    def choice(self, where: str, value: Any, choices: tuple[str, ...]) -> str | None:
        if value in choices:
            return value
        self.problem(where, f"must be one of {', '.join(choices)}, not {value!r}")
        return None

    def email(self, where: str, value: Any) -> str | None:
        text = self.string(where, value)
        if text is not None and ("@" not in text or " " in text.strip()):
            self.problem(where, f"{text!r} is not an e-mail address")
            return None
        return text

    def mapping(self, where: str, value: Any) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.problem(where, f"must be a mapping of keys to values, not {value!r}")
        return None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _price_rule(c: _Checker, where: str, raw: Any) -> PriceRule | None:
    data = c.mapping(where, raw)
    if data is None:
        return None
    c.keys(where, data, ("percent", "amount", "rounding", "ending"))
    rule = PriceRule()
    values: dict[str, Any] = {}
    if "percent" in data:
        pct = c.decimal(_join(where, "percent"), data["percent"])
        if pct is not None and pct <= -100:
            c.problem(_join(where, "percent"), "must be above -100")
        elif pct is not None:
            values["percent"] = pct
    if "amount" in data:
        amt = c.decimal(_join(where, "amount"), data["amount"])
        if amt is not None:
            values["amount"] = amt
    if "rounding" in data:
        rnd = c.choice(_join(where, "rounding"), data["rounding"], ROUNDINGS)
        if rnd is not None:
            values["rounding"] = rnd
    if "ending" in data:
        end = c.decimal(_join(where, "ending"), data["ending"])
        if end is not None and not (Decimal(0) <= end < Decimal(1)):
            c.problem(_join(where, "ending"), "must be the cents a price ends in, between 0 and 0.99")
        elif end is not None:
            values["ending"] = end
    return replace(rule, **values)


def _fields(c: _Checker, where: str, raw: Any) -> tuple[str, ...] | None:
    if not isinstance(raw, list):
        c.problem(where, f"must be a list of listing fields ({', '.join(LISTING_FIELDS)})")
        return None
    ok = []
    for i, item in enumerate(raw):
        if item not in LISTING_FIELDS:
            c.problem(f"{where}[{i}]", f"{item!r} is not a listing field ({', '.join(LISTING_FIELDS)})")
        else:
            ok.append(item)
    return tuple(ok)


def _share(c: _Checker, where: str, raw: Any) -> Decimal | None:
    value = c.decimal(where, raw)
    if value is not None and not (Decimal(0) <= value <= Decimal(100)):
        c.problem(where, f"must be a percentage between 0 and 100, not {value}")
        return None
    return value


GLOBAL_KEYS = (
    "order_price",
    "order_contact",
    "marketplace_email",
    "marketplace_phone",
    "push_financial_statuses",
    "push_test_orders",
    "untracked_quantity",
    "auto_variants",
    "order_push",
    "publish_status",
    "on_vendor_delete",
    "vendor_owns",
    "price_rule",
    "stock_buffer",
    "merchant_location",
    "overlap_seconds",
    "lock_wait_seconds",
    "concurrency",
    "brake_share",
    "brake_min_variants",
    "tracking_notify_customer",
    "bulk_publish_from",
    "smtp",
    "vendors",
)
VENDOR_KEYS = (
    "stock_locations",
    "order_push",
    "email",
    "stock_buffer",
    "price_rule",
    "publish_status",
    "location",
    "vendor_name",
    "vendor_owns",
    "brake_share",
)
SMTP_KEYS = ("host", "port", "starttls", "ssl", "user", "password_env", "from", "timeout")


def validate(data: Any, *, source: str = "settings") -> Settings:
    """Turn parsed YAML into `Settings`, or raise `SettingsError` listing every problem."""
    c = _Checker()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(source, ["the file must be a mapping of keys to values (see config.example.yaml)"])
    c.keys("", data, GLOBAL_KEYS)
    values: dict[str, Any] = {"source": source}
    for key in ("auto_variants", "order_push", "tracking_notify_customer"):
        if key in data:
            v = c.boolean(key, data[key])
            if v is not None:
                values[key] = v
    if "publish_status" in data:
        v = c.choice("publish_status", data["publish_status"], PUBLISH_STATUSES)
        if v is not None:
            values["publish_status"] = v
    if "on_vendor_delete" in data:
        v = c.choice("on_vendor_delete", data["on_vendor_delete"], ON_VENDOR_DELETE)
        if v is not None:
            values["on_vendor_delete"] = v
    if "vendor_owns" in data:
        v = _fields(c, "vendor_owns", data["vendor_owns"])
        if v is not None:
            values["vendor_owns"] = v
    if "price_rule" in data:
        v = _price_rule(c, "price_rule", data["price_rule"])
        if v is not None:
            values["price_rule"] = v
    if "stock_buffer" in data:
        v = c.integer("stock_buffer", data["stock_buffer"], minimum=0)
        if v is not None:
            values["stock_buffer"] = v
    if "merchant_location" in data and data["merchant_location"] is not None:
        v = c.string("merchant_location", data["merchant_location"])
        if v is not None:
            values["merchant_location"] = v
    if "bulk_publish_from" in data:
        v = c.integer("bulk_publish_from", data["bulk_publish_from"], minimum=1)
        if v is not None:
            values["bulk_publish_from"] = v
    if "overlap_seconds" in data:
        v = c.integer("overlap_seconds", data["overlap_seconds"], minimum=0)
        if v is not None:
            values["overlap_seconds"] = v
    if "lock_wait_seconds" in data:
        v = c.decimal("lock_wait_seconds", data["lock_wait_seconds"])
        if v is not None and v < 0:
            c.problem("lock_wait_seconds", f"must be 0 or more, not {v}")
        elif v is not None:
            values["lock_wait_seconds"] = v
    if "concurrency" in data:
        v = c.integer("concurrency", data["concurrency"], minimum=1)
        if v is not None and v > 64:
            c.problem("concurrency", f"must be at most 64, not {v}")
        elif v is not None:
            values["concurrency"] = v
    if "brake_share" in data:
        v = _share(c, "brake_share", data["brake_share"])
        if v is not None:
            values["brake_share"] = v
    if "brake_min_variants" in data:
        v = c.integer("brake_min_variants", data["brake_min_variants"], minimum=1)
        if v is not None:
            values["brake_min_variants"] = v
    for key, choices in (("order_price", ORDER_PRICES), ("order_contact", ORDER_CONTACTS)):
        if key in data:
            v = c.choice(key, data[key], choices)
            if v is not None:
                values[key] = v
    for key in ("marketplace_email",):
        if data.get(key) is not None:
            v = c.email(key, data[key])
            if v is not None:
                values[key] = v
    if data.get("marketplace_phone") is not None:
        v = c.string("marketplace_phone", str(data["marketplace_phone"]))
        if v is not None:
            values["marketplace_phone"] = v
    if values.get("order_contact") == "marketplace" and not values.get("marketplace_email"):
        c.problem("order_contact", "is marketplace, so marketplace_email must be set")
    if "push_financial_statuses" in data:
        raw = data["push_financial_statuses"]
        if not isinstance(raw, list) or not raw:
            c.problem("push_financial_statuses", f"must be a list of: {', '.join(FINANCIAL_STATUSES)}")
        else:
            bad = [s for s in raw if s not in FINANCIAL_STATUSES]
            for s in bad:
                c.problem("push_financial_statuses", f"{s!r} is not one of {', '.join(FINANCIAL_STATUSES)}")
            if not bad:
                values["push_financial_statuses"] = tuple(raw)
    if "push_test_orders" in data:
        v = c.boolean("push_test_orders", data["push_test_orders"])
        if v is not None:
            values["push_test_orders"] = v
    if data.get("untracked_quantity") is not None:
        v = c.integer("untracked_quantity", data["untracked_quantity"], minimum=0)
        if v is not None:
            values["untracked_quantity"] = v
    if data.get("smtp") is not None:
        smtp = c.mapping("smtp", data["smtp"])
        if smtp is not None:
            c.keys("smtp", smtp, SMTP_KEYS)
            s: dict[str, Any] = {}
            if "host" not in smtp:
                c.problem("smtp.host", "is required when smtp is set")
            else:
                s["host"] = c.string("smtp.host", smtp["host"])
            if "port" in smtp:
                port = c.integer("smtp.port", smtp["port"], minimum=1)
                if port is not None and port > 65535:
                    c.problem("smtp.port", f"must be a port number (1-65535), not {port}")
                s["port"] = port
            for key in ("starttls", "ssl"):
                if key in smtp:
                    s[key] = c.boolean(f"smtp.{key}", smtp[key])
            if smtp.get("starttls") is True and smtp.get("ssl") is True:
                c.problem("smtp", "choose starttls or ssl, not both")
            if "user" in smtp and smtp["user"] is not None:
                s["user"] = c.string("smtp.user", smtp["user"])
            if "password_env" in smtp and smtp["password_env"] is not None:
                s["password_env"] = c.string("smtp.password_env", smtp["password_env"])
            if "from" in smtp:
                s["sender"] = c.email("smtp.from", smtp["from"])
            if "timeout" in smtp:
                t = c.decimal("smtp.timeout", smtp["timeout"])
                s["timeout"] = float(t) if t is not None else None
            encrypted = smtp.get("starttls", True) is True or smtp.get("ssl") is True
            if s.get("user") and s.get("host") and not encrypted:
                from vsc.connectors.http import is_loopback

                if not is_loopback(s["host"]):
                    c.problem(
                        "smtp",
                        f"the SMTP password would travel unencrypted to {s['host']} (starttls and ssl are off); "
                        "set starttls: true (port 587) or ssl: true (port 465)",
                    )
            if s.get("host"):
                values["smtp"] = SmtpSettings(**{k: v for k, v in s.items() if v is not None})
    if data.get("vendors") is not None:
        vendors = c.mapping("vendors", data["vendors"])
        out: dict[str, dict[str, Any]] = {}
        for name, raw in (vendors or {}).items():
            where = f"vendors.{name}"
            vdata = c.mapping(where, raw if raw is not None else {})
            if vdata is None:
                continue
            c.keys(where, vdata, VENDOR_KEYS)
            v: dict[str, Any] = {}
            if "order_push" in vdata:
                v["order_push"] = c.boolean(f"{where}.order_push", vdata["order_push"])
            if "email" in vdata:
                v["email"] = c.email(f"{where}.email", vdata["email"])
            if "stock_buffer" in vdata:
                v["stock_buffer"] = c.integer(f"{where}.stock_buffer", vdata["stock_buffer"], minimum=0)
            if "price_rule" in vdata:
                v["price_rule"] = _price_rule(c, f"{where}.price_rule", vdata["price_rule"])
            if "publish_status" in vdata:
                v["publish_status"] = c.choice(f"{where}.publish_status", vdata["publish_status"], PUBLISH_STATUSES)
            if "location" in vdata:
                v["location"] = c.string(f"{where}.location", vdata["location"])
            if "vendor_name" in vdata:
                v["vendor_name"] = c.string(f"{where}.vendor_name", vdata["vendor_name"])
            if "vendor_owns" in vdata:
                v["vendor_owns"] = _fields(c, f"{where}.vendor_owns", vdata["vendor_owns"])
            if "brake_share" in vdata:
                v["brake_share"] = _share(c, f"{where}.brake_share", vdata["brake_share"])
            if "stock_locations" in vdata:
                raw_locations = vdata["stock_locations"]
                if (
                    not isinstance(raw_locations, list)
                    or not raw_locations
                    or not all(isinstance(x, str) and x.strip() for x in raw_locations)
                ):
                    c.problem(f"{where}.stock_locations", "must be a list of location names or ids")
                else:
                    v["stock_locations"] = tuple(raw_locations)
            out[str(name)] = {k: val for k, val in v.items() if val is not None}
        values["vendors"] = out
    if c.problems:
        raise SettingsError(source, c.problems)
    return Settings(**values)


def load(path: str | os.PathLike[str] | None, *, required: bool = False) -> Settings:
    """Read and validate the settings file; defaults when there is none (and it is not required)."""
    if path is None:
        return Settings()
    p = Path(path).expanduser()
    if not p.exists():
        if required:
            raise SettingsError(str(p), ["the file does not exist"])
        return Settings()
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SettingsError(str(p), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(str(p), [f"cannot be read ({exc})"]) from None
    return validate(data, source=str(p))


def example_text() -> str:
    """The commented example settings (the same text as config.example.yaml)."""
    from importlib import resources

    return resources.files("vsc").joinpath("config.example.yaml").read_text(encoding="utf-8")
