"""TLS to the relay, against a real aiosmtpd server with its own certificate: verified by
default, over STARTTLS and over implicit TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import free_port, make_workspace, run_send
from newsletter_mailer.config import load_settings
from newsletter_mailer.errors import SMTPStartError
from smtp_servers import RecordingHandler


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


def tls_server(context: ssl.SSLContext, implicit: bool) -> tuple[Controller, RecordingHandler, int]:
    handler = RecordingHandler()
    port = free_port()
    if implicit:
        controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=context)
    else:
        controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    return controller, handler, port


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_self_signed_relay_is_refused_by_default(
    tmp_path: Path, certificate: tuple[Path, ssl.SSLContext], security: str
) -> None:
    controller, handler, port = tls_server(certificate[1], implicit=security == "tls")
    controller.start()
    try:
        root = make_workspace(tmp_path / "ws", port, 2, smtp_extra=f'security = "{security}"')
        with pytest.raises(SMTPStartError, match="cannot connect") as caught:
            run_send(root)
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value) or "certificate" in str(caught.value).lower()
    finally:
        controller.stop()
    assert handler.messages == []


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_trusted_certificate_or_verification_off_sends_over_tls(
    tmp_path: Path, certificate: tuple[Path, ssl.SSLContext], security: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, handler, port = tls_server(certificate[1], implicit=security == "tls")
    controller.start()
    try:
        root = make_workspace(tmp_path / "ws", port, 3, smtp_extra=f'security = "{security}"')
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        assert run_send(root)[1].sent == 3
        monkeypatch.delenv("SSL_CERT_FILE")
        second = make_workspace(
            tmp_path / "ws2", port, 2, smtp_extra=f'security = "{security}"\nverify_certificates = false'
        )
        assert load_settings(workspace=second).smtp.verify_certificates is False
        assert run_send(second)[1].sent == 2
    finally:
        controller.stop()
    assert len(handler.messages) == 5
