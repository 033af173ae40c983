"""app/reader.py: ``--as`` finds a reader in the list or among the confirmed signups; the copy
``send --test --as`` delivers is that reader's real message, byte for byte in content, apart from
[TEST], the (test) unsubscribe token, the Message-ID and the Date (through the recording server)."""

from __future__ import annotations

import subprocess
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from conftest import make_workspace, settings_for
from newsletter_mailer.app.reader import find_reader
from newsletter_mailer.audience.choices import Choice
from newsletter_mailer.audience.preference_log import PreferenceLog
from newsletter_mailer.audience.signup_log import SignupLog
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.errors import SubscriberListError
from newsletter_mailer.store.factory import open_store
from smtp_servers import SMTPTestServer

ISSUE = (
    "---\nsubject: Hello {{ subscriber.name }}\nhighlights: auto\n---\nDear {{ subscriber.name }} "
    'of {{ subscriber.branch }},\n\n## North branch\n{only: branch == "North"}\n\nNorthmeet on Tuesday.\n\n'
    "## Everyone\n\nEveryonetext [link](https://example.org/?who={{ subscriber.email }}).\n"
)


def _workspace(root: Path, port: int) -> Path:
    make_workspace(root, port, 0)
    rows = "\n".join(f"user{i}@example.org,User {i},{('North', 'South')[i % 2]}" for i in range(6))
    (root / "subscribers.csv").write_text(f"email,name,branch\n{rows}\n")
    (root / "issue.md").write_text(ISSUE)
    return root


def _newsletter(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args], cwd=root, capture_output=True, text=True, timeout=120
    )


def _content(data: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    """Headers (Message-ID and Date left out, [TEST] and the unsubscribe URL neutralised) and decoded parts."""
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    url = str(message["List-Unsubscribe"]).strip("<>").split(">")[0].split("<")[-1]
    assert "/unsubscribe/" in url

    def plain(text: str) -> str:
        return text.replace(url, "UNSUBSCRIBE").replace("[TEST] ", "")

    headers = [(k, plain(str(v))) for k, v in message.items() if k not in ("Message-ID", "Date", "Content-Type")]
    parts = [plain(str(p.get_content())) for p in message.walk() if p.get_content_maintype() == "text"]
    return headers, parts


@pytest.mark.parametrize("address", ["user0@example.org", "USER1@example.org"])
def test_send_test_as_delivers_that_readers_real_message(tmp_path: Path, address: str) -> None:
    with SMTPTestServer() as server:
        root = _workspace(tmp_path / "ws", server.port)
        tested = _newsletter(root, "send", "issue.md", "--test", "--as", address, "--to", "me@example.org")
        assert tested.returncode == 0, tested.stdout + tested.stderr
        (test_copy,) = server.handler.messages
        sent = _newsletter(root, "send", "issue.md", "--yes")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        real = next(m for m in server.handler.messages[1:] if m.rcpt_tos == (address.lower(),))
    assert test_copy.rcpt_tos == ("me@example.org",)  # handed to the editor, not the reader
    assert b"Subject: [TEST] Hello User" in test_copy.data
    assert _content(test_copy.data) == _content(real.data)
    assert test_copy.data.split(b"Message-ID: ")[1][:20] != real.data.split(b"Message-ID: ")[1][:20]
    north = address.lower() == "user0@example.org"
    assert ("Northmeet" in "".join(_content(test_copy.data)[1])) is north


FRENCH = (
    "---\nsubject: Bonjour {{ subscriber.name }}\nhighlights: auto\n---\nChère {{ subscriber.name }} "
    'de {{ subscriber.branch }},\n\n## Branche nord\n{only: branch == "North"}\n\nRéunionnord mardi.\n\n'
    "## Tout le monde\n\nTextecommun [lien](https://example.org/?qui={{ subscriber.email }}).\n"
)


def test_send_test_as_a_reader_of_a_translation_gets_their_language(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = _workspace(tmp_path / "ws", server.port)
        rows = "\n".join(
            f"user{i}@example.org,User {i},{('North', 'South')[i % 2]},{('fr', '')[i % 2]}" for i in range(4)
        )
        (root / "subscribers.csv").write_text(f"email,name,branch,language\n{rows}\n")
        (root / "issue.fr.md").write_text(FRENCH)
        for address in ("user0@example.org", "user1@example.org"):  # French, and the main file
            tested = _newsletter(root, "send", "issue.md", "--test", "--as", address, "--to", "me@example.org")
            assert tested.returncode == 0, tested.stdout + tested.stderr
        rendered = _newsletter(root, "render", "issue.md", "--as", "user0@example.org")
        sent = _newsletter(root, "send", "issue.md", "--yes")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        french_copy, english_copy = server.handler.messages[:2]
        real = {m.rcpt_tos[0]: m for m in server.handler.messages[2:]}
    assert (
        b"Subject: [TEST] Bonjour User 0" in french_copy.data and b"Subject: [TEST] Hello User 1" in english_copy.data
    )
    assert _content(french_copy.data) == _content(real["user0@example.org"].data)
    assert _content(english_copy.data) == _content(real["user1@example.org"].data)
    assert "Réunionnord" in "".join(_content(french_copy.data)[1])
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    assert b"Subject: Bonjour User 0" in (root / "build" / "issue.eml").read_bytes()


def test_as_finds_a_reader_who_came_through_the_signup_form(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", 1)
    settings = settings_for(root)
    with open_store(settings) as store:
        log = SignupLog(store)
        pending = log.request(Subscriber("joined@example.org", "Jo Ined"), "192.0.2.1", "form")
        assert log.confirm(pending.ref, "192.0.2.1")
        log.request(Subscriber("unconfirmed@example.org", "Un"), "192.0.2.1", "form")
    assert find_reader(settings, None, "Joined@example.org") == Subscriber("joined@example.org", "Jo Ined")
    assert find_reader(settings, None, "user3@example.org").fields == (("branch", "South"),)
    with pytest.raises(SubscriberListError, match="nor among the confirmed signups"):
        find_reader(settings, None, "unconfirmed@example.org")
    shown = _newsletter(root, "send", "issue.md", "--dry-run", "--as", "joined@example.org")
    assert shown.returncode == 0 and "To: Jo Ined <joined@example.org>" in shown.stdout


def test_subscribers_check_says_which_columns_make_the_names(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", 1)
    (root / "subscribers.csv").write_text("E-mail;First Name;Last Name\nada@example.org;Ada;Lovelace\n")
    checked = _newsletter(root, "subscribers", "check")
    assert "names: display name from 'First Name' + 'Last Name'" in checked.stdout
    shown = _newsletter(root, "send", "issue.md", "--dry-run", "--as", "ada@example.org")
    assert "To: Ada Lovelace <ada@example.org>" in shown.stdout


def test_as_finds_the_reader_with_the_topics_they_chose(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", 1)
    (root / "newsletter.toml").write_text(
        (root / "newsletter.toml").read_text() + '[preferences]\ntopics = ["Diary"]\n'
    )
    settings = settings_for(root)
    assert dict(find_reader(settings, None, "user0@example.org").fields)["topics"] == "Diary"  # no store yet
    with open_store(settings) as store:
        PreferenceLog(store).record("user0@example.org", Choice(()), offered=("Diary",), ip="", source="test")
    assert dict(find_reader(settings, None, "USER0@example.org").fields)["topics"] == ""
    assert dict(find_reader(settings, None, "user1@example.org").fields)["topics"] == "Diary"
