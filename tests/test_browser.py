"""What a reader sees: headless Chromium renders the final HTML at phone and desktop widths.

Screenshots are kept under build/test-artefacts/ for a person to look at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import ARTEFACTS, REPO
from newsletter_mailer.compose.artifacts import write_files
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import Settings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def example_html(tmp_path_factory: pytest.TempPathFactory, example_settings: Settings) -> Path:
    settings = example_settings
    out = tmp_path_factory.mktemp("render")
    return write_files(render_issue(read_issue(REPO / "issues" / "example.md"), settings), settings, out).html


def set_width(driver: Any, width: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
    )


@pytest.mark.parametrize("width", [375, 640])
def test_example_renders_without_horizontal_scrolling(browser: Any, example_html: Path, width: int) -> None:
    set_width(browser, width)
    browser.get(example_html.as_uri())
    metrics = browser.execute_script(
        "return {scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,"
        " inner: window.innerWidth, h1: document.querySelector('h1').getBoundingClientRect().width,"
        " buttons: Array.from(document.querySelectorAll('a')).filter(a => a.textContent.includes('drop-off'))"
        ".map(a => a.getBoundingClientRect().right)}"
    )
    assert metrics["inner"] == width
    assert metrics["scroll"] <= metrics["client"], f"horizontal scrolling at {width}px: {metrics}"
    assert all(right <= width for right in metrics["buttons"])
    if width == 375:
        assert metrics["h1"] < 375  # the content column shrinks to the phone
    else:
        assert metrics["h1"] <= 600  # and stays at 600 px on a desktop
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": min(height, 6000), "deviceScaleFactor": 1, "mobile": width < 500},
    )
    shot = ARTEFACTS / f"example-{width}px.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_preview_page_shows_both_views_and_reloads_on_save(browser: Any, tmp_path: Path) -> None:
    from conftest import serve_asgi, write_issue
    from newsletter_mailer.web.preview import create_app

    issue = write_issue(tmp_path, "subject: First subject", "Hello there\n")
    (tmp_path / "newsletter.toml").write_text('[newsletter]\nname = "Preview Test"\n')
    import time

    with serve_asgi(create_app(issue, tmp_path / "newsletter.toml")) as base:
        set_width(browser, 1400)
        browser.get(base + "/")
        deadline = time.monotonic() + 15
        while "Hello there" not in browser.execute_script("return document.getElementById('text').textContent"):
            assert time.monotonic() < deadline, "text part never appeared"
            time.sleep(0.2)
        frames = browser.execute_script(
            "return Array.from(document.querySelectorAll('iframe')).map(f => f.clientWidth)"
        )
        assert sorted(round(w) for w in frames) == [375, 640]
        time.sleep(0.05)
        write_issue(tmp_path, "subject: Second subject", "Changed text\n")
        deadline = time.monotonic() + 15
        while "Changed text" not in browser.execute_script("return document.getElementById('text').textContent"):
            assert time.monotonic() < deadline, "preview did not reload after the file was saved"
            time.sleep(0.2)
        browser.switch_to.frame(browser.find_element("id", "phone"))
        assert "Second subject" in browser.find_element("tag name", "h1").text
