"""The gates CI relies on: ruff (lint and format) and mypy --strict over src, tests and
benchmarks, and the wings importing only downwards, as the README's architecture draws them."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

TREES = ["src", "tests", "benchmarks"]
PACKAGE = REPO / "src" / "newsletter_mailer"
# Top to bottom: a module may import from its own wing and from the wings below it.
WINGS = ["cli", "web", "app", "publish", "send", "compose", "audience", "store", "config", "errors", "workspace"]
# The entry points reach state only through a use case (app/); only store/ knows a database driver.
ENTRY_POINTS = {"cli", "web"}
DRIVERS = ("sqlite3", "psycopg", "psycopg_pool")
BOTTOM = {"config", "errors", "workspace"}  # the shared base: each may import only the ones after it


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", *TREES],
        ["ruff", "format", "--check", *TREES],
        ["mypy", "--strict", *TREES],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_static_checks_pass(command: list[str]) -> None:
    if importlib.util.find_spec(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed (pip install -e '.[test]')")
    result = subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr


def wing_of(module: str) -> str:
    """``newsletter_mailer.send.dispatch`` -> ``send``; ``newsletter_mailer.config`` -> ``config``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every newsletter_mailer module that a source file under ``root`` imports, as an absolute name."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
                names = [f"{target}.{alias.name}" for alias in node.names] if not node.module else [target]
                found.update(names)
            elif node.module and node.module.startswith("newsletter_mailer"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("newsletter_mailer"))
    return found


def layering_violations(root: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        own = wing_of(".".join(path.relative_to(root.parent).with_suffix("").parts))
        if own not in WINGS:
            continue
        for module in imported_modules(path, root):
            other = wing_of(module)
            if other in WINGS and WINGS.index(other) < WINGS.index(own):
                problems.append(f"{path.relative_to(root.parent)} ({own}) imports {module} ({other}), a wing above it")
    return problems


def foreign_imports(path: Path) -> set[str]:
    """The top-level names of every module a source file imports (``import x.y`` -> ``x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
    return found


def boundary_violations(root: Path = PACKAGE) -> list[str]:
    """cli.py and web/ importing store/, and a driver imported outside store/."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        own = wing_of(".".join(path.relative_to(root.parent).with_suffix("").parts))
        where = path.relative_to(root.parent)
        if own in ENTRY_POINTS:
            problems += [
                f"{where} imports {m}: entry points call app/"
                for m in imported_modules(path, root)
                if wing_of(m) == "store"
            ]
        if own != "store":
            problems += [
                f"{where} imports {m}: only store/ knows a driver" for m in foreign_imports(path) if m in DRIVERS
            ]
    return problems


def test_entry_points_reach_state_only_through_app_and_drivers_only_in_store() -> None:
    assert boundary_violations() == []


def test_the_boundary_check_catches_a_store_import_and_a_driver(tmp_path: Path) -> None:
    root = tmp_path / "newsletter_mailer"
    (root / "web").mkdir(parents=True)
    (root / "web" / "pages.py").write_text("from ..store.factory import open_store\n")
    (root / "send").mkdir()
    (root / "send" / "engine.py").write_text("import sqlite3\nfrom psycopg import errors\n")
    (root / "cli.py").write_text("from .store import open_store\nfrom .app import status\n")
    assert sorted(p.split(" imports ")[0] for p in boundary_violations(root)) == [
        "newsletter_mailer/cli.py",
        "newsletter_mailer/send/engine.py",
        "newsletter_mailer/send/engine.py",
        "newsletter_mailer/web/pages.py",
    ]


def long_commands(path: Path, limit: int = 25) -> list[str]:
    """The click commands in ``path`` whose body (after the docstring) is over ``limit`` lines."""
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        if not any(".command(" in ast.unparse(d) for d in node.decorator_list):
            continue
        body = node.body[1:] if isinstance(node.body[0], ast.Expr) and len(node.body) > 1 else node.body
        lines = (node.end_lineno or body[0].lineno) - body[0].lineno + 1
        if lines > limit:
            found.append(f"{node.name}: {lines} lines")
    return found


def test_every_command_body_is_short() -> None:
    """A command reads its arguments, calls one use case and presents the result: 25 lines do."""
    assert long_commands(PACKAGE / "cli.py") == []


def test_the_length_check_counts_a_commands_body(tmp_path: Path) -> None:
    body = "\n".join(f"    x = {i}" for i in range(26))
    (tmp_path / "cli.py").write_text(f'@main.command()\ndef long() -> None:\n    """Doc."""\n{body}\n')
    assert long_commands(tmp_path / "cli.py") == ["long: 26 lines"]


def test_every_module_sits_in_a_known_wing() -> None:
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if not p.name.startswith("_")}
    data = {"py.typed", "locale"}  # locale/: the gettext catalogues (compose/i18n.py), no code
    assert tops - {"py"} <= set(WINGS) | data, tops - set(WINGS)


def test_wings_import_only_from_the_wings_below() -> None:
    assert layering_violations() == []


def test_the_layering_check_catches_an_upward_import(tmp_path: Path) -> None:
    root = tmp_path / "newsletter_mailer"
    (root / "audience").mkdir(parents=True)
    (root / "audience" / "lists.py").write_text("from ..send import dispatch\nfrom ..config import Settings\n")
    (root / "send").mkdir()
    (root / "send" / "dispatch.py").write_text("from ..audience.lists import x\nfrom newsletter_mailer.web import y\n")
    found = layering_violations(root)
    assert [problem.split(" (")[0] for problem in found] == [
        "newsletter_mailer/audience/lists.py",
        "newsletter_mailer/send/dispatch.py",
    ]
    assert "imports newsletter_mailer.send (send)" in found[0]
    assert "imports newsletter_mailer.web (web)" in found[1]
