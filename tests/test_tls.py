"""Certificate checking over real TLS: vendor sandboxes served over HTTPS on 127.0.0.1 with a
certificate from a private CA (trustme) that no trust store knows.

Verification is on by default and refuses them with a clear message (exit 2 at connect,
nothing saved; a store failure in a pass); a store's own `--ca-bundle` or
REQUESTS_CA_BUNDLE makes them acceptable; `--insecure-skip-tls-verify` accepts anything
and says so loudly at connect, in `vsc stores` and `vsc status`, and at every pass.
"""

from __future__ import annotations

import ssl

import pytest

from tests.marketplace import VendorStore
from vsc.sandbox.shopify import ShopifySandbox
from vsc.sandbox.squarespace import SquarespaceSandbox
from vsc.sandbox.woocommerce import WooCommerceSandbox

trustme = pytest.importorskip("trustme")

OFF = "TLS certificate verification is OFF"


def server_context(ca) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture
def tls_world(cli, monkeypatch, isolated):
    """A plain-http (loopback) merchant, and a private CA whose PEM is at `ca.pem`."""
    ca = trustme.CA()
    pem = isolated / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    merchant = ShopifySandbox(shop="mall").start()
    monkeypatch.setenv("MALL_TOKEN", merchant.token)
    assert cli("init").code == 0
    r = cli("connect", "shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token-env", "MALL_TOKEN")
    assert r.code == 0, r
    stores = [merchant]
    yield ca, pem, stores
    for s in stores:
        s.stop()


def test_private_ca_refused_by_default_accepted_with_its_bundle(cli, monkeypatch, tls_world, isolated):
    ca, pem, stores = tls_world
    woo = WooCommerceSandbox().start(tls=server_context(ca))
    stores.append(woo)
    assert woo.url.startswith("https://127.0.0.1:")
    monkeypatch.setenv("CK", woo.consumer_key)
    monkeypatch.setenv("CS", woo.consumer_secret)
    connect = ["connect", "woocommerce", "acme", "--url", woo.url, "--key-env", "CK", "--secret-env", "CS"]

    refused = cli(*connect)
    assert refused.code == 2, refused
    assert "TLS certificate of 127.0.0.1" in refused.err and "could not be verified" in refused.err
    assert "nothing was saved" in refused.err and "--ca-bundle PATH" in refused.err
    assert woo.count() == 0  # refused in the handshake: not one request reached the store
    assert [s["name"] for s in cli("stores", "--json").json()] == ["mall"]

    missing = cli(*connect, "--ca-bundle", isolated / "nope.pem")
    assert missing.code == 2 and "cannot read the CA bundle" in missing.err, missing
    (isolated / "der.bin").write_bytes(b"\x30\x82\x01\x0a")
    not_pem = cli(*connect, "--ca-bundle", isolated / "der.bin")
    assert not_pem.code == 2 and "holds no PEM certificate" in not_pem.err, not_pem
    both = cli(*connect, "--ca-bundle", pem, "--insecure-skip-tls-verify")
    assert both.code == 2 and "not both" in both.err, both

    ok = cli(*connect, "--ca-bundle", pem)
    assert ok.code == 0, ok
    assert OFF not in ok.err
    (row,) = [s for s in cli("stores", "--json").json() if s["name"] == "acme"]
    assert row["tls"] == {"verify": True, "ca_bundle": str(pem)}

    # A pass reaches the store with its own bundle, even when REQUESTS_CA_BUNDLE names another CA.
    other = isolated / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    vendor = VendorStore("woocommerce", woo)
    assert cli("map", "add", "acme", vendor.add_shirt()).code == 0
    r = cli("sync", "--json")
    assert r.code == 0, r
    assert woo.count() > 0 and OFF not in r.err

    pem.rename(pem.with_suffix(".moved"))  # the bundle went away: the store fails, saying which file
    gone = cli("sync", "--json")
    assert gone.code == 1 and f"cannot read its CA bundle '{pem}'" in " ".join(gone.json()["errors"]), gone


def test_requests_ca_bundle_is_honoured_and_a_changed_certificate_fails_the_store(cli, monkeypatch, tls_world):
    ca, pem, stores = tls_world
    acme = ShopifySandbox(shop="acme").start(tls=server_context(ca))
    stores.append(acme)
    monkeypatch.setenv("ACME_TOKEN", acme.token)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pem))  # the usual way behind a corporate proxy
    connect = ["connect", "shopify", "acme", "--role", "vendor", "--shop", acme.url, "--token-env", "ACME_TOKEN"]
    assert cli(*connect).code == 0
    vendor = VendorStore("shopify", acme)
    assert cli("map", "add", "acme", vendor.add_shirt()).code == 0
    assert cli("sync").code == 0

    # Without the bundle (a cron job that lost it, or someone in the middle with another
    # certificate) the store fails alone, with the reason and what to do; nothing is retried.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    acme.reset_requests()
    r = cli("sync", "--json")
    assert r.code == 1, r
    errors = " ".join(r.json()["errors"])
    assert "acme" in errors and "could not be verified" in errors
    assert acme.count() == 0
    status = cli("status", "--json").json()
    (row,) = [s for s in status["stores"] if s["name"] == "acme"]
    assert row["last_pass"]["result"] == "failed"
    check = cli("stores", "check", "acme", "--json")
    assert check.code == 1 and check.json()[0]["status"] == "tls failed"

    # The store's own bundle, set on the store (tried on it first); a wrong one changes nothing.
    other = pem.with_name("other-ca.pem")
    trustme.CA().cert_pem.write_to_path(str(other))
    wrong = cli("stores", "tls", "acme", "--ca-bundle", other)
    assert wrong.code == 2 and "nothing was changed" in wrong.err and "could not be verified" in wrong.err, wrong
    assert cli("stores", "tls", "acme").out.strip() == "acme: TLS certificate verified"
    fixed = cli("stores", "tls", "acme", "--ca-bundle", pem)
    assert fixed.code == 0 and fixed.out.strip() == f"acme: TLS certificate verified against {pem}", fixed
    assert cli("sync").code == 0


def test_insecure_flag_is_loud_at_connect_in_listings_and_at_every_pass(cli, monkeypatch, tls_world):
    ca, pem, stores = tls_world
    sq = SquarespaceSandbox().start(tls=server_context(ca))
    stores.append(sq)
    monkeypatch.setenv("SQ", sq.api_key)
    r = cli("connect", "squarespace", "acme", "--api-key-env", "SQ", "--api-url", sq.url, "--insecure-skip-tls-verify")
    assert r.code == 0, r
    assert "WARNING" in r.err and OFF in r.err and "acme" in r.err

    listed = cli("stores")
    assert "UNVERIFIED" in listed.out
    (row,) = [s for s in cli("stores", "--json").json() if s["name"] == "acme"]
    assert row["tls"] == {"verify": False, "ca_bundle": None}
    assert OFF in cli("status").err
    (srow,) = [s for s in cli("status", "--json").json()["stores"] if s["name"] == "acme"]
    assert srow["tls"]["verify"] is False

    vendor = VendorStore("squarespace", sq)
    assert cli("map", "add", "acme", vendor.add_shirt()).code == 0
    for _ in range(2):
        p = cli("sync", "--json")
        assert p.code == 0, p
        assert f"acme: {OFF}" in p.err
        p.json()  # stdout stays one JSON document; the warning is on stderr
    assert sq.count() > 0

    # Back to checking: refused while the store's CA is unknown (nothing changed), then with its bundle.
    still = cli("stores", "tls", "acme", "--default")
    assert still.code == 2 and "nothing was changed" in still.err, still
    assert cli("stores", "tls", "acme").out.strip() == "acme: TLS certificate UNVERIFIED"
    assert cli("stores", "tls", "acme", "--ca-bundle", pem).code == 0
    p = cli("sync", "--json")
    assert p.code == 0 and OFF not in p.err, p
