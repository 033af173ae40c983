"""preview.py under a real uvicorn server: pages, text, and a version that changes on save."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import serve_asgi, write_issue
from newsletter_mailer.web.preview import create_app


def test_preview_serves_html_text_and_notices_a_save(tmp_path: Path) -> None:
    issue = write_issue(tmp_path, "subject: Hello", "Dear {{ subscriber.name }},\n")
    with serve_asgi(create_app(issue)) as base:
        page = httpx.get(base + "/")
        assert page.status_code == 200 and 'id="phone"' in page.text and 'width="375"' in page.text
        assert "Dear Sam Example," in httpx.get(base + "/text").text
        assert "<h1" in httpx.get(base + "/html").text
        before = httpx.get(base + "/version").json()["version"]
        write_issue(tmp_path, "subject: Hello", "Changed\n")
        later = time.time() + 5
        os.utime(issue, (later, later))
        assert httpx.get(base + "/version").json()["version"] != before
        assert "Changed" in httpx.get(base + "/text").text


def test_preview_shows_the_error_instead_of_failing(tmp_path: Path) -> None:
    issue = write_issue(tmp_path, "subject: Hello\nbogus: 1")
    with serve_asgi(create_app(issue)) as base:
        response = httpx.get(base + "/html")
        assert response.status_code == 200
        assert "unknown key &#x27;bogus&#x27;" in response.text or "unknown key 'bogus'" in response.text


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 1440, 1920])
def test_all_three_views_fit_the_window_from_1280_px(browser: Any, width: int) -> None:
    """Desktop, phone and the whole 76-column text part, side by side or stacked in the second
    column, with nothing pushed off to the right or below the fold of an 800 px high window."""
    from conftest import ARTEFACTS, REPO

    with serve_asgi(create_app(REPO / "issues" / "example.md", REPO / "newsletter.toml")) as base:
        browser.set_window_rect(width=width, height=800)
        inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
        browser.get(base + "/")
        deadline = time.monotonic() + 20
        script = "return document.getElementById('text').textContent"
        while "IN THIS ISSUE" not in browser.execute_script(script):
            assert time.monotonic() < deadline, "the text part never appeared"
            time.sleep(0.2)
        boxes = browser.execute_script(
            "return ['desktop', 'phone', 'text'].map(id => {"
            " const r = document.getElementById(id).getBoundingClientRect();"
            " return [id, r.width, r.right, r.bottom]; })"
        )
        text_fits = browser.execute_script(
            "const t = document.getElementById('text'); const probe = document.createElement('span');"
            " probe.textContent = 'x'.repeat(76); t.appendChild(probe);"
            " const fits = probe.getBoundingClientRect().width + 16 <= t.clientWidth; probe.remove(); return fits"
        )
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTEFACTS / f"preview-{width}px.png"))
    client_width = browser.execute_script("return document.documentElement.clientWidth")
    widths = {name: round(w) for name, w, _, _ in boxes}
    assert widths["desktop"] == 642 and widths["phone"] == 377, boxes  # the views at their size, with borders
    assert all(right <= client_width for _, _, right, _ in boxes), (inner, boxes)
    assert all(bottom <= inner[1] for _, _, _, bottom in boxes), (inner, boxes)
    assert text_fits, "a 76-column line of the text part does not fit its pane"


def test_preview_as_shows_that_readers_copy_and_variant(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text('[newsletter]\nname = "T"\nfrom = "n@example.org"\n')
    (tmp_path / "subscribers.csv").write_text(
        "email,name,branch\nann@example.org,Ann North,North\nbo@example.org,Bo,South\n"
    )
    body = 'Dear {{ subscriber.name }},\n\n## North news\n{only: branch == "North"}\n\nNorthmeet.\n'
    issue = write_issue(tmp_path, "subject: Hello", body)
    with serve_asgi(create_app(issue, tmp_path / "newsletter.toml", "ann@example.org")) as base:
        text = httpx.get(base + "/text").text
        assert "Dear Ann North," in text and "Northmeet" in text
    with serve_asgi(create_app(issue, tmp_path / "newsletter.toml", "bo@example.org")) as base:
        text = httpx.get(base + "/text").text
        assert "Dear Bo," in text and "Northmeet" not in text
    with serve_asgi(create_app(issue, tmp_path / "newsletter.toml", "nobody@example.org")) as base:
        assert "nobody@example.org is not in the list" in httpx.get(base + "/text").text
