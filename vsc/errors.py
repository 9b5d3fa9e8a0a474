"""One error tree for vsc.

Every error carries a message meant for a person and, where it helps, a hint
naming what to do next. The CLI (`vsc.cli`) is the one place that turns these
into exit codes (CONTRACT.md) and printed sentences.

Errors are split by what the caller does next (as in singer-sdk): a
`RetriableError` may succeed if the same call is made again later; anything
else will not, until something changes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitStatus(IntEnum):
    """Exit codes of the `vsc` command (CONTRACT.md)."""

    OK = 0
    ACTIONS_FAILED = 1
    USAGE = 2
    LOCKED = 3


class VscError(Exception):
    """Root of every error vsc raises on purpose."""

    exit_status = ExitStatus.ACTIONS_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(VscError):
    """Bad arguments or an impossible request: nothing was changed."""

    exit_status = ExitStatus.USAGE


class StateMissing(UsageError):
    """The state database does not exist yet."""


class StateError(UsageError):
    """The state database is unreadable, corrupt, or from a newer vsc."""


class SettingsError(UsageError):
    """The settings file has problems; `problems` lists every one of them."""

    def __init__(self, path: str, problems: list[str]) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{path} has {len(problems)} problem{'s' if len(problems) != 1 else ''}:\n{lines}",
            hint="Fix the settings file (config.example.yaml documents every key) and run again.",
        )
        self.path = path
        self.problems = problems


class SecretsError(UsageError):
    """A secret cannot be stored or found."""


class LockHeld(VscError):
    """Another pass holds the lock on this database."""

    exit_status = ExitStatus.LOCKED


class ApiError(VscError):
    """A store's API refused or failed a call.

    `store` is the store's name in vsc, `platform` its platform, `status` the
    HTTP status (if any) and `code` the platform's own error code (if any).
    """

    retriable = False

    def __init__(
        self,
        message: str,
        *,
        store: str | None = None,
        platform: str | None = None,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.store = store
        self.platform = platform
        self.status = status
        self.code = code
        self.body = body


class RetriableError(ApiError):
    """The same call may succeed later: timeouts, 5xx, throttling."""

    retriable = True


class RateLimited(RetriableError):
    """The store asked us to slow down; `retry_after` is in seconds if known."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class AuthError(ApiError):
    """The store rejected the credentials or the permissions are missing."""

    exit_status = ExitStatus.USAGE


class TlsError(ApiError):
    """A store's TLS certificate cannot be verified (or its CA bundle cannot be read).

    A settings problem, not a passing one: retrying cannot help, so exit status 2."""

    exit_status = ExitStatus.USAGE


class NotFound(ApiError):
    """The object does not exist (any more) on the store."""


class PayloadError(ApiError):
    """The store answered with something vsc cannot read."""


class UserErrors(ApiError):
    """A mutation was refused with field-level errors (Shopify `userErrors`,
    WooCommerce batch item errors, Squarespace validation errors).

    `errors` is a list of dicts with `field`, `message` and `code`.
    """

    def __init__(self, message: str, *, errors: list[dict[str, Any]], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.errors = errors

    @property
    def codes(self) -> set[str]:
        return {str(e.get("code")) for e in self.errors if e.get("code")}


class Unsupported(VscError):
    """The platform's API cannot do this operation at all."""

    def __init__(self, platform: str, operation: str, *, hint: str | None = None) -> None:
        super().__init__(f"{platform} cannot {operation} through its API", hint=hint)
        self.platform = platform
        self.operation = operation
