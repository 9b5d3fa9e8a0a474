"""The `vsc` command: parse, call the library, render. No business logic lives here.

`main()` is the single place where errors become messages and exit codes
(CONTRACT.md): a `VscError` prints its sentence and hint on stderr and exits
with its status; anything else is a bug and says so. Data goes to stdout
(`--json` prints exactly one JSON document there); progress and logs go to
stderr.
"""

from __future__ import annotations

import copy
import functools
import gc
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.main

from vsc import __version__, config
from vsc.config import Settings
from vsc.engine.context import Context
from vsc.errors import ApiError, ExitStatus, TlsError, UsageError, VscError
from vsc.secrets import redactor
from vsc.state import State

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

app = typer.Typer(
    name="vsc",
    help="Keep marketplace vendors' Shopify, WooCommerce and Squarespace stores in step with a merchant's "
    "Shopify store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
connect_app = typer.Typer(help="Connect a store: verify its credentials, then save it.", no_args_is_help=True)
stores_app = typer.Typer(help="List the connected stores (see also `stores check`).", invoke_without_command=True)
map_app = typer.Typer(
    help="Publish vendor products to the merchant store, or link them to existing listings.", no_args_is_help=True
)
app.add_typer(connect_app, name="connect")
app.add_typer(stores_app, name="stores")
app.add_typer(map_app, name="map")


class _LazyConsole:
    """A rich `Console` made on first use. A cron pass (`vsc sync --json`) prints nothing
    through rich, and importing rich costs ~60 ms of CPU on every pass."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def get(self) -> Console:
        """The console itself, for rich objects that are handed one (`Progress(console=...)`)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


def new_table(*columns: str, **options: Any) -> Table:
    """A rich `Table`, rich imported only when a command prints one."""
    from rich.table import Table

    return Table(*columns, **options)


def real_console(console: Console) -> Console:
    """The rich console behind `out`/`err` (tests may have swapped in a plain one)."""
    return console.get() if isinstance(console, _LazyConsole) else console


out: Console = _LazyConsole(soft_wrap=True)  # type: ignore[assignment]
err: Console = _LazyConsole(stderr=True, soft_wrap=True)  # type: ignore[assignment]


class Role(StrEnum):
    merchant = "merchant"
    vendor = "vendor"


class MatchKey(StrEnum):
    sku = "sku"
    barcode = "barcode"


class Options:
    db: Path
    config_path: Path | None
    verbose: int = 0


OPTS = Options()


def default_db() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("vsc", appauthor=False)) / "vsc.db"


def settings_path() -> Path:
    return OPTS.config_path or OPTS.db.with_name("vsc.yaml")


def open_context(*, create: bool = False) -> Context:
    state = State.create(OPTS.db) if create else State.open(OPTS.db)
    settings = config.load(settings_path(), required=OPTS.config_path is not None)
    return Context(state=state, settings=settings)


def load_settings() -> Settings:
    return config.load(settings_path(), required=OPTS.config_path is not None)


def emit_json(data: Any) -> None:
    """Print one JSON document: its outer two levels one item a line, indented, and each item
    compact on its line (a pass's actions, a store, a link). json's indenting encoder is
    written in Python, the compact one in C: `sync --json` after 500 stock changes spent ~0.1 s
    on indenting its output."""
    sys.stdout.write(_json_lines(data, 0) + "\n")


def _json_lines(value: Any, depth: int) -> str:
    if depth >= 2 or not value or not isinstance(value, dict | list):
        return json.dumps(value, default=str)
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(str(k))}: {_json_lines(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    return "[\n" + ",\n".join(inner + _json_lines(v, depth + 1) for v in value) + f"\n{pad}]"


class RedactingFormatter(logging.Formatter):
    """Blanks registered secrets out of the whole formatted record, traceback included (the
    redactor filter sees only the message; exception text is formatted after it ran)."""

    def format(self, record: logging.LogRecord) -> str:
        return redactor.redact(super().format(record))


def setup_logging(verbose: int, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(redactor)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("vsc")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # The scheduler behind `vsc sync --every` says when it skips or misses a run.
    scheduler = logging.getLogger("apscheduler")
    scheduler.handlers[:] = [handler]
    scheduler.setLevel(logging.DEBUG if debug else logging.WARNING)
    scheduler.propagate = False


def _version(value: bool) -> None:
    if value:
        out.print(f"vsc {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    db: Annotated[
        Path | None,
        typer.Option(
            "--db", help="State database (default: vsc.db in the user data dir; env VSC_DB).", envvar="VSC_DB"
        ),
    ] = None,
    config_path: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings file (default: vsc.yaml beside the database; env VSC_CONFIG).",
            envvar="VSC_CONFIG",
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Log what vsc does on stderr.")] = 0,
    debug: Annotated[bool, typer.Option("--debug", help="Log every request on stderr (secrets redacted).")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=lambda v: _version(v)),
    ] = False,
) -> None:
    OPTS.db = (db or default_db()).expanduser()
    OPTS.config_path = config_path.expanduser() if config_path else None
    OPTS.verbose = verbose
    setup_logging(verbose, debug)


# -- init ------------------------------------------------------------------------------


@app.command()
def init(
    force: Annotated[bool, typer.Option(help="Rewrite the settings file even if it exists.")] = False,
) -> None:
    """Create the state database and a commented settings file beside it."""
    existed = OPTS.db.exists()
    state = State.create(OPTS.db)
    state.close()
    path = settings_path()
    wrote = False
    if force or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(config.example_text())
        wrote = True
    err.print(f"{'Database already at' if existed else 'Created database'} {OPTS.db}")
    err.print(f"{'Wrote settings' if wrote else 'Settings already at'} {path}")
    err.print("Next: connect the merchant with `vsc connect shopify NAME --role merchant --shop SHOP --token-env VAR`.")


# -- connect ---------------------------------------------------------------------------


def _secret_option_warning(flag: str, env_flag: str) -> None:
    err.print(
        f"[yellow]warning:[/] a secret given with {flag} is kept in your shell history (and shows in the process "
        f"list while vsc runs); prefer {env_flag} VAR or leave both out to be prompted."
    )


CaBundle = Annotated[
    str | None,
    typer.Option(
        "--ca-bundle",
        metavar="PATH",
        help="Check the store's TLS certificate against this PEM CA bundle (a proxy's or a private CA); "
        "REQUESTS_CA_BUNDLE sets one for every store.",
    ),
]
InsecureTls = Annotated[
    bool,
    typer.Option(
        "--insecure-skip-tls-verify",
        help="DANGEROUS: do not check the store's TLS certificate at all (credentials can be stolen on the "
        "way). Prefer --ca-bundle. Shown in `vsc stores` and warned about at every pass.",
    ),
]


def _tls_warning(name: str, tls: Any) -> None:
    if tls.insecure:
        err.print(
            f"[bold red]WARNING:[/] TLS certificate verification is OFF for {name} (--insecure-skip-tls-verify). "
            "Anyone on the network path can impersonate the store and read its credentials and your orders. "
            "vsc will warn at every pass that uses it; prefer --ca-bundle PATH.",
            highlight=False,
        )


def _prompt_secret(what: str, flag: str, env_flag: str) -> str:
    if not sys.stdin.isatty():
        raise UsageError(f"no {what} given", hint=f"Pass {env_flag} VAR (or {flag} VALUE).")
    return typer.prompt(what, hide_input=True)


def _connect(platform: str, name: str, role: str, url: str, inputs: list[Any], build: Any, tls: Any) -> None:
    from vsc.engine.stores import connect

    state = State.open(OPTS.db)
    _tls_warning(name, tls)
    again = any(s.name == name for s in state.stores())
    info = connect(state, platform=platform, name=name, role=role, url=url, inputs=inputs, build=build, tls=tls)
    what = "Reconnected" if again else "Connected"
    out.print(f"{what} {role} {name} ({platform}): {info.name}" + (f", {info.currency}" if info.currency else ""))
    if again:
        out.print("New credentials saved; links, cursors and the journal are kept.")


@connect_app.command("shopify")
def connect_shopify(
    name: Annotated[str, typer.Argument(help="A name for the store in vsc.")],
    role: Annotated[Role, typer.Option(help="merchant or vendor.")],
    shop: Annotated[str, typer.Option(help="name.myshopify.com, https://..., or http://127.0.0.1:PORT (sandbox).")],
    token: Annotated[str | None, typer.Option(help="Admin API access token (kept in the system keyring).")] = None,
    token_env: Annotated[str | None, typer.Option(help="Name of an environment variable holding the token.")] = None,
    ca_bundle: CaBundle = None,
    insecure_skip_tls_verify: InsecureTls = False,
) -> None:
    """Connect a Shopify store (the merchant, or a vendor)."""
    from vsc.connectors.shopify import ShopifyConnector
    from vsc.connectors.shopify.connector import shop_url
    from vsc.engine.stores import SecretInput, tls_choice

    url = shop_url(shop)
    tls = tls_choice(ca_bundle, insecure_skip_tls_verify)
    if token and token_env:
        raise UsageError("give --token or --token-env, not both")
    if token:
        _secret_option_warning("--token", "--token-env")
    if not token and not token_env:
        token = _prompt_secret("Admin API access token", "--token", "--token-env")
    inputs = [SecretInput("token", token, token_env, "--token-env")]
    _connect(
        "shopify",
        name,
        role.value,
        url,
        inputs,
        lambda v: ShopifyConnector.open(name, url, v["token"], verify=tls.verify),
        tls,
    )


def _not_available(platform: str) -> None:
    raise UsageError(f"connecting {platform} stores is not available yet in this version of vsc")


@connect_app.command("woocommerce")
def connect_woocommerce(
    name: Annotated[str, typer.Argument(help="A name for the store in vsc.")],
    url: Annotated[str, typer.Option(help="The site's address, https://shop.example.")],
    key: Annotated[str | None, typer.Option(help="REST API consumer key ck_... (kept in the keyring).")] = None,
    secret: Annotated[str | None, typer.Option(help="REST API consumer secret cs_... (kept in the keyring).")] = None,
    key_env: Annotated[str | None, typer.Option(help="Environment variable holding the consumer key.")] = None,
    secret_env: Annotated[str | None, typer.Option(help="Environment variable holding the consumer secret.")] = None,
    ca_bundle: CaBundle = None,
    insecure_skip_tls_verify: InsecureTls = False,
) -> None:
    """Connect a vendor's WooCommerce store (REST API wc/v3, Read/Write keys)."""
    try:
        from vsc.connectors.woocommerce import WooCommerceConnector
    except ImportError:
        _not_available("WooCommerce")
    from vsc.engine.stores import SecretInput, tls_choice

    tls = tls_choice(ca_bundle, insecure_skip_tls_verify)
    if (key and key_env) or (secret and secret_env):
        raise UsageError("give each secret once: --key or --key-env, --secret or --secret-env")
    if key or secret:
        _secret_option_warning("--key/--secret", "--key-env/--secret-env")
    if not key and not key_env:
        key = _prompt_secret("Consumer key", "--key", "--key-env")
    if not secret and not secret_env:
        secret = _prompt_secret("Consumer secret", "--secret", "--secret-env")
    inputs = [SecretInput("key", key, key_env, "--key-env"), SecretInput("secret", secret, secret_env, "--secret-env")]
    _connect(
        "woocommerce",
        name,
        "vendor",
        url,
        inputs,
        lambda v: WooCommerceConnector.open(name, url, v["key"], v["secret"], verify=tls.verify),
        tls,
    )


@connect_app.command("squarespace")
def connect_squarespace(
    name: Annotated[str, typer.Argument(help="A name for the store in vsc.")],
    api_key: Annotated[str | None, typer.Option(help="Commerce API key (kept in the keyring).")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the API key.")] = None,
    api_url: Annotated[str, typer.Option(help="API base URL (a sandbox's http://127.0.0.1:PORT).")] = (
        "https://api.squarespace.com"
    ),
    ca_bundle: CaBundle = None,
    insecure_skip_tls_verify: InsecureTls = False,
) -> None:
    """Connect a vendor's Squarespace store (Commerce APIs; Products, Inventory and Orders read/write)."""
    try:
        from vsc.connectors.squarespace import SquarespaceConnector
    except ImportError:
        _not_available("Squarespace")
    from vsc.engine.stores import SecretInput, tls_choice

    tls = tls_choice(ca_bundle, insecure_skip_tls_verify)
    if api_key and api_key_env:
        raise UsageError("give --api-key or --api-key-env, not both")
    if api_key:
        _secret_option_warning("--api-key", "--api-key-env")
    if not api_key and not api_key_env:
        api_key = _prompt_secret("API key", "--api-key", "--api-key-env")
    inputs = [SecretInput("api_key", api_key, api_key_env, "--api-key-env")]
    _connect(
        "squarespace",
        name,
        "vendor",
        api_url,
        inputs,
        lambda v: SquarespaceConnector.open(name, v["api_key"], api_url, verify=tls.verify),
        tls,
    )


# -- stores ----------------------------------------------------------------------------


@stores_app.callback()
def stores(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the connected stores: name, platform, role, url, status."""
    if ctx.invoked_subcommand:
        return
    state = State.open(OPTS.db)
    known = state.stores()
    rows = [
        {
            "name": s.name,
            "platform": s.platform,
            "role": s.role,
            "url": s.url,
            "status": s.check_status or "unknown",
            "checked_at": s.checked_at,
            "currency": s.currency,
            "tls": {"verify": not s.insecure_tls, "ca_bundle": s.ca_bundle},
        }
        for s in known
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        err.print("No stores yet. Connect one with `vsc connect shopify|woocommerce|squarespace ...`.")
        return
    table = new_table("name", "platform", "role", "url", "status", "checked", "tls")
    for r, s in zip(rows, known, strict=True):
        tls = s.tls_label if not s.insecure_tls else f"[bold red]{s.tls_label}[/]"
        table.add_row(r["name"], r["platform"], r["role"], r["url"], r["status"], r["checked_at"] or "", tls)
    out.print(table)


@stores_app.command("check")
def stores_check(
    name: Annotated[str | None, typer.Argument(help="Only this store.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Call each store once and report reachability and auth."""
    c = open_context()
    rows = [c.state.store(name)] if name else c.state.stores()
    results = []
    for row in rows:
        try:
            info = c.connector(row.name).check()
            status, detail = "ok", info.name
            c.state.record_check(row.name, "ok", info.currency)
        except TlsError as exc:
            status, detail = "tls failed", str(exc)
            c.state.record_check(row.name, status)
        except VscError as exc:
            status, detail = ("auth failed" if exc.exit_status == ExitStatus.USAGE else "unreachable"), str(exc)
            c.state.record_check(row.name, status)
        results.append({"name": row.name, "platform": row.platform, "status": status, "detail": detail})
    if as_json:
        emit_json(results)
    else:
        table = new_table("name", "platform", "status", "detail")
        for r in results:
            style = "green" if r["status"] == "ok" else "red"
            table.add_row(r["name"], r["platform"], f"[{style}]{r['status']}[/]", r["detail"])
        out.print(table)
    if any(r["status"] != "ok" for r in results):
        raise typer.Exit(ExitStatus.ACTIONS_FAILED)


@stores_app.command("tls")
def stores_tls(
    name: Annotated[str, typer.Argument(help="The store.")],
    ca_bundle: CaBundle = None,
    insecure_skip_tls_verify: InsecureTls = False,
    default: Annotated[
        bool,
        typer.Option("--default", help="Check against the default trust store (or REQUESTS_CA_BUNDLE) again."),
    ] = False,
) -> None:
    """Show or change how a store's TLS certificate is checked; a change is tried on the store first."""
    from dataclasses import replace

    from vsc.connectors import open_connector
    from vsc.engine.stores import tls_choice

    state = State.open(OPTS.db)
    row = state.store(name)
    if not (ca_bundle or insecure_skip_tls_verify or default):
        out.print(f"{name}: TLS certificate {row.tls_label}")
        return
    if default and (ca_bundle or insecure_skip_tls_verify):
        raise UsageError("give one of --ca-bundle PATH, --insecure-skip-tls-verify or --default")
    tls = tls_choice(ca_bundle, insecure_skip_tls_verify)
    _tls_warning(name, tls)
    changed = replace(row, ca_bundle=tls.ca_bundle, insecure_tls=tls.insecure)
    connector = open_connector(changed)
    try:
        connector.check()
    except ApiError as exc:
        raise UsageError(
            f"{name}: the store could not be reached this way; nothing was changed. {exc}", hint=exc.hint
        ) from None
    finally:
        connector.session.close()
    state.set_store_tls(name, ca_bundle=tls.ca_bundle, insecure=tls.insecure)
    out.print(f"{name}: TLS certificate {changed.tls_label}")


@stores_app.command("remove")
def stores_remove(
    name: Annotated[str, typer.Argument(help="The store to forget.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget a store: its links, cursors and keyring entries (nothing is changed on the store)."""
    from vsc import secrets

    state = State.open(OPTS.db)
    row = state.store(name)
    links = len(state.product_links(vendor=name))
    if not yes and not typer.confirm(f"Forget {name} and its {links} product link(s)?"):
        raise typer.Exit(ExitStatus.USAGE)
    state.remove_store(name)
    secrets.forget(row.secret_ref)
    out.print(f"Removed {name}.")


# -- sync ------------------------------------------------------------------------------


def render_pass(result: Any) -> None:
    if not result.actions and not result.errors:
        out.print("Nothing to do: everything is in step." if not result.dry_run else "Dry run: nothing to do.")
        return
    if result.actions:
        title = f"Dry run: the plan ({len(result.actions)} action(s), nothing sent)" if result.dry_run else None
        table = new_table("stream", "vendor", "kind", "store", "target", "what", "status", title=title)
        for a in result.actions:
            style = {"done": "green", "failed": "red", "reported": "yellow"}.get(a.status, "")
            status = f"[{style}]{a.status}[/]" if style else a.status
            table.add_row(a.stream, a.vendor or a.store, a.kind, a.store, a.target, a.summary, status)
        out.print(table)
    for e in result.errors:
        err.print(f"[red]error:[/] {e}", highlight=False)
    for n in getattr(result, "notices", []):
        err.print(f"[yellow]note:[/] {n}", highlight=False)


def _progress_steps(streams: list[str] | None, vendor: str | None) -> int:
    from vsc import engine

    wanted = engine.wanted_streams(streams)
    if vendor:
        return len(wanted)
    state = State.open(OPTS.db)
    try:
        return len(wanted) * len(state.vendors())
    finally:
        state.close()


@contextmanager
def pass_progress(enabled: bool, total: int | None) -> Iterator[Any]:
    """A progress bar on stderr while a pass runs, when stderr is a terminal (never in --json)."""
    if not enabled or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=real_console(err), transient=True) as bar:
        task = bar.add_task("sync", total=total)
        started: list[bool] = []

        def step(vendor: str, stream: str) -> None:
            bar.update(task, description=f"{vendor}: {stream}", advance=1 if started else 0)
            started.append(True)

        yield step


@app.command()
def sync(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and send no write.")] = False,
    only: Annotated[
        str | None, typer.Option("--only", help="Comma-separated streams: catalog, inventory, orders, tracking.")
    ] = None,
    vendor: Annotated[str | None, typer.Option("--vendor", help="Only this vendor.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the pass as JSON.")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Release the safety brakes on the vendors of this pass and apply its plan."),
    ] = False,
    every: Annotated[
        str | None,
        typer.Option(
            "--every",
            metavar="DURATION",
            help="Run a pass now and then every DURATION (30s, 5m, 1h) until Ctrl-C or SIGTERM.",
        ),
    ] = None,
) -> None:
    """Run one reconciliation pass (suited to cron and systemd timers), or passes on a schedule."""
    from vsc import engine

    streams = [s.strip() for s in only.split(",") if s.strip()] if only else None
    if every is not None:
        _sync_every(every, streams, vendor, as_json, dry_run=dry_run, force=force)
        return
    c = open_context()
    try:
        with pass_progress(not as_json, _progress_steps(streams, vendor)) as progress:
            result = engine.sync(c, streams=streams, vendor=vendor, dry_run=dry_run, force=force, progress=progress)
    finally:
        c.close()
    if as_json:
        emit_json(result.as_json())
    else:
        render_pass(result)
    if not result.ok:
        raise typer.Exit(ExitStatus.ACTIONS_FAILED)


def _sync_every(every: str, streams: list[str] | None, vendor: str | None, as_json: bool, **flags: bool) -> None:
    """`vsc sync --every`: one pass per run on a schedule; each pass opens its own context, so
    settings edits apply from the next pass on. With --json, one JSON document per pass per line."""
    import threading

    from vsc import engine
    from vsc.engine.schedule import parse_duration, run_every, stop_on_signals, systemd_span

    interval = parse_duration(every, what="--every duration")
    if flags.get("force"):
        raise UsageError("--force applies to one pass, not to a schedule", hint="Run `vsc sync --force` once first.")
    if flags.get("dry_run"):
        raise UsageError("--dry-run shows one plan; it does not run on a schedule", hint="Run `vsc sync --dry-run`.")
    engine.wanted_streams(streams)
    c = open_context()  # settings, database and vendor checked once up front: exit 2 now, not every run
    try:
        c.merchant_row()
        if vendor:
            c.vendor_row(vendor)
    finally:
        c.close()
    stop = threading.Event()

    def one_pass() -> None:
        ctx = open_context()
        try:
            result = engine.sync(ctx, streams=streams, vendor=vendor, should_stop=stop.is_set)
        finally:
            ctx.close()
        if as_json:
            sys.stdout.write(json.dumps(result.as_json(), default=str) + "\n")
            sys.stdout.flush()
            return
        done = sum(1 for a in result.actions if a.status == "done")
        failed = sum(1 for a in result.actions if a.status == "failed")
        out.print(f"pass {result.pass_id}: {done} done, {failed} failed, {len(result.errors)} error(s)")
        for e in result.errors:
            err.print(f"[red]error:[/] {e}", highlight=False)

    err.print(f"Running a pass every {systemd_span(interval)}; Ctrl-C or SIGTERM stops after the pass in flight.")
    with stop_on_signals(stop):
        run_every(interval, one_pass, stop=stop)
    err.print("Stopped.")


# -- demo and sandbox --------------------------------------------------------------------


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="Keep the temporary database and print its path.")] = False,
) -> None:
    """The whole story on sandbox stores and a temporary database: connect, publish, edit, sync."""
    from vsc.demo import run_demo

    run_demo(out, keep=keep)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="First port to listen on (0: any free ports).")] = 0,
    products: Annotated[int, typer.Option(help="Sample products on each vendor store.")] = 3,
) -> None:
    """Run sandbox stores in the foreground, printing their URLs and tokens (Ctrl-C stops them)."""
    from vsc.demo import run_sandbox

    run_sandbox(out, port=port, products=products)


# The command groups live in their own modules; importing them registers their commands.
from vsc.commands import mapping as _mapping_commands  # noqa: E402,F401
from vsc.commands import operating as _operating_commands  # noqa: E402,F401

# -- entry point -------------------------------------------------------------------------


#: The root options that take a value: the word after them is not a command name.
_VALUED_OPTIONS = frozenset({"--db", "--config"})


def _command_name(argv: list[str]) -> str | None:
    """The command word of `argv` (the first word that is neither an option nor its value)."""
    words = iter(argv)
    for word in words:
        if word in _VALUED_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


@functools.cache
def _command(name: str | None = None) -> Any:
    # Typer builds the click command tree from the signatures on every `app()` call; the tree
    # never changes in one process, and tests run the CLI hundreds of times. A process runs one
    # command, so when its name is known only that command's branch is built: a cron-started
    # `vsc sync` does not pay ~35 ms of CPU for the parsers of the other twenty commands.
    # Anything else (`vsc --help`, a misspelt name) gets the whole tree and click's messages.
    own = [c for c in app.registered_commands if (c.name or typer.main.get_command_name(c.callback.__name__)) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if name is None or not (own or groups):
        return typer.main.get_command(app)
    branch = copy.copy(app)
    branch.registered_commands, branch.registered_groups = own, groups
    return typer.main.get_command(branch)


#: the collector's thresholds for a vsc process (Python's defaults: 700, 10, 10)
GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    """Set the garbage collector for a pass: what is imported by now lives as long as the process
    (`gc.freeze` keeps every later collection from walking it again), and the young generation
    is collected every 20,000 allocations, not 700. A pass allocates hundreds of thousands of
    objects that live until its streams are done (parsed answers, rows, plans); with Python's
    defaults the collector re-walked them ~150 times a pass, 0.13-0.22 s of CPU at 200
    vendors, ~0.05 s with these (bench/RESULTS.md). Cycles are still collected, less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; the one place errors become messages and exit codes.

    The parser handles its own usage errors (exit 2) in standalone mode; every
    `VscError` from the library comes out here and is turned into its sentence,
    its hint and its exit status.
    """
    if argv is None:  # the process's own command line (not a caller's, such as the tests')
        tune_gc()
    try:
        args = sys.argv[1:] if argv is None else argv
        _command(_command_name(args))(args=args, prog_name="vsc")
    except VscError as exc:
        err.print(f"[red]error:[/] {redactor.redact(exc.message)}", highlight=False)
        if exc.hint:
            err.print(f"  {redactor.redact(exc.hint)}", highlight=False)
        sys.exit(int(exc.exit_status))
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(130)
    except Exception:  # a bug: say so, with a traceback that cannot leak a secret
        import traceback

        err.print("[red]vsc hit a bug[/] (please report it with the lines below):", highlight=False)
        sys.stderr.write(redactor.redact(traceback.format_exc()))
        sys.exit(int(ExitStatus.ACTIONS_FAILED))


if __name__ == "__main__":  # pragma: no cover
    main()
