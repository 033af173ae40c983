"""dkim.py: signatures verify with dkimpy against the public key, before and after a real SMTP
hop, and cover both unsubscribe headers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dkim as dkimpy
import pytest

from conftest import make_workspace
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.dkim import SIGNED_HEADERS, dkim_signer, generate_key, write_key
from newsletter_mailer.compose.envelope import MessageTemplate
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import load_settings
from newsletter_mailer.errors import ConfigError
from newsletter_mailer.send import dispatch
from smtp_servers import SMTPTestServer

PAIR = generate_key("sel", "example.org")


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"sel._domainkey.example.org."
    return PAIR.dns_value.encode()


def add_dkim(root: Path) -> None:
    write_key(PAIR, root / "dkim.pem")
    with (root / "newsletter.toml").open("a") as handle:
        handle.write('[dkim]\ndomain = "example.org"\nselector = "sel"\nkey_file = "dkim.pem"\n')


def test_signed_message_verifies_and_covers_the_unsubscribe_headers(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 1)
    add_dkim(root)
    settings = load_settings(workspace=root)
    template = MessageTemplate(
        render_issue(read_issue(root / "issue.md"), settings),
        settings,
        signer_for(settings),
        dkim=dkim_signer(settings),
    )
    data = template.envelope(Subscriber("zoë@example.org", "Zoë")).data
    assert data.startswith(b"DKIM-Signature: ")
    assert dkimpy.verify(data, dnsfunc=dns)
    header = data.split(b"\r\n\r\n", 1)[0].decode()
    signed = re.search(r"h=([^;]+);", header.replace("\r\n ", "").replace("\r\n\t", "")).group(1)  # type: ignore[union-attr]
    names = {n.strip().lower() for n in signed.split(":")}
    for required in (
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ):
        assert required in names
    assert "c=relaxed/relaxed" in header.replace("\r\n ", "")
    tampered = data.replace(b"Dear", b"Deer", 1)
    assert not dkimpy.verify(tampered, dnsfunc=dns)
    assert len(SIGNED_HEADERS) >= 8


def test_signatures_survive_the_trip_through_an_smtp_server(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 6)
        add_dkim(root)
        with dispatch.open_campaign(root / "issue.md", load_settings(workspace=root)) as campaign:
            assert campaign.run().sent == 6
    assert len(server.handler.messages) == 6
    for received in server.handler.messages:
        assert dkimpy.verify(received.data, dnsfunc=dns), received.rcpt_tos


def test_unreadable_or_bad_key_is_a_clear_error(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 1)
    with (root / "newsletter.toml").open("a") as handle:
        handle.write('[dkim]\ndomain = "example.org"\nselector = "sel"\nkey_file = "missing.pem"\n')
    with pytest.raises(ConfigError, match="cannot read the DKIM private key"):
        dkim_signer(load_settings(workspace=root))
    (root / "missing.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="PEM private key"):
        dkim_signer(load_settings(workspace=root))


def test_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_workspace(tmp_path / "ws", 1, 1)
    with (root / "newsletter.toml").open("a") as handle:
        handle.write('[dkim]\ndomain = "example.org"\nselector = "sel"\n')
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY", PAIR.private_pem.decode())
    sign = dkim_signer(load_settings(workspace=root))
    assert sign is not None
    assert dkimpy.verify(sign(b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n"), dnsfunc=dns)


def test_keygen_writes_a_private_key_and_prints_the_txt_record(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text('[newsletter]\nfrom = "news@lists.example.org"\n')
    result = subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "dkim", "keygen", "--selector", "s1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    key = tmp_path / ".newsletter" / "dkim-s1.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    record = re.search(
        r'^s1\._domainkey\.lists\.example\.org\. IN TXT "(v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+)"$', result.stdout, re.M
    )
    assert record is not None
    assert 'key_file = ".newsletter/dkim-s1.pem"' in result.stdout
    message = b"From: a@lists.example.org\r\nSubject: x\r\n\r\nbody\r\n"
    signed = dkimpy.sign(message, b"s1", b"lists.example.org", key.read_bytes()) + message
    assert dkimpy.verify(signed, dnsfunc=lambda name, timeout=5: record.group(1).encode())
    again = subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "dkim", "keygen", "--selector", "s1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "already exists" in again.stderr


def test_openssl_signing_step_gives_dkimpys_exact_bytes() -> None:
    import hashlib

    from dkim.crypto import RSASSA_PKCS1_v1_5_sign, parse_pem_private_key

    from newsletter_mailer.compose.dkim import _openssl_rsa_sign

    key = parse_pem_private_key(PAIR.private_pem)
    for payload in (b"", b"header hash input", b"x" * 5000):
        digest = hashlib.sha256(payload)
        assert _openssl_rsa_sign(digest.copy(), key) == RSASSA_PKCS1_v1_5_sign(digest.copy(), key)
