"""A small marketplace for integration tests: a merchant and one vendor on a chosen platform.

The vendor adapter hides each sandbox's own Python API behind the same verbs
(add a product, read stock, sell on the vendor's storefront, list the vendor's
orders), so one test runs unchanged against Shopify, WooCommerce and
Squarespace vendors. Everything else goes through the real CLI over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vsc.sandbox.shopify import ShopifySandbox
from vsc.sandbox.squarespace import SquarespaceSandbox
from vsc.sandbox.woocommerce import WooCommerceSandbox

PLATFORMS = ("shopify", "woocommerce", "squarespace")


@dataclass
class VendorStore:
    platform: str
    store: Any
    variants: dict[str, str] = field(default_factory=dict)  # sku → vendor variant id
    products: dict[str, str] = field(default_factory=dict)  # sku → vendor product id

    def add_shirt(self, stock: dict[str, int | None] | None = None) -> str:
        """A shirt with sizes S and M (SKUs SH-S, SH-M); returns the product id."""
        stock = stock if stock is not None else {"SH-S": 5, "SH-M": 3}
        if self.platform == "shopify":
            p = self.store.add_product(
                "Linen Shirt",
                options={"Size": ["S", "M"]},
                variants=[
                    {
                        "sku": sku,
                        "price": "40.00",
                        "options": {"Size": sku[-1]},
                        "available": qty or 0,
                        **({"tracked": False} if qty is None else {}),
                    }
                    for sku, qty in stock.items()
                ],
            )
            pid = p["id"]
            for v in p["variants"]:
                self.variants[v["sku"]] = v["id"]
        elif self.platform == "woocommerce":
            p = self.store.add_product(
                "Linen Shirt",
                attributes=[{"name": "Size", "options": [s[-1] for s in stock]}],
                variations=[
                    {"attributes": {"Size": sku[-1]}, "sku": sku, "price": "40.00", "stock": qty}
                    for sku, qty in stock.items()
                ],
            )
            pid = str(p["id"])
            for vid in p["variations"]:
                v = self.store.variation(vid)
                self.variants[v["sku"]] = str(vid)
        else:
            p = self.store.add_product(
                "Linen Shirt",
                [
                    {
                        "sku": sku,
                        "price": "40.00",
                        "attributes": {"Size": sku[-1]},
                        **({"unlimited": True} if qty is None else {"quantity": qty}),
                    }
                    for sku, qty in stock.items()
                ],
                variant_attributes=["Size"],
            )
            pid = p["id"]
            for v in p["variants"]:
                self.variants[v["sku"]] = v["id"]
        for sku in stock:
            self.products[sku] = pid
        return pid

    def stock(self, sku: str) -> int | None:
        vid = self.variants[sku]
        if self.platform == "shopify":
            return self.store.available(vid)
        if self.platform == "woocommerce":
            return self.store.stock(int(vid))
        return self.store.stock(vid)

    def set_stock(self, sku: str, qty: int) -> None:
        vid = self.variants[sku]
        if self.platform == "shopify":
            self.store.set_available(vid, None, qty)
        elif self.platform == "woocommerce":
            self.store.set_stock(int(vid), qty)
        else:
            self.store.set_stock(vid, qty)

    def sell(self, sku: str, qty: int) -> None:
        """A sale on the vendor's own storefront."""
        vid = self.variants[sku]
        if self.platform == "shopify":
            self.store.place_order([(vid, qty)])
        elif self.platform == "woocommerce":
            self.store.place_order([(int(vid), qty)])
        else:
            self.store.place_order([(vid, qty)])

    def orders(self) -> list[dict[str, Any]]:
        return list(self.store.orders())

    def pushed_orders(self) -> list[dict[str, Any]]:
        """The orders vsc pushed into this store (not the vendor's own storefront sales)."""
        out = []
        for o in self.orders():
            if self.platform == "shopify":
                if (o.get("sourceIdentifier") or "").startswith("vsc-"):
                    out.append(o)
            elif self.platform == "woocommerce":
                if any(x["key"] == "_vsc_marker" for x in o.get("meta_data") or []):
                    out.append(o)
            elif o.get("externalOrderReference"):
                out.append(o)
        return out

    def ship(self, order_id: str, number: str, company: str = "UPS") -> None:
        """The vendor ships a whole order with a tracking number, as each platform records it."""
        url = f"https://{company.lower()}.example/t/{number}"
        if self.platform == "shopify":
            self.store.fulfill_order(order_id, None, {"number": number, "company": company, "url": url})
        elif self.platform == "woocommerce":
            self.store.add_tracking(int(order_id), number, company, url)
        else:
            self.store.fulfill(order_id, [{"carrier": company, "tracking_number": number, "tracking_url": url}])

    def add_product(self, title: str, variants: list[dict[str, Any]], options: list[str] | None = None) -> str:
        """A product with `variants` = [{"sku", "price", "options": {name: value}, "qty"}]; returns its id.

        `options` names the option (attribute) axes in order; variants without options make a
        one-variant product. SKUs may repeat or be empty where the platform allows it.
        """
        names = options or []
        if self.platform == "shopify":
            p = self.store.add_product(
                title,
                **({"options": {n: [] for n in names}} if names else {}),
                variants=[
                    {"sku": v.get("sku", ""), "price": v.get("price", "10.00"), "available": v.get("qty", 1)}
                    | ({"options": v["options"]} if names else {})
                    for v in variants
                ],
            )
            pid = p["id"]
            ids = [v["id"] for v in p["variants"]]
        elif self.platform == "woocommerce":
            if not names:
                (v,) = variants
                p = self.store.add_product(
                    title, sku=v.get("sku", ""), price=v.get("price", "10.00"), stock=v.get("qty", 1)
                )
                pid, ids = str(p["id"]), [str(p["id"])]
            else:
                values = {n: list(dict.fromkeys(v["options"][n] for v in variants)) for n in names}
                p = self.store.add_product(
                    title,
                    attributes=[{"name": n, "options": values[n]} for n in names],
                    variations=[
                        {
                            "attributes": v["options"],
                            "sku": v.get("sku", ""),
                            "price": v.get("price", "10.00"),
                            "stock": v.get("qty", 1),
                        }
                        for v in variants
                    ],
                )
                pid, ids = str(p["id"]), [str(i) for i in p["variations"]]
        else:
            p = self.store.add_product(
                title,
                [
                    {
                        "sku": v.get("sku", ""),
                        "price": v.get("price", "10.00"),
                        "quantity": v.get("qty", 1),
                        "attributes": v.get("options") or {},
                    }
                    for v in variants
                ],
                variant_attributes=names,
            )
            pid, ids = p["id"], [v["id"] for v in p["variants"]]
        for v, vid in zip(variants, ids, strict=True):
            if v.get("sku"):
                self.variants[v["sku"]] = vid
                self.products[v["sku"]] = pid
        return pid

    def delete_product(self, pid: str) -> None:
        self.store.delete_product(int(pid) if self.platform == "woocommerce" else pid)

    def delete_variant(self, sku: str) -> None:
        vid = self.variants.pop(sku)
        if self.platform == "woocommerce":
            self.store.delete_variation(int(self.products[sku]), int(vid))
        else:
            self.store.delete_variant(vid)

    def revoke(self) -> None:
        """The vendor revokes vsc's credentials on their store (the app is uninstalled, the key
        deleted): from the next request on, the store answers as it does to an unknown token."""
        if self.platform == "shopify":
            self.store.token = "shpat_" + "0" * 32
        elif self.platform == "woocommerce":
            self.store.consumer_key = "ck_" + "0" * 40
        else:
            self.store.api_key = "0" * 32

    def new_credentials(self, monkeypatch: Any) -> list[str]:
        """Issue fresh credentials (after a revoke), export them, and return the `vsc connect`
        arguments that reconnect the vendor `acme` with them."""
        import secrets

        if self.platform == "shopify":
            self.store.token = "shpat_" + secrets.token_hex(16)
            monkeypatch.setenv("ACME_TOKEN", self.store.token)
            return [*"connect shopify acme --role vendor --shop".split(), self.store.url, "--token-env", "ACME_TOKEN"]
        if self.platform == "woocommerce":
            self.store.consumer_key = "ck_" + secrets.token_hex(20)
            monkeypatch.setenv("CK", self.store.consumer_key)
            return ["connect", "woocommerce", "acme", "--url", self.store.url, "--key-env", "CK", "--secret-env", "CS"]
        self.store.api_key = secrets.token_hex(16)
        monkeypatch.setenv("SQ", self.store.api_key)
        return ["connect", "squarespace", "acme", "--api-key-env", "SQ", "--api-url", self.store.url]


@dataclass
class Market:
    merchant: ShopifySandbox
    vendor: VendorStore

    def merchant_variant(self, cli: Any, sku: str) -> str:
        for link in cli("map", "list", "--json").json():
            for v in link["variants"]:
                if v["sku"] == sku:
                    return v["merchant_variant_id"]
        raise KeyError(sku)

    def stop(self) -> None:
        self.merchant.stop()
        self.vendor.store.stop()


def start_vendor(
    platform: str, name: str, cli: Any, monkeypatch: Any, *, env: tuple[str, ...] = (), **store_kw: Any
) -> VendorStore:
    """Start a vendor sandbox on `platform` and `vsc connect` it as vendor `name`, its secrets in
    environment variables: `env` names them (token; key and secret; API key), by default after `name`."""
    prefix = name.upper().replace("-", "_")
    if platform == "shopify":
        store = ShopifySandbox(shop=name, **store_kw).start()
        (token,) = env or (f"{prefix}_TOKEN",)
        monkeypatch.setenv(token, store.token)
        connect = ["shopify", name, "--role", "vendor", "--shop", store.url, "--token-env", token]
    elif platform == "woocommerce":
        store = WooCommerceSandbox(**store_kw).start()
        key, secret = env or (f"{prefix}_CK", f"{prefix}_CS")
        monkeypatch.setenv(key, store.consumer_key)
        monkeypatch.setenv(secret, store.consumer_secret)
        connect = ["woocommerce", name, "--url", store.url, "--key-env", key, "--secret-env", secret]
    else:
        store = SquarespaceSandbox(**store_kw).start()
        (api_key,) = env or (f"{prefix}_KEY",)
        monkeypatch.setenv(api_key, store.api_key)
        connect = ["squarespace", name, "--api-key-env", api_key, "--api-url", store.url]
    r = cli("connect", *connect)
    assert r.code == 0, r
    return VendorStore(platform, store)


def start_merchant(cli: Any, monkeypatch: Any, *, settings: str = "", **store_kw: Any) -> ShopifySandbox:
    """`vsc init`, start the merchant sandbox, connect it as `mall`, and write `settings` to vsc.yaml."""
    merchant = ShopifySandbox(shop="mall", **store_kw).start()
    monkeypatch.setenv("MALL_TOKEN", merchant.token)
    # Sandbox stores have no search-index lag, so pending pushes need not wait one out.
    from vsc.connectors.shopify.orders import OrdersMixin

    monkeypatch.setattr(OrdersMixin, "search_lag_seconds", 0.0)
    assert cli("init").code == 0
    r = cli("connect", "shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token-env", "MALL_TOKEN")
    assert r.code == 0, r
    import os

    db = os.environ["VSC_DB"]
    with open(os.path.join(os.path.dirname(db), "vsc.yaml"), "w") as f:
        f.write(settings)
    return merchant


def open_market(
    platform: str, cli: Any, monkeypatch: Any, *, settings: str = "", vendor_currency: str = "USD"
) -> Market:
    """Start the stores, `vsc init`, connect both, and write `settings` to vsc.yaml.

    The merchant prices in USD; the vendor's store in `vendor_currency`."""
    merchant = start_merchant(cli, monkeypatch, settings=settings)
    env = {"shopify": ("ACME_TOKEN",), "woocommerce": ("CK", "CS"), "squarespace": ("SQ",)}[platform]
    return Market(merchant, start_vendor(platform, "acme", cli, monkeypatch, env=env, currency=vendor_currency))
