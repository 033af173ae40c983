"""The code stays typed and linted: ruff and mypy --strict over the package, as CI runs them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks"],
        [sys.executable, "-m", "mypy", "src"],
    ],
    ids=["ruff", "mypy"],
)
def test_static_checks_pass(command: list[str]) -> None:
    if importlib.util.find_spec(command[2]) is None:
        pytest.skip(f"{command[2]} is not installed (pip install -e '.[test]')")
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
