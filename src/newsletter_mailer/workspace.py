"""Where a workspace's files are, and the defaults the package ships (templates, the example).

An installed wheel carries them inside the package; a source checkout reads them from the
repository root, so there is one hand-kept copy only.
"""

from __future__ import annotations

import os
import shutil
import stat
from importlib import resources
from pathlib import Path

SKELETON = ("newsletter.toml", "issues/example.md", "subscribers.csv.example")
# What ``init`` writes: the example issue, and the example list as the list the send will use.
NEW_FILES = {"issues/example.md": "issues/example.md", "subscribers.csv": "subscribers.csv.example"}
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def shipped(relative: str) -> Path:
    """A file or folder the package ships: ``templates`` or one of the skeleton's files."""
    package = Path(str(resources.files("newsletter_mailer")))
    inside = package / relative if relative == "templates" else package / "skeleton" / relative
    if inside.exists():
        return inside
    return _SOURCE_ROOT / relative


def init_workspace(target: Path, settings_text: str | None = None) -> list[Path]:
    """Create a new workspace; refuses to overwrite. Returns the files written.

    ``settings_text`` is the new newsletter.toml (``config.new_settings_text``); without it the
    bundled example's settings are copied.
    """
    written: list[Path] = []
    target.mkdir(parents=True, exist_ok=True)
    wanted = ["newsletter.toml", *NEW_FILES, "templates"]
    clashes = [name for name in wanted if (target / name).exists()]
    if clashes:
        raise FileExistsError(", ".join(str(target / c) for c in clashes))
    settings = target / "newsletter.toml"
    if settings_text is None:
        shutil.copyfile(shipped("newsletter.toml"), settings)
        settings.write_text(settings.read_text(encoding="utf-8").replace(".csv.example", ".csv"), encoding="utf-8")
    else:
        settings.write_text(settings_text, encoding="utf-8")
    written.append(settings)
    for name, source in NEW_FILES.items():
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped(source), destination)
        written.append(destination)
    shutil.copytree(shipped("templates"), target / "templates")
    written.append(target / "templates")
    return written


def private_dir(path: Path) -> Path:
    """The workspace's state folder (subscribers' addresses, the secret): created 0700, tightened if looser."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """A state file created 0600 before anything writes to it (SQLite gives its -wal and -shm the same mode)."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
    return path
