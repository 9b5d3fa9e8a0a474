"""The pass lock: at most one pass at a time on one state database, across processes.

Why an OS file lock (`flock` on `vsc.db.lock` beside the database) and not a row
in a `locks` table with pid, host and heartbeat:

- the kernel releases it the moment its holder dies, however it dies (SIGKILL,
  OOM killer, power cut), so a killed pass never leaves a lock that a later pass
  must judge stale: no heartbeat thread, no clock to trust, no pid reused by an
  unrelated process to be fooled by;
- it holds exactly where SQLite itself holds (a local file system), which is the
  only place a vsc database can live anyway; when the state moves to PostgreSQL
  the same object becomes `pg_advisory_lock`, released just as surely when the
  holder's session dies.

The holder writes its pid, host and start time into the lock file, so a pass
that finds the lock taken can say who holds it, and a pass that takes over a
lock whose file still names a holder knows that holder died mid-pass (its
`running` passes are then marked `interrupted`).

The lock is re-entrant within one thread (`vsc reconcile --fix` holds it while
it repairs the state and then runs a pass, which takes it again); another thread
of the same process waits for it like another process would.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from vsc.errors import LockHeld
from vsc.state import iso, now_utc

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

log = logging.getLogger("vsc.lock")

_held: dict[tuple[str, int], list[Any]] = {}  # (lock path, thread) → [fd, depth] for locks held here
_guard = threading.Lock()


def lock_path(db: str | os.PathLike[str]) -> Path:
    """The lock file of a state database: `vsc.db.lock` beside `vsc.db`."""
    p = Path(db)
    return p.with_name(p.name + ".lock")


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:  # pragma: no cover - Windows
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started_at')}"


class PassLock:
    """Hold the pass lock of one database: `with PassLock(db, wait=10): ...`.

    `acquire` waits up to `wait` seconds for another holder to finish, then raises
    `LockHeld` (exit status 3) naming the holder. `recovered` is the holder a killed
    process left behind in the lock file, when this acquisition took its place.
    """

    def __init__(self, db: str | os.PathLike[str], *, wait: float = 10.0, poll: float = 0.1) -> None:
        self.db = Path(db)
        self.path = lock_path(db)
        self.wait = max(0.0, float(wait))
        self.poll = poll
        self.recovered: dict[str, Any] | None = None
        self._acquired = False

    def acquire(self) -> PassLock:
        key = (str(self.path.resolve()), threading.get_ident())
        with _guard:
            if key in _held:
                _held[key][1] += 1
                self._acquired = True
                return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                holder = _read_holder(fd)
                os.close(fd)
                raise LockHeld(
                    f"a pass is already running on {self.db} ({describe_holder(holder)})",
                    hint="Let it finish; `vsc status` shows the passes. Timers and `vsc sync --every` "
                    "simply try again at their next run.",
                )
            time.sleep(self.poll)
        # A holder that finished cleanly emptied the file; one that still names itself died mid-pass.
        left = _read_holder(fd)
        if left:
            self.recovered = left
            log.warning("recovered the pass lock left by %s, which stopped without releasing it", describe_holder(left))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": iso(now_utc())}
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)
        with _guard:
            _held[key] = [fd, 1]
        self._acquired = True
        return self

    def release(self) -> None:
        if not self._acquired:
            return
        self._acquired = False
        key = (str(self.path.resolve()), threading.get_ident())
        with _guard:
            entry = _held.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _held[key]
        fd = entry[0]
        try:
            os.ftruncate(fd, 0)
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> PassLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(db: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Who holds the pass lock of `db` right now (None when no pass is running)."""
    path = lock_path(db)
    key = str(path.resolve()) if path.exists() else None
    with _guard:
        if key and any(path == key for path, _thread in _held):
            return {"pid": os.getpid(), "host": socket.gethostname(), "this_process": True}
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        if _try_lock(fd):
            _unlock(fd)
            return None
        return _read_holder(fd) or {}
    finally:
        os.close(fd)
