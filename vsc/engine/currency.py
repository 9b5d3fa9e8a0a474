"""Prices are copied only between stores that price in the same currency.

vsc has no exchange rates and never guesses one: a vendor whose store prices in
another currency than the merchant's is refused when publishing (and when linking,
while the vendor owns prices), and a pass that would copy such a vendor's price
edits stops that vendor's catalog stream with the reason. The merchant may take
`price` and `compare_at_price` out of the vendor's `vendor_owns`: then the merchant
sets the prices and the currencies no longer matter.

A store's currency is what it said when it was connected or last checked
(`vsc stores check`); Squarespace says it with every price, so its products carry it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vsc.connectors.base import Product
from vsc.errors import VscError

PRICE_FIELDS = ("price", "compare_at_price")


class CurrencyMismatch(VscError):
    """A vendor's prices are in another currency than the merchant's (a pass goes on without
    that vendor's catalog; a mapping command refuses: see `vsc.engine.mapping`)."""


def vendor_owns_prices(ctx: Any, vendor: str) -> bool:
    return any(f in ctx.settings.vendor(vendor).vendor_owns for f in PRICE_FIELDS)


def mismatch(ctx: Any, vendor: str, products: Iterable[Product] = ()) -> tuple[str, str] | None:
    """(vendor currency, merchant currency) when they are known and differ, else None."""
    merchant = ctx.merchant_row().currency
    theirs = {p.currency for p in products if p.currency} or {ctx.vendor_row(vendor).currency} - {None}
    if not merchant or not theirs:
        return None
    other = sorted(c for c in theirs if c and c.upper() != merchant.upper())
    return (other[0], merchant) if other else None


def explain(vendor: str, found: tuple[str, str], *, what: str) -> str:
    """The sentence for a refusal: what differs, that vsc will not convert, and what to do."""
    theirs, merchant = found
    return (
        f"{vendor} prices in {theirs} and the merchant in {merchant}; vsc has no exchange rates and never copies "
        f"a price into another currency, so {what}. Ask the vendor to price in {merchant} (then run "
        f"`vsc stores check {vendor}`), or let the merchant set these prices: remove price and compare_at_price "
        f"from vendors.{vendor}.vendor_owns in the settings"
    )


def check_pass(ctx: Any, vendor: str, products: Iterable[Product]) -> None:
    """Raise `CurrencyMismatch` when this pass would copy the vendor's prices across currencies."""
    if not vendor_owns_prices(ctx, vendor):
        return
    found = mismatch(ctx, vendor, products)
    if found is not None:
        raise CurrencyMismatch(
            explain(vendor, found, what=f"{vendor}'s catalog changes wait (stock, orders and tracking go on)")
        )
