"""Bulk mutations on Shopify: one mutation run once per line of an uploaded JSONL file.

The flow (https://shopify.dev/docs/api/usage/bulk-operations/imports; platforms/shopify.md §6):
`stagedUploadsCreate` (resource BULK_MUTATION_VARIABLES, POST) hands out a signed form; the
JSONL file goes up as multipart/form-data (the form's parameters, then `file`) to that
address, which is not the store's (so it goes without the access token);
`bulkOperationRunMutation(mutation:, stagedUploadPath: <the form's "key">)` starts the
operation; `bulkOperation(id:)` is polled until COMPLETED; `url` is then a JSONL file with
one line per input line, `{"data": {...}, "__lineNumber": n}` (n counts input lines from 0).

What it costs: the three GraphQL calls and the polls are priced like any call (about 10
points for each mutation, 1 for a poll), whatever the file holds; the lines themselves run
on Shopify's side without touching the app's bucket. The price is latency: a real operation
is queued and runs asynchronously (minutes for large files; it must finish within 24 hours).
From API version 2026-01 up to five bulk mutations run at once per shop (earlier: one); the
file of variables may hold at most 20 MiB (the upload form's policy in the imports guide).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vsc.connectors.base import Image, ListingDraft, Product
from vsc.connectors.http import StoreSession
from vsc.connectors.shopify.client import ShopifyClient, document
from vsc.errors import ApiError, PayloadError, RetriableError

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})
# The upload form accepts files up to 20 MiB (the policy's content-length-range).
MAX_FILE_BYTES = 20 * 1024 * 1024
# Operations whose response was lost are looked for among those created since the start,
# less this much: the store's clock and ours may disagree.
CLOCK_SKEW = timedelta(minutes=10)


@dataclass
class BulkRun:
    """One bulk operation as the store last reported it."""

    id: str
    status: str
    object_count: int = 0
    url: str | None = None
    partial_url: str | None = None
    error_code: str | None = None
    created_at: datetime | None = None
    query: str = ""

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def parse(cls, node: dict[str, Any]) -> BulkRun:
        if not isinstance(node, dict) or not node.get("id"):
            raise PayloadError(f"Shopify sent a bulk operation without an id: {node!r}")
        created = node.get("createdAt")
        return cls(
            id=node["id"],
            status=str(node.get("status") or ""),
            object_count=int(node.get("objectCount") or 0),
            url=node.get("url"),
            partial_url=node.get("partialDataUrl"),
            error_code=node.get("errorCode"),
            created_at=datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None,
            query=node.get("query") or "",
        )


class BulkBusy(RetriableError):
    """The store runs as many bulk mutations as it allows, and they did not finish while vsc waited."""


class BulkMixin:
    """Bulk mutations for `ShopifyConnector`."""

    name: str
    session: StoreSession
    client: ShopifyClient
    #: first pause between polls; it doubles up to `bulk_poll_max`
    bulk_poll_seconds: float = 1.0
    bulk_poll_max: float = 30.0

    # Provided by ShopifyConnector.
    listing_input: Callable[[ListingDraft, str | None], dict[str, Any]]
    online_store_publication: Callable[[], str | None]

    # -- the generic flow ----------------------------------------------------------------------
    def bulk_start(self, name: str, lines: Sequence[dict[str, Any]]) -> BulkRun:
        """Upload `lines` (the variables of `graphql/<name>.graphql`, one dict per line) and start
        the bulk mutation. When the store already runs as many bulk mutations as it allows, they
        are waited for first. The file must stay under `MAX_FILE_BYTES` (see `bulk_line_bytes`)."""
        body = "".join(json.dumps(line, separators=(",", ":"), default=str) + "\n" for line in lines).encode()
        if len(body) > MAX_FILE_BYTES:
            raise ValueError(f"a bulk file of {len(body)} bytes is over Shopify's {MAX_FILE_BYTES}")
        target = self.client.execute(
            "staged_uploads_create",
            {
                "input": [
                    {
                        "resource": "BULK_MUTATION_VARIABLES",
                        "filename": f"{name}.jsonl",
                        "mimeType": "text/jsonl",
                        "httpMethod": "POST",
                    }
                ]
            },
            mutation=True,
            idempotent=True,  # a second staged target is harmless
        )["stagedUploadsCreate"]
        self.client.check_user_errors(target, "stagedUploadsCreate")
        staged = (target.get("stagedTargets") or [None])[0]
        if not staged or not staged.get("url"):
            raise PayloadError(f"{self.name}: stagedUploadsCreate returned no upload target", store=self.name)
        params = {p["name"]: p["value"] for p in staged.get("parameters") or []}
        if "key" not in params:
            raise PayloadError(f"{self.name}: the staged upload form has no key", store=self.name)
        # The form's fields first, the file last (storage ignores fields after the file).
        response = self.session.request(
            "POST",
            staged["url"],
            data=params,
            files={"file": (f"{name}.jsonl", body, "text/jsonl")},
            signed=True,
            safe=True,  # the same key again replaces the same file
            write=False,
        )
        self._signed_ok(response, "uploading the bulk file")
        for _ in range(3):
            # Not repeated when the answer is lost (the run may have started): the caller looks
            # for it among `bulk_candidates` and tells its own run by the results.
            result = self.client.execute(
                "bulk_run_mutation",
                {"mutation": document(name), "stagedUploadPath": params["key"]},
                mutation=True,
            )["bulkOperationRunMutation"]
            errors = result.get("userErrors") or []
            # LIMIT_REACHED from 2026-01 (five at once), OPERATION_IN_PROGRESS before (one).
            if any(e.get("code") in ("LIMIT_REACHED", "OPERATION_IN_PROGRESS") for e in errors):
                self._wait_for_running()
                continue
            self.client.check_user_errors(result, "bulkOperationRunMutation")
            return BulkRun.parse(result.get("bulkOperation") or {})
        raise BulkBusy(
            f"{self.name}: the store keeps running other bulk mutations; try again later",
            store=self.name,
            platform="shopify",
            code="LIMIT_REACHED",
        )

    def _wait_for_running(self) -> None:
        nodes = self.client.execute(
            "bulk_operations", {"query": "operation_type:mutation AND (status:created OR status:running)"}
        )["bulkOperations"]["nodes"]
        for node in nodes:
            self.bulk_wait(BulkRun.parse(node))

    def bulk_candidates(self, name: str, since: datetime) -> list[BulkRun]:
        """Bulk runs of `graphql/<name>.graphql` created since `since` (less the clock skew), newest first."""
        after = (since - CLOCK_SKEW).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        nodes = self.client.execute(
            "bulk_operations", {"query": f"operation_type:mutation AND created_at:>='{after}'"}
        )["bulkOperations"]["nodes"]
        text = document(name).strip()
        return [BulkRun.parse(n) for n in nodes if (n.get("query") or "").strip() == text]

    def bulk_get(self, operation_id: str) -> BulkRun:
        node = self.client.execute("bulk_operation", {"id": operation_id})["bulkOperation"]
        if node is None:
            raise PayloadError(f"{self.name}: the store has no bulk operation {operation_id}", store=self.name)
        return BulkRun.parse(node)

    def bulk_wait(self, run: BulkRun, on_progress: Callable[[BulkRun], None] | None = None) -> BulkRun:
        """Poll until the operation finishes (COMPLETED, FAILED, CANCELED or EXPIRED)."""
        pause = self.bulk_poll_seconds
        while True:
            run = self.bulk_get(run.id)
            if on_progress is not None:
                on_progress(run)
            if run.finished:
                return run
            self.session.sleep(pause)
            pause = min(self.bulk_poll_max, pause * 2)

    def _signed_ok(self, response: Any, what: str) -> None:
        if response.status_code >= 300:
            raise ApiError(
                f"{self.name}: {what} failed (HTTP {response.status_code}: {' '.join(response.text.split())[:200]})",
                store=self.name,
                platform="shopify",
                status=response.status_code,
            )

    def bulk_results(self, run: BulkRun) -> dict[int, dict[str, Any]]:
        """The result lines of a finished run by input line number (the partial ones of a failed run)."""
        url = run.url or run.partial_url
        if not url:
            return {}
        response = self.session.request("GET", url, signed=True)
        self._signed_ok(response, "downloading the bulk results")
        out: dict[int, dict[str, Any]] = {}
        for raw in response.text.splitlines():
            if raw.strip():
                line = json.loads(raw)
                out[int(line["__lineNumber"])] = line
        return out

    # -- listings --------------------------------------------------------------------------------
    def bulk_pays(self, sizes: Sequence[tuple[int, int]]) -> bool:
        """Whether publishing listings of these (variants, images) sizes one by one would wait on
        the cost bucket, where one bulk publish would not.

        Measured with bench/first_publish.py (bench/RESULTS.md, "First publish"): a listing's
        productSet keeps about 15 points, 3 per variant and 2 per image (never more than it
        requested), its publishablePublish 11; and every productSet first needs its requested
        cost (about 870 points: the variants and media it may read back) free in the bucket.
        So the bucket holds `maximum - 870` points of listings before the pacing starts.
        """
        gate = self.client._costs.get("product_set", 870.0)
        kept = sum(min(gate, 15 + 3 * variants + 2 * images) + 11 for variants, images in sizes)
        return kept > self.limiter.maximum - gate  # type: ignore[attr-defined]

    def listing_line(self, draft: ListingDraft, handle: str) -> dict[str, Any]:
        """One bulk productSet line: the input and handle `create_listing` would send, so the
        line and a per-product retry upsert the same listing."""
        return {"input": self.listing_input(draft, handle), "identifier": {"handle": handle}}

    @staticmethod
    def bulk_line_bytes(line: dict[str, Any]) -> int:
        """How many bytes a line takes in the bulk file (to keep files under `MAX_FILE_BYTES`)."""
        return len(json.dumps(line, separators=(",", ":"), default=str).encode()) + 1

    def bulk_listings(self, items: Sequence[tuple[ListingDraft, str]]) -> BulkRun:
        """Start one bulk productSet over `(draft, handle)` pairs."""
        return self.bulk_start("bulk_product_set", [self.listing_line(d, h) for d, h in items])

    def listing_from_line(self, line: dict[str, Any] | None) -> Product:
        """The listing a bulk productSet line made, or the error that line met."""
        from vsc.connectors.shopify.connector import parse_product

        if line is None:
            raise RetriableError(f"{self.name}: the bulk operation never ran this line", store=self.name)
        self._line_errors(line, "productSet")
        result = (line.get("data") or {}).get("productSet")
        self.client.check_user_errors(result, "productSet")
        node = (result or {}).get("product")
        if not node:
            raise PayloadError(f"{self.name}: productSet returned no product", store=self.name)
        return parse_product(node, media=[])

    def bulk_publish(self, product_ids: Sequence[str]) -> BulkRun | None:
        """Start one bulk publishablePublish onto the Online Store; None when the store has none."""
        publication = self.online_store_publication()
        if not publication or not product_ids:
            return None
        return self.bulk_start(
            "bulk_publish", [{"id": pid, "input": [{"publicationId": publication}]} for pid in product_ids]
        )

    def media_from_line(self, line: dict[str, Any] | None) -> list[Image]:
        """The images of a listing a bulk publishablePublish line returned, or the line's error."""
        from vsc.connectors.shopify.connector import _images

        if line is None:
            raise RetriableError(f"{self.name}: the bulk operation never ran this line", store=self.name)
        self._line_errors(line, "publishablePublish")
        result = (line.get("data") or {}).get("publishablePublish")
        self.client.check_user_errors(result, "publishablePublish")
        return _images(((result or {}).get("publishable") or {}).get("media"))

    def _line_errors(self, line: dict[str, Any], operation: str) -> None:
        errors = line.get("errors")
        if errors:
            text = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
            raise RetriableError(f"{self.name}: {operation} failed in the bulk run: {text}", store=self.name)
