"""mailbox.py: files, mbox and Maildir read as given; the IMAP mailbox on a real Dovecot."""

from __future__ import annotations

import mailbox
import os
from pathlib import Path

import pytest

from conftest import Dovecot
from newsletter_mailer.audience.mailbox import READ_LIMIT, ImapMailbox, flag_maildir, read_paths
from newsletter_mailer.config import BouncesSettings
from newsletter_mailer.errors import ConfigError, MailboxError, UserInputError

REPORTS = Path(__file__).parent / "bounce_reports"


def test_files_mbox_and_maildir_are_read_message_by_message(tmp_path: Path) -> None:
    one = REPORTS / "postfix-user-unknown.eml"
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    for name in ("exim-no-dsn.eml", "vacation-reply.eml"):
        box.add((REPORTS / name).read_bytes())
    box.close()
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    maildir.add((REPORTS / "arf-complaint.eml").read_bytes())
    found = list(read_paths([one, tmp_path / "bounces.mbox", tmp_path / "Maildir"]))
    assert [m.source for m in found[:3]] == [str(one), f"{tmp_path}/bounces.mbox#1", f"{tmp_path}/bounces.mbox#2"]
    assert b"X-Failed-Recipients: left.long.ago@example.org" in found[1].data
    assert b"Subject: Automatic reply" in found[2].data
    assert b"message/feedback-report" in found[3].data and len(found) == 4


@pytest.mark.parametrize(("name", "message"), [("missing.eml", "no such file"), ("plain-folder", "not a Maildir")])
def test_a_bad_path_names_itself(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "plain-folder").mkdir()
    with pytest.raises(UserInputError, match=message) as caught:
        list(read_paths([tmp_path / name]))
    assert caught.value.file == str(tmp_path / name)


def settings_for_dovecot(server: Dovecot, **extra: object) -> BouncesSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "tls": False,
        "username": server.username,
        "password": server.password,
    }
    return BouncesSettings(**{**values, **extra})  # type: ignore[arg-type]


def test_imap_fetches_unseen_marks_and_moves_only_what_it_is_told(dovecot: Dovecot) -> None:
    for name in ("postfix-user-unknown.eml", "vacation-reply.eml"):
        dovecot.deliver((REPORTS / name).read_bytes())
    with ImapMailbox(settings_for_dovecot(dovecot)) as box:
        messages = list(box.unseen())
        assert [m.source for m in messages] == ["imap:INBOX/1", "imap:INBOX/2"]
        assert b"Final-Recipient: rfc822; gone@example.org" in messages[0].data
        box.done(messages[0], move=True)
        box.done(messages[1], move=False)
    imap = dovecot.client()
    try:
        imap.select("INBOX")
        assert imap.uid("SEARCH", "ALL")[1] == [b"2"] and imap.uid("SEARCH", "UNSEEN")[1] == [b""]
        imap.select("Processed")
        assert imap.search(None, "SEEN")[1] == [b"1"]
    finally:
        imap.logout()
    with ImapMailbox(settings_for_dovecot(dovecot)) as box:
        assert list(box.unseen()) == []


def test_imap_refusals_are_one_clear_error(dovecot: Dovecot) -> None:
    with pytest.raises(MailboxError, match="refused the login") as caught:
        ImapMailbox(settings_for_dovecot(dovecot, password="wrong")).__enter__()
    assert "wrong" not in str(caught.value)
    with pytest.raises(MailboxError, match=r"there is no folder 'Bounces'"):
        ImapMailbox(settings_for_dovecot(dovecot, folder="Bounces")).__enter__()


def test_imap_needs_a_host_and_a_password() -> None:
    with pytest.raises(ConfigError, match="no \\[bounces\\] host"):
        ImapMailbox(BouncesSettings())
    with pytest.raises(ConfigError, match="NEWSLETTER_BOUNCES_PASSWORD"):
        ImapMailbox(BouncesSettings(host="127.0.0.1", username="u"))


def test_nothing_listening_is_a_mailbox_error() -> None:
    from conftest import free_port

    settings = BouncesSettings(host="127.0.0.1", port=free_port(), tls=False, username="u", password="p")
    with pytest.raises(MailboxError, match="cannot connect"):
        ImapMailbox(settings, timeout=3).__enter__()


def test_no_message_is_read_past_the_cap_in_a_file_an_mbox_or_a_maildir(tmp_path: Path) -> None:
    big = b"Subject: big\n\n" + b"x" * (READ_LIMIT + 5000) + b"\n"
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    box.add(big)
    box.add((REPORTS / "vacation-reply.eml").read_bytes())
    box.close()
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    maildir.add(big)
    (tmp_path / "big.eml").write_bytes(big)
    found = list(read_paths([tmp_path / "bounces.mbox", tmp_path / "Maildir", tmp_path / "big.eml"]))
    assert [len(m.data) for m in found if m.data.startswith(b"Subject: big")] == [READ_LIMIT] * 3
    assert b"Subject: Automatic reply" in found[1].data and found[1].data.endswith(b"\n")


def test_imap_fetches_no_more_than_the_cap_and_flags_what_it_is_told(dovecot: Dovecot) -> None:
    dovecot.deliver(b"Subject: big\r\n\r\n" + b"x" * (READ_LIMIT + 5000) + b"\r\n")
    with ImapMailbox(settings_for_dovecot(dovecot)) as box:
        [message] = list(box.unseen())
        assert len(message.data) == READ_LIMIT
        box.done(message, move=False, flag=True)
    imap = dovecot.client()
    try:
        imap.select("INBOX")
        assert imap.uid("SEARCH", "FLAGGED SEEN")[1] == [b"1"]
    finally:
        imap.logout()


def test_a_quarantined_maildir_message_is_flagged_by_renaming_it(tmp_path: Path) -> None:
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    key = maildir.add(b"Subject: x\n\nbody\n")
    [message] = list(read_paths([tmp_path / "Maildir"]))
    flag_maildir(message)
    assert os.listdir(tmp_path / "Maildir" / "new") == []
    assert os.listdir(tmp_path / "Maildir" / "cur") == [f"{key}:2,FS"]
    assert (tmp_path / "Maildir" / "cur" / f"{key}:2,FS").read_bytes() == b"Subject: x\n\nbody\n"
    flag_maildir(message)  # twice: the same flags
    assert os.listdir(tmp_path / "Maildir" / "cur") == [f"{key}:2,FS"]
