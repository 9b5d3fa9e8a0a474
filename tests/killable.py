"""`vsc` commands as real processes a test can SIGKILL at a chosen store write, started fast.

A fresh interpreter takes ~0.7 s to import vsc; a crash test starts dozens of them. `Forkserver`
keeps one process that has imported vsc and forks a child per command, so a killable `vsc` starts
in milliseconds. Each child is a real process of its own (own pid, own SQLite connection, own
sockets), killed by the kernel like any other; nothing in it is shared with the test.

`kill_at(store, match, before=...)` arms a store so that the matching write kills the running
command: `before` the store applies it (the write was on its way) or after (a lost response).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from vsc.sandbox.base import Fault, SandboxRequest

_SERVER = r"""
import json, os, sys
import vsc.cli  # what every fork saves

for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.environ.clear()
        os.environ.update(req["env"])
        os.chdir(req["cwd"])
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        code = 0
        try:
            vsc.cli.main(req["args"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except BaseException:
            code = 1
        os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class Forkserver:
    """One pre-imported vsc process that runs each command in a forked child."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        self.pid: int | None = None  # the command running now
        self.started = threading.Event()

    def run(self, args: Sequence[str], *, timeout: float = 120) -> int:
        """Run `vsc ARGS` with the test's current environment; its exit code (−9 when killed).
        A command still running after `timeout` seconds is killed and fails the test."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.started.clear()
        self.proc.stdin.write(json.dumps({"args": list(args), "env": dict(os.environ), "cwd": os.getcwd()}) + "\n")
        self.proc.stdin.flush()
        pid = self.pid = json.loads(self.proc.stdout.readline())["pid"]
        self.started.set()
        hung = threading.Event()

        def watchdog() -> None:
            hung.set()
            os.kill(pid, signal.SIGKILL)

        timer = threading.Timer(timeout, watchdog)
        timer.start()
        try:
            code = int(json.loads(self.proc.stdout.readline())["code"])
        finally:
            timer.cancel()
            self.pid = None
        assert not hung.is_set(), f"vsc {' '.join(args)} still ran after {timeout} s"
        return code

    def kill(self) -> None:
        """SIGKILL the running command (called from a store's request thread)."""
        assert self.started.wait(30), "no command is running"
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)

    def kill_at(
        self, store: Any, match: Callable[[SandboxRequest], bool] | None = None, *, before: bool = False
    ) -> Fault:
        """Arm `store`: its next write that `match`es (any write when None) kills the command."""

        def hit(req: SandboxRequest) -> bool:
            return store.is_write(req) and (match is None or match(req))

        kind = "hook_before" if before else "hook"
        return store.inject(Fault(kind, match=hit, hook=lambda req: self.kill(), times=1))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
