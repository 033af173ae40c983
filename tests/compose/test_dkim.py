"""dkim.py: signatures are byte for byte dkimpy's (the reference) for messages whose filled values
put whitespace, long lines, empty values and non-ASCII at the edges of their slots; they verify
with dkimpy before and after a real SMTP hop and cover both unsubscribe headers; the piecewise
body hash equals the whole-body canonicalisation for any pieces (hypothesis)."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from dkim.canonicalization import Relaxed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_workspace
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.dkim import (
    SIGNED_HEADERS,
    BodyPlan,
    DkimSigner,
    TemplateSigner,
    dkim_signer,
    generate_key,
    parse_key,
    relaxed_body,
    write_key,
)
from newsletter_mailer.compose.envelope import MessageTemplate, qp_value
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import load_settings
from newsletter_mailer.errors import ConfigError
from smtp_servers import SMTPTestServer

PAIR = generate_key("sel", "example.org")
ED_KEY = ed25519.Ed25519PrivateKey.generate()
ED_PEM = ED_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
ED_SEED = base64.b64encode(ED_KEY.private_bytes_raw())  # the form dkimpy (PyNaCl) takes
ED_RECORD = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(ED_KEY.public_key().public_bytes_raw())
NOW = 1_790_000_000


def dns(name: bytes, timeout: int = 5) -> bytes:
    records = {b"sel._domainkey.example.org.": PAIR.dns_value.encode(), b"ed._domainkey.example.org.": ED_RECORD}
    return records[name]


def reference(message: bytes, algorithm: bytes = b"rsa-sha256") -> bytes:
    """dkimpy's DKIM-Signature for a message, at the frozen time."""
    key, selector = (PAIR.private_pem, b"sel") if algorithm == b"rsa-sha256" else (ED_SEED, b"ed")
    signature: bytes = dkimpy.sign(
        message,
        selector,
        b"example.org",
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=list(SIGNED_HEADERS),
        signature_algorithm=algorithm,
    )
    return signature


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """dkimpy and our signer both read time.time() for t=; the same second for both."""
    import time

    monkeypatch.setattr(time, "time", lambda: NOW + 0.5)


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


def test_feedback_id_is_written_once_per_message_and_signed(tmp_path: Path) -> None:
    """Gmail counts a Feedback-ID only when the DKIM signature covers it: it is in h=, dkimpy
    verifies, and a message whose Feedback-ID was changed on the way no longer verifies."""
    root = make_workspace(tmp_path / "ws", 1, 1)
    add_dkim(root)
    with (root / "newsletter.toml").open("a") as handle:
        handle.write('[deliverability]\nfeedback_id_sender = "TestList"\n')
    settings = load_settings(workspace=root)
    template = MessageTemplate(
        render_issue(read_issue(root / "issue.md"), settings),
        settings,
        signer_for(settings),
        dkim=dkim_signer(settings),
    )
    data = template.envelope(Subscriber("ada@example.org", "Ada")).data
    assert data.count(b"\r\nFeedback-ID: ") == 1
    assert b"\r\nFeedback-ID: issue:test-list.example.org:newsletter:TestList\r\n" in data
    header = data.split(b"\r\n\r\n", 1)[0].decode().replace("\r\n ", " ")
    signed = re.search(r"h=([^;]+);", header).group(1)  # type: ignore[union-attr]
    assert "feedback-id" in {name.strip() for name in signed.split(":")}
    assert dkimpy.verify(data, dnsfunc=dns)
    assert not dkimpy.verify(data.replace(b":TestList\r\n", b":Other\r\n", 1), dnsfunc=dns)


def test_a_feedback_id_sender_that_would_break_the_fields_is_refused(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 1)
    with (root / "newsletter.toml").open("a") as handle:
        handle.write('[deliverability]\nfeedback_id_sender = "a:b"\n')
    with pytest.raises(ConfigError, match=r"feedback_id_sender must be .*not 'a:b'") as caught:
        load_settings(workspace=root)
    assert caught.value.line is not None


def test_signatures_survive_the_trip_through_an_smtp_server(tmp_path: Path) -> None:
    """Every signature of a real send verifies with dkimpy after the SMTP server, edge values included."""
    import csv

    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        (root / "issue.md").write_text(EDGE_ISSUE, encoding="utf-8")
        with (root / "subscribers.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "name", "city"])
            for i, name in enumerate(EDGE_NAMES):
                writer.writerow([f"user{i}@example.org", name, ["", " Riverton ", "\t", "Zürich" * 20][i % 4]])
        add_dkim(root)
        with open_campaign(root / "issue.md", load_settings(workspace=root)) as campaign:
            assert campaign.run().sent == len(EDGE_NAMES)
    assert len(server.handler.messages) == len(EDGE_NAMES)
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
    assert dkimpy.verify(
        sign.sign(b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n"), dnsfunc=dns
    )


def keygen(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "dkim", "keygen", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def published(output: str, name: str) -> bytes:
    """The record's value from keygen's zone-file form, each string checked to fit DNS (255
    octets), joined as a verifier joins them; and the one-line form checked to be the same."""
    bind = re.search(rf"^{re.escape(name)}\. IN TXT \( (.*?) \)$", output, re.M | re.S)
    assert bind is not None, output
    strings = re.findall(r'"([^"]*)"', bind.group(1))
    assert strings and all(len(part) <= 255 for part in strings)
    assert re.fullmatch(r'"[^"]*"(\n    "[^"]*")*', bind.group(1))  # one string a line
    value = "".join(strings)
    assert f"\n\n{value}\n\n" in output  # the one-line form, for panels that split it themselves
    return value.encode("ascii")


def test_keygen_writes_a_private_key_and_prints_the_txt_record(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text('[newsletter]\nfrom = "news@lists.example.org"\n')
    result = keygen(tmp_path, "--selector", "s1", "--bits", "4096")
    assert result.returncode == 0, result.stderr
    key = tmp_path / ".newsletter" / "dkim-s1.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    record = published(result.stdout, "s1._domainkey.lists.example.org")
    assert re.fullmatch(rb"v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+", record) and len(record) > 2 * 255
    assert 'key_file = ".newsletter/dkim-s1.pem"' in result.stdout
    message = b"From: a@lists.example.org\r\nSubject: x\r\n\r\nbody\r\n"
    signed = dkimpy.sign(message, b"s1", b"lists.example.org", key.read_bytes()) + message
    assert dkimpy.verify(signed, dnsfunc=lambda name, timeout=5: record)
    again = keygen(tmp_path, "--selector", "s1")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_keygen_ed25519_key_signs_what_dkimpy_verifies_beside_the_rsa_one(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text('[newsletter]\nfrom = "news@lists.example.org"\n')
    rsa_out = keygen(tmp_path)
    ed_out = keygen(tmp_path, "--algorithm", "ed25519")
    assert rsa_out.returncode == 0 and ed_out.returncode == 0, rsa_out.stderr + ed_out.stderr
    ed_file = tmp_path / ".newsletter" / "dkim-newsletter-ed25519.pem"
    assert ed_file.stat().st_mode & 0o777 == 0o600
    records = {
        b"newsletter._domainkey.lists.example.org.": published(
            rsa_out.stdout, "newsletter._domainkey.lists.example.org"
        ),
        b"newsletter-ed25519._domainkey.lists.example.org.": published(
            ed_out.stdout, "newsletter-ed25519._domainkey.lists.example.org"
        ),
    }
    ed_record = records[b"newsletter-ed25519._domainkey.lists.example.org."]
    public = base64.b64decode(ed_record.split(b"p=")[1])
    assert ed_record.startswith(b"v=DKIM1; k=ed25519; p=") and len(public) == 32  # RFC 8463: the raw key
    # The settings keygen printed, as an editor pastes them (the [dkim] header once).
    settings_text = rsa_out.stdout.split("Then add to newsletter.toml:\n\n")[1].strip()
    ed_lines = ed_out.stdout.split("[dkim]\n")[1].split("\n\n")[0].splitlines()[1:]
    (tmp_path / "newsletter.toml").write_text(
        '[newsletter]\nfrom = "news@lists.example.org"\n' + settings_text + "\n" + "\n".join(ed_lines) + "\n"
    )
    signer = dkim_signer(load_settings(workspace=tmp_path))
    assert signer is not None and [k.algorithm for k in signer.keys] == [b"rsa-sha256", b"ed25519-sha256"]
    signed = signer.sign(b"From: a@lists.example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records[name]

    for index in (0, 1):
        assert dkimpy.DKIM(signed).verify(idx=index, dnsfunc=dns), index
    with pytest.raises(dkimpy.ValidationError, match="body hash mismatch"):
        dkimpy.DKIM(signed.replace(b"body", b"bodY")).verify(idx=1, dnsfunc=dns)
    refused = keygen(tmp_path, "--algorithm", "ed25519", "--bits", "4096", "--selector", "x")
    assert refused.returncode == 2 and "--bits is for RSA keys" in refused.stderr


EDGE_NAMES = [
    "Zoë",
    "  leading and trailing  ",
    "\ttabs\t inside\t",
    "",
    " ",
    "x" * 300,
    "é " * 60,
    "a  =  b",
    ".starts with a dot",
    "ends with space ",
    "日本語の名前",
    "line\r\nbreak",
]
EDGE_ISSUE = (
    "---\nsubject: Hi {{ subscriber.name }}\n---\n{{ subscriber.name }}\n\n"
    "Dear {{ subscriber.name }},{{ subscriber.city }}\n\n"
    "## News\n\n{{ subscriber.city }}  and   {{ subscriber.name }}   \n\nSomething [happened](https://example.org/n).\n"
)


def edge_template(tmp_path: Path, ed: bool = False) -> MessageTemplate:
    root = make_workspace(tmp_path / "ws", 1, 1)
    (root / "issue.md").write_text(EDGE_ISSUE, encoding="utf-8")
    settings = load_settings(workspace=root)
    keys = [parse_key(PAIR.private_pem, "sel", "example.org")]
    if ed:
        keys.append(parse_key(ED_PEM, "ed", "example.org"))
    return MessageTemplate(
        render_issue(read_issue(root / "issue.md"), settings), settings, signer_for(settings), dkim=DkimSigner(keys)
    )


def split_signatures(data: bytes) -> tuple[list[bytes], bytes]:
    """The DKIM-Signature fields in front of a message, and the message."""
    start = data.index(b"From: ")
    fields = re.split(rb"(?=DKIM-Signature: )", data[:start])
    return [f for f in fields if f], data[start:]


@pytest.mark.parametrize("name", EDGE_NAMES)
def test_signatures_are_dkimpys_byte_for_byte(tmp_path: Path, frozen_time: None, name: str) -> None:
    template = edge_template(tmp_path, ed=True)
    assert template.dkim is not None and template.dkim.fast
    for city in ("", " Riverton ", "\t", "Zürich" * 20):
        data = template.envelope(Subscriber("zoë@example.org", name, (("city", city),))).data
        (rsa_field, ed_field), message = split_signatures(data)
        assert rsa_field == reference(message)
        assert ed_field == reference(message, b"ed25519-sha256")
        assert dkimpy.verify(data, dnsfunc=dns)
        assert template.dkim.fast  # no value made the template fall back


def test_pieces_that_do_not_fit_are_signed_whole_and_still_match(frozen_time: None) -> None:
    signer = DkimSigner([parse_key(PAIR.private_pem, "sel", "example.org")])
    # A literal ends in a space before a value: whitespace runs could join, so no piecewise hash.
    literals = [b"From: a@example.org\r\nTo: ", b"\r\nSubject: s\r\n\r\nbody ", b" tail\r\n\r\n"]
    template = TemplateSigner(signer, literals)
    assert not template.fast
    for values in ([b"b@example.org", b"  x  "], [b"b@example.org", b""]):
        pieces = [literals[0], values[0], literals[1], values[1], literals[2]]
        message = b"".join(pieces)
        assert template.sign(pieces, message) == reference(message) + message
    # A template that fits, and one message whose header value holds a bare line feed.
    literals = [b"From: a@example.org\r\nTo: ", b"\r\nSubject: s\r\n\r\nbody=\r\n", b"=\r\ntail\r\n"]
    template = TemplateSigner(signer, literals)
    assert template.fast
    for values in ([b"b@example.org", b"v"], [b"b@example.org\nX-Evil: 1", b"v"], [b"b", b"lone\nLF"]):
        pieces = [literals[0], values[0], literals[1], values[1], literals[2]]
        message = b"".join(pieces)
        assert template.sign(pieces, message) == reference(message) + message


def dkimpy_body(body: bytes) -> bytes:
    """dkimpy's canonical body: it splits the message on CRLF or LF and rejoins with CRLF first."""
    canonical: bytes = Relaxed.canonicalize_body(b"\r\n".join(re.split(b"\r?\n", body)))
    return canonical


BYTES = st.binary(max_size=60) | st.text(alphabet=" \t\r\nab=.é", max_size=40).map(lambda t: t.encode("utf-8"))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(BYTES, max_size=8))
def test_relaxed_body_is_dkimpys(pieces: list[bytes]) -> None:
    body = b"\r\n".join(re.split(b"\r?\n", b"".join(pieces)))
    assert relaxed_body(body) == dkimpy_body(body)


LITERAL = st.text(alphabet=" \tab=.\n", max_size=30).map(lambda t: t.replace("\n", "\r\n").encode())
VALUE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=120).map(qp_value)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(VALUE, LITERAL), max_size=6), LITERAL, st.booleans())
def test_piecewise_body_hash_equals_the_whole_body_hash(
    rest: list[tuple[bytes, bytes]], first: bytes, soft_breaks: bool
) -> None:
    """Whatever the values, where the plan says it fits its hash is the hash of the whole body; our
    templates put every value between QP soft line breaks, which always fits."""
    if soft_breaks:  # as our templates: "=\r\n" before and after every value
        last = len(rest) - 1
        first = first + b"=\r\n" if rest else first
        rest = [(v, b"=\r\n" + lit + (b"=\r\n" if i < last else b"")) for i, (v, lit) in enumerate(rest)]
    literals = [first, *(lit for _, lit in rest)]
    values = [v for v, _ in rest]
    plan = BodyPlan(literals)
    body = first + b"".join(v + lit for v, lit in rest)
    if soft_breaks and literals[-1].rstrip(b"\r\n\t "):
        assert plan.usable, literals
    if plan.usable:
        digest = plan.digest(values)
        assert digest is not None  # QP values never hold a line end outside a soft break
        assert digest == hashlib.sha256(dkimpy_body(body)).digest()


def test_ed25519_second_signature_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 3)
        add_dkim(root)
        (root / "ed.pem").write_bytes(ED_PEM)
        with (root / "newsletter.toml").open("a") as handle:
            handle.write('ed25519_selector = "ed"\ned25519_key_file = "ed.pem"\n')
        with open_campaign(root / "issue.md", load_settings(workspace=root)) as campaign:
            assert campaign.run().sent == 3
    for received in server.handler.messages:
        fields, _ = split_signatures(received.data)
        assert [b"a=rsa-sha256" in f for f in fields] == [True, False]
        assert b"a=ed25519-sha256" in fields[1]
        checker = dkimpy.DKIM(received.data)
        assert checker.verify(idx=0, dnsfunc=dns) and checker.verify(idx=1, dnsfunc=dns)


def test_a_key_of_the_wrong_kind_or_a_broken_key_is_a_clear_error(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 1)
    add_dkim(root)
    (root / "ed.pem").write_bytes(ED_PEM)
    with (root / "newsletter.toml").open("a") as handle:
        handle.write('ed25519_selector = "ed"\ned25519_key_file = "dkim.pem"\n')
    with pytest.raises(ConfigError, match="expected an Ed25519 key"):
        dkim_signer(load_settings(workspace=root))
    (root / "dkim.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="the DKIM key cannot sign"):
        dkim_signer(load_settings(workspace=root))
