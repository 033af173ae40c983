"""signing.py: with DKIM on, a send makes every signature on a thread of its own, never on the
event loop's, and what it sends is what signing on the loop would send, byte for byte: every
reader's language and variant, a row that cannot be filled (it fails, the rest go), and a row that
was never prepared ahead."""

from __future__ import annotations

import asyncio
import email
import threading
import time
from email import policy
from pathlib import Path

import dkim as dkimpy
import pytest

from conftest import make_workspace, run_send
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose import dkim
from newsletter_mailer.compose.dkim import generate_key, write_key
from newsletter_mailer.config import load_settings
from newsletter_mailer.send.signing import AheadSigner, signing_threads
from newsletter_mailer.store.journal import Delivery
from smtp_servers import SMTPTestServer

PAIR = generate_key("sel", "example.org")
ISSUE = (
    "---\nsubject: Hello {{ subscriber.name.split()[0] }}\n---\nDear {{ subscriber.name.split()[0] }},\n\n"
    '## North news\n{only: branch == "North"}\n\nNorthtext for the north.\n\n'
    "## For everyone\n\nEveryonetext [read on](https://example.org/n).\n"
)


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"sel._domainkey.example.org."
    return PAIR.dns_value.encode()


def signed_workspace(tmp_path: Path, port: int, rows: list[str]) -> Path:
    root = make_workspace(tmp_path / "ws", port, 0, smtp_extra="concurrency = 5")
    (root / "issue.md").write_text(ISSUE, encoding="utf-8")
    french = ISSUE.replace("Dear", "Chère lectrice, cher lecteur").replace("Everyonetext", "Textepourtous")
    (root / "issue.fr.md").write_text(french.replace("Hello", "Bonjour"), encoding="utf-8")
    (root / "subscribers.csv").write_text("email,name,branch,language\n" + "\n".join(rows) + "\n", encoding="utf-8")
    write_key(PAIR, root / "dkim.pem")
    with (root / "newsletter.toml").open("a") as handle:
        handle.write('[dkim]\ndomain = "example.org"\nselector = "sel"\nkey_file = "dkim.pem"\n')
    return root


def readers(count: int) -> list[str]:
    branches, languages = ["North", "South", ""], ["fr", "en", ""]
    return [f"user{i}@example.org,User{i} Smith,{branches[i % 3]},{languages[i % 4 % 3]}" for i in range(count)]


def test_every_signature_is_made_off_the_loop_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made_on: list[str] = []
    real = dkim.SigningKey.sign_digest

    def spy(key: dkim.SigningKey, digest: bytes) -> bytes:
        made_on.append(threading.current_thread().name)
        return real(key, digest)

    monkeypatch.setattr(dkim.SigningKey, "sign_digest", spy)
    with SMTPTestServer() as server:
        root = signed_workspace(tmp_path, server.port, readers(90))
        _, summary = run_send(root)
    assert summary.sent == 90
    # 90 signatures on the signing thread; the one other is the key's probe as it was loaded
    assert sum(name.startswith("sign") for name in made_on) == 90 and len(made_on) == 91, made_on
    got = server.handler.messages
    for received in got:
        assert dkimpy.verify(received.data, dnsfunc=dns), received.rcpt_tos
    by_reader = {m.rcpt_tos[0]: email.message_from_bytes(m.data, policy=policy.default) for m in got}
    for i in range(90):
        message = by_reader[f"user{i}@example.org"]
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert ("Northtext" in text) == (i % 3 == 0), i  # each reader's variant
        assert ("Textepourtous" in text) == (i % 4 % 3 == 0), i  # and language
        assert message["Subject"].endswith(f"User{i}")


def test_a_row_that_cannot_be_filled_fails_and_the_others_are_signed(tmp_path: Path) -> None:
    rows = readers(12)
    rows[5] = "user5@example.org,,North,fr"  # no name: {{ subscriber.name.split()[0] }} cannot be filled
    with SMTPTestServer() as server:
        root = signed_workspace(tmp_path, server.port, rows)
        settings = load_settings(workspace=root)
        with open_campaign(root / "issue.md", settings) as campaign:
            summary = campaign.run()
    assert (summary.sent, summary.failed) == (11, 1)
    assert summary.failures[0][0] == "user5@example.org"
    assert "the message cannot be filled in" in summary.failures[0][1]
    assert len(server.handler.messages) == 11
    assert all(dkimpy.verify(m.data, dnsfunc=dns) for m in server.handler.messages)


@pytest.mark.parametrize("prepared", [True, False])
def test_signing_ahead_sends_what_signing_on_the_loop_sends(tmp_path: Path, prepared: bool) -> None:
    """The same reader in the same second: the bytes of the signer's envelope (prepared with its
    claim, or not) are the template's own, signatures included (RSA PKCS#1 v1.5 is deterministic)."""
    root = signed_workspace(tmp_path, 2525, readers(1))
    with open_campaign(root / "issue.md", load_settings(workspace=root)) as campaign:
        template = campaign.by_language()
        jobs = [Delivery(7, "ana@example.org", "Ana Lima", (("branch", "North"), ("language", "fr")))]
        jobs.append(Delivery(8, "bo@example.org", "Bo Berg", (("branch", "South"), ("language", "en"))))

        async def ahead() -> list[bytes]:
            signer = AheadSigner(template, signing_threads())
            try:
                if prepared:
                    signer.prepare(jobs)
                return [(await signer.envelope(job)).data for job in jobs]
            finally:
                signer.close()

        for _ in range(5):  # the Date is the second's: try again if the second turned between the two
            second = int(time.time())
            off_loop = asyncio.run(ahead())
            on_loop = [template.envelope(Subscriber(j.address, j.name, j.fields), j.id).data for j in jobs]
            if int(time.time()) == second:
                break
    assert off_loop == on_loop
    assert all(data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256") for data in off_loop)
    assert all(dkimpy.verify(data, dnsfunc=dns) for data in off_loop)
