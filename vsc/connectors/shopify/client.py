"""GraphQL over one Shopify store: documents, cost pacing, throttling, typed errors.

Every document vsc sends is a `.graphql` file beside this module (checked
against Shopify's real 2026-04 schema by ../shared/tools/check-graphql).

Pacing follows the cost model Shopify returns with every response
(`extensions.cost`, platforms/shopify.md §3): before a call, `CostLimiter`
waits until the bucket holds the cost the same document asked for last time;
after it, the bucket is reset from `throttleStatus`. A THROTTLED answer (HTTP
200 with `errors[].extensions.code == "THROTTLED"`) means nothing ran, so it is
retried after `(requested - available) / restoreRate` seconds, mutations too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from vsc.connectors.http import Response, StoreSession, http_date
from vsc.errors import ApiError, AuthError, NotFound, PayloadError, RetriableError, UserErrors

API_VERSION = "2026-04"
GRAPHQL_PATH = f"/admin/api/{API_VERSION}/graphql.json"
MAX_QUERY_COST = 1000


@cache
def document(name: str) -> str:
    """The text of `graphql/<name>.graphql` (read from beside this file: vsc installs unpacked,
    and importlib.resources would cost a pass ~25 ms of imports: importlib.readers, zipfile)."""
    return (Path(__file__).parent / "graphql" / f"{name}.graphql").read_text("utf-8")


class CostLimiter:
    """A model of the store's leaky bucket of cost points, shared by every caller of one store.

    Starts from Shopify's Standard plan (2,000 points, 100 restored a second) and
    follows the real numbers as soon as a response reports them.
    """

    def __init__(
        self,
        *,
        maximum: float = 2000.0,
        restore_rate: float = 100.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.maximum = maximum
        self.restore_rate = restore_rate
        self.available = maximum
        self.clock = clock
        self.sleep = sleep
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited = 0.0

    def _refill(self) -> None:
        now = self.clock()
        self.available = min(self.maximum, self.available + (now - self._stamp) * self.restore_rate)
        self._stamp = now

    def acquire(self, method: str, url: str, *, cost: float = 1.0) -> None:
        cost = min(cost, self.maximum)
        with self._lock:
            self._refill()
            if self.available < cost:
                wait = (cost - self.available) / self.restore_rate
                self.waited += wait
                self.sleep(wait)
                self._refill()
            self.available -= cost

    def observe(self, response: Response) -> None:
        return None

    def update(self, throttle: dict[str, Any]) -> None:
        with self._lock:
            self.maximum = float(throttle.get("maximumAvailable") or self.maximum)
            self.restore_rate = float(throttle.get("restoreRate") or self.restore_rate)
            if throttle.get("currentlyAvailable") is not None:
                self.available = float(throttle["currentlyAvailable"])
            self._stamp = self.clock()


class CostTooHigh(ApiError):
    """A query asked for more than Shopify's 1,000-point cap; retry with a smaller page."""


class ShopifyClient:
    """Sends named documents to one store's Admin GraphQL endpoint."""

    def __init__(self, session: StoreSession, limiter: CostLimiter) -> None:
        self.session = session
        self.limiter = limiter
        self.max_throttle_retries = 8
        # The cost a document asked for last time: the best estimate of the next call.
        self._costs: dict[str, float] = {}
        self._peaks: dict[str, float] = {}
        #: the `Date` header of the store's last answer that had one (read by `server_time`)
        self._date: str | None = None

    @property
    def server_time(self) -> datetime | None:
        """The `Date` of the store's last answer (None before one came, or if it did not parse)."""
        return http_date(self._date)

    def _fail(self, message: str, **kw: Any) -> ApiError:
        return ApiError(f"{self.session.store}: {message}", store=self.session.store, platform="shopify", **kw)

    def execute(
        self,
        name: str,
        variables: dict[str, Any] | None = None,
        *,
        mutation: bool = False,
        idempotent: bool = False,
    ) -> dict[str, Any]:
        """Run one document and return its `data`.

        `mutation` marks a write (counted as such, and not repeated after an
        ambiguous failure unless `idempotent`: an @idempotent key, a compare-and-set,
        or an upsert makes repeating it harmless).
        """
        body = {"query": document(name), "variables": variables or {}}
        throttled = 0
        while True:
            # The most this document ever asked for: pages and id lists vary in size, and an
            # estimate below the real request is answered THROTTLED. A query never seen yet is
            # estimated at Shopify's per-query cap, so it never runs into an empty bucket.
            estimate = self._peaks.get(name, 10.0 if mutation else float(MAX_QUERY_COST))
            response = self.session.request(
                "POST",
                GRAPHQL_PATH,
                json=body,
                safe=(not mutation) or idempotent,
                write=mutation,
                cost=estimate,
            )
            if response.status_code in (401, 403):
                raise AuthError(
                    f"{self.session.store}: Shopify refused the access token (HTTP {response.status_code}: "
                    f"{_short(response.text)})",
                    store=self.session.store,
                    platform="shopify",
                    status=response.status_code,
                    hint="Check the token and the app's scopes (read/write products, inventory, orders, "
                    "locations, merchant-managed fulfillment orders), then connect again.",
                )
            if response.status_code == 404:
                raise NotFound(
                    f"{self.session.store}: no Shopify Admin API at {self.session.base_url} "
                    f"(HTTP 404 for API version {API_VERSION})",
                    store=self.session.store,
                    platform="shopify",
                    status=404,
                    hint="Check the shop address (name.myshopify.com).",
                )
            if response.status_code >= 400:
                raise self._fail(f"HTTP {response.status_code}: {_short(response.text)}", status=response.status_code)
            try:
                # The store's own time (whole seconds): what a read of `updatedAt` can be trusted
                # against (a change stamped in the very second of the read may still be followed
                # by another with the same stamp).
                # Kept as it came, parsed only when asked for (most answers' never are).
                self._date = response.headers.get("Date") or self._date
                payload = response.json()
            except ValueError:
                raise PayloadError(
                    f"{self.session.store}: Shopify answered with something that is not JSON: {_short(response.text)}",
                    store=self.session.store,
                    platform="shopify",
                ) from None
            if not isinstance(payload, dict):
                raise PayloadError(f"{self.session.store}: unexpected GraphQL answer", store=self.session.store)
            cost = (payload.get("extensions") or {}).get("cost") or {}
            if cost.get("throttleStatus"):
                self.limiter.update(cost["throttleStatus"])
            if cost.get("requestedQueryCost") is not None:
                self._costs[name] = float(cost["requestedQueryCost"])
                self._peaks[name] = max(self._peaks.get(name, 0.0), self._costs[name])
            # Points spent, for `vsc status` and the benchmarks: the budget is the real limit.
            if cost.get("actualQueryCost") is not None:
                self.session.stats["cost_points"] += int(cost["actualQueryCost"])
            errors = payload.get("errors")
            if errors:
                codes = {((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}
                if "THROTTLED" in codes:
                    self.session.stats["throttled"] += 1
                    throttled += 1
                    if throttled > self.max_throttle_retries:
                        raise RetriableError(
                            f"{self.session.store}: still throttled after {throttled} tries",
                            store=self.session.store,
                            platform="shopify",
                            code="THROTTLED",
                        )
                    status = cost.get("throttleStatus") or {}
                    requested = float(cost.get("requestedQueryCost") or estimate)
                    if requested > float(status.get("maximumAvailable") or requested):
                        # It would never fit in this store's bucket: ask the caller for smaller pages.
                        raise CostTooHigh(
                            f"{name} asks for {requested:.0f} points, more than the store's bucket holds",
                            code="THROTTLED",
                        )
                    available = float(status.get("currentlyAvailable") or 0)
                    rate = float(status.get("restoreRate") or self.limiter.restore_rate)
                    self.session.sleep(max(0.05, (requested - available) / rate))
                    continue
                messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
                if "MAX_COST_EXCEEDED" in codes:
                    raise CostTooHigh(f"{name} costs too much: {messages}", code="MAX_COST_EXCEEDED")
                if "ACCESS_DENIED" in codes:
                    raise AuthError(
                        f"{self.session.store}: access denied ({messages})",
                        store=self.session.store,
                        platform="shopify",
                        code="ACCESS_DENIED",
                        hint="The app lacks a scope vsc needs; grant it and connect again.",
                    )
                raise self._fail(f"{name} failed: {messages}", code=next(iter(c for c in codes if c), None))
            data = payload.get("data")
            if not isinstance(data, dict):
                raise PayloadError(f"{self.session.store}: {name} returned no data", store=self.session.store)
            return data

    def check_user_errors(self, result: dict[str, Any] | None, operation: str, *, key: str = "userErrors") -> None:
        """Raise `UserErrors` when a mutation payload reports any."""
        if result is None:
            raise PayloadError(f"{self.session.store}: {operation} returned nothing", store=self.session.store)
        errors = result.get(key) or []
        if errors:
            text = "; ".join(f"{'.'.join(e.get('field') or []) or operation}: {e.get('message')}" for e in errors)
            raise UserErrors(
                f"{self.session.store}: {operation} refused: {text}",
                errors=[{"field": e.get("field"), "message": e.get("message"), "code": e.get("code")} for e in errors],
                store=self.session.store,
                platform="shopify",
            )


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
