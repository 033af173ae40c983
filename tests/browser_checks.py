"""What the browser tests share: loading a page as a reader would see it (width, colour scheme,
no network) and running axe-core's WCAG rules over it."""

from __future__ import annotations

from typing import Any

__all__ = ["RUN_AXE", "RUN_AXE_PAGE", "axe_violations", "emulate", "page_axe_violations"]

RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {
    resultTypes: ['violations'],
    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})
  .then(r => done(r.violations.map(v => ({
      id: v.id,
      nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + n.failureSummary.replace(/\\s+/g, ' '))}))))
  .catch(e => done([{id: 'axe-error', nodes: [String(e)]}]));
"""


# For a web page (the archive): the same WCAG rules and axe's best practices for web pages too
# (landmarks, regions), which an email's HTML cannot follow.
RUN_AXE_PAGE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations'],
    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})
  .then(r => done(r.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
  .catch(e => done(['axe-error: ' + e]));
"""


def emulate(driver: Any, width: int, dark: bool, *, offline: bool = True) -> None:
    """The viewport, prefers-color-scheme and (for an email) no remote loads, before a get()."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*"] if offline else []})
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
    )
    scheme = "dark" if dark else "light"
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
    )


def axe_violations(driver: Any, source: str) -> dict[str, list[str]]:
    """axe's WCAG 2.2 A and AA rules (contrast and target size among them); its best-practice
    rules (landmarks, regions) are left out."""
    driver.set_script_timeout(120)
    driver.execute_script(source)
    found = driver.execute_async_script(RUN_AXE)
    return {v["id"]: v["nodes"] for v in found}


def page_axe_violations(driver: Any, source: str) -> list[str]:
    """axe's WCAG 2.2 A and AA rules and its best practices over a web page: one line per rule broken."""
    driver.set_script_timeout(120)
    driver.execute_script(source)
    found: list[str] = driver.execute_async_script(RUN_AXE_PAGE)
    return found
