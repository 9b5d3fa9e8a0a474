"""A local Shopify store that speaks the Admin GraphQL API 2026-04 over real HTTP.

`ShopifySandbox` serves ``POST /admin/api/2026-04/graphql.json``. Requests are parsed and
validated by graphql-core against the sandbox's own schema (`shopify_schema.graphql`, a
subset of Shopify's, held to the real one by ``../shared/tools/check-graphql``), priced by
Shopify's calculated-query-cost rules, throttled by a leaky bucket, and executed against
plain in-memory dicts. The behaviours that a sync tool trips over are modelled on purpose:
list fields that `productSet` replaces, `@idempotent` and `changeFromQuantity` on inventory
writes (required from 2026-04), search syntax on `query:`, opaque cursors, async order
cancellation, and `userErrors` with the real enum codes.

Reference for the rules used here: ../shared/platforms/shopify.md (the project's fact
sheet); each less certain choice names its source in a comment.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import itertools
import json
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import graphql
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
)
from graphql.execution.values import get_argument_values, get_directive_values, get_variable_values

from vsc.sandbox.base import SandboxRequest, SandboxResponse, SandboxStore
from vsc.sandbox.shopify_bulk import BulkOperationsMixin

API_VERSION = "2026-04"
GRAPHQL_PATH = f"/admin/api/{API_VERSION}/graphql.json"
SCHEMA_FILE = Path(__file__).with_name("shopify_schema.graphql")

# https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits and
# https://help.shopify.com/en/api/graphql-admin-api/call-limit: one query may cost at most 1000.
MAX_QUERY_COST = 1000
MUTATION_COST = 10
# https://shopify.dev/api/usage/limits: page size and input arrays are capped at 250.
MAX_PAGE_SIZE = 250
MAX_INPUT_ARRAY = 250
# SDL description of Product.variants: "If querying a single product at the root, you can fetch up
# to 2048 variants." productSet's own description: "a limit of 2048 product variants".
MAX_VARIANTS = 2048
MAX_OPTIONS = 3
THROTTLE_DOC = "https://shopify.dev/api/usage/rate-limits"

# Shopify enforces the directive at run time, not in the schema (changelog "Making idempotency
# mandatory for inventory adjustments and refund mutations", 2026-04).
IDEMPOTENT_MUTATIONS = frozenset({"inventorySetQuantities", "inventoryAdjustQuantities", "inventoryActivate"})

# Quantity states: https://shopify.dev/docs/apps/fulfillment/inventory-management-apps.
STORED_QUANTITIES = ("available", "committed", "reserved", "incoming", "damaged", "quality_control", "safety_stock")
ON_HAND_PARTS = ("available", "committed", "reserved", "damaged", "quality_control", "safety_stock")
ADJUSTABLE_QUANTITIES = frozenset({"available", "incoming", "reserved", "damaged", "quality_control", "safety_stock"})
# The fixed list of adjustment reasons (fact sheet §8).
INVENTORY_REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
MAX_QUANTITY = 1_000_000_000


# -- small helpers ---------------------------------------------------------------


def iso(ts: float | None) -> str | None:
    """Shopify's timestamp form: UTC, whole seconds, a `Z` suffix."""
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """An ISO-8601 date or date-time (naive means UTC) as a POSIX timestamp."""
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00"
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def gid_kind(gid: Any) -> str | None:
    m = re.fullmatch(r"gid://shopify/(\w+)/\d+(?:\?.*)?", str(gid or ""))
    return m.group(1) if m else None


def gid_num(gid: Any) -> int | None:
    m = re.fullmatch(r"(?:gid://shopify/\w+/)?(\d+)(?:\?.*)?", str(gid or "").strip())
    return int(m.group(1)) if m else None


def money(value: Any) -> str | None:
    """A Money/Decimal input as Shopify echoes it: a decimal string with two places."""
    if value is None:
        return None
    try:
        return str(Decimal(str(value)).quantize(Decimal("0.01")))
    except InvalidOperation as exc:
        raise ValueError(f"invalid money amount {value!r}") from exc


def handleize(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (title or "").lower()).strip("-")
    return slug or "product"


def _encode_cursor(key: list[Any]) -> str:
    # Shopify cursors are base64 JSON of the last sort value and id; clients must treat them as opaque.
    raw = json.dumps({"last_id": key[1], "last_value": key[0]}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=True).decode())
        return [data["last_value"], int(data["last_id"])]
    except (ValueError, KeyError, TypeError) as exc:
        raise GraphQLError(
            f"Invalid cursor for current pagination sort: {cursor!r}", extensions={"code": "BAD_REQUEST"}
        ) from exc


def _err(field: list[Any] | None, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"field": [str(f) for f in field] if field is not None else None, "message": message}
    if code is not None:
        error["code"] = code
    return error


class _UserErrors(Exception):
    """Raised inside a mutation to answer with these userErrors and change nothing."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else "user errors")
        self.errors = errors


# -- the schema, built once per process ------------------------------------------------


def _serialize_datetime(value: Any) -> str:
    return iso(value) if isinstance(value, int | float) else str(value)


@functools.cache
def shopify_schema() -> GraphQLSchema:
    """The sandbox schema (built once per process; the real 3,277-type schema is never loaded)."""
    schema = graphql.build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))
    schema.type_map["DateTime"].serialize = _serialize_datetime  # type: ignore[attr-defined]
    # UnsignedInt64 travels as a string in JSON, as Shopify sends legacyResourceId.
    schema.type_map["UnsignedInt64"].serialize = lambda v: str(v)  # type: ignore[attr-defined]
    schema.type_map["Money"].serialize = lambda v: money(v)  # type: ignore[attr-defined]
    schema.type_map["Decimal"].serialize = lambda v: str(v)  # type: ignore[attr-defined]
    return schema


@functools.lru_cache(maxsize=512)
def _parse(query: str) -> DocumentNode:
    return graphql.parse(query)


@functools.lru_cache(maxsize=512)
def _validation_errors(query: str) -> tuple[GraphQLError, ...]:
    # Validation depends on the document and the schema only (never on variables), and walking
    # the schema for every request was a third of the sandbox's time.
    return tuple(graphql.validate(shopify_schema(), _parse(query)))


def _select_operation(doc: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        return next((o for o in ops if o.name and o.name.value == name), None)
    return ops[0] if len(ops) == 1 else None


# -- Shopify search syntax (https://shopify.dev/api/usage/search-syntax) ------------------


class SearchSyntaxError(ValueError):
    pass


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()":
            tokens.append(c)
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in "()":
                if text[i] in "'\"":
                    close = text.find(text[i], i + 1)
                    if close < 0:
                        raise SearchSyntaxError(f"unterminated quote in {text!r}")
                    i = close
                i += 1
            tokens.append(text[start:i])
    return tokens


def _unquote(value: str) -> tuple[str, bool]:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace("\\" + value[0], value[0]), True
    return value, False


def parse_search(text: str) -> Any:
    """Parse a `query:` string into a small tree: ("and"|"or", [..]), ("not", x), ("term", f, op, v, quoted)."""
    tokens = _tokenize(text or "")
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def parse_or() -> Any:
        parts = [parse_and()]
        while peek() == "OR":
            take()
            parts.append(parse_and())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def parse_and() -> Any:
        parts = [parse_unary()]
        while peek() not in (None, ")", "OR"):
            if peek() == "AND":
                take()
            parts.append(parse_unary())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def parse_unary() -> Any:
        tok = peek()
        if tok is None or tok == ")":
            raise SearchSyntaxError(f"unexpected end of query {text!r}")
        if tok == "NOT":
            take()
            return ("not", parse_unary())
        if tok == "(":
            take()
            inner = parse_or()
            if peek() != ")":
                raise SearchSyntaxError(f"unbalanced parentheses in {text!r}")
            take()
            return inner
        take()
        if tok.startswith("-") and len(tok) > 1:
            return ("not", _term(tok[1:]))
        return _term(tok)

    if not tokens:
        return None
    tree = parse_or()
    if pos != len(tokens):
        raise SearchSyntaxError(f"unexpected {tokens[pos]!r} in {text!r}")
    return tree


def _term(token: str) -> tuple[str, str | None, str, str, bool]:
    m = re.match(r"^([A-Za-z_][\w.]*):(.*)$", token, re.S)
    if not m or m.group(1).startswith(("'", '"')):
        value, quoted = _unquote(token)
        return ("term", None, ":", value, quoted)
    field, rest = m.group(1), m.group(2)
    op = ":"
    for candidate in ("<=", ">=", "<", ">"):
        if rest.startswith(candidate):
            op, rest = candidate, rest[len(candidate) :]
            break
    value, quoted = _unquote(rest)
    return ("term", field.lower(), op, value, quoted)


# A searchable field: (kind, getter). Kinds: "date", "num", "id", "bool", "word" (exact,
# case-insensitive, comma = any of) and "text" (case-insensitive substring).
SearchFields = dict[str, tuple[str, Callable[[Any], Any]]]


def _compare(kind: str, actual: Any, op: str, raw: str, quoted: bool) -> bool:
    if actual is None:
        return False
    if kind == "date":
        try:
            want = parse_time(raw)
        except ValueError:
            return False
        have = int(actual)
        if op == ":" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
            return want <= have < want + 86400
        return _cmp(have, op, want)
    if kind in ("num", "id"):
        want_num = gid_num(raw) if kind == "id" else _to_number(raw)
        if want_num is None:
            return False
        return _cmp(actual, op, want_num)
    if kind == "bool":
        return op == ":" and str(actual).lower() == raw.lower()
    have_s = str(actual).lower()
    want_s = raw.lower()
    if op != ":":
        return _cmp(have_s, op, want_s)
    if want_s == "*":
        return have_s != ""
    alternatives = [want_s] if quoted else want_s.split(",")
    for alt in alternatives:
        if alt.endswith("*") and not quoted:
            if have_s.startswith(alt[:-1]) if kind == "word" else alt[:-1] in have_s:
                return True
        elif (have_s == alt) if kind == "word" else (alt in have_s):
            return True
    return False


def _to_number(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def _cmp(have: Any, op: str, want: Any) -> bool:
    if op == ":":
        return bool(have == want)
    if op == "<":
        return bool(have < want)
    if op == ">":
        return bool(have > want)
    if op == "<=":
        return bool(have <= want)
    return bool(have >= want)


def search_matches(tree: Any, record: Any, fields: SearchFields, default: Iterable[str], warnings: list[str]) -> bool:
    """Evaluate a parsed query against one record. Unknown fields are ignored with a warning, as
    Shopify does (it answers them in `extensions.search[].warnings`)."""
    if tree is None:
        return True
    kind = tree[0]
    if kind == "and":
        return all(search_matches(t, record, fields, default, warnings) for t in tree[1])
    if kind == "or":
        return any(search_matches(t, record, fields, default, warnings) for t in tree[1])
    if kind == "not":
        return not search_matches(tree[1], record, fields, default, warnings)
    _, field, op, value, quoted = tree
    names = [field] if field is not None else list(default)
    if field is not None and field not in fields and field.endswith("_not") and field[:-4] in fields:
        # `tag_not:x` is Shopify's spelling of `-tag:x`.
        return not search_matches(("term", field[:-4], op, value, quoted), record, fields, default, warnings)
    if field is not None and field not in fields:
        if field not in warnings:
            warnings.append(field)
        return True
    for name in names:
        fkind, getter = fields[name]
        got = getter(record)
        values = got if isinstance(got, list | tuple | set) else [got]
        if field is None:
            fkind = "text" if fkind == "word" else fkind
        if any(_compare(fkind, v, op, value, quoted) for v in values):
            return True
    return False


# -- calculated query cost (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits) --
#
# Scalars and enums cost 0, objects 1, an interface or union the most expensive of its
# possible selections, a mutation 10, and a connection 2 plus its page size times the cost of
# one node (Shopify engineering, "Rate Limiting GraphQL APIs by Calculating Query Complexity";
# e.g. products(first: 100) { variants(first: 100) { id } } is 2 + 100 * (1 + 2 + 100) = 10302,
# the figure Shopify's own MAX_COST_EXCEEDED message gives for that query).


class _Coster:
    def __init__(self, schema: GraphQLSchema, doc: DocumentNode, variables: dict[str, Any]) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}

    def _applies(self, condition: str | None, type_name: str) -> bool:
        if condition is None or condition == type_name:
            return True
        cond = self.schema.get_type(condition)
        obj = self.schema.get_type(type_name)
        return bool(cond and obj and is_abstract_type(cond) and self.schema.is_sub_type(cond, obj))  # type: ignore

    def _skipped(self, node: Any) -> bool:
        for d in node.directives or ():
            if d.name.value in ("skip", "include"):
                directive = self.schema.get_directive(d.name.value)
                values = get_directive_values(directive, node, self.variables) if directive else None
                if values is not None and values.get("if") == (d.name.value == "skip"):
                    return True
        return False

    def collect(self, sel: SelectionSetNode | None, type_name: str) -> dict[str, list[FieldNode]]:
        out: dict[str, list[FieldNode]] = {}
        for s in sel.selections if sel else ():
            if self._skipped(s):
                continue
            if isinstance(s, FieldNode):
                out.setdefault((s.alias or s.name).value, []).append(s)
            elif isinstance(s, InlineFragmentNode):
                cond = s.type_condition.name.value if s.type_condition else None
                if self._applies(cond, type_name):
                    for k, v in self.collect(s.selection_set, type_name).items():
                        out.setdefault(k, []).extend(v)
            elif isinstance(s, FragmentSpreadNode):
                frag = self.fragments.get(s.name.value)
                if frag and self._applies(frag.type_condition.name.value, type_name):
                    for k, v in self.collect(frag.selection_set, type_name).items():
                        out.setdefault(k, []).extend(v)
        return out

    def _concrete(self, type_name: str) -> list[str]:
        t = self.schema.get_type(type_name)
        if t is not None and is_abstract_type(t):
            return [p.name for p in self.schema.get_possible_types(t)]  # type: ignore[arg-type]
        return [type_name]

    @staticmethod
    def _merged(nodes: list[FieldNode]) -> SelectionSetNode:
        return SelectionSetNode(
            selections=tuple(s for n in nodes if n.selection_set for s in n.selection_set.selections)
        )

    def requested(self, sel: SelectionSetNode | None, type_name: str, data: Any = None, actual: bool = False) -> int:
        """Cost of a selection on `type_name`; with `actual`, priced on the returned `data` instead."""
        best = 0
        for concrete in self._concrete(type_name):
            total = 0
            parent = self.schema.get_type(concrete)
            for key, nodes in self.collect(sel, concrete).items():
                fdef = parent.fields.get(nodes[0].name.value) if parent else None  # type: ignore[union-attr]
                if fdef is None:
                    continue
                if actual:
                    if not isinstance(data, dict) or key not in data:
                        continue
                    total += self._field(fdef, nodes, data[key], True, concrete)
                else:
                    total += self._field(fdef, nodes, None, False, concrete)
            best = max(best, total)
        return best

    def _field(self, fdef: Any, nodes: list[FieldNode], value: Any, actual: bool, parent: str) -> int:
        named = get_named_type(fdef.type)
        if is_leaf_type(named):
            return 0
        sub = self._merged(nodes)
        if parent == "Mutation":
            return MUTATION_COST + self.requested(sub, named.name, value, actual)
        if actual and value is None:
            return 0
        if named.name.endswith("Connection") and "first" in fdef.args:
            node_type = get_named_type(named.fields["nodes"].type).name  # type: ignore[union-attr]
            edge_type = get_named_type(named.fields["edges"].type).name  # type: ignore[union-attr]
            inner = self.collect(sub, named.name)
            node_keys = [k for k, ns in inner.items() if ns[0].name.value == "nodes"]
            edge_keys = [k for k, ns in inner.items() if ns[0].name.value == "edges"]
            node_sel = self._merged([n for k in node_keys for n in inner[k]])
            edge_sel = self._merged([n for k in edge_keys for n in inner[k]])
            in_edge = self.collect(edge_sel, edge_type)
            edge_node_sel = self._merged([n for ns in in_edge.values() for n in ns if n.name.value == "node"])
            edge_node_keys = [k for k, ns in in_edge.items() if ns[0].name.value == "node"]
            if actual:
                lists = [value.get(k) or [] for k in node_keys] if isinstance(value, dict) else []
                edges = [value.get(k) or [] for k in edge_keys] if isinstance(value, dict) else []
                count = max([len(x) for x in lists + edges] or [0])
                total = 2
                for i in range(count):
                    cost = 0
                    for lst in lists:
                        if i < len(lst):
                            cost = max(cost, self.requested(node_sel, node_type, lst[i], True))
                    for lst in edges:
                        if i < len(lst) and isinstance(lst[i], dict):
                            for k in edge_node_keys:
                                cost = max(cost, self.requested(edge_node_sel, node_type, lst[i].get(k), True))
                    total += 1 + cost
                return total
            args = get_argument_values(fdef, nodes[0], self.variables)
            size = args.get("first") or args.get("last") or 0
            per_node = 1 + max(self.requested(node_sel, node_type), self.requested(edge_node_sel, node_type))
            return 2 + max(0, int(size)) * per_node
        if (
            is_list_type(graphql.get_nullable_type(fdef.type))
            and nodes[0].name.value == "nodes"
            and parent == "QueryRoot"
        ):
            if actual:
                return sum(1 + self.requested(sub, named.name, item, True) for item in value or [] if item)
            ids = get_argument_values(fdef, nodes[0], self.variables).get("ids") or []
            return len(ids) * (1 + self.requested(sub, named.name))
        if actual and isinstance(value, list):
            return 1 + max((self.requested(sub, named.name, v, True) for v in value if v), default=0)
        return 1 + self.requested(sub, named.name, value, actual)


def query_cost(
    doc: DocumentNode, op: OperationDefinitionNode, variables: dict[str, Any], data: Any = None, actual: bool = False
) -> int:
    schema = shopify_schema()
    root = "Mutation" if op.operation == OperationType.MUTATION else "QueryRoot"
    return _Coster(schema, doc, variables).requested(op.selection_set, root, data, actual)


# -- validation errors in Shopify's words (graphql-ruby) ---------------------------------

_VALIDATION_REWRITES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, dict[str, Any]]]]] = [
    (
        re.compile(r"Cannot query field '(\w+)' on type '(\w+)'"),
        lambda m: (
            f"Field '{m[1]}' doesn't exist on type '{m[2]}'",
            {"code": "undefinedField", "typeName": m[2], "fieldName": m[1]},
        ),
    ),
    (
        re.compile(r"Unknown argument '(\w+)' on field '(\w+)\.(\w+)'"),
        lambda m: (
            f"Field '{m[3]}' doesn't accept argument '{m[1]}'",
            {"code": "argumentNotAccepted", "name": m[3], "typeName": "Field", "argumentName": m[1]},
        ),
    ),
    (
        re.compile(r"Field '(\w+)' argument '(\w+)' of type '.*' is required"),
        lambda m: (
            f"Field '{m[1]}' is missing required arguments: {m[2]}",
            {"code": "missingRequiredArguments", "className": "Field", "name": m[1], "arguments": m[2]},
        ),
    ),
    (
        re.compile(r"Unknown type '(\w+)'"),
        lambda m: (
            f"No such type {m[1]}, so it can't be a fragment condition",
            {"code": "undefinedType", "typeName": m[1]},
        ),
    ),
    (
        re.compile(r"Field '(\w+)' of type '(.+)' must have a selection of subfields"),
        lambda m: (
            f"Field must have selections ({m[2]} returns {m[2].strip('[]!')} but has no selections. "
            f"Did you mean '{m[1]} {{ ... }}'?)",
            {"code": "selectionMismatch", "nodeName": f"field '{m[1]}'", "typeName": m[2]},
        ),
    ),
    (
        re.compile(r"Unknown directive '@(\w+)'"),
        lambda m: (f"Directive @{m[1]} is not defined", {"code": "undefinedDirective", "directiveName": m[1]}),
    ),
]


def shopify_error(error: GraphQLError) -> dict[str, Any]:
    message, ext = error.message, dict(error.extensions or {})
    for pattern, rewrite in _VALIDATION_REWRITES:
        m = pattern.search(error.message)
        if m:
            message, extra = rewrite(m)
            ext.update(extra)
            break
    out: dict[str, Any] = {"message": message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    if ext:
        out["extensions"] = ext
    return out


# -- the store ----------------------------------------------------------------------------

_STORE_SERIAL = itertools.count(1)


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: ShopifySandbox, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


class ShopifySandbox(BulkOperationsMixin, SandboxStore):
    """An in-memory Shopify store behind the Admin GraphQL API 2026-04, served on loopback.

    Over HTTP it answers ``POST /admin/api/2026-04/graphql.json`` with the
    ``X-Shopify-Access-Token`` header equal to `token`. In Python, tests, the demo and the
    benchmarks seed and inspect it directly (`add_location`, `add_product`, `set_available`,
    `place_order`, `fulfill_order`, `product`, ...), without spending rate-limit points or
    appearing in the request records.

    Cost throttling follows Shopify's leaky bucket: `maximum_available` points, refilled at
    `restore_rate` points per second of `self.clock` (replace `clock` to move time in tests).
    Ids are GIDs with increasing numbers; each store instance numbers from its own base, so two
    sandbox stores never share an id (a mix-up between vendor and merchant ids shows up).
    """

    platform = "shopify"

    def __init__(
        self,
        *,
        shop: str = "sandbox",
        token: str | None = None,
        maximum_available: float = 2000,
        restore_rate: float = 100,
        currency: str = "USD",
        location: str | None = "Shop location",
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        id_base: int | None = None,
    ) -> None:
        super().__init__(host=host, port=port, seed=seed)
        self.shop_name = shop
        self.domain = f"{shop}.myshopify.com"
        self.token = token or "shpat_" + secrets.token_hex(16)
        self.currency = currency
        self.maximum_available = float(maximum_available)
        self.restore_rate = float(restore_rate)
        self._bucket = self.maximum_available
        self._bucket_at: float | None = None
        serial = next(_STORE_SERIAL)
        self._id_base = id_base if id_base is not None else serial * 10_000_000
        self._seq: dict[str, int] = {}
        self.locations: dict[str, dict[str, Any]] = {}
        self.publications: dict[str, dict[str, Any]] = {}
        self._products: dict[str, dict[str, Any]] = {}
        self.variants: dict[str, dict[str, Any]] = {}
        self.inventory_items: dict[str, dict[str, Any]] = {}
        self.levels: dict[tuple[str, str], dict[str, Any]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.collections: dict[str, dict[str, Any]] = {}
        self.deletion_events: list[dict[str, Any]] = []
        self._orders: dict[str, dict[str, Any]] = {}
        self.line_items: dict[str, dict[str, Any]] = {}
        self.fulfillment_orders: dict[str, dict[str, Any]] = {}
        self.fulfillment_order_lines: dict[str, dict[str, Any]] = {}
        self.fulfillments: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.adjustment_groups: list[dict[str, Any]] = []
        self._idempotency: dict[tuple[str, str], tuple[str, Any]] = {}
        self._order_number = 0
        self._warnings: list[dict[str, Any]] = []
        self._resolvers: dict[tuple[str, str], Callable[..., Any] | None] = {}
        self._init_bulk()
        self.points: Counter[str] = Counter()
        self.created_at = self.clock()
        self.online_store_id = self._add_publication("Online Store")
        if location:
            self.add_location(location)

    # -- ids and time -------------------------------------------------------------------
    def _gid(self, kind: str) -> str:
        n = self._seq.get(kind, self._id_base) + 1
        self._seq[kind] = n
        return f"gid://shopify/{kind}/{n}"

    def now(self) -> float:
        return float(self.clock())

    # -- HTTP ---------------------------------------------------------------------------
    def handle(self, req: SandboxRequest) -> SandboxResponse:
        staged = self.handle_bulk_http(req)
        if staged is not None:
            return staged
        if req.path != GRAPHQL_PATH or req.method != "POST":
            return SandboxResponse(404, {"errors": "Not Found"})
        if req.header("X-Shopify-Access-Token") != self.token:
            return SandboxResponse(
                401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
            )
        try:
            body = req.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            return SandboxResponse(400, {"errors": {"query": "Required parameter missing or invalid"}})
        self._run_jobs()
        self._run_bulk()
        return SandboxResponse(200, self.execute(body["query"], body.get("variables") or {}, body.get("operationName")))

    def execute(
        self, query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None
    ) -> dict[str, Any]:
        """Run one GraphQL request as the HTTP endpoint would (rate limits included) and return the body."""
        with self.lock:
            return self._execute(query, dict(variables or {}), operation_name)

    def _execute(self, query: str, variables: dict[str, Any], operation_name: str | None) -> dict[str, Any]:
        schema = shopify_schema()
        try:
            doc = _parse(query)
        except GraphQLError as exc:
            return self._body([shopify_error(exc)], 0, 0)
        errors = _validation_errors(query)
        if errors:
            return self._body([shopify_error(e) for e in errors], 0, 0)
        op = _select_operation(doc, operation_name)
        if op is None:
            message = (
                f'No operation named "{operation_name}"'
                if operation_name
                else "An operation name is required when sending multiple operations."
            )
            return self._body([{"message": message}], 0, 0)
        coerced = get_variable_values(schema, op.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return self._body([self._variable_error(e) for e in coerced], 0, 0)
        too_big = self._input_arrays(doc, op, coerced)
        if too_big:
            return self._body(too_big, 0, 0)
        requested = query_cost(doc, op, coerced)
        if requested > MAX_QUERY_COST:
            return self._body(
                [
                    {
                        "message": f"Query cost is {requested}, which exceeds the single query max cost limit "
                        f"({MAX_QUERY_COST}).\n\nSee {THROTTLE_DOC} for more information on how the cost "
                        "of a query is calculated.\n\nTo query larger amounts of data with fewer limits, "
                        "bulk operations should be used instead.",
                        "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_QUERY_COST},
                    }
                ],
                requested,
                None,
            )
        self._refill()
        if requested > self._bucket:
            return self._throttled(requested)
        self._bucket -= requested
        self._warnings = []
        result = graphql.execute(
            schema,
            doc,
            context_value=self,
            variable_values=variables,
            operation_name=operation_name,
            field_resolver=_resolve,
        )
        actual = min(requested, query_cost(doc, op, coerced, result.data, actual=True))
        self._bucket = min(self.maximum_available, self._bucket + (requested - actual))
        body = self._body([shopify_error(e) for e in result.errors or []], requested, actual)
        body["data"] = result.data
        if self._warnings:
            body["extensions"]["search"] = self._warnings
        return {k: body[k] for k in ("errors", "data", "extensions") if k in body}

    def _variable_error(self, error: GraphQLError) -> dict[str, Any]:
        out = shopify_error(error)
        m = re.search(r"Variable '\$(\w+)' (?:of (?:required |non-null )?type '([^']+)')?", error.message)
        if m:
            out["message"] = f"Variable ${m[1]} of type {m[2] or 'unknown'} was provided invalid value"
            out["extensions"] = {"code": "INVALID_VARIABLE", "problems": [{"explanation": error.message}]}
        return out

    def _input_arrays(
        self, doc: DocumentNode, op: OperationDefinitionNode, variables: dict[str, Any]
    ) -> list[dict[str, Any]]:
        # Every input array is capped at 250 items (https://shopify.dev/api/usage/limits), except
        # productSet's variant list, which carries a whole product (up to 2048 variants).
        errors: list[dict[str, Any]] = []
        schema = shopify_schema()
        root = schema.mutation_type if op.operation == OperationType.MUTATION else schema.query_type

        def walk(value: Any, path: list[Any]) -> None:
            if isinstance(value, list):
                limit = MAX_VARIANTS if path[-1:] == ["variants"] and path[:1] == ["productSet"] else MAX_INPUT_ARRAY
                if len(value) > limit:
                    errors.append(
                        {
                            "message": f"The input array size of {len(value)} is greater than the maximum "
                            f"allowed of {limit}.",
                            "path": [str(p) for p in path],
                            "extensions": {"code": "MAX_INPUT_SIZE_EXCEEDED"},
                        }
                    )
                    return
                for item in value:
                    walk(item, path)
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(v, path + [k])

        for sel in op.selection_set.selections:
            if isinstance(sel, FieldNode) and root is not None and sel.name.value in root.fields:
                try:
                    args = get_argument_values(root.fields[sel.name.value], sel, variables)
                except GraphQLError:
                    continue
                for name, value in args.items():
                    walk(value, [sel.name.value, name])
        return errors

    # -- rate limiting --------------------------------------------------------------------
    def _refill(self) -> None:
        now = self.now()
        if self._bucket_at is not None and now > self._bucket_at:
            self._bucket = min(self.maximum_available, self._bucket + (now - self._bucket_at) * self.restore_rate)
        self._bucket_at = now if self._bucket_at is None or now > self._bucket_at else self._bucket_at

    def throttle_status(self) -> dict[str, Any]:
        return {
            "maximumAvailable": self.maximum_available,
            "currentlyAvailable": int(self._bucket),
            "restoreRate": self.restore_rate,
        }

    def _body(self, errors: list[dict[str, Any]], requested: int, actual: int | None) -> dict[str, Any]:
        # What the store charged, for benchmarks: the cost asked for and the cost kept.
        self.points["requested"] += requested
        self.points["actual"] += actual or 0
        body: dict[str, Any] = {}
        if errors:
            body["errors"] = errors
        body["extensions"] = {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": self.throttle_status(),
            }
        }
        return body

    def _throttled(self, requested: int) -> dict[str, Any]:
        self.points["throttled"] += 1
        return self._body(
            [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": THROTTLE_DOC}}],
            requested,
            None,
        )

    def throttle_response(self, req: SandboxRequest) -> SandboxResponse:
        """An injected throttle looks exactly like a real one: HTTP 200, THROTTLED, cost extensions."""
        with self.lock:
            requested = 0
            try:
                body = req.json() or {}
                doc = _parse(body.get("query") or "")
                op = _select_operation(doc, body.get("operationName"))
                if op is not None:
                    coerced = get_variable_values(
                        shopify_schema(), op.variable_definitions or (), body.get("variables") or {}
                    )
                    requested = query_cost(doc, op, coerced if isinstance(coerced, dict) else {})
            except (ValueError, GraphQLError, AttributeError, TypeError):
                requested = 0
            self._refill()
            return SandboxResponse(200, self._throttled(requested))

    def fault_body(self, status: int) -> Any:
        if status == 429:  # the REST leaky bucket's answer (platforms/shopify.md §1)
            return {
                "errors": "Exceeded 2 calls per second for api client. "
                "Reduce request rates to resume uninterrupted service."
            }
        return {"errors": "Internal Server Error" if status >= 500 else f"HTTP {status}"}

    # -- request records ------------------------------------------------------------------
    def _operation(self, req: SandboxRequest) -> tuple[OperationDefinitionNode | None, DocumentNode | None]:
        if req.path != GRAPHQL_PATH:
            return None, None
        try:
            body = req.json()
            doc = _parse(body["query"])
        except (ValueError, GraphQLError, KeyError, TypeError):
            return None, None
        return _select_operation(doc, body.get("operationName")), doc

    def operation_name(self, req: SandboxRequest) -> str | None:
        """The root fields a request runs (those its @include/@skip leave in), comma-joined."""
        op, _ = self._operation(req)
        if op is None:
            return None
        try:
            variables = req.json().get("variables") or {}
        except (ValueError, AttributeError):
            variables = {}

        def runs(field: FieldNode) -> bool:
            for d in field.directives or ():
                arg = next((a for a in d.arguments if a.name.value == "if"), None)
                if arg is None or d.name.value not in ("include", "skip"):
                    continue
                value = arg.value
                on = variables.get(value.name.value) if hasattr(value, "name") else getattr(value, "value", True)
                if bool(on) != (d.name.value == "include"):
                    return False
            return True

        fields = [f for f in op.selection_set.selections if isinstance(f, FieldNode) and runs(f)]
        return ",".join(f.name.value for f in fields) or None

    def operation_names(self, req: SandboxRequest) -> set[str]:
        """Each root field of the document (e.g. "orderCreate", "products") and its operation name."""
        op, _ = self._operation(req)
        if op is None:
            return set()
        names = {s.name.value for s in op.selection_set.selections if isinstance(s, FieldNode)}
        if op.name is not None:
            names.add(op.name.value)
        return names

    def is_write(self, req: SandboxRequest) -> bool:
        op, _ = self._operation(req)
        return op is not None and op.operation == OperationType.MUTATION

    # -- helpers shared by the API and the resolvers ------------------------------------------
    def _resolver(self, parent: str, field: str) -> Callable[..., Any] | None:
        key = (parent, field)
        if key not in self._resolvers:
            if parent == "QueryRoot":
                name = f"_q_{field}"
            elif parent == "Mutation":
                name = f"_m_{field}"
            else:
                name = f"_r_{parent}_{field}"
            self._resolvers[key] = getattr(self, name, None)
        return self._resolvers[key]

    def _page(
        self,
        info: Any,
        items: Iterable[dict[str, Any]],
        args: dict[str, Any],
        sort: Callable[[dict[str, Any]], Any] | None = None,
        max_first: int = MAX_PAGE_SIZE,
    ) -> dict[str, Any]:
        """A Relay connection over `items`, ordered by (sort value, numeric id) with opaque cursors."""
        first, last = args.get("first"), args.get("last")
        if first is None and last is None:
            raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
        for name, size in (("first", first), ("last", last)):
            if size is not None and not 0 <= size <= max_first:
                raise GraphQLError(
                    f"The {name} argument on field '{info.field_name}' must be between 0 and "
                    f"{max_first} (received {size}).",
                    extensions={"code": "BAD_REQUEST"},
                )
        keyed = sorted(([sort(o) if sort else 0, gid_num(o["id"]) or 0], o) for o in items)  # type: ignore[misc]
        if args.get("reverse"):
            keyed.reverse()
        rev = bool(args.get("reverse"))

        def after(k: list[Any], c: list[Any]) -> bool:
            try:
                return (k < c) if rev else (k > c)
            except TypeError as exc:
                raise GraphQLError(
                    "Invalid cursor for current pagination sort.", extensions={"code": "BAD_REQUEST"}
                ) from exc

        rest = keyed
        skipped_before = skipped_after = False
        if args.get("after"):
            c = _decode_cursor(args["after"])
            kept = [e for e in rest if after(e[0], c)]
            skipped_before = len(kept) < len(rest)
            rest = kept
        if args.get("before"):
            c = _decode_cursor(args["before"])
            kept = [e for e in rest if after(c, e[0])]
            skipped_after = len(kept) < len(rest)
            rest = kept
        if first is not None:
            page = rest[:first]
            has_next, has_prev = len(rest) > first or skipped_after, skipped_before
        else:
            page = rest[len(rest) - last :] if last else []
            has_next, has_prev = skipped_after, len(rest) > last or skipped_before
        edges = [{"cursor": _encode_cursor(k), "node": o} for k, o in page]
        return {
            "edges": edges,
            "nodes": [o for _, o in page],
            "pageInfo": {
                "hasNextPage": has_next,
                "hasPreviousPage": has_prev,
                "startCursor": edges[0]["cursor"] if edges else None,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }

    def _search(
        self,
        info: Any,
        items: Iterable[dict[str, Any]],
        query: str | None,
        fields: SearchFields,
        default: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        items = list(items)
        if not query or not query.strip():
            return items
        try:
            tree = parse_search(query)
        except SearchSyntaxError as exc:
            self._warnings.append(
                {"path": [info.field_name], "query": query, "warnings": [{"field": None, "message": str(exc)}]}
            )
            return items
        unknown: list[str] = []
        out = [o for o in items if search_matches(tree, o, fields, default, unknown)]
        if unknown:
            self._warnings.append(
                {
                    "path": [str(p) for p in info.path.as_list()],
                    "query": query,
                    "warnings": [{"field": f, "message": "Invalid search field for this query."} for f in unknown],
                }
            )
        return out

    @staticmethod
    def _sorter(sort_key: str | None) -> Callable[[dict[str, Any]], Any] | None:
        if sort_key == "UPDATED_AT":
            return lambda o: int(o.get("updatedAt") or 0)
        if sort_key in ("CREATED_AT", "PROCESSED_AT"):
            field = "createdAt" if sort_key == "CREATED_AT" else "processedAt"
            return lambda o: int(o.get(field) or o.get("createdAt") or 0)
        if sort_key in ("TITLE", "NAME"):
            return lambda o: str(o.get("title") or o.get("name") or "").lower()
        if sort_key in ("VENDOR", "PRODUCT_TYPE", "SKU"):
            field = {"VENDOR": "vendor", "PRODUCT_TYPE": "productType", "SKU": "sku"}[sort_key]
            return lambda o: str(o.get(field) or "").lower()
        if sort_key == "POSITION":
            return lambda o: o.get("position") or 0
        return None  # ID and RELEVANCE: by id

    def _touch(self, *records: dict[str, Any] | None) -> None:
        now = self.now()
        for r in records:
            if r is not None:
                r["updatedAt"] = now

    def _node(self, gid: Any) -> dict[str, Any] | None:
        kind = gid_kind(gid)
        table = {
            "Product": self._products,
            "ProductVariant": self.variants,
            "InventoryItem": self.inventory_items,
            "Location": self.locations,
            "Publication": self.publications,
            "MediaImage": self.files,
            "Order": self._orders,
            "LineItem": self.line_items,
            "FulfillmentOrder": self.fulfillment_orders,
            "FulfillmentOrderLineItem": self.fulfillment_order_lines,
            "Fulfillment": self.fulfillments,
            "Collection": self.collections,
            "BulkOperation": self.bulk_operations,
        }.get(kind or "")
        if table is not None:
            return table.get(gid)
        if kind == "InventoryLevel":
            return next((lv for lv in self.levels.values() if lv["id"] == gid), None)
        if kind == "ProductOption":
            return next((o for p in self._products.values() for o in p["options"] if o["id"] == gid), None)
        if kind == "Shop":
            return self._shop() if gid == self._shop()["id"] else None
        return None

    def _shop(self) -> dict[str, Any]:
        return {
            "__typename": "Shop",
            "id": f"gid://shopify/Shop/{self._id_base + 1}",
            "name": self.shop_name,
            "email": f"owner@{self.domain}",
            "myshopifyDomain": self.domain,
            "currencyCode": self.currency,
            "url": f"https://{self.domain}",
            "ianaTimezone": "Etc/UTC",
        }

    def _run_jobs(self) -> None:
        # Async work (order cancellation) finishes on the request after the one that started it.
        for job in self.jobs.values():
            if not job["done"] and job.get("run") is not None:
                job.pop("run")()
                job["done"] = True

    # -- locations and publications -------------------------------------------------------------
    def _add_publication(self, name: str) -> str:
        gid = self._gid("Publication")
        self.publications[gid] = {"__typename": "Publication", "id": gid, "name": name, "autoPublish": False}
        return gid

    @_locked
    def add_location(self, name: str, *, active: bool = True, fulfills_online_orders: bool = True) -> dict[str, Any]:
        """Add a location; the first one added is the primary location."""
        gid = self._gid("Location")
        now = self.now()
        self.locations[gid] = {
            "__typename": "Location",
            "id": gid,
            "name": name,
            "isActive": active,
            "isPrimary": not self.locations,
            "fulfillsOnlineOrders": fulfills_online_orders,
            "shipsInventory": True,
            "createdAt": now,
            "updatedAt": now,
        }
        return {"id": gid, "name": name}

    @property
    def primary_location_id(self) -> str | None:
        return next((loc["id"] for loc in self.locations.values() if loc["isPrimary"]), None)

    # -- catalog internals --------------------------------------------------------------------
    def _sku(self, variant: dict[str, Any]) -> str | None:
        return self.inventory_items[variant["item_id"]].get("sku")

    def _product_variants(self, product: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.variants[v] for v in product["variant_ids"]]

    def _level(self, item_id: str, location_id: str, *, create: bool = False) -> dict[str, Any] | None:
        level = self.levels.get((item_id, location_id))
        if level is None and create:
            now = self.now()
            level = {
                "__typename": "InventoryLevel",
                "id": f"gid://shopify/InventoryLevel/{gid_num(location_id)}?inventory_item_id={gid_num(item_id)}",
                "item_id": item_id,
                "location_id": location_id,
                "q": dict.fromkeys(STORED_QUANTITIES, 0),
                "q_at": {},
                "createdAt": now,
                "updatedAt": now,
            }
            self.levels[(item_id, location_id)] = level
        return level

    def _quantity(self, level: dict[str, Any], name: str) -> int:
        if name == "on_hand":
            return sum(level["q"][n] for n in ON_HAND_PARTS)
        return int(level["q"].get(name, 0))

    def _change_quantity(self, level: dict[str, Any], name: str, delta: int) -> list[dict[str, Any]]:
        """Move one quantity state by `delta`; return the changes as InventoryChange dicts."""
        if name == "on_hand":
            name = "available"  # on_hand moves with available when set directly
        level["q"][name] = level["q"].get(name, 0) + delta
        now = self.now()
        level["q_at"][name] = now
        names = [name] + (["on_hand"] if name in ON_HAND_PARTS else [])
        if "on_hand" in names:
            level["q_at"]["on_hand"] = now
        item = self.inventory_items[level["item_id"]]
        variant = self.variants.get(item.get("variant_id") or "")
        self._touch(level, item, self._products.get(variant["product_id"]) if variant else None)
        return [
            {
                "__typename": "InventoryChange",
                "name": n,
                "delta": delta,
                "quantityAfterChange": self._quantity(level, n),
                "item_id": level["item_id"],
                "location_id": level["location_id"],
                "ledgerDocumentUri": None,
            }
            for n in names
        ]

    def _option_value(self, option: dict[str, Any], name: str) -> dict[str, Any]:
        for value in option["values"]:
            if value["name"] == name:
                return value
        value = {
            "__typename": "ProductOptionValue",
            "id": self._gid("ProductOptionValue"),
            "name": name,
            "option_id": option["id"],
            "product_id": option["product_id"],
        }
        option["values"].append(value)
        return value

    def _new_option(
        self, product: dict[str, Any], name: str, values: Iterable[str], gid: str | None = None
    ) -> dict[str, Any]:
        option = {
            "__typename": "ProductOption",
            "id": gid or self._gid("ProductOption"),
            "name": name,
            "position": len(product["options"]) + 1,
            "values": [],
            "product_id": product["id"],
        }
        for v in values:
            self._option_value(option, v)
        return option

    def _prune_option_values(self, product: dict[str, Any]) -> None:
        # In the new product model an option value exists only while a variant uses it.
        used: dict[str, set[str]] = {}
        for v in self._product_variants(product):
            for so in v["selectedOptions"]:
                used.setdefault(so["name"], set()).add(so["value"])
        for option in product["options"]:
            option["values"] = [val for val in option["values"] if val["name"] in used.get(option["name"], set())]

    def _new_variant(
        self,
        product: dict[str, Any],
        selected: list[dict[str, str]],
        spec: dict[str, Any],
        stock: dict[str, int] | None,
    ) -> dict[str, Any]:
        now = self.now()
        vid, iid = self._gid("ProductVariant"), self._gid("InventoryItem")
        variant = {
            "__typename": "ProductVariant",
            "id": vid,
            "product_id": product["id"],
            "item_id": iid,
            "selectedOptions": selected,
            "price": "0.00",
            "compareAtPrice": None,
            "barcode": None,
            "inventoryPolicy": "DENY",
            "taxable": True,
            "createdAt": now,
            "updatedAt": now,
            "metafields": {},
        }
        self.variants[vid] = variant
        self.inventory_items[iid] = {
            "__typename": "InventoryItem",
            "id": iid,
            "variant_id": vid,
            "sku": None,
            "tracked": True,
            "requiresShipping": True,
            "unit_cost": None,
            "createdAt": now,
            "updatedAt": now,
        }
        product["variant_ids"].append(vid)
        self._apply_variant(variant, spec)
        # New variants are stocked where the caller says, else at the primary location.
        if stock is None:
            stock = {self.primary_location_id: 0} if self.primary_location_id else {}
        for loc, qty in stock.items():
            level = self._level(iid, loc, create=True)
            assert level is not None
            level["q"]["available"] = int(qty)
        return variant

    def _apply_variant(self, variant: dict[str, Any], spec: dict[str, Any]) -> bool:
        """Apply ProductVariantSetInput / ProductVariantsBulkInput fields; True if anything changed."""
        changed = False
        item = self.inventory_items[variant["item_id"]]

        def put(record: dict[str, Any], key: str, value: Any) -> None:
            nonlocal changed
            if record.get(key) != value:
                record[key] = value
                changed = True
                self._touch(record)

        if "price" in spec and spec["price"] is not None:
            put(variant, "price", money(spec["price"]))
        if "compareAtPrice" in spec:
            put(variant, "compareAtPrice", money(spec["compareAtPrice"]))
        for key in ("barcode", "inventoryPolicy", "taxable"):
            if key in spec and (spec[key] is not None or key == "barcode"):
                put(variant, key, spec[key])
        if "sku" in spec:
            put(item, "sku", spec["sku"])
        inv = spec.get("inventoryItem") or {}
        for key in ("sku", "tracked", "requiresShipping"):
            if key in inv and (inv[key] is not None or key == "sku"):
                put(item, key, inv[key])
        if inv.get("cost") is not None:
            put(item, "unit_cost", money(inv["cost"]))
        if changed:
            self._touch(variant, self._products.get(variant["product_id"]))
        return changed

    def _delete_variant(self, variant: dict[str, Any]) -> None:
        product = self._products.get(variant["product_id"])
        if product is not None and variant["id"] in product["variant_ids"]:
            product["variant_ids"].remove(variant["id"])
        self.variants.pop(variant["id"], None)
        self.inventory_items.pop(variant["item_id"], None)
        for key in [k for k in self.levels if k[0] == variant["item_id"]]:
            del self.levels[key]

    def _new_media(self, source: str, alt: str | None, product: dict[str, Any] | None) -> dict[str, Any]:
        now = self.now()
        gid = self._gid("MediaImage")
        media = {
            "__typename": "MediaImage",
            "id": gid,
            "url": source,
            "alt": alt or "",
            "createdAt": now,
            "updatedAt": now,
            "status": "READY",
            "fileStatus": "READY",
            "mediaContentType": "IMAGE",
            "mimeType": _mime(source),
            "product_ids": [],
        }
        self.files[gid] = media
        if product is not None:
            self._attach_media(product, media)
        return media

    def _attach_media(self, product: dict[str, Any], media: dict[str, Any]) -> None:
        if media["id"] not in product["media_ids"]:
            product["media_ids"].append(media["id"])
            media["product_ids"].append(product["id"])
            self._touch(product)

    def _detach_media(self, product: dict[str, Any], media: dict[str, Any]) -> None:
        if media["id"] in product["media_ids"]:
            product["media_ids"].remove(media["id"])
            self._touch(product)
        if product["id"] in media["product_ids"]:
            media["product_ids"].remove(product["id"])
        if not media["product_ids"]:
            self.files.pop(media["id"], None)

    def _unique_handle(self, wanted: str, product_id: str | None) -> str:
        taken = {p["handle"] for p in self._products.values() if p["id"] != product_id}
        handle, n = wanted, 1
        while handle in taken:
            handle, n = f"{wanted}-{n}", n + 1
        return handle

    def _by_custom_id(self, records: Iterable[dict[str, Any]], custom: dict[str, Any]) -> dict[str, Any] | None:
        key = (custom.get("namespace") or "$app", custom["key"])
        return next(
            (r for r in records if (r.get("metafields") or {}).get(key, {}).get("value") == custom["value"]), None
        )

    def _set_metafield(
        self, owner: dict[str, Any], namespace: str | None, key: str, value: str, type_: str | None
    ) -> dict[str, Any]:
        ns = namespace or "$app"
        now = self.now()
        existing = owner.setdefault("metafields", {}).get((ns, key))
        if existing is None:
            existing = {
                "__typename": "Metafield",
                "id": self._gid("Metafield"),
                "namespace": ns,
                "key": key,
                "type": type_ or "single_line_text_field",
                "createdAt": now,
                "owner_id": owner["id"],
            }
            owner["metafields"][(ns, key)] = existing
        existing.update(value=str(value), updatedAt=now)
        if type_:
            existing["type"] = type_
        return existing

    def _new_product(self, fields: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        gid = self._gid("Product")
        product = {
            "__typename": "Product",
            "id": gid,
            "title": fields.get("title") or "",
            "descriptionHtml": "",
            "vendor": self.shop_name,
            "productType": "",
            "tags": [],
            "status": "ACTIVE",
            "createdAt": now,
            "updatedAt": now,
            "publishedAt": None,
            "options": [],
            "variant_ids": [],
            "media_ids": [],
            "metafields": {},
            "published": set(),
        }
        product["handle"] = self._unique_handle(fields.get("handle") or handleize(product["title"]), gid)
        self._products[gid] = product
        return product

    def _apply_product(self, product: dict[str, Any], fields: dict[str, Any]) -> bool:
        changed = False
        for key in ("title", "descriptionHtml", "vendor", "productType", "status"):
            if fields.get(key) is not None and product.get(key) != fields[key]:
                product[key] = fields[key]
                changed = True
        if fields.get("handle") and fields["handle"] != product["handle"]:
            product["handle"] = self._unique_handle(fields["handle"], product["id"])
            changed = True
        if fields.get("tags") is not None:
            tags = _tags(fields["tags"])
            if tags != product["tags"]:
                product["tags"], changed = tags, True
        for mf in fields.get("metafields") or ():
            self._set_metafield(product, mf.get("namespace"), mf["key"], mf.get("value") or "", mf.get("type"))
            changed = True
        if changed:
            self._touch(product)
        return changed

    # -- productSet: the list semantics of the real mutation ------------------------------------
    def _product_set(self, inp: dict[str, Any], identifier: dict[str, Any] | None) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        product: dict[str, Any] | None = None
        identifier = identifier or {}
        if identifier.get("id"):
            product = self._products.get(identifier["id"])
            if product is None:
                raise _UserErrors([_err(["identifier", "id"], "Product does not exist", "PRODUCT_DOES_NOT_EXIST")])
        elif identifier.get("handle"):
            product = next((p for p in self._products.values() if p["handle"] == identifier["handle"]), None)
        elif identifier.get("customId"):
            product = self._by_custom_id(self._products.values(), identifier["customId"])
        options_in, variants_in = inp.get("productOptions"), inp.get("variants")
        if variants_in is not None and options_in is None:
            errors.append(
                _err(
                    ["input", "productOptions"],
                    "Product options input is required when updating variants.",
                    "PRODUCT_OPTIONS_INPUT_MISSING",
                )
            )
        if options_in is not None and variants_in is None:
            errors.append(
                _err(
                    ["input", "variants"],
                    "Variants input is required when updating product options.",
                    "VARIANTS_INPUT_MISSING",
                )
            )
        if product is None and not inp.get("title"):
            errors.append(_err(["input", "title"], "Title can't be blank", "INVALID_PRODUCT"))
        if inp.get("handle"):
            clash = next(
                (p for p in self._products.values() if p["handle"] == inp["handle"] and p is not product), None
            )
            if clash is not None:
                errors.append(
                    _err(
                        ["input", "handle"],
                        f"Handle '{inp['handle']}' already in use. Please provide a new handle.",
                        "HANDLE_NOT_UNIQUE",
                    )
                )
        combos: list[list[dict[str, str]]] = []
        if options_in is not None and variants_in is not None:
            combos = self._check_options(options_in, variants_in, product, errors)
        for i, f in enumerate(inp.get("files") or ()):
            if f.get("id") and f["id"] not in self.files:
                errors.append(_err(["input", "files", i, "id"], "File does not exist", "NOT_FOUND"))
            elif not f.get("id") and not f.get("originalSource"):
                errors.append(
                    _err(["input", "files", i], "Either id or originalSource is required", "MISSING_FIELD_REQUIRED")
                )
        if errors:
            raise _UserErrors(errors)

        created = product is None
        if product is None:
            product = self._new_product(
                {"title": inp.get("title"), "handle": inp.get("handle") or identifier.get("handle")}
            )
        changed = self._apply_product(product, {k: v for k, v in inp.items() if k != "metafields"})
        if inp.get("metafields") is not None:
            # A list field: metafields left out are deleted.
            keep = {(m.get("namespace") or "$app", m["key"]) for m in inp["metafields"]}
            product["metafields"] = {k: v for k, v in product["metafields"].items() if k in keep}
            self._apply_product(product, {"metafields": inp["metafields"]})
        if created and identifier.get("customId"):
            c = identifier["customId"]
            self._set_metafield(product, c.get("namespace"), c["key"], c["value"], "id")
        if options_in is not None and variants_in is not None:
            changed |= self._set_variants(product, options_in, variants_in, combos)
        elif created:
            self._default_variant(product)
        if inp.get("files") is not None:
            changed |= self._set_files(product, inp["files"])
        if changed and not created:
            self._touch(product)
        return product

    def _check_options(
        self,
        options_in: list[dict[str, Any]],
        variants_in: list[dict[str, Any]],
        product: dict[str, Any] | None,
        errors: list[dict[str, Any]],
    ) -> list[list[dict[str, str]]]:
        if len(options_in) > MAX_OPTIONS:
            errors.append(
                _err(
                    ["input", "productOptions"],
                    f"Can only specify a maximum of {MAX_OPTIONS} options",
                    "OPTIONS_OVER_LIMIT",
                )
            )
        if len(variants_in) > MAX_VARIANTS:
            errors.append(
                _err(
                    ["input", "variants"],
                    f"Can only specify a maximum of {MAX_VARIANTS} variants",
                    "VARIANTS_OVER_LIMIT",
                )
            )
        names: list[str] = []
        values: dict[str, list[str]] = {}
        for i, opt in enumerate(options_in):
            name = (opt.get("name") or "").strip()
            if not name and opt.get("id") and product is not None:
                name = next((o["name"] for o in product["options"] if o["id"] == opt["id"]), "")
            if name in names:
                errors.append(
                    _err(
                        ["input", "productOptions", i, "name"],
                        f"Duplicated option name '{name}'",
                        "DUPLICATED_OPTION_NAME",
                    )
                )
            names.append(name)
            vals = [(v.get("name") or "").strip() for v in opt.get("values") or ()]
            if not vals:
                errors.append(
                    _err(
                        ["input", "productOptions", i, "values"],
                        f"Option '{name}' must have at least one value",
                        "OPTION_VALUES_MISSING",
                    )
                )
            if len(set(vals)) != len(vals):
                errors.append(
                    _err(
                        ["input", "productOptions", i, "values"],
                        f"Duplicated option value in '{name}'",
                        "DUPLICATED_OPTION_VALUE",
                    )
                )
            values[name] = vals
        existing = set(product["variant_ids"]) if product is not None else set()
        combos: list[list[dict[str, str]]] = []
        seen: set[tuple[str, ...]] = set()
        for i, var in enumerate(variants_in):
            if var.get("id") and var["id"] not in existing:
                errors.append(
                    _err(
                        ["input", "variants", i, "id"],
                        "Product variant does not exist",
                        "PRODUCT_VARIANT_DOES_NOT_EXIST",
                    )
                )
            chosen: dict[str, str] = {}
            for j, ov in enumerate(var.get("optionValues") or ()):
                oname = ov.get("optionName")
                if oname is None and ov.get("optionId") and product is not None:
                    oname = next((o["name"] for o in product["options"] if o["id"] == ov["optionId"]), None)
                if oname not in values:
                    errors.append(
                        _err(
                            ["input", "variants", i, "optionValues", j, "optionName"],
                            f"Option '{oname}' does not exist",
                            "OPTION_DOES_NOT_EXIST",
                        )
                    )
                    continue
                if ov.get("name") not in values[oname]:
                    errors.append(
                        _err(
                            ["input", "variants", i, "optionValues", j, "name"],
                            f"Option value '{ov.get('name')}' does not exist",
                            "OPTION_VALUE_DOES_NOT_EXIST",
                        )
                    )
                    continue
                chosen[oname] = ov["name"]
            if len(chosen) != len(names) and not any(e["field"][:3] == ["input", "variants", str(i)] for e in errors):
                errors.append(
                    _err(
                        ["input", "variants", i, "optionValues"],
                        "The variant must have a value for every product option",
                        "INVALID_VARIANT",
                    )
                )
            combo = tuple(chosen.get(n, "") for n in names)
            if combo in seen:
                errors.append(
                    _err(
                        ["input", "variants", i],
                        f"The variant '{' / '.join(combo)}' already exists.",
                        "INVALID_VARIANT",
                    )
                )
            seen.add(combo)
            if var.get("price") is not None and Decimal(str(var["price"])) < 0:
                errors.append(
                    _err(
                        ["input", "variants", i, "price"], "Price must be greater than or equal to 0", "INVALID_VARIANT"
                    )
                )
            for k, q in enumerate(var.get("inventoryQuantities") or ()):
                if q.get("locationId") not in self.locations:
                    errors.append(
                        _err(
                            ["input", "variants", i, "inventoryQuantities", k, "locationId"],
                            "Location does not exist",
                            "INVALID_INPUT",
                        )
                    )
                if q.get("name") not in ("available", "on_hand"):
                    errors.append(
                        _err(
                            ["input", "variants", i, "inventoryQuantities", k, "name"],
                            "Quantity name must be available or on_hand",
                            "INVALID_INPUT",
                        )
                    )
            combos.append([{"name": n, "value": chosen.get(n, "")} for n in names])
        return combos

    def _set_variants(
        self,
        product: dict[str, Any],
        options_in: list[dict[str, Any]],
        variants_in: list[dict[str, Any]],
        combos: list[list[dict[str, str]]],
    ) -> bool:
        changed = False
        # Options: the list is replaced; an option keeps its id when its name (or id) survives.
        old = {o["name"]: o for o in product["options"]}
        old_by_id = {o["id"]: o for o in product["options"]}
        new_options = []
        for position, opt in enumerate(options_in, start=1):
            name = (opt.get("name") or "").strip() or old_by_id.get(opt.get("id") or "", {}).get("name", "")
            kept = old_by_id.get(opt.get("id") or "") or old.get(name)
            option = kept or {
                "__typename": "ProductOption",
                "id": self._gid("ProductOption"),
                "values": [],
                "product_id": product["id"],
            }
            option.update(name=name, position=position)
            for v in opt.get("values") or ():
                self._option_value(option, v["name"].strip())
            new_options.append(option)
        if [(o["name"], o["position"]) for o in new_options] != [
            (o["name"], o["position"]) for o in product["options"]
        ]:
            changed = True
        product["options"] = new_options
        # Variants: matched by id, else by option values; the ones left out are deleted.
        current = self._product_variants(product)
        unclaimed = {v["id"]: v for v in current}
        order: list[str] = []
        positions: dict[str, Any] = {}
        for var, selected in zip(variants_in, combos, strict=True):
            variant = unclaimed.pop(var["id"], None) if var.get("id") else None
            if variant is None and not var.get("id"):
                key = [(s["name"], s["value"]) for s in selected]
                variant = next(
                    (v for v in unclaimed.values() if [(s["name"], s["value"]) for s in v["selectedOptions"]] == key),
                    None,
                )
                if variant is not None:
                    unclaimed.pop(variant["id"])
            if variant is None:
                # Quantities apply when a variant is created (fact sheet §7.1).
                stock = {q["locationId"]: q["quantity"] for q in var.get("inventoryQuantities") or ()} or None
                variant = self._new_variant(product, selected, var, stock)
                product["variant_ids"].remove(variant["id"])
                changed = True
            else:
                if variant["selectedOptions"] != selected:
                    variant["selectedOptions"] = selected
                    self._touch(variant)
                    changed = True
                changed |= self._apply_variant(variant, var)
            order.append(variant["id"])
            positions[variant["id"]] = var.get("position")
        for variant in unclaimed.values():
            self._delete_variant(variant)
            changed = True
        if any(p is not None for p in positions.values()):
            order.sort(key=lambda vid: (positions[vid] is None, positions[vid] or 0))
        product["variant_ids"] = order
        self._prune_option_values(product)
        return changed

    def _default_variant(self, product: dict[str, Any]) -> None:
        product["options"] = [self._new_option(product, "Title", ["Default Title"])]
        self._new_variant(product, [{"name": "Title", "value": "Default Title"}], {}, None)

    def _set_files(self, product: dict[str, Any], files: list[dict[str, Any]]) -> bool:
        before = list(product["media_ids"])
        keep: list[str] = []
        for f in files:
            if f.get("id"):
                media = self.files[f["id"]]
                if f.get("alt") is not None:
                    media["alt"] = f["alt"]
            else:
                # Without an id, a file is new (a second copy if the same URL is sent again).
                media = self._new_media(f["originalSource"], f.get("alt"), None)
            keep.append(media["id"])
        for mid in before:
            if mid not in keep:
                self._detach_media(product, self.files[mid])
        for mid in keep:
            self._attach_media(product, self.files[mid])
        product["media_ids"] = keep
        return before != keep

    def _delete_product(self, product: dict[str, Any]) -> None:
        for variant in self._product_variants(product):
            self._delete_variant(variant)
        for mid in list(product["media_ids"]):
            self._detach_media(product, self.files[mid])
        del self._products[product["id"]]
        self.deletion_events.append(
            {
                "__typename": "DeletionEvent",
                "id": product["id"],
                "subjectId": product["id"],
                "subjectType": "PRODUCT",
                "occurredAt": self.now(),
            }
        )

    # -- Python API: catalog ------------------------------------------------------------------
    @_locked
    def add_product(
        self,
        title: str,
        *,
        options: dict[str, list[str]] | list[str] | None = None,
        variants: list[dict[str, Any]] | None = None,
        images: Iterable[str | dict[str, str]] = (),
        tags: Iterable[str] = (),
        status: str = "ACTIVE",
        vendor: str | None = None,
        product_type: str = "",
        description_html: str = "",
        handle: str | None = None,
        published: bool = True,
    ) -> dict[str, Any]:
        """Create a product the way a merchant would in the admin, and return its snapshot.

        `variants` items: ``{"sku", "price", "options": {"Size": "S"} | ["S"], "available": int |
        {location_id: int}, "barcode", "compare_at_price", "inventory_policy", "tracked"}``.
        """
        variants = variants or [{}]
        if options is None:
            names = ["Title"] if len(variants) == 1 and not variants[0].get("options") else []
            if not names:
                first = variants[0].get("options")
                names = list(first) if isinstance(first, dict) else [f"Option{i + 1}" for i in range(len(first))]
        else:
            names = list(options)
        selected: list[list[dict[str, str]]] = []
        for spec in variants:
            chosen = spec.get("options") or (["Default Title"] if names == ["Title"] else [])
            vals = [chosen[n] for n in names] if isinstance(chosen, dict) else list(chosen)
            selected.append([{"name": n, "value": str(v)} for n, v in zip(names, vals, strict=True)])
        option_values: dict[str, list[str]] = {n: [] for n in names}
        if isinstance(options, dict):
            option_values = {n: [str(v) for v in vs] for n, vs in options.items()}
        for combo in selected:
            for so in combo:
                if so["value"] not in option_values[so["name"]]:
                    option_values[so["name"]].append(so["value"])
        product = self._new_product({"title": title, "handle": handle})
        self._apply_product(
            product,
            {
                "descriptionHtml": description_html,
                "vendor": vendor or self.shop_name,
                "productType": product_type,
                "tags": list(tags),
                "status": status,
            },
        )
        product["options"] = [self._new_option(product, n, option_values[n]) for n in names]
        for spec, combo in zip(variants, selected, strict=True):
            available = spec.get("available", 0)
            stock = (
                available
                if isinstance(available, dict)
                else ({self.primary_location_id: available} if self.primary_location_id else {})
            )
            self._new_variant(product, combo, _variant_input(spec), stock)
        self._prune_option_values(product)
        for image in images:
            src, alt = (image, None) if isinstance(image, str) else (image["url"], image.get("alt"))
            self._new_media(src, alt, product)
        if published:
            self._publish(product, self.online_store_id)
        product["updatedAt"] = product["createdAt"]
        return self.product(product["id"])

    @_locked
    def add_collection(self, title: str, product_ids: Iterable[str] = ()) -> dict[str, Any]:
        """Create a (custom) collection holding these products; returns {id, title, handle}."""
        gid = self._gid("Collection")
        handle = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "collection"
        self.collections[gid] = {"__typename": "Collection", "id": gid, "title": title, "handle": handle}
        for pid in product_ids:
            self._products[pid].setdefault("collection_ids", []).append(gid)
        return {"id": gid, "title": title, "handle": handle}

    @_locked
    def update_product(self, product_id: str, **fields: Any) -> dict[str, Any]:
        """Edit product fields: title, description_html, vendor, product_type, tags, status, handle,
        images (the full new list of URLs)."""
        product = self._products[product_id]
        names = {"description_html": "descriptionHtml", "product_type": "productType"}
        images = fields.pop("images", None)
        self._apply_product(product, {names.get(k, k): v for k, v in fields.items()})
        if images is not None:
            current = {self.files[m]["url"]: m for m in product["media_ids"]}
            self._set_files(product, [{"id": current[u]} if u in current else {"originalSource": u} for u in images])
        return self.product(product_id)

    @_locked
    def add_variant(self, product_id: str, *, options: dict[str, str], **spec: Any) -> dict[str, Any]:
        """Add a variant (new option values are created on the product)."""
        product = self._products[product_id]
        for name, value in options.items():
            option = next((o for o in product["options"] if o["name"] == name), None)
            if option is None:
                raise ValueError(f"product has no option {name!r}")
            self._option_value(option, str(value))
        combo = [{"name": o["name"], "value": str(options[o["name"]])} for o in product["options"]]
        available = spec.pop("available", 0)
        stock = available if isinstance(available, dict) else {self.primary_location_id: available}
        variant = self._new_variant(product, combo, _variant_input(spec), stock)
        self._touch(product)
        return self._variant_snapshot(variant)

    @_locked
    def update_variant(self, variant_id: str, **fields: Any) -> dict[str, Any]:
        """Edit a variant: price, compare_at_price, sku, barcode, inventory_policy, tracked, options."""
        variant = self.variants[variant_id]
        options = fields.pop("options", None)
        if options:
            product = self._products[variant["product_id"]]
            for so in variant["selectedOptions"]:
                if so["name"] in options:
                    so["value"] = str(options[so["name"]])
                    option = next(o for o in product["options"] if o["name"] == so["name"])
                    self._option_value(option, so["value"])
            self._prune_option_values(product)
            self._touch(variant, product)
        self._apply_variant(variant, _variant_input(fields))
        return self._variant_snapshot(variant)

    @_locked
    def delete_variant(self, variant_id: str) -> None:
        variant = self.variants[variant_id]
        product = self._products[variant["product_id"]]
        self._delete_variant(variant)
        self._prune_option_values(product)
        self._touch(product)

    @_locked
    def delete_product(self, product_id: str) -> None:
        """Delete a product (recorded as a DeletionEvent, as Shopify does)."""
        self._delete_product(self._products[product_id])

    @_locked
    def publish(self, product_id: str, publication_id: str | None = None) -> None:
        self._publish(self._products[product_id], publication_id or self.online_store_id)

    def _publish(self, product: dict[str, Any], publication_id: str) -> None:
        if publication_id not in product["published"]:
            product["published"].add(publication_id)
            if product["publishedAt"] is None:
                product["publishedAt"] = self.now()
            self._touch(product)

    @_locked
    def online_store_published(self, product_id: str) -> bool:
        return self.online_store_id in self._products[product_id]["published"]

    def _item_for(self, item_or_variant_id: str) -> dict[str, Any]:
        if gid_kind(item_or_variant_id) == "ProductVariant":
            return self.inventory_items[self.variants[item_or_variant_id]["item_id"]]
        return self.inventory_items[item_or_variant_id]

    @_locked
    def set_available(self, item_or_variant_id: str, location_id: str | None, quantity: int) -> None:
        """Set `available` at a location (stocking the item there if needed), as a merchant would."""
        item = self._item_for(item_or_variant_id)
        location_id = location_id or self.primary_location_id
        assert location_id is not None
        level = self._level(item["id"], location_id, create=True)
        assert level is not None
        delta = int(quantity) - level["q"]["available"]
        if delta:
            self._change_quantity(level, "available", delta)

    @_locked
    def available(self, item_or_variant_id: str, location_id: str | None = None) -> int:
        """`available` at one location, or summed over all locations when `location_id` is None."""
        item = self._item_for(item_or_variant_id)
        return sum(
            lv["q"]["available"]
            for (iid, loc), lv in self.levels.items()
            if iid == item["id"] and (location_id is None or loc == location_id)
        )

    @_locked
    def quantity(self, item_or_variant_id: str, location_id: str, name: str = "available") -> int | None:
        level = self.levels.get((self._item_for(item_or_variant_id)["id"], location_id))
        return None if level is None else self._quantity(level, name)

    def _variant_snapshot(self, variant: dict[str, Any]) -> dict[str, Any]:
        item = self.inventory_items[variant["item_id"]]
        product = self._products[variant["product_id"]]
        return {
            "id": variant["id"],
            "title": _variant_title(variant),
            "sku": item["sku"],
            "barcode": variant["barcode"],
            "price": variant["price"],
            "compareAtPrice": variant["compareAtPrice"],
            "position": product["variant_ids"].index(variant["id"]) + 1,
            "selectedOptions": [dict(so) for so in variant["selectedOptions"]],
            "inventoryPolicy": variant["inventoryPolicy"],
            "inventoryItemId": item["id"],
            "tracked": item["tracked"],
            "updatedAt": iso(variant["updatedAt"]),
            "available": {loc: lv["q"]["available"] for (iid, loc), lv in self.levels.items() if iid == item["id"]},
        }

    @_locked
    def product(self, product_id: str) -> dict[str, Any] | None:
        """A plain snapshot of one product (None once deleted)."""
        p = self._products.get(product_id)
        if p is None:
            return None
        return {
            "id": p["id"],
            "title": p["title"],
            "handle": p["handle"],
            "descriptionHtml": p["descriptionHtml"],
            "vendor": p["vendor"],
            "productType": p["productType"],
            "tags": list(p["tags"]),
            "status": p["status"],
            "createdAt": iso(p["createdAt"]),
            "updatedAt": iso(p["updatedAt"]),
            "options": [
                {"id": o["id"], "name": o["name"], "values": [v["name"] for v in o["values"]]} for o in p["options"]
            ],
            "variants": [self._variant_snapshot(v) for v in self._product_variants(p)],
            "images": [{"id": m, "url": self.files[m]["url"], "alt": self.files[m]["alt"]} for m in p["media_ids"]],
            "published": self.online_store_id in p["published"],
            "metafields": {f"{ns}.{k}": mf["value"] for (ns, k), mf in p["metafields"].items()},
        }

    @_locked
    def products(self) -> list[dict[str, Any]]:
        return [s for s in (self.product(pid) for pid in list(self._products)) if s is not None]

    @_locked
    def variant(self, variant_id: str) -> dict[str, Any] | None:
        v = self.variants.get(variant_id)
        return None if v is None else self._variant_snapshot(v)

    # -- GraphQL: queries ---------------------------------------------------------------------
    def _q_shop(self, obj: Any, info: Any) -> dict[str, Any]:
        return self._shop()

    def _q_locations(self, obj: Any, info: Any, **args: Any) -> dict[str, Any]:
        items = [loc for loc in self.locations.values() if loc["isActive"] or args.get("includeInactive")]
        items = self._search(info, items, args.get("query"), LOCATION_FIELDS, ("name",))
        return self._page(info, items, args, self._sorter(args.get("sortKey")))

    def _q_location(self, obj: Any, info: Any, id: str | None = None) -> dict[str, Any] | None:  # noqa: A002
        return self.locations.get(id) if id else self.locations.get(self.primary_location_id or "")

    def _q_publications(self, obj: Any, info: Any, **args: Any) -> dict[str, Any]:
        return self._page(info, self.publications.values(), args)

    def _q_products(self, obj: Any, info: Any, **args: Any) -> dict[str, Any]:
        items = self._search(
            info,
            self._products.values(),
            args.get("query"),
            self._product_fields(),
            ("title", "sku", "vendor", "product_type", "tag"),
        )
        return self._page(info, items, args, self._sorter(args.get("sortKey")))

    def _q_product(self, obj: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self._products.get(id)

    def _q_productByIdentifier(self, obj: Any, info: Any, identifier: dict[str, Any]) -> dict[str, Any] | None:
        if identifier.get("id"):
            return self._products.get(identifier["id"])
        if identifier.get("handle"):
            return next((p for p in self._products.values() if p["handle"] == identifier["handle"]), None)
        if identifier.get("customId"):
            return self._by_custom_id(self._products.values(), identifier["customId"])
        return None

    def _q_productVariants(self, obj: Any, info: Any, **args: Any) -> dict[str, Any]:
        items = self._search(
            info, self.variants.values(), args.get("query"), self._variant_fields(), ("sku", "title", "barcode")
        )
        sort_key = args.get("sortKey")
        sorter = (lambda v: str(self._sku(v) or "").lower()) if sort_key == "SKU" else self._sorter(sort_key)
        return self._page(info, items, args, sorter)

    def _q_productVariant(self, obj: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self.variants.get(id)

    def _q_nodes(self, obj: Any, info: Any, ids: list[str]) -> list[dict[str, Any] | None]:
        return [self._node(i) for i in ids]

    def _q_node(self, obj: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self._node(id)

    def _q_deletionEvents(self, obj: Any, info: Any, **args: Any) -> dict[str, Any]:
        types = args.get("subjectTypes")
        items = [e for e in self.deletion_events if not types or e["subjectType"] in types]
        items = self._search(info, items, args.get("query"), DELETION_FIELDS)
        # Events sort by when they happened (CREATED_AT) or by their own sequence (ID).
        for n, e in enumerate(self.deletion_events, start=1):
            e.setdefault("seq", n)
        sorter = (lambda e: int(e["occurredAt"])) if args.get("sortKey") == "CREATED_AT" else (lambda e: e["seq"])
        return self._page(info, items, args, sorter)

    def _q_inventoryItems(self, obj: Any, info: Any, **args: Any) -> dict[str, Any]:
        items = self._search(info, self.inventory_items.values(), args.get("query"), INVENTORY_ITEM_FIELDS, ("sku",))
        return self._page(info, items, args)

    def _q_inventoryItem(self, obj: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self.inventory_items.get(id)

    def _q_inventoryLevel(self, obj: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self._node(id)

    def _q_job(self, obj: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self.jobs.get(id)

    # -- GraphQL: object fields ------------------------------------------------------------------
    def _r_Location_isPrimary(self, obj: dict[str, Any], info: Any) -> bool:
        return obj["id"] == self.primary_location_id

    def _r_Location_hasActiveInventory(self, obj: dict[str, Any], info: Any) -> bool:
        return any(loc == obj["id"] for _, loc in self.levels)

    def _r_Location_inventoryLevels(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        items = [lv for (_, loc), lv in self.levels.items() if loc == obj["id"]]
        items = self._search(info, items, args.get("query"), LEVEL_FIELDS)
        return self._page(info, items, args, lambda lv: gid_num(lv["item_id"]))

    def _r_Location_inventoryLevel(
        self,
        obj: dict[str, Any],
        info: Any,
        inventoryItemId: str,  # noqa: N803
        **_: Any,
    ) -> dict[str, Any] | None:
        return self.levels.get((inventoryItemId, obj["id"]))

    def _r_Product_description(self, obj: dict[str, Any], info: Any, truncateAt: int | None = None) -> str:  # noqa: N803
        text = html.unescape(re.sub(r"<[^>]+>", " ", obj["descriptionHtml"] or ""))
        text = re.sub(r"\s+", " ", text).strip()
        return text[:truncateAt] if truncateAt else text

    def _r_Product_options(self, obj: dict[str, Any], info: Any, first: int | None = None) -> list[dict[str, Any]]:
        return obj["options"][:first] if first is not None else obj["options"]

    def _r_Product_variants(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        items = self._product_variants(obj)
        for n, v in enumerate(items, start=1):
            v["position"] = n
        # "If querying a single product at the root, you can fetch up to 2048 variants." (SDL)
        nested = any(isinstance(p, int) for p in info.path.as_list())
        sort_key = args.get("sortKey") or "POSITION"
        sorter = (lambda v: str(self._sku(v) or "").lower()) if sort_key == "SKU" else self._sorter(sort_key)
        return self._page(info, items, args, sorter, MAX_PAGE_SIZE if nested else MAX_VARIANTS)

    def _r_Product_collections(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        items = [self.collections[c] for c in obj.get("collection_ids") or [] if c in self.collections]
        items = self._search(info, items, args.get("query"), {"title": ("text", lambda c: c["title"])}, ("title",))
        return self._page(info, items, args)

    def _r_Product_variantsCount(self, obj: dict[str, Any], info: Any, **_: Any) -> dict[str, Any]:
        return {"count": len(obj["variant_ids"]), "precision": "EXACT"}

    def _r_Product_media(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        media = [self.files[m] for m in obj["media_ids"]]
        for n, m in enumerate(media, start=1):
            m["position"] = n
        return self._page(info, media, args, lambda m: m["position"])

    def _r_Product_mediaCount(self, obj: dict[str, Any], info: Any, **_: Any) -> dict[str, Any]:
        return {"count": len(obj["media_ids"]), "precision": "EXACT"}

    def _r_Product_featuredMedia(self, obj: dict[str, Any], info: Any) -> dict[str, Any] | None:
        return self.files[obj["media_ids"][0]] if obj["media_ids"] else None

    def _r_Product_images(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        images = [dict(self._image(self.files[m]), position=n) for n, m in enumerate(obj["media_ids"], start=1)]
        return self._page(info, images, args, lambda i: i["position"])

    def _image(self, media: dict[str, Any]) -> dict[str, Any]:
        return {
            "__typename": "Image",
            "id": f"gid://shopify/ProductImage/{gid_num(media['id'])}",
            "url": media["url"],
            "altText": media["alt"],
            "width": None,
            "height": None,
        }

    def _r_Product_totalInventory(self, obj: dict[str, Any], info: Any) -> int:
        return sum(
            self._variant_inventory(v)
            for v in self._product_variants(obj)
            if self.inventory_items[v["item_id"]]["tracked"]
        )

    def _r_Product_tracksInventory(self, obj: dict[str, Any], info: Any) -> bool:
        return any(self.inventory_items[v["item_id"]]["tracked"] for v in self._product_variants(obj))

    def _r_Product_hasOnlyDefaultVariant(self, obj: dict[str, Any], info: Any) -> bool:
        variants = self._product_variants(obj)
        return len(variants) == 1 and variants[0]["selectedOptions"] == [{"name": "Title", "value": "Default Title"}]

    def _r_Product_onlineStoreUrl(self, obj: dict[str, Any], info: Any) -> str | None:
        if self.online_store_id in obj["published"] and obj["status"] == "ACTIVE":
            return f"https://{self.domain}/products/{obj['handle']}"
        return None

    def _r_Product_publishedOnPublication(self, obj: dict[str, Any], info: Any, publicationId: str) -> bool:  # noqa: N803
        return publicationId in obj["published"]

    def _r_Product_metafield(
        self, obj: dict[str, Any], info: Any, key: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        return obj.get("metafields", {}).get((namespace or "$app", key))

    def _r_Product_metafields(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        items = [
            mf
            for (ns, key), mf in obj.get("metafields", {}).items()
            if (not args.get("namespace") or ns == args["namespace"])
            and (not args.get("keys") or f"{ns}.{key}" in args["keys"])
        ]
        return self._page(info, items, args)

    _r_ProductVariant_metafield = _r_Order_metafield = _r_Product_metafield
    _r_ProductVariant_metafields = _r_Order_metafields = _r_Product_metafields

    def _r_ProductOption_values(self, obj: dict[str, Any], info: Any) -> list[str]:
        return [v["name"] for v in obj["values"]]

    def _r_ProductOption_optionValues(self, obj: dict[str, Any], info: Any) -> list[dict[str, Any]]:
        return obj["values"]

    def _r_ProductOptionValue_hasVariants(self, obj: dict[str, Any], info: Any) -> bool:
        product = self._products.get(obj["product_id"])
        option = next((o for o in product["options"] if o["id"] == obj["option_id"]), None) if product else None
        return bool(
            product
            and option
            and any(
                so["name"] == option["name"] and so["value"] == obj["name"]
                for v in self._product_variants(product)
                for so in v["selectedOptions"]
            )
        )

    def _variant_inventory(self, variant: dict[str, Any]) -> int:
        return sum(lv["q"]["available"] for (iid, _), lv in self.levels.items() if iid == variant["item_id"])

    def _r_ProductVariant_sku(self, obj: dict[str, Any], info: Any) -> str | None:
        return self._sku(obj)

    def _r_ProductVariant_title(self, obj: dict[str, Any], info: Any) -> str:
        return _variant_title(obj)

    def _r_ProductVariant_displayName(self, obj: dict[str, Any], info: Any) -> str:
        return f"{self._products[obj['product_id']]['title']} - {_variant_title(obj)}"

    def _r_ProductVariant_position(self, obj: dict[str, Any], info: Any) -> int:
        return self._products[obj["product_id"]]["variant_ids"].index(obj["id"]) + 1

    def _r_ProductVariant_product(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self._products[obj["product_id"]]

    def _r_ProductVariant_inventoryItem(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self.inventory_items[obj["item_id"]]

    def _r_ProductVariant_inventoryQuantity(self, obj: dict[str, Any], info: Any) -> int:
        return self._variant_inventory(obj)

    def _r_ProductVariant_availableForSale(self, obj: dict[str, Any], info: Any) -> bool:
        item = self.inventory_items[obj["item_id"]]
        return self._products[obj["product_id"]]["status"] == "ACTIVE" and (
            not item["tracked"] or obj["inventoryPolicy"] == "CONTINUE" or self._variant_inventory(obj) > 0
        )

    def _r_ProductVariant_selectedOptions(self, obj: dict[str, Any], info: Any) -> list[dict[str, Any]]:
        product = self._products[obj["product_id"]]
        out = []
        for so in obj["selectedOptions"]:
            option = next((o for o in product["options"] if o["name"] == so["name"]), None)
            value = next((v for v in option["values"] if v["name"] == so["value"]), None) if option else None
            out.append({"name": so["name"], "value": so["value"], "optionValue": value})
        return out

    def _r_ProductVariant_media(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        return self._page(info, [], args)

    def _r_InventoryItem_variant(self, obj: dict[str, Any], info: Any) -> dict[str, Any] | None:
        return self.variants.get(obj.get("variant_id") or "")

    def _r_InventoryItem_duplicateSkuCount(self, obj: dict[str, Any], info: Any) -> int:
        return (
            0
            if not obj["sku"]
            else sum(1 for i in self.inventory_items.values() if i["sku"] == obj["sku"] and i is not obj)
        )

    def _r_InventoryItem_unitCost(self, obj: dict[str, Any], info: Any) -> dict[str, Any] | None:
        return None if obj["unit_cost"] is None else {"amount": obj["unit_cost"], "currencyCode": self.currency}

    def _r_InventoryItem_inventoryLevel(
        self,
        obj: dict[str, Any],
        info: Any,
        locationId: str,  # noqa: N803
        **_: Any,
    ) -> dict[str, Any] | None:
        return self.levels.get((obj["id"], locationId))

    def _r_InventoryItem_inventoryLevels(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        items = [lv for (iid, _), lv in self.levels.items() if iid == obj["id"]]
        items = self._search(info, items, args.get("query"), LEVEL_FIELDS)
        return self._page(info, items, args, lambda lv: gid_num(lv["location_id"]))

    def _r_InventoryLevel_item(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self.inventory_items[obj["item_id"]]

    def _r_InventoryLevel_location(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self.locations[obj["location_id"]]

    def _r_InventoryLevel_isActive(self, obj: dict[str, Any], info: Any) -> bool:
        return True

    def _r_InventoryLevel_canDeactivate(self, obj: dict[str, Any], info: Any) -> bool:
        return True

    def _r_InventoryLevel_quantities(self, obj: dict[str, Any], info: Any, names: list[str]) -> list[dict[str, Any]]:
        out = []
        for name in names:
            if name != "on_hand" and name not in STORED_QUANTITIES:
                raise GraphQLError(f"Invalid quantity name: '{name}'", extensions={"code": "BAD_REQUEST"})
            out.append(
                {
                    "__typename": "InventoryQuantity",
                    "name": name,
                    "quantity": self._quantity(obj, name),
                    "updatedAt": obj["q_at"].get(name),
                    "id": f"gid://shopify/InventoryQuantity/{gid_num(obj['location_id'])}"
                    f"?inventory_item_id={gid_num(obj['item_id'])}&name={name}",
                }
            )
        return out

    def _r_MediaImage_image(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self._image(obj)

    def _r_MediaImage_preview(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return {"image": self._image(obj), "status": "READY"}

    def _r_InventoryChange_item(self, obj: dict[str, Any], info: Any) -> dict[str, Any] | None:
        return self.inventory_items.get(obj["item_id"])

    def _r_InventoryChange_location(self, obj: dict[str, Any], info: Any) -> dict[str, Any] | None:
        return self.locations.get(obj["location_id"])

    def _r_InventoryAdjustmentGroup_changes(
        self,
        obj: dict[str, Any],
        info: Any,
        inventoryItemIds: Any = None,  # noqa: N803
        locationIds: Any = None,
        quantityNames: Any = None,
    ) -> list[Any]:  # noqa: N803
        return [
            c
            for c in obj["changes"]
            if (not inventoryItemIds or c["item_id"] in inventoryItemIds)
            and (not locationIds or c["location_id"] in locationIds)
            and (not quantityNames or c["name"] in quantityNames)
        ]

    def _r_Job_query(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return {}

    # -- search fields ----------------------------------------------------------------------------
    def _product_fields(self) -> SearchFields:
        def skus(p: dict[str, Any]) -> list[Any]:
            return [self._sku(v) for v in self._product_variants(p)]

        return {
            "updated_at": ("date", lambda p: p["updatedAt"]),
            "created_at": ("date", lambda p: p["createdAt"]),
            "published_at": ("date", lambda p: p["publishedAt"]),
            "sku": ("word", skus),
            "barcode": ("word", lambda p: [v["barcode"] for v in self._product_variants(p)]),
            "tag": ("word", lambda p: p["tags"]),
            "title": ("text", lambda p: p["title"]),
            "status": ("word", lambda p: p["status"]),
            "product_type": ("word", lambda p: p["productType"]),
            "vendor": ("word", lambda p: p["vendor"]),
            "handle": ("word", lambda p: p["handle"]),
            "id": ("id", lambda p: gid_num(p["id"])),
            "collection_id": ("id", lambda p: [gid_num(c) for c in p.get("collection_ids") or []]),
        }

    def _variant_fields(self) -> SearchFields:
        return {
            "sku": ("word", self._sku),
            "barcode": ("word", lambda v: v["barcode"]),
            "product_id": ("id", lambda v: gid_num(v["product_id"])),
            "id": ("id", lambda v: gid_num(v["id"])),
            "updated_at": ("date", lambda v: v["updatedAt"]),
            "created_at": ("date", lambda v: v["createdAt"]),
            "title": ("text", _variant_title),
            "inventory_item_id": ("id", lambda v: gid_num(v["item_id"])),
        }

    # -- GraphQL: catalog mutations ----------------------------------------------------------------
    def _m_productSet(
        self,
        obj: Any,
        info: Any,
        input: dict[str, Any],
        synchronous: bool | None = None,  # noqa: A002
        identifier: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        product = self._product_set(input, identifier)
        if synchronous is False:
            # Asynchronous runs return an operation to poll; the sandbox finishes it at once.
            operation = {
                "__typename": "ProductSetOperation",
                "id": self._gid("ProductSetOperation"),
                "product": product,
                "status": "COMPLETE",
                "userErrors": [],
            }
            return {"product": None, "productSetOperation": operation}
        return {"product": product}

    def _m_productUpdate(
        self,
        obj: Any,
        info: Any,
        product: dict[str, Any] | None = None,
        media: list[dict[str, Any]] | None = None,
        identifier: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        fields = dict(product or {})
        ident = identifier or {}
        record = None
        if fields.get("id") or ident.get("id"):
            record = self._products.get(fields.get("id") or ident.get("id"))
        elif ident.get("handle"):
            record = next((p for p in self._products.values() if p["handle"] == ident["handle"]), None)
        elif ident.get("customId"):
            record = self._by_custom_id(self._products.values(), ident["customId"])
        if record is None:
            raise _UserErrors([_err(["id"], "Product does not exist")])
        if "title" in fields and not (fields["title"] or "").strip():
            raise _UserErrors([_err(["title"], "Title can't be blank")])
        self._apply_product(record, fields)
        for m in media or ():
            self._new_media(m["originalSource"], m.get("alt"), record)
        return {"product": record}

    def _variant_owner(self, product_id: str) -> dict[str, Any]:
        product = self._products.get(product_id)
        if product is None:
            raise _UserErrors([_err(["productId"], "Product does not exist", "PRODUCT_DOES_NOT_EXIST")])
        return product

    def _combo(
        self,
        product: dict[str, Any],
        option_values: list[dict[str, Any]],
        path: list[Any],
        errors: list[dict[str, Any]],
        base: list[dict[str, str]] | None = None,
    ) -> list[dict[str, str]]:
        chosen = {so["name"]: so["value"] for so in base or ()}
        for j, ov in enumerate(option_values or ()):
            name = ov.get("optionName") or next(
                (o["name"] for o in product["options"] if o["id"] == ov.get("optionId")), None
            )
            option = next((o for o in product["options"] if o["name"] == name), None)
            value = ov.get("name") or next(
                (v["name"] for o in product["options"] for v in o["values"] if v["id"] == ov.get("id")), None
            )
            if option is None or not value:
                errors.append(
                    _err(
                        path + ["optionValues", j],
                        f"Option '{name}' does not exist on the product",
                        "OPTION_VALUES_FOR_NUMBER_OF_UNKNOWN_OPTIONS",
                    )
                )
                continue
            chosen[name] = value
        missing = [o["name"] for o in product["options"] if o["name"] not in chosen]
        if missing:
            errors.append(
                _err(
                    path + ["optionValues"],
                    f"Option values are missing for: {', '.join(missing)}",
                    "NEED_TO_ADD_OPTION_VALUES",
                )
            )
        return [{"name": o["name"], "value": chosen.get(o["name"], "")} for o in product["options"]]

    def _m_productVariantsBulkCreate(
        self,
        obj: Any,
        info: Any,
        productId: str,  # noqa: N803
        variants: list[dict[str, Any]],
        strategy: str | None = None,
        media: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        product = self._variant_owner(productId)
        existing = self._product_variants(product)
        standalone = len(existing) == 1
        is_default = standalone and existing[0]["selectedOptions"] == [{"name": "Title", "value": "Default Title"}]
        remove = (strategy == "REMOVE_STANDALONE_VARIANT" and standalone) or (
            strategy in (None, "DEFAULT") and is_default
        )
        errors: list[dict[str, Any]] = []
        if (
            is_default
            and remove
            and any(ov.get("optionName") not in (None, "Title") for v in variants for ov in v.get("optionValues") or ())
        ):
            # The default "Title" option goes with the standalone variant; the new variants bring their options.
            names: list[str] = []
            for v in variants:
                for ov in v.get("optionValues") or ():
                    if ov.get("optionName") and ov["optionName"] not in names:
                        names.append(ov["optionName"])
            options = [
                {
                    "__typename": "ProductOption",
                    "id": self._gid("ProductOption"),
                    "name": n,
                    "position": i,
                    "values": [],
                    "product_id": product["id"],
                }
                for i, n in enumerate(names, 1)
            ]
        else:
            options = None
        target = dict(product, options=options) if options is not None else product
        taken = {tuple(so["value"] for so in v["selectedOptions"]) for v in existing if not remove}
        combos = []
        for i, spec in enumerate(variants):
            if spec.get("id"):
                errors.append(_err(["variants", i, "id"], "Cannot specify id on create", "INVALID_INPUT"))
            combo = self._combo(target, spec.get("optionValues") or [], ["variants", i], errors)
            key = tuple(so["value"] for so in combo)
            if key in taken:
                errors.append(
                    _err(["variants", i], f"The variant '{' / '.join(key)}' already exists.", "VARIANT_ALREADY_EXISTS")
                )
            taken.add(key)
            if spec.get("price") is not None and Decimal(str(spec["price"])) < 0:
                errors.append(
                    _err(["variants", i, "price"], "Price must be greater than or equal to 0", "NEGATIVE_PRICE_VALUE")
                )
            for k, q in enumerate(spec.get("inventoryQuantities") or ()):
                if q["locationId"] not in self.locations:
                    errors.append(
                        _err(
                            ["variants", i, "inventoryQuantities", k, "locationId"],
                            "Location does not exist",
                            "TRACKED_VARIANT_LOCATION_NOT_FOUND",
                        )
                    )
            combos.append(combo)
        if errors:
            raise _UserErrors(errors)
        if remove:
            for v in existing:
                self._delete_variant(v)
        if options is not None:
            product["options"] = options
        created = []
        for spec, combo in zip(variants, combos, strict=True):
            for so in combo:
                self._option_value(next(o for o in product["options"] if o["name"] == so["name"]), so["value"])
            stock = {q["locationId"]: q["availableQuantity"] for q in spec.get("inventoryQuantities") or ()} or None
            created.append(self._new_variant(product, combo, spec, stock))
        for m in media or ():
            self._new_media(m["originalSource"], m.get("alt"), product)
        self._prune_option_values(product)
        self._touch(product)
        return {"product": product, "productVariants": created}

    def _m_productVariantsBulkUpdate(
        self,
        obj: Any,
        info: Any,
        productId: str,  # noqa: N803
        variants: list[dict[str, Any]],
        allowPartialUpdates: bool | None = None,  # noqa: N803
        media: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        product = self._variant_owner(productId)
        errors: list[dict[str, Any]] = []
        plans = []
        for i, spec in enumerate(variants):
            mine: list[dict[str, Any]] = []
            variant = self.variants.get(spec.get("id") or "")
            if not spec.get("id"):
                mine.append(
                    _err(["variants", i, "id"], "Product variant is missing ID attribute", "PRODUCT_VARIANT_ID_MISSING")
                )
            elif variant is None or variant["product_id"] != productId:
                mine.append(
                    _err(["variants", i, "id"], "Product variant does not exist", "PRODUCT_VARIANT_DOES_NOT_EXIST")
                )
            if spec.get("inventoryQuantities"):
                mine.append(
                    _err(
                        ["variants", i, "inventoryQuantities"],
                        "Inventory quantities can only be "
                        "provided during create. To update inventory for existing variants, use "
                        "inventoryAdjustQuantities.",
                        "NO_INVENTORY_QUANTITIES_ON_VARIANTS_UPDATE",
                    )
                )
            if spec.get("price") is not None and Decimal(str(spec["price"])) < 0:
                mine.append(
                    _err(["variants", i, "price"], "Price must be greater than or equal to 0", "NEGATIVE_PRICE_VALUE")
                )
            combo = None
            if variant is not None and spec.get("optionValues"):
                combo = self._combo(product, spec["optionValues"], ["variants", i], mine, variant["selectedOptions"])
            errors += mine
            if not mine:
                plans.append((variant, spec, combo))
        if errors and not allowPartialUpdates:
            raise _UserErrors(errors)
        updated = []
        for variant, spec, combo in plans:
            assert variant is not None
            if combo is not None and combo != variant["selectedOptions"]:
                for so in combo:
                    self._option_value(next(o for o in product["options"] if o["name"] == so["name"]), so["value"])
                variant["selectedOptions"] = combo
                self._touch(variant, product)
            self._apply_variant(variant, spec)
            updated.append(variant)
        for m in media or ():
            self._new_media(m["originalSource"], m.get("alt"), product)
        self._prune_option_values(product)
        return {"product": product, "productVariants": updated, "userErrors": errors}

    def _m_productVariantsBulkDelete(
        self,
        obj: Any,
        info: Any,
        productId: str,  # noqa: N803
        variantsIds: list[str],
    ) -> dict[str, Any]:  # noqa: N803
        product = self._variant_owner(productId)
        if any(vid not in product["variant_ids"] for vid in variantsIds):
            raise _UserErrors(
                [
                    _err(
                        ["variantsIds"],
                        "At least one variant does not belong to the product",
                        "AT_LEAST_ONE_VARIANT_DOES_NOT_BELONG_TO_THE_PRODUCT",
                    )
                ]
            )
        if set(product["variant_ids"]) <= set(variantsIds):
            raise _UserErrors(
                [_err(["variantsIds"], "Cannot delete the last variant of a product", "CANNOT_DELETE_LAST_VARIANT")]
            )
        for vid in variantsIds:
            self._delete_variant(self.variants[vid])
        self._prune_option_values(product)
        self._touch(product)
        return {"product": product}

    def _m_productDelete(
        self,
        obj: Any,
        info: Any,
        input: dict[str, Any],  # noqa: A002
        synchronous: bool | None = None,
    ) -> dict[str, Any]:
        product = self._products.get(input["id"])
        if product is None:
            raise _UserErrors([_err(["id"], "Product does not exist")])
        self._delete_product(product)
        return {"deletedProductId": input["id"], "shop": self._shop()}

    def _m_publishablePublish(
        self,
        obj: Any,
        info: Any,
        id: str,  # noqa: A002
        input: list[dict[str, Any]],
    ) -> dict[str, Any]:  # noqa: A002
        product = self._products.get(id)
        if product is None:
            raise _UserErrors([_err(["id"], "Resource does not exist")])
        for i, pub in enumerate(input):
            if pub.get("publicationId") not in self.publications:
                raise _UserErrors([_err(["input", i, "publicationId"], "Publication does not exist")])
        for pub in input:
            self._publish(product, pub["publicationId"])
        return {"publishable": product, "shop": self._shop()}

    def _r_PublishablePublishPayload_shop(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self._shop()

    def _m_fileUpdate(self, obj: Any, info: Any, files: list[dict[str, Any]]) -> dict[str, Any]:
        errors = []
        for i, f in enumerate(files):
            if f["id"] not in self.files:
                errors.append(_err(["files", i, "id"], "File does not exist", "FILE_DOES_NOT_EXIST"))
            for ref in (f.get("referencesToAdd") or []) + (f.get("referencesToRemove") or []):
                if ref not in self._products:
                    errors.append(
                        _err(["files", i], f"Reference {ref} does not exist", "REFERENCE_TARGET_DOES_NOT_EXIST")
                    )
        if errors:
            raise _UserErrors(errors)
        out = []
        for f in files:
            media = self.files[f["id"]]
            if f.get("alt") is not None:
                media["alt"] = f["alt"]
                self._touch(media)
                for pid in media["product_ids"]:
                    self._touch(self._products[pid])
            if f.get("originalSource"):
                media["url"] = f["originalSource"]
            for ref in f.get("referencesToAdd") or ():
                self._attach_media(self._products[ref], media)
            for ref in f.get("referencesToRemove") or ():
                self._detach_media(self._products[ref], media)
            out.append(media)
        return {"files": out}

    # -- GraphQL: inventory mutations (2026-04 rules) ---------------------------------------------
    def _m_inventoryActivate(
        self,
        obj: Any,
        info: Any,
        inventoryItemId: str,
        locationId: str,  # noqa: N803
        available: int | None = None,
        onHand: int | None = None,  # noqa: N803
        stockAtLegacyLocation: bool | None = None,
    ) -> dict[str, Any]:  # noqa: N803
        if inventoryItemId not in self.inventory_items:
            raise _UserErrors([_err(["inventoryItemId"], "Inventory item does not exist")])
        if locationId not in self.locations:
            raise _UserErrors([_err(["locationId"], "Location does not exist")])
        level = self.levels.get((inventoryItemId, locationId))
        if level is not None and (available is not None or onHand is not None):
            raise _UserErrors(
                [
                    _err(
                        ["available"],
                        "Not allowed to set available quantity when the item is already active at the location.",
                    )
                ]
            )
        if level is None:
            level = self._level(inventoryItemId, locationId, create=True)
            assert level is not None
            qty = available if available is not None else onHand
            if qty:
                self._change_quantity(level, "available", int(qty))
            self._touch(self.inventory_items[inventoryItemId])
        return {"inventoryLevel": level}

    def _inventory_target(
        self, entry: dict[str, Any], path: list[Any], errors: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        if entry["inventoryItemId"] not in self.inventory_items:
            errors.append(
                _err(
                    path + ["inventoryItemId"],
                    "The specified inventory item could not be found.",
                    "INVALID_INVENTORY_ITEM",
                )
            )
            return None
        if entry["locationId"] not in self.locations:
            errors.append(_err(path + ["locationId"], "The specified location could not be found.", "INVALID_LOCATION"))
            return None
        level = self.levels.get((entry["inventoryItemId"], entry["locationId"]))
        if level is None:
            errors.append(
                _err(
                    path + ["locationId"],
                    "The specified inventory item is not stocked at the location.",
                    "ITEM_NOT_STOCKED_AT_LOCATION",
                )
            )
        return level

    def _check_reason(self, inp: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        if inp["reason"] not in INVENTORY_REASONS:
            errors.append(_err(["input", "reason"], "The specified reason is invalid.", "INVALID_REASON"))
        uri = inp.get("referenceDocumentUri")
        if uri is not None and not re.match(r"^[a-z][a-z0-9+.-]*:", uri, re.I):
            errors.append(
                _err(
                    ["input", "referenceDocumentUri"],
                    "The reference document URI is invalid.",
                    "INVALID_REFERENCE_DOCUMENT",
                )
            )

    def _adjustment_group(self, inp: dict[str, Any], changes: list[dict[str, Any]]) -> dict[str, Any]:
        group = {
            "__typename": "InventoryAdjustmentGroup",
            "id": self._gid("InventoryAdjustmentGroup"),
            "createdAt": self.now(),
            "reason": inp["reason"],
            "referenceDocumentUri": inp.get("referenceDocumentUri"),
            "changes": changes,
        }
        self.adjustment_groups.append(group)
        return group

    def _m_inventorySetQuantities(self, obj: Any, info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        errors: list[dict[str, Any]] = []
        name = input["name"]
        if name not in ("available", "on_hand"):
            errors.append(
                _err(["input", "name"], "The quantity name must be either 'available' or 'on_hand'.", "INVALID_NAME")
            )
        self._check_reason(input, errors)
        seen: set[tuple[str, str]] = set()
        plans = []
        for i, q in enumerate(input["quantities"]):
            path = ["input", "quantities", i]
            if "changeFromQuantity" not in q:
                # From 2026-04 the field must be present (null opts out of the compare-and-swap):
                # https://shopify.dev/changelog/compare-and-swap-redesign-for-inventory-set-quantities
                errors.append(
                    _err(
                        path + ["changeFromQuantity"],
                        "The changeFromQuantity argument must be "
                        "specified. Pass null to skip the compare-and-swap check.",
                        "COMPARE_QUANTITY_REQUIRED",
                    )
                )
                continue
            pair = (q["inventoryItemId"], q["locationId"])
            if pair in seen:
                errors.append(
                    _err(
                        path,
                        "The same inventory item and location pair appears more than once.",
                        "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                    )
                )
            seen.add(pair)
            if q["quantity"] < 0:
                errors.append(_err(path + ["quantity"], "The quantity can't be negative.", "INVALID_QUANTITY_NEGATIVE"))
            elif q["quantity"] > MAX_QUANTITY:
                errors.append(_err(path + ["quantity"], "The quantity is too high.", "INVALID_QUANTITY_TOO_HIGH"))
            level = self._inventory_target(q, path, errors)
            if level is None or name not in ("available", "on_hand"):
                continue
            current = self._quantity(level, name)
            if q["changeFromQuantity"] is not None and q["changeFromQuantity"] != current:
                errors.append(
                    _err(
                        path + ["changeFromQuantity"],
                        "The specified compare quantity does not match the current quantity.",
                        "CHANGE_FROM_QUANTITY_STALE",
                    )
                )
                continue
            plans.append((level, q["quantity"] - current))
        if errors:
            raise _UserErrors(errors)
        changes: list[dict[str, Any]] = []
        for level, delta in plans:
            changes += self._change_quantity(level, name, delta)
        return {"inventoryAdjustmentGroup": self._adjustment_group(input, changes)}

    def _m_inventoryAdjustQuantities(self, obj: Any, info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        errors: list[dict[str, Any]] = []
        name = input["name"]
        if name not in ADJUSTABLE_QUANTITIES:
            errors.append(
                _err(["input", "name"], f"The quantity name '{name}' can't be adjusted.", "INVALID_QUANTITY_NAME")
            )
        self._check_reason(input, errors)
        plans = []
        for i, c in enumerate(input["changes"]):
            path = ["input", "changes", i]
            level = self._inventory_target(c, path, errors)
            if level is None or name not in ADJUSTABLE_QUANTITIES:
                continue
            current = self._quantity(level, name)
            if c.get("changeFromQuantity") is not None and c["changeFromQuantity"] != current:
                errors.append(
                    _err(
                        path + ["changeFromQuantity"],
                        "The specified compare quantity does not match the current quantity.",
                        "CHANGE_FROM_QUANTITY_STALE",
                    )
                )
                continue
            if abs(current + c["delta"]) > MAX_QUANTITY:
                errors.append(_err(path + ["delta"], "The quantity is out of range.", "INVALID_QUANTITY_TOO_HIGH"))
                continue
            plans.append((level, c["delta"]))
        if errors:
            raise _UserErrors(errors)
        changes: list[dict[str, Any]] = []
        for level, delta in plans:
            changes += self._change_quantity(level, name, delta)
        return {"inventoryAdjustmentGroup": self._adjustment_group(input, changes)}

    # -- orders internals ------------------------------------------------------------------------
    def _claim_location(self, item_id: str) -> str | None:
        primary = self.primary_location_id
        if primary and (item_id, primary) in self.levels:
            return primary
        return next((loc for (iid, loc) in self.levels if iid == item_id), primary)

    def _create_order(self, order_in: dict[str, Any], behaviour: str = "BYPASS") -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        lines_in = order_in.get("lineItems") or []
        if not lines_in:
            errors.append(_err(["order", "lineItems"], "Line items must have at least one line item", "INVALID"))
        claims: list[tuple[dict[str, Any], str | None, int]] = []
        planned: dict[tuple[str, str | None], int] = {}
        for i, li in enumerate(lines_in):
            path = ["order", "lineItems", i]
            if li["quantity"] <= 0:
                errors.append(_err(path + ["quantity"], "Quantity must be greater than 0", "INVALID"))
            variant = self.variants.get(li.get("variantId") or "")
            if li.get("variantId") and variant is None:
                errors.append(_err(path + ["variantId"], "Variant does not exist", "INVALID"))
                continue
            if variant is None and not (li.get("title") and li.get("priceSet")):
                errors.append(_err(path, "A custom line item needs a title and a priceSet", "INVALID"))
                continue
            if variant is None or behaviour == "BYPASS":
                continue
            item = self.inventory_items[variant["item_id"]]
            if not item["tracked"]:
                continue
            loc = self._claim_location(item["id"])
            key = (item["id"], loc)
            planned[key] = planned.get(key, 0) + li["quantity"]
            level = self.levels.get(key) if loc else None
            have = level["q"]["available"] if level else 0
            if behaviour == "DECREMENT_OBEYING_POLICY" and variant["inventoryPolicy"] == "DENY" and have < planned[key]:
                errors.append(
                    _err(
                        path,
                        f"Unable to reserve inventory for {_variant_title(variant)}: "
                        f"{have} available, {planned[key]} requested",
                        "INVENTORY_CLAIM_FAILED",
                    )
                )
            claims.append((variant, loc, li["quantity"]))
        c = order_in.get("customer") or {}
        if c.get("toAssociate") and c.get("toUpsert"):
            errors.append(
                _err(
                    ["order", "customer"],
                    "Specify either toAssociate or toUpsert, not both",
                    "REDUNDANT_CUSTOMER_FIELDS",
                )
            )
        if errors:
            raise _UserErrors(errors)

        now = self.now()
        self._order_number += 1
        gid = self._gid("Order")
        currency = order_in.get("currency") or self.currency
        cust = c.get("toUpsert") or c.get("toAssociate")
        customer = None
        if cust:
            customer = {
                "__typename": "Customer",
                "id": cust.get("id") or self._gid("Customer"),
                "email": cust.get("email") or order_in.get("email"),
                "firstName": cust.get("firstName"),
                "lastName": cust.get("lastName"),
                "phone": cust.get("phone"),
            }
        order = {
            "__typename": "Order",
            "id": gid,
            "number": self._order_number,
            "name": order_in.get("name") or f"#{1000 + self._order_number}",
            "createdAt": now,
            "updatedAt": now,
            "processedAt": _time_or(order_in.get("processedAt"), now),
            "cancelledAt": None,
            "cancelReason": None,
            "closed": False,
            "closedAt": None,
            "test": bool(order_in.get("test")),
            "email": order_in.get("email"),
            "phone": order_in.get("phone"),
            "note": order_in.get("note"),
            "tags": _tags(order_in.get("tags") or []),
            "customAttributes": [
                {"key": a["key"], "value": a["value"]} for a in order_in.get("customAttributes") or ()
            ],
            "sourceName": order_in.get("sourceName") or "sandbox",
            "sourceIdentifier": order_in.get("sourceIdentifier"),
            "poNumber": order_in.get("poNumber"),
            "customerAcceptsMarketing": bool(order_in.get("buyerAcceptsMarketing")),
            "customer": customer,
            "shippingAddress": _address(order_in.get("shippingAddress")),
            "billingAddress": _address(order_in.get("billingAddress")),
            "metafields": {},
            "currency": currency,
            "line_ids": [],
            "fo_ids": [],
            "fulfillment_ids": [],
            "shipping": sum(
                (Decimal(str(s["priceSet"]["shopMoney"]["amount"])) for s in order_in.get("shippingLines") or ()),
                Decimal("0"),
            ),
            "claimed": behaviour != "BYPASS",
        }
        self._orders[gid] = order
        for mf in order_in.get("metafields") or ():
            self._set_metafield(order, mf.get("namespace"), mf["key"], mf.get("value") or "", mf.get("type"))
        by_location: dict[str | None, list[str]] = {}
        claim_iter = iter(claims)
        for li in lines_in:
            variant = self.variants.get(li.get("variantId") or "")
            product = self._products.get(variant["product_id"]) if variant else None
            price = li.get("priceSet", {}).get("shopMoney", {}).get("amount") if li.get("priceSet") else None
            line = {
                "__typename": "LineItem",
                "id": self._gid("LineItem"),
                "order_id": gid,
                "variant_id": variant["id"] if variant else None,
                "product_id": product["id"] if product else None,
                "sku": li.get("sku") or (self._sku(variant) if variant else None),
                "title": li.get("title") or (product["title"] if product else ""),
                "variantTitle": li.get("variantTitle") or (_variant_title(variant) if variant else None),
                "vendor": li.get("vendor") or (product["vendor"] if product else None),
                "quantity": li["quantity"],
                "price": money(price if price is not None else (variant["price"] if variant else 0)),
                "requiresShipping": li.get("requiresShipping", True) is not False,
                "taxable": li.get("taxable", True) is not False,
                "customAttributes": [{"key": p["name"], "value": p["value"]} for p in li.get("properties") or ()],
                "fulfilled": 0,
                "location_id": None,
            }
            if variant is not None and order["claimed"] and self.inventory_items[variant["item_id"]]["tracked"]:
                _, loc, qty = next(claim_iter)
                line["location_id"] = loc
                if loc:
                    level = self._level(variant["item_id"], loc, create=True)
                    assert level is not None
                    self._change_quantity(level, "available", -qty)
                    self._change_quantity(level, "committed", qty)
            else:
                line["location_id"] = self._claim_location(variant["item_id"]) if variant else self.primary_location_id
            self.line_items[line["id"]] = line
            order["line_ids"].append(line["id"])
            by_location.setdefault(line["location_id"], []).append(line["id"])
        for loc, line_ids in by_location.items():
            fo = {
                "__typename": "FulfillmentOrder",
                "id": self._gid("FulfillmentOrder"),
                "order_id": gid,
                "location_id": loc,
                "status": "OPEN",
                "createdAt": now,
                "updatedAt": now,
                "line_ids": [],
            }
            for lid in line_ids:
                fol = {
                    "__typename": "FulfillmentOrderLineItem",
                    "id": self._gid("FulfillmentOrderLineItem"),
                    "fo_id": fo["id"],
                    "line_item_id": lid,
                    "totalQuantity": self.line_items[lid]["quantity"],
                    "remainingQuantity": self.line_items[lid]["quantity"],
                }
                self.fulfillment_order_lines[fol["id"]] = fol
                fo["line_ids"].append(fol["id"])
            self.fulfillment_orders[fo["id"]] = fo
            order["fo_ids"].append(fo["id"])
        total = self._order_total(order)
        paid = sum(
            (
                Decimal(str(t["amountSet"]["shopMoney"]["amount"]))
                for t in order_in.get("transactions") or ()
                if t.get("kind") in (None, "SALE", "CAPTURE") and t.get("status") in (None, "SUCCESS")
            ),
            Decimal("0"),
        )
        order["financial"] = order_in.get("financialStatus") or (
            "PAID" if paid >= total and paid > 0 else "PARTIALLY_PAID" if paid > 0 else "PENDING"
        )
        return order

    def _order_subtotal(self, order: dict[str, Any]) -> Decimal:
        return sum(
            (
                Decimal(self.line_items[lid]["price"]) * self._current_qty(self.line_items[lid])
                for lid in order["line_ids"]
            ),
            Decimal("0"),
        )

    def _order_total(self, order: dict[str, Any]) -> Decimal:
        return self._order_subtotal(order) + order["shipping"]

    def _current_qty(self, line: dict[str, Any]) -> int:
        order = self._orders[line["order_id"]]
        return 0 if order["cancelledAt"] else line["quantity"]

    def _money_bag(self, amount: Decimal, order: dict[str, Any]) -> dict[str, Any]:
        m = {"amount": money(amount), "currencyCode": order["currency"]}
        return {"shopMoney": m, "presentmentMoney": dict(m)}

    def _fulfillment_status(self, order: dict[str, Any]) -> str:
        lines = [self.line_items[lid] for lid in order["line_ids"]]
        done = sum(line["fulfilled"] for line in lines)
        if done and done >= sum(line["quantity"] for line in lines):
            return "FULFILLED"
        return "PARTIALLY_FULFILLED" if done else "UNFULFILLED"

    def _cancel(self, order: dict[str, Any], reason: str, restock: bool, staff_note: str | None) -> None:
        now = self.now()
        for lid in order["line_ids"]:
            line = self.line_items[lid]
            open_qty = line["quantity"] - line["fulfilled"]
            variant = self.variants.get(line["variant_id"] or "")
            if not open_qty or variant is None or not line["location_id"]:
                continue
            level = self.levels.get((variant["item_id"], line["location_id"]))
            if level is None:
                continue
            if order["claimed"]:
                self._change_quantity(level, "committed", -open_qty)
                if restock:
                    self._change_quantity(level, "available", open_qty)
            elif restock:
                self._change_quantity(level, "available", open_qty)
        for fid in order["fo_ids"]:
            fo = self.fulfillment_orders[fid]
            if fo["status"] in ("OPEN", "IN_PROGRESS", "SCHEDULED", "ON_HOLD"):
                fo["status"] = "CLOSED" if fo["status"] == "IN_PROGRESS" else "CANCELLED"
                fo["updatedAt"] = now
        order.update(cancelledAt=now, cancelReason=reason, closed=True, closedAt=now, updatedAt=now)
        if order["financial"] == "PAID":
            order["financial"] = "REFUNDED"
        elif order["financial"] in ("PENDING", "AUTHORIZED"):
            order["financial"] = "VOIDED"
        if staff_note:
            order["note"] = ((order["note"] or "") + "\n" + staff_note).strip()

    def _fulfill(
        self, groups: list[dict[str, Any]], tracking: dict[str, Any] | None, path: list[Any]
    ) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        plan: list[tuple[dict[str, Any], int]] = []
        orders = set()
        for i, g in enumerate(groups):
            fo = self.fulfillment_orders.get(g["fulfillmentOrderId"])
            if fo is None:
                errors.append(_err(path + [i, "fulfillmentOrderId"], "Fulfillment order does not exist."))
                continue
            orders.add(fo["order_id"])
            if fo["status"] not in ("OPEN", "IN_PROGRESS"):
                errors.append(
                    _err(
                        path + [i, "fulfillmentOrderId"],
                        f"Fulfillment order {fo['id']} has an unfulfillable status= {fo['status'].lower()}.",
                    )
                )
                continue
            wanted = g.get("fulfillmentOrderLineItems")
            if wanted is None:
                wanted = [
                    {"id": lid, "quantity": self.fulfillment_order_lines[lid]["remainingQuantity"]}
                    for lid in fo["line_ids"]
                    if self.fulfillment_order_lines[lid]["remainingQuantity"]
                ]
            for j, w in enumerate(wanted):
                fol = self.fulfillment_order_lines.get(w["id"])
                if fol is None or fol["fo_id"] != fo["id"]:
                    errors.append(
                        _err(
                            path + [i, "fulfillmentOrderLineItems", j, "id"],
                            "Fulfillment order line item does not exist.",
                        )
                    )
                elif not 0 < w["quantity"] <= fol["remainingQuantity"]:
                    errors.append(
                        _err(
                            path + [i, "fulfillmentOrderLineItems", j, "quantity"],
                            f"Invalid fulfillment order line item quantity requested: {w['quantity']} "
                            f"(remaining {fol['remainingQuantity']}).",
                        )
                    )
                else:
                    plan.append((fol, w["quantity"]))
        if len(orders) > 1:
            errors.append(_err(path, "All fulfillment orders must belong to the same order."))
        if not plan and not errors:
            errors.append(_err(path, "There is nothing left to fulfill."))
        if errors:
            raise _UserErrors(errors)
        now = self.now()
        order = self._orders[next(iter(orders))]
        fulfillment = {
            "__typename": "Fulfillment",
            "id": self._gid("Fulfillment"),
            "order_id": order["id"],
            "name": f"{order['name']}-F{len(order['fulfillment_ids']) + 1}",
            "status": "SUCCESS",
            "createdAt": now,
            "updatedAt": now,
            "tracking": _tracking(tracking),
            "lines": [],
            "fo_ids": [],
            "location_id": None,
            "requiresShipping": True,
        }
        for fol, qty in plan:
            fol["remainingQuantity"] -= qty
            fo = self.fulfillment_orders[fol["fo_id"]]
            line = self.line_items[fol["line_item_id"]]
            line["fulfilled"] += qty
            fulfillment["location_id"] = fo["location_id"]
            if fo["id"] not in fulfillment["fo_ids"]:
                fulfillment["fo_ids"].append(fo["id"])
            fulfillment["lines"].append(
                {
                    "__typename": "FulfillmentLineItem",
                    "id": self._gid("FulfillmentLineItem"),
                    "line_item_id": line["id"],
                    "quantity": qty,
                }
            )
            variant = self.variants.get(line["variant_id"] or "")
            level = (
                self.levels.get((variant["item_id"], line["location_id"])) if variant and line["location_id"] else None
            )
            if level is not None and order["claimed"]:
                self._change_quantity(level, "committed", -qty)
        for fid in fulfillment["fo_ids"]:
            fo = self.fulfillment_orders[fid]
            remaining = sum(self.fulfillment_order_lines[lid]["remainingQuantity"] for lid in fo["line_ids"])
            fo["status"] = "CLOSED" if remaining == 0 else "IN_PROGRESS"
            fo["updatedAt"] = now
        self.fulfillments[fulfillment["id"]] = fulfillment
        order["fulfillment_ids"].append(fulfillment["id"])
        order["updatedAt"] = now
        return fulfillment

    # -- Python API: orders --------------------------------------------------------------------
    @_locked
    def place_order(
        self,
        lines: list[tuple[str, int]],
        *,
        email: str | None = None,
        tags: Iterable[str] = (),
        note: str | None = None,
        shipping_address: dict[str, Any] | None = None,
        custom_attributes: dict[str, str] | None = None,
        financial_status: str = "PAID",
        test: bool = False,
        accepts_marketing: bool = False,
    ) -> dict[str, Any]:
        """Place an order as a shopper's checkout does: stock is claimed (refused when short)."""
        order_in = {
            "lineItems": [{"variantId": vid, "quantity": qty} for vid, qty in lines],
            "email": email,
            "tags": list(tags),
            "note": note,
            "shippingAddress": shipping_address,
            "customAttributes": [{"key": k, "value": v} for k, v in (custom_attributes or {}).items()],
            "financialStatus": financial_status,
            "test": test,
            "buyerAcceptsMarketing": accepts_marketing,
            "sourceName": "web",
        }
        try:
            order = self._create_order(order_in, "DECREMENT_OBEYING_POLICY")
        except _UserErrors as exc:
            raise ValueError("; ".join(e["message"] for e in exc.errors)) from exc
        return self.order(order["id"])  # type: ignore[return-value]

    @_locked
    def cancel_order(self, order_id: str, *, restock: bool = True, reason: str = "CUSTOMER") -> dict[str, Any]:
        order = self._orders[order_id]
        if order["cancelledAt"] is None:
            self._cancel(order, reason, restock, None)
        return self.order(order_id)  # type: ignore[return-value]

    @_locked
    def update_order(self, order_id: str, **fields: Any) -> dict[str, Any]:
        """Edit order attributes as the merchant would: email, phone, note, tags, shipping_address,
        custom_attributes ({key: value})."""
        order = self._orders[order_id]
        if "shipping_address" in fields:
            order["shippingAddress"] = _address(fields.pop("shipping_address"))
        if "custom_attributes" in fields:
            order["customAttributes"] = [{"key": k, "value": v} for k, v in fields.pop("custom_attributes").items()]
        if "tags" in fields:
            order["tags"] = _tags(fields.pop("tags"))
        for key in ("email", "phone", "note"):
            if key in fields:
                order[key] = fields.pop(key)
        if fields:
            raise TypeError(f"unknown order fields: {sorted(fields)}")
        self._touch(order)
        return self.order(order_id)  # type: ignore[return-value]

    @_locked
    def fulfill_order(
        self, order_id: str, lines: list[tuple[str, int]] | None = None, tracking: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Fulfil an order (all of it, or `lines` as (line item or variant id, quantity)) with tracking
        ``{"number", "company", "url"}``; returns the fulfillment snapshot."""
        order = self._orders[order_id]
        groups: dict[str, list[dict[str, Any]]] = {}
        if lines is None:
            for fid in order["fo_ids"]:
                if self.fulfillment_orders[fid]["status"] in ("OPEN", "IN_PROGRESS"):
                    groups[fid] = None  # type: ignore[assignment]
        else:
            for ref, qty in lines:
                fol = next(
                    f
                    for f in self.fulfillment_order_lines.values()
                    if self.fulfillment_orders[f["fo_id"]]["order_id"] == order_id
                    and ref in (f["line_item_id"], self.line_items[f["line_item_id"]]["variant_id"])
                )
                groups.setdefault(fol["fo_id"], []).append({"id": fol["id"], "quantity": qty})
        try:
            fulfillment = self._fulfill(
                [{"fulfillmentOrderId": k, "fulfillmentOrderLineItems": v} for k, v in groups.items()],
                tracking,
                ["fulfillment"],
            )
        except _UserErrors as exc:
            raise ValueError("; ".join(e["message"] for e in exc.errors)) from exc
        return self._fulfillment_snapshot(fulfillment)

    @_locked
    def update_tracking(self, fulfillment_id: str, **tracking: Any) -> dict[str, Any]:
        fulfillment = self.fulfillments[fulfillment_id]
        fulfillment["tracking"] = _tracking(tracking)
        self._touch(fulfillment, self._orders[fulfillment["order_id"]])
        return self._fulfillment_snapshot(fulfillment)

    def _fulfillment_snapshot(self, f: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f["id"],
            "orderId": f["order_id"],
            "status": f["status"],
            "name": f["name"],
            "createdAt": iso(f["createdAt"]),
            "updatedAt": iso(f["updatedAt"]),
            "trackingInfo": [dict(t) for t in f["tracking"]],
            "lines": [{"lineItemId": fl["line_item_id"], "quantity": fl["quantity"]} for fl in f["lines"]],
        }

    @_locked
    def order(self, order_id: str) -> dict[str, Any] | None:
        """A plain snapshot of one order."""
        self._run_jobs()
        o = self._orders.get(order_id)
        if o is None:
            return None
        return {
            "id": o["id"],
            "name": o["name"],
            "createdAt": iso(o["createdAt"]),
            "updatedAt": iso(o["updatedAt"]),
            "cancelledAt": iso(o["cancelledAt"]),
            "cancelReason": o["cancelReason"],
            "closed": o["closed"],
            "email": o["email"],
            "phone": o["phone"],
            "note": o["note"],
            "tags": list(o["tags"]),
            "customAttributes": [dict(a) for a in o["customAttributes"]],
            "test": o["test"],
            "sourceName": o["sourceName"],
            "sourceIdentifier": o["sourceIdentifier"],
            "customerAcceptsMarketing": o["customerAcceptsMarketing"],
            "shippingAddress": dict(o["shippingAddress"]) if o["shippingAddress"] else None,
            "displayFinancialStatus": o["financial"],
            "displayFulfillmentStatus": self._fulfillment_status(o),
            "metafields": {f"{ns}.{k}": mf["value"] for (ns, k), mf in o["metafields"].items()},
            "lineItems": [
                {
                    "id": li["id"],
                    "variantId": li["variant_id"],
                    "sku": li["sku"],
                    "title": li["title"],
                    "quantity": li["quantity"],
                    "currentQuantity": self._current_qty(li),
                    "fulfilled": li["fulfilled"],
                    "price": li["price"],
                }
                for li in (self.line_items[lid] for lid in o["line_ids"])
            ],
            "fulfillments": [self._fulfillment_snapshot(self.fulfillments[f]) for f in o["fulfillment_ids"]],
        }

    @_locked
    def orders(self) -> list[dict[str, Any]]:
        return [s for s in (self.order(oid) for oid in list(self._orders)) if s is not None]

    # -- GraphQL: orders ---------------------------------------------------------------------------
    def _order_fields(self) -> SearchFields:
        def status(o: dict[str, Any]) -> list[str]:
            if o["cancelledAt"]:
                return ["cancelled", "closed" if o["closed"] else "not_closed", "any"]
            return ["closed", "any"] if o["closed"] else ["open", "not_closed", "any"]

        fulfillment = {
            "FULFILLED": ["shipped", "fulfilled"],
            "PARTIALLY_FULFILLED": ["partial", "unshipped"],
            "UNFULFILLED": ["unshipped", "unfulfilled"],
        }
        return {
            "updated_at": ("date", lambda o: o["updatedAt"]),
            "created_at": ("date", lambda o: o["createdAt"]),
            "processed_at": ("date", lambda o: o["processedAt"]),
            "status": ("word", status),
            "financial_status": ("word", lambda o: o["financial"].lower()),
            "fulfillment_status": ("word", lambda o: fulfillment[self._fulfillment_status(o)]),
            "tag": ("word", lambda o: o["tags"]),
            "name": ("word", lambda o: [o["name"], o["name"].lstrip("#")]),
            "source_identifier": ("word", lambda o: o["sourceIdentifier"]),
            "source_name": ("word", lambda o: o["sourceName"]),
            "email": ("word", lambda o: o["email"]),
            "sku": ("word", lambda o: [self.line_items[lid]["sku"] for lid in o["line_ids"]]),
            "test": ("bool", lambda o: str(o["test"]).lower()),
            "id": ("id", lambda o: gid_num(o["id"])),
        }

    def _q_orders(self, obj: Any, info: Any, **args: Any) -> dict[str, Any]:
        items = self._search(info, self._orders.values(), args.get("query"), self._order_fields(), ("name", "email"))
        return self._page(info, items, args, self._sorter(args.get("sortKey")))

    def _q_order(self, obj: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self._orders.get(id)

    def _q_orderByIdentifier(self, obj: Any, info: Any, identifier: dict[str, Any]) -> dict[str, Any] | None:
        if identifier.get("id"):
            return self._orders.get(identifier["id"])
        if identifier.get("customId"):
            return self._by_custom_id(self._orders.values(), identifier["customId"])
        return None

    def _q_fulfillment(self, obj: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self.fulfillments.get(id)

    def _q_fulfillmentOrder(self, obj: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self.fulfillment_orders.get(id)

    def _r_Order_currencyCode(self, obj: dict[str, Any], info: Any) -> str:
        return obj["currency"]

    _r_Order_presentmentCurrencyCode = _r_Order_currencyCode

    def _r_Order_confirmed(self, obj: dict[str, Any], info: Any) -> bool:
        return True

    def _r_Order_displayFinancialStatus(self, obj: dict[str, Any], info: Any) -> str:
        return obj["financial"]

    def _r_Order_displayFulfillmentStatus(self, obj: dict[str, Any], info: Any) -> str:
        return self._fulfillment_status(obj)

    def _r_Order_fullyPaid(self, obj: dict[str, Any], info: Any) -> bool:
        return obj["financial"] == "PAID"

    def _r_Order_unpaid(self, obj: dict[str, Any], info: Any) -> bool:
        return obj["financial"] in ("PENDING", "AUTHORIZED", "EXPIRED")

    def _r_Order_fulfillable(self, obj: dict[str, Any], info: Any) -> bool:
        return not obj["cancelledAt"] and self._fulfillment_status(obj) != "FULFILLED"

    def _r_Order_subtotalLineItemsQuantity(self, obj: dict[str, Any], info: Any) -> int:
        return sum(self.line_items[lid]["quantity"] for lid in obj["line_ids"])

    def _r_Order_totalPriceSet(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self._money_bag(self._order_total(obj), obj)

    _r_Order_currentTotalPriceSet = _r_Order_totalPriceSet

    def _r_Order_subtotalPriceSet(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self._money_bag(self._order_subtotal(obj), obj)

    def _r_Order_lineItems(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        return self._page(info, [self.line_items[lid] for lid in obj["line_ids"]], args)

    def _r_Order_fulfillmentOrders(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        items = [self.fulfillment_orders[f] for f in obj["fo_ids"]]
        if args.get("displayable"):
            items = [f for f in items if f["status"] not in ("CANCELLED", "INCOMPLETE")]
        return self._page(info, items, args)

    def _r_Order_fulfillments(
        self, obj: dict[str, Any], info: Any, first: int | None = None, query: str | None = None
    ) -> list[dict[str, Any]]:
        items = [self.fulfillments[f] for f in obj["fulfillment_ids"]]
        return items[:first] if first is not None else items

    def _r_LineItem_currentQuantity(self, obj: dict[str, Any], info: Any) -> int:
        return self._current_qty(obj)

    def _r_LineItem_unfulfilledQuantity(self, obj: dict[str, Any], info: Any) -> int:
        return max(0, self._current_qty(obj) - obj["fulfilled"])

    def _r_LineItem_refundableQuantity(self, obj: dict[str, Any], info: Any) -> int:
        return self._current_qty(obj)

    def _r_LineItem_nonFulfillableQuantity(self, obj: dict[str, Any], info: Any) -> int:
        return obj["quantity"] - self._current_qty(obj)

    def _r_LineItem_name(self, obj: dict[str, Any], info: Any) -> str:
        vt = obj["variantTitle"]
        return f"{obj['title']} - {vt}" if vt and vt != "Default Title" else obj["title"]

    def _r_LineItem_variant(self, obj: dict[str, Any], info: Any) -> dict[str, Any] | None:
        return self.variants.get(obj["variant_id"] or "")

    def _r_LineItem_product(self, obj: dict[str, Any], info: Any) -> dict[str, Any] | None:
        return self._products.get(obj["product_id"] or "")

    def _r_LineItem_originalUnitPriceSet(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self._money_bag(Decimal(obj["price"]), self._orders[obj["order_id"]])

    _r_LineItem_discountedUnitPriceSet = _r_LineItem_originalUnitPriceSet

    def _r_LineItem_originalTotalSet(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self._money_bag(Decimal(obj["price"]) * obj["quantity"], self._orders[obj["order_id"]])

    def _r_Customer_displayName(self, obj: dict[str, Any], info: Any) -> str:
        return " ".join(p for p in (obj.get("firstName"), obj.get("lastName")) if p) or obj.get("email") or ""

    def _r_Customer_defaultEmailAddress(self, obj: dict[str, Any], info: Any) -> dict[str, Any] | None:
        return {"emailAddress": obj["email"]} if obj.get("email") else None

    def _r_FulfillmentOrder_order(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self._orders[obj["order_id"]]

    def _r_FulfillmentOrder_orderId(self, obj: dict[str, Any], info: Any) -> str:
        return obj["order_id"]

    def _r_FulfillmentOrder_orderName(self, obj: dict[str, Any], info: Any) -> str:
        return self._orders[obj["order_id"]]["name"]

    def _r_FulfillmentOrder_assignedLocation(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        loc = self.locations.get(obj["location_id"] or "")
        return {"location": loc, "name": loc["name"] if loc else ""}

    def _r_FulfillmentOrder_supportedActions(self, obj: dict[str, Any], info: Any) -> list[dict[str, Any]]:
        if obj["status"] in ("OPEN", "IN_PROGRESS"):
            return [{"action": a} for a in ("CREATE_FULFILLMENT", "REPORT_PROGRESS", "MOVE", "HOLD", "SPLIT")]
        return []

    def _r_FulfillmentOrder_lineItems(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        return self._page(info, [self.fulfillment_order_lines[lid] for lid in obj["line_ids"]], args)

    def _r_FulfillmentOrder_fulfillments(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        order = self._orders[obj["order_id"]]
        items = [self.fulfillments[f] for f in order["fulfillment_ids"] if obj["id"] in self.fulfillments[f]["fo_ids"]]
        return self._page(info, items, args)

    def _fo_line(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.line_items[obj["line_item_id"]]

    def _r_FulfillmentOrderLineItem_lineItem(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self._fo_line(obj)

    def _r_FulfillmentOrderLineItem_sku(self, obj: dict[str, Any], info: Any) -> str | None:
        return self._fo_line(obj)["sku"]

    def _r_FulfillmentOrderLineItem_variant(self, obj: dict[str, Any], info: Any) -> dict[str, Any] | None:
        return self.variants.get(self._fo_line(obj)["variant_id"] or "")

    def _r_FulfillmentOrderLineItem_inventoryItemId(self, obj: dict[str, Any], info: Any) -> str | None:
        variant = self.variants.get(self._fo_line(obj)["variant_id"] or "")
        return variant["item_id"] if variant else None

    def _r_FulfillmentOrderLineItem_productTitle(self, obj: dict[str, Any], info: Any) -> str:
        return self._fo_line(obj)["title"]

    def _r_FulfillmentOrderLineItem_variantTitle(self, obj: dict[str, Any], info: Any) -> str | None:
        return self._fo_line(obj)["variantTitle"]

    def _r_FulfillmentOrderLineItem_vendor(self, obj: dict[str, Any], info: Any) -> str | None:
        return self._fo_line(obj)["vendor"]

    def _r_FulfillmentOrderLineItem_requiresShipping(self, obj: dict[str, Any], info: Any) -> bool:
        return self._fo_line(obj)["requiresShipping"]

    def _r_Fulfillment_trackingInfo(self, obj: dict[str, Any], info: Any, first: int | None = None) -> list[Any]:
        return obj["tracking"][:first] if first is not None else obj["tracking"]

    def _r_Fulfillment_fulfillmentLineItems(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        return self._page(info, obj["lines"], args)

    def _r_Fulfillment_fulfillmentOrders(self, obj: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        return self._page(info, [self.fulfillment_orders[f] for f in obj["fo_ids"]], args)

    def _r_Fulfillment_order(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self._orders[obj["order_id"]]

    def _r_Fulfillment_location(self, obj: dict[str, Any], info: Any) -> dict[str, Any] | None:
        return self.locations.get(obj["location_id"] or "")

    def _r_Fulfillment_totalQuantity(self, obj: dict[str, Any], info: Any) -> int:
        return sum(fl["quantity"] for fl in obj["lines"])

    def _r_FulfillmentLineItem_lineItem(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        return self.line_items[obj["line_item_id"]]

    def _r_FulfillmentLineItem_discountedTotalSet(self, obj: dict[str, Any], info: Any) -> dict[str, Any]:
        line = self.line_items[obj["line_item_id"]]
        return self._money_bag(Decimal(line["price"]) * obj["quantity"], self._orders[line["order_id"]])

    _r_FulfillmentLineItem_originalTotalSet = _r_FulfillmentLineItem_discountedTotalSet

    def _r_Metafield_compareDigest(self, obj: dict[str, Any], info: Any) -> str:
        return _digest(obj)

    # -- GraphQL: order mutations ----------------------------------------------------------------
    def _m_orderCreate(
        self, obj: Any, info: Any, order: dict[str, Any], options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        # inventoryBehaviour defaults to BYPASS: no stock is claimed (SDL OrderCreateOptionsInput).
        behaviour = (options or {}).get("inventoryBehaviour") or "BYPASS"
        return {"order": self._create_order(order, behaviour)}

    def _m_orderUpdate(self, obj: Any, info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        order = self._orders.get(input["id"])
        if order is None:
            raise _UserErrors([_err(["id"], "Order does not exist")])
        # email, phone, note, tags, customAttributes and shippingAddress overwrite; metafields merge.
        for key in ("email", "phone", "note", "poNumber"):
            if key in input:
                order[key] = input[key]
        if "tags" in input:
            order["tags"] = _tags(input["tags"] or [])
        if "customAttributes" in input:
            attributes = input["customAttributes"] or ()
            order["customAttributes"] = [{"key": a["key"], "value": a["value"]} for a in attributes]
        if "shippingAddress" in input:
            order["shippingAddress"] = _address(input["shippingAddress"])
        for mf in input.get("metafields") or ():
            self._set_metafield(order, mf.get("namespace"), mf["key"], mf.get("value") or "", mf.get("type"))
        self._touch(order)
        return {"order": order}

    def _m_orderCancel(
        self,
        obj: Any,
        info: Any,
        orderId: str,
        restock: bool,
        reason: str,  # noqa: N803
        refundMethod: dict[str, Any] | None = None,
        notifyCustomer: bool | None = None,  # noqa: N803
        staffNote: str | None = None,
    ) -> dict[str, Any]:  # noqa: N803
        order = self._orders.get(orderId)
        if order is None:
            raise _UserErrors([_err(["orderId"], "Order does not exist", "NOT_FOUND")])
        if order["cancelledAt"] is not None or any(
            j.get("order_id") == orderId and not j["done"] for j in self.jobs.values()
        ):
            raise _UserErrors([_err(["orderId"], "Cannot cancel an order that is already cancelled.", "INVALID")])
        if self._fulfillment_status(order) == "FULFILLED":
            raise _UserErrors([_err(["orderId"], "Cannot cancel a fulfilled order.", "INVALID")])
        job_id = self._gid("Job")
        # Cancellation is asynchronous: the job finishes on a later request (see _run_jobs).
        self.jobs[job_id] = {
            "__typename": "Job",
            "id": job_id,
            "done": False,
            "order_id": orderId,
            "run": lambda: self._cancel(order, reason, restock, staffNote),
        }
        return {"job": self.jobs[job_id]}

    def _m_fulfillmentCreate(
        self, obj: Any, info: Any, fulfillment: dict[str, Any], message: str | None = None
    ) -> dict[str, Any]:
        groups = fulfillment["lineItemsByFulfillmentOrder"]
        return {
            "fulfillment": self._fulfill(
                groups, fulfillment.get("trackingInfo"), ["fulfillment", "lineItemsByFulfillmentOrder"]
            )
        }

    def _m_fulfillmentTrackingInfoUpdate(
        self,
        obj: Any,
        info: Any,
        fulfillmentId: str,  # noqa: N803
        trackingInfoInput: dict[str, Any],  # noqa: N803
        notifyCustomer: bool | None = None,
    ) -> dict[str, Any]:  # noqa: N803
        fulfillment = self.fulfillments.get(fulfillmentId)
        if fulfillment is None:
            raise _UserErrors([_err(["fulfillmentId"], "Fulfillment does not exist.")])
        fulfillment["tracking"] = _tracking(trackingInfoInput)
        self._touch(fulfillment, self._orders[fulfillment["order_id"]])
        return {"fulfillment": fulfillment}

    def _tag_target(self, gid: str) -> dict[str, Any]:
        record = self._products.get(gid) or self._orders.get(gid)
        if record is None:
            raise _UserErrors(
                [
                    _err(
                        ["id"],
                        "Resource does not exist"
                        if gid_kind(gid) in ("Product", "Order")
                        else "Resource type is not taggable",
                    )
                ]
            )
        return record

    def _m_tagsAdd(self, obj: Any, info: Any, id: str, tags: list[str]) -> dict[str, Any]:  # noqa: A002
        record = self._tag_target(id)
        new = _tags(record["tags"] + _tags(tags))
        if new != record["tags"]:
            record["tags"] = new
            self._touch(record)
        return {"node": record}

    def _m_tagsRemove(self, obj: Any, info: Any, id: str, tags: list[str]) -> dict[str, Any]:  # noqa: A002
        record = self._tag_target(id)
        drop = {t.lower() for t in _tags(tags)}
        new = [t for t in record["tags"] if t.lower() not in drop]
        if new != record["tags"]:
            record["tags"] = new
            self._touch(record)
        return {"node": record}

    def _m_metafieldsSet(self, obj: Any, info: Any, metafields: list[dict[str, Any]]) -> dict[str, Any]:
        # At most 25 per call, all or nothing, optional compareDigest (SDL Mutation.metafieldsSet).
        errors: list[dict[str, Any]] = []
        if len(metafields) > 25:
            raise _UserErrors(
                [
                    dict(
                        _err(
                            ["metafields"],
                            "Exceeded the maximum metafields input limit of 25.",
                            "LESS_THAN_OR_EQUAL_TO",
                        ),
                        elementIndex=None,
                    )
                ]
            )
        owners = []
        for i, mf in enumerate(metafields):
            owner = (
                self._products.get(mf["ownerId"]) or self._orders.get(mf["ownerId"]) or self.variants.get(mf["ownerId"])
            )
            if owner is None:
                errors.append(
                    dict(_err(["metafields", i, "ownerId"], "Owner does not exist.", "INVALID"), elementIndex=i)
                )
                continue
            existing = owner.get("metafields", {}).get((mf.get("namespace") or "$app", mf["key"]))
            if existing is None and not mf.get("type"):
                errors.append(dict(_err(["metafields", i, "type"], "Type can't be blank.", "BLANK"), elementIndex=i))
            if mf.get("compareDigest") is not None and (existing is None or _digest(existing) != mf["compareDigest"]):
                errors.append(
                    dict(
                        _err(["metafields", i], "The resource has been updated since it was loaded.", "STALE_OBJECT"),
                        elementIndex=i,
                    )
                )
            owners.append((owner, mf))
        if errors:
            raise _UserErrors(errors)
        out = []
        for owner, mf in owners:
            out.append(self._set_metafield(owner, mf.get("namespace"), mf["key"], mf["value"], mf.get("type")))
            self._touch(owner)
        return {"metafields": out}

    # -- mutation plumbing: userErrors and @idempotent ---------------------------------------------
    def _mutate(self, fn: Callable[..., Any], obj: Any, info: Any, args: dict[str, Any]) -> Any:
        field = info.field_name
        errors_key = "orderCancelUserErrors" if field == "orderCancel" else "userErrors"
        key = None
        if field in IDEMPOTENT_MUTATIONS:
            directive = info.schema.get_directive("idempotent")
            values = get_directive_values(directive, info.field_nodes[0], info.variable_values)
            key = (values or {}).get("key")
            if values is None:
                raise GraphQLError(
                    f"The @idempotent directive is required for {field} from API version {API_VERSION}.",
                    extensions={"code": "BAD_REQUEST"},
                )
            if not str(key).strip():
                raise GraphQLError(
                    "The idempotency key cannot be an empty string or whitespace only.",
                    extensions={"code": "BAD_REQUEST"},
                )
            fingerprint = json.dumps(args, sort_keys=True, default=str)
            seen = self._idempotency.get((field, key))
            if seen is not None:
                if seen[0] == fingerprint:
                    return seen[1]  # a retry: the original result, applied once
                mismatch = _err(
                    None,
                    "The same idempotency key cannot be used with different operation parameters.",
                    None if field == "inventoryActivate" else "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                )
                return {errors_key: [mismatch]}
        try:
            payload = fn(obj, info, **args)
        except _UserErrors as exc:
            payload = {errors_key: exc.errors}
        payload.setdefault(errors_key, [])
        if key is not None:
            self._idempotency[(field, key)] = (fingerprint, payload)
        return payload


# -- module helpers -----------------------------------------------------------------------------


def _resolve(obj: Any, info: Any, **args: Any) -> Any:
    store: ShopifySandbox = info.context
    parent, field = info.parent_type.name, info.field_name
    fn = store._resolver(parent, field)
    if parent == "Mutation" and fn is not None:
        return store._mutate(fn, obj, info, args)
    if fn is not None:
        return fn(obj, info, **args)
    if field == "legacyResourceId" and isinstance(obj, dict):
        return gid_num(obj["id"])
    if isinstance(obj, dict):
        return obj.get(field)
    return getattr(obj, field, None)


def _variant_title(variant: dict[str, Any]) -> str:
    return " / ".join(so["value"] for so in variant["selectedOptions"]) or "Default Title"


def _variant_input(spec: dict[str, Any]) -> dict[str, Any]:
    """Python-style variant fields (sku, compare_at_price, ...) as ProductVariantSetInput fields."""
    out: dict[str, Any] = {}
    names = {
        "price": "price",
        "compare_at_price": "compareAtPrice",
        "barcode": "barcode",
        "sku": "sku",
        "inventory_policy": "inventoryPolicy",
        "taxable": "taxable",
    }
    for key, value in spec.items():
        if key in names:
            out[names[key]] = value
        elif key in ("tracked", "requires_shipping", "cost"):
            out.setdefault("inventoryItem", {})[{"requires_shipping": "requiresShipping"}.get(key, key)] = value
        elif key not in ("options", "available"):
            raise TypeError(f"unknown variant field {key!r}")
    return out


def _tags(tags: Iterable[str] | str) -> list[str]:
    # Shopify splits on commas, trims, and drops case-insensitive duplicates.
    if isinstance(tags, str):
        tags = [tags]
    out: list[str] = []
    for tag in tags:
        for part in str(tag).split(","):
            part = part.strip()
            if part and part.lower() not in {t.lower() for t in out}:
                out.append(part)
    return out


def _mime(url: str) -> str:
    ext = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "gif": "image/gif", "webp": "image/webp"}.get(ext, "image/jpeg")


def _address(address: dict[str, Any] | None) -> dict[str, Any] | None:
    if not address:
        return None
    digest = hashlib.sha256(json.dumps(address, sort_keys=True).encode()).hexdigest()
    out = {"__typename": "MailingAddress", "id": f"gid://shopify/MailingAddress/{int(digest[:8], 16)}"}
    out.update(
        {
            k: address.get(k)
            for k in (
                "address1",
                "address2",
                "city",
                "company",
                "firstName",
                "lastName",
                "phone",
                "provinceCode",
                "zip",
            )
        }
    )
    out["countryCodeV2"] = address.get("countryCode") or address.get("countryCodeV2")
    out["country"] = out["countryCodeV2"]
    out["province"] = out["provinceCode"]
    out["name"] = " ".join(p for p in (out["firstName"], out["lastName"]) if p) or None
    return out


def _tracking(tracking: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not tracking:
        return []
    numbers = tracking.get("numbers") or ([tracking["number"]] if tracking.get("number") else [])
    urls = tracking.get("urls") or ([tracking["url"]] if tracking.get("url") else [])
    count = max(len(numbers), len(urls), 1 if tracking.get("company") else 0)
    return [
        {
            "number": numbers[i] if i < len(numbers) else None,
            "url": urls[i] if i < len(urls) else None,
            "company": tracking.get("company"),
        }
        for i in range(count)
    ]


def _time_or(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        return parse_time(str(value))
    except ValueError:
        return default


def _digest(metafield: dict[str, Any]) -> str:
    raw = f"{metafield['id']}:{metafield['value']}:{metafield['updatedAt']}".encode()
    return hashlib.sha256(raw).hexdigest()


LOCATION_FIELDS: SearchFields = {
    "name": ("text", lambda loc: loc["name"]),
    "id": ("id", lambda loc: gid_num(loc["id"])),
    "active": ("bool", lambda loc: str(loc["isActive"]).lower()),
}
INVENTORY_ITEM_FIELDS: SearchFields = {
    "sku": ("word", lambda i: i["sku"]),
    "updated_at": ("date", lambda i: i["updatedAt"]),
    "created_at": ("date", lambda i: i["createdAt"]),
    "id": ("id", lambda i: gid_num(i["id"])),
}
LEVEL_FIELDS: SearchFields = {
    "updated_at": ("date", lambda lv: lv["updatedAt"]),
    "created_at": ("date", lambda lv: lv["createdAt"]),
    "inventory_item_id": ("id", lambda lv: gid_num(lv["item_id"])),
    "location_id": ("id", lambda lv: gid_num(lv["location_id"])),
}
DELETION_FIELDS: SearchFields = {
    "occurred_at": ("date", lambda e: e["occurredAt"]),
    "subject_id": ("id", lambda e: gid_num(e["subjectId"])),
}
