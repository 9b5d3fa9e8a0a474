"""The state database: one SQLite file, and the only module that speaks SQL.

Tables (DESIGN.md): `stores`, `product_links`, `variant_links`, `cursors`,
`journal` (every planned and applied write, with its result: the audit log
behind `vsc log`) and `passes`. Secrets are never stored here: a store row
holds only *where* its secret lives (a keyring entry or an environment
variable's name).

Schema changes are numbered migrations (sqlite-utils `Migrations`) applied
when the file is opened. A database written by a newer vsc (one with
migrations this vsc does not know) is refused rather than guessed at.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from vsc.errors import StateError, StateMissing, UsageError

if TYPE_CHECKING:
    import sqlite_utils

#: (name, function) of every schema change, in order. sqlite-utils' `Migrations` applies them and
#: records them in its `_sqlite_migrations` table; it is imported only when one is pending, because
#: its import (with click, pluggy, dateutil) costs ~0.15 s of CPU on every cron pass.
MIGRATIONS: list[tuple[str, Callable[[Any], None]]] = []
MIGRATION_SET = "vsc"


def _migration(name: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Register a schema change (a function of a `sqlite_utils.Database`) under its name."""

    def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        MIGRATIONS.append((name, fn))
        return fn

    return register


def _applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """The names of the migrations the database records as applied, read without sqlite-utils."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'").fetchone():
        return []
    sql = "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY rowid"
    return [r[0] for r in conn.execute(sql, [MIGRATION_SET])]


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the pending migrations (each in its own transaction, with its record)."""
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for name, fn in MIGRATIONS:
        migrations(name=name)(fn)
    migrations.apply(sqlite_utils.Database(conn))


@_migration("0001_initial")
def _m0001(db: sqlite_utils.Database) -> None:
    db["stores"].create(
        {
            "name": str,
            "platform": str,
            "role": str,
            "url": str,
            "secret_ref": str,
            "currency": str,
            "created_at": str,
            "checked_at": str,
            "check_status": str,
        },
        pk="name",
    )
    db["product_links"].create(
        {
            "id": int,
            "vendor": str,
            "vendor_product_id": str,
            "merchant_product_id": str,
            "mode": str,
            "state": str,
            "fingerprint": str,
            "note": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("vendor", "stores", "name")],
    )
    db["product_links"].create_index(["vendor", "vendor_product_id"], unique=True)
    db["product_links"].create_index(["merchant_product_id"])
    db["variant_links"].create(
        {
            "id": int,
            "product_link_id": int,
            "vendor": str,
            "vendor_product_id": str,
            "vendor_variant_id": str,
            "merchant_product_id": str,
            "merchant_variant_id": str,
            "merchant_inventory_item_id": str,
            "sku": str,
            "barcode": str,
            "state": str,
            "fingerprint": str,
            "merchant_available": int,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("product_link_id", "product_links", "id")],
    )
    db["variant_links"].create_index(["vendor", "vendor_variant_id"], unique=True)
    db["variant_links"].create_index(["merchant_variant_id"], unique=True)
    db["variant_links"].create_index(["product_link_id"])
    db["cursors"].create({"store": str, "stream": str, "value": str, "updated_at": str}, pk=("store", "stream"))
    db["passes"].create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "status": str,
            "dry_run": int,
            "counts": str,
            "errors": str,
        },
        pk="id",
    )
    db["journal"].create(
        {
            "id": int,
            "pass_id": int,
            "at": str,
            "store": str,
            "stream": str,
            "kind": str,
            "key": str,
            "target": str,
            "status": str,
            "detail": str,
            "error": str,
        },
        pk="id",
    )
    db["journal"].create_index(["key"])
    db["journal"].create_index(["store", "at"])


@_migration("0002_orders_stock_mail")
def _m0002(db: sqlite_utils.Database) -> None:
    # Orders pushed into vendor stores (one row per merchant order and vendor), the vendor's
    # fulfillments copied back, stock moves made directly when order push is off, and the
    # e-mail outbox (a failed e-mail is retried, never blocking the push).
    db["order_links"].create(
        {
            "id": int,
            "vendor": str,
            "merchant_order_id": str,
            "merchant_order_name": str,
            "vendor_order_id": str,
            "vendor_order_name": str,
            "key": str,
            "marker": str,
            "state": str,
            "lines": str,
            "fingerprint": str,
            "note": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("vendor", "stores", "name")],
    )
    db["order_links"].create_index(["merchant_order_id", "vendor"], unique=True)
    db["order_links"].create_index(["vendor", "state"])
    db["fulfillment_links"].create(
        {
            "id": int,
            "order_link_id": int,
            "vendor": str,
            "vendor_fulfillment_id": str,
            "merchant_fulfillment_id": str,
            "state": str,
            "fingerprint": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("order_link_id", "order_links", "id")],
    )
    db["fulfillment_links"].create_index(["order_link_id", "vendor_fulfillment_id"], unique=True)
    db["stock_moves"].create(
        {
            "id": int,
            "key": str,
            "vendor": str,
            "vendor_product_id": str,
            "vendor_variant_id": str,
            "delta": int,
            "state": str,
            "error": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db["stock_moves"].create_index(["key"], unique=True)
    db["outbox"].create(
        {
            "id": int,
            "key": str,
            "vendor": str,
            "kind": str,
            "recipient": str,
            "subject": str,
            "body": str,
            "status": str,
            "attempts": int,
            "last_error": str,
            "created_at": str,
            "sent_at": str,
        },
        pk="id",
    )
    db["outbox"].create_index(["key"], unique=True)
    db["outbox"].create_index(["status"])
    db["variant_links"].add_column("vendor_available", int)
    db["variant_links"].add_column("merchant_location_id", str)


@_migration("0003_operating")
def _m0003(db: sqlite_utils.Database) -> None:
    # What `vsc status` and `vsc log` need: what each pass covered and what each store answered
    # (request, write and throttle counters per store), which vendor a journal entry is about
    # (catalog writes go to the merchant store, so `store` alone cannot say), and the safety
    # brakes that stop a vendor until `vsc sync --force`.
    db["passes"].add_column("vendors", str)
    db["passes"].add_column("streams", str)
    db["passes"].add_column("stores", str)
    db["passes"].add_column("forced", int)
    db["passes"].add_column("pid", int)
    db["passes"].add_column("host", str)
    db["journal"].add_column("vendor", str)
    db["journal"].create_index(["vendor", "at"])
    db["journal"].create_index(["status"])
    db["brakes"].create(
        {"vendor": str, "reason": str, "detail": str, "pass_id": int, "engaged_at": str},
        pk="vendor",
    )


@_migration("0004_stock_echo")
def _m0004(db: sqlite_utils.Database) -> None:
    # The merchant's `updatedAt` of a linked inventory item as of vsc's last write or read of it:
    # an item listed as changed since the cursor at no later time is vsc's own echo, not read again.
    db["variant_links"].add_column("merchant_stock_at", str)
    # What a store is like and changes rarely (its locations, its API's abilities), kept between
    # runs so a pass need not ask again each time; each entry says when it was read.
    db["store_facts"].create({"store": str, "facts": str, "read_at": str}, pk="store")


@_migration("0005_store_tls")
def _m0005(db: sqlite_utils.Database) -> None:
    # How a store's TLS certificate is checked: against its own CA bundle (a path), or, only
    # when connected with --insecure-skip-tls-verify, not at all. Empty: the default trust store.
    db["stores"].add_column("ca_bundle", str)
    db["stores"].add_column("insecure_tls", int)


@_migration("0006_stock_seen")
def _m0006(db: sqlite_utils.Database) -> None:
    # Whether vsc has read a variant's vendor stock, once a key of the fingerprint: a column of
    # its own lets a pass plan stock without decoding every link's fingerprint.
    db["variant_links"].add_column("stock_seen", int, not_null_default=0)
    db.execute(
        "UPDATE variant_links SET stock_seen = 1, fingerprint = json_remove(fingerprint, '$.stock_seen')"
        " WHERE json_extract(fingerprint, '$.stock_seen')"
    )


@_migration("0007_merchant_item_index")
def _m0007(db: sqlite_utils.Database) -> None:
    # The merchant's changed inventory items are matched to their vendors' links once a pass.
    db["variant_links"].create_index(["merchant_inventory_item_id"])


@_migration("0008_plan_digest")
def _m0008(db: sqlite_utils.Database) -> None:
    # A product link's `plan_digest`: the digest of the vendor product (and the settings) that
    # the catalog planner last found nothing to do for (`vsc.engine.catalog.plan_digest`). A
    # product read again with the same digest plans nothing without loading its variant links.
    # Whatever else a plan reads is the links themselves: any change to what the planner reads
    # of them clears the digest, whichever code makes it (these triggers), so a skipped plan is
    # always one that would have been empty. Stock columns are not among them.
    db["product_links"].add_column("plan_digest", str)
    db.execute(
        "CREATE TRIGGER product_links_plan_inputs AFTER UPDATE OF"
        " vendor_product_id, merchant_product_id, mode, state, fingerprint ON product_links"
        " BEGIN UPDATE product_links SET plan_digest = NULL WHERE id = NEW.id; END"
    )
    db.execute(
        "CREATE TRIGGER variant_links_plan_inputs AFTER UPDATE OF"
        " product_link_id, vendor_variant_id, merchant_variant_id, sku, barcode, state, fingerprint ON variant_links"
        " BEGIN UPDATE product_links SET plan_digest = NULL WHERE id IN (OLD.product_link_id, NEW.product_link_id); END"
    )
    db.execute(
        "CREATE TRIGGER variant_links_plan_added AFTER INSERT ON variant_links"
        " BEGIN UPDATE product_links SET plan_digest = NULL WHERE id = NEW.product_link_id; END"
    )
    db.execute(
        "CREATE TRIGGER variant_links_plan_removed AFTER DELETE ON variant_links"
        " BEGIN UPDATE product_links SET plan_digest = NULL WHERE id = OLD.product_link_id; END"
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


@dataclass(frozen=True)
class StoreRow:
    name: str
    platform: str
    role: str
    url: str
    secret_ref: dict[str, Any]
    currency: str | None = None
    checked_at: str | None = None
    check_status: str | None = None
    ca_bundle: str | None = None
    insecure_tls: bool = False

    @property
    def is_merchant(self) -> bool:
        return self.role == "merchant"

    @property
    def tls_verify(self) -> bool | str:
        """What vsc checks the store's certificate with: its CA bundle, True (the default
        trust store, or REQUESTS_CA_BUNDLE), or False for --insecure-skip-tls-verify."""
        if self.insecure_tls:
            return False
        return self.ca_bundle or True

    @property
    def tls_label(self) -> str:
        """The TLS rule as `vsc stores` and `vsc status` show it."""
        if self.insecure_tls:
            return "UNVERIFIED"
        return f"verified against {self.ca_bundle}" if self.ca_bundle else "verified"


class _LazyFingerprint:
    """Links loaded by State carry their fingerprint as JSON text, decoded on first use: a pass
    loads thousands of links and looks at few fingerprints (decoding them all was the biggest
    part of loading 50,000 variant links)."""

    def __getattr__(self, name: str) -> Any:
        if name == "fingerprint" and "_fingerprint_json" in self.__dict__:
            value = _loads(self.__dict__["_fingerprint_json"]) or {}
            self.__dict__["fingerprint"] = value
            return value
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _from_row(cls: type[Any], fields: Sequence[str], row: Sequence[Any]) -> Any:
    """An instance of a frozen link dataclass from its columns in `fields` order. Filling the
    instance dict directly skips the dataclass __init__'s per-field object.__setattr__ (the
    instance is still frozen to its users)."""
    link = object.__new__(cls)
    link.__dict__.update(zip(fields, row, strict=True))
    return link


@dataclass(frozen=True)
class ProductLink(_LazyFingerprint):
    id: int
    vendor: str
    vendor_product_id: str
    merchant_product_id: str
    mode: str  # published | linked
    state: str  # active | vendor_deleted
    fingerprint: dict[str, Any]
    note: str | None = None


@dataclass(frozen=True)
class VariantLink(_LazyFingerprint):
    id: int
    product_link_id: int
    vendor: str
    vendor_product_id: str
    vendor_variant_id: str
    merchant_product_id: str
    merchant_variant_id: str
    merchant_inventory_item_id: str | None
    sku: str | None
    barcode: str | None
    state: str  # active | vendor_deleted
    fingerprint: dict[str, Any]
    merchant_available: int | None = None
    vendor_available: int | None = None
    merchant_location_id: str | None = None
    #: the merchant item's updatedAt when vsc last wrote or read its quantity (ISO text)
    merchant_stock_at: str | None = None
    #: whether vsc has read this variant's stock from the vendor at least once
    stock_seen: bool = False


class StockRef(NamedTuple):
    """A linked vendor variant as the stock stream reads it (see State.stock_refs); a tuple,
    as a pass makes one per linked variant."""

    vendor_product_id: str
    vendor_variant_id: str
    #: whether vsc has read this variant's stock: SQLite's 0 or 1, as stored
    stock_seen: int
    vendor_available: int | None


_VLINK_FIELDS = tuple(f if f != "fingerprint" else "_fingerprint_json" for f in VariantLink.__dataclass_fields__)
_VLINK_COLUMNS = ", ".join(f.lstrip("_").removesuffix("_json") for f in _VLINK_FIELDS)
_PLINK_FIELDS = tuple(f if f != "fingerprint" else "_fingerprint_json" for f in ProductLink.__dataclass_fields__)


def _vlink_from_row(row: Sequence[Any]) -> VariantLink:
    """A VariantLink from its columns in `_VLINK_FIELDS` order, its fingerprint left as JSON."""
    link: VariantLink = _from_row(VariantLink, _VLINK_FIELDS, row)
    link.__dict__["stock_seen"] = bool(link.stock_seen)
    return link


@dataclass(frozen=True)
class OrderLink:
    """A merchant order's push into one vendor's store.

    state: pending (journaled, vendor call may or may not have happened) | pushed |
    failed (will be retried) | skipped (nothing of this vendor's to push) |
    cancel_requested (vendor asked to cancel; platform has no API) | cancelled |
    vendor_cancelled (the vendor cancelled it on its side).
    `lines`: [{merchant_line_id, merchant_variant_id, vendor_product_id, vendor_variant_id, sku,
    quantity, unit_price}]; `fingerprint`: the order attributes last applied to the vendor order.
    """

    id: int
    vendor: str
    merchant_order_id: str
    merchant_order_name: str | None
    vendor_order_id: str | None
    vendor_order_name: str | None
    key: str
    marker: str
    state: str
    lines: list[dict[str, Any]]
    fingerprint: dict[str, Any]
    note: str | None = None


@dataclass(frozen=True)
class FulfillmentLink:
    id: int
    order_link_id: int
    vendor: str
    vendor_fulfillment_id: str
    merchant_fulfillment_id: str | None
    state: str
    fingerprint: dict[str, Any]


@dataclass(frozen=True)
class OutboxMail:
    id: int
    key: str
    vendor: str | None
    kind: str
    recipient: str
    subject: str
    body: str
    status: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class JournalEntry:
    id: int
    pass_id: int | None
    at: str
    store: str
    stream: str
    kind: str
    key: str
    target: str | None
    status: str
    detail: dict[str, Any] | None
    error: str | None


def _in_lists(values: Iterable[Any]) -> Iterator[tuple[list[Any], str]]:
    """`values` (repeats dropped) 500 at a time, each with its `?, ?, ...` for an IN list:
    SQLite takes at most 999 parameters a statement."""
    wanted = list(dict.fromkeys(values))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        yield chunk, ", ".join("?" for _ in chunk)


class RowMissing(LookupError):
    """A row looked up by its primary key is not in the table."""


def _column_value(value: Any) -> Any:
    # The conversions sqlite-utils made when it wrote these tables, kept so rows read the same.
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=repr, ensure_ascii=False)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class Table:
    """One table: the few row operations `State` makes, in plain `sqlite3`."""

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self.last_pk: Any = None

    @property
    def pk(self) -> str:
        return self.db.primary_key(self.name)

    def insert(self, record: dict[str, Any], *, ignore: bool = False) -> Table:
        columns = ", ".join(f"[{c}]" for c in record)
        marks = ", ".join("?" for _ in record)
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        cursor = self.db.conn.execute(
            f"{verb} INTO [{self.name}] ({columns}) VALUES ({marks})", [_column_value(v) for v in record.values()]
        )
        self.last_pk = record.get(self.pk, cursor.lastrowid) if self.pk != "rowid" else cursor.lastrowid
        return self

    def upsert(self, record: dict[str, Any], *, pk: str) -> Table:
        """Insert the row, or update the given columns of the row with the same `pk`."""
        columns = ", ".join(f"[{c}]" for c in record)
        marks = ", ".join("?" for _ in record)
        sets = ", ".join(f"[{c}] = excluded.[{c}]" for c in record if c != pk) or f"[{pk}] = excluded.[{pk}]"
        self.db.conn.execute(
            f"INSERT INTO [{self.name}] ({columns}) VALUES ({marks}) ON CONFLICT([{pk}]) DO UPDATE SET {sets}",
            [_column_value(v) for v in record.values()],
        )
        self.last_pk = record[pk]
        return self

    def update(self, key: Any, values: dict[str, Any]) -> Table:
        """Change columns of the row whose primary key is `key`; `RowMissing` when there is none."""
        if values:
            sets = ", ".join(f"[{c}] = ?" for c in values)
            cursor = self.db.conn.execute(
                f"UPDATE [{self.name}] SET {sets} WHERE [{self.pk}] = ?", [*map(_column_value, values.values()), key]
            )
            if cursor.rowcount != 1:
                raise RowMissing(f"no row {key!r} in {self.name}")
        self.last_pk = key
        return self

    def get(self, key: Any) -> dict[str, Any]:
        row = next(self.db.query(f"SELECT * FROM [{self.name}] WHERE [{self.pk}] = ?", [key]), None)
        if row is None:
            raise RowMissing(f"no row {key!r} in {self.name}")
        return row

    def delete(self, key: Any) -> None:
        self.db.conn.execute(f"DELETE FROM [{self.name}] WHERE [{self.pk}] = ?", [key])

    def delete_where(self, where: str, args: Sequence[Any] = ()) -> None:
        self.db.conn.execute(f"DELETE FROM [{self.name}] WHERE {where}", list(args))

    def count_where(self, where: str, args: Sequence[Any] = ()) -> int:
        return int(self.db.conn.execute(f"SELECT COUNT(*) FROM [{self.name}] WHERE {where}", list(args)).fetchone()[0])


class Database:
    """The state file's connection, with the small part of sqlite-utils' `Database` interface that
    `State` uses (`db["table"].insert/update/get/...`, `execute`, `query`, `atomic`).

    sqlite-utils builds the schema (`MIGRATIONS`); the everyday reads and writes need none of it,
    and leaving it unimported keeps ~0.15 s of CPU out of every pass."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._pks: dict[str, str] = {}

    def __getitem__(self, name: str) -> Table:
        return Table(self, name)

    def primary_key(self, table: str) -> str:
        """The table's single primary-key column (`rowid` for a table without one)."""
        if table not in self._pks:
            pks = sorted((r[5], r[1]) for r in self.conn.execute(f"PRAGMA table_info([{table}])") if r[5])
            self._pks[table] = pks[0][1] if len(pks) == 1 else "rowid"
        return self._pks[table]

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, list(args))

    def query(self, sql: str, args: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        cursor = self.conn.execute(sql, list(args))
        columns = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(columns, row, strict=True))

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    @contextmanager
    def atomic(self) -> Iterator[Database]:
        """One transaction; nested blocks are savepoints (as sqlite-utils' `atomic`)."""
        if self.conn.in_transaction:
            savepoint = f"vsc_{os.urandom(8).hex()}"
            self.conn.execute(f"SAVEPOINT {savepoint}")
            try:
                yield self
            except BaseException:
                if self.conn.in_transaction:  # a failed statement may have ended the transaction
                    self.conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                    self.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
                raise
            self.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
            return
        self.conn.execute("BEGIN")
        try:
            yield self
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


class State:
    """The state of one vsc installation. Open with `State.open(path)` (or `State.create`)."""

    def __init__(self, db: Database, path: Path) -> None:
        self.db = db
        #: during a pass (`pass_cursors`): every cursor, read once, and the moves not yet written
        self._cursors: dict[tuple[str, str], str | None] | None = None
        self._cursor_moves: dict[tuple[str, str], str | None] = {}
        self.path = path

    # -- opening -------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> State:
        """Create the database (mode 0600) if missing and bring it up to date."""
        p = Path(path).expanduser()
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists():
            # Create the file ourselves so it is never readable by others, not even briefly.
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        return cls._open(p)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> State:
        """Open an existing database; `StateMissing` names `vsc init` when there is none."""
        p = Path(path).expanduser()
        if not p.exists():
            raise StateMissing(
                f"no vsc database at {p}",
                hint="Create one with `vsc init` (or point to yours with --db PATH or VSC_DB).",
            )
        return cls._open(p)

    @classmethod
    def _open(cls, p: Path) -> State:
        try:
            conn = sqlite3.connect(str(p), timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
            # Write-ahead log: a commit appends to vsc.db-wal and syncs it once, instead of
            # writing, syncing and deleting a rollback journal (~0.4 -> ~0.15 ms of CPU and
            # ~1.3 -> ~0.4 ms of wall a commit, and a pass makes hundreds when orders come in),
            # and `vsc status` reads while a pass writes. synchronous stays FULL: a committed
            # "pending" push marker must survive a power cut (DESIGN: orders exactly once). The
            # log is folded back into vsc.db and removed when the last connection closes.
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                except sqlite3.OperationalError:
                    pass  # another process has it open right now: the next open switches it
            conn.execute("PRAGMA synchronous = FULL")
            known = [name for name, _fn in MIGRATIONS]
            applied = _applied_migrations(conn)
            newer = sorted(set(applied) - set(known))
            if newer:
                raise StateError(
                    f"{p} was written by a newer vsc (it has migration {newer[-1]})",
                    hint="Upgrade vsc (pip install -U vsc) before using this database.",
                )
            if set(known) - set(applied):
                _migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"{p} is not a readable vsc database ({exc})",
                hint="Restore it from a backup, or move it aside and run `vsc init`.",
            ) from None
        try:
            os.chmod(p, 0o600)
        except OSError:
            pass
        return cls(Database(conn), p)

    def close(self) -> None:
        self.db.close()

    def _rows_where(
        self,
        table: str,
        where: str | None = None,
        args: Sequence[Any] = (),
        *,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Rows as dicts, like sqlite-utils' `rows_where` without its per-call look at the schema
        (a pass makes thousands of these small queries)."""
        sql = f"SELECT * FROM [{table}]" + (f" WHERE {where}" if where else "")
        sql += (f" ORDER BY {order_by}" if order_by else "") + (f" LIMIT {int(limit)}" if limit is not None else "")
        return self.db.query(sql, args)

    @contextmanager
    def atomic(self) -> Iterator[State]:
        """One transaction: state changes and their journal entries commit together."""
        with self.db.atomic():
            yield self

    # -- stores --------------------------------------------------------------
    def add_store(self, row: StoreRow) -> None:
        if self.db["stores"].count_where("name = ?", [row.name]):
            raise UsageError(
                f"a store named {row.name!r} already exists",
                hint="Pick another name, or remove it first with `vsc stores remove NAME`.",
            )
        if row.role == "merchant" and self.merchant() is not None:
            raise UsageError(
                f"{self.merchant().name!r} is already the merchant store; vsc serves exactly one merchant",  # type: ignore[union-attr]
                hint="Connect this store with --role vendor, or remove the merchant first.",
            )
        self.db["stores"].insert(
            {
                "name": row.name,
                "platform": row.platform,
                "role": row.role,
                "url": row.url,
                "secret_ref": _dumps(row.secret_ref),
                "currency": row.currency,
                "created_at": iso(now_utc()),
                "checked_at": iso(now_utc()),
                "check_status": "ok",
                "ca_bundle": row.ca_bundle,
                "insecure_tls": int(row.insecure_tls),
            }
        )

    def remove_store(self, name: str) -> None:
        with self.atomic():
            for link in self.product_links(vendor=name):
                self.remove_product_link(link.id)
            self.db["cursors"].delete_where("store = ?", [name])
            self.db["stores"].delete_where("name = ?", [name])

    @staticmethod
    def _store(r: dict[str, Any]) -> StoreRow:
        return StoreRow(
            name=r["name"],
            platform=r["platform"],
            role=r["role"],
            url=r["url"],
            secret_ref=_loads(r["secret_ref"]) or {},
            currency=r["currency"],
            checked_at=r["checked_at"],
            check_status=r["check_status"],
            ca_bundle=r.get("ca_bundle"),
            insecure_tls=bool(r.get("insecure_tls")),
        )

    def stores(self) -> list[StoreRow]:
        rows = self._rows_where("stores", order_by="role != 'merchant', name")
        return [self._store(r) for r in rows]

    def store(self, name: str) -> StoreRow:
        rows = list(self._rows_where("stores", "name = ?", [name]))
        if not rows:
            known = ", ".join(s.name for s in self.stores()) or "none yet"
            raise UsageError(f"no store named {name!r} (stores: {known})", hint="See `vsc stores`.")
        return self._store(rows[0])

    def merchant(self) -> StoreRow | None:
        rows = list(self._rows_where("stores", "role = 'merchant'"))
        return self._store(rows[0]) if rows else None

    def vendors(self) -> list[StoreRow]:
        return [s for s in self.stores() if s.role == "vendor"]

    def set_store_tls(self, name: str, *, ca_bundle: str | None, insecure: bool) -> None:
        """Change how a store's TLS certificate is checked (see `StoreRow.tls_verify`)."""
        self.store(name)  # UsageError naming the known stores
        self.db["stores"].update(name, {"ca_bundle": ca_bundle, "insecure_tls": int(insecure)})

    def replace_credentials(self, name: str, secret_ref: dict[str, Any], *, currency: str | None) -> None:
        """A reconnected store's new secret references (links, cursors and journal are kept)."""
        values: dict[str, Any] = {"secret_ref": _dumps(secret_ref), "checked_at": iso(now_utc()), "check_status": "ok"}
        if currency:
            values["currency"] = currency
        self.db["stores"].update(name, values)

    def record_check(self, name: str, status: str, currency: str | None = None) -> None:
        values: dict[str, Any] = {"checked_at": iso(now_utc()), "check_status": status}
        if currency:
            values["currency"] = currency
        self.db["stores"].update(name, values)

    # -- links ---------------------------------------------------------------
    @staticmethod
    def _plink(r: dict[str, Any]) -> ProductLink:
        row = [r["fingerprint"] if f == "_fingerprint_json" else r[f] for f in _PLINK_FIELDS]
        return _from_row(ProductLink, _PLINK_FIELDS, row)  # type: ignore[no-any-return]

    def _vlinks(self, where: str, args: Sequence[Any]) -> list[VariantLink]:
        """Variant links straight from the sqlite3 cursor: a pass loads tens of thousands of them,
        and sqlite-utils' dict rows plus the frozen dataclass's __init__ cost ~4x this."""
        sql = f"SELECT {_VLINK_COLUMNS} FROM variant_links WHERE {where} ORDER BY id"
        return [_vlink_from_row(row) for row in self.db.conn.execute(sql, list(args))]

    def add_product_link(
        self,
        vendor: str,
        vendor_product_id: str,
        merchant_product_id: str,
        *,
        mode: str,
        fingerprint: dict[str, Any] | None = None,
    ) -> ProductLink:
        stamp = iso(now_utc())
        pk = (
            self.db["product_links"]
            .insert(
                {
                    "vendor": vendor,
                    "vendor_product_id": vendor_product_id,
                    "merchant_product_id": merchant_product_id,
                    "mode": mode,
                    "state": "active",
                    "fingerprint": _dumps(fingerprint or {}),
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
            .last_pk
        )
        return self.product_link_by_id(int(pk))  # type: ignore[arg-type]

    def product_link_by_id(self, link_id: int) -> ProductLink:
        return self._plink(self.db["product_links"].get(link_id))

    def product_link(self, vendor: str, vendor_product_id: str) -> ProductLink | None:
        rows = list(
            self._rows_where("product_links", "vendor = ? AND vendor_product_id = ?", [vendor, vendor_product_id])
        )
        return self._plink(rows[0]) if rows else None

    def product_links(self, vendor: str | None = None) -> list[ProductLink]:
        if vendor is None:
            rows = self._rows_where("product_links", order_by="vendor, id")
        else:
            rows = self._rows_where("product_links", "vendor = ?", [vendor], order_by="id")
        return [self._plink(r) for r in rows]

    def linked_product_ids(self, vendor: str, *, excluding: Sequence[str] = ()) -> set[str]:
        """The vendor product ids of the vendor's product links, but those in `excluding` states."""
        marks = ", ".join("?" for _ in excluding) or "NULL"
        sql = f"SELECT vendor_product_id FROM product_links WHERE vendor = ? AND state NOT IN ({marks})"
        return {r[0] for r in self.db.conn.execute(sql, [vendor, *excluding])}

    def product_links_where(
        self, vendor: str, vendor_product_ids: Iterable[str], *, excluding: Sequence[str] = ()
    ) -> list[ProductLink]:
        """The vendor's product links of these vendor product ids, but those in `excluding` states."""
        marks = ", ".join("?" for _ in excluding) or "NULL"
        out: list[ProductLink] = []
        for chunk, ids in _in_lists(vendor_product_ids):
            where = f"vendor = ? AND state NOT IN ({marks}) AND vendor_product_id IN ({ids})"
            out += [
                self._plink(r)
                for r in self._rows_where("product_links", where, [vendor, *excluding, *chunk], order_by="id")
            ]
        return out

    def first_link_time(self, vendor: str) -> datetime | None:
        """When this vendor's first product link was made (None when it has none)."""
        row = next(iter(self.db.query("SELECT MIN(created_at) AS t FROM product_links WHERE vendor = ?", [vendor])))
        return parse_iso(row["t"])

    def update_product_link(self, link_id: int, **values: Any) -> None:
        if "fingerprint" in values:
            values["fingerprint"] = _dumps(values["fingerprint"])
        values["updated_at"] = iso(now_utc())
        self.db["product_links"].update(link_id, values)

    def plan_digests(self, link_ids: Iterable[int]) -> dict[int, str]:
        """The `plan_digest` of these product links, where they have one (migration 0008)."""
        out: dict[int, str] = {}
        for chunk, marks in _in_lists(link_ids):
            sql = f"SELECT id, plan_digest FROM product_links WHERE id IN ({marks}) AND plan_digest IS NOT NULL"
            out.update(self.db.conn.execute(sql, chunk))
        return out

    def set_plan_digests(self, digests: Iterable[tuple[int, str]]) -> None:
        """Record that the planner found nothing to do for these product links' vendor products."""
        self.db.conn.executemany("UPDATE product_links SET plan_digest = ? WHERE id = ?", [(d, i) for i, d in digests])

    def remove_product_link(self, link_id: int) -> None:
        with self.atomic():
            self.db["variant_links"].delete_where("product_link_id = ?", [link_id])
            self.db["product_links"].delete(link_id)

    def add_variant_link(
        self,
        link: ProductLink,
        *,
        vendor_variant_id: str,
        merchant_variant_id: str,
        merchant_inventory_item_id: str | None,
        sku: str | None,
        barcode: str | None,
        fingerprint: dict[str, Any] | None = None,
        merchant_available: int | None = None,
    ) -> VariantLink:
        stamp = iso(now_utc())
        pk = (
            self.db["variant_links"]
            .insert(
                {
                    "product_link_id": link.id,
                    "vendor": link.vendor,
                    "vendor_product_id": link.vendor_product_id,
                    "vendor_variant_id": vendor_variant_id,
                    "merchant_product_id": link.merchant_product_id,
                    "merchant_variant_id": merchant_variant_id,
                    "merchant_inventory_item_id": merchant_inventory_item_id,
                    "sku": sku,
                    "barcode": barcode,
                    "state": "active",
                    "fingerprint": _dumps(fingerprint or {}),
                    "merchant_available": merchant_available,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
            .last_pk
        )
        return self._vlinks("id = ?", [pk])[0]

    def variant_links(self, *, product_link_id: int | None = None, vendor: str | None = None) -> list[VariantLink]:
        where, args = [], []
        if product_link_id is not None:
            where.append("product_link_id = ?")
            args.append(product_link_id)
        if vendor is not None:
            where.append("vendor = ?")
            args.append(vendor)
        return self._vlinks(" AND ".join(where) or "1", args)

    def stock_refs(
        self, vendor: str, *, unseen_only: bool = False, variant_ids: Iterable[str] | None = None
    ) -> list[StockRef]:
        """The vendor's active linked variants, narrowly: what reading its stock needs (all of
        them, only those whose stock vsc never read, or those of `variant_ids`). A pass asks for
        every vendor's; whole links would cost several times as much to build."""
        sql = (
            "SELECT vendor_product_id, vendor_variant_id, stock_seen, vendor_available FROM variant_links "
            "WHERE vendor = ? AND state = 'active'" + (" AND NOT stock_seen" if unseen_only else "")
        )
        if variant_ids is None:
            queries: Iterable[tuple[str, list[str]]] = [(sql, [vendor])]
        else:
            queries = (
                (f"{sql} AND vendor_variant_id IN ({ids})", [vendor, *chunk]) for chunk, ids in _in_lists(variant_ids)
            )
        out: list[StockRef] = []
        for query, args in queries:
            # (stock_seen stays SQLite's 0/1: a pass makes ~20k of these)
            out += map(StockRef._make, self.db.conn.execute(query + " ORDER BY id", args))
        return out

    def active_variant_ids(self, vendor: str) -> dict[int, list[int]]:
        """The ids of the vendor's active variant links, by product link id."""
        out: dict[int, list[int]] = {}
        sql = "SELECT product_link_id, id FROM variant_links WHERE vendor = ? AND state = 'active' ORDER BY id"
        for product_link_id, link_id in self.db.conn.execute(sql, [vendor]):
            out.setdefault(product_link_id, []).append(link_id)
        return out

    def has_stock_links(self, vendor: str) -> bool:
        """Whether the vendor has any active variant link."""
        sql = "SELECT 1 FROM variant_links WHERE vendor = ? AND state = 'active' LIMIT 1"
        return self.db.conn.execute(sql, [vendor]).fetchone() is not None

    def stock_links(
        self,
        vendor: str,
        *,
        variant_ids: Iterable[str],
        items: Iterable[str],
        location: str,
        buffer: int,
        untracked: int | None,
    ) -> list[VariantLink]:
        """The vendor's active links whose merchant stock may need a write this pass: those of
        `variant_ids` (vendor stock changed, orders pending) and `items` (merchant quantity
        changed), and every link whose recorded merchant quantity is not what its recorded vendor
        quantity calls for (`max(0, vendor - buffer)`, or `untracked` for untracked stock), or
        is unknown at `location`. The other links would plan nothing: a quiet vendor loads none.
        """
        ids, things = list(dict.fromkeys(variant_ids)), list(dict.fromkeys(items))
        settled = (
            "merchant_location_id IS NOT ? OR merchant_available IS NULL"
            " OR (vendor_available IS NOT NULL AND merchant_available != max(0, max(0, vendor_available) - ?))"
            " OR (vendor_available IS NULL AND ? IS NOT NULL AND merchant_available IS NOT ?)"
        )
        base = "vendor = ? AND state = 'active' AND merchant_inventory_item_id IS NOT NULL"
        args: list[Any] = [vendor, location, buffer, untracked, untracked]
        if len(ids) + len(things) <= 500:  # (SQLite allows 999 parameters a statement)
            marks = ", ".join("?" for _ in ids) or "NULL"
            item_marks = ", ".join("?" for _ in things) or "NULL"
            named = f"vendor_variant_id IN ({marks}) OR merchant_inventory_item_id IN ({item_marks})"
            where = f"{base} AND (({settled}) OR {named})"
            return self._vlinks(where, [*args, *ids, *things])
        # Many: 500 at a time. `items` are the merchant's changed items of all vendors; after a
        # pass that wrote stock for many vendors there are many, and loading each vendor's whole
        # catalog instead (as this did) cost ~0.7 s of CPU at 200 vendors.
        found = {v.id: v for v in self._vlinks(f"{base} AND ({settled})", args)}
        for column, values in (("vendor_variant_id", ids), ("merchant_inventory_item_id", things)):
            for chunk, marks in _in_lists(values):
                for v in self._vlinks(f"{base} AND {column} IN ({marks})", [vendor, *chunk]):
                    found.setdefault(v.id, v)
        return [found[k] for k in sorted(found)]

    def vendors_of_items(self, items: Iterable[str]) -> dict[str, list[str]]:
        """The vendors whose active links hold these merchant inventory items: {vendor: [item]}.
        A pass asks once for the merchant's changed items of all vendors; each vendor's stock
        plan then names only its own (200 vendors each naming ~600 items was 900 statements
        and ~0.5 s of CPU in the pass after 100 orders)."""
        out: dict[str, list[str]] = {}
        for chunk, marks in _in_lists(items):
            sql = (
                "SELECT vendor, merchant_inventory_item_id FROM variant_links"
                f" WHERE merchant_inventory_item_id IN ({marks}) AND state = 'active'"
            )
            for vendor, item in self.db.conn.execute(sql, chunk):
                out.setdefault(vendor, []).append(item)
        return out

    def variant_links_where(self, column: str, values: Iterable[Any]) -> list[VariantLink]:
        """The variant links whose `column` (product_link_id, merchant_variant_id, ...) is one of
        `values`: a pass reads only the links a change touches, not a vendor's whole catalog."""
        if column not in ("product_link_id", "merchant_variant_id", "vendor_variant_id"):
            raise ValueError(column)
        out: list[VariantLink] = []
        for chunk, marks in _in_lists(values):
            out += self._vlinks(f"{column} IN ({marks})", chunk)
        return out

    def variant_link_by_merchant_variant(self, merchant_variant_id: str) -> VariantLink | None:
        rows = self._vlinks("merchant_variant_id = ?", [merchant_variant_id])
        return rows[0] if rows else None

    def variant_link_by_vendor_variant(self, vendor: str, vendor_variant_id: str) -> VariantLink | None:
        rows = self._vlinks("vendor = ? AND vendor_variant_id = ?", [vendor, vendor_variant_id])
        return rows[0] if rows else None

    def update_variant_link(self, link_id: int, **values: Any) -> None:
        self.update_variant_links([(link_id, values)])

    def update_variant_links(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """`update_variant_link` for many links at once: one `executemany` per set of columns (a
        1 % pass records ~500 vendor levels and ~500 merchant quantities; one call each was
        ~0.1 s of its CPU). `RowMissing` when a link is not there."""
        stamp = iso(now_utc())
        groups: dict[tuple[str, ...], list[list[Any]]] = {}
        for link_id, values in updates:
            if "fingerprint" in values:
                values = {**values, "fingerprint": _dumps(values["fingerprint"])}
            groups.setdefault(tuple(values), []).append([*map(_column_value, values.values()), stamp, link_id])
        for columns, rows in groups.items():
            sets = ", ".join(f"[{c}] = ?" for c in (*columns, "updated_at"))
            cursor = self.db.conn.executemany(f"UPDATE variant_links SET {sets} WHERE id = ?", rows)
            if cursor.rowcount != len(rows):
                raise RowMissing(f"{len(rows) - cursor.rowcount} of {len(rows)} variant links are not there")

    def remove_variant_link(self, link_id: int) -> None:
        self.db["variant_links"].delete(link_id)

    # -- order links ---------------------------------------------------------------
    @staticmethod
    def _olink(r: dict[str, Any]) -> OrderLink:
        return OrderLink(
            id=r["id"],
            vendor=r["vendor"],
            merchant_order_id=r["merchant_order_id"],
            merchant_order_name=r["merchant_order_name"],
            vendor_order_id=r["vendor_order_id"],
            vendor_order_name=r["vendor_order_name"],
            key=r["key"],
            marker=r["marker"],
            state=r["state"],
            lines=_loads(r["lines"]) or [],
            fingerprint=_loads(r["fingerprint"]) or {},
            note=r["note"],
        )

    def add_order_link(
        self,
        *,
        vendor: str,
        merchant_order_id: str,
        merchant_order_name: str | None,
        key: str,
        marker: str,
        state: str,
        lines: list[dict[str, Any]],
        fingerprint: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> OrderLink:
        stamp = iso(now_utc())
        pk = (
            self.db["order_links"]
            .insert(
                {
                    "vendor": vendor,
                    "merchant_order_id": merchant_order_id,
                    "merchant_order_name": merchant_order_name,
                    "key": key,
                    "marker": marker,
                    "state": state,
                    "lines": _dumps(lines),
                    "fingerprint": _dumps(fingerprint or {}),
                    "note": note,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
            .last_pk
        )
        return self._olink(self.db["order_links"].get(pk))

    def order_link(self, merchant_order_id: str, vendor: str) -> OrderLink | None:
        return self.order_links_of(vendor, [merchant_order_id]).get(merchant_order_id)

    def order_links_of(self, vendor: str, merchant_order_ids: Iterable[str]) -> dict[str, OrderLink]:
        """The vendor's order links of these merchant orders, by merchant order id. A pass plans
        every merchant order of the window for every vendor: one `order_link` each was 200
        vendors x 100-200 orders = 20,000-40,000 statements (~1.5 s of CPU) after 100 orders."""
        out: dict[str, OrderLink] = {}
        for chunk, marks in _in_lists(merchant_order_ids):
            where = f"vendor = ? AND merchant_order_id IN ({marks})"
            for row in self._rows_where("order_links", where, [vendor, *chunk]):
                out[row["merchant_order_id"]] = self._olink(row)
        return out

    def order_links_by_vendor(self, merchant_order_ids: Iterable[str]) -> dict[str, dict[str, OrderLink]]:
        """Every vendor's order links of these merchant orders: per vendor, by merchant order id
        (one read for a pass's planning of all vendors, not one per vendor)."""
        out: dict[str, dict[str, OrderLink]] = {}
        for chunk, marks in _in_lists(merchant_order_ids):
            for row in self._rows_where("order_links", f"merchant_order_id IN ({marks})", chunk):
                out.setdefault(row["vendor"], {})[row["merchant_order_id"]] = self._olink(row)
        return out

    def order_link_by_id(self, link_id: int) -> OrderLink:
        return self._olink(self.db["order_links"].get(link_id))

    def order_links(
        self,
        *,
        vendor: str | None = None,
        states: tuple[str, ...] | None = None,
        merchant_order_id: str | None = None,
        vendor_order_ids: Iterable[str] | None = None,
        stock_pending: bool | None = None,
    ) -> list[OrderLink]:
        """Order links by vendor, states, merchant order, vendor orders, or whether their stock is
        still pending. Passes ask narrowly: a vendor's pushed orders grow for ever."""
        where, args = [], []
        if vendor is not None:
            where.append("vendor = ?")
            args.append(vendor)
        if states:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args += list(states)
        if merchant_order_id is not None:
            where.append("merchant_order_id = ?")
            args.append(merchant_order_id)
        if stock_pending is not None:
            pending = "coalesce(json_extract(fingerprint, '$.stock_pending'), 0)"
            where.append(pending if stock_pending else f"NOT {pending}")
        if vendor_order_ids is None:
            rows = self._rows_where("order_links", " AND ".join(where) or None, args, order_by="id")
            return [self._olink(r) for r in rows]
        out = []
        for chunk, marks in _in_lists(vendor_order_ids):
            clause = " AND ".join([*where, f"vendor_order_id IN ({marks})"])
            out += [self._olink(r) for r in self._rows_where("order_links", clause, [*args, *chunk])]
        return sorted(out, key=lambda link: link.id)

    def has_order_links(self, vendor: str, states: tuple[str, ...]) -> bool:
        """Whether the vendor has an order link in one of these states (with a vendor order)."""
        sql = (
            f"SELECT 1 FROM order_links WHERE vendor = ? AND state IN ({', '.join('?' for _ in states)})"
            " AND vendor_order_id IS NOT NULL LIMIT 1"
        )
        return self.db.conn.execute(sql, [vendor, *states]).fetchone() is not None

    def touched_order_links(
        self, vendor: str, states: tuple[str, ...], since: datetime, *, shipments: bool = False
    ) -> list[OrderLink]:
        """The vendor's order links (in `states`, with a vendor order) vsc changed since `since`,
        those with a fulfillment link still pending, and with `shipments` those whose fulfillment
        links changed since."""
        flinks = "updated_at >= ? OR state = 'pending'" if shipments else "state = 'pending'"
        where = (
            f"vendor = ? AND state IN ({', '.join('?' for _ in states)}) AND vendor_order_id IS NOT NULL AND "
            f"(updated_at >= ? OR id IN (SELECT order_link_id FROM fulfillment_links WHERE {flinks}))"
        )
        stamp = iso(since)
        args = [vendor, *states, stamp, *([stamp] if shipments else [])]
        return [self._olink(r) for r in self._rows_where("order_links", where, args, order_by="id")]

    def update_order_link(self, link_id: int, **values: Any) -> None:
        for key in ("lines", "fingerprint"):
            if key in values:
                values[key] = _dumps(values[key])
        values["updated_at"] = iso(now_utc())
        self.db["order_links"].update(link_id, values)

    # -- fulfillment links ---------------------------------------------------------
    @staticmethod
    def _flink(r: dict[str, Any]) -> FulfillmentLink:
        return FulfillmentLink(
            id=r["id"],
            order_link_id=r["order_link_id"],
            vendor=r["vendor"],
            vendor_fulfillment_id=r["vendor_fulfillment_id"],
            merchant_fulfillment_id=r["merchant_fulfillment_id"],
            state=r["state"],
            fingerprint=_loads(r["fingerprint"]) or {},
        )

    def add_fulfillment_link(
        self,
        order_link: OrderLink,
        *,
        vendor_fulfillment_id: str,
        merchant_fulfillment_id: str | None,
        state: str,
        fingerprint: dict[str, Any] | None = None,
    ) -> FulfillmentLink:
        stamp = iso(now_utc())
        pk = (
            self.db["fulfillment_links"]
            .insert(
                {
                    "order_link_id": order_link.id,
                    "vendor": order_link.vendor,
                    "vendor_fulfillment_id": vendor_fulfillment_id,
                    "merchant_fulfillment_id": merchant_fulfillment_id,
                    "state": state,
                    "fingerprint": _dumps(fingerprint or {}),
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
            .last_pk
        )
        return self._flink(self.db["fulfillment_links"].get(pk))

    def fulfillment_links(self, order_link_id: int) -> list[FulfillmentLink]:
        rows = self._rows_where("fulfillment_links", "order_link_id = ?", [order_link_id], order_by="id")
        return [self._flink(r) for r in rows]

    def update_fulfillment_link(self, link_id: int, **values: Any) -> None:
        if "fingerprint" in values:
            values["fingerprint"] = _dumps(values["fingerprint"])
        values["updated_at"] = iso(now_utc())
        self.db["fulfillment_links"].update(link_id, values)

    # -- stock moves (order push off) ------------------------------------------------
    def stock_move(self, key: str) -> dict[str, Any] | None:
        rows = list(self._rows_where("stock_moves", "key = ?", [key]))
        return rows[0] if rows else None

    def add_stock_move(
        self, *, key: str, vendor: str, vendor_product_id: str, vendor_variant_id: str, delta: int
    ) -> dict[str, Any]:
        stamp = iso(now_utc())
        self.db["stock_moves"].insert(
            {
                "key": key,
                "vendor": vendor,
                "vendor_product_id": vendor_product_id,
                "vendor_variant_id": vendor_variant_id,
                "delta": delta,
                "state": "pending",
                "created_at": stamp,
                "updated_at": stamp,
            },
            ignore=True,
        )
        return self.stock_move(key)  # type: ignore[return-value]

    def stock_moves(
        self, *, vendor: str | None = None, states: tuple[str, ...] = ("pending", "failed")
    ) -> list[dict[str, Any]]:
        where = [f"state IN ({', '.join('?' for _ in states)})"]
        args: list[Any] = list(states)
        if vendor:
            where.append("vendor = ?")
            args.append(vendor)
        return list(self._rows_where("stock_moves", " AND ".join(where), args, order_by="id"))

    def update_stock_move(self, key: str, **values: Any) -> None:
        values["updated_at"] = iso(now_utc())
        self.db.execute(
            f"UPDATE stock_moves SET {', '.join(f'{k} = ?' for k in values)} WHERE key = ?",
            [*values.values(), key],
        )

    # -- outbox ------------------------------------------------------------------------
    @staticmethod
    def _mail(r: dict[str, Any]) -> OutboxMail:
        return OutboxMail(
            id=r["id"],
            key=r["key"],
            vendor=r["vendor"],
            kind=r["kind"],
            recipient=r["recipient"],
            subject=r["subject"],
            body=r["body"],
            status=r["status"],
            attempts=r["attempts"] or 0,
            last_error=r["last_error"],
        )

    def queue_mail(
        self, *, key: str, vendor: str | None, kind: str, recipient: str, subject: str, body: str
    ) -> OutboxMail:
        """Queue an e-mail once per key (queuing the same key again changes nothing)."""
        self.db["outbox"].insert(
            {
                "key": key,
                "vendor": vendor,
                "kind": kind,
                "recipient": recipient,
                "subject": subject,
                "body": body,
                "status": "pending",
                "attempts": 0,
                "created_at": iso(now_utc()),
            },
            ignore=True,
        )
        return self._mail(next(iter(self._rows_where("outbox", "key = ?", [key]))))

    def outbox(self, *, statuses: tuple[str, ...] = ("pending", "failed")) -> list[OutboxMail]:
        rows = self._rows_where(
            "outbox", f"status IN ({', '.join('?' for _ in statuses)})", list(statuses), order_by="id"
        )
        return [self._mail(r) for r in rows]

    def mark_mail(self, mail_id: int, *, status: str, error: str | None = None) -> None:
        row = self.db["outbox"].get(mail_id)
        values: dict[str, Any] = {"status": status, "attempts": (row["attempts"] or 0) + 1, "last_error": error}
        if status == "sent":
            values["sent_at"] = iso(now_utc())
        self.db["outbox"].update(mail_id, values)

    # -- cursors -------------------------------------------------------------
    def cursor(self, store: str, stream: str) -> datetime | None:
        if self._cursors is not None:
            return parse_iso(self._cursors.get((store, stream)))
        row = self.db.execute("SELECT value FROM cursors WHERE store = ? AND stream = ?", [store, stream]).fetchone()
        return parse_iso(row[0]) if row else None

    def set_cursor(self, store: str, stream: str, value: datetime) -> None:
        if self._cursors is not None:
            self._cursors[(store, stream)] = self._cursor_moves[(store, stream)] = iso(value)
            return
        self._write_cursors({(store, stream): iso(value)})

    def clear_cursor(self, store: str, stream: str) -> None:
        """Forget a stream's cursor: its next pass reads everything again (`vsc reconcile --fix`)."""
        if self._cursors is not None:
            self._cursors[(store, stream)] = self._cursor_moves[(store, stream)] = None
            return
        self._write_cursors({(store, stream): None})

    def _write_cursors(self, moves: dict[tuple[str, str], str | None]) -> None:
        # Plain SQL in one transaction: a pass moves hundreds of cursors (sqlite-utils' upsert
        # inspects the schema on every call, and each commit is an fsync).
        stamp = iso(now_utc())
        gone = [key for key, value in moves.items() if value is None]
        moved = [(store, stream, value, stamp) for (store, stream), value in moves.items() if value is not None]
        with self.atomic():
            self.db.conn.executemany("DELETE FROM cursors WHERE store = ? AND stream = ?", gone)
            self.db.conn.executemany(
                "INSERT INTO cursors (store, stream, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT "
                "(store, stream) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                moved,
            )

    @contextmanager
    def pass_cursors(self) -> Iterator[None]:
        """The cursors of one pass: read at once when it starts, moved in memory as its streams
        finish their work, written by `flush_cursors` (after each stream) and when it ends, even
        by an error. A cursor is only where the next read starts, so one written late only
        means a little more read again after a crash; never work lost or done twice."""
        self._cursors = {(r[0], r[1]): r[2] for r in self.db.execute("SELECT store, stream, value FROM cursors")}
        self._cursor_moves = {}
        try:
            yield
        finally:
            try:
                self.flush_cursors()
            finally:
                self._cursors = None

    def flush_cursors(self) -> None:
        """Write the cursor moves made since the last flush, in one transaction."""
        moves, self._cursor_moves = self._cursor_moves, {}
        if moves:
            self._write_cursors(moves)

    def store_facts(self, store: str, *, max_age: timedelta) -> dict[str, Any]:
        """What was learnt about a store (its locations, API abilities), if read within `max_age`."""
        rows = list(self._rows_where("store_facts", "store = ?", [store]))
        if not rows:
            return {}
        read_at = parse_iso(rows[0]["read_at"])
        if read_at is None or now_utc() - read_at > max_age:
            return {}
        return _loads(rows[0]["facts"]) or {}

    def set_store_facts(self, store: str, facts: dict[str, Any]) -> None:
        self.db["store_facts"].upsert({"store": store, "facts": _dumps(facts), "read_at": iso(now_utc())}, pk="store")

    def forget_store_facts(self, store: str) -> None:
        self.db["store_facts"].delete_where("store = ?", [store])

    def cursors(self) -> list[dict[str, Any]]:
        self.flush_cursors()
        return list(self._rows_where("cursors", order_by="store, stream"))

    # -- passes and journal --------------------------------------------------
    def begin_pass(self, *, dry_run: bool) -> int:
        return int(
            self.db["passes"]
            .insert({"started_at": iso(now_utc()), "status": "running", "dry_run": int(dry_run)})
            .last_pk  # type: ignore[arg-type]
        )

    def finish_pass(self, pass_id: int, *, status: str, counts: dict[str, int], errors: list[str]) -> None:
        self.db["passes"].update(
            pass_id,
            {"finished_at": iso(now_utc()), "status": status, "counts": _dumps(counts), "errors": _dumps(errors)},
        )

    def last_passes(self, limit: int = 10) -> list[dict[str, Any]]:
        return list(self._rows_where("passes", order_by="id desc", limit=limit))

    def journal_begin(
        self,
        *,
        pass_id: int | None,
        store: str,
        stream: str,
        kind: str,
        key: str,
        target: str | None,
        detail: dict[str, Any] | None = None,
        vendor: str | None = None,
    ) -> int:
        """Record a write as pending before it is sent (`vendor`: the vendor it is about)."""
        return int(
            self.db["journal"]
            .insert(
                {
                    "pass_id": pass_id,
                    "at": iso(now_utc()),
                    "store": store,
                    "vendor": vendor,
                    "stream": stream,
                    "kind": kind,
                    "key": key,
                    "target": target,
                    "status": "pending",
                    "detail": _dumps(detail),
                }
            )
            .last_pk  # type: ignore[arg-type]
        )

    def journal_finish(
        self, entry_id: int, *, status: str, detail: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        """Record how a write ended (`detail` None keeps the one it began with). Earlier attempts
        at the same key still pending were cut off (their process died mid-write, or it was never
        told the outcome): a "done" or "reported" attempt settles them."""
        self.journal_finish_many([(entry_id, status, detail, error)])

    def journal_finish_many(self, finished: Sequence[tuple[int, str, dict[str, Any] | None, str | None]]) -> None:
        """`journal_finish` for many entries at once: (entry id, status, detail or None to keep
        it, error). A batch of 250 stock writes settles its entries with three statements.
        `RowMissing` when an entry is not there."""
        with_detail = [
            (status, error, _dumps(detail), i) for i, status, detail, error in finished if detail is not None
        ]
        without = [(status, error, i) for i, status, detail, error in finished if detail is None]
        changed = 0
        for sql, rows in (
            ("UPDATE journal SET status = ?, error = ?, detail = ? WHERE id = ?", with_detail),
            ("UPDATE journal SET status = ?, error = ? WHERE id = ?", without),
        ):
            if rows:
                changed += self.db.conn.executemany(sql, rows).rowcount
        if changed != len(finished):
            raise RowMissing(f"{len(finished) - changed} of {len(finished)} journal entries are not there")
        settled = [
            (f"cut off; settled by journal entry {i}", i, i)
            for i, status, _, _ in finished
            if status in ("done", "reported")
        ]
        if settled:
            self.db.conn.executemany(
                "UPDATE journal SET status = 'interrupted', error = ? WHERE status = 'pending' AND id < ? "
                "AND key = (SELECT key FROM journal WHERE id = ?)",
                settled,
            )

    @staticmethod
    def _entry(r: dict[str, Any]) -> JournalEntry:
        return JournalEntry(
            id=r["id"],
            pass_id=r["pass_id"],
            at=r["at"],
            store=r["store"],
            stream=r["stream"],
            kind=r["kind"],
            key=r["key"],
            target=r["target"],
            status=r["status"],
            detail=_loads(r["detail"]),
            error=r["error"],
        )

    def journal(
        self,
        *,
        store: str | None = None,
        key_like: str | None = None,
        since: datetime | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        where, args = [], []
        if store:
            where.append("store = ?")
            args.append(store)
        if key_like:
            where.append("(key LIKE ? OR target LIKE ? OR detail LIKE ?)")
            args += [f"%{key_like}%"] * 3
        if since:
            where.append("at >= ?")
            args.append(iso(since))
        if status:
            where.append("status = ?")
            args.append(status)
        rows = self._rows_where("journal", " AND ".join(where) or None, args, order_by="id", limit=limit)
        return [self._entry(r) for r in rows]

    # -- operating: passes, journal queries, brakes (vsc status / log / why) -------------
    def annotate_pass(self, pass_id: int, **values: Any) -> None:
        """Record more about a pass: `vendors`, `streams`, `stores` (per-store result and request
        counters), `forced`, `pid`, `host`. Lists and dicts are stored as JSON."""
        row = {k: (_dumps(v) if isinstance(v, (dict, list, tuple)) else v) for k, v in values.items()}
        self.db["passes"].update(pass_id, row)

    def interrupt_stale_passes(self) -> list[int]:
        """Mark passes still `running` as `interrupted`. Only the holder of the pass lock may call
        this: no other pass can be running then, so such rows were left by a killed process."""
        ids = [r["id"] for r in self._rows_where("passes", "status = 'running'")]
        for pass_id in ids:
            self.db["passes"].update(pass_id, {"status": "interrupted"})
        return ids

    def settle_cut_off(self, *, vendors: Sequence[str], streams: Sequence[str], by_pass: int) -> int:
        """Writes left `pending` by interrupted passes, for these vendors and streams, marked
        `interrupted`: a later pass over them finished cleanly (`by_pass`), so it re-read both
        sides and either made each such write again or found it made. Returns how many."""
        if not vendors or not streams:
            return 0
        marks = ", ".join("?" for _ in vendors), ", ".join("?" for _ in streams)
        cur = self.db.execute(
            f"UPDATE journal SET status = 'interrupted', error = ? WHERE status = 'pending' "
            f"AND vendor IN ({marks[0]}) AND stream IN ({marks[1]}) "
            "AND pass_id IN (SELECT id FROM passes WHERE status = 'interrupted')",
            [f"cut off; pass {by_pass} reconciled it", *vendors, *streams],
        )
        return cur.rowcount

    @staticmethod
    def _pass(r: dict[str, Any]) -> dict[str, Any]:
        out = dict(r)
        for key in ("counts", "errors", "vendors", "streams", "stores"):
            if key in out:
                out[key] = _loads(out[key])
        out["dry_run"] = bool(out.get("dry_run"))
        out["forced"] = bool(out.get("forced"))
        return out

    def passes(self, *, limit: int = 50, dry_run: bool | None = None) -> list[dict[str, Any]]:
        """The latest passes, newest first, with their JSON columns decoded."""
        where = None if dry_run is None else ("dry_run = 1" if dry_run else "coalesce(dry_run, 0) = 0")
        return [self._pass(r) for r in self._rows_where("passes", where, order_by="id desc", limit=limit)]

    def journal_begin_action(
        self,
        *,
        pass_id: int | None,
        store: str,
        vendor: str | None,
        stream: str,
        kind: str,
        key: str,
        target: str | None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """`journal_begin` that names the vendor the write is about."""
        return self.journal_begin(
            pass_id=pass_id, store=store, vendor=vendor, stream=stream, kind=kind, key=key, target=target, detail=detail
        )

    @staticmethod
    def _record(r: dict[str, Any]) -> JournalRecord:
        return JournalRecord(
            id=r["id"],
            pass_id=r["pass_id"],
            at=r["at"],
            store=r["store"],
            stream=r["stream"],
            kind=r["kind"],
            key=r["key"],
            target=r["target"],
            status=r["status"],
            detail=_loads(r["detail"]),
            error=r["error"],
            vendor=r.get("vendor"),
        )

    def journal_search(
        self,
        *,
        store: str | None = None,
        since: datetime | None = None,
        contains: tuple[str, ...] = (),
        statuses: tuple[str, ...] = (),
        limit: int | None = None,
    ) -> list[JournalRecord]:
        """Journal entries, oldest first (the newest `limit` of them when a limit is given).

        `store` matches the store written to or the vendor the entry is about; `contains`
        keeps entries whose key, target or detail holds any of the given texts (callers
        check word boundaries themselves: this is a prefilter).
        """
        where, args = [], []
        if store:
            # Entries journaled without a vendor still name it as one segment of their key
            # (`publish:VENDOR:ID`, `push:ORDER:VENDOR`); store names cannot hold a colon.
            where.append("(store = ? OR vendor = ? OR key LIKE ? OR key LIKE ?)")
            args += [store, store, f"%:{store}:%", f"%:{store}"]
        if since:
            where.append("at >= ?")
            args.append(iso(since))
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            args += list(statuses)
        if contains:
            ors = []
            for text in contains:
                ors.append("(key LIKE ? OR target LIKE ? OR detail LIKE ?)")
                args += [f"%{text}%"] * 3
            where.append("(" + " OR ".join(ors) + ")")
        rows = list(self._rows_where("journal", " AND ".join(where) or None, args, order_by="id desc", limit=limit))
        return [self._record(r) for r in reversed(rows)]

    def failed_actions(self, store: str | None = None) -> list[JournalRecord]:
        """Failed journal entries not followed by a finished entry under the same key: the
        actions a later pass still has to retry (the newest failure per key)."""
        where = (
            "j.status = 'failed' AND NOT EXISTS (SELECT 1 FROM journal d WHERE d.key = j.key AND d.id > j.id "
            "AND d.status IN ('done', 'reported', 'failed'))"
        )
        args: list[Any] = []
        if store:
            where += " AND (j.store = ? OR j.vendor = ?)"
            args += [store, store]
        rows = self.db.execute(f"SELECT j.* FROM journal j WHERE {where} ORDER BY j.id", args)
        cols = [c[0] for c in rows.description]
        return [self._record(dict(zip(cols, r, strict=True))) for r in rows.fetchall()]

    def unfinished_writes(self, store: str | None = None) -> list[JournalRecord]:
        """Journal entries left `pending` by a pass that is no longer running (killed mid-write):
        the write may or may not have reached the store."""
        where = (
            "j.status = 'pending' AND EXISTS (SELECT 1 FROM passes p WHERE p.id = j.pass_id AND p.status != 'running')"
        )
        args: list[Any] = []
        if store:
            where += " AND (j.store = ? OR j.vendor = ?)"
            args += [store, store]
        rows = self.db.execute(f"SELECT j.* FROM journal j WHERE {where} ORDER BY j.id", args)
        cols = [c[0] for c in rows.description]
        return [self._record(dict(zip(cols, r, strict=True))) for r in rows.fetchall()]

    def engage_brake(self, vendor: str, *, reason: str, detail: dict[str, Any], pass_id: int | None) -> None:
        """Stop a vendor until `vsc sync --force`: its passes are skipped while the brake holds."""
        self.db["brakes"].upsert(
            {
                "vendor": vendor,
                "reason": reason,
                "detail": _dumps(detail),
                "pass_id": pass_id,
                "engaged_at": iso(now_utc()),
            },
            pk="vendor",
        )

    def brakes(self) -> dict[str, dict[str, Any]]:
        """Engaged safety brakes by vendor."""
        out = {}
        for r in self._rows_where("brakes", order_by="vendor"):
            out[r["vendor"]] = {**r, "detail": _loads(r["detail"]) or {}}
        return out

    def release_brake(self, vendor: str) -> bool:
        """Release a vendor's brake; True if one was engaged."""
        held = bool(self.db["brakes"].count_where("vendor = ?", [vendor]))
        self.db["brakes"].delete_where("vendor = ?", [vendor])
        return held


@dataclass(frozen=True)
class JournalRecord(JournalEntry):
    """A journal entry with the vendor it is about (entries written before 0003 have none)."""

    vendor: str | None = None
