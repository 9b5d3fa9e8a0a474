"""Shared fixtures: an isolated home for every test, a keyring that lives in memory."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


class MemoryKeyring(KeyringBackend):
    """A keyring backend for tests: the system's own is not there on CI machines."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    before = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(before)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own database path, no settings from the user's environment, and no
    keyring (a developer's real keyring is never touched; `memory_keyring` gives one)."""
    from keyring.backends import fail

    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("VSC_DB", str(tmp_path / "vsc.db"))
    monkeypatch.delenv("VSC_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield tmp_path
    keyring.set_keyring(before)


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self):
        import json

        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def cli(capsys):
    """Run the real `vsc` command line in-process: cli("sync", "--json") → CliResult."""
    from vsc.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def forkserver():
    """Killable `vsc` processes that start in milliseconds (tests/killable.py)."""
    from tests.killable import Forkserver

    server = Forkserver()
    yield server
    server.close()
