"""Where secrets live: the system keyring (service `vsc`) or environment variables.

A store row in the database keeps only a *reference* per secret field:
`{"token": {"keyring": "merchant:token"}}` or `{"token": {"env": "SHOP_TOKEN"}}`.
The value is fetched when a connector is opened and never written anywhere
else. There is deliberately no plaintext fallback: where no keyring backend
works, `--*-env VAR` is the way.

Every secret value vsc handles is also registered with `redactor`, a logging
filter that blanks it out of any log line, so a debug log cannot leak it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from vsc.errors import SecretsError

SERVICE = "vsc"


class Redactor(logging.Filter):
    """Replaces every registered secret in log records with `***`."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str | None) -> None:
        if value and len(value) >= 4:
            with self._lock:
                self._secrets.add(value)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.redact(record.getMessage())
            record.args = ()
        return True


redactor = Redactor()


def _keyring() -> Any:
    """The working keyring module, or None when the system has no usable backend."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception:  # pragma: no cover - keyring is a dependency, but be honest if it breaks
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return None
    # The chainer with nothing behind it behaves like the fail backend.
    if type(backend).__name__ == "ChainerBackend" and not getattr(backend, "backends", None):
        return None
    return keyring


def keyring_available() -> bool:
    return _keyring() is not None


def save(store: str, field: str, value: str, *, env_flag: str) -> dict[str, str]:
    """Put one secret in the keyring; return the reference to keep in the database."""
    kr = _keyring()
    if kr is None:
        raise SecretsError(
            "no system keyring is available here to keep the secret",
            hint=f"Put the secret in an environment variable and pass its name with {env_flag} VAR "
            "(vsc reads it at sync time and never stores it).",
        )
    entry = f"{store}:{field}"
    try:
        kr.set_password(SERVICE, entry, value)
    except Exception as exc:
        raise SecretsError(
            f"the system keyring refused to store the secret ({type(exc).__name__})",
            hint=f"Use {env_flag} VAR to read it from an environment variable instead.",
        ) from None
    redactor.register(value)
    return {"keyring": entry}


def env_ref(var: str) -> dict[str, str]:
    return {"env": var}


def resolve(store: str, refs: dict[str, Any]) -> dict[str, str]:
    """Fetch every secret of a store by its references."""
    values: dict[str, str] = {}
    for field, ref in refs.items():
        if "env" in ref:
            value = os.environ.get(ref["env"])
            if not value:
                raise SecretsError(
                    f"{store}: the environment variable {ref['env']} (its {field}) is not set",
                    hint=f"Export {ref['env']} in the environment that runs vsc (cron and systemd start "
                    "with an almost empty environment; see `vsc schedule`).",
                )
        elif "keyring" in ref:
            kr = _keyring()
            value = None
            if kr is not None:
                try:
                    value = kr.get_password(SERVICE, ref["keyring"])
                except Exception:
                    value = None
            if not value:
                raise SecretsError(
                    f"{store}: its {field} is not in the system keyring (entry {ref['keyring']!r})",
                    hint=f"Connect the store again, or use an environment variable: `vsc connect ... {store} "
                    "--token-env VAR`.",
                )
        else:
            raise SecretsError(f"{store}: unknown secret reference for {field}")
        redactor.register(value)
        values[field] = value
    return values


def forget(refs: dict[str, Any]) -> None:
    """Remove a store's keyring entries (environment variables are the user's to manage)."""
    kr = _keyring()
    if kr is None:
        return
    for ref in refs.values():
        if "keyring" in ref:
            try:
                kr.delete_password(SERVICE, ref["keyring"])
            except Exception:
                pass


def describe(refs: dict[str, Any]) -> str:
    parts = []
    for field, ref in refs.items():
        parts.append(f"{field} from ${ref['env']}" if "env" in ref else f"{field} in keyring")
    return ", ".join(parts)
