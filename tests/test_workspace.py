"""workspace.py: the state folder and its files are private to the user who runs the tool."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from conftest import make_workspace, run_send, settings_for
from smtp_servers import SMTPTestServer


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_send_leaves_the_state_folder_0700_and_every_file_in_it_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with SMTPTestServer() as server:
            root = make_workspace(tmp_path / "ws", server.port, 3)
            run_send(root)
    finally:
        os.umask(old)
    state = settings_for(root).state_dir
    assert mode(state) == 0o700
    files = sorted(p.name for p in state.iterdir())
    assert "newsletter.db" in files and "send-issue.lock" in files
    assert {p.name: mode(p) for p in state.iterdir()} == dict.fromkeys(files, 0o600)


def test_a_loose_state_folder_and_database_are_tightened(tmp_path: Path) -> None:
    from newsletter_mailer.store.database import connect

    state = tmp_path / ".newsletter"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    (state / "newsletter.db").touch()
    (state / "newsletter.db").chmod(0o644)
    connect(state / "newsletter.db").close()
    assert mode(state) == 0o700 and mode(state / "newsletter.db") == 0o600
