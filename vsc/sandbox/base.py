"""The HTTP server every sandbox store runs on, with request records and fault switches.

A platform emulator subclasses `SandboxStore` and implements `handle`. The base
class serves it on 127.0.0.1 (a free port unless one is given) in a background
thread, records every request (so tests can count reads and writes), and can
inject faults by rule: an HTTP status with optional Retry-After, the platform's own
throttle answer, a stalled answer the client times out on, or a connection cut
before or after the store applied the request. A rule picks its requests by HTTP
method, path, operation (a GraphQL root field or operation name, a REST route
name) or any predicate, fires at a seeded rate, and can draw one of several
faults per firing (`Fault("mix", choices=[...])`), so a test can fail a share of
every store's traffic with a reproducible mix of fault kinds.

Handlers run one at a time under a lock: the emulated store is a consistent
little database, as a real store appears to one client.

`start(tls=context)` serves HTTPS instead (tests of certificate checking give it a
context holding a self-signed or private-CA certificate); `url` then says https://.
"""

from __future__ import annotations

import json
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class SandboxRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return default


@dataclass
class SandboxResponse:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body).encode("utf-8")


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    write: bool
    operation: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


FAULT_KINDS = frozenset(
    {"status", "timeout", "cut_before", "cut_after", "throttle", "hook", "hook_before", "rewrite", "mix"}
)


@dataclass
class Fault:
    """A fault to inject. `kind` is one of:

    - "status": answer `status` (e.g. 429, 500, 502, 503) in the platform's error shape
      without applying the request, with `retry_after` seconds in a Retry-After header when set;
    - "timeout": the store stalls `delay` seconds, longer than the client waits, then drops the
      connection; with `applied` (the default) the store applied the request before stalling
      (the client cannot know), otherwise it never did. The store's state is settled the moment
      the stall begins, so what the client finds on its next read does not depend on timing;
    - "cut_before": close the connection without applying the request;
    - "cut_after": apply the request, then close the connection (a lost response);
    - "throttle": the platform's own throttle answer (Shopify THROTTLED with HTTP 200,
      Squarespace 429 without Retry-After, WooCommerce hosts 429 with Retry-After);
    - "hook": apply the request, call `hook(request)` (a test kills the client there: a crash
      right after the store applied a write), then close the connection;
    - "rewrite": apply the request, then answer `rewrite(request, body)` instead of the body the
      emulator made (a store sending nulls, missing or extra fields, or an empty list);
    - "hook_before": call `hook(request)`, then close the connection without applying the
      request (a crash while the write was on its way: the store never saw it);
    - "mix": when it fires, one of `choices` (Faults of the kinds above) is drawn, weighted
      by their `rate`; the choices' own `match`/`times` are not consulted.

    Which requests it applies to: all of `method` (e.g. "POST"), `path` (a regular
    expression searched in the path), `operation` (the store's operation name for the
    request: a Shopify GraphQL root field such as "orderCreate" or the document's operation
    name; a WooCommerce or Squarespace route name) and `match(request)` that are set must
    hold. `rate` is the chance it fires on a matching request; `times` how often at most
    (None: forever). Without a `seed` the draws come from the store's generator, in request
    order. With one, whether the n-th request of an operation (method and operation name, or
    path) fails, and how, depends only on (seed, operation, n): a run that sends one more read
    somewhere (a cursor window crossing a second boundary) still fails the same writes.
    `fired` counts firings and `kinds` the firings by `label`.
    """

    kind: str
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    match: Callable[[SandboxRequest], bool] | None = None
    rate: float = 1.0
    times: int | None = None
    fired: int = 0
    hook: Callable[[SandboxRequest], None] | None = None
    rewrite: Callable[[SandboxRequest, Any], Any] | None = None
    method: str | None = None
    path: str | None = None
    operation: str | None = None
    applied: bool = True
    choices: Sequence[Fault] = ()
    seed: int | None = None
    kinds: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.kind == "mix" and not self.choices:
            raise ValueError("a mix fault needs choices")
        self._seen: Counter[str] = Counter()

    def applies_to(self, store: SandboxStore, req: SandboxRequest) -> bool:
        """Whether this rule selects `req` (before its rate is drawn)."""
        if self.method is not None and req.method != self.method.upper():
            return False
        if self.path is not None and re.search(self.path, req.path) is None:
            return False
        if self.operation is not None and self.operation not in store.operation_names(req):
            return False
        return self.match is None or bool(self.match(req))

    def draw(self, fallback: random.Random, operation: str = "") -> Fault | None:
        """Fire or not (at `rate`) on a request of `operation`; the fault to inject when firing."""
        rng = fallback
        if self.seed is not None:
            self._seen[operation] += 1
            # A str seed is hashed with SHA-512: the same in every process, whatever PYTHONHASHSEED.
            rng = random.Random(f"{self.seed}:{operation}:{self._seen[operation]}")
        if self.rate < 1.0 and rng.random() >= self.rate:
            return None
        self.fired += 1
        chosen = self
        if self.kind == "mix":
            chosen = rng.choices(list(self.choices), weights=[c.rate for c in self.choices])[0]
            chosen.fired += 1
        self.kinds[chosen.label] += 1
        return chosen

    @property
    def label(self) -> str:
        """The kind, with what tells faults of one kind apart ("status 503", "timeout (not applied)")."""
        if self.kind == "status":
            return f"status {self.status}" + (" with Retry-After" if self.retry_after is not None else "")
        if self.kind == "timeout" and not self.applied:
            return "timeout (not applied)"
        return self.kind


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # The status line and headers go out in one write and the body in another: with Nagle on,
    # a keep-alive client's delayed ACK holds the body back ~40 ms on every request.
    disable_nagle_algorithm = True

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The `Date` header tells the store's own time, as a real server's does (tests move it).
        return super().date_time_string(self.server.store.clock() if timestamp is None else timestamp)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def setup(self) -> None:
        # The TLS handshake runs here, in the connection's own thread, so a client that refuses
        # the certificate ends only its own connection (quietly, as a real server would).
        self.tls_refused = False
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.tls_refused = True
        super().setup()

    def handle(self) -> None:
        if not self.tls_refused:
            super().handle()

    def _serve(self) -> None:
        store = self.server.store
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = SandboxRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k: v for k, v in self.headers.items()},
            body=body,
        )
        fault = store._pick_fault(req)
        if fault is not None and fault.kind == "hook_before" and fault.hook is not None:
            fault.hook(req)
        if fault is not None and fault.kind in ("cut_before", "hook_before"):
            store._record(req, 0, None)
            self._drop()
            return
        if fault is not None and fault.kind == "timeout" and not fault.applied:
            store._record(req, 0, None)
            self._stall(fault.delay)
            return
        if fault is not None and fault.kind == "status":
            body = store.fault_body(fault.status)
            if isinstance(body, bytes):  # an HTML page from a proxy in front of the store
                resp = SandboxResponse(fault.status, raw=body, headers={"Content-Type": "text/html; charset=utf-8"})
            else:
                resp = SandboxResponse(fault.status, body)
            if fault.retry_after is not None:
                resp.headers["Retry-After"] = str(int(fault.retry_after))
            store._record(req, resp.status, None)
        elif fault is not None and fault.kind == "throttle":
            resp = store.throttle_response(req)
            store._record(req, resp.status, None)
        else:
            with store.lock:
                try:
                    resp = store.handle(req)
                except Exception as exc:  # an emulator bug must show, not hang the client
                    resp = SandboxResponse(500, {"error": f"sandbox error: {type(exc).__name__}: {exc}"})
                store._record(req, resp.status, store.operation_name(req))
            if fault is not None and fault.kind == "rewrite" and fault.rewrite is not None and resp.raw is None:
                resp.body = fault.rewrite(req, resp.body)
        if fault is not None and fault.kind == "timeout":
            self._stall(fault.delay)  # applied above; the answer never comes
            return
        if fault is not None and fault.kind == "hook" and fault.hook is not None:
            fault.hook(req)
        if fault is not None and fault.kind in ("cut_after", "hook"):
            self._drop()
            return
        payload = resp.encode()
        self.send_response(resp.status)
        if resp.raw is None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(2)

    def _stall(self, delay: float) -> None:
        # Hold the connection open past the client's read timeout, then drop it: writing an
        # answer to a client that gave up would only raise BrokenPipe in this thread.
        time.sleep(delay)
        self._drop()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    store: SandboxStore
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.store.lock:
            self.store.connections += 1
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr


class SandboxStore:
    """Base of the platform emulators. Subclasses implement `handle` and `is_write`."""

    platform = "sandbox"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, seed: int | None = None) -> None:
        self.host = host
        self.port = port
        self.lock = threading.RLock()
        self.requests: list[RequestRecord] = []
        #: TCP connections accepted (a client that keeps its connection alive opens one)
        self.connections = 0
        self.faults: list[Fault] = []
        self.random = random.Random(seed)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.clock: Callable[[], float] = time.time
        self.tls: ssl.SSLContext | None = None

    # -- lifecycle -------------------------------------------------------------
    def start(self, *, tls: ssl.SSLContext | None = None) -> SandboxStore:
        """Serve on a background thread; over HTTPS with the certificate in `tls` when given."""
        self.tls = tls
        server = _Server((self.host, self.port), _Handler)
        server.store = self
        server.tls = tls
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox-{self.platform}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SandboxStore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://{self.host}:{self.port}"

    # -- to override -----------------------------------------------------------
    def handle(self, req: SandboxRequest) -> SandboxResponse:
        raise NotImplementedError

    def is_write(self, req: SandboxRequest) -> bool:
        return req.method not in ("GET", "HEAD", "OPTIONS")

    def operation_name(self, req: SandboxRequest) -> str | None:
        return None

    def operation_names(self, req: SandboxRequest) -> set[str]:
        """The names a fault's `operation` may give for `req` (by default its `operation_name`)."""
        name = self.operation_name(req)
        return {name} if name else set()

    def fault_body(self, status: int) -> Any:
        """The body of an injected error status: JSON data, or bytes for an HTML page."""
        return {"error": f"injected HTTP {status}"}

    def throttle_response(self, req: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(429, self.fault_body(429), {"Retry-After": "1"})

    # -- records and faults ------------------------------------------------------
    def _record(self, req: SandboxRequest, status: int, operation: str | None) -> None:
        try:
            body = req.json()
        except ValueError:
            body = None
        with self.lock:
            self.requests.append(
                RequestRecord(req.method, req.path, req.query, status, self.is_write(req), operation, body, req.headers)
            )

    def _pick_fault(self, req: SandboxRequest) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if not fault.applies_to(self, req):
                    continue
                chosen = fault.draw(self.random, self._operation_key(req) if fault.seed is not None else "")
                if chosen is not None:
                    return chosen
        return None

    def _operation_key(self, req: SandboxRequest) -> str:
        return f"{req.method} {self.operation_name(req) or req.path}"

    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def reset_requests(self) -> None:
        with self.lock:
            self.requests.clear()
            self.connections = 0

    def count(self, *, write: bool | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if write is None or r.write == write)

    @property
    def writes(self) -> list[RequestRecord]:
        with self.lock:
            return [r for r in self.requests if r.write]
