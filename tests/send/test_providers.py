"""providers/: sends through local stand-ins of the SES, Postmark and Mailgun APIs (tests/stand_ins/
provider_apis.py) under uvicorn: raw MIME where the API takes it, our DKIM signature verifying after
the API (SES overwriting Date and Message-ID as it does), throttling retried with backoff, refusals
and possible duplicates in the journal with the same exactly-once accounting as SMTP; SigV4 checked
against AWS's published test suite."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dkim as dkimpy
import pytest

from conftest import make_workspace, run_send, serve_asgi
from newsletter_mailer.compose.dkim import generate_key, write_key
from newsletter_mailer.config import load_settings
from newsletter_mailer.errors import ConfigError, SMTPStartError
from newsletter_mailer.send.providers import transport_for
from newsletter_mailer.send.providers.sigv4 import Credentials, canonical_request, sign
from newsletter_mailer.store.factory import open_store
from stand_ins.provider_apis import (
    AKID,
    MAILGUN_DOMAIN,
    MAILGUN_KEY,
    POSTMARK_TOKEN,
    SECRET,
    Faults,
    StandIn,
    mailgun_app,
    postmark_app,
    ses_app,
)

PAIR = generate_key("sel", "example.org")
SUITE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
HOST = {"Host": "example.amazonaws.com"}
APPS = {"ses": ses_app, "postmark": postmark_app, "mailgun": mailgun_app}


@pytest.mark.parametrize(
    ("method", "url", "headers", "service", "signature"),
    [  # the AWS SigV4 test suite (aws-sig-v4-test-suite), 20150830T123600Z, us-east-1
        (
            "GET",
            "https://example.amazonaws.com/",
            HOST,
            "service",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "POST",
            "https://example.amazonaws.com/",
            HOST,
            "service",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "POST",
            "https://example.amazonaws.com/?Param1=value1",
            HOST,
            "service",
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        ),
        (
            "GET",
            "https://example.amazonaws.com/\u1234",
            HOST,
            "service",
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        ),
        (
            "GET",
            "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
            {"Host": "iam.amazonaws.com", "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            "iam",
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        ),
    ],
)
def test_sigv4_matches_the_aws_test_suite(
    method: str, url: str, headers: dict[str, str], service: str, signature: str
) -> None:
    signed = sign(method, url, headers, b"", SUITE, "us-east-1", service, "20150830T123600Z")
    names = ";".join(sorted([*(h.lower() for h in headers), "x-amz-date"]))
    assert signed["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/{service}/aws4_request, "
        f"SignedHeaders={names}, Signature={signature}"
    )


def test_sigv4_canonical_request_of_the_iam_example() -> None:
    # AWS's "Create a canonical request" example: its SHA-256 is published with it.
    request, _ = canonical_request(
        "GET",
        "https://iam.amazonaws.com/?Version=2010-05-08&Action=ListUsers",
        {
            "Host": "iam.amazonaws.com",
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Amz-Date": "20150830T123600Z",
        },
        hashlib.sha256(b"").hexdigest(),
    )
    assert (
        hashlib.sha256(request.encode()).hexdigest()
        == "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    )


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"sel._domainkey.example.org."
    return PAIR.dns_value.encode()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def workspace(root: Path, kind: str, base: str, count: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_workspace(root, 1, count, smtp_extra="retry_delay = 0.01\nmax_attempts = 6")
    write_key(PAIR, root / "dkim.pem")
    extra = {"mailgun": f'domain = "{MAILGUN_DOMAIN}"\n', "ses": 'region = "us-west-2"\n'}.get(kind, "")
    with (root / "newsletter.toml").open("a") as handle:
        handle.write(
            '[dkim]\ndomain = "example.org"\nselector = "sel"\nkey_file = "dkim.pem"\n'
            '[deliverability]\nfeedback_id_sender = "TestList"\n'
            f'[transport]\nkind = "{kind}"\nendpoint = "{base}"\n{extra}'
        )
    monkeypatch.setenv("NEWSLETTER_TRANSPORT_API_KEY", POSTMARK_TOKEN if kind == "postmark" else MAILGUN_KEY)
    return root


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Iterator[tuple[str, StandIn, str]]:
    kind: str = request.param
    faults: Faults = getattr(request, "faults", Faults())
    state = StandIn(faults)
    with serve_asgi(APPS[kind](state)) as base:
        yield kind, state, base


def journal(root: Path) -> dict[str, int]:
    with open_store(load_settings(workspace=root)) as store:
        return store.counts("issue")


@pytest.mark.usefixtures("credentials")
def test_ses_sends_raw_mime_whose_dkim_verifies_after_ses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = StandIn()
    with serve_asgi(ses_app(state)) as base:
        root = workspace(tmp_path / "ws", "ses", base, 5, monkeypatch)
        _, summary = run_send(root)
        assert summary.sent == 5 and len(state.kept) == 5
        again, _ = run_send(root)  # exactly once: the journal knows they were sent
    assert again.to_send == 0 and len(state.kept) == 5
    for kept in state.kept:
        assert b"@email.amazonses.com>" in kept.data  # SES's Message-ID, not ours
        assert dkimpy.verify(kept.data, dnsfunc=dns), kept.recipient
        header = kept.data.split(b"\r\n\r\n", 1)[0].decode().replace("\r\n ", " ")
        signed = {h.strip() for h in re.search(r"h=([^;]+);", header).group(1).split(":")}  # type: ignore[union-attr]
        assert "message-id" not in signed and "date" not in signed and "feedback-id" in signed
    assert sorted(k.recipient for k in state.kept) == [f"user{i}@example.org" for i in range(5)]
    assert journal(root)["sent"] == 5


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize("kind", ["ses", "postmark", "mailgun"])
def test_throttling_is_retried_and_refusals_fail_one_recipient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    state = StandIn(Faults(throttle_first=3, reject=frozenset({"user2@example.org"})))
    with serve_asgi(APPS[kind](state)) as base:
        root = workspace(tmp_path / "ws", kind, base, 6, monkeypatch)
        _, summary = run_send(root)
    assert summary.sent == 5 and summary.failed == 1 and summary.retried >= 3
    assert Counter(k.recipient for k in state.kept) == {f"user{i}@example.org": 1 for i in range(6) if i != 2}
    ((address, reply),) = summary.failures
    assert address == "user2@example.org"
    assert {"ses": "MessageRejected", "postmark": "ErrorCode 406", "mailgun": "HTTP 400"}[kind] in reply
    counts = journal(root)
    assert (counts["sent"], counts["failed"], counts["pending"]) == (5, 1, 0)


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize("kind", ["ses", "mailgun"])
def test_a_500_after_the_provider_kept_it_is_resent_and_counted_possibly_duplicated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    state = StandIn(Faults(fail_after_keeping_first=1))
    with serve_asgi(APPS[kind](state)) as base:
        root = workspace(tmp_path / "ws", kind, base, 3, monkeypatch)
        _, summary = run_send(root)
    assert summary.sent == 3 and summary.possibly_duplicated == 1
    assert len(state.kept) == 4 and journal(root)["resent"] == 1


def test_mailgun_keeps_our_mime_and_turns_tracking_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = StandIn()
    with serve_asgi(mailgun_app(state)) as base:
        root = workspace(tmp_path / "ws", "mailgun", base, 2, monkeypatch)
        run_send(root)
    for kept in state.kept:
        assert dkimpy.verify(kept.data, dnsfunc=dns)
        assert kept.request["o:tracking"] == "no" and kept.request["to"] == kept.recipient


def test_postmark_gets_the_parts_and_our_list_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = StandIn()
    with serve_asgi(postmark_app(state)) as base:
        root = workspace(tmp_path / "ws", "postmark", base, 2, monkeypatch)
        run_send(root)
    with open_store(load_settings(workspace=root)) as store:
        ours = {r.address: r.message_id for r in store.journal_rows()}
    for kept in state.kept:
        request = kept.request
        headers = {h["Name"]: h["Value"] for h in request["Headers"]}
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["List-Unsubscribe"].startswith("<https://lists.example.org/unsubscribe/")
        assert headers["Feedback-ID"] == "issue:test-list.example.org:newsletter:TestList"
        assert "/unsubscribe/" in request["HtmlBody"] and "/unsubscribe/" in request["TextBody"]
        assert request["Subject"].startswith("Hello User") and request["MessageStream"] == "broadcast"
        assert request["TrackLinks"] == "None" and request["TrackOpens"] is False
        assert request["Metadata"] == {"newsletter-message-id": ours[kept.recipient].strip("<>")}


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize("kind", ["ses", "postmark", "mailgun"])
def test_wrong_credentials_stop_before_anything_is_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    state = StandIn()
    with serve_asgi(APPS[kind](state)) as base:
        root = workspace(tmp_path / "ws", kind, base, 2, monkeypatch)
        monkeypatch.setenv("NEWSLETTER_TRANSPORT_API_KEY", "wrong")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        with pytest.raises(SMTPStartError) as caught:
            run_send(root)
    assert "refused the account check" in str(caught.value) and "wrong" not in str(caught.value)
    assert state.kept == [] and journal(root)["pending"] == 2


def test_missing_credentials_and_plain_http_endpoints_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = workspace(tmp_path / "ws", "ses", "http://127.0.0.1:9", 1, monkeypatch)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(workspace=root)
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        transport_for(settings, settings.smtp)
    text = (root / "newsletter.toml").read_text().replace("http://127.0.0.1:9", "http://api.example.org")
    (root / "newsletter.toml").write_text(text)
    with pytest.raises(ConfigError, match="endpoint must be an https"):
        load_settings(workspace=root)


def test_signup_confirmations_go_through_the_api_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter_mailer.app.signup import send_confirmation
    from newsletter_mailer.compose.envelope import Envelope

    state = StandIn()
    data = b"From: news@example.org\r\nTo: new@example.org\r\nSubject: Please confirm\r\n\r\nConfirm here.\r\n"
    with serve_asgi(mailgun_app(state)) as base:
        root = workspace(tmp_path / "ws", "mailgun", base, 0, monkeypatch)
        send_confirmation(
            load_settings(workspace=root), Envelope("news@example.org", "new@example.org", data, "<c@x>"), str
        )
    assert [(k.recipient, k.data) for k in state.kept] == [("new@example.org", data)]
