"""One HTTP session per store: URL rules, timeouts, retries, pacing, counting, redaction.

Every request vsc sends to a store goes through `StoreSession.request`, so the
rules below hold for every platform:

- only `https://` URLs, or `http://` on a loopback address (the sandbox stores);
- TLS certificates are always verified: against `certifi`'s roots (or the bundle in
  `REQUESTS_CA_BUNDLE`), or against the store's own `--ca-bundle`; only a store connected
  with `--insecure-skip-tls-verify` skips the check, and every session opened for it
  says so on the log at warning level;
- every attempt waits on the store's `Limiter` first (Shopify cost points,
  Squarespace's requests per minute...);
- a call is retried with backoff only where repeating it cannot apply it twice:
  reads, writes carrying an idempotency key, and any request the store
  refused before acting on it (429, or a connection that never opened);
- 4xx answers are handed back to the connector, which knows its platform's
  error shapes; 429 and 5xx that outlive their retries become `RetriableError`;
- redirects are followed only within the store's own origin (same scheme, host and
  port), and for a write only when it keeps its method (307/308): requests would carry
  a custom credential header such as X-Shopify-Access-Token to any host, even over
  plain http, and a 301/302 silently turns a POST into a GET;
- secrets never reach the log: headers are logged redacted.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from vsc import USER_AGENT
from vsc.errors import ApiError, RateLimited, RetriableError, TlsError, UsageError

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

    def observe(self, response: requests.Response) -> None: ...


class NoLimit:
    def acquire(self, method: str, url: str, *, cost: float = 1.0) -> None:
        return None

    def observe(self, response: requests.Response) -> None:
        return None


def retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a connection failed because the server's certificate did not verify."""
    return isinstance(exc, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _tls_reason(exc: BaseException) -> str:
    """The certificate problem in a few words ("self-signed certificate", "hostname mismatch"...)."""
    text = str(exc)
    for marker in ("certificate verify failed: ", "SSLError("):
        if marker in text:
            text = text.split(marker, 1)[1]
            break
    return text.split(" (_ssl.c")[0].strip("()'\" ") or type(exc).__name__


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


@functools.cache
def _proxy_variables() -> bool:
    """Whether the environment names any proxy (http_proxy, HTTPS_PROXY, all_proxy, no_proxy...).
    Looked up once: finding a store's proxies walks the whole environment, and most machines
    have none to find."""
    return any(name.lower().endswith("_proxy") for name in os.environ)


class StoreSession:
    """HTTP to one store. Connectors call `request`; tests read `stats`."""

    def __init__(
        self,
        store: str,
        platform: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        limiter: Limiter | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        verify: bool | str = True,
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
        # True: the default trust store (requests honours REQUESTS_CA_BUNDLE); a path: that
        # PEM bundle; False only for a store connected with --insecure-skip-tls-verify.
        self.verify = verify
        if verify is False:
            # vsc says it once per store and session, in its own words; urllib3's warning on every
            # request would only bury that line.
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
            log.warning(
                "%s: TLS certificate verification is OFF for this store (--insecure-skip-tls-verify); "
                "anyone on the network path can read and change what vsc sends, credentials included",
                store,
            )
        self.stats: Counter[str] = Counter()
        self._http = requests.Session()
        # requests re-reads the environment on every request of a session that trusts it
        # (proxies and no_proxy, netrc, REQUESTS_CA_BUNDLE): a walk over every variable, twice.
        # With a secret per vendor in the environment that was most of a 200-vendor pass's CPU,
        # so it is read once here, for this store's URL, and the session stops looking.
        self._http.trust_env = False
        if _proxy_variables():
            self._http.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        self._verify = verify
        if verify is True:
            self._verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._http.headers["User-Agent"] = USER_AGENT
        self._http.headers["Accept"] = "application/json"
        if headers:
            self._http.headers.update(headers)
        if auth is not None:
            self._http.auth = auth
        self._bare_session: requests.Session | None = None

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url + "/", path.lstrip("/"))

    @property
    def _bare(self) -> requests.Session:
        """Signed URLs on other hosts (Shopify's staged uploads and bulk results) get a session
        without the store's headers: the access token must never travel to them. Made on first
        use (few passes need it; a session costs ~1 ms to make, and a pass opens hundreds)."""
        if self._bare_session is None:
            self._bare_session = requests.Session()
            self._bare_session.headers["User-Agent"] = USER_AGENT
        return self._bare_session

    def close(self) -> None:
        self._http.close()
        if self._bare_session is not None:
            self._bare_session.close()

    def _redirect_target(self, method: str, url: str, response: requests.Response, redirects: int) -> str:
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
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        safe: bool | None = None,
        cost: float = 1.0,
        write: bool | None = None,
        signed: bool = False,
    ) -> requests.Response:
        """Send one request, retried as the rules above allow.

        `safe` says whether repeating the call cannot apply it twice; it defaults to
        True for GET/HEAD and for requests carrying an `Idempotency-Key` header.
        `write` marks a request that changes the store, for counting (defaults to
        "not a GET/HEAD"); a GraphQL query is sent with POST but is not a write.
        `signed`: `path` is a full URL the store handed out (a signed upload or
        download address, possibly on another host). It goes out without the store's
        headers or credentials and without waiting on the store's limiter; the URL
        rules still hold.
        """
        method = method.upper()
        url = validate_store_url(path, what="signed URL") if signed else self.url(path)
        http = self._bare if signed else self._http
        hdrs = dict(headers or {})
        if safe is None:
            safe = method in SAFE_METHODS or any(k.lower() == "idempotency-key" for k in hdrs)
        if write is None:
            write = method not in SAFE_METHODS
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
                log.debug("%s %s %s params=%s", self.store, method, url.split("?")[0] if signed else url, params)
            try:
                # `verify` goes with every request: set only on the session, requests would let
                # REQUESTS_CA_BUNDLE override a store's own bundle or its explicit opt-out.
                response = http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    files=files,
                    headers=hdrs,
                    timeout=self.timeout,
                    verify=self._verify if http is self._http else self.verify,
                    allow_redirects=False,  # followed below, within the store's origin only
                )
            except requests.ConnectionError as exc:
                if _certificate_refused(exc):
                    # Refused during the handshake, before any byte of the request went out; it
                    # will be refused again on a retry, so say what to do instead.
                    self.stats["tls_errors"] += 1
                    raise TlsError(
                        f"{self.store}: the TLS certificate of {urlsplit(url).netloc} could not be verified "
                        f"({_tls_reason(exc)}); nothing was sent",
                        store=self.store,
                        platform=self.platform,
                        hint=tls_hint(self.store),
                    ) from None
                # A connection that never opened carried nothing: safe to send again.
                # One cut after sending may have been applied: only safe calls repeat.
                never_sent = isinstance(exc, requests.ConnectTimeout) or "NewConnectionError" in repr(exc)
                self.stats["connection_errors"] += 1
                if (safe or never_sent) and attempt < self.max_retries:
                    self.sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                raise RetriableError(
                    f"{self.store}: connection to {urlsplit(url).netloc} failed ({type(exc).__name__})"
                    + ("" if safe else "; the store may or may not have applied the write"),
                    store=self.store,
                    platform=self.platform,
                ) from None
            except requests.Timeout:
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
            except OSError as exc:  # after requests' own errors, which are OSErrors too
                if "CA certificate bundle" not in str(exc):
                    raise
                raise TlsError(
                    f"{self.store}: cannot read its CA bundle {self._verify!r}",
                    store=self.store,
                    platform=self.platform,
                    hint=f"Put the PEM file back, or give another: `vsc stores tls {self.store} --ca-bundle PATH`.",
                ) from None
            self.stats[f"status_{response.status_code}"] += 1
            self.limiter.observe(response)
            if response.is_redirect:
                url = self._redirect_target(method, url, response, redirects)
                redirects += 1
                params = None  # the Location carries the query it wants
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
