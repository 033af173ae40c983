"""translations.py: a translation beside an issue is found by its file name; check names the
section, event, button and highlights it lacks or adds; the reach per language counts a reader
whose language has no translation under the main file, and says so."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import REPO
from newsletter_mailer.compose.check import check_issue
from newsletter_mailer.compose.translations import reach, translations_of
from newsletter_mailer.config import Settings

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
