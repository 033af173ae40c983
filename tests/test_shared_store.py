"""One PostgreSQL store shared by processes that share nothing else: the unsubscribe endpoint
runs from its own directory (as on a public server), the send from the editor's workspace; an
unsubscribe POSTed while the send runs stops the message to that address; a signup confirmed on
the public pages is mailed by the next send, and a bounce read on the laptop stops the next one."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from conftest import free_port, make_workspace, run_send, serve_asgi, use_store
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.config import load_settings
from newsletter_mailer.web.unsubscribe import create_app
from smtp_servers import Faults, SMTPTestServer

RECIPIENTS = 40
REPORTS = Path(__file__).parent / "audience" / "bounce_reports"


def wait_healthy(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(f"{base}/healthz", timeout=2).text == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the endpoint did not come up")


def start_send(laptop: Path, env: dict[str, str], smtp: SMTPTestServer, started_after: int) -> subprocess.Popen[str]:
    """`newsletter send` in its own process, returned once the relay has ``started_after`` messages."""
    send = subprocess.Popen(
        [sys.executable, "-m", "newsletter_mailer", "send", "issue.md", "--yes"],
        cwd=laptop,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(smtp.handler.messages) < started_after:
        assert time.monotonic() < deadline and send.poll() is None, send.communicate()[0]
        time.sleep(0.01)
    return send


def test_an_unsubscribe_on_the_public_endpoint_reaches_a_running_send(migrated_pg_url: str, tmp_path: Path) -> None:
    port = free_port()
    public = tmp_path / "public-server"
    public.mkdir()
    # The relay holds the fourth message until the unsubscribe is in: the send is then surely
    # still running, with user30 not yet claimed, however slow the machine.
    with SMTPTestServer(Faults(delay=0.05, hold_after=3)) as smtp:
        laptop = make_workspace(tmp_path / "laptop", smtp.port, RECIPIENTS, smtp_extra="concurrency = 1")
        use_store(laptop, migrated_pg_url)
        shutil.copyfile(laptop / "newsletter.toml", public / "newsletter.toml")
        env = {**os.environ, "COLUMNS": "200"}
        endpoint = subprocess.Popen(
            [sys.executable, "-m", "newsletter_mailer", "serve", "--port", str(port)],
            cwd=public,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base, endpoint)
            send = start_send(laptop, env, smtp, started_after=3)
            token = signer_for(load_settings(workspace=laptop)).token("user30@example.org")
            response = httpx.post(
                f"{base}/unsubscribe/{token}",
                content="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert response.status_code == 200 and "You are unsubscribed" in response.text
            assert send.poll() is None and len(smtp.handler.messages) == 3  # the send is still running
            smtp.handler.release()
            output = send.communicate(timeout=120)[0]
            assert send.returncode == 0, output
        finally:
            endpoint.terminate()
            endpoint.communicate(timeout=30)
    copies = smtp.handler.copies()
    assert "user30@example.org" not in copies
    assert copies == {f"user{i}@example.org": 1 for i in range(RECIPIENTS) if i != 30}
    assert f"sent {RECIPIENTS - 1}, failed 0, skipped as unsubscribed or bounced 1" in output
    status = subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "status", "issue.md"],
        cwd=laptop,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"sent {RECIPIENTS - 1}, pending 0, failed 0, skipped as unsubscribed 1" in status.stdout
    # Neither side kept any state of its own: both used the shared store.
    assert not (public / ".newsletter" / "newsletter.db").exists()
    assert not (laptop / ".newsletter" / "newsletter.db").exists()


def newsletter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def message_to(smtp: SMTPTestServer, address: str) -> EmailMessage:
    """The message the relay took for ``address`` (waiting for one sent after a response)."""
    deadline = time.monotonic() + 30
    while not (found := [m.data for m in smtp.handler.messages if address in m.rcpt_tos]):
        assert time.monotonic() < deadline, f"no message to {address}"
        time.sleep(0.05)
    message = email.message_from_bytes(found[-1], policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_signup_on_the_public_pages_and_a_bounce_on_the_laptop_reach_the_next_send(
    migrated_pg_url: str, tmp_path: Path
) -> None:
    hostile = "Robert'); DROP TABLE signups;-- <b>x</b>"
    port = free_port()
    public = tmp_path / "public-server"
    public.mkdir()
    with SMTPTestServer() as smtp:
        laptop = make_workspace(tmp_path / "laptop", smtp.port, 3)
        use_store(laptop, migrated_pg_url)
        text = (laptop / "newsletter.toml").read_text().replace("https://lists.example.org", f"http://127.0.0.1:{port}")
        (laptop / "newsletter.toml").write_text(text + '[bounces]\naddress = "bounces@news.example.org"\n')
        shutil.copyfile(laptop / "newsletter.toml", public / "newsletter.toml")
        with serve_asgi(create_app(load_settings(workspace=public)), port) as base:
            answer = httpx.post(f"{base}/subscribe", data={"email": "Joiner@Example.org", "name": hostile})
            assert answer.status_code == 200 and "Check your inbox" in answer.text
            body = message_to(smtp, "Joiner@example.org").get_body(("plain",))
            assert body is not None
            link = re.search(r"(http://\S+/confirm/[\w-]+)", body.get_content())
            assert link is not None
            confirmed = httpx.post(link.group(1))
            assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
        smtp.handler.messages.clear()
        # --force: the pages are on loopback for the test, which `check` rightly calls an error
        sent = newsletter("send", "issue.md", "--yes", "--force", cwd=laptop)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert re.search(r"confirmed signups \(not in the CSV\)\W+1\b", sent.stdout)
        assert smtp.handler.copies() == {f"user{i}@example.org": 1 for i in range(3)} | {"Joiner@example.org": 1}
        welcome = message_to(smtp, "Joiner@example.org")
        assert welcome["Subject"] == f"Hello {hostile}"
        html = welcome.get_body(("html",))
        assert (
            html is not None and "&lt;b&gt;x&lt;/b&gt;" in html.get_content() and "<b>x</b>" not in html.get_content()
        )
        verp = next(m.mail_from for m in smtp.handler.messages if m.rcpt_tos == ("user1@example.org",))
        report = (REPORTS / "postfix-user-unknown.eml").read_text().replace("gone@example.org", "user1@example.org")
        (laptop / "returned.eml").write_text(report.replace("To: bounces@news.example.org", f"To: {verp}"))
        bounced = newsletter("bounces", "returned.eml", cwd=laptop)
        assert bounced.returncode == 0, bounced.stdout + bounced.stderr
        assert "returned.eml: hard, user1@example.org (issue): suppressed; 5.1.1" in bounced.stdout
        smtp.handler.messages.clear()
        (laptop / "next.md").write_text((laptop / "issue.md").read_text())
        again = newsletter("send", "next.md", "--yes", "--force", cwd=laptop)
        assert again.returncode == 0, again.stdout + again.stderr
    assert smtp.handler.copies() == {"user0@example.org": 1, "user2@example.org": 1, "Joiner@example.org": 1}
    status = newsletter("status", "issue.md", cwd=laptop)
    assert "bounce report: hard for user1@example.org, suppressed; 5.1.1" in status.stdout
    assert not (public / ".newsletter" / "newsletter.db").exists()
    assert not (laptop / ".newsletter" / "newsletter.db").exists()


def test_a_store_that_drops_the_send_mid_way_is_one_line_and_the_rerun_finishes(
    migrated_pg_url: str, tmp_path: Path
) -> None:
    """The PostgreSQL server ends the sender's session (a restart, a failover) in the middle of a
    send: one line and exit 1, no traceback; the next run sends the rest, each once but for the
    flagged ones that were in flight."""
    import psycopg

    from conftest import PG_PASSWORD

    # The relay holds both connections' next message while the sessions are ended: the send
    # cannot finish first, however slow the machine.
    with SMTPTestServer(Faults(delay=0.03, hold_after=5)) as smtp:
        laptop = make_workspace(tmp_path / "laptop", smtp.port, RECIPIENTS, smtp_extra="concurrency = 2")
        use_store(laptop, migrated_pg_url)
        env = {**os.environ, "COLUMNS": "200"}
        send = start_send(laptop, env, smtp, started_after=5)
        deadline = time.monotonic() + 60
        while smtp.handler.held() < 2:
            assert time.monotonic() < deadline and send.poll() is None, send.communicate()[0]
            time.sleep(0.01)
        with psycopg.connect(migrated_pg_url, password=PG_PASSWORD, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'newsletter pid%%' AND pid <> pg_backend_pid()"
            )
        smtp.handler.release()
        output = send.communicate(timeout=120)[0]
        rerun = newsletter("send", "issue.md", "--yes", cwd=laptop)
    assert send.returncode == 1, output
    assert "error: the PostgreSQL store failed" in output and "Traceback" not in output, output
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    copies = smtp.handler.copies()
    assert set(copies) == {f"user{i}@example.org" for i in range(RECIPIENTS)}
    # at most those handed over and not yet recorded: fewer than 8 x 2 on PostgreSQL (2 in flight,
    # at most 7 batches of 2 waiting for their commit; docs/architecture-store.md, "Crash bounds")
    assert sum(copies.values()) - RECIPIENTS < 8 * 2


def test_a_workspace_that_sent_an_issue_refuses_a_store_with_no_record_of_it(
    migrated_pg_url: str, tmp_path: Path
) -> None:
    """Sent from the workspace's SQLite file, then pointed at a new PostgreSQL store: sending the
    same issue again would mail everyone twice and forget every unsubscribe, so it is refused."""
    with SMTPTestServer() as smtp:
        laptop = make_workspace(tmp_path / "laptop", smtp.port, 5)
        assert newsletter("send", "issue.md", "--yes", cwd=laptop).returncode == 0
        use_store(laptop, migrated_pg_url)
        again = newsletter("send", "issue.md", "--yes", cwd=laptop)
        assert len(smtp.handler.messages) == 5
        forced = newsletter("send", "issue.md", "--yes", "--new-database", cwd=laptop)
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr
    assert "this workspace has sent issue, but the store postgresql://" in again.stderr
    assert "--new-database" in again.stderr
    assert forced.returncode == 0 and len(smtp.handler.messages) == 10  # the editor said so


def test_a_sender_clock_ahead_of_the_store_still_retries_as_often_as_configured(
    migrated_pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 20: 15 minutes ahead of PostgreSQL, a sender gave up after one attempt instead of five.
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 900)
    with SMTPTestServer(Faults(rcpt_451=1.0)) as server:
        root = make_workspace(
            tmp_path / "ws", server.port, 2, smtp_extra="max_attempts = 5\nmax_consecutive_failures = 100"
        )
        use_store(root, migrated_pg_url)
        _, summary = run_send(root)
    assert summary.sent == 0 and summary.failed == 2
    assert all("gave up after 5 attempts" in reply for _, reply in summary.failures), summary.failures
