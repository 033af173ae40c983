"""The whole unsubscribe loop against real parts: an issue goes out through a real SMTP server,
the link is taken from the received message, the one-click POST goes to the endpoint under
uvicorn, and the next send skips the address. Then a person does it in Chromium."""

from __future__ import annotations

import contextlib
import email
import re
import subprocess
import sys
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ARTEFACTS, make_workspace, serve_asgi
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.web.unsubscribe import create_app
from smtp_servers import SMTPTestServer


def unsubscribe_link(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=policy.default)
    match = re.search(r"<(https?://[^>]+/unsubscribe/[\w-]+)>", message["List-Unsubscribe"])
    assert match is not None
    html = message.get_body(("html",))
    assert html is not None
    body_links = re.findall(r'href="([^"]+/unsubscribe/[^"]+)"', html.get_content())
    assert body_links == [match.group(1)]  # the visible link is the same as the header's
    return match.group(1)


@contextlib.contextmanager
def list_with_endpoint(tmp_path: Path, subscribers: int) -> Iterator[tuple[SMTPTestServer, Path, Settings, str]]:
    """A real SMTP server, a workspace sending to it, and its unsubscribe endpoint under uvicorn,
    with base_url pointing at the endpoint."""
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, subscribers)
        with serve_asgi(create_app(load_settings(workspace=root))) as base:
            text = (root / "newsletter.toml").read_text().replace("https://lists.example.org", base)
            (root / "newsletter.toml").write_text(text)
            yield server, root, load_settings(workspace=root), base


def test_one_click_from_a_received_message_stops_the_next_send(tmp_path: Path) -> None:
    with list_with_endpoint(tmp_path, 5) as (server, root, settings, base):
        with open_campaign(root / "issue.md", settings) as campaign:
            campaign.run()
        received = next(m for m in server.handler.messages if m.rcpt_tos == ("user2@example.org",))
        link = unsubscribe_link(received.data)
        assert link.startswith(base)
        response = httpx.post(
            link, content="List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 200
        (root / "second.md").write_text("---\nsubject: Second issue\n---\nHello again\n")
        with open_campaign(root / "second.md", settings) as campaign:
            assert campaign.preflight.suppressed == 1 and campaign.preflight.to_send == 4
            summary = campaign.run()
    assert summary.sent == 4
    second = [m.rcpt_tos[0] for m in server.handler.messages[5:]]
    assert sorted(second) == ["user0@example.org", "user1@example.org", "user3@example.org", "user4@example.org"]
    result = subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "suppressions", "export"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "user2@example.org,unsubscribed,one-click," in result.stdout


def newsletter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_a_test_copys_links_show_the_pages_and_change_nothing(tmp_path: Path) -> None:
    with list_with_endpoint(tmp_path, 1) as (server, root, settings, base):
        # --force: base_url is this machine (the endpoint under test), an error with a relay
        sent = newsletter("send", "issue.md", "--test", "--to", "tester@example.org", "--force", cwd=root)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        link = unsubscribe_link(server.handler.messages[-1].data)
        token = link.rsplit("/", 1)[1]
        page = httpx.get(link)
        assert page.status_code == 200 and "Unsubscribe from Test List?" in page.text
        assert "This link is from a test copy" in page.text
        done = httpx.post(
            link, content="List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert done.status_code == 200 and "You are unsubscribed" in done.text
        assert "nothing you do here changes any subscription" in done.text
        again = httpx.post(f"{base}/resubscribe/{token}")
        assert again.status_code == 200 and "This link is from a test copy" in again.text
        exported = newsletter("suppressions", "export", cwd=root)
        assert "tester@example.org" not in exported.stdout
        assert exported.stderr.strip().startswith("exported 0 ")
        with open_campaign(root / "issue.md", settings) as campaign:
            campaign.run()
        real = unsubscribe_link(server.handler.messages[-1].data)
        assert "This link is from a test copy" not in httpx.get(real).text
        assert httpx.post(real).status_code == 200
        assert "user0@example.org,unsubscribed" in newsletter("suppressions", "export", cwd=root).stdout


def heading_becomes(browser: Any, text: str) -> None:
    """Wait for the page after a form post to show ``text`` in its h1."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shows(driver: Any) -> bool:
        try:
            return text in driver.find_element(By.TAG_NAME, "h1").text
        except StaleElementReferenceException:
            return False

    WebDriverWait(browser, 15).until(shows)


@pytest.mark.browser
def test_a_person_confirms_in_chromium_and_undoes_it(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with list_with_endpoint(tmp_path, 1) as (server, root, settings, base):
        (root / "subscribers.csv").write_text("email\nreader@example.org\n")
        with open_campaign(root / "issue.md", settings) as campaign:
            campaign.run()
        link = unsubscribe_link(server.handler.messages[-1].data)
        browser.get(link)
        assert "Unsubscribe from Test List?" in browser.find_element(By.TAG_NAME, "h1").text
        assert "re****@example.org" in browser.page_source
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTEFACTS / "unsubscribe-confirm.png"))
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        heading_becomes(browser, "You are unsubscribed")
        browser.save_screenshot(str(ARTEFACTS / "unsubscribe-done.png"))
        assert httpx.get(base + "/healthz").text == "ok"
        result = subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", "suppressions", "export"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "reader@example.org,unsubscribed,web page," in result.stdout
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        heading_becomes(browser, "subscribed to Test List again")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        heading_becomes(browser, "You are unsubscribed")
