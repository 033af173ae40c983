"""subscribe.py under a real uvicorn server with a recording SMTP relay, on either store: the
double opt-in round trip, the no-leak answers, the abuse limits, consent on record, and a person
in Chromium."""

from __future__ import annotations

import csv
import email
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ARTEFACTS, free_port, make_workspace, serve_asgi, use_store
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.signup import ConfirmCodec
from newsletter_mailer.audience.signup_log import Consent, SignupLog
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.store import open_store
from newsletter_mailer.web.unsubscribe import create_app
from smtp_servers import SMTPTestServer


class Site:
    def __init__(self, base: str, settings: Settings, server: SMTPTestServer) -> None:
        self.base, self.settings, self.server = base, settings, server

    def post(self, **form: str) -> httpx.Response:
        return httpx.post(f"{self.base}/subscribe", data=form)

    def mails_to(self, address: str, count: int = 1, wait: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + wait
        while True:
            found = [m.data for m in self.server.handler.messages if address in m.rcpt_tos]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def link_in(self, data: bytes) -> str:
        message = email.message_from_bytes(data, policy=policy.default)
        text = message.get_body(("plain",))
        assert text is not None
        match = re.search(r"(https?://\S+/confirm/[\w-]+)", text.get_content())
        assert match is not None
        return match.group(1)

    def consents(self) -> list[Consent]:
        with open_store(self.settings) as store:
            return SignupLog(store).confirmed()


@contextmanager
def running_site(root: Path, store_url: str = "") -> Iterator[Site]:
    with SMTPTestServer() as server:
        make_workspace(root, server.port, 2)
        if store_url:
            use_store(root, store_url)
        with (root / "newsletter.toml").open("a") as handle:
            handle.write(
                '[signup]\nfields = ["Home town"]\nwording_version = "2024-06"\n'
                "per_address_per_day = 2\nper_ip_per_hour = 6\n"
            )
        port = free_port()  # known before the app starts: its links must point at it
        text = (root / "newsletter.toml").read_text().replace("https://lists.example.org", f"http://127.0.0.1:{port}")
        (root / "newsletter.toml").write_text(text)
        settings = load_settings(workspace=root)
        with serve_asgi(create_app(settings), port) as base:
            yield Site(base, settings, server)


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """The pages on each store: the workspace's SQLite file, or a PostgreSQL store."""
    url = request.getfixturevalue("migrated_pg_url") if request.param == "postgresql" else ""
    with running_site(tmp_path / "ws", url) as running:
        yield running


def test_the_form_has_email_name_extra_fields_and_a_hidden_honeypot(site: Site) -> None:
    page = httpx.get(f"{site.base}/subscribe").text
    assert 'name="email"' in page and 'name="name"' in page and 'name="home_town"' in page
    assert '<form method="post" action="/subscribe">' in page
    assert 'name="website"' in page and 'tabindex="-1"' in page and "<script" not in page


def test_double_opt_in_round_trip_records_consent(site: Site) -> None:
    answer = site.post(email="New.Reader@Example.org", name="Nia", home_town="Riverton")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    [mail] = site.mails_to("New.Reader@example.org")
    message = email.message_from_bytes(mail, policy=policy.default)
    assert message["To"].addresses[0].display_name == "Nia"
    assert "confirm" in message["Subject"].lower() and message["Auto-Submitted"] == "auto-generated"
    link = site.link_in(mail)
    assert link.startswith(site.base)
    for _ in range(2):  # a link scanner following the link confirms nothing
        shown = httpx.get(link)
        assert shown.status_code == 200 and "Ne********@example.org" in shown.text and "New.Reader" not in shown.text
    assert site.consents() == []
    done = httpx.post(link)
    assert done.status_code == 200 and "You are subscribed" in done.text
    [consent] = site.consents()
    assert consent.subscriber.email == "New.Reader@example.org" and consent.subscriber.name == "Nia"
    assert consent.subscriber.fields == (("home_town", "Riverton"),)
    assert consent.request_ip == consent.confirm_ip == "127.0.0.1" and consent.wording == "2024-06"
    assert consent.requested <= consent.confirmed


def test_every_submission_gets_the_same_answer_and_reveals_nothing(site: Site) -> None:
    first = site.post(email="user0@example.org")  # already in the CSV
    stranger = site.post(email="someone.new@example.org")
    bot = site.post(email="victim@example.org", website="http://spam.example")
    assert first.text == stranger.text == bot.text and first.status_code == bot.status_code == 200
    assert site.mails_to("someone.new@example.org") and site.mails_to("user0@example.org")
    assert site.mails_to("victim@example.org", wait=1.0) == []  # the honeypot sends nothing


def test_a_victim_cannot_be_mail_bombed_through_the_form(site: Site) -> None:
    answers = {site.post(email="victim@example.org").text for _ in range(5)}
    assert len(answers) == 1
    assert len(site.mails_to("victim@example.org", count=2)) == 2
    time.sleep(0.5)  # the refused three would have gone out with their answers
    assert len(site.mails_to("victim@example.org")) == 2  # per_address_per_day
    # per_ip_per_hour = 6 signups from one visitor, five already used on the victim: the sixth is
    # mailed, and the visitor is told the rest were not (429), never "check your inbox" for nothing.
    spread = [site.post(email=f"spread{n}@example.org") for n in range(6)]
    assert [a.status_code for a in spread] == [200] + [429] * 5 and "try again later" in spread[1].text
    assert site.mails_to("spread0@example.org")
    time.sleep(0.5)
    assert {r for m in site.server.handler.messages for r in m.rcpt_tos if r.startswith("spread")} == {
        "spread0@example.org"
    }


def test_bad_input_is_refused_without_echoing_markup(site: Site) -> None:
    too_big = httpx.post(
        f"{site.base}/subscribe",
        content=b"email=a%40example.org&name=" + b"x" * 20000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert too_big.status_code == 413
    bad = site.post(email='"><script>alert(1)</script>', name="<b>x</b>")
    assert bad.status_code == 400 and "<script>alert" not in bad.text and "does not look like" in bad.text
    empty = site.post(email="")
    assert empty.status_code == 400 and "Please enter" in empty.text
    assert site.server.handler.messages == []


def test_altered_expired_and_foreign_tokens_confirm_nothing(site: Site) -> None:
    site.post(email="late@example.org")
    link = site.link_in(site.mails_to("late@example.org")[0])
    token = link.rpartition("/")[2]
    signer = signer_for(site.settings)
    expired = ConfirmCodec.for_list(signer.secret, signer.list_id, 48).token(1, time.time() - 49 * 3600)
    unsubscribe_token = signer.token("late@example.org")
    for bad in (token[:-2] + "xx", expired, unsubscribe_token, "nonsense"):
        for method in (httpx.get, httpx.post):
            answer = method(f"{site.base}/confirm/{bad}")
            assert answer.status_code == 400 and "not valid or has expired" in answer.text
    assert site.consents() == []


def test_a_suppressed_address_comes_back_only_through_the_confirmed_link(site: Site) -> None:
    with open_store(site.settings) as store:
        SuppressionList(store).add("user1@example.org", "bounced", "test")
        site.post(email="user1@example.org")
        link = site.link_in(site.mails_to("user1@example.org")[0])
        assert "user1@example.org" in SuppressionList(store)
        httpx.get(link)
        assert "user1@example.org" in SuppressionList(store)
        httpx.post(link)
        assert "user1@example.org" not in SuppressionList(store)


@pytest.mark.browser
def test_a_person_signs_up_and_confirms_in_chromium(tmp_path: Path, browser: Any) -> None:
    with running_site(tmp_path / "ws") as site:  # what a person sees does not depend on the store
        person_signs_up(site, browser)


def person_signs_up(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{site.base}/subscribe")
    browser.find_element(By.ID, "nl-email").send_keys("chromium.reader@example.org")
    browser.find_element(By.ID, "nl-name").send_keys("Chris")
    browser.find_element(By.ID, "nl-home_town").send_keys("Millbrook")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait = WebDriverWait(browser, 15)
    wait.until(lambda driver: driver.title == "Check your inbox")  # the new page, not the old one
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "signup-check-inbox.png"))
    [mail] = site.mails_to("chromium.reader@example.org")
    browser.get(site.link_in(mail))
    wait.until(lambda driver: driver.title.startswith("Confirm your subscription"))
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda driver: driver.title.startswith("You are subscribed"))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("You are subscribed")
    [consent] = site.consents()
    assert (consent.subscriber.name, consent.subscriber.fields) == ("Chris", (("home_town", "Millbrook"),))


def newsletter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_a_confirmed_signup_gets_the_next_issue_and_is_exported_with_consent(site: Site) -> None:
    root = site.settings.workspace
    site.post(email="joiner@example.org", name='=HYPERLINK("http://evil.example")', home_town="Riverton")
    site.post(email="user0@example.org", name="Already Listed")  # in the CSV too: mailed once
    for address in ("joiner@example.org", "user0@example.org"):
        httpx.post(site.link_in(site.mails_to(address)[0]))
    site.post(email="never.confirmed@example.org")
    site.mails_to("never.confirmed@example.org")
    site.server.handler.messages.clear()
    # --force: the pages are served on loopback for the test, which `check` rightly calls an error
    sent = newsletter("send", "issue.md", "--yes", "--force", cwd=root)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert re.search(r"from the CSV\W+2\b", sent.stdout) and re.search(
        r"confirmed signups \(not in the CSV\)\W+1\b", sent.stdout
    )
    assert site.server.handler.copies() == {"user0@example.org": 1, "user1@example.org": 1, "joiner@example.org": 1}
    exported = newsletter("subscribers", "export", "-o", "list.csv", cwd=root)
    assert exported.returncode == 0 and "exported 3 subscribers" in exported.stderr
    rows = list(csv.DictReader((root / "list.csv").open(encoding="utf-8-sig")))
    assert [r["email"] for r in rows] == ["user0@example.org", "user1@example.org", "joiner@example.org"]
    assert [r["source"] for r in rows] == ["csv+signup", "csv", "signup"]
    joiner = rows[2]
    assert joiner["name"].startswith("'=HYPERLINK")  # a spreadsheet shows it, never runs it
    assert joiner["home_town"] == "Riverton" and joiner["wording_version"] == "2024-06"
    assert joiner["request_ip"] == joiner["confirm_ip"] == "127.0.0.1"
    assert joiner["requested"] <= joiner["confirmed"] and joiner["confirmed"].endswith("Z")
    with open_store(site.settings) as store:
        SuppressionList(store).add("joiner@example.org", "unsubscribed", "test")
    again = newsletter("subscribers", "export", cwd=root)
    assert "joiner@example.org" not in again.stdout and "exported 2 subscribers" in again.stderr
    # With a PostgreSQL store nothing went to a SQLite file: the pages, the send and the export all used it.
    assert (root / ".newsletter" / "newsletter.db").exists() == (not site.settings.store.url)


def test_signup_form_snippet_posts_to_the_signup_page(site: Site) -> None:
    result = newsletter("signup-form", cwd=site.settings.workspace)
    assert result.returncode == 0
    assert f'<form method="post" action="{site.base}/subscribe">' in result.stdout
    assert 'name="home_town"' in result.stdout and 'name="website"' in result.stdout
