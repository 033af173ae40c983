"""web/preferences.py under a real uvicorn server, on either store: the page a reader reaches from
the footer of a real message (sent through the recording SMTP server), a pause and a dropped
topic posted over HTTP and honoured by the next send of a 200-reader list, hostile forms and
forged or foreign tokens refused, a test copy's token changing nothing."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from conftest import make_workspace, refuse_inserts, serve_asgi, use_store
from newsletter_mailer.audience.links import TokenSigner, signer_for
from newsletter_mailer.audience.preference_log import PreferenceLog
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.store.factory import open_store
from newsletter_mailer.web.unsubscribe import create_app
from smtp_servers import SMTPTestServer

BRANCHES = ("North", "South", "East", "West")
ISSUE = (
    "---\nsubject: {subject} for {{{{ subscriber.name }}}}\n---\nDear {{{{ subscriber.name }}}},\n\n"
    '## North branch\n{{only: branch == "North"}}\n\nNorthmeet on Tuesday.\n\n'
    '## Diary\n{{only: "Diary" in topics}}\n\nDiarytext for the month.\n\n'
    '## Campaigns\n{{only: "Campaigns" in topics}}\n\nCampaignstext this week.\n\n'
    "## Everyone\n\nEveryonetext.\n"
)
LINK = re.compile(r"https://lists\.example\.org/preferences/([A-Za-z0-9_-]+)")


@dataclass
class Workspace:
    root: Path
    server: SMTPTestServer
    base: str  # the pages, served by uvicorn

    @property
    def settings(self) -> Settings:
        return load_settings(workspace=self.root)

    def newsletter(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=300,
            env=os.environ,
        )

    def sent(self, *args: str) -> str:
        done = self.newsletter("send", *args, "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture(params=["sqlite", "postgresql"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """200 readers in four branches, two topics offered, the pages served, a recording relay."""
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        rows = "\n".join(f"user{i}@example.org,User {i},{BRANCHES[i % 4]}" for i in range(200))
        (root / "subscribers.csv").write_text(f"email,name,branch\n{rows}\n")
        text = (root / "newsletter.toml").read_text()
        (root / "newsletter.toml").write_text(text + '[preferences]\ntopics = ["Diary", "Campaigns"]\n')
        for number in (1, 2):
            (root / f"issue{number}.md").write_text(ISSUE.format(subject=f"Issue {number}"))
        if request.param == "postgresql":
            use_store(root, request.getfixturevalue("migrated_pg_url"))
        with serve_asgi(create_app(load_settings(workspace=root))) as base:
            yield Workspace(root, server, base)


def text_of(data: bytes) -> tuple[str, str]:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    plain = message.get_body(("plain",))
    assert html is not None and plain is not None
    return str(plain.get_content()), str(html.get_content())


def footer_link(workspace: Workspace, address: str) -> str:
    """The preferences link in the footer of the reader's message, the same in both parts."""
    (received,) = [m for m in workspace.server.handler.messages if m.rcpt_tos == (address,)]
    plain, html = text_of(received.data)
    token = LINK.search(plain)
    assert token is not None, plain
    assert f'href="https://lists.example.org/preferences/{token.group(1)}"' in html
    return token.group(1)


def test_a_paused_reader_gets_nothing_and_one_who_drops_the_diary_gets_no_diary(workspace: Workspace) -> None:
    workspace.sent("issue1.md")
    assert len(workspace.server.handler.messages) == 200
    paused, dropped = footer_link(workspace, "user0@example.org"), footer_link(workspace, "user1@example.org")
    page = httpx.get(f"{workspace.base}/preferences/{dropped}")
    assert page.status_code == 200 and 'value="Diary" checked' in page.text and 'value="Campaigns" checked' in page.text
    answer = httpx.post(f"{workspace.base}/preferences/{paused}", data={"topic": ["Diary", "Campaigns"], "pause": "3"})
    assert answer.status_code == 200 and "will not be sent to" in answer.text
    answer = httpx.post(f"{workspace.base}/preferences/{dropped}", data={"topic": ["Campaigns"], "pause": "keep"})
    assert answer.status_code == 200 and '<li><span dir="auto">Campaigns</span></li>' in answer.text
    assert 'value="Diary">' in httpx.get(f"{workspace.base}/preferences/{dropped}").text  # no longer ticked

    dry = workspace.newsletter("send", "issue2.md", "--dry-run")
    assert "built 199 messages" in dry.stdout and "1 paused by the reader" in dry.stdout, dry.stdout
    before = len(workspace.server.handler.messages)
    shown = workspace.sent("issue2.md")
    assert re.search(r"paused by the reader\s*│\s*1\b", shown), shown
    second = workspace.server.handler.messages[before:]
    assert len(second) == 199 and "user0@example.org" not in {m.rcpt_tos[0] for m in second}
    for received in second:
        (address,) = received.rcpt_tos
        number = int(address.removeprefix("user").partition("@")[0])
        plain, html = text_of(received.data)
        for part in (plain, html):
            assert ("Diarytext" in part) is (number != 1), address
            assert "Campaignstext" in part and "Everyonetext" in part
            assert ("Northmeet" in part) is (BRANCHES[number % 4] == "North"), address
    status = workspace.newsletter("status", "issue2")
    assert "sent 199" in status.stdout and "paused by the reader (not sent): 1" in status.stdout
    exported = workspace.newsletter("subscribers", "export")
    rows = {row["email"]: row for row in csv.DictReader(io.StringIO(exported.stdout.lstrip("\ufeff")))}
    pauser, dropper, other = rows["user0@example.org"], rows["user1@example.org"], rows["user2@example.org"]
    assert dropper["topics"] == "Campaigns" and dropper["paused_until"] == ""
    assert pauser["paused_until"].startswith(time.strftime("%Y-", time.gmtime(time.time() + 90 * 86400)))
    assert pauser["preferences_ip"] == "127.0.0.1" and pauser["topics"] == "Diary, Campaigns"
    assert other["topics"] == "Diary, Campaigns" and other["preferences_changed"] == ""  # no choice: every topic


def rows_in(workspace: Workspace, issue: str, state: str) -> list[str]:
    with open_store(workspace.settings) as store:
        return [row.address for row in store.journal_rows() if row.issue == issue and row.state == state]


def until(condition: Callable[[], bool], what: str, send: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline and send.poll() is None, f"waiting for {what}: {send.communicate()[0]}"
        time.sleep(0.05)


def test_a_pause_chosen_while_a_send_runs_holds_back_what_has_not_gone(workspace: Workspace) -> None:
    """The relay holds the send after three messages. One reader whose row is still pending and
    one whose row this sender has claimed but not handed over pause their mail on the page: the
    running send sets both aside (within PAUSES_CHECK_SECONDS), and neither gets the issue."""
    handler = workspace.server.handler
    handler.faults = dataclasses.replace(handler.faults, hold_after=3)
    send = subprocess.Popen(
        [sys.executable, "-m", "newsletter_mailer", "send", "issue1.md", "--yes"],
        cwd=workspace.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        # Four connections held in DATA, and rows claimed ahead beyond them (the last claimed is one).
        until(lambda: handler.held() == 4 and len(rows_in(workspace, "issue1", "sending")) > 4, "the hold", send)
        claimed_ahead = rows_in(workspace, "issue1", "sending")[-1]
        pending = "user150@example.org"
        assert pending in rows_in(workspace, "issue1", "pending")
        signer = signer_for(workspace.settings)
        for address in (pending, claimed_ahead):
            form = {"topic": ["Diary", "Campaigns"], "pause": "1"}
            answer = httpx.post(f"{workspace.base}/preferences/{signer.token(address)}", data=form)
            assert answer.status_code == 200 and "will not be sent to" in answer.text
        until(lambda: set(rows_in(workspace, "issue1", "paused")) == {pending, claimed_ahead}, "the pauses", send)
        handler.release()
        output = send.communicate(timeout=120)[0]
    finally:
        send.kill()
    assert send.returncode == 0, output
    mailed = [m.rcpt_tos[0] for m in handler.messages]
    assert len(mailed) == 198 and pending not in mailed and claimed_ahead not in mailed
    assert "paused by the reader during the send 2" in output, output
    assert "paused by the reader (not sent): 2" in workspace.newsletter("status", "issue1").stdout


def test_resuming_on_the_page_brings_the_next_issue(workspace: Workspace) -> None:
    token = signer_for(workspace.settings).token("user4@example.org")
    httpx.post(f"{workspace.base}/preferences/{token}", data={"topic": ["Diary"], "pause": "1"})
    page = httpx.get(f"{workspace.base}/preferences/{token}").text
    assert 'value="resume"' in page and "Stay paused until" in page
    httpx.post(f"{workspace.base}/preferences/{token}", data={"topic": ["Diary"], "pause": "resume"})
    workspace.sent("issue1.md")
    (received,) = [m for m in workspace.server.handler.messages if m.rcpt_tos == ("user4@example.org",)]
    plain, _ = text_of(received.data)
    assert "Diarytext" in plain and "Campaignstext" not in plain
    with open_store(workspace.settings) as store:
        changes = [row for row in store.iter_preferences() if row.address == "user4@example.org"]
    assert [c.paused_until > time.time() for c in changes] == [True, False]
    assert all(c.ip == "127.0.0.1" and c.source == "preferences page" and '"Campaigns"' in c.shown for c in changes)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_truncated_and_foreign_tokens_are_refused(workspace: Workspace, method: str) -> None:
    settings = workspace.settings
    good = signer_for(settings).token("user5@example.org")
    other_list = TokenSigner(signer_for(settings).secret, "another.list.example.org").token("user5@example.org")
    list_id = settings.newsletter.list_id_value
    other_key = TokenSigner(b"a different secret entirely", list_id).token("user5@example.org")
    forged = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]  # a middle character: every bit counts
    for token in (forged, good[:-3], other_list, other_key, "nonsense", "x" * 300):
        answer = httpx.request(method, f"{workspace.base}/preferences/{token}", data={"pause": "6"})
        assert answer.status_code == 400 and "link to your choices is not valid" in answer.text, token
        assert "user5" not in answer.text
    with open_store(settings) as store:
        assert PreferenceLog(store).current("user5@example.org") is None


def test_a_token_changes_only_its_own_reader_and_a_test_copys_changes_nothing(workspace: Workspace) -> None:
    settings = workspace.settings
    mine = signer_for(settings).token("user6@example.org")
    httpx.post(f"{workspace.base}/preferences/{mine}", data={"pause": "6", "email": "user7@example.org"})
    trial = signer_for(settings, test=True).token("user8@example.org")
    answer = httpx.post(f"{workspace.base}/preferences/{trial}", data={"pause": "6"})
    assert answer.status_code == 200 and "test copy" in answer.text
    with open_store(settings) as store:
        log = PreferenceLog(store)
        assert log.current("USER6@example.org") is not None
        assert log.current("user7@example.org") is None and log.current("user8@example.org") is None


@pytest.mark.parametrize(
    ("form", "said"),
    [
        ({"topic": ["Diary", "<script>alert(1)</script>"]}, "not one this newsletter offers"),
        ({"topic": ["diary"]}, "not one this newsletter offers"),
        ({"topic": ["Diary", "Diary"]}, "chosen once"),
        ({"pause": "12"}, "1, 3 or 6 months"),
        ({"pause": "-1"}, "1, 3 or 6 months"),
        ({"pause": "３"}, "1, 3 or 6 months"),
        ({"pause": ["1", "6"]}, "one option"),
        ({}, "one option"),  # an empty body must not wipe the reader's topics
        ({"topic": ["Diary"]}, "one option"),
    ],
)
def test_a_hostile_form_is_refused_with_a_message_and_changes_nothing(
    workspace: Workspace, form: dict[str, object], said: str
) -> None:
    token = signer_for(workspace.settings).token("user9@example.org")
    answer = httpx.post(f"{workspace.base}/preferences/{token}", data=form)
    assert answer.status_code == 400 and said in answer.text and "<script>alert" not in answer.text
    assert 'role="alert"' in answer.text and 'name="topic"' in answer.text  # the form again, to fix
    with open_store(workspace.settings) as store:
        assert PreferenceLog(store).current("user9@example.org") is None


def test_the_page_speaks_the_readers_language_and_tells_an_unsubscribed_reader_so(workspace: Workspace) -> None:
    token = signer_for(workspace.settings).token("user11@example.org")
    page = httpx.get(f"{workspace.base}/preferences/{token}?lang=fr")
    assert page.status_code == 200 and '<html lang="fr"' in page.text and "Sujets que vous recevez" in page.text
    assert f'action="/preferences/{token}?lang=fr"' in page.text and f'href="/unsubscribe/{token}?lang=fr"' in page.text
    assert "is unsubscribed" not in page.text
    arabic = httpx.get(f"{workspace.base}/preferences/{token}?lang=ar")
    assert 'dir="rtl"' in arabic.text
    hostile = httpx.get(f"{workspace.base}/preferences/{token}?lang=%22%3E%3Cscript%3E")
    assert '<html lang="en"' in hostile.text and "<script>" not in hostile.text
    gone = httpx.post(f"{workspace.base}/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
    assert gone.status_code == 200
    page = httpx.get(f"{workspace.base}/preferences/{token}")
    assert "</strong> is unsubscribed: nothing is sent" in page.text
    saved = httpx.post(f"{workspace.base}/preferences/{token}?lang=fr", data={"topic": ["Diary"], "pause": "keep"})
    assert saved.status_code == 200 and "est désinscrit" in saved.text and "sera envoyé" not in saved.text


def test_an_oversized_body_is_refused_unread(workspace: Workspace) -> None:
    token = signer_for(workspace.settings).token("user10@example.org")
    answer = httpx.post(f"{workspace.base}/preferences/{token}", content=b"topic=Diary&" * 1000)
    assert answer.status_code == 413
    with open_store(workspace.settings) as store:
        assert PreferenceLog(store).current("user10@example.org") is None


def test_topics_ticked_on_the_signup_form_reach_the_page_and_the_send(workspace: Workspace) -> None:
    signup = httpx.get(f"{workspace.base}/subscribe").text
    assert 'name="topic" value="Diary" checked' in signup and 'name="topic" value="Campaigns" checked' in signup
    snippet = workspace.newsletter("signup-form").stdout  # the form for the organisation's own website
    assert 'name="topic" value="Diary" checked' in snippet and 'name="topic" value="Campaigns" checked' in snippet
    answer = httpx.post(f"{workspace.base}/subscribe", data={"email": "new@example.org", "topic": ["Campaigns"]})
    assert answer.status_code == 200
    deadline = time.monotonic() + 30
    while not [m for m in workspace.server.handler.messages if m.rcpt_tos == ("new@example.org",)]:
        assert time.monotonic() < deadline, "no confirmation mail"
        time.sleep(0.05)
    (mail,) = workspace.server.handler.messages
    link = re.search(r"https?://\S+/confirm/([\w-]+)", text_of(mail.data)[0])
    assert link is not None
    assert httpx.post(f"{workspace.base}/confirm/{link.group(1)}").status_code == 200
    token = signer_for(workspace.settings).token("new@example.org")
    page = httpx.get(f"{workspace.base}/preferences/{token}").text
    assert 'value="Diary">' in page and 'value="Campaigns" checked' in page
    workspace.sent("issue1.md")
    (received,) = [m for m in workspace.server.handler.messages if m.rcpt_tos == ("new@example.org",)][1:]
    plain, _ = text_of(received.data)
    assert "Campaignstext" in plain and "Diarytext" not in plain


def test_a_store_that_refuses_the_change_answers_come_back_later(workspace: Workspace) -> None:
    with open_store(workspace.settings) as store:
        refuse_inserts(store, "preferences")
    token = signer_for(workspace.settings).token("user11@example.org")
    answer = httpx.post(f"{workspace.base}/preferences/{token}", data={"pause": "1"})
    assert answer.status_code == 503 and "Traceback" not in answer.text
    with open_store(workspace.settings) as store:
        assert PreferenceLog(store).current("user11@example.org") is None
