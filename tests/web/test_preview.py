"""preview.py under a real uvicorn server: pages, text, and a version that changes on save."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

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
