"""webhooks.py under a real uvicorn server: each provider's documented payload, signed as the
provider signs it, suppresses the right reader through the bounce log's rules; a forged, unsigned,
stale or foreign request gets 401 and changes nothing; an event repeated is recorded once; an
address this workspace never mailed is recorded but suppresses nobody."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import make_workspace, run_send, serve_asgi
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.store.factory import open_store
from newsletter_mailer.web.unsubscribe import create_app
from smtp_servers import SMTPTestServer
from stand_ins.webhook_senders import TOPIC, SendGridSigner, SnsStandIn, basic, mailgun_signed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
MAILED = [
    "jane@example.com",
    "richard@example.com",
    "mary@example.com",
    "john@example.com",
    "alice@example.com",
    "example@test.com",
    "example@example.com",
]
MAILGUN_KEY = "key-mailgun-signing-secret"
POSTMARK = "postmark-user:postmark-password"
BREVO = "brevo-bearer-token"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Site:
    base: str
    settings: Settings
    sns: SnsStandIn
    sendgrid: SendGridSigner

    def post(self, provider: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(f"{self.base}/webhooks/{provider}", content=content, headers=headers or {}, timeout=30)

    def suppressed(self, address: str) -> str | None:
        with open_store(self.settings) as store:
            entry = SuppressionList(store).get(address)
            return entry.reason if entry else None

    def reports(self) -> list[tuple[str, str, str, str]]:
        with open_store(self.settings) as store:
            return [(r.address, r.category, r.action, r.source) for r in store.bounce_reports_for_issue("issue")]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("NEWSLETTER_WEBHOOKS_MAILGUN_SIGNING_KEY", MAILGUN_KEY)
    monkeypatch.setenv("NEWSLETTER_WEBHOOKS_POSTMARK_SECRET", POSTMARK)
    monkeypatch.setenv("NEWSLETTER_WEBHOOKS_BREVO_SECRET", BREVO)
    signer = SendGridSigner()
    with SMTPTestServer() as server, SnsStandIn() as sns:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        (root / "subscribers.csv").write_text("email\n" + "\n".join(MAILED) + "\n")
        with (root / "newsletter.toml").open("a") as handle:
            handle.write(
                f'[webhooks]\nsns_topic_arns = ["{TOPIC}"]\nsns_trusted_origin = "{sns.origin}"\n'
                f'sendgrid_public_key = "{signer.public}"\n'
            )
        _, summary = run_send(root)
        assert summary.sent == len(MAILED)
        settings = load_settings(workspace=root)
        with serve_asgi(create_app(settings)) as base:
            yield Site(base, settings, sns, signer)


def test_ses_bounce_and_complaint_through_sns_suppress_and_repeat_harmlessly(site: Site) -> None:
    bounce = site.sns.notification(fixture("ses-bounce.json"), version="1")
    for _ in range(2):  # SNS delivers at least once
        assert site.post("ses", bounce).status_code == 200
    complaint = site.sns.notification(fixture("ses-complaint.json"), version="2")
    reply = site.post("ses", complaint)
    assert reply.status_code == 200 and reply.json() == {"events": 1, "suppressed": 1}
    assert site.suppressed("jane@example.com") == "bounced"
    assert site.suppressed("richard@example.com") == "complained"
    assert site.suppressed("mary@example.com") is None  # named in the mail, not in the events
    reports = site.reports()
    assert [r[:3] for r in reports].count(("jane@example.com", "hard", "suppressed")) == 1
    assert ("richard@example.com", "complaint", "suppressed") in [r[:3] for r in reports]
    assert all(r[3].startswith("webhook:ses:") for r in reports)
    assert site.sns.requests.count(site.sns.cert_url.removeprefix(site.sns.origin)) == 1  # fetched once


def test_a_transient_ses_bounce_counts_under_the_soft_threshold(site: Site) -> None:
    assert site.post("ses", site.sns.notification(fixture("ses-transient.json"))).json()["counted"] == 1
    assert site.suppressed("mary@example.com") is None


def test_ses_found_by_our_message_id(site: Site) -> None:
    with open_store(site.settings) as store:
        ours = next(r for r in store.journal_rows() if r.address == "mary@example.com").message_id
    message = fixture("ses-bounce.json")
    message["bounce"]["bouncedRecipients"][0]["emailAddress"] = "mary@example.com"
    message["mail"]["commonHeaders"]["messageId"] = ours
    assert site.post("ses", site.sns.notification(message)).json()["suppressed"] == 1
    assert site.suppressed("mary@example.com") == "bounced"


def test_forged_sns_messages_get_401_and_change_nothing(site: Site) -> None:
    signed = site.sns.notification(fixture("ses-bounce.json"))
    forged = dict(signed, Message=signed["Message"].replace("jane@example.com", "mary@example.com"))
    other_cert = dict(signed, SigningCertURL="https://attacker.example/SimpleNotificationService-x.pem")
    fake_aws = dict(signed, SigningCertURL="https://sns.us-west-2.amazonaws.com.attacker.example/x.pem")
    other_topic = site.sns.notification(fixture("ses-bounce.json"), topic="arn:aws:sns:us-west-2:999:Other")
    unsigned = {k: v for k, v in signed.items() if k != "Signature"}
    old_version = dict(signed, SignatureVersion="3")
    for body in (forged, other_cert, fake_aws, other_topic, unsigned, old_version, b"not json"):
        assert site.post("ses", body).status_code == 401
    assert site.reports() == [] and site.suppressed("jane@example.com") is None
    assert site.suppressed("mary@example.com") is None
    assert all("attacker" not in path for path in site.sns.requests)


def test_sns_subscription_is_confirmed_only_when_signed(site: Site) -> None:
    subscription = site.sns.subscription()
    forged = dict(subscription, SubscribeURL=subscription["SubscribeURL"] + "&x=1")
    assert site.post("ses", forged).status_code == 401
    assert not any("ConfirmSubscription" in path for path in site.sns.requests)
    assert site.post("ses", subscription).status_code == 200
    assert sum("ConfirmSubscription" in path for path in site.sns.requests) == 1


def test_postmark_bounce_and_complaint_with_basic_auth(site: Site) -> None:
    assert site.post("postmark", fixture("postmark-bounce.json"), basic(POSTMARK)).json()["suppressed"] == 1
    assert site.post("postmark", fixture("postmark-spam-complaint.json"), basic(POSTMARK)).status_code == 200
    assert site.suppressed("john@example.com") == "bounced"
    assert site.suppressed("mary@example.com") == "complained"
    status = subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "status", "issue.md"],
        cwd=site.settings.workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "bounce report: hard for john@example.com, suppressed" in status.stdout, status.stdout
    assert "bounce report: complaint for mary@example.com, suppressed" in status.stdout


def test_postmark_without_the_right_credentials_is_refused(site: Site) -> None:
    for headers in ({}, basic("postmark-user:wrong"), {"Authorization": "Bearer postmark-password"}):
        assert site.post("postmark", fixture("postmark-bounce.json"), headers).status_code == 401
    assert site.suppressed("john@example.com") is None and site.reports() == []


def test_mailgun_permanent_failure_suppresses_and_a_temporary_one_does_not(site: Site) -> None:
    temporary = mailgun_signed(fixture("mailgun-failed-temporary.json"), MAILGUN_KEY)
    assert site.post("mailgun", temporary).json() == {"events": 1, "ignored": 1}
    assert site.suppressed("alice@example.com") is None
    permanent = mailgun_signed(fixture("mailgun-failed-permanent.json"), MAILGUN_KEY)
    assert site.post("mailgun", permanent).json()["suppressed"] == 1
    assert site.suppressed("alice@example.com") == "bounced"


def test_forged_or_stale_mailgun_requests_are_refused(site: Site) -> None:
    payload = fixture("mailgun-failed-permanent.json")
    wrong_key = mailgun_signed(payload, "another-key")
    stale = mailgun_signed(payload, MAILGUN_KEY, timestamp=1_500_000_000)
    tampered = mailgun_signed(payload, MAILGUN_KEY)
    tampered["signature"]["token"] += "0"
    for body in (payload, wrong_key, stale, tampered):
        assert site.post("mailgun", body).status_code == 401
    assert site.suppressed("alice@example.com") is None and site.reports() == []


def test_sendgrid_spam_report_suppresses_from_a_signed_batch(site: Site) -> None:
    body = (FIXTURES / "sendgrid-events.json").read_bytes()
    reply = site.post("sendgrid", body, site.sendgrid.headers(body))
    assert reply.status_code == 200
    # processed, delivered, open: not recorded; the spam report suppresses; bounce@test.com was never mailed
    assert reply.json() == {"events": 5, "ignored": 3, "delivered": 1, "suppressed": 1}
    assert site.suppressed("example@test.com") == "complained"
    assert site.suppressed("bounce@test.com") is None


def test_forged_sendgrid_batches_are_refused(site: Site) -> None:
    body = (FIXTURES / "sendgrid-events.json").read_bytes()
    other = SendGridSigner()
    tampered = body.replace(b"example@test.com", b"jane@example.com")
    for content, headers in (
        (body, {}),
        (body, other.headers(body)),
        (tampered, site.sendgrid.headers(body)),
        (body, site.sendgrid.headers(body, timestamp=1_500_000_000)),
    ):
        assert site.post("sendgrid", content, headers).status_code == 401
    assert site.reports() == [] and site.suppressed("example@test.com") is None


def test_brevo_hard_bounce_with_a_bearer_token(site: Site) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert site.post("brevo", fixture("brevo-hard-bounce.json"), headers).status_code == 401
    assert site.suppressed("example@example.com") is None
    reply = site.post("brevo", fixture("brevo-hard-bounce.json"), {"Authorization": f"Bearer {BREVO}"})
    assert reply.json()["suppressed"] == 1 and site.suppressed("example@example.com") == "bounced"


def test_an_address_never_mailed_is_recorded_and_suppresses_nobody(site: Site) -> None:
    payload = fixture("brevo-hard-bounce.json")
    payload["email"] = "stranger@example.net"
    reply = site.post("brevo", payload, {"Authorization": f"Bearer {BREVO}"})
    assert reply.json() == {"events": 1, "ignored": 1}
    assert site.suppressed("stranger@example.net") is None


def test_unknown_providers_and_huge_bodies(site: Site) -> None:
    assert site.post("sparkpost", {}).status_code == 404
    assert site.post("postmark", b"x" * (1024 * 1024 + 1), basic(POSTMARK)).status_code == 413
    assert site.post("postmark", b"{not json", basic(POSTMARK)).status_code == 400
