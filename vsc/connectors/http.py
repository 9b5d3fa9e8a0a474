"""One HTTP session per store: URL rules, timeouts, retries, pacing, counting, redaction.

Every request vsc sends to a store goes through `StoreSession.request`, so the
rules below hold for every platform:

- only `https://` URLs, or `http://` on a loopback address (the sandbox stores);
- TLS certificates are always verified: against `certifi`'s roots (or the bundle in
  `REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE`, read when the session opens), or against the
  store's own `--ca-bundle`; only a store connected with `--insecure-skip-tls-verify` skips
  the check, and every session opened for it says so on the log at warning level;
- every attempt waits on the store's `Limiter` first (Shopify cost points,
  Squarespace's requests per minute...);
- a call is retried with backoff only where repeating it cannot apply it twice:
  reads, writes carrying an idempotency key, and any request the store
  refused before acting on it (429, or a connection that never opened);
- 4xx answers are handed back to the connector, which knows its platform's
  error shapes; 429 and 5xx that outlive their retries become `RetriableError`;
- redirects are followed only within the store's own origin (same scheme, host and
  port), and for a write only when it keeps its method (307/308): a generic client would
  carry a custom credential header such as X-Shopify-Access-Token to any host, even over
  plain http, and a 301/302 silently turns a POST into a GET;
- secrets never reach the log: headers are logged redacted, and a signed URL's query
  string not at all.

The transport is `vsc.connectors.transport`: one pool of kept-alive connections per store
origin, vsc's own HTTP/1.1 exchange on them, bodies read whole and gzip/deflate decoded.
Per request, `requests` cost about twice the CPU of urllib3, urllib3 ~0.1-0.15 ms more
than `http.client`, and `http.client` ~0.1 ms more than the exchange vsc does now
(bench/RESULTS.md, "HTTP client overhead"): a large share of a steady pass over hundreds
of vendors. Answers come back as `Response`, with the parts of
`requests.Response` the connectors read. Proxies come from the environment (`https_proxy`,
`no_proxy`...), read once per session.
"""

from __future__ import annotations

import functools
import ipaddress
import json as jsonlib
import logging
import os
import random
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote_plus, urljoin, urlsplit

from vsc import USER_AGENT
from vsc.connectors.transport import (
    CertificateRefused,
    Cut,
    Headers,
    NeverSent,
    Pool,
    TimedOut,
    basic_auth,
    decoded,
    multipart,
)
from vsc.errors import ApiError, RateLimited, RetriableError, TlsError, UsageError
from vsc.secrets import redactor

log = logging.getLogger("vsc.http")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_REDIRECTS = 5
SECRET_HEADERS = frozenset({"authorization", "x-shopify-access-token", "cookie"})


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_store_url(url: str, *, what: str = "URL") -> str:
    """Return `url` without a trailing slash, or raise `UsageError` if vsc must not use it.

    Plain http:// is allowed only on loopback addresses (127.0.0.0/8, localhost, ::1),
    where the sandbox stores live: anywhere else it would send credentials in clear text.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{what} {url!r} is not an http(s) URL",
            hint="Give a full URL such as https://shop.example.com.",
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(
            f"{what} {url!r} uses plain http:// on a non-loopback host; credentials would travel unencrypted",
            hint="Use the https:// address of the store (http:// is accepted only on 127.0.0.1/localhost).",
        )
    return url.rstrip("/")


def tls_hint(store: str) -> str:
    """What to do when a store's certificate cannot be verified."""
    return (
        "If the store is reached through a proxy or has a certificate from a private CA, give vsc that CA "
        f"as a PEM file: --ca-bundle PATH at `vsc connect` or `vsc stores tls {store} --ca-bundle PATH`, or "
        "REQUESTS_CA_BUNDLE=PATH for every store. Never turn checking off on a network you do not control "
        "(--insecure-skip-tls-verify)."
    )


class Limiter(Protocol):
    """Paces requests to one store. `acquire` blocks until a request may go out."""

    def acquire(self, method: str, url: str, *, cost: float = 1.0) -> None: ...

    def observe(self, response: Response) -> None: ...


class NoLimit:
    def acquire(self, method: str, url: str, *, cost: float = 1.0) -> None:
        return None

    def observe(self, response: Response) -> None:
        return None


def retry_after_seconds(response: Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = http_date(value)
        return None if when is None else max(0.0, when.timestamp() - time.time())


_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 9110 §5.6.7) as an aware datetime in UTC; None if `value` is not one.

    IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the one form senders may generate, is read
    here: Shopify's every answer carries one in `Date`, and `email.utils` (~10 ms of imports a
    cron pass) is only imported for the two obsolete forms a recipient must still accept."""
    if not value:
        return None
    parts = value.split()
    if len(parts) == 6 and parts[5] == "GMT" and parts[2] in _MONTHS:
        try:
            hour, minute, second = (int(n) for n in parts[4].split(":"))
            return datetime(int(parts[3]), _MONTHS[parts[2]], int(parts[1]), hour, minute, second, tzinfo=UTC)
        except ValueError:
            return None
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # ("-0000": UTC, RFC 5322 §3.3)


def _tls_reason(reason: str) -> str:
    """The certificate problem in a few words ("self-signed certificate", "hostname mismatch"...)."""
    text = reason.split("certificate verify failed: ", 1)[-1]
    return text.split(" (_ssl.c")[0].strip("()'\" ") or "certificate refused"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


@functools.cache
def _proxy_variables() -> bool:
    """Whether the environment names any proxy (http_proxy, HTTPS_PROXY, all_proxy, no_proxy...).
    Looked up once: finding a store's proxies walks the whole environment, and most machines
    have none to find."""
    return any(name.lower().endswith("_proxy") for name in os.environ)


class RequestLine(NamedTuple):
    """What was sent, as `Response.request` tells it (the method is what connectors read)."""

    method: str
    url: str


class Response:
    """A store's answer, read whole: the parts of `requests.Response` the connectors use.

    `headers` is case-insensitive; `json()` raises `ValueError` on a body that is not JSON
    (as requests does, whose JSONDecodeError is one); `text` decodes with the charset of the
    Content-Type, else UTF-8, replacing what does not decode.
    """

    __slots__ = ("status_code", "headers", "content", "url", "request", "reason")

    def __init__(
        self, status_code: int, headers: Mapping[str, str], content: bytes, url: str, method: str, reason: str = ""
    ) -> None:
        self.status_code = status_code
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.content = content
        self.url = url
        self.request = RequestLine(method, url)
        self.reason = reason

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def encoding(self) -> str | None:
        """The charset the Content-Type names, if any."""
        ctype = self.headers.get("Content-Type")
        if not ctype:
            return None
        for param in ctype.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset":
                return value.strip().strip("'\"") or None
        return None

    @property
    def text(self) -> str:
        encoding = self.encoding or "utf-8"
        try:
            return self.content.decode(encoding, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        encoding = self.encoding
        if encoding is None or encoding.lower().replace("-", "") == "utf8":
            # json.loads reads bytes as UTF-8/16/32 by their first bytes, as requests does.
            return jsonlib.loads(self.content)
        return jsonlib.loads(self.text)

    @property
    def is_redirect(self) -> bool:
        return self.status_code in (301, 302, 303, 307, 308) and "Location" in self.headers

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The Link header (RFC 8288) by `rel`: {"next": {"url": ..., "rel": "next"}, ...}."""
        value = self.headers.get("Link")
        return {(link.get("rel") or link["url"]): link for link in parse_link_header(value)} if value else {}


def parse_link_header(value: str) -> list[dict[str, str]]:
    """`<url>; rel="next", <url2>; rel="prev"` → [{"url": url, "rel": "next"}, ...], read as
    requests reads it (quotes and spaces around parts dropped; a malformed parameter ends a link's)."""
    quotes = " '\""
    links: list[dict[str, str]] = []
    value = value.strip(quotes)
    if not value:
        return links
    for part in re.split(", *<", value):
        url, _, params = part.partition(";")
        link = {"url": url.strip("<> '\"")}
        for param in params.split(";") if params else ():
            key, eq, val = param.partition("=")
            if not eq or "=" in val:
                break
            link[key.strip(quotes)] = val.strip(quotes)
        links.append(link)
    return links


@functools.cache
def certifi_bundle() -> str:
    """The path of certifi's CA bundle: `cacert.pem` beside its module, where a normal install
    puts it, found without importing certifi, whose `where()` goes through importlib.resources
    (importlib.readers, zipfile: ~25 ms of imports a process); certifi's own answer otherwise
    (a zipped install)."""
    import importlib.util

    spec = importlib.util.find_spec("certifi")
    if spec is not None and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "cacert.pem")
        if os.path.isfile(path):
            return path
    import certifi

    return str(certifi.where())


_contexts: dict[str | bool, tuple[Any, ssl.SSLContext]] = {}
_contexts_lock = threading.Lock()


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS settings for `verify`: True (certifi's roots), a CA bundle's path (a PEM file
    or a directory of them), or False (no certificate or hostname check).

    Shared by every session that checks against the same file as it is now: loading
    certifi's bundle costs milliseconds, and a pass opens a session per store. A file
    that changed (or went away) is read again, so a moved bundle fails the store at once.
    Raises OSError (ssl.SSLError is one) when the bundle cannot be read.
    """
    path: str | bool = False
    stamp: Any = None
    if verify is not False:
        path = certifi_bundle() if verify is True else str(verify)
        st = os.stat(path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    with _contexts_lock:
        known = _contexts.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        # PROTOCOL_TLS_CLIENT checks the certificate and the host name; TLS 1.2 at least, as
        # urllib3 and every store platform require.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if path is False:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            if os.path.isdir(path):
                ctx.load_verify_locations(capath=path)
            else:
                ctx.load_verify_locations(cafile=path)
        _contexts[path] = (stamp, ctx)
        return ctx


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (https_proxy, http_proxy, all_proxy), unless
    no_proxy exempts its host (names, suffixes, host:port, and for IP addresses CIDR ranges
    such as 10.0.0.0/8, as requests reads it); None without any proxy variable (looked up
    once a process)."""
    if not _proxy_variables():
        return None
    import urllib.request  # (~7 ms of imports a process, only where a proxy variable is set)

    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    if proxies.get("no"):
        host = parts.hostname or ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for entry in proxies["no"].replace(" ", "").split(","):
            if address is not None and "/" in entry:
                try:
                    if address in ipaddress.ip_network(entry, strict=False):
                        return None
                except ValueError:
                    continue
        if urllib.request.proxy_bypass_environment(parts.netloc.rpartition("@")[2], proxies):
            return None
    return proxies.get(parts.scheme) or proxies.get("all") or None


def _merged(base: Mapping[str, str], extra: Mapping[str, str | None]) -> dict[str, str]:
    """`base` with `extra` laid over it, names compared without case; a None value removes one."""
    out = dict(base)
    for name, value in extra.items():
        low = name.lower()
        for have in [k for k in out if k.lower() == low]:
            del out[have]
        if value is not None:
            out[name] = value
    return out


def _encode_params(params: Mapping[str, Any]) -> str:
    """A query string as requests builds it (`urlencode`'s): lists repeat the name, None values
    are left out."""
    parts: list[str] = []
    for name, value in params.items():
        for v in value if isinstance(value, list | tuple) else (value,):
            if v is not None:
                parts.append(f"{_quoted(name)}={_quoted(v if isinstance(v, bytes) else str(v))}")
    return "&".join(parts)


@functools.lru_cache(maxsize=4096)
def _quoted(text: str | bytes) -> str:
    # A pass sends the same names and most of the same values (field lists, page sizes, ids)
    # hundreds of times; `quote_plus` is a few Python calls each time.
    return quote_plus(text)


#: What every request says it accepts; real Shopify compresses what it sends.
_ACCEPT_ENCODING = "gzip, deflate"
#: Connections kept per origin, unless the session is told how many threads can use it at once
#: (`pool_size`; a pass gives `concurrency` + 1): the pass reads stores from a thread pool of at
#: most 64, and the merchant's session may serve all of them at once. Only connections actually
#: opened are kept; beyond this many, a connection is closed when its request is done.
POOL_SIZE = 64


class StoreSession:
    """HTTP to one store. Connectors call `request`; tests read `stats`.

    Thread-safe: a pool lends each request its own connection, and the pools themselves are
    made once, under a lock.
    """

    def __init__(
        self,
        store: str,
        platform: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        limiter: Limiter | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        verify: bool | str = True,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.store = store
        self.platform = platform
        self.base_url = validate_store_url(base_url, what=f"{store}'s URL")
        self.limiter: Limiter = limiter or NoLimit()
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        # True: the default trust store; a path: that PEM bundle; False only for a store
        # connected with --insecure-skip-tls-verify.
        self.verify = verify
        if verify is False:
            log.warning(
                "%s: TLS certificate verification is OFF for this store (--insecure-skip-tls-verify); "
                "anyone on the network path can read and change what vsc sends, credentials included",
                store,
            )
        # The default trust store can be replaced for every store by REQUESTS_CA_BUNDLE (or
        # CURL_CA_BUNDLE), read here once; a store's own bundle or opt-out wins over it.
        self._verify: bool | str = verify
        if verify is True:
            self._verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.stats: Counter[str] = Counter()
        # The store's headers, credentials included: sent to the store's origin and nowhere else
        # unless a connector asks for another URL of its own (never for a signed one).
        self._headers: dict[str, str] = {
            "User-Agent": USER_AGENT,
            "Accept-Encoding": _ACCEPT_ENCODING,
            "Accept": "application/json",
            "Connection": "keep-alive",
        }
        if headers:
            self._headers = _merged(self._headers, headers)
        if auth is not None:
            # HTTP Basic, worked out once: (user, password) as requests' HTTPBasicAuth sends it.
            # The header carries both secrets in one base64 string, which the log filter learns
            # too (it knows the key and secret only as they are).
            value = basic_auth(*auth)
            redactor.register(value.split(" ", 1)[1])
            self._headers = _merged(self._headers, {"Authorization": value})
        self._bare_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": _ACCEPT_ENCODING, "Accept": "*/*"}
        parts = urlsplit(self.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._proxy = proxy_for(self.base_url)
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, str | None], Pool] = {}
        self._pool_size = max(1, min(pool_size, POOL_SIZE))

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        path = path.lstrip("/")
        if path.startswith(".") or "/." in path:  # dot segments, resolved as a browser would
            return urljoin(self.base_url + "/", path)
        return f"{self.base_url}/{path}"

    def _pool_for(self, origin: str, proxy: str | None) -> Pool:
        """The connections to `origin` (through `proxy`, None: direct), made on first use. The
        CA bundle is read only for an https:// origin: a plain-http sandbox store never needs one."""
        key = (origin, proxy)
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    context = tls_context(self._verify) if origin.startswith("https:") else None
                    try:
                        pool = Pool(origin, maxsize=self._pool_size, timeout=self.timeout, context=context, proxy=proxy)
                    except ValueError as exc:
                        raise UsageError(
                            f"{self.store}: the proxy the environment names ({(proxy or '').rpartition('@')[2]}) "
                            f"cannot be used: {exc}",
                            hint="Set https_proxy/http_proxy to an http:// proxy, or add the store's host to no_proxy.",
                        ) from None
                    self._pools[key] = pool
        return pool

    def _store_pool(self) -> Pool:
        """The kept-alive connections to the store's own origin."""
        return self._pool_for(self._origin, self._proxy)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def _opener(self, url: str) -> tuple[Pool, str]:
        """Where to send a request for `url`, and the request target to give it there.

        The store's own URLs (the common case, made cheap) go to its pool with just their path;
        anything else (a signed URL, another origin) to a pool of its own origin.
        Raises OSError when the CA bundle cannot be read (the pools are made on first use).
        """
        if url.startswith(self._origin + "/"):
            pool = self._store_pool()
            return pool, pool.target(url[len(self._origin) :])
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        pool = self._pool_for(origin, proxy_for(url))
        rest = url[len(f"{parts.scheme}://{parts.netloc}") :] or "/"
        return pool, pool.target(rest)

    def _redirect_target(self, method: str, url: str, response: Response, redirects: int) -> str:
        """Where to follow a redirect, or `ApiError` naming it when vsc must not follow it."""
        target = urljoin(url, response.headers.get("Location", ""))
        here, there = urlsplit(url), urlsplit(target)
        same_origin = (here.scheme, here.hostname, here.port) == (there.scheme, there.hostname, there.port)
        keeps_method = method in SAFE_METHODS or response.status_code in (307, 308)
        if same_origin and keeps_method and redirects < MAX_REDIRECTS:
            return target
        why = (
            "it leads to another address, where the store's credentials must not follow"
            if not same_origin
            else "following it would turn this write into a read"
            if not keeps_method
            else f"more than {MAX_REDIRECTS} redirects in a row"
        )
        raise ApiError(
            f"{self.store}: {method} {here.path} was redirected (HTTP {response.status_code}) to "
            f"{there.scheme}://{there.netloc}{there.path}; vsc did not follow it: {why}",
            store=self.store,
            platform=self.platform,
            status=response.status_code,
            hint="Give vsc the store's final address (the https:// one it redirects to) at `vsc connect`.",
        )

    def _delay(self, attempt: int, hint: float | None) -> float:
        if hint is not None:
            return min(hint, self.max_backoff * 4)
        return min(self.max_backoff, self.backoff * (2**attempt)) * (0.5 + random.random() / 2)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        safe: bool | None = None,
        cost: float = 1.0,
        write: bool | None = None,
        signed: bool = False,
    ) -> Response:
        """Send one request, retried as the rules above allow.

        `safe` says whether repeating the call cannot apply it twice; it defaults to
        True for GET/HEAD and for requests carrying an `Idempotency-Key` header.
        `write` marks a request that changes the store, for counting (defaults to
        "not a GET/HEAD"); a GraphQL query is sent with POST but is not a write.
        `signed`: `path` is a full URL the store handed out (a signed upload or
        download address, possibly on another host). It goes out without the store's
        headers or credentials and without waiting on the store's limiter; the URL
        rules still hold.
        The body is `json` (sent as JSON), or `data` (bytes or text as they are, a mapping
        as a form) with `files` ({field: (filename, bytes, content type)}) making it a
        multipart form: `data`'s fields first, then the files, in their order.
        """
        method = method.upper()
        url = validate_store_url(path, what="signed URL") if signed else self.url(path)
        hdrs = dict(headers or {})
        if safe is None:
            safe = method in SAFE_METHODS or any(k.lower() == "idempotency-key" for k in hdrs)
        if write is None:
            write = method not in SAFE_METHODS
        body, content_type = _encode_body(json, data, files)
        if content_type is not None:
            hdrs = _merged({"Content-Type": content_type}, hdrs)
        base = self._bare_headers if signed else self._headers
        send_headers = _merged(base, hdrs) if hdrs else base
        if params:
            url = url + ("&" if "?" in url else "?") + _encode_params(params)
        attempt = 0
        redirects = 0
        while True:
            if not signed:
                self.limiter.acquire(method, url, cost=cost)
            self.stats["requests"] += 1
            if write:
                self.stats["writes"] += 1
            if log.isEnabledFor(logging.DEBUG):
                # A signed URL's query string is a credential: log it without one.
                log.debug("%s %s %s", self.store, method, url.split("?")[0] if signed else url)
            try:
                pool, target = self._opener(url)
            except OSError:
                # Reading the CA bundle, before any connection opened.
                bundle = certifi_bundle() if self._verify is True else self._verify
                raise TlsError(
                    f"{self.store}: cannot read its CA bundle {bundle!r}",
                    store=self.store,
                    platform=self.platform,
                    hint=f"Put the PEM file back, or give another: `vsc stores tls {self.store} --ca-bundle PATH`.",
                ) from None
            try:
                # Nothing below retries or follows redirects on its own: vsc's rules above decide
                # both. A kept-alive connection the server has closed is noticed before it is
                # reused (the pool polls the socket: readable with nothing owed means closed) and
                # a new one is opened, so that never fails a request. Should the server close it
                # in the instant between that check and the send, the attempt fails like any cut
                # (`Cut` below) and is sent again only where that is safe.
                status, reason, headers_in, raw = pool.send(method, target, body, send_headers)
                content = decoded(raw, headers_in.get("Content-Encoding"))
            except TimedOut:
                # The request went out whole and no answer came in time: a write may have been applied.
                self.stats["timeouts"] += 1
                if safe and attempt < self.max_retries:
                    self.sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                raise RetriableError(
                    f"{self.store}: {method} {urlsplit(url).path} timed out"
                    + ("" if safe else "; the store may or may not have applied the write"),
                    store=self.store,
                    platform=self.platform,
                ) from None
            except CertificateRefused as exc:
                # Refused during the handshake, before any byte of the request went out; it will
                # be refused again on a retry, so say what to do instead.
                self.stats["tls_errors"] += 1
                raise TlsError(
                    f"{self.store}: the TLS certificate of {urlsplit(url).netloc} could not be verified "
                    f"({_tls_reason(exc.reason)}); nothing was sent",
                    store=self.store,
                    platform=self.platform,
                    hint=tls_hint(self.store),
                ) from None
            except (NeverSent, Cut) as exc:
                # A connection that never opened (refused, unresolvable, connect timeout, a failed
                # handshake or tunnel) carried nothing: safe to send again. A reset or cut after
                # sending may have been applied: only safe calls repeat.
                never_sent = isinstance(exc, NeverSent)
                self.stats["connection_errors"] += 1
                if (safe or never_sent) and attempt < self.max_retries:
                    self.sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                what = "could not connect" if never_sent else "cut after sending"
                raise RetriableError(
                    f"{self.store}: connection to {urlsplit(url).netloc} failed ({what}: {exc.reason[:200]})"
                    + (
                        "; nothing was sent"
                        if never_sent
                        else ""
                        if safe
                        else "; the store may or may not have applied the write"
                    ),
                    store=self.store,
                    platform=self.platform,
                ) from None
            response = Response(status, headers_in, content, url, method, reason)
            self.stats[f"status_{response.status_code}"] += 1
            self.limiter.observe(response)
            if response.is_redirect:
                url = self._redirect_target(method, url, response, redirects)
                redirects += 1
                continue
            if response.status_code == 429:
                self.stats["throttled"] += 1
                wait = retry_after_seconds(response)
                # 429 means the store refused the call without acting on it.
                if attempt < self.max_retries:
                    self.sleep(self._delay(attempt, wait))
                    attempt += 1
                    continue
                raise RateLimited(
                    f"{self.store}: still rate-limited after {attempt + 1} attempts",
                    retry_after=wait,
                    store=self.store,
                    platform=self.platform,
                    status=429,
                )
            if response.status_code >= 500:
                if safe and attempt < self.max_retries:
                    self.sleep(self._delay(attempt, retry_after_seconds(response)))
                    attempt += 1
                    continue
                raise RetriableError(
                    f"{self.store}: the store answered HTTP {response.status_code} to {method} {urlsplit(url).path}",
                    store=self.store,
                    platform=self.platform,
                    status=response.status_code,
                )
            return response


def _encode_body(json: Any, data: Any, files: Mapping[str, Any] | None) -> tuple[bytes | None, str | None]:
    """The request body and its Content-Type (None: no body, or `data` as it was given)."""
    if files:
        fields: list[tuple[str, Any]] = list((data or {}).items())
        fields.extend(files.items())
        return multipart(fields)
    if json is not None:
        # allow_nan=False: NaN is not JSON, and a store would refuse it (or worse, read it).
        return jsonlib.dumps(json, allow_nan=False).encode("utf-8"), "application/json"
    if data is None:
        return None, None
    if isinstance(data, Mapping):
        return _encode_params(data).encode("ascii"), "application/x-www-form-urlencoded"
    return (data.encode("utf-8") if isinstance(data, str) else bytes(data)), None
