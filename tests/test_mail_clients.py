"""How the email holds up in mail clients, checked with the tools built for it: axe-core in
headless Chromium at phone and desktop widths, in light mode, in dark mode and with the
attributes Outlook.com sets when it darkens a message, with the default accent, a bright yellow
and a near-black one; and caniemail's data (doiuse-email) over the same HTML. Both npm packages
are installed by .ci/run under build/node.

Screenshots of the light, dark and phone views go to build/test-artefacts/.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from browser_checks import axe_violations, emulate
from conftest import ARTEFACTS, REPO, node_package
from newsletter_mailer.compose.artifacts import write_files
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import BrandSettings, Settings

DOCUMENTS = {"example": REPO / "issues" / "example.md", "large": REPO / "tests" / "fixtures" / "large-issue.md"}
WIDTHS = (375, 640)
SCHEMES = ("light", "dark", "outlook-dark")
PHONE = 375
DEFAULT_ACCENT = "#1a6fb5"
# The example with the default accent; the large issue (buttons, highlights, images, the diary)
# with each accent that once broke something: yellow (a white label vanished) and near-black
# (buttons and borders vanished in dark mode).
VARIANTS = {
    "example": ("example", DEFAULT_ACCENT),
    "large": ("large", DEFAULT_ACCENT),
    "large-yellow": ("large", "#ffff00"),
    "large-black": ("large", "#1a1a1a"),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, example_settings: Settings) -> dict[str, Path]:
    """Each variant as the files `newsletter render` writes."""
    files = {}
    for variant, (document, accent) in VARIANTS.items():
        settings = dataclasses.replace(example_settings, brand=BrandSettings(accent=accent))
        out = tmp_path_factory.mktemp(variant)
        files[variant] = write_files(render_issue(read_issue(DOCUMENTS[document]), settings), settings, out).html
    return files


def open_email(driver: Any, html: Path, width: int, scheme: str) -> None:
    """Load the email as a client would show it. Nothing leaves the machine: remote images are
    blocked, so they show their alt text, as in a client that does not load images."""
    emulate(driver, width, scheme == "dark")
    driver.get(html.as_uri())
    if scheme == "outlook-dark":
        # Outlook.com does not answer prefers-color-scheme; it marks what it recolours with these.
        driver.execute_script(
            "document.documentElement.setAttribute('data-ogsc', '');"
            "document.documentElement.setAttribute('data-ogsb', '');"
        )
    assert driver.execute_script("return window.innerWidth") == width


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's script; asked for before the browser, so a missing package skips at once."""
    return (node_package("axe-core") / "axe.min.js").read_text(encoding="utf-8")


@pytest.mark.browser
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("document", VARIANTS)
def test_axe_finds_nothing_in_light_and_dark(
    axe_source: str, browser: Any, rendered: dict[str, Path], document: str, width: int, scheme: str
) -> None:
    open_email(browser, rendered[document], width, scheme)
    violations = axe_violations(browser, axe_source)
    assert "color-contrast" not in violations, violations["color-contrast"]
    assert violations == {}
    if document == "example":
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": min(height, 8000), "deviceScaleFactor": 1, "mobile": width < 500},
        )
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        view = "phone" if width == PHONE else "desktop"
        shot = ARTEFACTS / f"example-{view}-{scheme}.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000


_SMALL_TEXT = """
const small = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode;
  if (!node.textContent.trim()) continue;
  const range = document.createRange();
  range.selectNodeContents(node);
  if (range.getClientRects().length === 0) continue;  // not shown: the preheader
  const size = parseFloat(getComputedStyle(node.parentElement).fontSize);
  if (size < 14) small.push(node.textContent.trim().slice(0, 50) + ' (' + size + 'px)');
}
return small;
"""

_CROWDED_LINKS = """
const boxes = [];
document.querySelectorAll('a[href]').forEach((a, n) => {
  for (const r of a.getClientRects()) if (r.width > 0 && r.height > 0) boxes.push({n, r, text: a.textContent.trim()});
});
const crowded = [];
for (const a of boxes) for (const b of boxes) {
  if (a.n >= b.n) continue;
  const overlapX = a.r.left < b.r.right && b.r.left < a.r.right;
  const gap = Math.abs((a.r.top + a.r.bottom) / 2 - (b.r.top + b.r.bottom) / 2);
  if (overlapX && gap < 24 && (a.r.height < 24 || b.r.height < 24))
    crowded.push(a.text.slice(0, 30) + ' / ' + b.text.slice(0, 30) + ': ' + gap.toFixed(1) + 'px');
}
return crowded;
"""


@pytest.mark.browser
@pytest.mark.parametrize("document", DOCUMENTS)
def test_on_a_phone_text_is_14px_and_links_are_24px_apart(
    browser: Any, rendered: dict[str, Path], document: str
) -> None:
    open_email(browser, rendered[document], PHONE, "light")
    assert browser.execute_script(_SMALL_TEXT) == []
    assert browser.execute_script(_CROWDED_LINKS) == []
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= PHONE, f"horizontal scrolling on a phone: {scroll}px"


# Features caniemail lists as unsupported somewhere, which we use knowingly. Each is either MJML's
# own responsive scaffolding, or an enhancement that degrades to something readable.
KNOWN_GAPS = {
    "@media": "MJML's responsive columns and our dark mode; without them the 600 px layout shows",
    "!important keyword": "MJML's media queries need it; ignored where unsupported",
    "<body> element": "some webmails replace <body>; the layout lives in the wrapper <div>",
    "Chaining selectors": "MJML's Outlook group fix and our dark-mode rules",
    "Class selector": "column widths and dark mode; inline styles carry the light design",
    "Descendant combinator": "dark-mode rules; inline styles carry the light design",
    "Type selector": "MJML's resets; inline styles carry the design",
    "ID selector": "MJML's #outlook a reset",
    "Attribute selector": "Outlook.com's [data-ogsc]/[data-ogsb] dark-mode rules",
    "display:none": "the hidden preheader",
    "opacity": "the hidden preheader",
    "overflow": "the hidden preheader",
    "outline": "MJML's image reset",
    "text-decoration": "link underlines; a link still shows its colour",
    "word-break": "long words wrap where supported",
    "border-radius": "rounded buttons are square in Outlook for Windows",
    "lang attribute": "the language for screen readers",
    "aria-label attribute": "the email's name for screen readers",
    "role attribute": "layout tables marked presentation for screen readers",
    "width attribute": "pixel widths Outlook for Windows needs",
    "target attribute": "MJML opens buttons in a new tab where allowed",
    "Local anchors": "the 'In this issue' links; the items read as a list where they do not jump",
    "mailto: links": "contact addresses",
}

_DOIUSE = """
const { doIUseEmail } = require(process.argv[1] + '/index.cjs');
const html = require('fs').readFileSync(process.argv[2], 'utf8');
const gaps = {};
for (const error of doIUseEmail(html, { emailClients: ['*'] }).errors) {
  const m = error.match(/^`(.+?)` is not supported by `(.+?)`/);
  const feature = m ? m[1] : error;
  (gaps[feature] = gaps[feature] || []).push(m ? m[2] : '?');
}
console.log(JSON.stringify(gaps));
"""


def caniemail_gaps(html: Path) -> dict[str, list[str]]:
    package = node_package("doiuse-email")
    result = subprocess.run(
        ["node", "-e", _DOIUSE, str(package), str(html)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    gaps: dict[str, list[str]] = json.loads(result.stdout)
    return gaps


def test_caniemail_finds_only_the_gaps_we_know_about(rendered: dict[str, Path]) -> None:
    found: dict[str, set[str]] = {}
    for html in rendered.values():
        for feature, clients in caniemail_gaps(html).items():
            found.setdefault(feature, set()).update(clients)
    new = {feature: sorted(clients) for feature, clients in found.items() if feature not in KNOWN_GAPS}
    assert new == {}, "features some mail clients lack; avoid them, or add them to KNOWN_GAPS saying why"
    assert sorted(set(KNOWN_GAPS) - set(found)) == [], "no longer used: take these off KNOWN_GAPS"
    assert sorted(found["border-radius"]) == ["orange.desktop-webmail", "outlook.windows", "outlook.windows-mail"]


def test_caniemail_flags_a_feature_outside_the_list(tmp_path: Path) -> None:
    """The check can fail: CSS grid is on no allow-list."""
    html = tmp_path / "grid.html"
    html.write_text('<!doctype html><html><body><div style="display:grid">x</div></body></html>')
    gaps = caniemail_gaps(html)
    assert re.search(r"grid", " ".join(gaps)), gaps
    assert set(gaps) - set(KNOWN_GAPS)
