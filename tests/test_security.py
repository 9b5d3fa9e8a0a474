"""Secrets never land anywhere but the keyring and the environment.

A marketplace with the merchant and one vendor per platform is run through the whole
mission on the real command line at debug level, with distinctive secrets given every
way vsc takes them: environment variables (merchant token, WooCommerce consumer secret,
Squarespace API key, SMTP password), the system keyring (`--token` for the Shopify
vendor, `--key` for the WooCommerce consumer key), and a wrong token refused at connect.
Injected failures (an HTTP 500 on a write, a 401 on a read, an unexpected exception)
send the error paths and their tracebacks to the debug log.

Then every byte vsc left behind is searched for each secret, raw and in the encodings
it travels in (HTTP Basic and SMTP AUTH base64, URL encoding) and by a distinctive core
of it: the database and its side files, the settings, the lock, the CSV export, every
other file under the test's home, every line of stdout and stderr of every command, and
the e-mails the SMTP server received. State and settings files must be 0600.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from urllib.parse import quote, quote_plus

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.marketplace import VendorStore
from tests.test_notify import Inbox, free_port
from tests.test_orders import ADDRESS
from vsc.sandbox.base import Fault
from vsc.sandbox.shopify import ShopifySandbox
from vsc.sandbox.squarespace import SquarespaceSandbox
from vsc.sandbox.woocommerce import WooCommerceSandbox

# Each secret holds a distinctive core (the part between the prefix and the tail) that must
# not show up on its own either, and characters that URL encoding changes.
SECRETS = {
    "merchant token (env)": "shpat_MALLcoreQ7v+token/4821",
    "shopify vendor token (--token, keyring)": "shpat_ACMEcoreK3y+ring/9935",
    "woocommerce consumer key (--key, keyring)": "ck_WOOKEYcoreZ8+kr/1170",
    "woocommerce consumer secret (env)": "cs_WOOSECcoreP5+env/6642",
    "squarespace api key (env)": "SQKEYcoreM2w+env/55018",
    "smtp password (env)": "SMTPcorePw9+mail/30417",
    "wrong token refused at connect (env)": "shpat_WRONGcoreX1+bad/7007",
}
SMTP_USER = "vsc-mailer"


def forms(secret: str) -> dict[str, str]:
    """The shapes a secret could leak in."""
    core = secret.split("core", 1)[1].split("+", 1)[0]
    return {
        "raw": secret,
        "core": "core" + core,
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "base64": base64.b64encode(secret.encode()).decode(),
        "json-escaped": json.dumps(secret)[1:-1].replace("/", "\\/"),
    }


def leaks(blob: bytes, extra: dict[str, str]) -> list[str]:
    """Every (secret, form) found in `blob`."""
    found = []
    for name, secret in SECRETS.items():
        for form, text in forms(secret).items():
            if text.encode() in blob:
                found.append(f"{name} as {form}")
    for name, text in extra.items():
        if text.encode() in blob:
            found.append(name)
    return found


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def smtp_server():
    """An SMTP server on 127.0.0.1 that takes the known user and password (no TLS on loopback)."""
    inbox = Inbox()
    inbox.logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SECRETS["smtp password (env)"].encode()
        inbox.logins.append(ok)
        return AuthResult(success=ok, handled=ok)

    port = free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False)
    server.start()
    yield port, inbox
    server.stop()


def test_a_full_mission_at_debug_level_leaves_no_secret_behind(cli, memory_keyring, monkeypatch, isolated, smtp_server):
    from vsc.connectors.squarespace import SquarespaceConnector
    from vsc.secrets import redactor

    port, inbox = smtp_server
    merchant = ShopifySandbox(shop="mall", token=SECRETS["merchant token (env)"]).start()
    shop = VendorStore("shopify", ShopifySandbox(shop="acme", token=SECRETS["shopify vendor token (--token, keyring)"]))
    woo = VendorStore(
        "woocommerce",
        WooCommerceSandbox(
            consumer_key=SECRETS["woocommerce consumer key (--key, keyring)"],
            consumer_secret=SECRETS["woocommerce consumer secret (env)"],
        ),
    )
    sq = VendorStore("squarespace", SquarespaceSandbox(api_key=SECRETS["squarespace api key (env)"]))
    vendors = {"acme": shop, "woo": woo, "sq": sq}
    for v in vendors.values():
        v.store.start()
    monkeypatch.setenv("MALL_TOKEN", SECRETS["merchant token (env)"])
    monkeypatch.setenv("WOO_SECRET", SECRETS["woocommerce consumer secret (env)"])
    monkeypatch.setenv("SQ_KEY", SECRETS["squarespace api key (env)"])
    monkeypatch.setenv("VSC_SMTP_PASSWORD", SECRETS["smtp password (env)"])
    monkeypatch.setenv("WRONG_TOKEN", SECRETS["wrong token refused at connect (env)"])
    from vsc.connectors.shopify.orders import OrdersMixin

    monkeypatch.setattr(OrdersMixin, "search_lag_seconds", 0.0)  # sandboxes have no search-index lag

    outputs: list[tuple[str, bytes]] = []

    def run(*args, code: int | None = 0):
        # Each command as a fresh process would see it: no secret registered with the redactor yet.
        redactor._secrets.clear()
        r = cli("--debug", *args)
        outputs.append((args[0], f"{r.out}\n{r.err}".encode()))  # the arguments are the test's, not vsc's
        if code is not None:
            assert r.code == code, r
        return r

    try:
        run("init")
        settings = isolated / "vsc.yaml"
        settings.write_text(
            f"smtp: {{host: 127.0.0.1, port: {port}, starttls: false, user: {SMTP_USER}, "
            "password_env: VSC_SMTP_PASSWORD, from: market@example.com, timeout: 5}\n"
            "vendors:\n" + "".join(f"  {name}: {{email: orders@{name}.example}}\n" for name in vendors)
        )
        # -- connect: every way a secret is given ------------------------------------------------
        run("connect", "shopify", "mall", "--role", "merchant", "--shop", merchant.url, "--token-env", "MALL_TOKEN")
        r = run(
            "connect",
            "shopify",
            "acme",
            "--role",
            "vendor",
            "--shop",
            shop.store.url,
            "--token",
            SECRETS["shopify vendor token (--token, keyring)"],
        )
        assert "shell history" in r.err and "--token-env" in r.err
        r = run(
            "connect",
            "woocommerce",
            "woo",
            "--url",
            woo.store.url,
            "--key",
            SECRETS["woocommerce consumer key (--key, keyring)"],
            "--secret-env",
            "WOO_SECRET",
        )
        assert "shell history" in r.err
        run("connect", "squarespace", "sq", "--api-key-env", "SQ_KEY", "--api-url", sq.store.url)
        bad = run(
            "connect",
            "shopify",
            "bad",
            "--role",
            "vendor",
            "--shop",
            shop.store.url,
            "--token-env",
            "WRONG_TOKEN",
            code=2,
        )
        assert "nothing was saved" in bad.err
        plain = run(
            "connect",
            "shopify",
            "far",
            "--role",
            "vendor",
            "--shop",
            "http://shop.example.com",
            "--token-env",
            "MALL_TOKEN",
            code=2,
        )
        assert "plain http://" in plain.err
        assert {e[1] for e in memory_keyring.entries} == {"acme:token", "woo:key"}
        run("stores", "--json")
        run("stores", "check", "--json")

        # -- map: publish one product of each vendor ---------------------------------------------
        for name, v in vendors.items():
            run("products", name, "--json")
            run("map", "add", name, v.add_shirt())
        links = run("map", "list", "--json").json()
        run("map", "export", "--csv", isolated / "links.csv")
        merchant_variant = {
            (link["vendor"], v["sku"]): v["merchant_variant_id"] for link in links for v in link["variants"]
        }
        run("sync", "--json")

        # -- orders, stock, failures ----------------------------------------------------------------
        for name in vendors:
            merchant.place_order(
                [(merchant_variant[(name, "SH-S")], 1)], email="ada@example.com", shipping_address=ADDRESS
            )
        shop.set_stock("SH-M", 7)
        sq.sell("SH-M", 1)
        woo.store.inject(Fault("status", status=500, times=1, match=woo.store.is_write))  # the push fails once
        sq.store.inject(Fault("status", status=401, times=1))  # sq's first read this pass is refused
        r = run("sync", "--json", code=1)
        doc = r.json()
        errors = " | ".join(doc["errors"])
        assert "woo: the store answered HTTP 500" in errors and "sq (catalog)" in errors and "401" in errors, errors
        assert "Traceback" in r.err  # the debug log carries the failures' tracebacks
        assert f"woo POST {woo.store.url}/wp-json/wc/v3/orders" in r.err and f"sq GET {sq.store.url}" in r.err
        r = run("sync", "--json")  # retried: every push goes through
        assert all(len(v.pushed_orders()) == 1 for v in vendors.values())
        assert len(inbox.messages) == 3 and inbox.logins and all(inbox.logins)  # sent after SMTP AUTH

        # -- tracking ------------------------------------------------------------------------------
        for i, v in enumerate(vendors.values()):
            v.ship(v.pushed_orders()[0]["id"], f"1Z00{i}")
        r = run("sync", "--json")
        assert [a for a in r.json()["actions"] if a["stream"] == "tracking" and a["status"] == "done"]

        # -- looking at it -------------------------------------------------------------------------
        run("sync", "--dry-run", "--json")
        run("status", "--json")
        run("status")
        run("log", "--json")
        run("log", "--store", "woo")
        run("why", "SH-S", "--json")
        run("why", "SH-M")
        run("reconcile", "--json")
        run("schedule", "systemd", "--every", "5m")
        run("schedule", "cron", "--every", "5m", "--json")

        # -- a bug: an unexpected exception whose text holds a secret --------------------------------
        def explode(self):
            raise RuntimeError(f"unexpected answer to Bearer {SECRETS['squarespace api key (env)']}")

        monkeypatch.setattr(SquarespaceConnector, "check", explode)
        r = run("stores", "check", "sq", code=1)
        assert "vsc hit a bug" in r.err and "RuntimeError" in r.err and "Traceback" in r.err
    finally:
        merchant.stop()
        for v in vendors.values():
            v.store.stop()

    # -- the scan ----------------------------------------------------------------------------------
    # Basic auth carries the WooCommerce key and secret together; SMTP AUTH PLAIN the user and password.
    woo_pair = f"{SECRETS['woocommerce consumer key (--key, keyring)']}:{SECRETS['woocommerce consumer secret (env)']}"
    smtp_plain = f"\0{SMTP_USER}\0{SECRETS['smtp password (env)']}"
    extra = {
        "woocommerce Basic auth header": base64.b64encode(woo_pair.encode()).decode(),
        "SMTP AUTH PLAIN": base64.b64encode(smtp_plain.encode()).decode(),
    }
    files = sorted(p for p in isolated.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"vsc.db", "vsc.yaml", "vsc.db.lock", "links.csv"} <= names, names
    problems = {str(p.relative_to(isolated)): leaks(p.read_bytes(), extra) for p in files}
    for i, (command, blob) in enumerate(outputs):
        problems[f"stdout/stderr of command {i} (vsc {command} ...)"] = leaks(blob, extra)
    for i, message in enumerate(inbox.messages):
        problems[f"e-mail {i} to {message['To']}"] = leaks(message.as_bytes(), extra)
    assert {where: found for where, found in problems.items() if found} == {}
    # The scan finds what it looks for (a scan that cannot fail proves nothing).
    assert leaks(SECRETS["merchant token (env)"].encode(), {}) and leaks(extra["SMTP AUTH PLAIN"].encode(), extra)
    found = leaks(b"x" + quote(SECRETS["smtp password (env)"], safe="").encode(), {})
    assert {"smtp password (env) as core", "smtp password (env) as url-encoded"} <= set(found)

    # -- file modes ---------------------------------------------------------------------------------
    for name in ("vsc.db", "vsc.yaml", "vsc.db.lock"):
        assert mode(isolated / name) == 0o600, name
    for p in isolated.glob("vsc.db*"):  # journal / WAL side files, if any are left
        assert mode(p) == 0o600, p.name
    # SQLite's write-ahead log and its index, which hold pages of the database while it is open,
    # get the database's mode, whatever the umask.
    from vsc.state import State

    state = State.open(isolated / "vsc.db")
    old_umask = os.umask(0o022)
    try:
        state.db.conn.execute("BEGIN IMMEDIATE")
        state.db.conn.execute("INSERT INTO stores (name) VALUES ('journal-probe')")
        assert mode(isolated / "vsc.db-wal") == 0o600 and mode(isolated / "vsc.db-shm") == 0o600
        state.db.conn.execute("ROLLBACK")
    finally:
        os.umask(old_umask)
        state.close()


def test_an_smtp_password_is_never_sent_unencrypted_off_loopback(tmp_path):
    from vsc import config
    from vsc.errors import SettingsError

    path = tmp_path / "vsc.yaml"
    smtp = "smtp: {{host: {host}, user: u, password_env: P, from: m@example.com{more}}}\n"
    for host, more in (
        ("mail.example.com", ""),
        ("mail.example.com", ", ssl: true"),
        ("127.0.0.1", ", starttls: false"),
    ):
        path.write_text(smtp.format(host=host, more=more))
        assert config.load(path).smtp.host == host
    path.write_text(smtp.format(host="mail.example.com", more=", starttls: false"))
    with pytest.raises(SettingsError) as caught:
        config.load(path)
    assert caught.value.problems == [
        "smtp: the SMTP password would travel unencrypted to mail.example.com (starttls and ssl are off); "
        "set starttls: true (port 587) or ssl: true (port 465)"
    ]
