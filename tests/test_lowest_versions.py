"""pyproject.toml's lower bounds are real: a fresh virtual environment with every dependency at
the lowest version the bounds allow installs the package and sends the example issue."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO, TEST_SECRET


def lowest_pins() -> list[str]:
    """``name==lowest`` for every dependency; each must have a ``>=`` lower bound."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    pins = []
    for dependency in dependencies:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9][0-9.]*)(?:,<[0-9.]+)?", dependency.replace(" ", ""))
        assert match, f"{dependency!r} has no plain >= lower bound"
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def test_every_dependency_has_a_lower_bound() -> None:
    assert len(lowest_pins()) >= 10


def test_the_lowest_allowed_versions_install_and_send_the_example(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    constraints = tmp_path / "lowest.txt"
    constraints.write_text("\n".join(lowest_pins()) + "\n", encoding="utf-8")
    try:
        pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
        install = subprocess.run(
            [*pip, "-c", str(constraints), str(REPO)],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("skipped: installing the lowest versions from the package index took over 15 minutes")
    index_fault = r"(?i)connection|network|resolve|unreachable|timed out|HTTP error 5\d\d|\b50[0-4]\b"
    if install.returncode != 0 and re.search(index_fault, install.stderr):
        pytest.skip(
            f"skipped: the package index cannot be reached to install the lowest versions: {install.stderr[-300:]}"
        )
    assert install.returncode == 0, install.stderr[-3000:]
    workspace = tmp_path / "ws"
    (workspace / "issues").mkdir(parents=True)
    for name in ("newsletter.toml", "subscribers.csv.example", "issues/example.md"):
        shutil.copyfile(REPO / name, workspace / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")} | {"NEWSLETTER_SECRET": TEST_SECRET}
    sent = subprocess.run(
        [str(venv / "bin" / "newsletter"), "send", "issues/example.md", "--yes"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert len(list((workspace / "outbox" / "new").iterdir())) == 6, sent.stdout
