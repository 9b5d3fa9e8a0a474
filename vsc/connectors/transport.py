"""Kept-alive HTTP/1.1 connections to one origin, on the standard library's `http.client`.

`StoreSession` (vsc.connectors.http) decides everything about a request: URL rules, retries,
redirects, pacing. This module only carries a request over a connection and says, when that
fails, at which moment it failed, since that decides whether a write may be sent again:

- `NeverSent`: the connection never opened (refused, unresolvable, connect timeout, a proxy
  that refused the tunnel, a TLS handshake that failed): nothing reached the store;
- `CertificateRefused`: the store's certificate did not verify (nothing was sent either);
- `TimedOut`: the request went out and no answer came within the read timeout;
- `Cut`: the connection broke after the request (or part of it) went out.

Why not urllib3 (which vsc used until this module): a steady pass at 200 vendors sends
~700 requests, and urllib3's layers (URL re-parsing and re-encoding, Retry and Timeout
objects, response wrappers) cost ~0.1-0.15 ms of CPU a request over `http.client` itself,
plus ~40 ms of imports in every cron-started pass (bench/RESULTS.md, "HTTP client overhead").
What vsc needs of it is small: a pool of kept-alive connections, TLS with certificate and
hostname checks (the `ssl` module does both), proxies by CONNECT tunnel for https and by
absolute-form requests for http (RFC 9110 §9.3.6, RFC 9112 §3.2.2), gzip/deflate answers
and multipart forms. An https:// proxy (TLS to the proxy itself) is not supported.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import http.client
import os
import select
import ssl
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit


class TransportError(Exception):
    """A request that got no answer; `reason` says what happened in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NeverSent(TransportError):
    """No connection: nothing of the request reached the store (safe to send again)."""


class CertificateRefused(NeverSent):
    """The TLS handshake refused the server's certificate; nothing was sent."""


class TimedOut(TransportError):
    """Sent whole, and no answer within the read timeout: a write may have been applied."""


class Cut(TransportError):
    """The connection broke after the request went out: a write may have been applied."""


class Headers(Mapping[str, str]):
    """Response headers, looked up without regard to case; a header sent several times reads
    as its values joined with ", " (RFC 9110 §5.3), as requests and urllib3 present them."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items.items() if isinstance(items, Mapping) else items:
            low = name.lower()
            have = self._items.get(low)
            self._items[low] = (name, value) if have is None else (have[0], f"{have[1]}, {value}")

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


def multipart(fields: Iterable[tuple[str, Any]]) -> tuple[bytes, str]:
    """A multipart/form-data body (RFC 7578) of `fields` in their order: a value is text, or
    (filename, bytes, content type) for a file. Returns (body, Content-Type)."""
    boundary = binascii.hexlify(os.urandom(16)).decode("ascii")
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name={_quoted(name)}".encode()
        if isinstance(value, tuple):
            filename, data, ctype = value
            out += f"; filename={_quoted(filename)}\r\nContent-Type: {ctype}\r\n\r\n".encode()
            out += data if isinstance(data, bytes) else str(data).encode("utf-8")
        else:
            out += b"\r\n\r\n" + (value if isinstance(value, bytes) else str(value).encode("utf-8"))
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _quoted(text: str) -> str:
    # As browsers (and urllib3) write them: a quoted string with ", CR and LF percent-encoded.
    return '"' + text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A") + '"'


def decoded(body: bytes, encoding: str | None) -> bytes:
    """`body` without the Content-Encoding the server applied (gzip or deflate, which vsc asks
    for); any other coding is left as it came."""
    coding = (encoding or "").strip().lower()
    if not body or coding in ("", "identity"):
        return body
    try:
        if coding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if coding == "deflate":
            try:  # zlib-wrapped, as RFC 9110 says; some servers send raw deflate
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error) as exc:
        raise Cut(f"the answer's {coding} body is damaged ({exc})") from None
    return body


def _dropped(sock: Any) -> bool:
    """Whether an idle kept-alive connection was closed by the server: a socket with nothing
    owed to it that reads as ready holds an end-of-file (or stray bytes: unusable either way)."""
    if sock is None:
        return True
    try:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def basic_auth(user: str, password: str) -> str:
    """The Authorization value for HTTP Basic auth (latin-1, as requests encodes it)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("latin-1")).decode("ascii")


def proxy_authorization(proxy: str) -> dict[str, str]:
    """The Proxy-Authorization header for a proxy URL with credentials in it (Basic)."""
    parts = urlsplit(proxy)
    if parts.username is None:
        return {}
    return {"Proxy-Authorization": basic_auth(unquote(parts.username), unquote(parts.password or ""))}


class Pool:
    """Kept-alive connections to one origin (`scheme://host:port`), made on demand, at most
    `maxsize` kept idle; thread-safe (a connection serves one request at a time).

    `proxy` (an http:// URL) carries https by a CONNECT tunnel, the certificate still checked
    against the origin's host name, and plain http by sending it absolute-form requests.
    """

    def __init__(
        self,
        origin: str,
        *,
        maxsize: int,
        timeout: tuple[float, float],
        context: ssl.SSLContext | None,
        proxy: str | None = None,
    ) -> None:
        parts = urlsplit(origin)
        self.origin = origin
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.maxsize = maxsize
        self.connect_timeout, self.read_timeout = timeout
        self.context = context
        self.proxy = proxy
        #: where connections go: the origin, or the proxy
        self._connect_to = (self.host, self.port)
        self._proxy_headers: dict[str, str] = {}
        if proxy is not None:
            p = urlsplit(proxy)
            if p.scheme != "http" or not p.hostname:
                raise ValueError(f"only http:// proxies are supported (CONNECT tunnels carry https), not {p.scheme}://")
            self._connect_to = (p.hostname, p.port or 80)
            self._proxy_headers = proxy_authorization(proxy)
        #: plain http through a proxy: absolute-form targets, the proxy's credentials on each request
        self._forwarded = proxy is not None and not self.tls
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        #: connections opened, for tests and the debug log
        self.opened = 0

    def target(self, path_and_query: str) -> str:
        """The request target to send for a path: absolute-form to a forwarding proxy."""
        return self.origin + path_and_query if self._forwarded else path_and_query

    def _open(self) -> http.client.HTTPConnection:
        host, port = self._connect_to
        conn: http.client.HTTPConnection
        if self.tls:
            conn = http.client.HTTPSConnection(host, port, timeout=self.connect_timeout, context=self.context)
            if self.proxy is not None:  # (the handshake, after CONNECT, checks the origin's name)
                conn.set_tunnel(self.host, self.port, headers=self._proxy_headers)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise CertificateRefused(exc.verify_message or str(exc)) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NeverSent(_reason(exc)) from None
        assert conn.sock is not None
        conn.sock.settimeout(self.read_timeout)
        with self._lock:
            self.opened += 1
        return conn

    def _take(self) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._open()
            if not _dropped(conn.sock):
                return conn
            conn.close()

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.maxsize:
                self._idle.append(conn)
                return
        conn.close()

    def send(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, Headers, bytes]:
        """Send one request and read its answer whole: (status, reason, headers, raw body).
        Raises a `TransportError` saying how far it got."""
        if not target.isascii():  # (http.client sends ASCII only; a store's path may not be)
            target = quote(target, safe="/:?#[]@!$&'()*+,;=%~")
        conn = self._take()
        if self._forwarded and self._proxy_headers:
            headers = {**headers, **self._proxy_headers}
        sent = False
        try:
            conn.request(method, target, body=body, headers=headers)
            sent = True
            response = conn.getresponse()
            data = response.read()
        except TimeoutError:
            conn.close()
            raise (TimedOut("read timed out") if sent else Cut("timed out while sending")) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Cut(_reason(exc)) from None
        except BaseException:  # (a bug, or Ctrl-C: the connection is in an unknown state)
            conn.close()
            raise
        headers_in = Headers(response.getheaders())
        if response.will_close:
            conn.close()
        else:
            self._give_back(conn)
        return response.status, response.reason or "", headers_in, data

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for conn in idle:
            conn.close()


def _reason(exc: BaseException) -> str:
    """An OS or protocol failure in a few words: "Connection refused", "Remote end closed
    connection without response", "Tunnel connection failed: 407 Proxy Authentication Required"."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    if isinstance(exc, http.client.IncompleteRead):
        text = f"the answer ended after {len(exc.partial)} bytes"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
