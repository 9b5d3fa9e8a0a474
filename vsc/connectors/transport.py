"""Kept-alive HTTP/1.1 connections to one origin, on the standard library's `socket` and `ssl`.

`StoreSession` (vsc.connectors.http) decides everything about a request: URL rules, retries,
redirects, pacing. This module only carries a request over a connection and says, when that
fails, at which moment it failed, since that decides whether a write may be sent again:

- `NeverSent`: the connection never opened (refused, unresolvable, connect timeout, a proxy
  that refused the tunnel, a TLS handshake that failed): nothing reached the store;
- `CertificateRefused`: the store's certificate did not verify (nothing was sent either);
- `TimedOut`: the request went out and no answer came within the read timeout;
- `Cut`: the connection broke after the request (or part of it) went out, or the answer broke
  the protocol (a malformed status line or header, a body shorter than it said).

Why not urllib3 (which vsc used until bench/RESULTS.md "HTTP client overhead"): a steady pass
at 200 vendors sends ~700 requests, and urllib3's layers (URL re-parsing and re-encoding, Retry
and Timeout objects, response wrappers) cost ~0.1-0.15 ms of CPU a request over `http.client`,
plus ~40 ms of imports in every cron-started pass. Why not `http.client` either (which it used
next): its header handling runs every answer through `email.parser` and every request header
through validating regexes, ~0.2 ms of CPU an exchange against ~0.08 ms for the few lines below
(bench/RESULTS.md, "The HTTP exchange"), and its import (with `email`'s) costs ~20 ms a pass.
What vsc needs is small: a pool of kept-alive connections, TLS with certificate and hostname
checks (the `ssl` module does both), proxies by CONNECT tunnel for https and by absolute-form
requests for http (RFC 9110 §9.3.6, RFC 9112 §3.2.2), answers framed by Content-Length, by
chunks or by the connection's end (RFC 9112 §6.3), gzip/deflate answers and multipart forms.
An https:// proxy (TLS to the proxy itself) is not supported.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import os
import re
import select
import socket
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


#: longest status or header line, and most header lines, an answer may have (http.client's limits)
MAX_LINE = 65536
MAX_HEADERS = 100
#: characters a request target or header name cannot carry (controls and space; non-ASCII is
#: checked apart, with `str.isascii`: a class spanning all of Unicode takes ~10 ms to compile)
_CONTROLS = re.compile("[\x00-\x20\x7f]")
#: a body up to this size goes out in one write with the request head (one TCP segment where
#: it fits: no delayed-ACK stall); a larger one is written after the head, not copied onto it
_JOINED_BODY = 65536


class Connection:
    """One open connection: its socket and a buffered reader over it (answers are read line by
    line up to the body, then the body at once)."""

    __slots__ = ("sock", "reader")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()


class Answer:
    """An answer's status line and headers as they came; `close` says the connection cannot
    carry another request after it (HTTP/1.0 without keep-alive, `Connection: close`, or a
    body that ends with the connection)."""

    __slots__ = ("version", "status", "reason", "headers", "close")

    def __init__(self, version: str, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.version, self.status, self.reason, self.headers = version, status, reason, headers
        tokens = ",".join(v for k, v in headers if k.lower() == "connection").lower()
        self.close = "close" in tokens or (version != "HTTP/1.1" and "keep-alive" not in tokens)

    def header(self, name: str) -> str | None:
        """The first value of a header, looked up without regard to case."""
        return next((v for k, v in self.headers if k.lower() == name), None)


def _line(reader: Any) -> bytes:
    line: bytes = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise Cut("the answer has a line longer than 64 KiB")
    return line


def read_head(reader: Any) -> Answer:
    """Read an answer's status line and headers (RFC 9112 §4, §5), past any interim 1xx answer.
    A connection that closed before a byte came, or a status line that is not HTTP's, is a
    `Cut`, as is a header block that ends with the connection."""
    readline = reader.readline  # (the lines are read in a loop of their own: the common path)
    while True:
        line = readline(MAX_LINE + 1)
        if not line:
            raise Cut("Remote end closed connection without response")
        if len(line) > MAX_LINE:
            raise Cut("the answer has a line longer than 64 KiB")
        parts = line.decode("latin-1").rstrip("\r\n").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not (parts[1].isdigit() and len(parts[1]) == 3):
            raise Cut(f"not an HTTP answer: {line[:80]!r}")
        status = int(parts[1])
        lines: list[bytes] = []
        while True:
            line = readline(MAX_LINE + 1)
            if line == b"\r\n" or line == b"\n":
                break
            if not line:
                raise Cut("the answer ended in its headers")
            if len(line) > MAX_LINE:
                raise Cut("the answer has a line longer than 64 KiB")
            if len(lines) == MAX_HEADERS:
                raise Cut(f"the answer has more than {MAX_HEADERS} headers")
            lines.append(line)
        headers: list[tuple[str, str]] = []
        for raw in lines:
            text = raw.decode("latin-1")
            if text[0] in " \t" and headers:  # obs-fold (RFC 9112 §5.2): the previous value goes on
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                raise Cut(f"a malformed header line: {raw[:80]!r}")
            headers.append((name, value.strip()))
        if 100 <= status < 200 and status != 101:  # 100 Continue, 103 Early Hints: the answer follows
            continue
        return Answer(parts[0], status, parts[2].strip() if len(parts) > 2 else "", headers)


def read_body(reader: Any, method: str, answer: Answer) -> bytes:
    """The body of an answer, framed as RFC 9112 §6.3 says: none for HEAD, 1xx, 204 and 304;
    chunked; Content-Length bytes; or else up to the connection's end (`answer.close` is set)."""
    status = answer.status
    if method == "HEAD" or status in (204, 304) or status < 200:
        return b""
    coding = answer.header("transfer-encoding")
    if coding is not None and coding.lower().rstrip().endswith("chunked"):
        return _chunks(reader)
    length = answer.header("content-length")
    if length is not None and coding is None:  # (a transfer coding overrides any length: §6.3 item 3)
        sizes = {n.strip() for n in length.split(",")}  # (repeats of one value are allowed: item 5)
        if len(sizes) != 1 or not ((size := sizes.pop()).isascii() and size.isdigit()):
            raise Cut(f"a malformed Content-Length: {length[:40]!r}")
        data: bytes = reader.read(int(size))
        if len(data) < int(size):
            raise Cut(f"the answer ended after {len(data)} bytes")
        return data
    answer.close = True
    return bytes(reader.read())


def _chunks(reader: Any) -> bytes:
    parts = []
    while True:
        line = _line(reader)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise Cut(f"a malformed chunk size: {line[:40]!r}") from None
        if size == 0:
            break
        chunk = reader.read(size)
        if len(chunk) < size or _line(reader) not in (b"\r\n", b"\n"):
            raise Cut(f"the answer ended after {sum(map(len, parts)) + len(chunk)} bytes")
        parts.append(chunk)
    while _line(reader) not in (b"\r\n", b"\n", b""):  # trailer fields: nothing vsc reads
        pass
    return b"".join(parts)


def request_head(method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """A request's head (RFC 9112 §3): the request line, `Host`, the caller's headers, and the
    body's length (also 0 for a bodiless POST, PUT or PATCH, as http.client sends it). A header
    that would break the head (a line break in it) is refused: it cannot be sent as it is."""
    lines = [f"{method} {target} HTTP/1.1"]
    names = {name.lower() for name in headers}
    if "host" not in names:
        lines.append(f"Host: {host}")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: identity")
    if "content-length" not in names and (body is not None or method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(body or b'')}")
    for name, value in headers.items():
        if "\n" in value or "\r" in value or not name or not name.isascii() or _CONTROLS.search(name) or ":" in name:
            raise ValueError(f"the header {name!r} cannot be sent: its name or value breaks the request")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _authority(host: str, port: int, default: int | None) -> str:
    name = f"[{host}]" if ":" in host else host if host.isascii() else host.encode("idna").decode("ascii")
    return name if port == default else f"{name}:{port}"


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
        #: the Host header's value (RFC 9110 §7.2): the port only where it is not the default
        self.authority = _authority(self.host, self.port, 443 if self.tls else 80)
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
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        #: connections opened, for tests and the debug log
        self.opened = 0

    def target(self, path_and_query: str) -> str:
        """The request target to send for a path: absolute-form to a forwarding proxy."""
        return self.origin + path_and_query if self._forwarded else path_and_query

    def _open(self) -> Connection:
        try:
            sock = socket.create_connection(self._connect_to, timeout=self.connect_timeout)
        except OSError as exc:
            raise NeverSent(_reason(exc)) from None
        try:
            # A request goes out in one write and waits for its answer: Nagle's delay only hurts.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                assert self.context is not None
                if self.proxy is not None:
                    self._tunnel(sock)
                # The handshake (through a tunnel too) checks the origin's certificate and name.
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise CertificateRefused(exc.verify_message or str(exc)) from None
        except (OSError, TransportError) as exc:  # (a refused tunnel, a proxy that hung up)
            sock.close()
            raise NeverSent(_reason(exc)) from None
        with self._lock:
            self.opened += 1
        return Connection(sock)

    def _tunnel(self, sock: socket.socket) -> None:
        """Ask the proxy for a tunnel to the origin (RFC 9110 §9.3.6); anything but a 2xx is a
        refusal, said with the proxy's status ("Tunnel connection failed: 407 ...")."""
        authority = _authority(self.host, self.port, None)
        sock.sendall(request_head("CONNECT", authority, authority, self._proxy_headers, None))
        reader = sock.makefile("rb")
        try:
            answer = read_head(reader)
        finally:
            reader.close()
        if not 200 <= answer.status < 300:
            raise NeverSent(f"Tunnel connection failed: {answer.status} {answer.reason}".rstrip())

    def _take(self) -> Connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._open()
            if not _dropped(conn.sock):
                return conn
            conn.close()

    def _give_back(self, conn: Connection) -> None:
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
        if not target.isascii() or _CONTROLS.search(target):  # (a store's path may hold non-ASCII text or spaces)
            target = quote(target, safe="/:?#[]@!$&'()*+,;=%~")
        if self._forwarded and self._proxy_headers:
            headers = {**headers, **self._proxy_headers}
        head = request_head(method, target, self.authority, headers, body)
        conn = self._take()
        sent = False
        try:
            if body and len(body) <= _JOINED_BODY:
                conn.sock.sendall(head + body)
            else:
                conn.sock.sendall(head)
                if body:
                    conn.sock.sendall(body)
            sent = True
            answer = read_head(conn.reader)
            data = read_body(conn.reader, method, answer)
        except TimeoutError:
            conn.close()
            raise (TimedOut("read timed out") if sent else Cut("timed out while sending")) from None
        except OSError as exc:
            conn.close()
            raise Cut(_reason(exc)) from None
        except BaseException:  # (a protocol break, a bug, or Ctrl-C: the connection is unusable)
            conn.close()
            raise
        if answer.close:
            conn.close()
        else:
            self._give_back(conn)
        return answer.status, answer.reason, Headers(answer.headers), data

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for conn in idle:
            conn.close()


def _reason(exc: BaseException) -> str:
    """An OS or protocol failure in a few words: "Connection refused", "Remote end closed
    connection without response", "Tunnel connection failed: 407 Proxy Authentication Required"."""
    if isinstance(exc, TransportError):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
