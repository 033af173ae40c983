"""The signup form's language choice under a real uvicorn server with a recording SMTP relay: the
choice offered from ``[newsletter] languages``, stored with the consent, refused when it is not one
of those offered, used by the confirmation mail and the pages, and by the next send; the
unsubscribe pages in the language of the email their link came from."""

from __future__ import annotations

import email
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_subscribe import Site

from browser_checks import axe_violations, emulate
from conftest import ARTEFACTS, REPO, free_port, make_workspace, node_package, serve_asgi, use_store
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.signup import ConfirmCodec, RequestRef
from newsletter_mailer.audience.signup_log import SignupLog
from newsletter_mailer.config import load_settings
from newsletter_mailer.store import open_store
from newsletter_mailer.web.unsubscribe import create_app
from smtp_servers import SMTPTestServer
from test_cli import run

ARABIC = REPO / "tests" / "fixtures" / "translated" / "2026-12.ar.md"


@contextmanager
def site_offering(root: Path, languages: str, store_url: str = "") -> Iterator[Site]:
    """A workspace whose form offers ``languages`` (a TOML array, or "" for no setting), served."""
    with SMTPTestServer() as server:
        make_workspace(root, server.port, 1)
        if store_url:
            use_store(root, store_url)
        port = free_port()
        text = (root / "newsletter.toml").read_text().replace("https://lists.example.org", f"http://127.0.0.1:{port}")
        if languages:
            text = text.replace("[newsletter]\n", f"[newsletter]\nlanguages = {languages}\n", 1)
        (root / "newsletter.toml").write_text(text + '[signup]\nfields = ["Home town"]\n')
        settings = load_settings(workspace=root)
        with serve_asgi(create_app(settings), port) as base:
            yield Site(base, settings, server)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with site_offering(tmp_path / "ws", '["fr", "ar", "cy"]') as running:
        yield running


def message(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def html_of(data: bytes) -> str:
    part = message(data).get_body(("html",))
    assert part is not None
    return str(part.get_content())


def pending_requests(site: Site) -> int:
    with open_store(site.settings) as store:
        return len(list(store.iter_signup_requests()))


def test_the_form_offers_each_language_named_in_itself(site: Site) -> None:
    page = httpx.get(f"{site.base}/subscribe").text
    assert '<label for="nl-language">Language</label>' in page
    options = re.findall(r'<option value="([^"]+)" lang="([^"]+)"( selected)?>([^<]+)</option>', page)
    assert options == [
        ("en", "en", " selected", "English"),
        ("fr", "fr", "", "Français"),
        ("ar", "ar", "", "العربية"),
        ("cy", "cy", "", "Cymraeg"),
    ]


def test_the_form_in_a_chosen_language_keeps_it(site: Site) -> None:
    page = httpx.get(f"{site.base}/subscribe", params={"lang": "cy"}).text
    assert '<html lang="cy" dir="ltr">' in page and '<option value="cy" lang="cy" selected>' in page
    assert 'action="/subscribe?lang=cy"' in page and "Iaith" in page  # "Language" in Welsh
    arabic = httpx.get(f"{site.base}/subscribe", params={"lang": "AR"}).text
    assert '<html lang="ar" dir="rtl">' in arabic


def test_a_hostile_lang_parameter_shows_the_main_language_and_is_never_echoed(site: Site) -> None:
    for hostile in ('"><script>alert(1)</script>', "fr\r\nX: y", "../../etc", "x" * 5000):
        page = httpx.get(f"{site.base}/subscribe", params={"lang": hostile}).text
        assert '<html lang="en" dir="ltr">' in page and "<script>alert" not in page
        assert 'action="/subscribe"' in page


def test_a_language_not_offered_is_refused_and_nothing_is_recorded(site: Site) -> None:
    for hostile in ("de", "xx", '"><script>alert(1)</script>', "fr\u202e", "fr-FR"):
        answer = site.post(email="someone@example.org", language=hostile)
        assert answer.status_code == 400 and "Please choose one of the languages offered" in answer.text
        assert "<script>alert" not in answer.text
    assert pending_requests(site) == 0 and site.mails_to("someone@example.org", wait=0.5) == []


def test_a_refused_form_is_answered_in_the_language_chosen_or_shown(site: Site) -> None:
    french = site.post(email='"><b>x</b>', language="fr")
    assert french.status_code == 400 and '<html lang="fr"' in french.text
    assert "Cela ne ressemble pas à une adresse e-mail" in french.text and "<b>x</b>" not in french.text
    assert '<option value="fr" lang="fr" selected>' in french.text  # the choice kept
    arabic = httpx.post(f"{site.base}/subscribe", params={"lang": "ar"}, data={"email": ""})
    assert arabic.status_code == 400 and "يُرجى إدخال عنوان بريدك الإلكتروني" in arabic.text
    welsh = httpx.post(
        f"{site.base}/subscribe", params={"lang": "cy"}, data={"email": "a@example.org", "language": "xx"}
    )
    assert welsh.status_code == 400 and "ieithoedd a gynigir" in welsh.text
    assert site.mails_to("a@example.org", wait=0.5) == []


def test_no_choice_without_the_setting_and_a_posted_language_is_ignored(tmp_path: Path) -> None:
    with site_offering(tmp_path / "ws", "") as site:
        page = httpx.get(f"{site.base}/subscribe").text
        assert "<select" not in page and "nl-language" not in page
        french = httpx.get(f"{site.base}/subscribe", params={"lang": "fr"}).text  # not offered: the main language
        assert '<html lang="en"' in french and 'action="/subscribe"' in french
        assert site.post(email="plain@example.org", language="fr").status_code == 200
        httpx.post(site.link_in(site.mails_to("plain@example.org")[0]))
        [consent] = site.consents()
        assert consent.subscriber.fields == (("home_town", ""),)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_the_choice_is_stored_with_the_consent_and_used_for_mail_and_pages(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("migrated_pg_url") if store == "postgresql" else ""
    with site_offering(tmp_path / "ws", '["fr", "ar"]', url) as site:
        answer = site.post(email="amira@example.org", name="Amira", home_town="Riverton", language="ar")
        assert answer.status_code == 200 and '<html lang="ar" dir="rtl">' in answer.text
        [mail] = site.mails_to("amira@example.org")
        assert str(message(mail)["Subject"]) == "يُرجى تأكيد اشتراكك في Test List"  # "Please confirm ..." in Arabic
        assert '<html lang="ar" dir="rtl">' in html_of(mail)
        link = site.link_in(mail)
        with open_store(site.settings) as opened:  # stored before it is confirmed: the request's fields
            pending = SignupLog(opened).pending(ref_of(site, link))
            assert pending is not None and pending.language == "ar"
        shown = httpx.get(link)
        assert shown.status_code == 200 and '<html lang="ar" dir="rtl">' in shown.text
        done = httpx.post(link)
        assert done.status_code == 200 and '<html lang="ar" dir="rtl">' in done.text
        [consent] = site.consents()
        assert consent.subscriber.fields == (("home_town", "Riverton"), ("language", "ar"))


def ref_of(site: Site, link: str) -> RequestRef:
    signer = signer_for(site.settings)
    codec = ConfirmCodec.for_list(signer.secret, signer.list_id, site.settings.signup.confirm_hours)
    return codec.verify(link.rpartition("/")[2])


def test_a_signup_in_french_gets_the_french_issue_and_french_pages(site: Site) -> None:
    root = site.settings.workspace
    issue = (REPO / "issues" / "example.md").read_text(encoding="utf-8")
    (root / "issue.md").write_text(issue, encoding="utf-8")
    (root / "issue.fr.md").write_text(issue.replace("Riverside Volunteers: December", "Bénévoles : décembre"))
    shutil.copy(ARABIC, root / "issue.ar.md")
    for address, language in (("fr.reader@example.org", "fr"), ("cy.reader@example.org", "cy")):
        site.post(email=address, language=language)
        httpx.post(site.link_in(site.mails_to(address)[0]))
    site.server.handler.messages.clear()
    sent = run("send", "issue.md", "--yes", "--force", cwd=root)  # --force: the pages are on loopback
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "cy: 1 reader, no translation: they get the main file (en)" in sent.stdout + sent.stderr
    got = {m.rcpt_tos[0]: m.data for m in site.server.handler.messages}
    assert set(got) == {"user0@example.org", "fr.reader@example.org", "cy.reader@example.org"}
    french = got["fr.reader@example.org"]
    assert str(message(french)["Subject"]) == "Bénévoles : décembre 2026" and "Dans ce numéro" in html_of(french)
    welsh = got["cy.reader@example.org"]
    assert "In this issue" in html_of(welsh)  # no Welsh translation: the main file, in English
    welsh_page = re.sub(r"^<|>$", "", str(message(welsh)["List-Unsubscribe"]))
    assert welsh_page.endswith("?lang=cy") and '<html lang="cy"' in httpx.get(welsh_page).text  # the pages: Welsh
    unsubscribe = re.sub(r"^<|>$", "", str(message(french)["List-Unsubscribe"]))
    assert unsubscribe.endswith("?lang=fr")
    assert "?lang=" not in str(message(got["user0@example.org"])["List-Unsubscribe"])
    page = httpx.get(unsubscribe).text
    assert '<html lang="fr" dir="ltr">' in page and "Se désabonner" in page
    assert re.search(r'action="/unsubscribe/[\w-]+\?lang=fr"', page)
    done = httpx.post(unsubscribe)
    assert '<html lang="fr"' in done.text and re.search(r'action="/resubscribe/[\w-]+\?lang=fr"', done.text)
    back = httpx.post(unsubscribe.replace("/unsubscribe/", "/resubscribe/"))
    assert '<html lang="fr"' in back.text and "de nouveau abonné" in back.text


def test_the_unsubscribe_page_ignores_a_hostile_lang(site: Site) -> None:
    token = signer_for(site.settings).token("user0@example.org")
    for hostile in ('"><script>x</script>', "zz", "fr\r\nSet-Cookie: a=b"):
        page = httpx.get(f"{site.base}/unsubscribe/{token}", params={"lang": hostile})
        assert page.status_code == 200 and '<html lang="en" dir="ltr">' in page.text
        assert "<script>x" not in page.text and "Set-Cookie" not in page.text and "?lang=" not in page.text
    shipped = httpx.get(f"{site.base}/unsubscribe/{token}", params={"lang": "de-AT"}).text
    assert '<html lang="de" dir="ltr">' in shipped  # a catalogue we ship, though the form does not offer it


def test_a_bad_languages_setting_is_one_line_naming_the_key(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 2525, 1)
    text = (root / "newsletter.toml").read_text()
    (root / "newsletter.toml").write_text(text.replace("[newsletter]\n", '[newsletter]\nlanguages = ["fr", "<b>"]\n'))
    said = run("check", "issue.md", cwd=root)
    assert said.returncode == 2 and "Traceback" not in said.stderr
    assert "newsletter.toml:3: error: [newsletter] languages: '<b>' is not a language tag" in said.stderr
    (root / "newsletter.toml").write_text(text + '[signup]\nfields = ["Language"]\n')
    said = run("check", "issue.md", cwd=root)
    assert said.returncode == 2 and "'Language' is a name the form already uses" in said.stderr


@pytest.mark.browser
def test_a_person_chooses_welsh_in_chromium_and_the_form_is_axe_clean(site: Site, browser: Any) -> None:
    """The form with its language choice, in English and in Arabic (right to left), axe clean at
    375 and 640 px in light and dark; the select as large as the other controls; a person picks
    Cymraeg with the keyboard's select, and the answer and the mail are in Welsh."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    axe = (node_package("axe-core") / "axe.min.js").read_text(encoding="utf-8")
    for url in (f"{site.base}/subscribe", f"{site.base}/subscribe?lang=ar"):
        for width in (375, 640):
            for dark in (False, True):
                emulate(browser, width, dark, offline=False)
                browser.get(url)
                assert axe_violations(browser, axe) == {}, (url, width, dark)
                height = browser.execute_script(
                    "return document.querySelector('select').getBoundingClientRect().height"
                )
                assert height >= 44
                assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        if url.endswith("ar"):
            ARTEFACTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(ARTEFACTS / "page-subscribe-languages-ar-640.png"))
    emulate(browser, 640, False, offline=False)
    browser.get(f"{site.base}/subscribe")
    browser.find_element(By.ID, "nl-email").send_keys("gwen@example.org")
    Select(browser.find_element(By.ID, "nl-language")).select_by_visible_text("Cymraeg")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # The old page's <html> found just before the new one replaces it is stale: look again.
    WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda driver: driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "cy"
    )
    assert browser.find_element(By.TAG_NAME, "h1").text == "Edrychwch yn eich mewnflwch"
    [mail] = site.mails_to("gwen@example.org")
    assert '<html lang="cy" dir="ltr">' in html_of(mail)


def test_check_warns_of_an_offered_language_without_a_catalogue(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 2525, 1)
    text = (root / "newsletter.toml").read_text()
    (root / "newsletter.toml").write_text(text.replace("[newsletter]\n", '[newsletter]\nlanguages = ["fr", "tlh"]\n'))
    said = run("check", "issue.md", cwd=root)
    assert (
        "newsletter.toml:3: warning: [newsletter] languages: 'tlh' has no catalogue of ours "
        "(en, fr, de, es, nl, cy, ar): a reader who chooses it gets the signup pages and mail in English"
    ) in said.stdout + said.stderr
