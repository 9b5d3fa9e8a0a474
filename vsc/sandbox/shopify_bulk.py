"""Bulk mutations for the Shopify sandbox: staged uploads, `bulkOperationRunMutation`, results.

The real flow (https://shopify.dev/docs/api/usage/bulk-operations/imports):

1. `stagedUploadsCreate(input: [{resource: BULK_MUTATION_VARIABLES, filename, mimeType:
   "text/jsonl", httpMethod: POST}])` returns a target `url` and form `parameters`; the
   `key` parameter is the path later given as `stagedUploadPath`.
2. The JSONL file (one line of mutation variables per execution) is sent to `url` as a
   multipart/form-data POST: every parameter as a form field, then the file as `file`.
   The real target is a signed Google Cloud Storage form, answering 201 with an XML body
   when `success_action_status` is 201; the sandbox serves the same form on its own port.
3. `bulkOperationRunMutation(mutation:, stagedUploadPath:)` starts an operation (status
   CREATED). From API version 2026-01 up to five bulk mutations run at once per shop (the
   imports guide, "Manage concurrent operations"; older versions allowed one, refused with
   OPERATION_IN_PROGRESS, which the 2026-04 schema text still describes); a sixth is refused
   here with the `BulkMutationUserError` code LIMIT_REACHED ("Bulk operations limit reached.
   Please try again later.", [SDL26] BulkMutationErrorCode). The mutation may select at
   most one connection ("Bulk mutations cannot contain more than 1 connection.", the
   userError Shopify returns: https://community.shopify.com/t/186439).
4. The operation is polled with `bulkOperation(id:)` (or `bulkOperations(query:)`; the
   deprecated `currentBulkOperation(type: MUTATION)` still answers) through RUNNING to
   COMPLETED (or FAILED with `errorCode` and `partialDataUrl`), `objectCount` counting the
   lines done. `url` then serves a JSONL file: one line per input line, in input order, each
   the mutation's `data` (and `errors`, if the line failed before its resolver ran) with the
   input line's 0-based `__lineNumber` (the imports guide's result example).

Executing a line costs the app's bucket nothing (only the mutation that starts the run and
the polls are priced). The sandbox runs lines as requests arrive: each GraphQL request to the
store first advances running operations by `bulk_lines_per_request` lines (all of them when
None), so an operation is CREATED when started and COMPLETED on the next request by default.
Real operations take minutes for large files and must finish within 24 hours (the guide);
the sandbox does not model that duration.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import hmac
import json
import secrets
import uuid
from typing import Any

import graphql
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, OperationDefinitionNode, OperationType

from vsc.sandbox.base import SandboxRequest, SandboxResponse

UPLOAD_PATH = "/staged-uploads"
RESULTS_PATH = "/bulk-results/"
# The signed form's policy in the imports guide's example allows 1 to 20,971,520 bytes
# (its "content-length-range" condition): the file of variables is at most 20 MiB.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Bulk mutations running at once per shop from API version 2026-01 (the imports guide).
MAX_RUNNING_MUTATIONS = 5
# Mutations the imports guide lists as runnable in bulk, among those the sandbox implements.
BULK_MUTATIONS = frozenset(
    {
        "productSet",
        "productUpdate",
        "productVariantsBulkCreate",
        "productVariantsBulkUpdate",
        "publishablePublish",
        "metafieldsSet",
    }
)
_FORM_FIELDS = (
    "Content-Type",
    "success_action_status",
    "acl",
    "key",
    "x-goog-date",
    "x-goog-credential",
    "x-goog-algorithm",
    "x-goog-signature",
    "policy",
)


def _mutation_fields(text: str) -> list[FieldNode]:
    op = next(d for d in graphql.parse(text).definitions if isinstance(d, OperationDefinitionNode))
    return [s for s in op.selection_set.selections if isinstance(s, FieldNode)]


def _bulk_error(field: list[str] | None, message: str, code: str) -> dict[str, Any]:
    return {"field": field, "message": message, "code": code}


def _xml_error(code: str, message: str) -> bytes:
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


class BulkOperationsMixin:
    """Staged uploads and bulk mutations, mixed into `ShopifySandbox`."""

    # Provided by ShopifySandbox.
    url: str
    lock: Any

    def _init_bulk(self) -> None:
        self.bulk_operations: dict[str, dict[str, Any]] = {}
        self.staged_uploads: dict[str, dict[str, Any]] = {}
        self.bulk_results: dict[str, bytes] = {}
        # Lines each request advances a running operation by (None: all of them at once).
        self.bulk_lines_per_request: int | None = None
        # Fault switches for tests: input lines (0-based) that fail as Shopify's internal
        # errors do, and an operation-level failure code for the next run.
        self.bulk_failing_lines: set[int] = set()
        self.bulk_fail_with: str | None = None
        self._upload_secret = secrets.token_bytes(16)

    # -- HTTP: the upload form and the result files ----------------------------------------------
    def handle_bulk_http(self, req: SandboxRequest) -> SandboxResponse | None:
        """Answer the staged-upload form and result downloads; None for every other path."""
        if req.path == UPLOAD_PATH and req.method == "POST":
            return self._receive_upload(req)
        if req.path.startswith(RESULTS_PATH) and req.method == "GET":
            body = self.bulk_results.get(req.path[len(RESULTS_PATH) :])
            if body is None:
                return SandboxResponse(404, raw=_xml_error("NoSuchKey", "The specified key does not exist."))
            return SandboxResponse(200, raw=body, headers={"Content-Type": "application/jsonl"})
        return None

    def _sign(self, policy: str) -> str:
        return hmac.new(self._upload_secret, policy.encode(), hashlib.sha256).hexdigest()

    def _receive_upload(self, req: SandboxRequest) -> SandboxResponse:
        ctype = req.header("Content-Type") or ""
        if not ctype.startswith("multipart/form-data"):
            return SandboxResponse(400, raw=_xml_error("InvalidArgument", "POST requires multipart/form-data."))
        if len(req.body) > MAX_UPLOAD_BYTES + 64 * 1024:
            return SandboxResponse(400, raw=_xml_error("EntityTooLarge", "Your proposed upload is too large."))
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + req.body
        )
        fields: dict[str, bytes] = {}
        order: list[str] = []
        for part in msg.iter_parts():  # type: ignore[attr-defined]
            name = part.get_param("name", header="content-disposition")
            if name:
                fields[str(name)] = part.get_payload(decode=True) or b""
                order.append(str(name))
        missing = [f for f in _FORM_FIELDS if f not in fields]
        if missing or "file" not in fields:
            return SandboxResponse(
                400, raw=_xml_error("InvalidArgument", f"Missing form fields: {', '.join(missing or ['file'])}.")
            )
        if order[-1] != "file":
            # Storage ignores fields after the file; Shopify's guide sends the file last.
            return SandboxResponse(400, raw=_xml_error("InvalidArgument", "The file must be the last form field."))
        policy = fields["policy"].decode()
        if not hmac.compare_digest(self._sign(policy), fields["x-goog-signature"].decode()):
            return SandboxResponse(403, raw=_xml_error("AccessDenied", "Invalid signature."))
        granted = json.loads(base64.b64decode(policy))
        key = fields["key"].decode()
        with self.lock:
            upload = self.staged_uploads.get(key)
            if granted.get("key") != key or upload is None:
                return SandboxResponse(403, raw=_xml_error("AccessDenied", "The key is not the one signed."))
            if len(fields["file"]) > MAX_UPLOAD_BYTES:
                return SandboxResponse(400, raw=_xml_error("EntityTooLarge", "Your proposed upload is too large."))
            upload["body"] = fields["file"]
        status = int(fields["success_action_status"] or b"204")
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><PostResponse><Location>{self.url}{UPLOAD_PATH}/{key}</Location>"
            f"<Key>{key}</Key></PostResponse>"
        ).encode()
        return SandboxResponse(status, raw=body if status == 201 else b"", headers={"Content-Type": "application/xml"})

    # -- GraphQL: stagedUploadsCreate --------------------------------------------------------------
    def _m_stagedUploadsCreate(self, obj: Any, info: Any, input: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: A002
        from vsc.sandbox.shopify import _err, _UserErrors

        targets = []
        for i, spec in enumerate(input):
            if spec["resource"] != "BULK_MUTATION_VARIABLES":
                raise _UserErrors([_err(["input", str(i), "resource"], "The sandbox stages only bulk mutation files")])
            if spec.get("httpMethod", "PUT") != "POST":
                # Bulk variables go up as a form POST (the imports guide); a PUT target would
                # be a signed URL the sandbox does not serve.
                raise _UserErrors([_err(["input", str(i), "httpMethod"], "Bulk mutation variables upload with POST")])
            key = f"tmp/{self._id_base}/bulk/{uuid.uuid4()}/{spec['filename']}"  # type: ignore[attr-defined]
            policy = base64.b64encode(json.dumps({"key": key, "expiration": self.now() + 3600}).encode()).decode()  # type: ignore[attr-defined]
            self.staged_uploads[key] = {"mimeType": spec["mimeType"], "body": None}
            params = {
                "Content-Type": spec["mimeType"],
                "success_action_status": "201",
                "acl": "private",
                "key": key,
                "x-goog-date": "20260101T000000Z",
                "x-goog-credential": "sandbox-staged-uploads/20260101/auto/storage/goog4_request",
                "x-goog-algorithm": "GOOG4-HMAC-SHA256",
                "x-goog-signature": self._sign(policy),
                "policy": policy,
            }
            targets.append(
                {
                    "url": f"{self.url}{UPLOAD_PATH}",
                    "resourceUrl": None,  # null for bulk variables, as in the guide's example
                    "parameters": [{"name": k, "value": v} for k, v in params.items()],
                }
            )
        return {"stagedTargets": targets}

    # -- GraphQL: bulkOperationRunMutation -----------------------------------------------------------
    def _m_bulkOperationRunMutation(
        self,
        obj: Any,
        info: Any,
        mutation: str,
        stagedUploadPath: str,  # noqa: N803
        clientIdentifier: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        from vsc.sandbox.shopify import shopify_schema

        if len(self._running_mutations()) >= MAX_RUNNING_MUTATIONS:
            message = "Bulk operations limit reached. Please try again later."
            return {"userErrors": [_bulk_error(None, message, "LIMIT_REACHED")]}
        problem = self._check_bulk_mutation(mutation, shopify_schema())
        if problem:
            return {"userErrors": [_bulk_error(["mutation"], problem, "INVALID_MUTATION")]}
        upload = self.staged_uploads.get(stagedUploadPath)
        if upload is None or upload["body"] is None:
            message = "The JSONL file could not be found. Try uploading the file again, and check the stagedUploadPath."
            return {"userErrors": [_bulk_error(["stagedUploadPath"], message, "NO_SUCH_FILE")]}
        lines: list[dict[str, Any]] = []
        for n, raw in enumerate(upload["body"].decode("utf-8", "replace").splitlines()):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                message = f"The JSONL file is invalid: line {n + 1} is not a JSON object."
                return {"userErrors": [_bulk_error(["stagedUploadPath"], message, "INVALID_STAGED_UPLOAD_FILE")]}
            lines.append(value)
        op = {
            "__typename": "BulkOperation",
            "id": self._gid("BulkOperation"),  # type: ignore[attr-defined]
            "type": "MUTATION",
            "status": "CREATED",
            "query": mutation,
            "clientIdentifier": clientIdentifier,
            "createdAt": self.now(),  # type: ignore[attr-defined]
            "completedAt": None,
            "errorCode": None,
            "objectCount": 0,
            "rootObjectCount": 0,
            "fileSize": None,
            "url": None,
            "partialDataUrl": None,
            "lines": lines,
            "results": [],
            "fail_with": self.bulk_fail_with,
        }
        self.bulk_fail_with = None
        self.bulk_operations[op["id"]] = op
        return {"bulkOperation": op}

    def _running_mutations(self) -> list[dict[str, Any]]:
        return [
            op
            for op in self.bulk_operations.values()
            if op["type"] == "MUTATION" and op["status"] in ("CREATED", "RUNNING", "CANCELING")
        ]

    @staticmethod
    def _check_bulk_mutation(text: str, schema: Any) -> str | None:
        try:
            doc = graphql.parse(text)
        except graphql.GraphQLError as exc:
            return f"Failed to parse the mutation - {exc.message}"
        ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
        if len(ops) != 1 or ops[0].operation != OperationType.MUTATION:
            return "Bulk mutations need exactly one mutation operation."
        errors = graphql.validate(schema, doc)
        if errors:
            return f"Invalid mutation: {errors[0].message}"
        roots = [s for s in ops[0].selection_set.selections if isinstance(s, FieldNode)]
        if len(roots) != 1:
            return "Bulk mutations can only run one mutation field."
        if roots[0].name.value not in BULK_MUTATIONS:
            return f"The mutation {roots[0].name.value} is not supported by bulkOperationRunMutation."
        fragments = {d.name.value: d for d in doc.definitions if isinstance(d, graphql.FragmentDefinitionNode)}

        def connections(sel: Any, parent: Any) -> int:
            count = 0
            for s in sel.selections if sel else ():
                if isinstance(s, FieldNode):
                    fdef = parent.fields.get(s.name.value) if hasattr(parent, "fields") else None
                    if fdef is None:
                        continue
                    named = graphql.get_named_type(fdef.type)
                    count += named.name.endswith("Connection")
                    count += connections(s.selection_set, named)
                elif isinstance(s, InlineFragmentNode):
                    cond = schema.get_type(s.type_condition.name.value) if s.type_condition else parent
                    count += connections(s.selection_set, cond)
                elif isinstance(s, FragmentSpreadNode) and s.name.value in fragments:
                    frag = fragments[s.name.value]
                    count += connections(frag.selection_set, schema.get_type(frag.type_condition.name.value))
            return count

        if connections(ops[0].selection_set, schema.mutation_type) > 1:
            return "Bulk mutations cannot contain more than 1 connection."
        return None

    # -- running operations ----------------------------------------------------------------------------
    def _run_bulk(self) -> None:
        """Advance running bulk operations by one step (called before each GraphQL request)."""
        for op in self.bulk_operations.values():
            if op["status"] == "CREATED":
                op["status"] = "RUNNING"
            if op["status"] != "RUNNING":
                continue
            todo = op["lines"][len(op["results"]) :]
            step = todo if self.bulk_lines_per_request is None else todo[: self.bulk_lines_per_request]
            for variables in step:
                n = len(op["results"])
                if op["fail_with"] and n >= len(op["lines"]) // 2:
                    self._finish_bulk(op, "FAILED", op["fail_with"])
                    break
                op["results"].append(self._bulk_line(op["query"], variables, n))
                op["objectCount"] = op["rootObjectCount"] = len(op["results"])
            if op["status"] == "RUNNING" and len(op["results"]) == len(op["lines"]):
                self._finish_bulk(op, "COMPLETED", None)

    def _bulk_line(self, mutation: str, variables: dict[str, Any], n: int) -> dict[str, Any]:
        from vsc.sandbox.shopify import _resolve, shopify_schema

        if n in self.bulk_failing_lines:
            error = {
                "message": "Internal error. Looks like something went wrong on our end.",
                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
            }
            field = next((s.name.value for s in _mutation_fields(mutation)), "mutation")
            return {"errors": [error], "data": {field: None}, "__lineNumber": n}
        result = graphql.execute(
            shopify_schema(),
            graphql.parse(mutation),
            context_value=self,
            variable_values=variables,
            field_resolver=_resolve,
        )
        line: dict[str, Any] = {}
        if result.errors:
            line["errors"] = [{"message": e.message} for e in result.errors]
        line["data"] = result.data
        line["__lineNumber"] = n
        return line

    def _finish_bulk(self, op: dict[str, Any], status: str, error_code: str | None) -> None:
        token = f"{uuid.uuid4().hex}.jsonl"
        body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in op["results"]).encode()
        self.bulk_results[token] = body
        op["status"] = status
        op["errorCode"] = error_code
        op["completedAt"] = self.now()  # type: ignore[attr-defined]
        if status == "COMPLETED":
            # An operation whose lines produced no output has no file (url null).
            op["url"] = f"{self.url}{RESULTS_PATH}{token}" if body else None
            op["fileSize"] = len(body) if body else None
        else:
            op["partialDataUrl"] = f"{self.url}{RESULTS_PATH}{token}" if body else None

    # -- GraphQL: reading operations --------------------------------------------------------------------
    def _q_bulkOperation(self, obj: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self.bulk_operations.get(id)

    def _q_currentBulkOperation(self, obj: Any, info: Any, type: str = "QUERY") -> dict[str, Any] | None:  # noqa: A002
        ops = [op for op in self.bulk_operations.values() if op["type"] == type]
        return ops[-1] if ops else None

    def _q_bulkOperations(self, obj: Any, info: Any, **args: Any) -> dict[str, Any]:
        fields = {
            "created_at": ("date", lambda op: op["createdAt"]),
            "id": ("id", lambda op: int(op["id"].rsplit("/", 1)[1])),
            "operation_type": ("word", lambda op: op["type"].lower()),
            "status": ("word", lambda op: op["status"].lower()),
        }
        items = self._search(info, self.bulk_operations.values(), args.get("query"), fields)  # type: ignore[attr-defined]
        key = "completedAt" if args.get("sortKey") == "COMPLETED_AT" else "createdAt"
        # Newest first by default ([SDL26] QueryRoot.bulkOperations).
        args = {**args, "reverse": not args.get("reverse")}
        return self._page(info, items, args, lambda op: op[key] or 0)  # type: ignore[attr-defined]
