"""Running passes on a schedule: `vsc sync --every`, and the units `vsc schedule` prints.

`run_every` runs one job on APScheduler 3 (a background scheduler, so the main
thread stays free to take signals): one job, never two runs at once
(`max_instances=1`), runs missed while the machine slept or a pass ran long
collapsed into one (`coalesce`, no misfire limit: a late run still runs, once).
Each run is one pass; an error in it is logged and the schedule goes on. A stop
(Ctrl-C, SIGTERM) lets the pass in flight end at its next vendor boundary, then
returns.

`systemd_units` and `crontab` write what a timer or cron needs to run `vsc sync`:
the absolute path of this vsc, the database and settings, and the names (never
the values) of the environment variables the stores' secrets are read from.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vsc.errors import LockHeld, UsageError, VscError

log = logging.getLogger("vsc.schedule")

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)\s*(s|sec|min|m|h|d|w)", re.IGNORECASE)


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """`30s`, `5m`, `1h`, `2d`, `1w`, or combinations such as `1h30m`; a bare number is seconds."""
    raw = (text or "").strip().lower()
    if raw.isdigit():
        seconds = int(raw)
    else:
        pos, seconds = 0, 0
        for m in _DURATION.finditer(raw):
            if m.start() != pos:
                break
            seconds += int(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not raw or pos != len(raw):
            raise UsageError(
                f"{text!r} is not a {what}",
                hint="Write it as a number and a unit: 30s, 5m, 1h, 2d, 1w (or combined: 1h30m).",
            )
    if seconds <= 0:
        raise UsageError(f"the {what} must be longer than 0 seconds, not {text!r}")
    return timedelta(seconds=seconds)


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time for `--since`: an ISO date or date-time (UTC unless it names its offset)
    or a time ago such as `2h`, `3d`."""
    raw = (text or "").strip()
    now = now or datetime.now(UTC)
    if re.fullmatch(r"(\d+\s*[a-zA-Z]+\s*)+", raw):
        return now - parse_duration(raw, what="time ago")
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{text!r} is neither a date nor a time ago",
            hint="Give an ISO date or time (2026-03-01, 2026-03-01T14:00, 2026-03-01T14:00+02:00) "
            "or a time ago (30m, 2h, 3d).",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# -- vsc sync --every --------------------------------------------------------------------


def run_every(interval: timedelta, job: Callable[[], Any], *, stop: threading.Event) -> None:
    """Run `job` now and then every `interval` until `stop` is set; return once the run in flight ended."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    def one_run() -> None:
        if stop.is_set():
            return
        try:
            job()
        except LockHeld as exc:
            log.warning("skipped this run: %s", exc)
        except VscError as exc:
            log.error("this pass failed: %s%s (the schedule goes on)", exc, f" {exc.hint}" if exc.hint else "")
        except Exception:  # a bug in one pass must not end months of unattended runs
            log.exception("this pass failed with an unexpected error (the schedule goes on)")

    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        one_run,
        IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC),
        id="vsc-sync",
        name="vsc sync",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    try:
        while not stop.wait(0.2):
            pass
    finally:
        scheduler.shutdown(wait=True)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set `stop` on SIGTERM or the first Ctrl-C (a second Ctrl-C interrupts at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: Any) -> None:
        log.warning("stopping after the pass in flight (%s)", signal.Signals(signum).name)
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


# -- vsc schedule systemd|cron -----------------------------------------------------------


@dataclass(frozen=True)
class SecretVar:
    """An environment variable vsc reads a secret from (the name only; never the value)."""

    name: str
    owner: str  # the store, or "smtp"
    field: str


def secret_vars(stores: list[Any], settings: Any) -> tuple[list[SecretVar], list[str]]:
    """The environment variables the stores' (and SMTP's) secrets are read from, and the stores
    whose secrets are in the system keyring instead."""
    found: list[SecretVar] = []
    keyring: list[str] = []
    for store in stores:
        for field, ref in sorted((store.secret_ref or {}).items()):
            if "env" in ref:
                found.append(SecretVar(ref["env"], store.name, field))
            elif store.name not in keyring:
                keyring.append(store.name)
    smtp = getattr(settings, "smtp", None)
    if smtp is not None and smtp.password_env:
        found.append(SecretVar(smtp.password_env, "smtp", "password"))
    seen: set[str] = set()
    unique = [v for v in found if not (v.name in seen or seen.add(v.name))]  # type: ignore[func-returns-value]
    return unique, keyring


def vsc_command() -> list[str]:
    """The absolute command that runs this vsc (the `vsc` script beside this Python, if any)."""
    script = Path(sys.executable).parent / ("vsc.exe" if os.name == "nt" else "vsc")
    if script.exists():
        return [str(script.absolute())]
    found = shutil.which("vsc")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "vsc"]


def systemd_span(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cron_schedule(interval: timedelta) -> str:
    """The five cron fields for `interval`; cron runs at most once a minute, on whole minutes."""
    seconds = int(interval.total_seconds())
    minutes, rest = divmod(seconds, 60)
    if rest or minutes == 0:
        raise UsageError(
            f"cron cannot run every {systemd_span(interval)}: it counts whole minutes",
            hint="Pick a whole number of minutes, or use `vsc schedule systemd` or `vsc sync --every`.",
        )
    if minutes < 60:
        return f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
    hours, rest = divmod(minutes, 60)
    if rest == 0 and hours < 24:
        return f"0 */{hours} * * *" if hours > 1 else "0 * * * *"
    if minutes == 1440:
        return "0 0 * * *"
    raise UsageError(
        f"cron cannot run every {systemd_span(interval)} evenly",
        hint="Use minutes below an hour (5m), whole hours below a day (2h), or 1d; or `vsc schedule systemd`.",
    )


def _sync_argv(db: Path, config: Path | None) -> list[str]:
    argv = [*vsc_command(), "--db", str(db.absolute())]
    if config is not None:
        argv += ["--config", str(config.absolute())]
    return [*argv, "sync"]


def env_file_text(variables: list[SecretVar], keyring: list[str], env_file: Path) -> str:
    lines = [
        f"# {env_file}: the secrets vsc reads at every pass. Fill in the values; keep it private:",
        f"#   chmod 600 {shlex.quote(str(env_file))}",
    ]
    for v in variables:
        # Comments on lines of their own: systemd would read a trailing one as part of the value.
        lines += [f"# {v.owner}: its {v.field}", f"{v.name}="]
    if not variables:
        lines.append("# (no store reads its secret from the environment)")
    for name in keyring:
        lines.append(
            f"# {name}: its secret is in the system keyring, which a timer or cron job usually cannot reach; "
            f"connect it again with --*-env VAR to read it from this file"
        )
    return "\n".join(lines) + "\n"


def systemd_units(
    *,
    db: Path,
    config: Path | None,
    interval: timedelta,
    variables: list[SecretVar],
    keyring: list[str],
    env_file: Path,
    user: bool = False,
    name: str = "vsc-sync",
) -> dict[str, str]:
    """The service, the timer and the environment file, by file name."""

    def quote(arg: str) -> str:
        return shlex.quote(arg).replace("%", "%%")

    where = "~/.config/systemd/user/" if user else "/etc/systemd/system/"
    enable = (
        f"systemctl{' --user' if user else ''} daemon-reload && systemctl{' --user' if user else ''} "
        f"enable --now {name}.timer"
    )
    after = [] if user else ["Wants=network-online.target", "After=network-online.target"]
    service = "\n".join(
        [
            f"# {where}{name}.service: one vsc pass. Enable with: {enable}",
            "[Unit]",
            "Description=vsc: one sync pass between the vendor stores and the merchant store",
            *after,
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart={' '.join(quote(a) for a in _sync_argv(db, config))}",
            "# The secrets, from the environment variables the stores were connected with (names only here):",
            f"EnvironmentFile={quote(str(env_file.absolute()))}",
            "# 3: another pass held the lock, so this run is skipped, not failed (1: some actions failed).",
            "SuccessExitStatus=3",
            "",
        ]
    )
    timer = "\n".join(
        [
            f"# {where}{name}.timer: runs {name}.service every {systemd_span(interval)}",
            "[Unit]",
            f"Description=Run vsc sync every {systemd_span(interval)}",
            "",
            "[Timer]",
            "OnBootSec=1min",
            f"OnUnitActiveSec={systemd_span(interval)}",
            f"Unit={name}.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    return {
        f"{name}.service": service,
        f"{name}.timer": timer,
        env_file.name: env_file_text(variables, keyring, env_file),
    }


def crontab(
    *,
    db: Path,
    config: Path | None,
    interval: timedelta,
    variables: list[SecretVar],
    keyring: list[str],
    env_file: Path,
    log_file: Path,
) -> dict[str, str]:
    """The crontab line (with a comment) and the environment file it reads, by name."""

    def quote(arg: str) -> str:
        return shlex.quote(arg).replace("%", "\\%")

    command = " ".join(quote(a) for a in _sync_argv(db, config))
    names = ", ".join(v.name for v in variables) or "none"
    line = (
        f"{cron_schedule(interval)} set -a; . {quote(str(env_file.absolute()))}; set +a; "
        f"{command} >> {quote(str(log_file.absolute()))} 2>&1"
    )
    text = "\n".join(
        [
            f"# vsc sync every {systemd_span(interval)}; add with `crontab -e`. Secrets ({names}) come from",
            f"# {env_file.absolute()}; exit status 3 means another pass held the lock (the run is skipped).",
            line,
            "",
        ]
    )
    return {"crontab": text, env_file.name: env_file_text(variables, keyring, env_file)}
