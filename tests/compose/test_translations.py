"""translations.py: a translation beside an issue is found by its file name; check names the
section, event, button and highlights it lacks or adds; the reach per language counts a reader
whose language has no translation under the main file, and says so."""

from __future__ import annotations

import email
import shutil
from email import policy
from email.message import EmailMessage
from pathlib import Path

from conftest import REPO, journal_counts, make_workspace
from newsletter_mailer.compose.check import check_issue
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.compose.translations import reach, translations_of
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.send.trial import dry_run
from newsletter_mailer.store import open_store
from smtp_servers import SMTPTestServer
from test_cli import run

ARABIC = REPO / "tests" / "fixtures" / "translated" / "2026-12.ar.md"


def issue_with_translations(folder: Path) -> Path:
    main = folder / "2026-12.md"
    shutil.copy(REPO / "issues" / "example.md", main)
    shutil.copy(ARABIC, folder / "2026-12.ar.md")
    (folder / "2026-12.notes.md").write_text("not a language tag\n", encoding="utf-8")
    (folder / "2026-12-extra.md").write_text("another issue\n", encoding="utf-8")
    return main


def test_translations_are_the_files_named_with_a_language_tag(tmp_path: Path) -> None:
    main = issue_with_translations(tmp_path)
    (tmp_path / "2026-12.pt-BR.md").write_text("---\nsubject: x\n---\n", encoding="utf-8")
    assert [(t.language, t.path.name) for t in translations_of(main)] == [
        ("ar", "2026-12.ar.md"),
        ("pt-BR", "2026-12.pt-BR.md"),
    ]


def test_check_names_what_a_translation_lacks(tmp_path: Path, settings: Settings) -> None:
    main = issue_with_translations(tmp_path)
    said = [str(f) for f in check_issue(main, settings) if "2026-12.ar.md" in f.file]
    ar = str(tmp_path / "2026-12.ar.md")
    assert said == [
        f"{ar}: warning: ar: missing section 3 of 6: 'A repair café for Riverton' (line 58)",
        f"{ar}: warning: ar: missing section 4 of 6: 'Cards for the hospital ward' (line 70)",
        f"{ar}: warning: ar: missing section 6 of 6: 'Get involved' (line 93)",
        f"{ar}: warning: ar: missing event on 2027-01-10 09:30-12:30: 'River clean-up, meet at the footbridge' "
        "(line 23)",
        f"{ar}:5: warning: ar: 3 highlights, the main file has 5",
    ]


def test_a_translation_matching_its_main_file_says_nothing(tmp_path: Path, settings: Settings) -> None:
    main = tmp_path / "2026-12.md"
    shutil.copy(REPO / "issues" / "example.md", main)
    shutil.copy(main, tmp_path / "2026-12.fr.md")
    assert [f for f in check_issue(main, settings) if "2026-12.fr.md" in f.file] == []


def test_a_missing_button_is_named(tmp_path: Path, settings: Settings) -> None:
    main = tmp_path / "2026-12.md"
    shutil.copy(REPO / "issues" / "example.md", main)
    text = main.read_text(encoding="utf-8").replace("[See all drop-off points](https://example.org/coats){.button}", "")
    (tmp_path / "2026-12.fr.md").write_text(text, encoding="utf-8")
    said = [f.message for f in check_issue(main, settings) if "2026-12.fr.md" in f.file]
    assert said == ["fr: section 'Winter coat drive' lacks a button the main file has: 'See all drop-off points'"]


def test_reach_counts_a_reader_without_a_translation_under_the_main_file() -> None:
    cells = ["fr", "FR-be", "ar", "", "en-GB", "de", "de-DE", "fr"]
    assert reach(cells, "en", ["fr", "ar"]) == [
        "ar: 1 reader",
        "en: 2 readers",
        "de: 2 readers, no translation: they get the main file (en)",
        "fr: 3 readers",
    ]


def translated_workspace(root: Path, port: int) -> Path:
    """The example issue in English with French and Arabic translations, and a 30-row list with
    a language column: 10 French, 10 Arabic, 5 German (no German translation), 5 with none."""
    make_workspace(root, port, 0)
    issue = root / "issue.md"
    text = (REPO / "issues" / "example.md").read_text(encoding="utf-8")
    issue.write_text(text, encoding="utf-8")
    french = text.replace(
        'subject: "Riverside Volunteers: December 2026"', 'subject: "Bénévoles de Riverside : décembre 2026"'
    )
    (root / "issue.fr.md").write_text(french, encoding="utf-8")
    shutil.copy(ARABIC, root / "issue.ar.md")
    languages = ["fr"] * 10 + ["ar-EG"] * 10 + ["de"] * 5 + [""] * 5
    rows = "\n".join(f"user{i}@example.org,User {i},{lang}" for i, lang in enumerate(languages))
    (root / "subscribers.csv").write_text(f"email,name,language\n{rows}\n", encoding="utf-8")
    return root


def body_of(data: bytes, subtype: str) -> str:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body((subtype,))
    assert part is not None
    return str(part.get_content())


def test_each_reader_gets_their_language_once_through_a_real_relay(tmp_path: Path) -> None:
    with SMTPTestServer() as server:
        root = translated_workspace(tmp_path / "ws", server.port)
        said = run("send", "issue.md", "--yes", cwd=root)
        assert said.returncode == 0, said.stdout + said.stderr
        assert "de: 5 readers, no translation: they get the main file (en)" in said.stdout + said.stderr
        received = {m.rcpt_tos[0]: m.data for m in server.handler.messages}
    assert len(server.handler.messages) == 30 and len(received) == 30  # one message each
    assert journal_counts(root)["sent"] == 30  # one journal row each, under the main issue's key
    for i in range(30):
        data = received[f"user{i}@example.org"]
        html, text = body_of(data, "html"), body_of(data, "plain")
        subject = str(email.message_from_bytes(data, policy=policy.default)["Subject"])
        if i < 10:
            assert subject == "Bénévoles de Riverside : décembre 2026"
            assert '<html lang="fr" dir="ltr"' in html and "Dans ce numéro" in html
            assert "mardi 8 décembre 2026, 19:30–21:00" in html and "mardi 8 décembre 2026, 19:30–21:00" in text
        elif i < 20:
            assert subject == "متطوعو ضفة النهر: ديسمبر 2026"
            assert '<html lang="ar" dir="rtl"' in html and "في هذا العدد" in html
            assert "الثلاثاء، 8 ديسمبر 2026، 7:30 م–9:00 م" in html
        else:  # German (no translation) and no language: the main file, in English
            assert subject == "Riverside Volunteers: December 2026"
            assert "In this issue" in html and "Tue 8 Dec 2026, 19:30–21:00" in text


def test_a_translation_keeps_the_issues_variants(tmp_path: Path) -> None:
    """Language and variant together: a French reader of the North branch gets the French
    edition with the North section; each (language, variant) is rendered once."""
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 0)
        body = '## North branch\n{only: branch == "North"}\n\n[North](https://example.org/n) meets.\n\n## All\n\nx\n'
        (root / "issue.md").write_text("---\nsubject: Hello\ndate: 2026-12-01\n---\n" + body, encoding="utf-8")
        french = body.replace("meets.", "se réunit.").replace("x\n", "tous\n")
        (root / "issue.fr.md").write_text("---\nsubject: Bonjour\ndate: 2026-12-01\n---\n" + french, encoding="utf-8")
        rows = "a@example.org,A,North,fr\nb@example.org,B,South,fr\nc@example.org,C,North,\nd@example.org,D,South,\n"
        (root / "subscribers.csv").write_text(f"email,name,branch,language\n{rows}", encoding="utf-8")
        said = run("send", "issue.md", "--yes", cwd=root)
        assert said.returncode == 0, said.stdout + said.stderr
        got = {m.rcpt_tos[0]: body_of(m.data, "plain") for m in server.handler.messages}
    assert len(got) == 4
    assert "se réunit" in got["a@example.org"] and "1 décembre 2026" in got["a@example.org"]
    assert "se réunit" not in got["b@example.org"] and "tous" in got["b@example.org"]
    assert "meets." in got["c@example.org"] and "1 December 2026" in got["c@example.org"]
    assert "meets." not in got["d@example.org"] and "NORTH BRANCH" not in got["d@example.org"]


def test_the_pre_flight_dry_run_and_check_count_each_language_through_the_cli(tmp_path: Path) -> None:
    """How many readers get each language, and who gets the main file for want of one, said by
    `check`, `send --dry-run` and the send's pre-flight alike (10 fr, 10 ar-EG, 5 de, 5 none)."""
    with SMTPTestServer() as server:
        root = translated_workspace(tmp_path / "ws", server.port)
        fallback = "de: 5 readers, no translation: they get the main file (en)"
        checked = run("check", "issue.md", cwd=root)
        said = checked.stdout + checked.stderr
        for line in ("note: ar: 10 readers", "note: en: 5 readers", "note: fr: 10 readers", f"warning: {fallback}"):
            assert line in said, said
        dry = run("send", "issue.md", "--dry-run", cwd=root)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "built 30 messages" in dry.stdout
        assert [line.strip() for line in dry.stdout.splitlines() if "reader" in line] == [
            "ar: 10 readers",
            "en: 5 readers",
            "de: 5 readers, no translation: they get the main file (en)",
            "fr: 10 readers",
        ]
        assert server.handler.messages == []
        sent = run("send", "issue.md", "--yes", cwd=root)
        said = sent.stdout + sent.stderr
        assert sent.returncode == 0 and "note: fr: 10 readers" in said and f"warning: {fallback}" in said


def test_a_dry_run_builds_each_readers_translation(tmp_path: Path) -> None:
    """The dry run builds the message a send would: Arabic readers cost the Arabic message's
    bytes, not the English one's (before, every reader was built from the main file)."""
    root = translated_workspace(tmp_path / "ws", 2525)
    settings = load_settings(workspace=root)
    rendered = render_issue(read_issue(root / "issue.md"), settings)
    built = {}
    for cell in ("ar", "", "tlh"):  # Klingon: no translation, no catalogue, so not even its pages differ
        rows = "\n".join(f"user{i}@example.org,User {i},{cell}" for i in range(3))
        (root / "subscribers.csv").write_text(f"email,name,language\n{rows}\n", encoding="utf-8")
        built[cell] = dry_run(rendered, settings)
    assert built["ar"].languages == ("ar: 3 readers",) and built[""].languages == ()
    assert built["tlh"].languages == ("tlh: 3 readers, no translation: they get the main file (en)",)
    assert built["ar"].octets != built[""].octets == built["tlh"].octets


def test_worker_processes_send_each_reader_their_language(tmp_path: Path) -> None:
    """With --workers 2 each worker renders the translations itself: still one message each, in
    the reader's language."""
    with SMTPTestServer() as server:
        root = translated_workspace(tmp_path / "ws", server.port)
        said = run("send", "issue.md", "--yes", "--workers", "2", cwd=root)
        assert said.returncode == 0, said.stdout + said.stderr
        received = {m.rcpt_tos[0]: m.data for m in server.handler.messages}
    assert len(server.handler.messages) == 30 and len(received) == 30
    with open_store(load_settings(workspace=root)) as store:
        assert len(store.workers("issue")) == 2  # two processes did send
    for i in range(30):
        words = body_of(received[f"user{i}@example.org"], "html")
        expected = "Dans ce numéro" if i < 10 else "في هذا العدد" if i < 20 else "In this issue"
        assert expected in words, i
