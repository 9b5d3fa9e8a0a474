"""Connecting stores: verify the credentials with one call, then save — or save nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vsc import secrets
from vsc.connectors.base import Connector, StoreInfo
from vsc.connectors.http import validate_store_url
from vsc.errors import ApiError, AuthError, UsageError, VscError
from vsc.state import State, StoreRow

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class SecretInput:
    """One secret field as given on the command line: a value, or an environment variable's name."""

    field: str
    value: str | None
    env: str | None
    env_flag: str

    def resolve(self, store: str) -> str:
        if self.value:
            return self.value
        import os

        if not self.env:
            raise UsageError(f"no {self.field} given", hint=f"Pass {self.env_flag} VAR (or the value itself).")
        value = os.environ.get(self.env)
        if not value:
            raise UsageError(
                f"{store}: the environment variable {self.env} is not set",
                hint=f"Export {self.env} before connecting (vsc reads it again at every sync).",
            )
        return value


@dataclass(frozen=True)
class TlsChoice:
    """How a store's TLS certificate is to be checked, as given to `vsc connect`."""

    ca_bundle: str | None = None
    insecure: bool = False

    @property
    def verify(self) -> bool | str:
        """The `verify` argument of the store's HTTP session (see `StoreRow.tls_verify`)."""
        return False if self.insecure else (self.ca_bundle or True)


def tls_choice(ca_bundle: str | None, insecure: bool) -> TlsChoice:
    """Check `--ca-bundle` / `--insecure-skip-tls-verify` and return the choice, the bundle
    as an absolute path (a cron job starts elsewhere). `UsageError` for a bad combination or
    a bundle that is not a readable PEM file with a certificate in it."""
    if ca_bundle and insecure:
        raise UsageError(
            "give --ca-bundle or --insecure-skip-tls-verify, not both",
            hint="--ca-bundle PATH checks the store's certificate against your CA; prefer it.",
        )
    if not ca_bundle:
        return TlsChoice(insecure=insecure)
    from pathlib import Path

    path = Path(ca_bundle).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(
            f"cannot read the CA bundle {str(path)!r} ({exc.strerror or type(exc).__name__})",
            hint="Give the path of a PEM file holding the CA certificate(s) the store's certificate chains to.",
        ) from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise UsageError(
            f"{str(path)!r} holds no PEM certificate (no '-----BEGIN CERTIFICATE-----' line)",
            hint="Export the CA certificate as PEM (Base64), not DER, and give that file.",
        )
    return TlsChoice(ca_bundle=str(path))


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(
            f"{name!r} is not a usable store name",
            hint="Use letters, digits, '-', '_' or '.', starting with a letter or digit (at most 64).",
        )
    return name


def connect(
    state: State,
    *,
    platform: str,
    name: str,
    role: str,
    url: str,
    inputs: list[SecretInput],
    build: Callable[[dict[str, str]], Connector],
    tls: TlsChoice | None = None,
) -> StoreInfo:
    """Verify a store's credentials, then save it. On any failure nothing is saved.

    `build` must open the connector with `tls.verify`, so that the check is made the way
    every later pass will reach the store; `tls` is saved on the store row."""
    tls = tls or TlsChoice()
    check_name(name)
    url = validate_store_url(url, what="store address")
    if role == "merchant" and platform != "shopify":
        raise UsageError("the merchant store must be a Shopify store")
    existing = next((s for s in state.stores() if s.name == name), None)
    if existing is not None and (existing.platform, existing.role, existing.url) != (platform, role, url):
        raise UsageError(
            f"a store named {name!r} already exists ({existing.platform} {existing.role} at {existing.url})",
            hint="Pick another name. Connecting the same name again renews its credentials only when the "
            "platform, role and address are the same.",
        )
    if existing is None and role == "merchant" and state.merchant() is not None:
        raise UsageError(
            f"{state.merchant().name!r} is already the merchant store; vsc serves exactly one merchant",  # type: ignore[union-attr]
            hint="Connect this store with --role vendor.",
        )
    keep_in_keyring = [s for s in inputs if s.value]
    if keep_in_keyring and not secrets.keyring_available():
        flags = " and ".join(s.env_flag for s in keep_in_keyring)
        raise UsageError(
            "no system keyring is available here to keep the secret, and vsc never stores secrets in plain text",
            hint=f"Put the secret in an environment variable and pass its name with {flags} VAR.",
        )
    values = {s.field: s.resolve(name) for s in inputs}
    for v in values.values():
        secrets.redactor.register(v)
    connector = build(values)
    try:
        info = connector.check()
    except AuthError as exc:
        raise AuthError(
            f"{name}: the store refused the credentials; nothing was saved. The store said: {exc}",
            hint=exc.hint,
        ) from None
    except ApiError as exc:
        raise UsageError(f"{name}: could not verify the store; nothing was saved. {exc}", hint=exc.hint) from None
    finally:
        connector.session.close()
    refs: dict[str, Any] = {}
    if existing is not None:
        # Reconnecting (credentials revoked or rotated): only the credentials change; links,
        # cursors and the journal stay, so the next pass catches up from where it stopped.
        for s in inputs:
            refs[s.field] = secrets.save(name, s.field, s.value, env_flag=s.env_flag) if s.value else {"env": s.env}
        state.replace_credentials(name, refs, currency=info.currency)
        state.set_store_tls(name, ca_bundle=tls.ca_bundle, insecure=tls.insecure)  # as the check was made
        secrets.forget({f: r for f, r in existing.secret_ref.items() if r != refs.get(f)})
        return info
    try:
        for s in inputs:
            refs[s.field] = secrets.save(name, s.field, s.value, env_flag=s.env_flag) if s.value else {"env": s.env}
        state.add_store(
            StoreRow(
                name=name,
                platform=platform,
                role=role,
                url=url,
                secret_ref=refs,
                currency=info.currency,
                ca_bundle=tls.ca_bundle,
                insecure_tls=tls.insecure,
            )
        )
    except VscError:
        secrets.forget(refs)
        raise
    return info


def reconnect_command(row: StoreRow) -> str:
    """The `vsc connect` line that renews a store's credentials (same name: links are kept)."""
    env = {field: ref.get("env") for field, ref in row.secret_ref.items()}

    def flag(field: str, env_flag: str, value_flag: str) -> str:
        return f"{env_flag} {env[field]}" if env.get(field) else f"{value_flag} NEW_VALUE"

    # The same way of checking its certificate as now, or reconnecting would change it.
    tls = (
        " --insecure-skip-tls-verify"
        if row.insecure_tls
        else (f" --ca-bundle {row.ca_bundle}" if row.ca_bundle else "")
    )

    if row.platform == "shopify":
        return f"vsc connect shopify {row.name} --role {row.role} --shop {row.url} " + flag(
            "token", "--token-env", "--token"
        )
    if row.platform == "woocommerce":
        return (
            f"vsc connect woocommerce {row.name} --url {row.url} "
            f"{flag('key', '--key-env', '--key')} {flag('secret', '--secret-env', '--secret')}{tls}"
        )
    api_url = "" if row.url == "https://api.squarespace.com" else f" --api-url {row.url}"
    return f"vsc connect squarespace {row.name} {flag('api_key', '--api-key-env', '--api-key')}{api_url}{tls}"


def refused(state: State, exc: AuthError) -> str:
    """A pass's sentence for a store that refused vsc's credentials: what it said, what to do."""
    try:
        row = state.store(exc.store) if exc.store else None
    except UsageError:
        row = None
    if row is not None:
        state.record_check(row.name, "auth failed")  # `vsc status` and `vsc stores` show it until reconnected
    todo = (
        f"Renew the credentials, then run `{reconnect_command(row)}` (its links are kept)"
        if row is not None
        else "Renew the credentials and connect the store again with `vsc connect ...`"
    )
    return f"{exc}. {exc.hint + ' ' if exc.hint else ''}{todo}; the next pass catches up."
