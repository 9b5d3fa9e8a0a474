"""Vendor e-mail through the outbox, sent to a real SMTP server (aiosmtpd) started by each test."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import socket
import ssl
from decimal import Decimal
from email import policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from vsc import notify
from vsc.config import Settings, SmtpSettings, validate
from vsc.connectors.base import Address, OrderDraft, OrderLineDraft, VariantRef
from vsc.state import State


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def state(tmp_path):
    s = State.create(tmp_path / "vsc.db")
    yield s
    s.close()


def smtp_settings(port: int, **kw) -> Settings:
    smtp = SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender="market@example.com", timeout=5, **kw)
    return Settings(smtp=smtp, vendors={"acme": {"email": "orders@acme.example"}})


def draft() -> OrderDraft:
    return OrderDraft(
        marker="vsc:gid://shopify/Order/1",
        key="push:gid://shopify/Order/1:acme",
        lines=(
            OrderLineDraft(VariantRef("10", "11"), 2, Decimal("20.00"), sku="TEE-M", title="Organic Tee - M"),
            OrderLineDraft(VariantRef("10", "12"), 1, Decimal("22.50"), sku="TEE-L", title="Organic Tee - L"),
        ),
        currency="USD",
        email="sam@example.com",
        phone="+1 555 0100",
        note="Leave at the door",
        customer_first_name="Sam",
        customer_last_name="Shopper",
        shipping_address=Address(
            first_name="Sam",
            last_name="Shopper",
            address1="1 Main St",
            address2="Apt 2",
            city="Springfield",
            province_code="IL",
            country_code="US",
            zip="62701",
            phone="+1 555 0100",
        ),
        merchant_order_name="#1001",
    )


def order_mail() -> notify.Mail:
    return notify.order_pushed(
        "acme", draft(), merchant_order_id="gid://shopify/Order/1", vendor_order_id="345", vendor_order_name="#45"
    )


# -- templates ---------------------------------------------------------------------------------


def test_order_pushed_mail_holds_what_the_vendor_needs_to_ship():
    mail = order_mail()
    assert mail.kind == "order" and mail.key == "mail:order:gid://shopify/Order/1:acme"
    assert "#45" in mail.subject and "#1001" in mail.subject
    body = mail.body
    for text in (
        "Your order:         #45 (id 345)",
        "Marketplace order:  #1001",
        "2 x Organic Tee - M  SKU TEE-M  at 20.00 USD = 40.00 USD",
        "1 x Organic Tee - L  SKU TEE-L  at 22.50 USD = 22.50 USD",
        "Total: 62.50 USD",
        "Sam Shopper",
        "1 Main St",
        "Apt 2",
        "62701 Springfield, IL",
        "E-mail: sam@example.com",
        "Phone:  +1 555 0100",
        "Leave at the door",
    ):
        assert text in body, text


def test_cancellation_request_says_where_to_cancel_and_whether_to_restock():
    kw = dict(
        platform="squarespace",
        merchant_order_id="gid://shopify/Order/1",
        merchant_order_name="#1001",
        vendor_order_id="abc",
        vendor_order_name="1042",
        lines=[{"quantity": 2, "title": "Tee", "sku": "TEE-M", "unit_price": "20.00"}],
    )
    keep = notify.cancellation_request("acme", restock=True, **kw)
    assert keep.kind == "cancel" and keep.key == "mail:cancel:gid://shopify/Order/1:acme"
    assert "Please cancel order 1042" in keep.subject
    assert "Cancel Order" in keep.body and "Mark as pending" in keep.body
    assert "Leave 'Restock Inventory' checked" in keep.body and "2 x Tee  SKU TEE-M" in keep.body
    uncheck = notify.cancellation_request("acme", restock=False, **kw)
    assert "Uncheck 'Restock Inventory'" in uncheck.body


def test_edit_request_lists_each_difference_and_its_key_follows_the_change():
    kw = dict(
        platform="squarespace",
        merchant_order_id="gid://shopify/Order/1",
        merchant_order_name="#1001",
        vendor_order_id="abc",
        vendor_order_name="1042",
    )
    old_address = Address(first_name="Sam", address1="1 Main St", city="Springfield", country_code="US")
    new_address = Address(first_name="Sam", address1="9 Elm St", city="Springfield", country_code="US")
    mail = notify.edit_request(
        "acme",
        differences={"email": ("a@example.com", "b@example.com"), "shipping_address": (old_address, new_address)},
        **kw,
    )
    assert mail.kind == "edit" and "Please update order 1042" in mail.subject
    assert "E-mail:" in mail.body and "a@example.com" in mail.body and "b@example.com" in mail.body
    assert "1 Main St" in mail.body and "9 Elm St" in mail.body
    same = notify.edit_request(
        "acme",
        differences={"email": ("a@example.com", "b@example.com"), "shipping_address": (old_address, new_address)},
        **kw,
    )
    other = notify.edit_request("acme", differences={"email": ("b@example.com", "c@example.com")}, **kw)
    assert same.key == mail.key != other.key


def test_conflict_mail():
    mail = notify.conflict(
        "acme",
        key="conflict:fulfil:o1:acme:f1",
        title="You shipped order 1042, which was cancelled",
        details=["Tracking: 1Z999"],
        merchant_order_name="#1001",
        vendor_order_name="1042",
    )
    assert mail.kind == "conflict" and mail.key == "mail:conflict:conflict:fulfil:o1:acme:f1"
    assert "Needs your attention" in mail.subject and "1Z999" in mail.body and "#1001" in mail.body


# -- queuing -----------------------------------------------------------------------------------


def test_a_mail_is_queued_once_per_key(state):
    settings = smtp_settings(25)
    first = notify.queue(state, settings, "acme", order_mail())
    again = notify.queue(state, settings, "acme", order_mail())
    assert first.ok and again.ok and first.mail.id == again.mail.id
    assert [m.recipient for m in state.outbox()] == ["orders@acme.example"]


def test_a_vendor_without_an_address_is_reported_and_nothing_is_queued(state):
    result = notify.queue(state, Settings(), "acme", order_mail())
    assert not result.ok and result.mail is None
    assert "vendors.acme.email" in result.problem
    assert state.outbox() == []


def test_without_smtp_settings_mails_wait_and_the_report_says_so_once(state):
    settings = Settings(vendors={"acme": {"email": "orders@acme.example"}})
    notify.queue(state, settings, "acme", order_mail())
    notify.queue(state, settings, "acme", notify.conflict("acme", key="k", title="t", details=[]))
    report = notify.flush(state, settings)
    assert report.sent == [] and report.failed == [] and report.waiting == 2
    assert len(report.problems) == 1 and report.problems[0].startswith(notify.NOT_CONFIGURED)
    assert {m.status for m in state.outbox()} == {"pending"} and {m.attempts for m in state.outbox()} == {0}


# -- sending to a real SMTP server -------------------------------------------------------------


def test_flush_sends_over_smtp_and_never_twice(state):
    inbox = Inbox()
    port = free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        settings = smtp_settings(port)
        notify.queue(state, settings, "acme", order_mail())
        report = notify.flush(state, settings)
        assert report.ok and report.sent == ["mail:order:gid://shopify/Order/1:acme"]
        assert notify.flush(state, settings).sent == []
        notify.queue(state, settings, "acme", order_mail())  # decided again by a later pass
        assert notify.flush(state, settings).sent == []
    finally:
        server.stop()
    (msg,) = inbox.messages
    assert inbox.envelopes == [("market@example.com", ["orders@acme.example"])]
    assert msg["To"] == "orders@acme.example" and msg["From"] == "market@example.com"
    assert msg["Subject"] == order_mail().subject
    assert msg["Message-ID"] == notify.message_id("mail:order:gid://shopify/Order/1:acme", "market@example.com")
    assert "SKU TEE-M" in msg.get_content()
    (row,) = state.outbox(statuses=("sent",))
    assert row.attempts == 1 and row.last_error is None


def test_a_server_that_is_down_fails_the_mail_and_the_next_flush_sends_it(state):
    port = free_port()  # nothing listens here yet
    settings = smtp_settings(port)
    notify.queue(state, settings, "acme", order_mail())
    report = notify.flush(state, settings)
    assert report.sent == [] and len(report.failed) == 1 and not report.ok
    (row,) = state.outbox()
    assert row.status == "failed" and row.attempts == 1 and "cannot reach the SMTP server" in row.last_error

    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        assert notify.flush(state, settings).sent == [row.key]
        assert notify.flush(state, settings).sent == []
    finally:
        server.stop()
    assert len(inbox.messages) == 1
    (sent,) = state.outbox(statuses=("sent",))
    assert sent.attempts == 2


def test_a_refused_recipient_fails_that_mail_only(state):
    class Picky(Inbox):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
            if address.startswith("nobody@"):
                return "550 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    inbox = Picky()
    port = free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        settings = Settings(
            smtp=smtp_settings(port).smtp,
            vendors={"acme": {"email": "nobody@acme.example"}, "beta": {"email": "orders@beta.example"}},
        )
        notify.queue(state, settings, "acme", order_mail())
        notify.queue(state, settings, "beta", notify.conflict("beta", key="c1", title="Something", details=[]))
        report = notify.flush(state, settings)
    finally:
        server.stop()
    assert report.sent == ["mail:conflict:c1"]
    ((key, error),) = report.failed
    assert key == "mail:order:gid://shopify/Order/1:acme" and "550" in error
    assert [m.envelopes for m in [inbox]] == [[("market@example.com", ["orders@beta.example"])]]


def test_login_with_the_password_from_the_environment(state, monkeypatch):
    seen: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        seen.append((auth_data.login, auth_data.password))
        ok = auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=ok)  # not handled: aiosmtpd answers 535 itself

    inbox = Inbox()
    port = free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False)
    server.start()
    try:
        settings = smtp_settings(port, user="vsc", password_env="VSC_TEST_SMTP_PASSWORD")
        notify.queue(state, settings, "acme", order_mail())
        monkeypatch.delenv("VSC_TEST_SMTP_PASSWORD", raising=False)
        unset = notify.flush(state, settings)
        assert unset.sent == [] and "VSC_TEST_SMTP_PASSWORD" in unset.failed[0][1]
        monkeypatch.setenv("VSC_TEST_SMTP_PASSWORD", "wrong")
        wrong = notify.flush(state, settings)
        assert wrong.sent == [] and "535" in wrong.failed[0][1]
        monkeypatch.setenv("VSC_TEST_SMTP_PASSWORD", "s3cret")
        assert notify.flush(state, settings).sent == ["mail:order:gid://shopify/Order/1:acme"]
    finally:
        server.stop()
    assert seen[-1] == (b"vsc", b"s3cret") and len(inbox.messages) == 1
    assert state.outbox(statuses=("sent",))[0].attempts == 3


def _self_signed(tmp_path):
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_path, key_path)
    client_ctx = ssl.create_default_context(cafile=str(cert_path))
    return server_ctx, client_ctx


def test_starttls_with_login(state, tmp_path, monkeypatch):
    server_ctx, client_ctx = _self_signed(tmp_path)
    inbox = Inbox()
    port = free_port()
    server = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=lambda *a: AuthResult(success=True),
        auth_required=True,
    )
    server.start()
    monkeypatch.setenv("VSC_TEST_SMTP_PASSWORD", "pw")
    try:
        plain = smtp_settings(port)  # starttls off: the server insists on it
        notify.queue(state, plain, "acme", order_mail())
        refused = notify.flush(state, plain)
        assert refused.sent == [] and len(refused.failed) == 1
        settings = validate(
            {
                "smtp": {
                    "host": "127.0.0.1",
                    "port": port,
                    "starttls": True,
                    "user": "vsc",
                    "password_env": "VSC_TEST_SMTP_PASSWORD",
                    "from": "market@example.com",
                    "timeout": 5,
                },
                "vendors": {"acme": {"email": "orders@acme.example"}},
            }
        )
        untrusted = notify.flush(state, settings)  # the system's trust store does not know the cert
        assert untrusted.sent == [] and "CERTIFICATE_VERIFY_FAILED" in untrusted.failed[0][1]
        assert notify.flush(state, settings, ssl_context=client_ctx).sent == ["mail:order:gid://shopify/Order/1:acme"]
    finally:
        server.stop()
    assert len(inbox.messages) == 1


def test_implicit_tls(state, tmp_path):
    server_ctx, client_ctx = _self_signed(tmp_path)
    inbox = Inbox()
    port = free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=server_ctx)
    server.start()
    try:
        settings = Settings(
            smtp=SmtpSettings(
                host="127.0.0.1", port=port, ssl=True, starttls=False, sender="market@example.com", timeout=5
            ),
            vendors={"acme": {"email": "orders@acme.example"}},
        )
        notify.queue(state, settings, "acme", order_mail())
        assert notify.flush(state, settings, ssl_context=client_ctx).sent == [order_mail().key]
    finally:
        server.stop()
    assert len(inbox.messages) == 1


def test_a_mail_that_keeps_failing_is_set_aside(state, monkeypatch):
    monkeypatch.setattr(notify, "MAX_ATTEMPTS", 2)
    settings = smtp_settings(free_port())
    notify.queue(state, settings, "acme", order_mail())
    notify.flush(state, settings)
    report = notify.flush(state, settings)
    assert "gave up after 2 attempts" in report.failed[0][1]
    assert state.outbox() == [] and state.outbox(statuses=("gave_up",))[0].attempts == 2
