"""E-mail to vendors, through the outbox and SMTP.

Nothing is sent where it is decided. A stream renders a `Mail` (subject and
plain-text body) and queues it in the state's `outbox` under a deterministic
key, in the same transaction as the change it reports; queuing the same key
again changes nothing, so each e-mail is queued exactly once however often a
pass is repeated. `flush` sends what is pending or failed, marking each mail
sent or failed (attempts, last error). A failure never raises out of `flush`:
it is reported in the return value and retried on the next flush, and it
never blocks the write the e-mail is about.

Every message carries a Message-ID derived from its key, so in the rare case a
crash lands between the SMTP server accepting a message and vsc marking it
sent, the copy sent again is recognisably the same message.

The templates (`order_pushed`, `cancellation_request`, `edit_request`,
`conflict`) are pure functions returning a `Mail`.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from vsc.config import Settings, SmtpSettings
from vsc.connectors.base import Address, OrderDraft
from vsc.secrets import redactor
from vsc.state import OutboxMail, State

if TYPE_CHECKING:  # smtplib and email load only when there is mail to send (most passes have none)
    import smtplib
    from email.message import EmailMessage

# After this many failed attempts a mail is set aside (status `gave_up`) and reported,
# instead of being tried on every pass forever.
MAX_ATTEMPTS = 20
NOT_CONFIGURED = "smtp not configured"


@dataclass(frozen=True)
class Mail:
    """A rendered e-mail, not yet addressed: `key` names it uniquely (one mail per key ever)."""

    kind: str  # order | cancel | edit | conflict
    key: str
    subject: str
    body: str


@dataclass(frozen=True)
class Queued:
    """The outcome of queuing: the outbox row, or why there is none (`problem`)."""

    mail: OutboxMail | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.mail is not None


@dataclass
class FlushReport:
    """What one flush did: keys sent, (key, error) failed, mails still waiting, and problems."""

    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    waiting: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "sent": list(self.sent),
            "failed": [{"key": k, "error": e} for k, e in self.failed],
            "waiting": self.waiting,
            "problems": list(self.problems),
        }


# -- queuing -----------------------------------------------------------------------------------


def queue(state: State, settings: Settings, vendor: str, mail: Mail) -> Queued:
    """Queue `mail` for this vendor under its key (once per key).

    A vendor without `email` in the settings cannot be written to: nothing is
    queued and `problem` says what to set. (Once the address is set, the next
    pass that decides the mail queues it.)"""
    recipient = settings.vendor(vendor).email
    if not recipient:
        return Queued(
            None,
            f"{vendor} has no e-mail address, so the {_KIND_NAMES.get(mail.kind, mail.kind)} e-mail "
            f"{mail.subject!r} was not sent; set vendors.{vendor}.email in the settings",
        )
    row = state.queue_mail(
        key=mail.key, vendor=vendor, kind=mail.kind, recipient=recipient, subject=mail.subject, body=mail.body
    )
    return Queued(row)


_KIND_NAMES = {"order": "order", "cancel": "cancellation request", "edit": "edit request", "conflict": "conflict"}


# -- sending -----------------------------------------------------------------------------------


def message_id(key: str, sender: str) -> str:
    """A Message-ID that depends only on the mail's key (and the sender's domain)."""
    domain = sender.rsplit("@", 1)[-1] if "@" in sender else "vsc.localhost"
    return f"<vsc.{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def build_message(mail: OutboxMail, smtp: SmtpSettings) -> EmailMessage:
    from email.message import EmailMessage
    from email.utils import formatdate

    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = mail.recipient
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id(mail.key, smtp.sender)
    msg["X-Vsc-Key"] = mail.key
    msg.set_content(mail.body)
    return msg


def connect(smtp: SmtpSettings, *, ssl_context: ssl.SSLContext | None = None) -> smtplib.SMTP:
    """An SMTP session, encrypted as the settings say and logged in when a user is set.

    `ssl_context` defaults to the system's trust store with hostname checking (tests pass
    one that trusts their own certificate)."""
    import smtplib

    context = ssl_context or ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.ssl:
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    try:
        client.ehlo()
        if smtp.starttls and not smtp.ssl:
            client.starttls(context=context)
            client.ehlo()
        if smtp.user:
            password = smtp.password()
            if password is None:
                raise smtplib.SMTPAuthenticationError(
                    0,
                    f"the environment variable {smtp.password_env} holding the SMTP password is not set"
                    if smtp.password_env
                    else "smtp.user is set but smtp.password_env is not",
                )
            redactor.register(password)  # so no log line or traceback can show it
            client.login(smtp.user, password)
    except BaseException:
        _quit(client)
        raise
    return client


def _quit(client: smtplib.SMTP) -> None:
    import smtplib

    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _error_text(exc: BaseException) -> str:
    import smtplib

    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{type(exc).__name__}: {exc.smtp_code} {text}".strip()
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipient refused: " + ", ".join(
            f"{r} ({c} {m.decode('utf-8', 'replace') if isinstance(m, bytes) else m})"
            for r, (c, m) in exc.recipients.items()
        )
    return f"{type(exc).__name__}: {exc}"


def flush(
    state: State,
    settings: Settings,
    *,
    ssl_context: ssl.SSLContext | None = None,
    connector: Callable[[SmtpSettings], smtplib.SMTP] | None = None,
) -> FlushReport:
    """Send every pending or failed mail of the outbox over one SMTP session.

    Never raises for a mail or server problem: each failed mail is marked failed
    (attempts + 1, last error) and listed in the report, to be retried next time.
    Without SMTP settings nothing is sent and the report says so once."""
    report = FlushReport()
    mails = state.outbox()
    if not mails:
        return report
    smtp = settings.smtp
    if smtp is None:
        report.waiting = len(mails)
        report.problems.append(
            f"{NOT_CONFIGURED}: {len(mails)} e-mail(s) to vendors wait in the outbox "
            "(set smtp: host, port, from ... in the settings)"
        )
        return report
    import smtplib

    try:
        client = connector(smtp) if connector else connect(smtp, ssl_context=ssl_context)
    except Exception as exc:  # every way a connection can fail is the same to the outbox
        error = f"cannot reach the SMTP server {smtp.host}:{smtp.port}: {_error_text(exc)}"
        for mail in mails:
            _failed(state, mail, error, report)
        report.problems.append(error)
        return report
    try:
        for mail in mails:
            try:
                client.send_message(build_message(mail, smtp), from_addr=smtp.sender, to_addrs=[mail.recipient])
            except Exception as exc:
                _failed(state, mail, _error_text(exc), report)
                lost = isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(exc, smtplib.SMTPException)
                if lost and isinstance(exc, OSError):
                    # The session is gone: the rest wait for the next flush, unmarked.
                    report.waiting = sum(1 for m in mails if m.id > mail.id)
                    return report
                continue
            state.mark_mail(mail.id, status="sent")
            report.sent.append(mail.key)
    finally:
        _quit(client)
    return report


def _failed(state: State, mail: OutboxMail, error: str, report: FlushReport) -> None:
    status = "gave_up" if mail.attempts + 1 >= MAX_ATTEMPTS else "failed"
    state.mark_mail(mail.id, status=status, error=error)
    note = error if status == "failed" else f"{error} (gave up after {MAX_ATTEMPTS} attempts)"
    report.failed.append((mail.key, note))


class Notifier:
    """Queue and send vendor e-mails for one state and settings."""

    def __init__(self, state: State, settings: Settings) -> None:
        self.state = state
        self.settings = settings

    def queue(self, vendor: str, mail: Mail) -> Queued:
        return queue(self.state, self.settings, vendor, mail)

    def flush(self, **kw: Any) -> FlushReport:
        return flush(self.state, self.settings, **kw)


# -- templates ---------------------------------------------------------------------------------


def _money(value: Decimal | None, currency: str | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} {currency}".strip() if currency else f"{value:.2f}"


def format_address(address: Address | None, indent: str = "  ") -> list[str]:
    """An address as the lines of a shipping label."""
    if address is None:
        return [f"{indent}(no shipping address)"]
    name = " ".join(p for p in (address.first_name, address.last_name) if p)
    city = " ".join(p for p in (address.zip, address.city) if p)
    if address.province_code:
        city = f"{city}, {address.province_code}" if city else address.province_code
    rows = [name, address.company, address.address1, address.address2, city, address.country_code]
    out = [f"{indent}{r}" for r in rows if r]
    if address.phone:
        out.append(f"{indent}Phone: {address.phone}")
    return out or [f"{indent}(empty address)"]


def _order_label(name: str | None, order_id: str | None) -> str:
    if name and order_id and name != order_id:
        return f"{name} (id {order_id})"
    return name or order_id or "(unknown)"


def line_rows(lines: Iterable[Mapping[str, Any]], currency: str | None = None) -> list[str]:
    """Order lines (dicts with quantity, title, sku, unit_price) as text rows."""
    out = []
    for line in lines:
        qty = line.get("quantity") or 0
        title = line.get("title") or "(item)"
        sku = f"  SKU {line['sku']}" if line.get("sku") else ""
        price = line.get("unit_price")
        if price is not None:
            price = Decimal(str(price))
            out.append(f"  {qty} x {title}{sku}  at {_money(price, currency)} = {_money(price * qty, currency)}")
        else:
            out.append(f"  {qty} x {title}{sku}")
    return out or ["  (no lines)"]


def order_pushed(
    vendor: str,
    draft: OrderDraft,
    *,
    merchant_order_id: str,
    vendor_order_id: str,
    vendor_order_name: str | None = None,
    marketplace: str | None = None,
) -> Mail:
    """The e-mail telling a vendor that a marketplace order is now an order in its store."""
    merchant_name = draft.merchant_order_name or merchant_order_id
    vendor_label = _order_label(vendor_order_name, vendor_order_id)
    source = f"on {marketplace}" if marketplace else "on the marketplace"
    lines = [
        {"quantity": li.quantity, "title": li.title, "sku": li.sku, "unit_price": li.unit_price} for li in draft.lines
    ]
    total = sum((li.unit_price * li.quantity for li in draft.lines), Decimal(0))
    contact_name = " ".join(p for p in (draft.customer_first_name, draft.customer_last_name) if p)
    contact = [
        f"  Name:   {contact_name or '-'}",
        f"  E-mail: {draft.email or '-'}",
        f"  Phone:  {draft.phone or '-'}",
    ]
    body = [
        f"Hello {vendor},",
        "",
        f"A customer ordered your items {source}. vsc created the order in your store:",
        "",
        f"  Your order:         {vendor_label}",
        f"  Marketplace order:  {merchant_name}",
        "",
        "Items:",
        *line_rows(lines, draft.currency),
        f"  Total: {_money(total, draft.currency)}",
        "",
        "Ship to:",
        *format_address(draft.shipping_address),
        "",
        "Customer contact:",
        *contact,
    ]
    if draft.note:
        body += ["", "Note:", *(f"  {row}" for row in draft.note.splitlines())]
    body += [
        "",
        "Please ship these items and add the tracking number to the order in your store;",
        "vsc copies it to the marketplace order, and the customer sees it there.",
    ]
    return Mail(
        kind="order",
        key=f"mail:order:{merchant_order_id}:{vendor}",
        subject=f"New order {vendor_order_name or vendor_order_id} (marketplace order {merchant_name})",
        body="\n".join(body) + "\n",
    )


def cancellation_request(
    vendor: str,
    *,
    platform: str,
    merchant_order_id: str,
    merchant_order_name: str | None,
    vendor_order_id: str,
    vendor_order_name: str | None,
    restock: bool,
    lines: Sequence[Mapping[str, Any]] = (),
    currency: str | None = None,
) -> Mail:
    """Ask the vendor to cancel an order its platform cannot cancel through the API (Squarespace).

    `restock` says whether the vendor should let its platform put the items back in stock
    (True: vsc does not restore the stock itself)."""
    merchant_name = merchant_order_name or merchant_order_id
    vendor_label = _order_label(vendor_order_name, vendor_order_id)
    if platform == "squarespace":
        steps = [
            "In Squarespace: Commerce > Orders > open the order > Cancel Order.",
            "If the order is already marked fulfilled, first choose 'Mark as pending', then cancel it.",
            "Cancelling in Squarespace also e-mails the customer address on the order.",
        ]
        stock = (
            "Leave 'Restock Inventory' checked: vsc does not put the items back in stock itself."
            if restock
            else "Uncheck 'Restock Inventory': vsc puts the items back in stock itself."
        )
    else:
        steps = [f"In your {platform} admin: open the order and cancel it."]
        stock = (
            "Put the items back in stock when you cancel: vsc does not do it itself."
            if restock
            else "Do not put the items back in stock: vsc does it itself."
        )
    body = [
        f"Hello {vendor},",
        "",
        f"The customer's marketplace order {merchant_name} was cancelled. Please cancel your order",
        f"{vendor_label} too, and do not ship it. {platform.capitalize()} offers no way to cancel an order",
        "through its API, so this has to be done in your store's admin:",
        "",
        *(f"  - {s}" for s in steps),
        f"  - {stock}",
        "",
        "Items on the order:",
        *line_rows(lines, currency),
        "",
        "vsc watches the order and records the cancellation as soon as it shows as cancelled.",
        "If you have already shipped it, please contact the marketplace.",
    ]
    return Mail(
        kind="cancel",
        key=f"mail:cancel:{merchant_order_id}:{vendor}",
        subject=f"Please cancel order {vendor_order_name or vendor_order_id} (marketplace order {merchant_name})",
        body="\n".join(body) + "\n",
    )


def _value_text(value: Any) -> list[str]:
    if isinstance(value, Address):
        return format_address(value, indent="      ")
    if value is None or value == "" or value == () or value == []:
        return ["      (empty)"]
    if isinstance(value, list | tuple):
        if all(isinstance(v, list | tuple) and len(v) == 2 for v in value):
            return [f"      {k}: {v}" for k, v in value]
        return [f"      {', '.join(str(v) for v in value)}"]
    if isinstance(value, Mapping):
        return [f"      {k}: {v}" for k, v in value.items()]
    if isinstance(value, bool):
        return [f"      {'yes' if value else 'no'}"]
    return [f"      {row}" for row in str(value).splitlines()] or ["      (empty)"]


_FIELD_NAMES = {
    "email": "E-mail",
    "phone": "Phone",
    "note": "Note",
    "tags": "Tags",
    "metafields": "Extra fields",
    "shipping_address": "Shipping address",
    "accepts_marketing": "Accepts marketing",
    "customer_first_name": "Customer first name",
    "customer_last_name": "Customer last name",
}


def edit_request(
    vendor: str,
    *,
    platform: str,
    merchant_order_id: str,
    merchant_order_name: str | None,
    vendor_order_id: str,
    vendor_order_name: str | None,
    differences: Mapping[str, tuple[Any, Any]],
) -> Mail:
    """Ask the vendor to change an order its platform cannot edit through the API (Squarespace).

    `differences` maps a field (email, phone, note, tags, shipping_address, ...) to (old, new)."""
    merchant_name = merchant_order_name or merchant_order_id
    vendor_label = _order_label(vendor_order_name, vendor_order_id)
    rows: list[str] = []
    for name, (old, new) in differences.items():
        rows += [f"  {_FIELD_NAMES.get(name, name)}:", "    was:", *_value_text(old), "    now:", *_value_text(new)]
    where = (
        "In Squarespace: Commerce > Orders > open the order, and edit the customer or shipping details."
        if platform == "squarespace"
        else f"In your {platform} admin: open the order and edit it."
    )
    body = [
        f"Hello {vendor},",
        "",
        f"The customer's details on marketplace order {merchant_name} changed. Please make the same",
        f"change on your order {vendor_label}. {platform.capitalize()} offers no way to edit an order",
        "through its API, so this has to be done in your store's admin.",
        "",
        "What changed:",
        *(rows or ["  (nothing)"]),
        "",
        where,
        "If the order has already shipped, please contact the marketplace.",
    ]
    change = repr(sorted((k, repr(v[0]), repr(v[1])) for k, v in differences.items()))
    return Mail(
        kind="edit",
        key=f"mail:edit:{merchant_order_id}:{vendor}:{hashlib.sha256(change.encode()).hexdigest()[:16]}",
        subject=f"Please update order {vendor_order_name or vendor_order_id} (marketplace order {merchant_name})",
        body="\n".join(body) + "\n",
    )


def conflict(
    vendor: str,
    *,
    key: str,
    title: str,
    details: Sequence[str],
    merchant_order_name: str | None = None,
    vendor_order_name: str | None = None,
    advice: str | None = None,
) -> Mail:
    """A notice that vsc found something it will not decide alone (e.g. a shipped order the
    merchant had cancelled). `key` is the conflict's own key (one e-mail per conflict)."""
    refs = []
    if vendor_order_name:
        refs.append(f"  Your order:         {vendor_order_name}")
    if merchant_order_name:
        refs.append(f"  Marketplace order:  {merchant_order_name}")
    body = [
        f"Hello {vendor},",
        "",
        f"{title}.",
        "",
        *refs,
        *([""] if refs else []),
        *(f"  {d}" for d in details),
        "",
        advice or "vsc has changed nothing about this. Please contact the marketplace to settle it.",
    ]
    return Mail(
        kind="conflict",
        key=f"mail:conflict:{key}",
        subject=f"Needs your attention: {title}",
        body="\n".join(body) + "\n",
    )
