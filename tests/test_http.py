"""Unit tests of the HTTP layer against a real little HTTP/1.1 server on 127.0.0.1 that answers
from a script and counts the connections it accepted: URL rules, retries, redirects, redaction,
keep-alive, timeouts and cuts, signed URLs, proxies, and the `Response` the connectors read."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import select
import socket
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from vsc.connectors import http
from vsc.connectors.http import Response, StoreSession, validate_store_url
from vsc.errors import ApiError, RateLimited, RetriableError, TlsError, UsageError
from vsc.secrets import Redactor, redactor


@dataclass
class Answer:
    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False  # read the request, then close the connection without answering
    close: bool = False  # answer, then close the kept-alive connection without saying so
    stall: float = 0.0  # wait this long before answering (past the client's read timeout)
    delay: float = 0.0  # wait this long, then answer
    gzip: bool = False


@dataclass
class Call:
    method: str
    target: str  # as on the request line: a path and query (an absolute URL through a proxy)
    headers: dict[str, str]
    body: bytes
    connection: int  # which accepted connection carried it (1, 2, ...)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def _serve(self) -> None:
        script: Script = self.server.script
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        number = self.server.numbers[id(self.request)]
        answer = script.next(self.command, urlsplit(self.path).path)
        with script.lock:
            script.calls.append(Call(self.command, self.path, dict(self.headers.items()), body, number))
        if answer.stall or answer.delay:
            time.sleep(answer.stall or answer.delay)
        if answer.cut or answer.stall:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = json.dumps(answer.json).encode() if answer.json is not None else answer.body
        self.send_response(answer.status)
        if answer.json is not None:
            self.send_header("Content-Type", "application/json")
        if answer.gzip:
            payload = gzip.compress(payload)
            self.send_header("Content-Encoding", "gzip")
        for k, v in answer.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if answer.close:
            self.wfile.flush()
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script
    numbers: dict[int, int]

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.script.lock:
            self.script.connections += 1
            self.numbers[id(conn)] = self.script.connections
        return conn, addr


class Script:
    """Answers by (method, path) in the order they were added; the last one repeats."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.lock = threading.Lock()
        self.answers: dict[tuple[str, str], list[Answer]] = defaultdict(list)
        self.calls: list[Call] = []
        self.connections = 0
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.script = self
        self.server.numbers = {}
        if tls is not None:  # handshakes in the accepting thread: enough for a test
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def add(self, method: str, path: str, **kw: Any) -> None:
        self.answers[(method, path)].append(Answer(**kw))

    def next(self, method: str, path: str) -> Answer:
        with self.lock:
            queue = self.answers.get((method, path))
            if not queue:
                return Answer(599, {"error": f"nothing scripted for {method} {path}"})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def store() -> Iterator[Script]:
    s = Script()
    yield s
    s.stop()


@pytest.fixture
def elsewhere() -> Iterator[Script]:
    """Another origin, where a store's credentials must never arrive."""
    s = Script()
    yield s
    s.stop()


def session(store: Script, **kw: Any) -> StoreSession:
    kw.setdefault("headers", {"X-Shopify-Access-Token": "shpat_x"})
    kw.setdefault("sleep", lambda s: None)
    return StoreSession("acme", "test", store.url, **kw)


@pytest.mark.parametrize(
    "url",
    ["https://shop.example.com", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "http://127.9.9.9"],
)
def test_allowed_urls(url):
    assert validate_store_url(url) == url


@pytest.mark.parametrize("url", ["http://shop.example.com", "http://10.0.0.1", "ftp://x", "shop.example.com"])
def test_refused_urls(url):
    with pytest.raises(UsageError):
        validate_store_url(url)


def test_reads_retry_5xx_and_429_then_succeed(store):
    store.add("GET", "/x", status=503)
    store.add("GET", "/x", status=429, headers={"Retry-After": "2"})
    store.add("GET", "/x", json={"ok": True})
    waits: list[float] = []
    s = session(store, sleep=waits.append)
    assert s.request("GET", "/x").json() == {"ok": True}
    assert s.stats["requests"] == 3 and s.stats["throttled"] == 1 and len(store.calls) == 3
    assert waits[1] == 2.0  # the store's Retry-After


def test_unsafe_write_is_not_repeated_after_5xx(store):
    store.add("POST", "/orders", status=502)
    with pytest.raises(RetriableError):
        session(store).request("POST", "/orders", json={})
    assert len(store.calls) == 1


def test_write_with_idempotency_key_is_retried(store):
    store.add("POST", "/orders", status=500)
    store.add("POST", "/orders", status=201, json={"id": 1})
    r = session(store).request("POST", "/orders", json={}, headers={"Idempotency-Key": "k"})
    assert r.status_code == 201
    assert len(store.calls) == 2 and all(c.header("Idempotency-Key") == "k" for c in store.calls)


def test_429_is_retried_even_for_writes_and_gives_up_typed(store):
    store.add("POST", "/orders", status=429)
    with pytest.raises(RateLimited):
        session(store, max_retries=2).request("POST", "/orders", json={})
    assert len(store.calls) == 3


def test_unsafe_write_cut_after_sending_is_not_repeated(store):
    store.add("POST", "/orders", cut=True)
    s = session(store)
    with pytest.raises(RetriableError, match="cut after sending: .*; the store may or may not have applied the write"):
        s.request("POST", "/orders", json={})
    assert len(store.calls) == 1 and s.stats["connection_errors"] == 1
    # A read cut the same way is sent again, on a new connection.
    store.add("GET", "/x", cut=True)
    store.add("GET", "/x", json=[1])
    assert s.request("GET", "/x").json() == [1]
    assert [(c.path, c.connection) for c in store.calls] == [("/orders", 1), ("/x", 2), ("/x", 3)]


def test_a_connection_that_never_opened_is_retried_even_for_a_write():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = StoreSession("acme", "test", f"http://127.0.0.1:{port}", sleep=lambda s: None, max_retries=2)
    with pytest.raises(RetriableError, match=r"127.0.0.1:\d+ failed \(could not connect: .+\); nothing was sent"):
        s.request("POST", "/orders", json={})  # refused, or timed out where a firewall drops the packets
    assert s.stats["connection_errors"] == 3 and s.stats["requests"] == 3


def test_read_timeouts_repeat_reads_only(store):
    store.add("GET", "/slow", stall=1.0)
    store.add("POST", "/slow", stall=1.0)
    s = session(store, timeout=(2.0, 0.2), max_retries=1)
    with pytest.raises(RetriableError, match="timed out$"):
        s.request("GET", "/slow")
    assert s.stats["timeouts"] == 2
    with pytest.raises(RetriableError, match="timed out; the store may or may not have applied the write"):
        s.request("POST", "/slow", json={"a": 1})
    assert s.stats["timeouts"] == 3
    assert [c.method for c in store.calls] == ["GET", "GET", "POST"]


def test_4xx_is_returned_to_the_connector(store):
    store.add("GET", "/x", status=404, json={"code": "nope"})
    r = session(store).request("GET", "/x")
    assert r.status_code == 404 and r.json() == {"code": "nope"} and not r.ok


def test_redactor_blanks_registered_secrets(caplog):
    r = Redactor()
    r.register("shpat_supersecret")
    logger = logging.getLogger("vsc.test.redact")
    logger.addFilter(r)
    with caplog.at_level(logging.INFO, logger="vsc.test.redact"):
        logger.info("token is %s", "shpat_supersecret")
    assert "shpat_supersecret" not in caplog.text and "***" in caplog.text


def test_basic_auth_is_one_precomputed_header_the_log_filter_knows(store):
    store.add("GET", "/wp-json/wc/v3", json={})
    s = StoreSession("woo", "woocommerce", store.url, auth=("ck_key", "cs_sécret"))
    s.request("GET", "/wp-json/wc/v3")
    sent = store.calls[0].header("Authorization")
    assert sent == "Basic Y2tfa2V5OmNzX3PpY3JldA=="  # latin-1, as requests' HTTPBasicAuth sends it
    assert redactor.redact(f"header {sent}") == "header Basic ***"


def test_redirects_stay_within_the_store_and_never_turn_a_write_into_a_read(store, elsewhere):
    store.add("GET", "/a", status=301, headers={"Location": "/b?page=2"})
    store.add("GET", "/b", json={"ok": True})
    s = session(store)
    assert s.request("GET", "/a", params={"page": 1}).json() == {"ok": True}
    assert [c.target for c in store.calls] == ["/a?page=1", "/b?page=2"]

    # Elsewhere (another host, plain http to https, another port): the credential header would go along.
    port = urlsplit(store.url).port
    for target in ("https://evil.example/b", f"https://127.0.0.1:{port}/b", f"{elsewhere.url}/b"):
        store.add("GET", "/c", status=302, headers={"Location": target})
        with pytest.raises(ApiError, match="did not follow it: it leads to another address"):
            s.request("GET", "/c")
        store.answers.pop(("GET", "/c"))
    assert elsewhere.calls == [] and elsewhere.connections == 0

    # A POST answered with 302 would come back as a GET; a 307 keeps the method and is followed.
    store.add("POST", "/orders", status=302, headers={"Location": "/orders/"})
    with pytest.raises(ApiError, match="would turn this write into a read"):
        s.request("POST", "/orders", json={})
    store.add("POST", "/v2/orders", status=307, headers={"Location": "/v2/orders/"})
    store.add("POST", "/v2/orders/", status=201, json={"id": 1})
    assert s.request("POST", "/v2/orders", json={"a": 1}).json() == {"id": 1}
    assert store.calls[-1].method == "POST" and store.calls[-1].body == b'{"a": 1}'

    store.add("GET", "/loop", status=302, headers={"Location": "/loop"})
    with pytest.raises(ApiError, match="more than 5 redirects"):
        s.request("GET", "/loop")
    assert len(store.calls) == 2 + 3 + 1 + 2 + 6 and s.stats["status_302"] == 3 + 1 + 6


def test_a_store_session_keeps_one_connection_for_every_request(store):
    """Exactly the requests asked for, each once, all over the first connection the server
    accepted; a connection the server closed while idle is replaced without failing a request."""
    store.add("GET", "/products", json=[{"id": 1}], gzip=True)
    store.add("POST", "/orders", status=201, json={"id": 7})
    store.add("PUT", "/orders/7", json={"id": 7})
    store.add("GET", "/missing", status=404, json={"code": "nope"})
    s = session(store)
    assert s.request("GET", "/products", params={"page": 2, "status": None, "ids": [1, 2]}).json() == [{"id": 1}]
    assert s.request("POST", "/orders", json={"a": "é"}).status_code == 201
    assert s.request("PUT", "/orders/7", json={}).json() == {"id": 7}
    assert s.request("GET", "/missing").status_code == 404
    assert [(c.method, c.target) for c in store.calls] == [
        ("GET", "/products?page=2&ids=1&ids=2"),
        ("POST", "/orders"),
        ("PUT", "/orders/7"),
        ("GET", "/missing"),
    ]
    assert store.connections == 1 and {c.connection for c in store.calls} == {1}
    first = store.calls[0]
    assert first.header("X-Shopify-Access-Token") == "shpat_x" and first.header("Accept") == "application/json"
    assert first.header("Accept-Encoding") == "gzip, deflate" and first.header("User-Agent").startswith("vsc/")
    assert store.calls[1].body == b'{"a": "\\u00e9"}' and store.calls[1].header("Content-Type") == "application/json"
    assert s.stats["requests"] == 4 and s.stats["writes"] == 2

    # The server drops the kept-alive connection after answering (an idle timeout): the pool sees
    # it closed before reusing it and opens another; the write after it is sent once.
    store.add("GET", "/bye", json={}, close=True)
    s.request("GET", "/bye")
    time.sleep(0.1)  # let the server's close reach the client's socket
    assert s.request("POST", "/orders", json={}).status_code == 201
    assert store.connections == 2 and [c.connection for c in store.calls[-2:]] == [1, 2]
    assert len(store.calls) == 6 and s.stats["connection_errors"] == 0


def test_threads_share_a_session(store):
    store.add("GET", "/x", json={"ok": True})
    s = session(store)
    results: list[Any] = []

    def work() -> None:
        results.extend(s.request("GET", "/x").json() for _ in range(10))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"ok": True}] * 40 and len(store.calls) == 40 and s.stats["requests"] == 40
    assert store.connections <= 4


def test_signed_urls_go_bare_with_the_form_in_order(store, elsewhere, caplog):
    elsewhere.add("POST", "/upload", status=204)
    elsewhere.add("GET", "/result.jsonl", body=b'{"a":1}\n{"a":2}\n', gzip=True)
    s = session(store, auth=("ck", "cs"))
    with caplog.at_level(logging.DEBUG, logger="vsc.http"):
        r = s.request(
            "POST",
            f"{elsewhere.url}/upload?signature=s3cr3t",
            data={"key": "tmp/1/v.jsonl", "policy": "p"},
            files={"file": ("v.jsonl", b'{"x":1}\n', "text/jsonl")},
            signed=True,
            write=False,
        )
        assert r.status_code == 204
        got = s.request("GET", f"{elsewhere.url}/result.jsonl?signature=s3cr3t", signed=True)
    assert got.text.splitlines() == ['{"a":1}', '{"a":2}']
    assert "s3cr3t" not in caplog.text and f"{elsewhere.url}/upload" in caplog.text
    upload, download = elsewhere.calls
    for call in (upload, download):
        assert call.header("Authorization") is None and call.header("X-Shopify-Access-Token") is None
    ctype = upload.header("Content-Type")
    assert ctype.startswith("multipart/form-data; boundary=")
    body = upload.body.decode()
    assert body.index('name="key"') < body.index('name="policy"') < body.index('name="file"; filename="v.jsonl"')
    assert "Content-Type: text/jsonl" in body and '{"x":1}' in body
    assert store.calls == [] and s.stats["writes"] == 0


def test_response_reads_like_requests():
    link = '<https://w.example/wp-json/wc/v3/products?page=3>; rel="next", <https://w.example/p?page=1>; rel="prev"'
    r = Response(
        200, {"Link": link, "content-type": "text/plain; charset=ISO-8859-1"}, "café".encode("latin-1"), "u", "GET"
    )
    assert r.links["next"]["url"] == "https://w.example/wp-json/wc/v3/products?page=3"
    assert r.links["prev"] == {"url": "https://w.example/p?page=1", "rel": "prev"}
    assert r.text == "café" and r.request.method == "GET" and not r.is_redirect
    with pytest.raises(ValueError):
        r.json()
    assert Response(200, {}, b"<html>", "u", "GET").text == "<html>"
    with pytest.raises(ValueError):
        Response(200, {}, b"<html>", "u", "GET").json()
    with pytest.raises(ValueError):
        Response(200, {}, b"", "u", "GET").json()
    assert Response(200, {}, '{"a": "é"}'.encode("utf-16"), "u", "GET").json() == {"a": "é"}
    assert Response(302, {"Location": "/x"}, b"", "u", "GET").is_redirect
    assert Response(200, {}, b"", "u", "GET").links == {}


def test_an_unreadable_ca_bundle_is_a_tls_error(isolated):
    s = StoreSession("acme", "test", "https://127.0.0.1:1", verify=str(isolated / "gone.pem"), max_retries=0)
    with pytest.raises(TlsError, match="cannot read its CA bundle"):
        s.request("GET", "/x")
    assert s.stats["connection_errors"] == 0


@pytest.fixture
def proxy_env(monkeypatch):
    """An environment without any proxy variable, read again by vsc (they are looked up once)."""
    for name in list(__import__("os").environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    http._proxy_variables.cache_clear()
    yield monkeypatch
    http._proxy_variables.cache_clear()


def test_proxies_come_from_the_environment_and_no_proxy_is_honoured(store, elsewhere, proxy_env):
    elsewhere.add("GET", "/x", json={"via": "proxy"})  # plays the proxy: it gets the absolute URL
    store.add("GET", "/x", json={"via": "direct"})
    proxy_env.setenv("http_proxy", elsewhere.url)
    http._proxy_variables.cache_clear()
    assert session(store).request("GET", "/x").json() == {"via": "proxy"}
    assert [c.target for c in elsewhere.calls] == [f"{store.url}/x"] and store.calls == []

    for no_proxy in ("localhost,127.0.0.1", "example.com, 127.0.0.0/8"):
        proxy_env.setenv("no_proxy", no_proxy)
        assert session(store).request("GET", "/x").json() == {"via": "direct"}
    assert len(elsewhere.calls) == 1 and len(store.calls) == 2


def test_proxy_credentials_go_to_the_proxy_and_an_https_proxy_is_refused(store, elsewhere, proxy_env):
    elsewhere.add("GET", "/x", json={"via": "proxy"})
    proxy_env.setenv("http_proxy", elsewhere.url.replace("http://", "http://me:p%40ss@"))
    http._proxy_variables.cache_clear()
    assert session(store).request("GET", "/x").json() == {"via": "proxy"}
    sent = elsewhere.calls[0]
    assert sent.header("Proxy-Authorization") == "Basic " + base64.b64encode(b"me:p@ss").decode()
    assert sent.header("Host") == urlsplit(store.url).netloc and store.calls == []
    # TLS to the proxy itself (an https:// proxy) is not something vsc speaks: said, exit 2.
    proxy_env.setenv("https_proxy", "https://proxy.example:3128")
    s = StoreSession("acme", "test", "https://shop.example", sleep=lambda s: None)
    with pytest.raises(UsageError, match=r"proxy the environment names \(https://proxy.example:3128\) cannot be used"):
        s.request("GET", "/x")
    assert s.stats["connection_errors"] == 0


def test_a_pass_reaches_each_store_over_one_kept_alive_connection(cli, monkeypatch):
    """A steady `vsc sync` pass: every request vsc counts reached the store once, and each store
    (the merchant on Shopify, a WooCommerce vendor with Basic auth) saw one connection."""
    from tests.marketplace import open_market

    m = open_market("woocommerce", cli, monkeypatch)
    try:
        assert cli("map", "add", "acme", m.vendor.add_shirt()).code == 0
        assert cli("sync").code == 0
        m.vendor.set_stock("SH-S", 2)
        m.merchant.reset_requests()
        m.vendor.store.reset_requests()
        assert cli("sync").code == 0
        seen = {"mall": m.merchant.count(), "acme": m.vendor.store.count()}
        counted = {s["name"]: s["last_pass"]["requests"] for s in cli("status", "--json").json()["stores"]}
        assert counted == seen and min(seen.values()) > 0, (counted, seen)
        assert m.merchant.connections == 1 and m.vendor.store.connections == 1
        assert m.vendor.stock("SH-S") == 2 and m.merchant.writes
    finally:
        m.stop()


class _Tunnel(BaseHTTPRequestHandler):
    """An HTTP proxy that only tunnels (CONNECT), as corporate proxies for https do."""

    targets: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def do_CONNECT(self) -> None:
        self.targets.append(self.path)
        host, port = self.path.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            ends = [self.connection, upstream]
            while True:
                ready, _, _ = select.select(ends, [], [], 5)
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.connection else self.connection).sendall(data)
                if not ready:
                    return


def test_https_through_a_tunnelling_proxy_checks_the_store_certificate(proxy_env, isolated):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    pem = isolated / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    store = Script(tls=ctx)
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Tunnel)
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        store.add("GET", "/x", json={"ok": True})
        proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        http._proxy_variables.cache_clear()
        port = urlsplit(store.url).port
        _Tunnel.targets = []
        assert session(store, verify=str(pem)).request("GET", "/x").json() == {"ok": True}
        assert _Tunnel.targets == [f"127.0.0.1:{port}"] and len(store.calls) == 1
        # Without the store's CA the handshake through the tunnel fails; nothing is sent or retried.
        s = session(store)
        with pytest.raises(TlsError, match=rf"TLS certificate of 127.0.0.1:{port} could not be verified \(.+\)"):
            s.request("GET", "/x")
        assert len(store.calls) == 1 and s.stats["tls_errors"] == 1 and s.stats["requests"] == 1
    finally:
        proxy.shutdown()
        proxy.server_close()
        store.stop()


@pytest.mark.parametrize(("asked", "kept"), [(2, 2), (500, http.POOL_SIZE)])
def test_a_pool_keeps_at_most_its_size_of_idle_connections(store, asked, kept):
    """A pool opens the connections its threads use at once, and keeps at most its size of
    them for the next requests (a pass sizes it `concurrency` + 1); closing closes them all."""
    store.add("GET", "/x", json={"ok": True}, delay=0.3)
    s = session(store, pool_size=asked)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(s.request("GET", "/x").json())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool = s._store_pool()
    assert results == [{"ok": True}] * 4 and pool.opened == store.connections == 4
    assert pool.maxsize == kept and len(pool._idle) == min(4, kept)
    s.close()
    assert pool._idle == []


def test_a_pass_sizes_pools_to_its_concurrency(tmp_path, monkeypatch):
    from vsc.config import Settings
    from vsc.engine.context import Context
    from vsc.sandbox.shopify import ShopifySandbox
    from vsc.state import State, StoreRow

    shop = ShopifySandbox(shop="acme").start()
    try:
        monkeypatch.setenv("ACME_TOKEN", shop.token)
        state = State.create(tmp_path / "vsc.db")
        state.add_store(StoreRow("acme", "shopify", "vendor", shop.url, {"token": {"env": "ACME_TOKEN"}}))
        ctx = Context(state=state, settings=Settings(concurrency=5))
        connector = ctx.connector("acme")
        connector.check()
        pool = connector.session._store_pool()  # type: ignore[attr-defined]
        assert pool.maxsize == 6  # the 5 readers and the pass
        assert shop.connections == 1
        ctx.close()
        state.close()
    finally:
        shop.stop()


def test_transport_headers_bodies_and_targets(store):
    """What urllib3 did for vsc and the transport now does: case-blind headers with repeats
    joined, gzip and deflate (zlib or raw) answers decoded, damaged ones a cut, form fields
    quoted as browsers quote them, and a non-ASCII path percent-encoded on the wire."""
    import zlib

    from vsc.connectors.transport import Cut, Headers, decoded, multipart

    h = Headers([("Link", "<a>; rel=next"), ("link", "<b>; rel=prev"), ("Content-Type", "text/plain")])
    assert h["LINK"] == "<a>; rel=next, <b>; rel=prev" and "content-type" in h and list(h) == ["Link", "Content-Type"]
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decoded(raw.compress(b"x" * 50) + raw.flush(), "deflate") == b"x" * 50
    assert decoded(zlib.compress(b"y"), "Deflate") == b"y" and decoded(gzip.compress(b"z"), "gzip") == b"z"
    assert decoded(b"as is", None) == b"as is" and decoded(b"br", "br") == b"br"
    with pytest.raises(Cut, match="gzip body is damaged"):
        decoded(b"\x1f\x8bnot gzip", "gzip")
    body, ctype = multipart([('a"b', "v"), ("file", ('n"\r\n.txt', b"\x00data", "text/plain"))])
    boundary = ctype.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode()) and body.endswith(f"--{boundary}--\r\n".encode())
    assert b'name="a%22b"\r\n\r\nv\r\n' in body and b'filename="n%22%0D%0A.txt"\r\nContent-Type: text/plain' in body

    store.add("GET", "/boutique-%C3%A9t%C3%A9/x", json={"ok": True})  # (as the server reads it)
    s = StoreSession("acme", "test", f"{store.url}/boutique-été", sleep=lambda s: None)
    assert s.request("GET", "/x", params={"q": "é"}).json() == {"ok": True}
    assert store.calls[0].target == "/boutique-%C3%A9t%C3%A9/x?q=%C3%A9"


class RawServer:
    """A server on 127.0.0.1 that answers each request with the next scripted bytes as they are
    (what real stores and their CDNs send and the scripted `http.server` never does: chunks,
    interim answers, bodies that end with the connection, broken framing). After an answer
    whose script says `close`, it closes the connection."""

    def __init__(self) -> None:
        self.answers: list[tuple[bytes, bool]] = []
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def add(self, raw: bytes, *, close: bool = False) -> None:
        self.answers.append((raw, close))

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next(
                    (
                        int(v)
                        for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                        if k.lower() == b"content-length"
                    ),
                    0,
                )
                self.requests.append(head + reader.read(length))
                raw, close = self.answers.pop(0)
                conn.sendall(raw)
                if close:
                    conn.shutdown(socket.SHUT_RDWR)
                    return

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[RawServer]:
    s = RawServer()
    yield s
    s.stop()


def test_answers_framed_every_way_http_allows(raw):
    """Chunked bodies (with extensions and trailers), interim 1xx answers, folded and repeated
    headers, HEAD and 204 without a body, and a body that runs to the connection's end: each
    read whole, the connection kept where the answer allows it and closed where it does not."""
    raw.add(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Folded: one\r\n two\r\nSet-Cookie: a\r\n"
        b'Set-Cookie: b\r\n\r\n4;ext=1\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    raw.add(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # HEAD: a length, and no body
    raw.add(b"HTTP/1.1 204 No Content\r\n\r\n")
    raw.add(b"HTTP/1.1 201 Created\r\nContent-Length: 2, 2\r\n\r\n[]")
    raw.add(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"to": "the end"}', close=True)
    raw.add(b"HTTP/1.1 200\r\nConnection: close\r\nContent-Length: 4\r\n\r\ntrue", close=True)
    # A transfer coding other than chunked overrides the length: the body runs to the end.
    raw.add(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 1\r\n\r\n[1, 2]", close=True)
    s = StoreSession("acme", "test", raw.url, sleep=lambda s: None)
    first = s.request("GET", "/chunks")
    assert first.json() == {"a": 1} and first.headers["x-folded"] == "one two" and first.headers["set-cookie"] == "a, b"
    assert s.request("HEAD", "/head").content == b""
    assert s.request("DELETE", "/gone").status_code == 204
    assert s.request("POST", "/made").json() == []
    assert raw.connections == 1  # all four over the first connection
    assert s.request("GET", "/old").json() == {"to": "the end"}
    assert s.request("GET", "/last").json() is True
    assert raw.connections == 2  # the HTTP/1.0 answer closed the first; `close` ended the second
    assert s.request("GET", "/coded").json() == [1, 2]
    post = raw.requests[3]
    assert post.startswith(b"POST /made HTTP/1.1\r\n") and b"\r\nContent-Length: 0\r\n" in post
    assert f"\r\nHost: {urlsplit(raw.url).netloc}\r\n".encode() in post


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "the answer ended after 5 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "the answer ended after 2 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "a malformed chunk size"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n", "a malformed header line"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", "more than 100 headers"),
        (b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * 70000 + b"\r\n\r\n", "longer than 64 KiB"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "a malformed Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "a malformed Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n[]", "a malformed Content-Length"),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n", "the answer ended in its headers"),
        (b"", "Remote end closed connection without response"),
    ],
)
def test_an_answer_that_breaks_the_protocol_is_a_cut(raw, answer, said):
    """A broken answer is a cut after sending (a read is sent again, once here, on a new
    connection; a write is not), said in a few words; nothing half-read is kept alive."""
    raw.add(answer, close=True)
    raw.add(answer, close=True)
    s = StoreSession("acme", "test", raw.url, sleep=lambda s: None, max_retries=1)
    with pytest.raises(RetriableError, match=re.escape(said)):
        s.request("GET", "/x")
    assert raw.connections == 2 and s.stats["connection_errors"] == 2


def test_a_header_that_would_break_the_request_is_refused_before_sending(raw):
    s = StoreSession("acme", "test", raw.url, sleep=lambda s: None)
    with pytest.raises(ValueError, match="'X-Bad' cannot be sent"):
        s.request("GET", "/x", headers={"X-Bad": "v\r\nX-Injected: 1"})
    assert raw.requests == []


def test_a_proxy_that_refuses_the_tunnel_sends_nothing(raw, proxy_env):
    raw.add(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n", close=True)
    proxy_env.setenv("HTTPS_PROXY", raw.url.replace("http://", "http://me:pw@"))
    http._proxy_variables.cache_clear()
    s = StoreSession("acme", "test", "https://shop.example:8443", sleep=lambda s: None, max_retries=0)
    with pytest.raises(RetriableError, match="Tunnel connection failed: 407 Proxy Authentication Required"):
        s.request("POST", "/orders", json={})
    connect = raw.requests[0]
    assert connect.startswith(b"CONNECT shop.example:8443 HTTP/1.1\r\nHost: shop.example:8443\r\n")
    assert b"\r\nProxy-Authorization: Basic " + base64.b64encode(b"me:pw") + b"\r\n" in connect


def test_http_dates_in_every_form_a_recipient_must_read():
    """IMF-fixdate (parsed by hand: every Shopify answer has one) and the two obsolete forms
    RFC 9110 §5.6.7 still asks recipients to accept, all as the same instant in UTC."""
    from datetime import UTC, datetime

    when = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)
    assert http.http_date("Sun, 06 Nov 1994 08:49:37 GMT") == when
    assert http.http_date("Sunday, 06-Nov-94 08:49:37 GMT") == when
    assert http.http_date("Sun Nov  6 08:49:37 1994") == when
    for bad in (None, "", "soon", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 8h49 GMT"):
        assert http.http_date(bad) is None, bad
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    assert 110 < http.retry_after_seconds(Response(503, {"Retry-After": later}, b"", "u", "GET")) <= 120
