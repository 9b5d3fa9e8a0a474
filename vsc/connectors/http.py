"""One HTTP session per store: URL rules, timeouts, retries, pacing, counting, redaction.

Every request vsc sends to a store goes through `StoreSession.request`, so the
rules below hold for every platform:

- only `https://` URLs, or `http://` on a loopback address (the sandbox stores);
- every attempt waits on the store's `Limiter` first (Shopify cost points,
  Squarespace's requests per minute...);
- a call is retried with backoff only where repeating it cannot apply it twice:
  reads, writes carrying an idempotency key, and any request the store
  refused before acting on it (429, or a connection that never opened);
- 4xx answers are handed back to the connector, which knows its platform's
  error shapes; 429 and 5xx that outlive their retries become `RetriableError`;
- secrets never reach the log: headers are logged redacted.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests

from vsc import USER_AGENT
from vsc.errors import RateLimited, RetriableError, UsageError

log = logging.getLogger("vsc.http")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
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


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


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
        self.stats: Counter[str] = Counter()
        self._http = requests.Session()
        self._http.headers["User-Agent"] = USER_AGENT
        self._http.headers["Accept"] = "application/json"
        if headers:
            self._http.headers.update(headers)
        if auth is not None:
            self._http.auth = auth
        # Signed URLs on other hosts (Shopify's staged uploads and bulk results) get a session
        # without the store's headers: the access token must never travel to them.
        self._bare = requests.Session()
        self._bare.headers["User-Agent"] = USER_AGENT

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def close(self) -> None:
        self._http.close()
        self._bare.close()

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
                response = http.request(
                    method, url, params=params, json=json, data=data, files=files, headers=hdrs, timeout=self.timeout
                )
            except requests.ConnectionError as exc:
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
            self.stats[f"status_{response.status_code}"] += 1
            self.limiter.observe(response)
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
