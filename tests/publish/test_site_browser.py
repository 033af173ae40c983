"""The archive's pages in headless Chromium: axe-core (WCAG 2.2 A/AA and its best practices for
web pages) at phone and desktop widths, light and dark, and no horizontal scrolling.
Screenshots go to build/test-artefacts/."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from browser_checks import emulate, page_axe_violations
from conftest import ARTEFACTS, REPO, node_package
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.config import Settings
from newsletter_mailer.publish.archive import Archive, SentIssue
from newsletter_mailer.publish.site import build_site, write_site

pytestmark = pytest.mark.browser

WIDTHS = (375, 1280)
PAGES = ("index.html", "issues/example/index.html", "issues/large-issue/index.html")
SENT = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC).timestamp()


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's script; asked for before the browser, so a missing package skips at once."""
    return (node_package("axe-core") / "axe.min.js").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, example_settings: Settings) -> Path:
    issues = (
        SentIssue(read_issue(REPO / "tests" / "fixtures" / "large-issue.md"), SENT + 86400 * 90),
        SentIssue(read_issue(REPO / "issues" / "example.md"), SENT),
    )
    out = tmp_path_factory.mktemp("site") / "site"
    write_site(out, build_site(example_settings, Archive(issues, ())))
    return out


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_pages_pass_axe_and_fit_the_screen(
    browser: Any, axe_source: str, site: Path, page: str, width: int, scheme: str
) -> None:
    emulate(browser, width, scheme == "dark")
    browser.get((site / page).as_uri())
    assert page_axe_violations(browser, axe_source) == []
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= width, f"horizontal scrolling at {width}px: {scroll}px"
    column = browser.execute_script("return document.querySelector('main').getBoundingClientRect().width")
    assert column <= min(width, 42 * 17)  # a readable measure on a desktop, the whole phone on a phone
    if scheme == "light" and page != "index.html":
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": min(height, 8000), "deviceScaleFactor": 1, "mobile": width < 500},
        )
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTEFACTS / f"site-{Path(page).parent.name}-{width}px.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
